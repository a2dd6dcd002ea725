"""Many annotations drawn into RGBA rasters fast, and found by box without a tree.

Every pixel whose centre lies inside an area annotation is drawn (tests check it against
shapely), fast enough for the overview of 100 000 polygons:

* annotations are found by comparing their bounding boxes with NumPy (no STRtree to build:
  building one takes longer than thousands of such queries);
* only the vertices of the annotations drawn are converted to cv2's fixed point;
* cv2 fills the polygons passed in one call with the even-odd rule, so overlapping polygons
  would cancel out. Polygons whose pixel boxes meet no other polygon's box (found on a coverage
  grid, in time linear in polygons and pixels) are filled in one call per colour; the others
  one by one;
* large sets are drawn on two threads, each drawing half of the colours.

Coordinates are level-0 ``(x, y)`` pixels, and raster pixel ``(u, v)`` of a raster of downsample
``d`` at level-0 ``origin`` covers ``[origin_x + u d, origin_x + (u + 1) d)`` in x (likewise y).
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import cv2
import numpy as np

from napari_wsi_ml.annotations.colors import hex_to_rgb
from napari_wsi_ml.annotations.model import AnnotationSet, AnnotationType

_KIND = {
    t: 2 if t in (AnnotationType.DOT, AnnotationType.POINTSET) else 0 if t.is_area else 1
    for t in AnnotationType
}  # 0 closed area, 1 open line, 2 points
SUBPIXEL_BITS = 4  # cv2 drawing precision: 1/16 of a raster pixel
_SCALE = float(1 << SUBPIXEL_BITS)
PARALLEL_MIN_VERTICES = 200_000  # below this, drawing on two threads is not worth starting one


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


def raster_size(extent_wh: Sequence[float], downsample: float) -> tuple[int, int]:
    """``(width, height)`` in pixels of a raster covering ``extent_wh`` level-0 pixels."""
    return (
        max(1, int(np.ceil(extent_wh[0] / downsample))),
        max(1, int(np.ceil(extent_wh[1] / downsample))),
    )


def pack(annotation_set: AnnotationSet) -> PackedAnnotations:
    """All vertices of ``annotation_set`` in flat arrays."""
    annotations = annotation_set.annotations
    n = len(annotations)
    rings, kinds, colors = [], [], []
    for annotation in annotations:
        rings.append(annotation.coordinates)
        kinds.append(_KIND[annotation.type])
        colors.append(annotation.color)
    counts = np.fromiter(map(len, rings), dtype=np.int64, count=n)
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    vertices = np.concatenate(rings, axis=0) if offsets[-1] else np.zeros((0, 2))
    bounds = np.full((n, 4), np.nan)
    nonempty = counts > 0
    if nonempty.any():
        starts = offsets[:-1][nonempty]
        bounds[nonempty, 0:2] = np.minimum.reduceat(vertices, starts, axis=0)
        bounds[nonempty, 2:4] = np.maximum.reduceat(vertices, starts, axis=0)
    palette: dict[str, int] = {}
    upper = {color: color.upper() for color in set(colors)}
    color_index = np.fromiter(
        (palette.setdefault(upper[color], len(palette)) for color in colors), np.int64, count=n
    )
    rgb = np.array([hex_to_rgb(color) for color in palette], dtype=np.uint8).reshape(-1, 3)
    kind_array = np.fromiter(kinds, dtype=np.int8, count=n)
    return PackedAnnotations(vertices, offsets, bounds, kind_array, color_index, rgb)


class BoxIndex:
    """Which annotations' bounding boxes meet a region, by one NumPy comparison per query.

    Attributes:
        packed: The annotations' flat vertices, bounds, kinds and colours.
    """

    def __init__(self, annotation_set: AnnotationSet) -> None:
        self.packed = pack(annotation_set)
        self._bounds = np.ascontiguousarray(self.packed.bounds.T)  # rows xmin, ymin, xmax, ymax

    def __len__(self) -> int:
        return len(self.packed)

    def query(self, box_xy: Sequence[float]) -> np.ndarray:
        """Sorted indices of annotations whose bounding box meets ``(xmin, ymin, xmax, ymax)``.

        Boxes that only touch count; annotations without coordinates never do.
        """
        xmin, ymin, xmax, ymax = self._bounds
        hits = (xmin <= box_xy[2]) & (xmax >= box_xy[0]) & (ymin <= box_xy[3]) & (ymax >= box_xy[1])
        return np.flatnonzero(hits)


def draw(
    index: BoxIndex,
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
        outline: Whether to outline areas.

    Returns:
        (height, width, 4) uint8 RGBA, transparent where nothing is drawn.
    """
    width, height = int(size_wh[0]), int(size_wh[1])
    x0, y0 = origin_xy
    if ids is None:
        ids = index.query((x0, y0, x0 + width * downsample, y0 + height * downsample))
    ids = np.asarray(ids, dtype=np.int64)
    if len(ids) == 0:
        return np.zeros((height, width, 4), dtype=np.uint8)
    # cv2 clamps the spans of a fill that lie left or right of the image into its first or last
    # column, and is less exact on its first row: draw with a margin of one pixel, cut off.
    padded = _draw_ids(
        index, ids, (x0 - downsample, y0 - downsample), downsample, width + 2, height + 2,
        fill_alpha, point_radius, outline,
    )  # fmt: skip
    return np.ascontiguousarray(padded[1:-1, 1:-1])


def _draw_ids(
    index: BoxIndex,
    ids: np.ndarray,
    origin_xy: Sequence[float],
    downsample: float,
    width: int,
    height: int,
    fill_alpha: int,
    point_radius: int,
    outline: bool,
) -> np.ndarray:
    """:func:`draw` of the annotations ``ids`` (not empty) on a ``width`` x ``height`` canvas."""
    canvas = np.zeros((height, width, 4), dtype=np.uint8)
    packed = index.packed
    fixed, offsets = _fixed_vertices(packed, ids, origin_xy, downsample)
    areas = (packed.kinds[ids] == 0) & (np.diff(offsets) >= 3)
    boxes = _pixel_boxes(packed.bounds[ids], origin_xy, downsample)
    batchable = _batchable(boxes, height, width, areas)
    starts, ends = offsets[:-1].tolist(), offsets[1:].tolist()

    def paint(target: np.ndarray, color_ids: range) -> None:
        for color_id in color_ids:
            chosen = np.flatnonzero(packed.color_index[ids] == color_id)  # positions in ids
            rgb = [int(c) for c in packed.colors[color_id]]
            fill, line = (*rgb, fill_alpha), (*rgb, 255)
            for kind in (0, 1, 2):
                mine = chosen[packed.kinds[ids[chosen]] == kind].tolist()
                shapes = [fixed[starts[i] : ends[i]] for i in mine]
                if kind == 0:
                    _fill(target, shapes, batchable[mine], fill)
                if (kind == 1 or (kind == 0 and outline)) and shapes:
                    cv2.polylines(target, shapes, kind == 0, line, 1, cv2.LINE_8, SUBPIXEL_BITS)
                if kind == 2 and shapes:
                    _stamp_points(target, np.concatenate(shapes) / _SCALE, line, point_radius)

    colors = len(packed.colors)
    split = _halfway(np.bincount(packed.color_index[ids], np.diff(offsets), minlength=colors))
    if fill_alpha == 0 or offsets[-1] < PARALLEL_MIN_VERTICES or split in (0, colors):
        paint(canvas, range(colors))
        return canvas
    # Two halves of the colours on two threads (cv2 releases the GIL), the later half drawn
    # apart and laid over: every pixel it drew has a non-zero alpha.
    later = np.zeros_like(canvas)
    with ThreadPoolExecutor(max_workers=1) as pool:
        drawing = pool.submit(paint, later, range(split, colors))
        paint(canvas, range(split))
        drawing.result()
    drawn = later[..., 3] > 0
    canvas[drawn] = later[drawn]
    return canvas


def _halfway(weights: np.ndarray) -> int:
    """The index that splits ``weights`` into two runs of about equal sums."""
    total = np.cumsum(weights)
    return int(np.searchsorted(total, total[-1] / 2)) + 1 if len(total) else 0


def _fixed_vertices(
    packed: PackedAnnotations, ids: np.ndarray, origin_xy: Sequence[float], downsample: float
) -> tuple[np.ndarray, np.ndarray]:
    """The vertices of annotations ``ids`` in cv2's fixed point, and their offsets (N + 1,)."""
    counts = packed.offsets[ids + 1] - packed.offsets[ids]
    offsets = np.zeros(len(ids) + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    if len(ids) == len(packed) and np.array_equal(ids, np.arange(len(packed))):
        vertices = packed.vertices
    else:  # gather only the vertices drawn
        rows = np.repeat(packed.offsets[ids] - offsets[:-1], counts) + np.arange(offsets[-1])
        vertices = packed.vertices[rows]
    points = vertices - np.asarray(origin_xy, dtype=np.float64)
    points *= _SCALE / downsample
    points -= 0.5 * _SCALE
    np.clip(points, -1e9, 1e9, out=points)
    np.rint(points, out=points)
    return points.astype(np.int32), offsets


def _pixel_boxes(bounds: np.ndarray, origin_xy: Sequence[float], downsample: float) -> np.ndarray:
    """(N, 4) int64 raster pixel boxes ``(col0, row0, col1, row1)``, inclusive, of level-0
    ``bounds``: the same mapping as the vertices', so each box holds its fixed-point polygon."""
    points = bounds - np.tile(np.asarray(origin_xy, dtype=np.float64), 2)
    points *= _SCALE / downsample
    points -= 0.5 * _SCALE
    np.clip(np.nan_to_num(points), -1e9, 1e9, out=points)
    np.rint(points, out=points)
    return np.floor_divide(points.astype(np.int64), int(_SCALE))


def _fill(
    canvas: np.ndarray, shapes: list[np.ndarray], batchable: np.ndarray, color: tuple[int, ...]
) -> None:
    """Fill the union of polygons: the batchable ones in one call, the others one by one."""
    batch = [shape for shape, ok in zip(shapes, batchable, strict=True) if ok]
    if batch:
        cv2.fillPoly(canvas, batch, color, cv2.LINE_8, SUBPIXEL_BITS)
    for shape, ok in zip(shapes, batchable, strict=True):
        if not ok and len(shape) >= 3:
            cv2.fillPoly(canvas, [shape], color, cv2.LINE_8, SUBPIXEL_BITS)


def _batchable(boxes: np.ndarray, height: int, width: int, candidates: np.ndarray) -> np.ndarray:
    """Which ``candidates`` may be filled in one cv2 call: their boxes share no raster pixel
    with another batchable box.

    Two polygons whose boxes share no pixel have disjoint x or y ranges in fixed point, so on
    every scanline their edge crossings do not interleave and cv2's even-odd fill of both in
    one call fills each as alone. Boxes are clipped to the raster: a polygon's crossings left
    of it are even in number on every scanline and cannot change the parity inside. Boxes
    larger than 1/256 of the raster are left out (filled alone), so that a few large polygons
    do not make the many small ones under them unbatchable.
    """
    col0 = np.clip(boxes[:, 0], 0, width)
    row0 = np.clip(boxes[:, 1], 0, height)
    col1 = np.clip(boxes[:, 2], -1, width - 1) + 1  # exclusive
    row1 = np.clip(boxes[:, 3], -1, height - 1) + 1
    area = np.maximum(col1 - col0, 0) * np.maximum(row1 - row0, 0)
    batchable = candidates & (area <= height * width / 256)
    inside = np.flatnonzero(batchable & (area > 0))
    if len(inside) < 2:
        return batchable
    c0, r0, c1, r1 = col0[inside], row0[inside], col1[inside], row1[inside]
    stride = width + 1
    corners = np.concatenate(
        [r0 * stride + c0, r0 * stride + c1, r1 * stride + c0, r1 * stride + c1]
    )
    diff = np.zeros((height + 1) * stride, dtype=np.float32)
    np.add.at(diff, corners, np.repeat(np.array([1, -1, -1, 1], np.float32), len(inside)))
    depth = cv2.CV_32F if height * width <= 1 << 24 else cv2.CV_64F  # exact integer sums
    cover = cv2.integral(diff.reshape(height + 1, stride)[:height, :width], sdepth=depth)
    crowded = (cover[1:, 1:] > 1.5).astype(np.float32)  # pixels under two boxes or more
    table = cv2.integral(crowded, sdepth=depth)
    shared = table[r1, c1] - table[r0, c1] - table[r1, c0] + table[r0, c0]
    batchable[inside[shared > 0.5]] = False
    return batchable


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
