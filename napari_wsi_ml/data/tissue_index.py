"""Fast tissue fractions of many patches: a low-resolution coverage raster plus exact checks.

The usable area of a slide (tissue minus what quality control flagged) is a shapely geometry in
level-0 ``(x, y)``. :class:`TissueIndex` rasterises it once into a coverage grid (each cell holds
the fraction of it that is usable, from 4× supersampling) and keeps its integral image, so the
fraction of any box is a bilinear look-up: exact for the raster, within a few percent of the
geometry for boxes of ≥ 16 cells a side. Where a decision depends on it, the exact area
(shapely intersection) settles it: :meth:`TissueIndex.meets` computes it for every box whose
estimate is within ``margin`` of the threshold, or for every accepted box when ``exact=True``.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry

CELLS_PER_PATCH = 16
"""Raster cells along a patch side (finer when the slide is small)."""

MAX_RASTER_SIDE = 2048
"""Longest side of the coverage raster, in cells."""

DEFAULT_MARGIN = 0.1
"""Estimates closer than this to a threshold are checked exactly."""


def _rings(geometry: BaseGeometry) -> list[np.ndarray]:
    rings: list[np.ndarray] = []
    for polygon in getattr(geometry, "geoms", [geometry]):
        if polygon.is_empty or polygon.geom_type != "Polygon":
            if hasattr(polygon, "geoms"):
                rings.extend(_rings(polygon))
            continue
        rings.append(np.asarray(polygon.exterior.coords))
        rings.extend(np.asarray(hole.coords) for hole in polygon.interiors)
    return rings


def coverage_raster(geometry: BaseGeometry, shape: tuple[int, int], cell: float) -> np.ndarray:
    """Float32 ``(rows, cols)``: fraction of each ``cell × cell`` level-0 square in ``geometry``."""
    rows, cols = shape
    factor = max(1, min(4, 8192 // max(rows, cols, 1)))
    fine = np.zeros((rows * factor, cols * factor), dtype=np.uint8)
    shift = 4  # sub-pixel vertex precision of cv2.fillPoly
    scale = factor / cell * (1 << shift)
    rings = [np.round(r * scale).astype(np.int32).reshape(-1, 1, 2) for r in _rings(geometry)]
    if rings:
        cv2.fillPoly(fine, rings, 255, lineType=cv2.LINE_8, shift=shift)
    if factor == 1:
        return fine.astype(np.float32) / 255
    return cv2.resize(
        fine.astype(np.float32) / 255, (cols, rows), interpolation=cv2.INTER_AREA
    ).astype(np.float32)


class TissueIndex:
    """Usable area of one slide, answering "what fraction of this patch is usable?".

    Args:
        geometry: Usable area, level-0 ``(x, y)`` (tissue minus QC-flagged regions).
        slide_size: Level-0 ``(width, height)`` of the slide.
        patch_extent: Level-0 ``(width, height)`` of the patches to be asked about (sets the
            raster's resolution).
    """

    def __init__(
        self,
        geometry: BaseGeometry,
        slide_size: tuple[int, int],
        patch_extent: tuple[int, int],
    ) -> None:
        self.geometry = geometry
        self.slide_size = (int(slide_size[0]), int(slide_size[1]))
        width, height = self.slide_size
        self.cell = max(min(patch_extent) / CELLS_PER_PATCH, max(width, height) / MAX_RASTER_SIDE)
        self.coverage = coverage_raster(
            geometry, (math.ceil(height / self.cell), math.ceil(width / self.cell)), self.cell
        )
        integral = np.zeros((self.coverage.shape[0] + 1, self.coverage.shape[1] + 1))
        integral[1:, 1:] = self.coverage.cumsum(0).cumsum(1)
        self._integral = integral
        shapely.prepare(geometry)

    def _area_to(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Raster area (in cells) of ``[0, x) × [0, y)``, continuous cell coordinates."""
        rows, cols = self.coverage.shape
        x = np.clip(x, 0, cols)
        y = np.clip(y, 0, rows)
        x0 = np.minimum(np.floor(x).astype(np.int64), cols - 1)
        y0 = np.minimum(np.floor(y).astype(np.int64), rows - 1)
        fx, fy = x - x0, y - y0
        s = self._integral
        top = s[y0, x0] * (1 - fx) + s[y0, x0 + 1] * fx
        bottom = s[y0 + 1, x0] * (1 - fx) + s[y0 + 1, x0 + 1] * fx
        return top * (1 - fy) + bottom * fy

    def estimate(self, xy: np.ndarray, extent: tuple[int, int]) -> np.ndarray:
        """Raster estimate of the usable fraction of boxes at level-0 corners ``xy`` ``(N, 2)``."""
        xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2) / self.cell
        ex, ey = extent[0] / self.cell, extent[1] / self.cell
        x0, y0 = xy[:, 0], xy[:, 1]
        area = (
            self._area_to(x0 + ex, y0 + ey)
            - self._area_to(x0, y0 + ey)
            - self._area_to(x0 + ex, y0)
            + self._area_to(x0, y0)
        )
        return np.clip(area / (ex * ey), 0.0, 1.0)

    def exact(self, xy: np.ndarray, extent: tuple[int, int]) -> np.ndarray:
        """Exact usable fraction (shapely areas) of boxes at level-0 corners ``xy`` ``(N, 2)``."""
        xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
        if len(xy) == 0 or self.geometry.is_empty:
            return np.zeros(len(xy))
        boxes = shapely.box(xy[:, 0], xy[:, 1], xy[:, 0] + extent[0], xy[:, 1] + extent[1])
        hits = shapely.intersects(self.geometry, boxes)
        out = np.zeros(len(xy))
        if hits.any():
            out[hits] = shapely.area(shapely.intersection(boxes[hits], self.geometry))
        return out / (extent[0] * extent[1])

    def meets(
        self,
        xy: np.ndarray,
        extent: tuple[int, int],
        min_fraction: float,
        *,
        exact: bool = False,
        margin: float = DEFAULT_MARGIN,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Which boxes hold at least ``min_fraction`` usable area, and their fractions.

        Args:
            xy: Level-0 top-left corners ``(N, 2)``.
            extent: Level-0 ``(width, height)`` of the boxes.
            min_fraction: Threshold in [0, 1].
            exact: Check every accepted box exactly (guaranteed), not only the uncertain ones.
            margin: Estimates within this of the threshold are checked exactly.

        Returns:
            ``(accepted (N,) bool, fraction (N,) float)``; fractions are exact where checked.
        """
        fraction = self.estimate(xy, extent)
        if min_fraction <= 0:
            return np.ones(len(fraction), dtype=bool), fraction
        check = fraction >= min_fraction - margin
        if not exact:
            check &= fraction < min_fraction + margin
        if check.any():
            fraction[check] = self.exact(np.asarray(xy).reshape(-1, 2)[check], extent)
        return fraction >= min_fraction, fraction
