"""Quality control: a georeferenced mask of background, blur and marker ink per slide.

:func:`quality_mask` works on a low-resolution image (about ``qc_mpp`` µm/px) for background
(all RGB > 220) and marker ink (:func:`napari_wsi_ml.slide.tissue.pen_mask`, which also catches
black debris), and on a mid-resolution level (about ``focus_mpp`` µm/px) for blur. The focus
measure of a tile is the variance of the Laplacian of its grey values divided by their variance
(over tissue pixels away from the tissue's edge and from ink): contrast-normalised, so that
pale stroma and dark tumour score alike. Sharp H&E tissue at 1 µm/px scores about 6–25 on
synthetic slides, tissue blurred with σ = 2 µm below 2; a tile is blurred below
``blur_threshold`` (or below ``blur_relative`` × the slide's median, when given).

Sampling excludes the flagged area (:meth:`QCMask.polygons`); napari shows :attr:`QCMask.flags`
scaled by :attr:`QCMask.downsample` (level-0 pixels per mask pixel).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import cv2
import numpy as np
from shapely.geometry.base import BaseGeometry

from napari_wsi_ml.slide.tissue import WHITE_THRESHOLD, mask_to_polygons, pen_mask

if TYPE_CHECKING:
    from napari_wsi_ml.slide import Slide

QC_FLAGS: dict[str, int] = {"background": 1, "blur": 2, "pen": 4}
"""Bit of each QC flag in :attr:`QCMask.flags`."""

EXCLUDED_BY_DEFAULT = ("blur", "pen")
"""Flags that sampling excludes (background is already outside the tissue polygons)."""


@dataclass(frozen=True)
class QCMask:
    """Quality-control flags of one slide on a regular grid.

    Attributes:
        flags: ``(rows, cols)`` uint8 bit set of :data:`QC_FLAGS` per mask pixel.
        downsample: Level-0 pixels per mask pixel ``(x, y)``; mask pixel ``(col, row)`` covers
            level-0 ``[col·dx, (col+1)·dx) × [row·dy, (row+1)·dy)``.
        slide_size: Level-0 ``(width, height)``.
        focus: ``(rows, cols)`` float32 focus measure at mask resolution (NaN where not
            measured: background, slide edges).
        focus_level: The level the focus measure was computed on.
    """

    flags: np.ndarray
    downsample: tuple[float, float]
    slide_size: tuple[int, int]
    focus: np.ndarray
    focus_level: int

    def mask(self, kinds: tuple[str, ...] | str = EXCLUDED_BY_DEFAULT) -> np.ndarray:
        """Boolean ``(rows, cols)``: mask pixels with any of the flags ``kinds``."""
        kinds = (kinds,) if isinstance(kinds, str) else kinds
        bits = 0
        for kind in kinds:
            if kind not in QC_FLAGS:
                raise ValueError(f"unknown QC flag {kind!r}; known: {', '.join(QC_FLAGS)}")
            bits |= QC_FLAGS[kind]
        return (self.flags & bits) != 0

    def polygons(self, kinds: tuple[str, ...] | str = EXCLUDED_BY_DEFAULT) -> BaseGeometry:
        """The flagged area as level-0 shapely polygons (empty when nothing is flagged)."""
        return mask_to_polygons(self.mask(kinds), downsample=self.downsample)

    def fraction(self, kind: str) -> float:
        """Fraction of the mask pixels flagged ``kind``."""
        return float(self.mask(kind).mean()) if self.flags.size else 0.0


def _level_near(slide: Slide, mpp: float, fallback_downsample: float) -> int:
    """The coarsest level at least as fine as ``mpp`` (or as ``fallback_downsample``)."""
    downsample = mpp / min(slide.mpp) if slide.mpp is not None else fallback_downsample
    return slide.best_level_for_downsample(max(downsample, 1.0))


def quality_mask(
    slide: Slide,
    *,
    qc_mpp: float = 8.0,
    focus_mpp: float = 1.0,
    focus_tile: int = 64,
    blur_threshold: float = 4.0,
    blur_relative: float = 0.0,
    min_tissue: float = 0.5,
    white_threshold: int = WHITE_THRESHOLD,
) -> QCMask:
    """Compute the QC mask of ``slide``.

    Args:
        slide: The slide.
        qc_mpp: Resolution of the mask (µm/px); without a known mpp, level downsample 32.
        focus_mpp: Resolution the focus is measured at; without a known mpp, downsample 4.
        focus_tile: Side of the focus tiles, in pixels of the focus level.
        blur_threshold: A tissue tile is blurred below this focus measure.
        blur_relative: A tile is also blurred below this × the median tissue-tile focus.
        min_tissue: Fraction of non-background pixels a tile needs to be measured.
        white_threshold: Background is every pixel whose three channels exceed this.
    """
    width, height = slide.level_dimensions[0]
    low = _level_near(slide, qc_mpp, 32.0)
    image = np.asarray(slide.levels[low])
    rows, cols = image.shape[:2]
    downsample = (width / cols, height / rows)
    background = np.all(image > white_threshold, axis=2)
    flags = background.astype(np.uint8) * QC_FLAGS["background"]
    flags |= pen_mask(image).astype(np.uint8) * QC_FLAGS["pen"]
    focus_level = _level_near(slide, focus_mpp, 4.0)
    focus, measured = _focus_grid(slide, focus_level, focus_tile, white_threshold, min_tissue)
    blurred = _blurred_tiles(focus, measured, blur_threshold, blur_relative)
    # map focus tiles onto mask pixels by their level-0 centres
    tile_l0 = focus_tile * slide.level_downsamples[focus_level]
    centre_x = ((np.arange(cols) + 0.5) * downsample[0] // tile_l0).astype(np.int64)
    centre_y = ((np.arange(rows) + 0.5) * downsample[1] // tile_l0).astype(np.int64)
    centre_x = np.minimum(centre_x, focus.shape[1] - 1)
    centre_y = np.minimum(centre_y, focus.shape[0] - 1)
    focus_px = focus[np.ix_(centre_y, centre_x)].astype(np.float32)
    blurred_px = blurred[np.ix_(centre_y, centre_x)] & ~background
    flags |= blurred_px.astype(np.uint8) * QC_FLAGS["blur"]
    return QCMask(flags, downsample, (width, height), focus_px, focus_level)


def _focus_grid(
    slide: Slide, level: int, tile: int, white_threshold: int, min_tissue: float
) -> tuple[np.ndarray, np.ndarray]:
    """Focus measure of every ``tile``-pixel tile of ``level``, and which tiles were measured.

    The Laplacian's variance is taken over tissue pixels only, away from the tissue's edge
    (eroded by 2 pixels) and without marker ink, so the contrast between tissue and glass
    or ink does not count as focus, nor the smooth ink as blur.
    """
    level_w, level_h = slide.level_dimensions[level]
    tiles_x, tiles_y = -(-level_w // tile), -(-level_h // tile)
    focus = np.full((tiles_y, tiles_x), np.nan)
    array = slide.levels[level]
    band_rows = max(1, 2048 // tile)
    kernel = np.ones((5, 5), np.uint8)
    for ty0 in range(0, tiles_y, band_rows):  # bands bound the memory on large slides
        y0, y1 = ty0 * tile, min(level_h, (ty0 + band_rows) * tile)
        band = np.asarray(array[y0:y1])
        grey = cv2.cvtColor(band, cv2.COLOR_RGB2GRAY).astype(np.float32)
        laplacian = cv2.Laplacian(grey, cv2.CV_32F, ksize=3)
        tissue = (~np.all(band > white_threshold, axis=2) & ~pen_mask(band)).astype(np.uint8)
        inner = cv2.erode(tissue, kernel).astype(bool)
        for ty in range(ty0, min(tiles_y, ty0 + band_rows)):
            ya, yb = ty * tile - y0, min(level_h, (ty + 1) * tile) - y0
            for tx in range(tiles_x):
                xa, xb = tx * tile, min(level_w, (tx + 1) * tile)
                keep = inner[ya:yb, xa:xb]
                if keep.sum() < max(16, min_tissue * tile * tile):
                    continue
                grey_var = float(grey[ya:yb, xa:xb][keep].var())
                focus[ty, tx] = float(laplacian[ya:yb, xa:xb][keep].var()) / (grey_var + 1.0)
    return focus, np.isfinite(focus)


def _blurred_tiles(
    focus: np.ndarray, measured: np.ndarray, threshold: float, relative: float
) -> np.ndarray:
    blurred = np.zeros(focus.shape, dtype=bool)
    if not measured.any():
        return blurred
    threshold = max(threshold, relative * float(np.median(focus[measured])))
    blurred[measured] = focus[measured] < threshold
    return blurred
