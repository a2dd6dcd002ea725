"""The ``attention_mil:`` config section (:class:`AttentionMilOptions`).

Validated by :func:`napari_wsi_ml.config_schema.check_dataclass` before anything runs; the
cross-field checks are :meth:`~.attention_mil.AttentionMilTask.check_config`'s.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from napari_wsi_ml.config_schema import spec
from napari_wsi_ml.training.feature_encoder import EncoderSpec


@dataclass(frozen=True)
class AttentionMilOptions:
    """The ``attention_mil:`` section: encoder, feature cache, extraction, model, optimisation.

    ``evaluate`` picks the model of the final evaluation and heatmaps: ``best`` (lowest
    validation loss) or ``last`` (the end of the learning-rate schedule; with a handful of
    validation slides the lowest validation loss can be noise).
    """

    backbone: str = field(default="resnet18", metadata=spec(hint="a timm model name"))
    weights: Path | None = field(
        default=None, metadata=spec(hint="a local weights file, or a patch_classifier run folder")
    )
    pretrained: bool = False
    encoder_seed: int = field(default=0, metadata=spec(ge=0, hint="seed of random weights"))
    input_size: int | None = field(default=None, metadata=spec(ge=16, le=1024, hint="e.g. 224"))
    feature_cache: Path | None = field(
        default=None, metadata=spec(hint="a folder; default: feature_cache beside the runs")
    )
    scheduler: str | None = field(
        default=None, metadata=spec(hint="a Dask scheduler address, e.g. tcp://host:8786")
    )
    workers: int | None = field(default=None, metadata=spec(ge=1, le=256, hint="1 = no Dask"))
    extract_batch_size: int = field(default=64, metadata=spec(ge=1, le=4096, hint="patches"))
    center_per_slide: bool = field(
        default=True, metadata=spec(hint="subtract each slide's median feature")
    )
    embed_dim: int = field(default=128, metadata=spec(ge=4, le=4096))
    attention_dim: int = field(default=128, metadata=spec(ge=4, le=4096))
    dropout: float = field(default=0.25, metadata=spec(ge=0, le=0.9))
    instance_keep: float = field(
        default=1.0, metadata=spec(gt=0, le=1, hint="share of a bag's patches per step, e.g. 0.7")
    )
    epochs: int = field(default=30, metadata=spec(ge=1, le=10_000))
    learning_rate: float = field(default=2e-4, metadata=spec(gt=0, le=10, hint="e.g. 0.0002"))
    weight_decay: float = field(default=1e-4, metadata=spec(ge=0, le=1))
    class_weights: Literal["auto", "none"] | tuple[float, ...] = "auto"
    patience: int = field(default=10, metadata=spec(ge=0, hint="epochs; 0 turns it off"))
    evaluate: Literal["best", "last"] = field(
        default="best", metadata=spec(hint="best = lowest val loss; last = end of schedule")
    )
    heatmaps: bool = True

    def encoder(self) -> EncoderSpec:
        """The encoder these options describe."""
        return EncoderSpec(
            backbone=self.backbone,
            weights=self.weights,
            pretrained=self.pretrained,
            seed=self.encoder_seed,
            input_size=self.input_size,
        )
