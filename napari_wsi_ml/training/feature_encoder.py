"""Frozen patch encoders for feature extraction, and the key that names their features.

An :class:`EncoderSpec` says which encoder to build: any timm model, with random weights drawn
from ``seed`` (``pretrained=False``, the offline default), timm's published weights, or a local
weights file — a ``.safetensors`` file, a torch state dict, or a checkpoint of one of our runs
(a ``patch_classifier`` run folder or its ``checkpoints/best.pt``: its backbone is used). The
spec is small and picklable, so Dask workers rebuild the same encoder from it.

:func:`encoder_key` names the features an encoder produces: a SHA-256 over the model name, a
digest of every tensor of its state (weights and batch-norm statistics), the input size and
the normalisation. Two encoders with the same key give the same features; changing any weight
changes the key.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional

from napari_wsi_ml.errors import ConfigError
from napari_wsi_ml.models.backbones import create_backbone, load_backbone_weights
from napari_wsi_ml.models.classifier import IMAGENET_MEAN, IMAGENET_STD

KEY_VERSION = 1
"""Bumped when the way features are computed changes (invalidates every cached feature)."""


@dataclass(frozen=True)
class EncoderSpec:
    """Which encoder to build (see the module docstring).

    Attributes:
        backbone: A ``timm.list_models()`` name.
        weights: A local weights file, or a run folder of ours (its best checkpoint).
        pretrained: timm's published weights (needs them cached locally).
        seed: Seed of the random initialisation (used without weights).
        input_size: Side patches are resized to before the encoder (None: as read).
    """

    backbone: str = "resnet18"
    weights: Path | None = None
    pretrained: bool = False
    seed: int = 0
    input_size: int | None = None


class PatchEncoder(nn.Module):
    """A frozen backbone: ``(N, 3, H, W)`` uint8 (or [0, 1] float) images → ``(N, F)`` features.

    Always in eval mode (batch-norm statistics fixed); no parameter requires gradients.
    """

    def __init__(
        self,
        backbone: nn.Module,
        *,
        mean: tuple[float, ...] = IMAGENET_MEAN,
        std: tuple[float, ...] = IMAGENET_STD,
        input_size: int | None = None,
    ) -> None:
        super().__init__()
        self.backbone = backbone.eval().requires_grad_(False)
        self.num_features = int(getattr(backbone, "num_features"))  # noqa: B009
        self.input_size = input_size
        self.mean_rgb, self.std_rgb = tuple(map(float, mean)), tuple(map(float, std))
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)

    def train(self, mode: bool = True) -> PatchEncoder:
        """Stays in eval mode whatever ``mode`` (a frozen encoder)."""
        return super().train(False)

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Pooled features ``(N, F)``, float32."""
        x = images.float() / 255.0 if images.dtype == torch.uint8 else images.float()
        size = self.input_size
        if size is not None and tuple(x.shape[-2:]) != (size, size):
            x = functional.interpolate(
                x, size=(size, size), mode="bilinear", antialias=True, align_corners=False
            )
        return self.backbone((x - self.mean) / self.std).float()


def resolve_weights(path: Path) -> Path:
    """A weights file: ``path`` itself, or a run folder's ``checkpoints/best.pt`` (or last).

    Raises:
        ConfigError: A folder without checkpoints.
    """
    if not path.is_dir():
        return path
    for name in ("best.pt", "last.pt"):
        candidate = path / "checkpoints" / name
        if candidate.is_file():
            return candidate
    raise ConfigError(
        f"weights: folder '{path}' holds no checkpoints/best.pt or last.pt. Give a weights "
        "file, or the folder of a finished run."
    )


def build_encoder(spec: EncoderSpec) -> PatchEncoder:
    """The frozen encoder ``spec`` describes (the global RNG is left untouched).

    Raises:
        ConfigError: Unknown backbone, unreadable or unfitting weights.
    """
    if spec.pretrained and spec.weights is not None:
        raise ConfigError("encoder: give pretrained: true or weights, not both")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(spec.seed)
        backbone = create_backbone(spec.backbone, pretrained=spec.pretrained)
    if spec.weights is not None:
        load_backbone_weights(backbone, resolve_weights(Path(spec.weights)))
    config = getattr(backbone, "pretrained_cfg", None) or {}
    mean = tuple(config.get("mean", IMAGENET_MEAN))
    std = tuple(config.get("std", IMAGENET_STD))
    if len(mean) != 3 or len(std) != 3:
        mean, std = IMAGENET_MEAN, IMAGENET_STD
    return PatchEncoder(backbone, mean=mean, std=std, input_size=spec.input_size)


def weights_digest(module: nn.Module) -> str:
    """SHA-256 (hex) over every tensor of ``module.state_dict()``: names, dtypes, shapes, values."""
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        value = tensor.detach().cpu().contiguous()
        digest.update(f"{name}|{value.dtype}|{tuple(value.shape)};".encode())
        digest.update(value.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def encoder_description(name: str, encoder: PatchEncoder) -> dict[str, object]:
    """What :func:`encoder_key` hashes (also written beside the cached features)."""
    return {
        "key_version": KEY_VERSION,
        "backbone": name,
        "weights_sha256": weights_digest(encoder.backbone),
        "num_features": encoder.num_features,
        "input_size": encoder.input_size,
        "mean": list(encoder.mean_rgb),
        "std": list(encoder.std_rgb),
    }


def encoder_key(name: str, encoder: PatchEncoder) -> str:
    """SHA-256 (hex) naming the features of ``encoder`` (see the module docstring)."""
    text = json.dumps(encoder_description(name, encoder), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()
