"""The analysis grid: cells in level-0 pixels, and each rater's class per cell.

A cell gets, per rater, the class covering most of it, or background when the uncovered part
(inside the region of interest) is larger; ties go to background, then to the first class.
Cells less than half inside the region of interest (e.g. tissue) are not rated.

Coverage is measured in one of two ways:
    * ``exact``: shapely intersection areas of every cell with every region (small grids).
    * ``raster``: each cell is sampled at ``s × s`` sub-cell points (pixel centres of an
      OpenCV polygon fill, boundary pixels decided by an exact point-in-polygon test), so a
      cell's coverage is exact to 1/s² of its area; ``s`` is chosen so the raster stays
      under ~16 M samples (s = 4 for 1 M cells, 16 for small grids).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import cv2
import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry

from napari_wsi_ml.agreement import geometry as geo
from napari_wsi_ml.agreement.inputs import BACKGROUND, RaterInput
from napari_wsi_ml.errors import AgreementInputError

RASTER_BUDGET = 1 << 24
EXACT_MAX_CELLS = 4096


@dataclass(frozen=True)
class Grid:
    """Cells of ``cell_w × cell_h`` level-0 px; cell (r, c) spans ``x0 + c·cell_w`` ..."""

    x0: float
    y0: float
    cell_w: float
    cell_h: float
    rows: int
    cols: int

    @property
    def n_cells(self) -> int:
        """Number of cells."""
        return self.rows * self.cols

    def boxes(self) -> np.ndarray:
        """Every cell as a shapely box, row-major."""
        r, c = np.divmod(np.arange(self.n_cells), self.cols)
        x = self.x0 + c * self.cell_w
        y = self.y0 + r * self.cell_h
        return shapely.box(x, y, x + self.cell_w, y + self.cell_h)

    def to_json(self) -> dict[str, float | int]:
        """Plain-dict description."""
        return {
            "x0": self.x0,
            "y0": self.y0,
            "cell_w": self.cell_w,
            "cell_h": self.cell_h,
            "rows": self.rows,
            "cols": self.cols,
        }


def make_grid(
    size: float,
    *,
    units: str = "px",
    mpp: tuple[float, float] | None = None,
    extent: tuple[float, float] | None = None,
    bounds: tuple[float, float, float, float] | None = None,
) -> Grid:
    """A grid aligned on level-0 (0, 0) covering the slide ``extent`` (w, h) or ``bounds``.

    Raises:
        AgreementInputError: Size in µm without the slide's mpp, or a non-positive size.
    """
    if size <= 0:
        raise AgreementInputError(f"grid cell size must be positive, got {size}")
    if units == "um":
        if mpp is None:
            raise AgreementInputError(
                "grid size in µm needs the slide's microns per pixel, which is unknown; "
                "give the size in pixels (--grid-units px)"
            )
        cell_w, cell_h = size / mpp[0], size / mpp[1]
    elif units == "px":
        cell_w = cell_h = float(size)
    else:
        raise AgreementInputError(f"grid units must be 'px' or 'um', got {units!r}")
    if extent is not None:
        minx, miny, maxx, maxy = 0.0, 0.0, float(extent[0]), float(extent[1])
    elif bounds is not None:
        minx, miny, maxx, maxy = bounds
    else:
        raise AgreementInputError("the grid needs the slide size or the annotations' bounds")
    x0 = math.floor(minx / cell_w) * cell_w
    y0 = math.floor(miny / cell_h) * cell_h
    cols = max(1, math.ceil((maxx - x0) / cell_w))
    rows = max(1, math.ceil((maxy - y0) / cell_h))
    return Grid(x0, y0, cell_w, cell_h, rows, cols)


@dataclass
class GridData:
    """Per-cell ratings of every rater.

    Attributes:
        grid: The grid.
        categories: ``["background", *classes]``; a label is an index into it.
        labels: ``(R, rows, cols)`` int, -1 where the cell is not rated.
        valid: ``(rows, cols)`` cells inside the region of interest.
        coverage: ``(R, K, rows, cols)`` covered fraction of each cell by each class.
        pair_intersection: ``(i, j) -> (K, rows, cols)`` fraction covered by both raters.
        method: How coverage was measured.
    """

    grid: Grid
    categories: list[str]
    labels: np.ndarray
    valid: np.ndarray
    coverage: np.ndarray
    pair_intersection: dict[tuple[int, int], np.ndarray] = field(default_factory=dict)
    method: str = ""

    def ratings(self) -> np.ndarray:
        """``(n_valid_cells, R)`` labels of the rated cells."""
        return self.labels[:, self.valid].T


class _Raster:
    """Sub-cell sampling of geometries onto the grid."""

    def __init__(self, grid: Grid, sub: int) -> None:
        self.grid, self.sub = grid, sub
        self.shape = (grid.rows * sub, grid.cols * sub)
        self.px = (grid.cell_w / sub, grid.cell_h / sub)

    def mask(self, geometry: BaseGeometry) -> np.ndarray:
        out = np.zeros(self.shape, np.uint8)
        polys = geo.parts(geometry)
        if polys.size == 0:
            return out.astype(bool)
        g = self.grid
        local = shapely.transform(
            polys, lambda c: (c - (g.x0, g.y0)) / self.px
        )  # raster coordinates: pixel k spans [k, k+1)
        rings = list(shapely.get_exterior_ring(local))
        for poly, n in zip(local, shapely.get_num_interior_rings(local), strict=True):
            rings.extend(shapely.get_interior_ring(poly, k) for k in range(n))
        coords, index = shapely.get_coordinates(np.asarray(rings), return_index=True)
        fixed = np.round((coords - 0.5) * 16).astype(np.int32)
        contours = np.split(fixed, np.flatnonzero(np.diff(index)) + 1)
        cv2.fillPoly(out, contours, 1, shift=4)
        edge = np.zeros(self.shape, np.uint8)
        cv2.polylines(edge, contours, True, 1, shift=4)
        ys, xs = np.nonzero(edge)
        merged = shapely.MultiPolygon(list(local))  # parts are disjoint: valid as is
        shapely.prepare(merged)
        out[ys, xs] = shapely.contains_xy(merged, xs + 0.5, ys + 0.5)
        return out.astype(bool)

    def fraction(self, mask: np.ndarray) -> np.ndarray:
        g, s = self.grid, self.sub
        counts = mask.reshape(g.rows, s, g.cols, s).sum(axis=(1, 3), dtype=np.int32)
        return (counts / (s * s)).astype(np.float32)


def _exact_fraction(grid: Grid, geometry: BaseGeometry, boxes: np.ndarray) -> np.ndarray:
    out = np.zeros(grid.n_cells, np.float32)
    polys = geo.parts(geometry)
    if polys.size:
        cell, part = shapely.STRtree(polys).query(boxes, predicate="intersects")
        areas = shapely.area(shapely.intersection(boxes[cell], polys[part]))
        np.add.at(out, cell, areas / (grid.cell_w * grid.cell_h))
    return out.reshape(grid.rows, grid.cols)


def rate_cells(data: RaterInput, grid: Grid, *, method: str = "auto") -> GridData:
    """Each rater's class per cell, plus coverage and pairwise overlap fractions.

    Args:
        data: Prepared raters (regions already clipped to the region of interest).
        grid: The grid.
        method: ``"exact"``, ``"raster"`` or ``"auto"`` (exact up to 4096 cells).
    """
    if method == "auto":
        method = "exact" if grid.n_cells <= EXACT_MAX_CELLS else "raster"
    if method not in ("exact", "raster"):
        raise AgreementInputError(f"grid method must be exact, raster or auto, got {method!r}")
    n, k = len(data.raters), len(data.classes)
    shape = (grid.rows, grid.cols)
    coverage = np.zeros((n, k, *shape), np.float32)
    covered = np.zeros((n, *shape), np.float32)
    pairs = {(i, j): np.zeros((k, *shape), np.float32) for i in range(n) for j in range(i + 1, n)}
    if method == "exact":
        boxes = grid.boxes()
        label = "exact cell areas"
        region = (
            np.ones(shape, np.float32)
            if data.region is None
            else _exact_fraction(grid, data.region, boxes)
        )
        for ci, cls in enumerate(data.classes):
            for i, rater in enumerate(data.raters):
                coverage[i, ci] = _exact_fraction(grid, rater.region(cls), boxes)
            for i, j in pairs:
                both = geo.polygon_parts(data.pair_pieces(i, j, cls)[2])
                pairs[i, j][ci] = _exact_fraction(grid, shapely.MultiPolygon(list(both)), boxes)
        for i, rater in enumerate(data.raters):
            every = geo.union(np.concatenate([rater.parts(c) for c in data.classes]))
            covered[i] = _exact_fraction(grid, every, boxes)
    else:
        sub = int(min(16, max(1, math.isqrt(RASTER_BUDGET // max(grid.n_cells, 1)))))
        raster = _Raster(grid, sub)
        label = f"raster, {sub}x{sub} samples per cell"
        region = (
            np.ones(shape, np.float32)
            if data.region is None
            else raster.fraction(raster.mask(data.region))
        )
        any_mask = [np.zeros(raster.shape, bool) for _ in range(n)]
        for ci, cls in enumerate(data.classes):
            masks = [raster.mask(r.region(cls)) for r in data.raters]
            for i, mask in enumerate(masks):
                coverage[i, ci] = raster.fraction(mask)
                any_mask[i] |= mask
            for i, j in pairs:
                pairs[i, j][ci] = raster.fraction(masks[i] & masks[j])
        for i in range(n):
            covered[i] = raster.fraction(any_mask[i])
    valid = region >= 0.5
    labels = np.full((n, *shape), -1, np.int64)
    for i in range(n):
        scores = np.concatenate([np.maximum(region - covered[i], 0)[None], coverage[i]], axis=0)
        labels[i] = np.where(valid, np.argmax(scores, axis=0), -1)
    return GridData(grid, [BACKGROUND, *data.classes], labels, valid, coverage, pairs, label)
