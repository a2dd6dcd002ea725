"""Patch resolution: which pyramid level to read, how much, and how to resize it.

A patch asked for at a target resolution (µm/px or objective magnification) is read from the
level nearest *above* that resolution (the coarsest level that is still at least as fine) and
resized to the patch size with antialiasing (:func:`resize_patch`, OpenCV ``INTER_AREA``).
Everything that produces patch pixels (sampling previews, datasets, export) goes through
:func:`read_patch`, so exported pixels equal "read the level region, then :func:`resize_patch`".

Coordinates: a patch is addressed by its level-0 top-left corner ``(x, y)``; sizes are
``(width, height)``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import cv2
import numpy as np

from napari_wsi_ml.errors import ConfigError

if TYPE_CHECKING:
    from napari_wsi_ml.slide import Slide

LEVEL_TOLERANCE = 0.01
"""A level counts as "at the target resolution" when its downsample is within 1 % of it."""


@dataclass(frozen=True)
class ReadPlan:
    """How to read one patch of a slide at a target resolution.

    Attributes:
        level: Pyramid level read.
        level_downsample: Level-0 pixels per pixel of that level.
        read_size: ``(width, height)`` read at ``level``, in level pixels.
        patch_size: ``(width, height)`` of the patch handed out, in pixels.
        extent: ``(width, height)`` of the patch's footprint in level-0 pixels
            (``read_size × level_downsample``, rounded).
        downsample: Level-0 pixels per output pixel ``(x, y)`` asked for.
        target_mpp: µm per output pixel ``(x, y)``, or None when the slide's mpp is unknown
            (patches asked for by magnification).
        slide_mpp: µm per level-0 pixel ``(x, y)`` used for the plan (the slide's or the
            override), or None.
    """

    level: int
    level_downsample: float
    read_size: tuple[int, int]
    patch_size: tuple[int, int]
    extent: tuple[int, int]
    downsample: tuple[float, float]
    target_mpp: tuple[float, float] | None
    slide_mpp: tuple[float, float] | None

    @property
    def needs_resize(self) -> bool:
        """Whether the read pixels are resized (read size differs from patch size)."""
        return self.read_size != self.patch_size

    @property
    def alignment(self) -> int:
        """Level-0 grid step on which patch corners fall on whole level pixels."""
        return max(1, round(self.level_downsample))

    def snap(self, xy: np.ndarray) -> np.ndarray:
        """Level-0 corners ``(N, 2)`` rounded to multiples of :attr:`alignment` (int64)."""
        step = self.alignment
        return (np.round(np.asarray(xy, dtype=np.float64) / step) * step).astype(np.int64)

    def level0_stride(self, stride: int | tuple[int, int] | None) -> tuple[int, int]:
        """Level-0 step ``(x, y)`` for a stride in output pixels (None: the patch size).

        Rounded to a multiple of :attr:`alignment` (and at least one), so that every grid
        corner falls on a whole pixel of the read level.
        """
        if stride is None:
            stride = self.patch_size
        pair = (stride, stride) if isinstance(stride, (int, np.integer)) else tuple(stride)
        if len(pair) != 2 or not all(int(v) > 0 for v in pair):
            raise ConfigError(f"stride must be a positive int or (x, y), got {stride!r}.")
        step = self.alignment
        out = []
        for value, extent, size in zip(pair, self.extent, self.patch_size, strict=True):
            level0 = int(value) * extent / size
            out.append(max(step, round(level0 / step) * step))
        return (out[0], out[1])

    def to_dict(self) -> dict:
        """JSON-ready fields (for manifests and run directories)."""
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items()}


def _pair(value: float | Sequence[float], name: str) -> tuple[float, float]:
    if isinstance(value, (int, float)):
        pair = (float(value), float(value))
    else:
        pair = tuple(float(v) for v in value)
    if len(pair) != 2 or not all(math.isfinite(v) and v > 0 for v in pair):
        raise ConfigError(f"{name} must be a positive number or an (x, y) pair, got {value!r}.")
    return pair  # type: ignore[return-value]


def _base_magnification(slide: Slide, override: float | None) -> float:
    if override is not None:
        return _pair(override, "base_magnification")[0]
    try:
        value = float(slide.properties["openslide.objective-power"])
    except (KeyError, ValueError):
        value = float("nan")
    if not (math.isfinite(value) and value > 0):
        raise ConfigError(
            f"Slide '{slide.path}' does not record its objective magnification, so a patch "
            "magnification cannot be converted to pixels. Ask for a target mpp instead, or give "
            "the scan's magnification (base_magnification, e.g. 40)."
        )
    return value


def plan_patch_read(
    slide: Slide,
    *,
    patch_size: int | tuple[int, int],
    target_mpp: float | None = None,
    magnification: float | None = None,
    mpp_override: float | tuple[float, float] | None = None,
    base_magnification: float | None = None,
    allow_upsampling: bool = False,
    tolerance: float = LEVEL_TOLERANCE,
) -> ReadPlan:
    """Plan the reading of ``patch_size`` patches at ``target_mpp`` or ``magnification``.

    Args:
        slide: The slide.
        patch_size: Output size in pixels, an int or ``(width, height)``.
        target_mpp: Wanted µm per output pixel (exclusive with ``magnification``).
        magnification: Wanted objective magnification, e.g. 20 (needs the slide's
            ``openslide.objective-power`` or ``base_magnification``).
        mpp_override: µm per level-0 pixel to use instead of the slide's (required when the
            slide does not record it and ``target_mpp`` is given).
        base_magnification: Objective magnification of level 0, overriding the slide's.
        allow_upsampling: Allow a target finer than level 0 (patches are then upsampled).
        tolerance: Relative downsample difference under which a level is read as is.

    Raises:
        ConfigError: No or two targets, a target finer than the slide without
            ``allow_upsampling``, ``target_mpp`` without any known mpp, ``magnification``
            without a known base magnification.
    """
    size = (patch_size, patch_size) if isinstance(patch_size, int) else tuple(patch_size)
    if len(size) != 2 or not all(isinstance(v, (int, np.integer)) and v > 0 for v in size):
        raise ConfigError(f"patch_size must be a positive int or (width, height), got {size!r}.")
    patch = (int(size[0]), int(size[1]))
    if (target_mpp is None) == (magnification is None):
        raise ConfigError("Give exactly one of target_mpp (µm/px) or magnification.")
    mpp = _pair(mpp_override, "mpp_override") if mpp_override is not None else slide.mpp
    if target_mpp is not None:
        target = _pair(target_mpp, "target_mpp")
        if mpp is None:
            raise ConfigError(
                f"Slide '{slide.path}' does not record its resolution (µm per pixel), so "
                f"patches at {target[0]:g} µm/px cannot be planned. Give the scan's resolution "
                "(mpp_override, e.g. 0.25), or ask for a magnification."
            )
        downsample = (target[0] / mpp[0], target[1] / mpp[1])
    else:
        base = _base_magnification(slide, base_magnification)
        factor = base / _pair(magnification, "magnification")[0]  # type: ignore[arg-type]
        downsample = (factor, factor)
        target = (mpp[0] * factor, mpp[1] * factor) if mpp is not None else None
    finest = min(downsample)
    if finest < 1 - tolerance and not allow_upsampling:
        wanted = f"{target[0]:g} µm/px" if target else f"{magnification:g}×"
        raise ConfigError(
            f"Patches at {wanted} are finer than slide '{slide.path}' (level 0 is "
            f"{finest:.3g}× coarser); pick a coarser target or allow upsampling "
            "(allow_upsampling=True)."
        )
    level = slide.best_level_for_downsample(finest * (1 + tolerance))
    level_ds = float(slide.level_downsamples[level])
    read = []
    for out, ds in zip(patch, downsample, strict=True):
        ratio = ds / level_ds
        read.append(out if abs(ratio - 1) <= tolerance else max(1, round(out * ratio)))
    read_size = (read[0], read[1])
    extent = (round(read_size[0] * level_ds), round(read_size[1] * level_ds))
    return ReadPlan(level, level_ds, read_size, patch, extent, downsample, target, mpp)


def resize_patch(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``image`` resized to ``size`` ``(width, height)``: ``INTER_AREA`` down, bilinear up."""
    height, width = image.shape[:2]
    if (width, height) == tuple(size):
        return image
    shrinking = size[0] <= width and size[1] <= height
    interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    return cv2.resize(image, (int(size[0]), int(size[1])), interpolation=interpolation)
