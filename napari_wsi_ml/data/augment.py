"""Batched patch augmentation in torch: dihedral flips/rotations, colour jitter, HED jitter.

All functions take a batch ``(N, 3, H, W)`` (or one image ``(3, H, W)``), uint8 or float in
[0, 1], on any device, and return the same shape, dtype and device. Random parameters are drawn
from a caller-given :class:`torch.Generator` on the generator's device and then moved to the
images' device, so a CPU generator with a given seed yields the same parameters whether the
pixels are on the CPU or a GPU (pixel results then agree to float rounding).

Colour jitter follows the whole-slide training recipe: brightness ×0.65–1.35, contrast
×0.5–1.5, and hue and value shifts of ±32 in **8-bit OpenCV HSV units**: hue on OpenCV's
0–180 scale (``cv2.COLOR_RGB2HSV`` for uint8, 1 unit = 2°, so ±32 = ±64°), value on 0–255.
OpenCV's 8-bit HSV is the representation in which integer hue/value shifts are usually applied
to uint8 patches, so "±32" is read in those units; ``hue_scale=256`` gives the ``*_FULL``
convention (±32 = ±45°) instead. Tests check the result against OpenCV on the same pixels.

HED jitter (Tellez et al. 2018): stain concentrations from :func:`rgb_to_hed` (scikit-image
units) are perturbed per image and per stain as ``s · α + β``, α ∈ [1 − σα, 1 + σα],
β ∈ [−σβ, σβ]. One skimage HED unit is 13.8 optical-density units, so β is kept small.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch

from napari_wsi_ml.data._torch_color import (
    from_hexcone,
    hed_to_rgb,
    hexcone,
    restore_dtype,
    rgb_to_hed,
    to_float,
)

_LUMA = (0.299, 0.587, 0.114)


def _batched(fn: Callable[..., torch.Tensor]) -> Callable[..., torch.Tensor]:
    """Let ``fn`` accept ``(3, H, W)`` as well as ``(N, 3, H, W)`` and keep the input dtype."""

    def wrapper(images: torch.Tensor, *args: object, **kwargs: object) -> torch.Tensor:
        single = images.dim() == 3
        batch = images.unsqueeze(0) if single else images
        if batch.dim() != 4 or batch.shape[1] != 3:
            raise ValueError(f"Expected (N, 3, H, W) or (3, H, W) images, got {images.shape}.")
        out = fn(batch, *args, **kwargs)
        return out[0] if single else out

    wrapper.__name__ = fn.__name__
    wrapper.__doc__ = fn.__doc__
    return wrapper


def _uniform(
    n: int, low: float, high: float, generator: torch.Generator, device: torch.device
) -> torch.Tensor:
    draw = torch.rand(n, generator=generator, device=generator.device, dtype=torch.float64)
    return (low + (high - low) * draw).to(device=device, dtype=torch.float32)


@_batched
def flip_rotate(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Each image turned by one of the 8 dihedral symmetries (k × 90° then an optional flip).

    Non-square images get one of the 4 symmetries that keep their shape.
    """
    n, _, height, width = images.shape
    choices = 8 if height == width else 4
    draw = torch.randint(choices, (n,), generator=generator, device=generator.device).cpu()
    if choices == 4:  # identity, 180°, horizontal flip, vertical flip (180° + flip)
        draw = torch.tensor([0, 2, 4, 6])[draw]
    out = images.clone()
    for element in draw.unique().tolist():
        index = (draw == element).nonzero().flatten().to(images.device)
        turned = torch.rot90(images[index], element % 4, dims=(-2, -1))
        out[index] = turned.flip(-1) if element >= 4 else turned
    return out


def _per_image(values: torch.Tensor | float, images: torch.Tensor, dims: int) -> torch.Tensor:
    """``values`` (scalar or ``(N,)``) as float32 on the images' device, shaped for broadcast."""
    tensor = torch.as_tensor(values, dtype=torch.float32, device=images.device)
    return tensor.reshape(-1, *([1] * dims)).expand(images.shape[0], *([1] * dims))


@_batched
def adjust_brightness_contrast(
    images: torch.Tensor, brightness: torch.Tensor | float, contrast: torch.Tensor | float
) -> torch.Tensor:
    """Every channel × ``brightness``, then the distance to the image's mean luma × ``contrast``.

    Factors are scalars or one per image ``(N,)``.
    """
    rgb = (to_float(images) * _per_image(brightness, images, 3)).clamp(0.0, 1.0)
    luma = torch.tensor(_LUMA, device=rgb.device, dtype=rgb.dtype).view(1, 3, 1, 1)
    mean = (rgb * luma).sum(dim=1, keepdim=True).mean(dim=(2, 3), keepdim=True)
    rgb = ((rgb - mean) * _per_image(contrast, images, 3) + mean).clamp(0.0, 1.0)
    return restore_dtype(rgb, images.dtype)


@_batched
def shift_hue_value(
    images: torch.Tensor,
    hue: torch.Tensor | float,
    value: torch.Tensor | float,
    *,
    hue_scale: float = 180.0,
) -> torch.Tensor:
    """Hue rotated by ``hue`` (units of ``hue_scale`` per turn) and value shifted by ``value``.

    ``value`` is in 8-bit units (0–255) and saturates; shifts are scalars or ``(N,)``. With the
    default ``hue_scale=180`` this equals adding to H and V of ``cv2.COLOR_RGB2HSV`` on uint8.
    """
    hue_sixths, value_now, chroma = hexcone(to_float(images))
    saturation = chroma / value_now.clamp_min(1e-12)
    hue_sixths = hue_sixths + _per_image(hue, images, 2) * (6.0 / hue_scale)
    shifted = (value_now + _per_image(value, images, 2) / 255.0).clamp_(0.0, 1.0)
    return restore_dtype(from_hexcone(hue_sixths, shifted, saturation * shifted), images.dtype)


@_batched
def color_jitter(
    images: torch.Tensor,
    generator: torch.Generator,
    *,
    brightness: tuple[float, float] = (0.65, 1.35),
    contrast: tuple[float, float] = (0.5, 1.5),
    hue: float = 32.0,
    value: float = 32.0,
    hue_scale: float = 180.0,
) -> torch.Tensor:
    """Brightness ×, contrast ×, then hue and value shifts in HSV, one draw per image.

    Args:
        images: ``(N, 3, H, W)`` uint8 or float in [0, 1].
        generator: Source of the random parameters.
        brightness: Range of the factor multiplying every channel.
        contrast: Range of the factor scaling the distance to the image's mean grey (luma).
        hue: Largest hue shift, in units of ``hue_scale`` per turn (OpenCV 8-bit: 180).
        value: Largest value shift, in 8-bit units (0–255).
        hue_scale: Hue units per full turn: 180 (OpenCV ``RGB2HSV``) or 256 (``RGB2HSV_FULL``).
    """
    n, device = images.shape[0], images.device
    b = _uniform(n, *brightness, generator, device)
    c = _uniform(n, *contrast, generator, device)
    h = _uniform(n, -hue, hue, generator, device)
    v = _uniform(n, -value, value, generator, device)
    rgb = adjust_brightness_contrast(to_float(images), b, c)
    return restore_dtype(shift_hue_value(rgb, h, v, hue_scale=hue_scale), images.dtype)


@_batched
def scale_stains(
    images: torch.Tensor, scale: torch.Tensor | float, shift: torch.Tensor | float
) -> torch.Tensor:
    """HED concentrations ``s · scale + shift``: scalars, ``(3,)`` per stain or ``(N, 3)``."""
    hed = rgb_to_hed(to_float(images))
    n = images.shape[0]
    scale_t = torch.as_tensor(scale, dtype=hed.dtype, device=hed.device).expand(n, 3)
    shift_t = torch.as_tensor(shift, dtype=hed.dtype, device=hed.device).expand(n, 3)
    return restore_dtype(hed_to_rgb(hed, scale_t, shift_t), images.dtype)


@_batched
def hed_jitter(
    images: torch.Tensor,
    generator: torch.Generator,
    *,
    alpha: float = 0.05,
    beta: float = 0.01,
) -> torch.Tensor:
    """Per image and stain, HED concentrations ``s · U(1 ± alpha) + U(± beta)``."""
    n, device = images.shape[0], images.device
    scale = _uniform(3 * n, 1.0 - alpha, 1.0 + alpha, generator, device).view(n, 3)
    shift = _uniform(3 * n, -beta, beta, generator, device).view(n, 3)
    return scale_stains(images, scale, shift)


@dataclass(frozen=True)
class AugmentConfig:
    """Which augmentations :class:`Augmenter` applies, with their ranges.

    Attributes:
        flips: Random dihedral flips and 90° rotations.
        color: Colour jitter (brightness, contrast, hue, value), or none.
        brightness: Brightness factor range.
        contrast: Contrast factor range.
        hue: Largest hue shift in OpenCV 8-bit units (0–180 per turn).
        value: Largest value shift in 8-bit units.
        hed: HED stain jitter, or none.
        hed_alpha: Half-width of the HED scale factor range.
        hed_beta: Half-width of the HED shift range (scikit-image HED units).
    """

    flips: bool = True
    color: bool = True
    brightness: tuple[float, float] = (0.65, 1.35)
    contrast: tuple[float, float] = (0.5, 1.5)
    hue: float = 32.0
    value: float = 32.0
    hed: bool = True
    hed_alpha: float = 0.05
    hed_beta: float = 0.01

    def to_dict(self) -> dict:
        """JSON-ready fields (for run directories)."""
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict) -> AugmentConfig:
        """The config written by :meth:`to_dict`."""
        fields = dict(data)
        for key in ("brightness", "contrast"):
            if key in fields:
                fields[key] = tuple(fields[key])
        return cls(**fields)


class Augmenter:
    """Flips/rotations, then HED jitter, then colour jitter, on a batch, as configured.

    Example:
        >>> gen = torch.Generator().manual_seed(0)
        >>> batch = Augmenter()(batch, gen)  # (N, 3, H, W), same dtype and device
    """

    def __init__(self, config: AugmentConfig | None = None) -> None:
        self.config = config or AugmentConfig()

    def __call__(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """The augmented images (same shape, dtype and device)."""
        cfg, dtype = self.config, images.dtype
        if cfg.flips:  # before the conversion to float: moves a quarter of the bytes for uint8
            images = flip_rotate(images, generator)
        images = to_float(images)
        if cfg.hed:
            images = hed_jitter(images, generator, alpha=cfg.hed_alpha, beta=cfg.hed_beta)
        if cfg.color:
            images = color_jitter(
                images,
                generator,
                brightness=cfg.brightness,
                contrast=cfg.contrast,
                hue=cfg.hue,
                value=cfg.value,
            )
        return restore_dtype(images, dtype)
