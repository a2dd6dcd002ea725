"""The grid of patches a heatmap scores: how each patch is read, where it lies, which are tissue.

Cell ``(i, j)`` is the patch whose level-0 top-left corner is ``(j · stride_x, i · stride_y)``
(origin ``(0, 0)``, as :func:`napari_wsi_ml.data.grid_corners`), of ``plan.extent`` level-0
pixels; only patches fully inside the slide make the grid. The stride is snapped to whole
pixels of the read level (:meth:`~napari_wsi_ml.data.ReadPlan.level0_stride`). Coordinates are
level-0 ``(x, y)``, sizes ``(width, height)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from shapely.geometry.base import BaseGeometry

from napari_wsi_ml.data.resolution import LEVEL_TOLERANCE, ReadPlan, plan_patch_read
from napari_wsi_ml.data.sampling import tissue_index
from napari_wsi_ml.errors import ConfigError

if TYPE_CHECKING:
    from napari_wsi_ml.slide import Slide

TISSUE_ROWS_PER_STEP = 256
"""Grid rows whose tissue fractions are computed together (bounds the temporary arrays)."""


def scoring_plan(
    slide: Slide,
    patch_size: int,
    mpp: float | None = None,
    *,
    level: int | None = None,
    slide_mpp: float | tuple[float, float] | None = None,
) -> ReadPlan:
    """How to read ``patch_size`` px patches at ``mpp`` µm/px (or at ``level``'s resolution).

    Args:
        slide: The slide.
        patch_size: Patch side in output pixels.
        mpp: Target µm per output pixel, read from the nearest finer level and resized
            (:func:`~napari_wsi_ml.data.plan_patch_read`). None: the resolution of ``level``
            (level 0 when ``level`` is None too), no resize.
        level: Pyramid level to read from. With ``mpp`` it must be at least as fine as the
            target (the pixels are then resized from it).
        slide_mpp: µm per level-0 pixel to use when the slide does not record it.

    Raises:
        ConfigError: A level the slide does not have, a level coarser than ``mpp``, or an
            ``mpp`` the slide's resolution cannot give.
    """
    if level is not None and not 0 <= level < slide.level_count:
        raise ConfigError(
            f"Slide '{slide.path}' has no level {level} (levels 0..{slide.level_count - 1})."
        )
    if mpp is None:
        level = 0 if level is None else level
        level_ds = float(slide.level_downsamples[level])
        extent = max(1, round(patch_size * level_ds))
        known = slide.mpp if slide_mpp is None else _mpp_pair(slide_mpp)
        target = None if known is None else (known[0] * level_ds, known[1] * level_ds)
        return ReadPlan(
            level, level_ds, (patch_size,) * 2, (patch_size,) * 2, (extent,) * 2,
            (level_ds, level_ds), target, known,
        )  # fmt: skip
    plan = plan_patch_read(slide, patch_size=patch_size, target_mpp=mpp, mpp_override=slide_mpp)
    if level is None or level == plan.level:
        return plan
    level_ds = float(slide.level_downsamples[level])
    if level_ds > min(plan.downsample) * (1 + LEVEL_TOLERANCE):
        raise ConfigError(
            f"Level {level} of slide '{slide.path}' (downsample {level_ds:.4g}) is coarser than "
            f"{mpp:g} µm/px; read from a finer level, or leave level out."
        )
    read = tuple(max(1, round(patch_size * ds / level_ds)) for ds in plan.downsample)
    extent = (round(read[0] * level_ds), round(read[1] * level_ds))
    return ReadPlan(
        level, level_ds, read, plan.patch_size, extent, plan.downsample, plan.target_mpp,
        plan.slide_mpp,
    )  # type: ignore[arg-type]  # fmt: skip


def _mpp_pair(value: float | tuple[float, float]) -> tuple[float, float]:
    pair = (value, value) if isinstance(value, (int, float)) else tuple(value)
    return (float(pair[0]), float(pair[1]))


@dataclass(frozen=True)
class ScoringGrid:
    """The regular grid of patches over one slide.

    Attributes:
        plan: How each patch is read.
        stride: Level-0 step ``(x, y)`` between neighbouring cells.
        shape: ``(rows, cols)``.
    """

    plan: ReadPlan
    stride: tuple[int, int]
    shape: tuple[int, int]

    @classmethod
    def over(cls, slide_size: tuple[int, int], plan: ReadPlan, stride: int | None) -> ScoringGrid:
        """The grid of ``plan``'s patches inside a slide of level-0 ``slide_size``.

        ``stride`` is in output pixels (None: the patch size, no overlap).

        Raises:
            ConfigError: The patch does not fit in the slide.
        """
        sx, sy = plan.level0_stride(stride)
        ex, ey = plan.extent
        cols = (slide_size[0] - ex) // sx + 1
        rows = (slide_size[1] - ey) // sy + 1
        if ex > slide_size[0] or ey > slide_size[1] or rows <= 0 or cols <= 0:
            raise ConfigError(
                f"A patch of {ex}x{ey} level-0 px does not fit in a {slide_size[0]}x"
                f"{slide_size[1]} slide; use smaller patches or a finer resolution."
            )
        return cls(plan, (sx, sy), (rows, cols))

    @property
    def extent(self) -> tuple[int, int]:
        """Level-0 ``(width, height)`` of every patch."""
        return self.plan.extent

    def corners(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """Level-0 top-left corners ``(N, 2)`` int64 of cells ``(rows[k], cols[k])``."""
        rows, cols = np.asarray(rows, np.int64), np.asarray(cols, np.int64)
        return np.column_stack([cols * self.stride[0], rows * self.stride[1]])

    def tissue_cells(
        self,
        slide: Slide,
        min_tissue: float,
        *,
        tissue: BaseGeometry | None = None,
    ) -> np.ndarray:
        """Boolean ``(rows, cols)``: cells whose patch is at least ``min_tissue`` tissue.

        Fractions come from :class:`~napari_wsi_ml.data.tissue_index.TissueIndex` (the same
        test as :func:`~napari_wsi_ml.data.grid_patches`), a band of rows at a time. With
        ``min_tissue <= 0`` every cell is kept.
        """
        rows, cols = self.shape
        if min_tissue <= 0:
            return np.ones(self.shape, dtype=bool)
        index = tissue_index(slide, self.plan, tissue=tissue)
        keep = np.zeros(self.shape, dtype=bool)
        all_cols = np.arange(cols)
        for start in range(0, rows, TISSUE_ROWS_PER_STEP):
            band = np.arange(start, min(rows, start + TISSUE_ROWS_PER_STEP))
            rr, cc = np.meshgrid(band, all_cols, indexing="ij")
            accepted, _ = index.meets(self.corners(rr.ravel(), cc.ravel()), self.extent, min_tissue)
            keep[band] = accepted.reshape(len(band), cols)
        return keep

    def blocks(self, cells_per_side: tuple[int, int]) -> list[tuple[slice, slice]]:
        """Row-major blocks ``(row slice, col slice)`` of at most ``cells_per_side`` cells."""
        rows, cols = self.shape
        step_r, step_c = cells_per_side
        return [
            (slice(r, min(rows, r + step_r)), slice(c, min(cols, c + step_c)))
            for r in range(0, rows, step_r)
            for c in range(0, cols, step_c)
        ]

    def cells_per_region(self, region_px: int) -> tuple[int, int]:
        """Block size ``(rows, cols)`` whose region is about ``region_px`` read-level px a side.

        When patches are far apart (stride area over twice the patch area), every patch is
        read on its own: a shared region would mostly hold unused pixels.
        """
        (sx, sy), (ex, ey) = self.stride, self.extent
        if sx * sy > 2 * ex * ey:
            return (1, 1)
        side = region_px * self.plan.level_downsample
        cols = max(1, math.floor((side - ex) / sx) + 1)
        rows = max(1, math.floor((side - ey) / sy) + 1)
        return (rows, cols)
