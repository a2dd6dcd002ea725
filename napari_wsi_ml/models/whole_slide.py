"""A CNN on a whole downscaled slide: a timm ResNet, global max (or average) pooling, a linear head.

Images go in as ``(N, 3, H, W)`` uint8 (or float in [0, 1]); the ResNet's last feature map
``(N, F, h, w)`` (``h = ceil(H / 32)`` for the usual ResNets) is pooled over all cells —
global max pooling (``"gmp"``, the default: one small lesion can decide the slide) or global
average pooling (``"gap"``) — and a linear layer gives the class logits.

**Class activation maps.** :meth:`WholeSlideNet.class_activation_maps` applies the head to
every cell instead of to the pooled vector: ``cam[c, i, j] = W[c] · f[:, i, j] + b[c]``. With
GAP the mean of a class's map is exactly its logit; with GMP the logit is ``W[c] · max f``,
which is at least the map's maximum where the weights are positive.

**Cell geometry** (:class:`CellGeometry`): cell ``k`` of the feature map is centred on input
pixel index ``stride · k + offset`` (its receptive field is symmetric about that pixel), i.e. on
continuous input coordinate ``stride · k + offset + 0.5``. For timm's ResNets ``stride`` is 32
and ``offset`` 0: every stride-2 layer on the main path (7×7 convolution with padding 3,
3×3 max pooling or convolution with padding 1) centres output ``k`` on input ``2k``.

**Activation checkpointing** (``checkpointing="stages"``: the stem and each of the four
stages; ``"blocks"``: the stem and each residual block) keeps only the segments' inputs during
the forward pass and recomputes the rest in the backward pass (``torch.utils.checkpoint``,
non-reentrant). Gradients are those of the plain model. Batch-norm running statistics are
restored after a recomputation, so they are updated once per step as without checkpointing.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import timm
import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.utils.checkpoint import checkpoint

from napari_wsi_ml.errors import ConfigError
from napari_wsi_ml.models.backbones import check_backbone_name, load_backbone_weights
from napari_wsi_ml.models.classifier import IMAGENET_MEAN, IMAGENET_STD

POOLINGS = ("gmp", "gap")
CHECKPOINTING = ("off", "stages", "blocks")


@dataclass(frozen=True)
class CellGeometry:
    """Where feature-map cells sit on the input image (input pixels; see the module docstring).

    Attributes:
        stride: Input pixels between neighbouring cells.
        offset: Input pixel index on which cell 0 is centred (cell ``k``: ``stride·k+offset``).
    """

    stride: int
    offset: float

    def centre(self, index: float) -> float:
        """Continuous input coordinate of the centre of cell ``index``."""
        return self.stride * index + self.offset + 0.5


class WholeSlideNet(nn.Module):
    """ResNet feature map → global pooling → linear head (see the module docstring).

    Args:
        backbone: A timm ResNet built with ``num_classes=0, global_pool=""``.
        num_classes: Number of classes (at least 2).
        pooling: ``"gmp"`` (global max pooling) or ``"gap"`` (global average pooling).
        checkpointing: ``"off"``, ``"stages"`` or ``"blocks"``.
    """

    def __init__(
        self,
        backbone: nn.Module,
        num_classes: int,
        *,
        pooling: str = "gmp",
        checkpointing: str = "off",
    ) -> None:
        super().__init__()
        if not isinstance(backbone, timm.models.resnet.ResNet):
            raise ConfigError(
                f"backbone: the whole-slide model needs a timm ResNet (resnet18, resnet34, "
                f"resnet50 …), got {type(backbone).__name__}."
            )
        if pooling not in POOLINGS:
            raise ConfigError(f"pooling: must be one of {', '.join(POOLINGS)}, got {pooling!r}.")
        if checkpointing not in CHECKPOINTING:
            raise ConfigError(
                f"checkpointing: must be one of {', '.join(CHECKPOINTING)}, got {checkpointing!r}."
            )
        if num_classes < 2:
            raise ConfigError(f"num_classes must be at least 2, got {num_classes}.")
        self.backbone = backbone
        self.pooling = pooling
        self.checkpointing = checkpointing
        self.num_features = int(backbone.num_features)
        self.head = nn.Linear(self.num_features, num_classes)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.geometry = cell_geometry(backbone)

    # -- structure ----------------------------------------------------------------------
    def segments(self, granularity: str | None = None) -> list[nn.Module]:
        """The backbone as consecutive modules: the stem, then stages or residual blocks."""
        b = self.backbone
        stem = nn.Sequential(b.conv1, b.bn1, b.act1, b.maxpool)
        stages = [b.layer1, b.layer2, b.layer3, b.layer4]
        if (granularity or self.checkpointing) == "blocks":
            return [stem, *(block for stage in stages for block in stage)]
        return [stem, *stages]

    def trainable_parameters(self) -> Iterator[nn.Parameter]:
        """Every parameter (the whole network trains end to end)."""
        return iter(p for p in self.parameters() if p.requires_grad)

    # -- forward ------------------------------------------------------------------------
    def normalise(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 or [0, 1] images → normalised float images."""
        x = images.float() / 255.0 if images.dtype == torch.uint8 else images.float()
        return (x - self.mean) / self.std

    def feature_map(self, images: torch.Tensor) -> torch.Tensor:
        """The last ResNet feature map ``(N, F, h, w)``, checkpointed when training."""
        x = self.normalise(images)
        use_checkpoint = self.checkpointing != "off" and torch.is_grad_enabled()
        for segment in self.segments():
            if use_checkpoint:
                x = checkpoint(
                    segment,
                    x,
                    use_reentrant=False,
                    context_fn=_keep_norm_stats_on_recompute(segment),
                )
            else:
                x = segment(x)
        return x

    def pool(self, features: torch.Tensor) -> torch.Tensor:
        """Global max or average over the cells: ``(N, F, h, w)`` → ``(N, F)``."""
        if self.pooling == "gmp":
            return features.amax(dim=(2, 3))
        return features.mean(dim=(2, 3))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Class logits ``(N, C)``."""
        return self.head(self.pool(self.feature_map(images)))

    def class_activation_maps(self, features: torch.Tensor) -> torch.Tensor:
        """The head applied to every cell: ``(N, F, h, w)`` → ``(N, C, h, w)`` (logit units)."""
        weight = self.head.weight.to(features.dtype)
        bias = self.head.bias.to(features.dtype)
        return torch.einsum("nfhw,cf->nchw", features, weight) + bias.view(1, -1, 1, 1)


class _RestoreNormStats:
    """Snapshot the running statistics of a module's batch norms; put them back on exit."""

    def __init__(self, module: nn.Module) -> None:
        self.norms = [m for m in module.modules() if isinstance(m, _BatchNorm)]
        self.saved: list[list[torch.Tensor]] = []

    def __enter__(self) -> None:
        self.saved = [
            [t.detach().clone() for t in (m.running_mean, m.running_var, m.num_batches_tracked)]
            for m in self.norms
            if m.track_running_stats and m.running_mean is not None
        ]

    def __exit__(self, *exc: object) -> None:
        norms = [m for m in self.norms if m.track_running_stats and m.running_mean is not None]
        with torch.no_grad():
            for module, (mean, var, count) in zip(norms, self.saved, strict=True):
                module.running_mean.copy_(mean)
                module.running_var.copy_(var)
                module.num_batches_tracked.copy_(count)


def _keep_norm_stats_on_recompute(segment: nn.Module) -> Any:
    """``context_fn`` for :func:`torch.utils.checkpoint.checkpoint`: plain forward, and a
    recomputation that leaves batch-norm running statistics as they were."""

    def contexts() -> tuple[contextlib.AbstractContextManager, contextlib.AbstractContextManager]:
        return contextlib.nullcontext(), _RestoreNormStats(segment)

    return contexts


def _main_path_layers(backbone: nn.Module) -> Iterator[nn.Module]:
    """Convolutions and poolings of the main path, in order (shortcut branches left out)."""
    kinds = (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)
    for part in (backbone.conv1, backbone.maxpool):
        yield from (m for m in part.modules() if isinstance(m, kinds))
    for stage in (backbone.layer1, backbone.layer2, backbone.layer3, backbone.layer4):
        for block in stage:
            for name, module in block.named_modules():
                if not name.startswith("downsample") and isinstance(module, kinds):
                    yield module


def _as_int(value: Any) -> int:
    return int(value[0] if isinstance(value, tuple | list) else value)


def cell_geometry(backbone: nn.Module) -> CellGeometry:
    """The :class:`CellGeometry` of a timm ResNet, from the layers of its main path.

    A layer with stride ``s``, kernel ``K``, padding ``p`` and dilation ``d`` centres its
    output ``j`` on its input ``s·j − p + d·(K − 1)/2``; composing the layers gives
    ``stride·k + offset``.
    """
    stride, offset = 1, 0.0
    for layer in _main_path_layers(backbone):
        s, k, p = _as_int(layer.stride), _as_int(layer.kernel_size), _as_int(layer.padding)
        d = _as_int(getattr(layer, "dilation", 1))
        offset += stride * (-p + d * (k - 1) / 2)
        stride *= s
    reduction = backbone.feature_info[-1]["reduction"]
    if stride != reduction:
        raise ConfigError(
            f"backbone: cannot place feature cells on the image (main-path stride {stride}, "
            f"feature reduction {reduction}); use a plain timm ResNet such as resnet18."
        )
    return CellGeometry(stride=stride, offset=offset)


def create_whole_slide_net(
    backbone: str = "resnet18",
    *,
    num_classes: int,
    pooling: str = "gmp",
    checkpointing: str = "off",
    pretrained: bool = False,
    weights: str | os.PathLike | None = None,
) -> WholeSlideNet:
    """A :class:`WholeSlideNet` on a timm ResNet: random, timm-pretrained or local weights.

    Raises:
        ConfigError: Unknown or non-ResNet backbone, bad pooling or checkpointing, weights
            that do not fit.
    """
    check_backbone_name(backbone)
    if pretrained and weights is not None:
        raise ConfigError("pretrained: give pretrained: true or weights, not both.")
    try:
        net = timm.create_model(backbone, pretrained=pretrained, num_classes=0, global_pool="")
    except (OSError, RuntimeError, ValueError) as error:
        if not pretrained:
            raise
        raise ConfigError(
            f"backbone: cannot get timm's pretrained weights of {backbone!r} ({error}). "
            "Set pretrained: false and weights: a local .safetensors or .pth file instead."
        ) from error
    if weights is not None:
        load_backbone_weights(net, weights)
    return WholeSlideNet(net, num_classes, pooling=pooling, checkpointing=checkpointing)
