"""The trained part of an ``attention_mil`` run, and loading it back from its run directory.

:class:`MilModel` is what the run checkpoints: the bag normaliser (fitted on the training
slides) and the :class:`~napari_wsi_ml.models.attention.AttentionMil` head.
:func:`load_attention_mil` rebuilds it from a finished run, with the encoder and patch grid
the features must come from, so that a slide is scored outside the job exactly as in it::

    trained = load_attention_mil(run_dir)
    features = slide_features(jobs, trained.encoder, FeatureCache(folder))  # same grid
    prediction = trained.model.predict(features[slide].features)
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from torch import nn

from napari_wsi_ml.errors import RunError
from napari_wsi_ml.models.attention import AttentionMil
from napari_wsi_ml.training.attention_mil_options import AttentionMilOptions
from napari_wsi_ml.training.feature_encoder import EncoderSpec
from napari_wsi_ml.training.mil_bags import BagNormaliser
from napari_wsi_ml.training.slide_data import SlideDataOptions


class MilPrediction(NamedTuple):
    """One slide's prediction: ``slide_probs`` ``(C,)``, ``attention`` ``(N,)`` (sums to 1),
    ``patch_probs`` ``(N, C)`` (each patch on its own)."""

    slide_probs: np.ndarray
    attention: np.ndarray
    patch_probs: np.ndarray


class MilModel(nn.Module):
    """Bag normalisation (fitted, not learned) and the attention MIL head."""

    def __init__(self, num_features: int, classes: int, options: AttentionMilOptions) -> None:
        super().__init__()
        self.normaliser = BagNormaliser(num_features, center_per_slide=options.center_per_slide)
        self.mil = AttentionMil(
            num_features, classes, embed_dim=options.embed_dim,
            attention_dim=options.attention_dim, dropout=options.dropout,
        )  # fmt: skip

    def trainable_parameters(self) -> list[nn.Parameter]:
        """What the optimiser updates (the MIL head)."""
        return list(self.mil.parameters())

    def bag(self, features: np.ndarray) -> torch.Tensor:
        """The model input of a slide's raw features ``(N, D)``."""
        return self.normaliser(features)

    @torch.no_grad()
    def predict(self, features: np.ndarray) -> MilPrediction:
        """The prediction of one slide from its raw features ``(N, D)`` (eval mode, restored)."""
        was_training = self.training
        self.eval()
        try:
            bag = self.bag(features)
            logits, attention = self.mil(bag)
            patch = torch.softmax(self.mil.instance_logits(bag), -1)
        finally:
            self.train(was_training)
        return MilPrediction(torch.softmax(logits, -1).numpy(), attention.numpy(), patch.numpy())


@dataclass(frozen=True)
class TrainedAttentionMil:
    """A trained attention-MIL run.

    Attributes:
        model: The model, in eval mode, weights from the checkpoint.
        classes: Class names, logit order.
        encoder: The encoder of the features it was trained on.
        data: The run's ``data:`` section (patch size, target mpp, stride, min tissue).
        options: The run's ``attention_mil:`` section.
        checkpoint: The weights file loaded.
    """

    model: MilModel
    classes: tuple[str, ...]
    encoder: EncoderSpec
    data: SlideDataOptions
    options: AttentionMilOptions
    checkpoint: Path


def load_attention_mil(
    run_dir: str | os.PathLike[str], *, which: str | None = None
) -> TrainedAttentionMil:
    """Load a finished ``attention_mil`` run.

    Args:
        run_dir: The run directory.
        which: ``"best"`` or ``"last"`` checkpoint (default: the one the run evaluated).

    Raises:
        RunError: Not an attention_mil run, or its checkpoint or data.json is missing.
    """
    from napari_wsi_ml.jobs.run_context import load_checkpoint_file
    from napari_wsi_ml.jobs.run_dir import RunPaths
    from napari_wsi_ml.jobs.runner import load_run_config

    paths = RunPaths(Path(run_dir))
    config = load_run_config(paths.root)
    if config.job.task != "attention_mil":
        raise RunError(f"Run '{run_dir}' is a '{config.job.task}' run, not attention_mil.")
    options: AttentionMilOptions = config.task
    checkpoint = paths.checkpoint(which or options.evaluate)
    state = load_checkpoint_file(checkpoint)
    if state is None or not paths.data.is_file():
        raise RunError(
            f"Run '{run_dir}' has no {checkpoint.name} or data.json; it did not finish training."
        )
    classes = tuple(json.loads(paths.data.read_text(encoding="utf-8"))["class_names"])
    weights = state["model"]
    model = MilModel(int(weights["normaliser.mean"].shape[0]), len(classes), options)
    model.load_state_dict(weights)
    return TrainedAttentionMil(
        model.eval(), classes, options.encoder(), config.data, options, checkpoint
    )
