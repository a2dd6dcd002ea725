"""The end-to-end slide model: a trainable tile encoder and an attention-MIL aggregator.

:class:`EndToEndModel` holds ``backbone`` (a timm model without classifier; its state-dict
keys start with ``backbone.`` as in the patch classifier's checkpoints, so either can seed the
other or be evaluated as an encoder) and ``aggregator``
(:class:`~napari_wsi_ml.models.attention.AttentionMil`: gated attention over the tile
features, one logit per class).

Batch norm in the encoder, ``batchnorm``:

- ``"batch"``: ordinary training-mode batch norm over the tiles encoded together;
- ``"frozen"``: the running statistics are used and never updated (eval mode), the affine
  parameters still train. A tile's features then do not depend on the other tiles, which is
  what makes a multi-process step equal to the single-process one on CPU (gloo has no
  synchronised batch norm), and what small per-process tile batches need.

``checkpointing`` turns on timm's activation checkpointing of the encoder's stages: their
activations are recomputed in the backward pass instead of kept (less memory, about a third
more compute).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from napari_wsi_ml.errors import ConfigError
from napari_wsi_ml.models.attention import AttentionMil, AttentionMilOutput
from napari_wsi_ml.models.backbones import create_backbone, load_backbone_weights
from napari_wsi_ml.models.classifier import IMAGENET_MEAN, IMAGENET_STD

BATCHNORM_MODES = ("batch", "frozen")


class EndToEndModel(nn.Module):
    """Tile encoder + attention aggregator (see the module docstring).

    Args:
        backbone: A timm model built with ``num_classes=0``.
        num_classes: Number of slide classes.
        embed_dim, attention_dim, dropout: Of the :class:`AttentionMil` aggregator.
        batchnorm: ``"batch"`` or ``"frozen"``.
        checkpointing: Activation checkpointing of the encoder (timm models that support it).
        mean, std: Input normalisation (RGB in [0, 1]).
    """

    def __init__(
        self,
        backbone: nn.Module,
        num_classes: int,
        *,
        embed_dim: int = 128,
        attention_dim: int = 128,
        dropout: float = 0.25,
        batchnorm: str = "batch",
        checkpointing: bool = False,
        mean: tuple[float, ...] = IMAGENET_MEAN,
        std: tuple[float, ...] = IMAGENET_STD,
    ) -> None:
        super().__init__()
        if batchnorm not in BATCHNORM_MODES:
            raise ConfigError(f"batchnorm: one of {', '.join(BATCHNORM_MODES)}, got {batchnorm!r}")
        self.backbone = backbone
        self.num_features = int(getattr(backbone, "num_features"))  # noqa: B009
        self.aggregator = AttentionMil(
            self.num_features,
            num_classes,
            embed_dim=embed_dim,
            attention_dim=attention_dim,
            dropout=dropout,
        )
        self.batchnorm = batchnorm
        if checkpointing:
            if not hasattr(backbone, "set_grad_checkpointing"):
                raise ConfigError(
                    f"checkpointing: the timm model {type(backbone).__name__} does not support "
                    "activation checkpointing; set checkpointing: false or use another backbone."
                )
            backbone.set_grad_checkpointing(True)
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)
        self.train()

    def train(self, mode: bool = True) -> EndToEndModel:
        """Training mode; with ``batchnorm="frozen"`` the encoder's batch norms stay in eval."""
        super().train(mode)
        if self.batchnorm == "frozen":
            for module in self.backbone.modules():
                if isinstance(module, nn.modules.batchnorm._BatchNorm):
                    module.eval()
        return self

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """``(N, 3, H, W)`` uint8 or [0, 1] float tiles → ``(N, F)`` float32 features."""
        x = images.float() / 255.0 if images.dtype == torch.uint8 else images.float()
        return self.backbone((x - self.mean) / self.std).float()

    def aggregate(self, bags: torch.Tensor, mask: torch.Tensor | None = None) -> AttentionMilOutput:
        """Slide logits and tile attention of features ``(N, F)`` or ``(B, N, F)`` + mask."""
        return self.aggregator(bags, mask)

    def forward(self, images: torch.Tensor) -> AttentionMilOutput:
        """One slide's tiles ``(N, 3, H, W)`` → logits ``(C,)`` and attention ``(N,)``."""
        return self.aggregate(self.encode(images))

    def encoder_parameters(self) -> list[nn.Parameter]:
        """The encoder's trainable parameters."""
        return [p for p in self.backbone.parameters() if p.requires_grad]

    def aggregator_parameters(self) -> list[nn.Parameter]:
        """The aggregator's trainable parameters."""
        return [p for p in self.aggregator.parameters() if p.requires_grad]

    def trainable_parameters(self) -> list[nn.Parameter]:
        """Every trainable parameter (encoder first)."""
        return self.encoder_parameters() + self.aggregator_parameters()


def create_end_to_end_model(
    backbone: str = "resnet18",
    *,
    num_classes: int,
    pretrained: bool = False,
    weights: str | os.PathLike | None = None,
    **options: object,
) -> EndToEndModel:
    """An :class:`EndToEndModel` on the timm model ``backbone``.

    Args:
        backbone: Any ``timm.list_models()`` name.
        num_classes: Number of slide classes.
        pretrained: timm's published weights (needs them cached or network access).
        weights: A local weights file for the encoder (``.safetensors``, a state dict, or a
            checkpoint of ours: its ``backbone.`` tensors are used).
        options: Keyword arguments of :class:`EndToEndModel`.

    Raises:
        ConfigError: Unknown backbone, unusable weights, bad options.
    """
    if pretrained and weights is not None:
        raise ConfigError("give pretrained: true or weights, not both")
    model = create_backbone(backbone, pretrained=pretrained)
    if weights is not None:
        load_backbone_weights(model, Path(weights))
    config = getattr(model, "pretrained_cfg", None) or {}
    mean = tuple(config.get("mean", IMAGENET_MEAN))
    std = tuple(config.get("std", IMAGENET_STD))
    if len(mean) != 3 or len(std) != 3:
        mean, std = IMAGENET_MEAN, IMAGENET_STD
    return EndToEndModel(model, num_classes, mean=mean, std=std, **options)  # type: ignore[arg-type]
