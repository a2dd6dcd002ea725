"""Batched Macenko stain-matrix estimation in torch (one estimate per image of a batch).

Optical density uses the 0–255 intensity scale: ``OD = −ln((I + 1) / Io)`` and, back,
``I = Io · exp(−OD) − 1``, so an image rebuilt from its own stains and concentrations is
itself (no +1 drift).
"""

from __future__ import annotations

import torch

QUANTILE_LIMIT = 1 << 24
"""``torch.quantile`` refuses inputs larger than this; bigger batches are done in chunks."""


def optical_density(images: torch.Tensor, io: float) -> torch.Tensor:
    """``(N, P, 3)`` optical densities of float images ``(N, 3, H, W)`` in [0, 1]."""
    intensity = images.flatten(2).transpose(1, 2).to(torch.float64) * 255.0
    return -torch.log((intensity + 1.0) / io)


def from_optical_density(od: torch.Tensor, io: float) -> torch.Tensor:
    """Float images in [0, 1] from optical densities ``(N, P, 3)`` (clamped)."""
    return ((io * torch.exp(-od) - 1.0) / 255.0).clamp(0.0, 1.0)


def _quantile(values: torch.Tensor, q: float) -> torch.Tensor:
    """NaN-ignoring quantile along the last axis of ``(N, P)``, chunked over N."""
    rows = max(1, QUANTILE_LIMIT // max(values.shape[1], 1))
    parts = [torch.nanquantile(chunk, q, dim=1) for chunk in values.split(rows)]
    return torch.cat(parts)


def estimate_stain_matrix(
    od: torch.Tensor, *, beta: float, alpha: float, min_pixels: int = 16
) -> tuple[torch.Tensor, torch.Tensor]:
    """Macenko stain vectors of each image.

    Args:
        od: ``(N, P, 3)`` optical densities (float64).
        beta: Pixels with any OD channel under ``beta`` (background) are ignored.
        alpha: Percentile (0–100) of the extreme angles taken as the pure stains.
        min_pixels: Images with fewer stained pixels get no estimate.

    Returns:
        ``(N, 3, 2)`` unit OD vectors (columns haematoxylin, eosin; NaN without an estimate),
        and ``(N,)`` bool, True where an estimate was made.
    """
    mask = (od >= beta).all(dim=-1)
    count = mask.sum(dim=1)
    weights = mask.to(od.dtype).unsqueeze(-1)
    mean = (od * weights).sum(dim=1, keepdim=True) / count.clamp_min(1).view(-1, 1, 1)
    centred = (od - mean) * weights
    cov = centred.transpose(1, 2) @ centred / (count - 1).clamp_min(1).view(-1, 1, 1)
    _, vectors = torch.linalg.eigh(cov)
    plane = vectors[:, :, 1:].flip(-1)  # (N, 3, 2): largest eigenvector first
    plane = plane * torch.where(plane.sum(dim=1, keepdim=True) < 0, -1.0, 1.0)
    projected = od @ plane  # (N, P, 2)
    angle = torch.atan2(projected[..., 1], projected[..., 0])
    angle = torch.where(mask, angle, torch.full_like(angle, float("nan")))
    low = _quantile(angle, alpha / 100.0)
    high = _quantile(angle, 1.0 - alpha / 100.0)
    v_low = (plane @ torch.stack((low.cos(), low.sin()), dim=-1).unsqueeze(-1)).squeeze(-1)
    v_high = (plane @ torch.stack((high.cos(), high.sin()), dim=-1).unsqueeze(-1)).squeeze(-1)
    low_is_h = (v_low[:, 0] > v_high[:, 0]).view(-1, 1)
    h = torch.where(low_is_h, v_low, v_high)
    e = torch.where(low_is_h, v_high, v_low)
    matrix = torch.stack((h, e), dim=-1)
    matrix = matrix / matrix.norm(dim=1, keepdim=True)
    valid = count >= min_pixels
    return torch.where(valid.view(-1, 1, 1), matrix, float("nan")), valid


def concentrations(od: torch.Tensor, matrix: torch.Tensor) -> torch.Tensor:
    """Least-squares stain concentrations ``(N, P, 2)`` of ``od`` ``(N, P, 3)``."""
    return od @ torch.linalg.pinv(matrix).transpose(1, 2)


def max_concentrations(conc: torch.Tensor, percentile: float) -> torch.Tensor:
    """``(N, 2)`` robust maxima (``percentile``, 0–100) of each stain's concentrations."""
    n = conc.shape[0]
    flat = conc.transpose(1, 2).reshape(n * 2, -1)
    return _quantile(flat, percentile / 100.0).view(n, 2)
