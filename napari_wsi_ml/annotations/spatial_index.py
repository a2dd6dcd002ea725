"""A spatial index over an AnnotationSet, and rasterisation of its annotations.

Everything here is in level-0 ``(x, y)`` pixels, continuous: pixel ``(i, j)`` covers
``[i, i + 1) x [j, j + 1)``. A raster of downsample ``d`` whose top-left corner is at level-0
``origin`` has pixel ``(u, v)`` covering ``[origin_x + u d, origin_x + (u + 1) d)`` in x (and
likewise in y), so it lines up with the slide's own pyramid levels.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import shapely

from napari_wsi_ml.annotations.model import AnnotationSet, AnnotationType

SUBPIXEL_BITS = 4  # cv2 drawing precision: 1/16 of a raster pixel
_DOT_TYPES = (AnnotationType.DOT, AnnotationType.POINTSET)


def hex_to_rgb(color: str) -> tuple[int, int, int]:
    """``"#RRGGBB"`` (or ``"RRGGBB"``) to an ``(r, g, b)`` tuple of ints."""
    text = color.lstrip("#")
    if len(text) < 6:
        raise ValueError(f"not a #RRGGBB colour: {color!r}")
    return (int(text[0:2], 16), int(text[2:4], 16), int(text[4:6], 16))


@dataclass(frozen=True)
class PackedAnnotations:
    """All vertices of an AnnotationSet in flat arrays (one entry per annotation).

    Attributes:
        vertices: (V, 2) float64 level-0 ``(x, y)``, annotation after annotation.
        offsets: (N + 1,) int64; annotation ``i`` owns ``vertices[offsets[i]:offsets[i + 1]]``.
        bounds: (N, 4) float64 ``(xmin, ymin, xmax, ymax)`` per annotation.
        kinds: (N,) int8: 0 closed area, 1 open line, 2 points.
        color_index: (N,) int; index into ``colors``.
        colors: (K, 3) uint8 RGB of the distinct annotation colours (as the Shapes layer shows).
    """

    vertices: np.ndarray
    offsets: np.ndarray
    bounds: np.ndarray
    kinds: np.ndarray
    color_index: np.ndarray
    colors: np.ndarray

    def __len__(self) -> int:
        return len(self.offsets) - 1


def pack_annotations(annotation_set: AnnotationSet) -> PackedAnnotations:
    """Flatten an AnnotationSet's coordinates for fast queries and drawing."""
    annotations = annotation_set.annotations
    n = len(annotations)
    counts = np.array([len(a.coordinates) for a in annotations], dtype=np.int64).reshape(n)
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    if n and offsets[-1]:
        vertices = np.concatenate([a.coordinates for a in annotations], axis=0)
    else:
        vertices = np.zeros((0, 2), dtype=np.float64)
    bounds = np.full((n, 4), np.nan)
    nonempty = counts > 0
    if nonempty.any():
        starts = offsets[:-1][nonempty]
        bounds[nonempty, 0:2] = np.minimum.reduceat(vertices, starts, axis=0)
        bounds[nonempty, 2:4] = np.maximum.reduceat(vertices, starts, axis=0)
    kind_of = {t: 2 if t in _DOT_TYPES else 0 if t.is_area else 1 for t in AnnotationType}
    kinds = np.array([kind_of[a.type] for a in annotations], dtype=np.int8).reshape(n)
    palette: dict[str, int] = {}
    color_index = np.array(
        [palette.setdefault(a.color.upper(), len(palette)) for a in annotations], dtype=np.int64
    ).reshape(n)
    colors = np.array([hex_to_rgb(c) for c in palette], dtype=np.uint8).reshape(-1, 3)
    return PackedAnnotations(vertices, offsets, bounds, kinds, color_index, colors)


class AnnotationIndex:
    """Which annotations touch a region: an STRtree over their bounding boxes."""

    def __init__(self, annotation_set: AnnotationSet) -> None:
        self.packed = pack_annotations(annotation_set)
        bounds = self.packed.bounds
        valid = ~np.isnan(bounds).any(axis=1)
        self._ids = np.flatnonzero(valid)
        self._tree = shapely.STRtree(shapely.box(*bounds[valid].T))
        self._overlapping: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.packed)

    def query(self, box_xy: Sequence[float]) -> np.ndarray:
        """Sorted indices of annotations whose bounding box meets ``(xmin, ymin, xmax, ymax)``."""
        hits = self._tree.query(shapely.box(*box_xy))
        return np.sort(self._ids[hits])

    def overlapping(self) -> np.ndarray:
        """Boolean mask of annotations whose bounding box meets another annotation's."""
        if self._overlapping is None:
            left, right = self._tree.query(self._tree.geometries, predicate="intersects")
            mask = np.zeros(len(self.packed), dtype=bool)
            mask[self._ids[left[left != right]]] = True
            self._overlapping = mask
        return self._overlapping


def raster_size(extent_wh: Sequence[float], downsample: float) -> tuple[int, int]:
    """``(width, height)`` in pixels of a raster covering ``extent_wh`` level-0 pixels."""
    return (
        max(1, int(np.ceil(extent_wh[0] / downsample))),
        max(1, int(np.ceil(extent_wh[1] / downsample))),
    )


def rasterize(
    index: AnnotationIndex,
    *,
    origin_xy: Sequence[float],
    downsample: float,
    size_wh: Sequence[int],
    ids: np.ndarray | None = None,
    fill_alpha: int = 120,
    point_radius: int = 2,
    outline: bool = True,
) -> np.ndarray:
    """Draw annotations into an RGBA raster: filled areas with outlines, lines, dots.

    Args:
        index: The annotations to draw from.
        origin_xy: Level-0 ``(x, y)`` of the raster's top-left corner.
        downsample: Level-0 pixels per raster pixel.
        size_wh: Raster ``(width, height)``.
        ids: Indices of the annotations to draw (default: those meeting the raster).
        fill_alpha: Opacity (0-255) of area fills; outlines are opaque.
        point_radius: Radius in raster pixels of dots.
        outline: Whether to outline areas (outlines may reach half a pixel beyond the fill,
            which covers exactly the pixels whose centre lies inside).

    Returns:
        (height, width, 4) uint8 RGBA, transparent where nothing is drawn.
    """
    width, height = int(size_wh[0]), int(size_wh[1])
    canvas = np.zeros((height, width, 4), dtype=np.uint8)
    if ids is None:
        x0, y0 = origin_xy
        ids = index.query((x0, y0, x0 + width * downsample, y0 + height * downsample))
    packed = index.packed
    ids = np.asarray(ids, dtype=np.int64)
    if len(ids) == 0:
        return canvas
    scale = float(1 << SUBPIXEL_BITS)
    fixed = _to_fixed_point(packed.vertices, origin_xy, downsample, scale)
    alone = ~index.overlapping()
    for color_id, rgb in enumerate(packed.colors):
        chosen = ids[packed.color_index[ids] == color_id]
        fill = (*(int(c) for c in rgb), fill_alpha)
        line = (*(int(c) for c in rgb), 255)
        for kind in (0, 1, 2):
            kind_ids = chosen[packed.kinds[chosen] == kind]
            shapes = [fixed[packed.offsets[i] : packed.offsets[i + 1]] for i in kind_ids]
            if kind == 0:
                _fill(canvas, shapes, alone[kind_ids], fill)
            if (kind == 1 or (kind == 0 and outline)) and shapes:
                cv2.polylines(canvas, shapes, kind == 0, line, 1, cv2.LINE_8, SUBPIXEL_BITS)
            if kind == 2 and shapes:
                _stamp_points(canvas, np.concatenate(shapes) / scale, line, point_radius)
    return canvas


def _to_fixed_point(
    vertices: np.ndarray, origin_xy: Sequence[float], downsample: float, scale: float
) -> np.ndarray:
    """Level-0 ``(x, y)`` to cv2's fixed-point raster coordinates (pixel centres at integers)."""
    points = vertices - np.asarray(origin_xy, dtype=np.float64)
    points *= scale / downsample
    points -= 0.5 * scale
    np.clip(points, -1e9, 1e9, out=points)
    np.rint(points, out=points)
    return points.astype(np.int32)


def _fill(
    canvas: np.ndarray, shapes: list[np.ndarray], alone: np.ndarray, color: tuple[int, ...]
) -> None:
    """Fill polygons; those overlapping others one by one, as cv2 XORs overlaps in one call."""
    batch = [s for s, a in zip(shapes, alone, strict=True) if a and len(s) >= 3]
    if batch:
        cv2.fillPoly(canvas, batch, color, cv2.LINE_8, SUBPIXEL_BITS)
    for shape, is_alone in zip(shapes, alone, strict=True):
        if not is_alone and len(shape) >= 3:
            cv2.fillPoly(canvas, [shape], color, cv2.LINE_8, SUBPIXEL_BITS)


def _stamp_points(
    canvas: np.ndarray, centres: np.ndarray, color: tuple[int, ...], radius: int
) -> None:
    """Paint a filled square of side ``2 radius + 1`` around each pixel-centre coordinate."""
    height, width = canvas.shape[:2]
    cols = np.rint(centres[:, 0]).astype(np.int64)
    rows = np.rint(centres[:, 1]).astype(np.int64)
    offsets = np.arange(-radius, radius + 1)
    rr, cc = np.broadcast_arrays(
        rows[:, None, None] + offsets[None, :, None], cols[:, None, None] + offsets[None, None, :]
    )
    rr, cc = rr.ravel(), cc.ravel()
    keep = (rr >= 0) & (rr < height) & (cc >= 0) & (cc < width)
    canvas[rr[keep], cc[keep]] = color
