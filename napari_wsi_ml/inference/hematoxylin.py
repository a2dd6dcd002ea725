"""A stain measure as a heatmap: mean hematoxylin optical density per patch, on tissue.

Not a model: it colour-deconvolves a low-resolution level (Ruifrok & Johnston's H&E-DAB
matrix, :func:`skimage.color.rgb2hed`) and averages the hematoxylin channel over each patch.
Nucleus-dense regions (e.g. tumour) score high; background scores NaN.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from skimage.color import rgb2hed

from napari_wsi_ml.inference.heatmap import Heatmap

if TYPE_CHECKING:
    from napari_wsi_ml.slide import Slide

RUN_ID = "hematoxylin-density"
BACKGROUND_MIN = 220  # a pixel whose R, G and B all exceed this is background (glass)


def _integral(image: np.ndarray) -> np.ndarray:
    """Summed-area table with a leading row and column of zeros."""
    table = np.zeros((image.shape[0] + 1, image.shape[1] + 1), dtype=np.float64)
    table[1:, 1:] = image.cumsum(axis=0).cumsum(axis=1)
    return table


def _box_sums(table: np.ndarray, r0: np.ndarray, r1: np.ndarray, c0: np.ndarray, c1: np.ndarray):
    """Sums of the boxes ``[r0, r1) x [c0, c1)`` (broadcast) from a summed-area table."""
    return table[r1, c1] - table[r0, c1] - table[r1, c0] + table[r0, c0]


def _default_level(slide: Slide, stride: float) -> int:
    """The lowest-resolution level that still has about 4 pixels per stride."""
    return int(slide.best_level_for_downsample(max(1.0, stride / 4.0)))


def hematoxylin_density_heatmap(
    slide: Slide,
    patch_size: int,
    stride: int | None = None,
    *,
    level: int | None = None,
    min_tissue_fraction: float = 0.4,
) -> Heatmap:
    """Mean hematoxylin optical density of every patch of a grid over the slide.

    Args:
        slide: An open slide.
        patch_size: Patch side in level-0 pixels.
        stride: Step between patches in level-0 pixels (default: ``patch_size``).
        level: Pyramid level to measure on (default: the lowest resolution with ≥ 4 px per
            stride). Patch bounds are mapped to it with the level's own downsample.
        min_tissue_fraction: Patches with less non-background area are NaN.

    Returns:
        A one-channel :class:`Heatmap` (``"hematoxylin"``) with origin ``(0, 0)``, covering
        every patch that lies fully inside level 0.
    """
    stride = patch_size if stride is None else stride
    width, height = slide.level_dimensions[0]
    cols = (width - patch_size) // stride + 1
    rows = (height - patch_size) // stride + 1
    if patch_size <= 0 or stride <= 0 or cols <= 0 or rows <= 0:
        raise ValueError(
            f"patch size {patch_size} / stride {stride} do not fit in a {width}x{height} slide"
        )
    level = _default_level(slide, stride) if level is None else level
    rgb = np.asarray(slide.levels[level])
    downsample = float(slide.level_downsamples[level])
    tissue = ~np.all(rgb > BACKGROUND_MIN, axis=-1)
    density = np.clip(rgb2hed(rgb)[..., 0], 0.0, None) * tissue
    tissue_table, density_table = _integral(tissue.astype(np.float64)), _integral(density)

    def bounds(starts: np.ndarray, limit: int) -> tuple[np.ndarray, np.ndarray]:
        lo = np.clip(np.floor(starts / downsample).astype(int), 0, limit - 1)
        hi = np.clip(np.ceil((starts + patch_size) / downsample).astype(int), lo + 1, limit)
        return lo, hi

    c0, c1 = bounds(np.arange(cols) * stride, rgb.shape[1])
    r0, r1 = bounds(np.arange(rows) * stride, rgb.shape[0])
    r0, r1, c0, c1 = r0[:, None], r1[:, None], c0[None, :], c1[None, :]
    area = (r1 - r0) * (c1 - c0)
    tissue_px = _box_sums(tissue_table, r0, r1, c0, c1)
    mean_density = _box_sums(density_table, r0, r1, c0, c1) / np.maximum(tissue_px, 1.0)
    values = np.where(tissue_px / area >= min_tissue_fraction, mean_density, np.nan)
    return Heatmap(
        values=values.astype(np.float32),
        origin=(0.0, 0.0),
        stride=(stride, stride),
        patch_size=(patch_size, patch_size),
        class_names=("hematoxylin",),
        run_id=RUN_ID,
        slide_fingerprint=slide.fingerprint,
        extra={"level": level, "downsample": downsample},
    )
