"""The ``end_to_end:`` config section (the ``data:`` section is :class:`SlideDataOptions`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from napari_wsi_ml.config_schema import spec


@dataclass(frozen=True)
class EndToEndOptions:
    """Encoder, aggregator, tile sampling and optimisation of end-to-end slide training."""

    backbone: str = field(default="resnet18", metadata=spec(hint="a timm model name"))
    pretrained: bool = False
    weights: Path | None = field(
        default=None,
        metadata=spec(hint="a local weights file, or a patch_classifier / end_to_end run folder"),
    )
    tiles_per_slide: int = field(default=16, metadata=spec(ge=1, le=100_000, hint="K, e.g. 16"))
    slides_per_step: int = field(default=1, metadata=spec(ge=1, le=1024, hint="e.g. 1"))
    epochs: int = field(default=10, metadata=spec(ge=1, le=100_000))
    learning_rate: float = field(default=1e-4, metadata=spec(gt=0, le=10, hint="e.g. 0.0001"))
    weight_decay: float = field(default=1e-4, metadata=spec(ge=0, le=1))
    class_weights: Literal["auto", "none"] | tuple[float, ...] = "auto"
    embed_dim: int = field(default=128, metadata=spec(ge=1, le=8192))
    attention_dim: int = field(default=128, metadata=spec(ge=1, le=8192))
    dropout: float = field(default=0.25, metadata=spec(ge=0, le=0.9))
    batchnorm: Literal["batch", "frozen"] = "batch"
    checkpointing: bool = False
    augment: bool = True
    amp: bool = True
    patience: int = field(default=3, metadata=spec(ge=0, hint="epochs; 0 turns it off"))
    eval_tiles: int | None = field(
        default=None, metadata=spec(ge=1, hint="tiles a slide is scored on; null = all")
    )
    eval_batch_size: int = field(default=64, metadata=spec(ge=1, le=8192))
    heatmaps: bool = True


def check_end_to_end_options(options: EndToEndOptions, n_classes: int | None) -> list[str]:
    """Cross-field problems, each ``key: what is wrong; write what instead.``"""
    problems = []
    if options.pretrained and options.weights is not None:
        problems.append("end_to_end.pretrained: give pretrained: true or weights, not both")
    if options.weights is not None and not Path(options.weights).exists():
        problems.append(f"end_to_end.weights: '{options.weights}' does not exist")
    weights = options.class_weights
    if isinstance(weights, tuple) and n_classes is not None and len(weights) != n_classes:
        problems.append(
            f"end_to_end.class_weights: {len(weights)} weights for {n_classes} classes; "
            "write auto, none or one per class"
        )
    return problems
