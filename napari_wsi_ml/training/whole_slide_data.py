"""Whole slides as small images: downscaled once, cached on disk, padded white onto a canvas.

A slide is downscaled to ``target_mpp`` (µm per output pixel) or so that its longer side is
``max_size`` pixels, and never beyond ``fit`` ``(width, height)`` (a larger slide is shrunk
further, keeping its aspect ratio). The pixels are read from the coarsest pyramid level that is
still at least as fine as the output (:data:`~napari_wsi_ml.data.resolution.LEVEL_TOLERANCE`)
and resized with antialiasing (:func:`~napari_wsi_ml.data.resolution.resize_patch`,
``INTER_AREA``); a level too large to hold in memory is read and resized in bands.

**Georeference.** Output pixel ``(u, v)`` covers level-0 ``[u·sx, (u+1)·sx) × [v·sy,
(v+1)·sy)`` with ``(sx, sy) = (W0 / w, H0 / h)`` (:attr:`SlideImageSpec.scale`), so continuous
output coordinate ``t`` is level-0 ``t·s``. On a canvas the image sits at the top-left corner
(evaluation; training may move it, see :func:`canvas_batch`).

**Tissue mask.** With a tissue geometry (the cohort's level-0 tissue polygons, which leave out
pen marks and dust), every pixel whose centre lies outside the convex hulls of the tissue
pieces is painted white, so that the model does not see marker ink or debris on the glass.

**Ink mask.** Marker ink drawn across the tissue lies inside those hulls. With ``ink``, every
pixel of blue, green or black ink (:func:`ink_mask`) and its eight neighbours are painted white
as well, on the tissue and off it.

**Cache.** One ``.npy`` (uint8 ``(h, w, 3)``) per slide, output size, tissue mask and ink mask,
named by the slide's content fingerprint, the size, a hash of the tissue polygons and ``i``
for the ink mask (``<fingerprint[:32]>-<w>x<h>[-t<hash>][-i]-v1.npy``): another file,
resolution or mask reads another file. Written to a temporary name, then renamed; read with
``allow_pickle=False``; a file of the wrong shape or an unreadable one is made again.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import shapely
import torch
from shapely.geometry.base import BaseGeometry

from napari_wsi_ml.data.resolution import LEVEL_TOLERANCE, resize_patch
from napari_wsi_ml.errors import ConfigError, SaveError
from napari_wsi_ml.slide import Slide, open_slide

log = logging.getLogger(__name__)

CACHE_VERSION = 1
MAX_READ_PIXELS = 1 << 26
"""Levels with more pixels than this (64 Mpx, 192 MiB RGB) are read in bands of rows."""

INK_GREEN_RATIO = 1.1
INK_GREEN_MARGIN = 3.0
"""Blue and green ink: green ≥ ``INK_GREEN_RATIO`` · red + ``INK_GREEN_MARGIN``."""
INK_BLACK_MAX = 50
INK_BLACK_RANGE = 25
"""Black ink: every channel below ``INK_BLACK_MAX`` and channels within ``INK_BLACK_RANGE``."""


@dataclass(frozen=True)
class SlideImageSpec:
    """The downscaled image of one slide: its size and how it maps to level 0.

    Attributes:
        fingerprint: The slide's content fingerprint.
        level0_size: Level-0 ``(width, height)``.
        size: Output ``(width, height)`` in pixels.
        tissue_key: :func:`tissue_key` of the tissue mask applied, ``""`` for none.
        ink: Whether marker ink is painted white (:func:`ink_mask`).
    """

    fingerprint: str
    level0_size: tuple[int, int]
    size: tuple[int, int]
    tissue_key: str = ""
    ink: bool = False

    @property
    def scale(self) -> tuple[float, float]:
        """Level-0 pixels per output pixel ``(x, y)``."""
        return (self.level0_size[0] / self.size[0], self.level0_size[1] / self.size[1])

    @property
    def cache_name(self) -> str:
        """The cache file name: fingerprint, output size, masks, cache version."""
        width, height = self.size
        mask = (f"-t{self.tissue_key}" if self.tissue_key else "") + ("-i" if self.ink else "")
        return f"{self.fingerprint[:32]}-{width}x{height}{mask}-v{CACHE_VERSION}.npy"


def tissue_key(tissue: BaseGeometry) -> str:
    """12 hex characters identifying a tissue geometry (its WKB)."""
    return hashlib.sha256(shapely.to_wkb(tissue, output_dimension=2)).hexdigest()[:12]


def tissue_mask(tissue: BaseGeometry, spec: SlideImageSpec) -> np.ndarray:
    """Boolean ``(h, w)``: output pixels whose centre lies in the convex hull of a tissue piece.

    Hulls, not the pieces themselves: where the tissue detector cut dark stain out of a piece
    (taking it for marker ink) — a hole or a bite at the edge — the pixels are kept.
    """
    width, height = spec.size
    sx, sy = spec.scale
    mask = np.zeros((height, width), dtype=np.uint8)
    shift = 4  # sub-pixel vertices: 1/16 px

    def ring(coords: Any) -> np.ndarray:
        xy = np.asarray(coords, dtype=np.float64)[:, :2] / (sx, sy) - 0.5  # pixel-centre units
        return np.round(xy * (1 << shift)).astype(np.int32)

    polygons = getattr(tissue, "geoms", [tissue])
    for polygon in polygons:
        if polygon.is_empty or polygon.geom_type != "Polygon":
            continue
        hull = polygon.convex_hull
        if hull.geom_type == "Polygon":
            cv2.fillPoly(mask, [ring(hull.exterior.coords)], 1, lineType=cv2.LINE_8, shift=shift)
    return mask.astype(bool)


def ink_mask(rgb: np.ndarray) -> np.ndarray:
    """Boolean ``(h, w)``: pixels of blue, green or black marker ink and their 8 neighbours.

    H&E absorbs at least as much green as red light (eosin pink, haematoxylin purple), so its
    green channel is never well above its red one; blue and green inks absorb red most, alone
    or over tissue. Black ink is darker and greyer than any stained tissue. Unlike the hue rule
    of tissue detection (:func:`napari_wsi_ml.slide.tissue.pen_mask`), no dense haematoxylin
    (dark blue-purple tumour) qualifies. Red ink is not detected (it looks like eosin). The
    neighbours catch the anti-aliased rim of a stroke.
    """
    pixels = np.asarray(rgb)[..., :3].astype(np.float32)
    red, green = pixels[..., 0], pixels[..., 1]
    brightest, darkest = pixels.max(axis=-1), pixels.min(axis=-1)
    coloured = green >= INK_GREEN_RATIO * red + INK_GREEN_MARGIN
    black = (brightest < INK_BLACK_MAX) & (brightest - darkest < INK_BLACK_RANGE)
    found = (coloured | black).astype(np.uint8)
    return cv2.dilate(found, np.ones((3, 3), np.uint8)).astype(bool)


def output_size(
    level0_size: tuple[int, int],
    *,
    mpp: tuple[float, float] | None,
    target_mpp: float | None = None,
    max_size: int | None = None,
    fit: tuple[int, int] | None = None,
) -> tuple[int, int]:
    """Output ``(width, height)`` of a slide of ``level0_size`` (see the module docstring).

    Raises:
        ConfigError: Neither or both of ``target_mpp`` and ``max_size``, or ``target_mpp``
            on a slide whose resolution is unknown.
    """
    if (target_mpp is None) == (max_size is None):
        raise ConfigError("give exactly one of target_mpp (µm/px) and max_size (px).")
    width, height = level0_size
    if target_mpp is not None:
        if mpp is None:
            raise ConfigError(
                f"the slide does not record its resolution (µm per pixel), so it cannot be "
                f"downscaled to {target_mpp:g} µm/px; use max_size (px) instead."
            )
        factors = [target_mpp / mpp[0], target_mpp / mpp[1]]
    else:
        factor = max(width, height) / max_size  # type: ignore[operator]
        factors = [factor, factor]
    if fit is not None:
        shrink = max(width / factors[0] / fit[0], height / factors[1] / fit[1], 1.0)
        factors = [f * shrink for f in factors]
    out = [max(1, round(width / factors[0])), max(1, round(height / factors[1]))]
    if fit is not None:
        out = [min(out[0], fit[0]), min(out[1], fit[1])]
    return (out[0], out[1])


def downscale_slide(
    slide: Slide, size: tuple[int, int], *, max_read_pixels: int = MAX_READ_PIXELS
) -> np.ndarray:
    """The whole slide resized to ``size`` ``(width, height)``: uint8 ``(h, w, 3)``.

    Reads the coarsest level at least as fine as the output; when that level has more than
    ``max_read_pixels`` pixels, in bands of rows, each resized to the output width, then the
    stacked rows to the output height (equal to one resize up to rounding, ±1).
    """
    width0, height0 = slide.level_dimensions[0]
    downsample = min(width0 / size[0], height0 / size[1])
    level = slide.best_level_for_downsample(downsample * (1 + LEVEL_TOLERANCE))
    level_w, level_h = slide.level_dimensions[level]
    if level_w * level_h <= max_read_pixels:
        region = slide.read_region((0, 0), level, (level_w, level_h))
        return np.ascontiguousarray(resize_patch(region, size))
    # Area resizing is separable: resize the rows band by band, then the columns at once.
    rows = np.empty((level_h, size[0], 3), dtype=np.uint8)
    step = max(1, max_read_pixels // level_w)
    level_ds = slide.level_downsamples[level]
    for top in range(0, level_h, step):
        height = min(step, level_h - top)
        band = slide.read_region((0, round(top * level_ds)), level, (level_w, height))
        rows[top : top + height] = resize_patch(band, (size[0], height))
    return np.ascontiguousarray(resize_patch(rows, size))


class SlideImageCache:
    """Downscaled slides on disk (see the module docstring).

    Args:
        folder: Cache folder (created when needed).
    """

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        self.folder = Path(folder)

    def path(self, spec: SlideImageSpec) -> Path:
        """Where the image of ``spec`` is (or will be) stored."""
        return self.folder / spec.cache_name

    def load(self, spec: SlideImageSpec, *, mmap: bool = True) -> np.ndarray | None:
        """The cached image, or None when missing, unreadable or of the wrong shape."""
        path = self.path(spec)
        if not path.is_file():
            return None
        try:
            image = np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
        except (OSError, ValueError) as error:
            log.warning("unreadable cached slide image %s (%s); making it again", path, error)
            return None
        expected = (spec.size[1], spec.size[0], 3)
        if image.shape != expected or image.dtype != np.uint8:
            log.warning("cached slide image %s is %s %s, not %s", path, image.shape, image.dtype,
                        expected)  # fmt: skip
            return None
        return image

    def store(self, spec: SlideImageSpec, image: np.ndarray) -> Path:
        """Write ``image`` for ``spec`` atomically; returns its path."""
        target = self.path(spec)
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{target.stem}.", suffix=".npy", dir=self.folder)
            try:
                with os.fdopen(fd, "wb") as handle:
                    np.save(handle, np.ascontiguousarray(image, dtype=np.uint8))
                os.replace(tmp, target)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        except OSError as error:
            raise SaveError(
                f"{target}: cannot write the downscaled slide ({error}); check the cache folder "
                "(whole_slide_cnn.cache_dir) and free disk space."
            ) from error
        return target

    def get(
        self,
        spec: SlideImageSpec,
        slide_path: str | os.PathLike[str],
        tissue: BaseGeometry | None = None,
    ) -> np.ndarray:
        """The cached image of ``spec``, made from ``slide_path`` first when needed.

        ``tissue`` (level-0 polygons) is required when ``spec.tissue_key`` is set: pixels
        outside it are painted white; with ``spec.ink``, marker ink is painted white too.
        """
        image = self.load(spec)
        if image is not None:
            return image
        with open_slide(slide_path) as slide:
            if slide.fingerprint != spec.fingerprint:
                raise ConfigError(
                    f"slide '{slide_path}' changed since the cohort was read (fingerprint "
                    "differs); start the run again."
                )
            image = downscale_slide(slide, spec.size)
        if spec.tissue_key:
            if tissue is None or tissue_key(tissue) != spec.tissue_key:
                raise ValueError("the tissue geometry does not match spec.tissue_key")
            image[~tissue_mask(tissue, spec)] = 255
        if spec.ink:
            image[ink_mask(image)] = 255
        self.store(spec, image)
        return image


def canvas_size(
    sizes: Sequence[tuple[int, int]], *, canvas: int | None, multiple: int
) -> tuple[int, int]:
    """``(width, height)`` of the canvas: ``canvas`` square, or the largest size rounded up."""
    if canvas is not None:
        return (canvas, canvas)
    width = max(s[0] for s in sizes)
    height = max(s[1] for s in sizes)
    return (-(-width // multiple) * multiple, -(-height // multiple) * multiple)


def canvas_batch(
    images: Sequence[np.ndarray],
    size: tuple[int, int],
    *,
    offsets: Sequence[tuple[int, int]] | None = None,
) -> torch.Tensor:
    """``(N, 3, H, W)`` uint8: each image on a white canvas of ``size`` ``(width, height)``.

    Args:
        images: ``(h, w, 3)`` uint8 images, each at most ``size``.
        size: Canvas ``(width, height)``.
        offsets: Top-left ``(x, y)`` of each image on its canvas (default ``(0, 0)``).
    """
    width, height = size
    batch = np.full((len(images), height, width, 3), 255, dtype=np.uint8)
    for index, image in enumerate(images):
        h, w = image.shape[:2]
        if w > width or h > height:
            raise ValueError(f"image {w}×{h} does not fit on a {width}×{height} canvas")
        x, y = offsets[index] if offsets is not None else (0, 0)
        batch[index, y : y + h, x : x + w] = image
    return torch.from_numpy(batch).permute(0, 3, 1, 2).contiguous()
