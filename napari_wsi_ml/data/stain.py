"""Stain normalisation in torch, batched, on CPU or GPU: Reinhard and Macenko.

Fit a normaliser to a reference (a tile, a few tiles, or patches read from a reference slide
with :func:`reference_patches`), then transform batches::

    norm = MacenkoNormalizer().fit(reference_tile)      # (H, W, 3) uint8 array
    batch = norm.transform(batch)                        # (N, 3, H, W), same dtype/device

Image conventions: NumPy arrays are channel-last (``(H, W, 3)`` or ``(N, H, W, 3)``, as read
from a slide); torch tensors are channel-first (``(3, H, W)`` or ``(N, 3, H, W)``). uint8 or
float in [0, 1]; transforms return a tensor of the input's dtype: a tensor input keeps its shape
and device, a NumPy input comes back channel-first on the CPU.

- **Reinhard** (Reinhard et al. 2001, in CIELAB as most pathology toolkits do): each image's
  per-channel LAB mean and standard deviation are mapped onto the reference's.
- **Macenko** (Macenko et al. 2009): stain vectors from the extreme angles (``alpha``
  percentiles) of optical densities projected on their principal plane; concentrations scaled so
  that their 99th percentile matches the reference's. Images with too little stain (blank
  background) keep the reference vectors, which leaves them nearly unchanged.

Vahadane's sparse NMF is not offered: a faithful, batched torch version needs a
dictionary-learning solver of its own, and a loose one would normalise worse than Macenko.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

from napari_wsi_ml.data._torch_color import lab_to_rgb, restore_dtype, rgb_to_lab, to_float
from napari_wsi_ml.data._torch_macenko import (
    concentrations,
    estimate_stain_matrix,
    from_optical_density,
    max_concentrations,
    optical_density,
)

if TYPE_CHECKING:
    from napari_wsi_ml.data.resolution import ReadPlan
    from napari_wsi_ml.slide import Slide


def as_batch(images: np.ndarray | torch.Tensor) -> torch.Tensor:
    """Images as a channel-first tensor ``(N, 3, H, W)`` (NumPy input is channel-last)."""
    if isinstance(images, np.ndarray):
        tensor = torch.from_numpy(np.ascontiguousarray(images))
        tensor = tensor.unsqueeze(0) if tensor.dim() == 3 else tensor
        tensor = tensor.permute(0, 3, 1, 2)
    else:
        tensor = images.unsqueeze(0) if images.dim() == 3 else images
    if tensor.dim() != 4 or tensor.shape[1] != 3:
        raise ValueError(f"Expected RGB images, got shape {tuple(images.shape)}.")
    return tensor


class ReinhardNormalizer:
    """Match each image's CIELAB channel means and standard deviations to a reference's.

    Attributes:
        mean: ``(3,)`` reference LAB means (after :meth:`fit`).
        std: ``(3,)`` reference LAB standard deviations.
    """

    def __init__(self) -> None:
        self.mean: torch.Tensor | None = None
        self.std: torch.Tensor | None = None

    def fit(self, reference: np.ndarray | torch.Tensor) -> ReinhardNormalizer:
        """Take the reference statistics from all pixels of ``reference`` (one or more tiles)."""
        lab = rgb_to_lab(to_float(as_batch(reference)).to(torch.float64))
        pixels = lab.transpose(0, 1).reshape(3, -1)
        self.mean, self.std = pixels.mean(dim=1), pixels.std(dim=1)
        return self

    def transform(self, images: np.ndarray | torch.Tensor) -> torch.Tensor:
        """``images`` with the reference's LAB statistics (dtype kept; see the module notes)."""
        if self.mean is None or self.std is None:
            raise RuntimeError("Call fit() with a reference before transform().")
        batch = as_batch(images)
        lab = rgb_to_lab(to_float(batch).to(torch.float32))
        mean = lab.mean(dim=(2, 3), keepdim=True)
        std = lab.std(dim=(2, 3), keepdim=True).clamp_min(1e-6)
        ref_mean = self.mean.to(lab).view(1, 3, 1, 1)
        ref_std = self.std.to(lab).view(1, 3, 1, 1)
        out = restore_dtype(lab_to_rgb((lab - mean) / std * ref_std + ref_mean), batch.dtype)
        return out.reshape(_output_shape(images, out))

    def to_dict(self) -> dict:
        """JSON-ready state (for run directories)."""
        return {"method": "reinhard", "mean": _listed(self.mean), "std": _listed(self.std)}

    @classmethod
    def from_dict(cls, state: dict) -> ReinhardNormalizer:
        """The normaliser written by :meth:`to_dict`."""
        norm = cls()
        norm.mean = torch.tensor(state["mean"], dtype=torch.float64)
        norm.std = torch.tensor(state["std"], dtype=torch.float64)
        return norm


class MacenkoNormalizer:
    """Macenko stain normalisation onto a reference's stain vectors and concentrations.

    Args:
        io: Transmitted light intensity (0–255 scale) for optical densities.
        beta: OD threshold under which a pixel counts as background when estimating stains.
        alpha: Percentile (0–100) of the extreme angles taken as the pure stains.
        max_percentile: Percentile of concentrations matched to the reference's.

    Attributes:
        stain_matrix: ``(3, 2)`` reference unit OD vectors, columns haematoxylin and eosin.
        max_concentration: ``(2,)`` reference concentration percentiles.
    """

    def __init__(
        self,
        *,
        io: float = 240.0,
        beta: float = 0.15,
        alpha: float = 1.0,
        max_percentile: float = 99.0,
    ) -> None:
        self.io, self.beta, self.alpha, self.max_percentile = io, beta, alpha, max_percentile
        self.stain_matrix: torch.Tensor | None = None
        self.max_concentration: torch.Tensor | None = None

    def estimate(self, images: np.ndarray | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-image stain matrices ``(N, 3, 2)`` (NaN where no stain) and validity ``(N,)``."""
        od = optical_density(to_float(as_batch(images)), self.io)
        return estimate_stain_matrix(od, beta=self.beta, alpha=self.alpha)

    def fit(self, reference: np.ndarray | torch.Tensor) -> MacenkoNormalizer:
        """Estimate the reference stains from all pixels of ``reference`` pooled together."""
        batch = to_float(as_batch(reference))
        pooled = batch.transpose(0, 1).reshape(1, 3, 1, -1)
        od = optical_density(pooled, self.io)
        matrix, valid = estimate_stain_matrix(od, beta=self.beta, alpha=self.alpha)
        if not bool(valid[0]):
            raise ValueError("The reference holds too few stained pixels to estimate stains.")
        conc = concentrations(od, matrix)
        self.stain_matrix = matrix[0]
        self.max_concentration = max_concentrations(conc, self.max_percentile)[0]
        return self

    def transform(self, images: np.ndarray | torch.Tensor) -> torch.Tensor:
        """``images`` re-stained with the reference (dtype kept; see the module notes)."""
        if self.stain_matrix is None or self.max_concentration is None:
            raise RuntimeError("Call fit() with a reference before transform().")
        batch = as_batch(images)
        n, _, height, width = batch.shape
        od = optical_density(to_float(batch), self.io)
        reference = self.stain_matrix.to(od).expand(n, 3, 2)
        matrix, valid = estimate_stain_matrix(od, beta=self.beta, alpha=self.alpha)
        matrix = torch.where(valid.view(-1, 1, 1), matrix, reference)
        conc = concentrations(od, matrix)
        own_max = max_concentrations(conc, self.max_percentile)
        usable = valid.view(-1, 1) & (own_max > 1e-6)
        scale = torch.where(usable, self.max_concentration.to(od) / own_max.clamp_min(1e-6), 1.0)
        rebuilt = (conc * scale.unsqueeze(1)) @ reference.transpose(1, 2)
        rgb = from_optical_density(rebuilt, self.io).transpose(1, 2).reshape(n, 3, height, width)
        out = restore_dtype(rgb.to(torch.float32), batch.dtype)
        return out.reshape(_output_shape(images, out))

    def to_dict(self) -> dict:
        """JSON-ready state and parameters (for run directories)."""
        return {
            "method": "macenko",
            "io": self.io,
            "beta": self.beta,
            "alpha": self.alpha,
            "max_percentile": self.max_percentile,
            "stain_matrix": _listed(self.stain_matrix),
            "max_concentration": _listed(self.max_concentration),
        }

    @classmethod
    def from_dict(cls, state: dict) -> MacenkoNormalizer:
        """The normaliser written by :meth:`to_dict`."""
        keys = ("io", "beta", "alpha", "max_percentile")
        norm = cls(**{k: float(state[k]) for k in keys})
        norm.stain_matrix = torch.tensor(state["stain_matrix"], dtype=torch.float64)
        norm.max_concentration = torch.tensor(state["max_concentration"], dtype=torch.float64)
        return norm


def reference_patches(
    slide: Slide, plan: ReadPlan, *, n: int = 16, seed: int = 0, min_tissue: float = 0.8
) -> np.ndarray:
    """``(n, H, W, 3)`` uint8 random tissue patches of ``slide``, to fit a normaliser to a slide.

    Patches are drawn like online patches (at least ``min_tissue`` tissue); unreadable ones are
    left out.
    """
    from napari_wsi_ml.data.reading import read_patches
    from napari_wsi_ml.data.sampling import random_patches

    patches = random_patches(slide, plan, n, seed=seed, min_tissue=min_tissue)
    if len(patches) == 0:
        raise ValueError(f"Slide '{slide.path}' has no patch with {min_tissue:.0%} tissue.")
    return read_patches(slide, patches.xy, plan).good()


def _listed(tensor: torch.Tensor | None) -> list | None:
    return None if tensor is None else tensor.detach().cpu().tolist()


def _output_shape(images: np.ndarray | torch.Tensor, out: torch.Tensor) -> tuple[int, ...]:
    """Channel-first result shape: ``(3, H, W)`` for one image, else ``(N, 3, H, W)``."""
    return tuple(out.shape[1:]) if images.ndim == 3 else tuple(out.shape)
