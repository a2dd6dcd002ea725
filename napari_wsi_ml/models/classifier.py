"""A patch classifier: a timm backbone, a linear head, and the input normalisation.

Two training modes:

- ``"finetune"``: every parameter trains;
- ``"linear_probe"``: the backbone is frozen (no gradients, batch-norm statistics fixed: it
  stays in eval mode even when the model is put in training mode); only the head trains.

Images go in as ``(N, 3, H, W)`` uint8 (as the patch loaders yield them) or float in [0, 1];
the model scales and normalises them with the backbone's mean and standard deviation.
"""

from __future__ import annotations

import os

import torch
from torch import nn

from napari_wsi_ml.errors import ConfigError
from napari_wsi_ml.models.backbones import create_backbone, load_backbone_weights

MODES = ("finetune", "linear_probe")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class PatchClassifier(nn.Module):
    """``backbone`` (images → features) followed by ``head`` (features → class logits).

    Args:
        backbone: A timm model built with ``num_classes=0``.
        num_classes: Number of classes.
        mode: ``"finetune"`` or ``"linear_probe"``.
        mean: Per-channel mean of the normalisation (RGB in [0, 1]).
        std: Per-channel standard deviation.
    """

    def __init__(
        self,
        backbone: nn.Module,
        num_classes: int,
        *,
        mode: str = "finetune",
        mean: tuple[float, ...] = IMAGENET_MEAN,
        std: tuple[float, ...] = IMAGENET_STD,
    ) -> None:
        super().__init__()
        if mode not in MODES:
            raise ConfigError(f"mode: must be one of {', '.join(MODES)}, got {mode!r}.")
        if num_classes < 2:
            raise ConfigError(f"num_classes must be at least 2, got {num_classes}.")
        self.mode = mode
        self.backbone = backbone
        self.num_features = int(getattr(backbone, "num_features"))  # noqa: B009
        self.head = nn.Linear(self.num_features, num_classes)
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)
        if mode == "linear_probe":
            self.backbone.requires_grad_(False)
            self.backbone.eval()

    @property
    def frozen(self) -> bool:
        """Whether the backbone is frozen (linear probe)."""
        return self.mode == "linear_probe"

    def train(self, mode: bool = True) -> PatchClassifier:
        """Training mode; a frozen backbone stays in eval mode (fixed batch-norm statistics)."""
        super().train(mode)
        if self.frozen:
            self.backbone.eval()
        return self

    def normalise(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 or [0, 1] images → normalised float images."""
        x = images.float() / 255.0 if images.dtype == torch.uint8 else images.float()
        return (x - self.mean) / self.std

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """``(N, num_features)`` pooled backbone features."""
        if self.frozen:
            with torch.no_grad():
                return self.backbone(self.normalise(images))
        return self.backbone(self.normalise(images))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """``(N, num_classes)`` logits."""
        return self.head(self.features(images))

    def trainable_parameters(self) -> list[nn.Parameter]:
        """The parameters an optimiser should update (only the head's in a linear probe)."""
        return [p for p in self.parameters() if p.requires_grad]


def create_classifier(
    backbone: str = "resnet18",
    *,
    num_classes: int,
    mode: str = "finetune",
    pretrained: bool = False,
    weights: str | os.PathLike | None = None,
) -> PatchClassifier:
    """A :class:`PatchClassifier` on the timm model ``backbone``.

    Args:
        backbone: Any ``timm.list_models()`` name.
        num_classes: Number of classes.
        mode: ``"finetune"`` or ``"linear_probe"``.
        pretrained: timm's published weights (needs them cached or network access).
        weights: A local weights file for the backbone (``.safetensors`` or a state dict),
            loaded after creation; takes the place of ``pretrained``.

    Raises:
        ConfigError: Unknown backbone (with suggestions), bad mode, unusable weights.
    """
    model = create_backbone(backbone, pretrained=pretrained and weights is None)
    if weights is not None:
        load_backbone_weights(model, weights)
    config = getattr(model, "pretrained_cfg", None) or {}
    mean = tuple(config.get("mean", IMAGENET_MEAN))
    std = tuple(config.get("std", IMAGENET_STD))
    if len(mean) != 3 or len(std) != 3:
        mean, std = IMAGENET_MEAN, IMAGENET_STD
    return PatchClassifier(model, num_classes, mode=mode, mean=mean, std=std)
