"""Colour-space conversions on batched torch tensors (CPU or GPU), shared by augment and stain.

Every function takes and returns channel-first tensors ``(..., 3, H, W)``; RGB is float in
[0, 1] (see :func:`to_float`). The formulas and constants are those of scikit-image's
``rgb2hed`` / ``hed2rgb`` / ``rgb2lab`` / ``lab2rgb`` (D65, 2° observer) and of the usual
hexcone HSV, so that results agree with those libraries on the same pixels.
"""

from __future__ import annotations

import math

import torch

RGB_FROM_HED = torch.tensor(
    [[0.65, 0.70, 0.29], [0.07, 0.99, 0.11], [0.27, 0.57, 0.78]], dtype=torch.float64
)
"""Ruifrok & Johnston stain vectors (rows: haematoxylin, eosin, DAB), as in scikit-image."""
HED_FROM_RGB = torch.linalg.inv(RGB_FROM_HED)
_LOG_ADJUST = math.log(1e-6)

_XYZ_FROM_RGB = torch.tensor(
    [
        [0.412453, 0.357580, 0.180423],
        [0.212671, 0.715160, 0.072169],
        [0.019334, 0.119193, 0.950227],
    ],
    dtype=torch.float64,
)
_RGB_FROM_XYZ = torch.linalg.inv(_XYZ_FROM_RGB)
_D65_WHITE = (0.95047, 1.0, 1.08883)


def to_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 images as float32 in [0, 1]; floating images unchanged."""
    if images.dtype == torch.uint8:
        return images.to(torch.float32) / 255.0
    if not images.is_floating_point():
        raise TypeError(f"Images must be uint8 or floating point, got {images.dtype}.")
    return images


def restore_dtype(images: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Float images in [0, 1] back to ``dtype`` (uint8: ×255, rounded, clamped)."""
    images = images.clamp(0.0, 1.0)
    if dtype == torch.uint8:
        return (images * 255.0).round().to(torch.uint8)
    return images.to(dtype)


def channel_matmul(images: torch.Tensor, matrix: torch.Tensor) -> torch.Tensor:
    """``out[c] = Σ_k images[k] · matrix[k, c]`` over the channel axis -3 (row-vector pixels)."""
    matrix = matrix.to(device=images.device, dtype=images.dtype)
    return torch.einsum("...khw,kc->...chw", images, matrix)


def rgb_to_hsv(rgb: torch.Tensor) -> torch.Tensor:
    """RGB → HSV, all channels in [0, 1] (hue as a fraction of the full circle)."""
    r, g, b = rgb.unbind(-3)
    value, _ = rgb.max(dim=-3)
    delta = value - rgb.min(dim=-3).values
    safe = torch.where(delta > 0, delta, torch.ones_like(delta))
    saturation = torch.where(value > 0, delta / torch.where(value > 0, value, 1.0), 0.0)
    hue = torch.where(
        value == r,
        torch.remainder((g - b) / safe, 6.0),
        torch.where(value == g, (b - r) / safe + 2.0, (r - g) / safe + 4.0),
    )
    hue = torch.where(delta > 0, hue / 6.0, torch.zeros_like(hue))
    return torch.stack((hue, saturation, value), dim=-3)


def hsv_to_rgb(hsv: torch.Tensor) -> torch.Tensor:
    """HSV (all in [0, 1], hue wrapping) → RGB in [0, 1]."""
    hue, saturation, value = hsv.unbind(-3)
    sector = torch.remainder(hue, 1.0) * 6.0
    channels = []
    for n in (5.0, 3.0, 1.0):
        k = torch.remainder(n + sector, 6.0)
        ramp = torch.clamp(torch.minimum(k, 4.0 - k), 0.0, 1.0)
        channels.append(value - value * saturation * ramp)
    return torch.stack(channels, dim=-3)


def rgb_to_hed(rgb: torch.Tensor) -> torch.Tensor:
    """RGB in [0, 1] → HED stain concentrations, as ``skimage.color.rgb2hed``."""
    log_rgb = torch.log(rgb.clamp_min(1e-6)) / _LOG_ADJUST
    return channel_matmul(log_rgb, HED_FROM_RGB).clamp_min(0.0)


def hed_to_rgb(hed: torch.Tensor) -> torch.Tensor:
    """HED stain concentrations → RGB in [0, 1], as ``skimage.color.hed2rgb``."""
    log_rgb = channel_matmul(hed * _LOG_ADJUST, RGB_FROM_HED)
    return torch.exp(log_rgb).clamp(0.0, 1.0)


def rgb_to_lab(rgb: torch.Tensor) -> torch.Tensor:
    """sRGB in [0, 1] → CIELAB (D65, 2°), as ``skimage.color.rgb2lab``."""
    linear = torch.where(rgb > 0.04045, ((rgb + 0.055) / 1.055) ** 2.4, rgb / 12.92)
    xyz = channel_matmul(linear, _XYZ_FROM_RGB.T)
    white = torch.tensor(_D65_WHITE, device=rgb.device, dtype=rgb.dtype).view(3, 1, 1)
    xyz = xyz / white
    f = torch.where(xyz > 0.008856, xyz.clamp_min(0.0) ** (1.0 / 3.0), 7.787 * xyz + 16.0 / 116)
    fx, fy, fz = f.unbind(-3)
    return torch.stack((116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)), dim=-3)


def lab_to_rgb(lab: torch.Tensor) -> torch.Tensor:
    """CIELAB (D65, 2°) → sRGB in [0, 1] (clipped), as ``skimage.color.lab2rgb``."""
    lightness, a, b = lab.unbind(-3)
    fy = (lightness + 16.0) / 116.0
    f = torch.stack((fy + a / 500.0, fy, (fy - b / 200.0).clamp_min(0.0)), dim=-3)
    xyz = torch.where(f > 0.2068966, f**3, (f - 16.0 / 116.0) / 7.787)
    white = torch.tensor(_D65_WHITE, device=lab.device, dtype=lab.dtype).view(3, 1, 1)
    linear = channel_matmul(xyz * white, _RGB_FROM_XYZ.T)
    rgb = torch.where(
        linear > 0.0031308, 1.055 * linear.clamp_min(0.0) ** (1 / 2.4) - 0.055, 12.92 * linear
    )
    return rgb.clamp(0.0, 1.0)
