"""Bags of patch features for slide-level MIL, and attention maps of them as heatmaps.

A slide's *bag* is the matrix of its cached patch features (:mod:`.feature_extraction`).
Before a model sees it, :class:`BagNormaliser` optionally subtracts the slide's own median
feature (``center_per_slide``: what every patch of a slide shares — stain, scanner, section
thickness — goes, and a lesion stands out against the slide's own tissue), then standardises
every feature dimension with the mean and standard deviation of the training slides' patches.
The normaliser's state is saved with the model, so inference normalises exactly as training did.

:func:`attention_heatmap` lays per-patch values on the slide's patch grid with the patch
classifier's georeference (:func:`~.mil_common.cohort_heatmap`): cell ``(i, j)`` is the patch
whose level-0 top-left corner is ``(j · stride_x, i · stride_y)``; cells without a patch are NaN.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from napari_wsi_ml.inference import Heatmap
from napari_wsi_ml.training.feature_cache import SlideFeatureJob, SlideFeatures
from napari_wsi_ml.training.mil_common import cohort_heatmap
from napari_wsi_ml.training.slide_data import CohortItem

ATTENTION_CHANNEL = "attention"


def feature_jobs(items: Sequence[CohortItem]) -> list[SlideFeatureJob]:
    """The feature-extraction job of each cohort slide (its grid of tissue patches)."""
    return [SlideFeatureJob.from_patches(item.patches, item.fingerprint) for item in items]


class BagNormaliser(nn.Module):
    """Per-slide centring (optional) and per-dimension standardisation of patch features.

    Args:
        num_features: Feature dimension ``D``.
        center_per_slide: Subtract each bag's median feature first.
    """

    def __init__(self, num_features: int, *, center_per_slide: bool = True) -> None:
        super().__init__()
        self.center_per_slide = center_per_slide
        self.register_buffer("mean", torch.zeros(num_features))
        self.register_buffer("std", torch.ones(num_features))

    def center(self, features: np.ndarray) -> np.ndarray:
        """``features`` ``(N, D)`` minus the bag's median (when centring), float32."""
        features = np.asarray(features, dtype=np.float32)
        if self.center_per_slide and len(features):
            features = features - np.median(features, axis=0, keepdims=True)
        return features

    def fit(self, bags: Sequence[np.ndarray]) -> BagNormaliser:
        """Set the standardisation from the (centred) training bags' patches."""
        stacked = np.concatenate([self.center(b) for b in bags])
        self.mean.copy_(torch.from_numpy(stacked.mean(axis=0)))
        self.std.copy_(torch.from_numpy(stacked.std(axis=0) + 1e-6))
        return self

    def forward(self, features: np.ndarray) -> torch.Tensor:
        """The model input ``(N, D)`` float32 tensor of one bag."""
        centred = torch.from_numpy(self.center(features))
        return (centred - self.mean) / self.std


def attention_heatmap(
    item: CohortItem,
    features: SlideFeatures,
    attention: np.ndarray,
    patch_probs: np.ndarray,
    classes: Sequence[str],
    *,
    run_id: str,
    extra: dict[str, object] | None = None,
) -> Heatmap:
    """A heatmap of one slide: attention (÷ the slide's maximum) and per-patch class probabilities.

    Args:
        item: The slide.
        features: Its bag (``features.xy``: the level-0 corners of the patches read, a subset
            of ``item.patches`` in the same order).
        attention: ``(N,)`` attention weights of the bag's patches (summing to 1).
        patch_probs: ``(N, C)`` class probabilities of each patch on its own.
        classes: Class names.
        run_id: The run that made it.
        extra: More provenance (e.g. the slide's predicted probabilities).

    Returns:
        Channels ``attention`` (0–1, 1 = the most attended patch), then one per class; NaN
        where no patch was read.
    """
    attention = np.asarray(attention, dtype=np.float64)
    top = float(attention.max()) if len(attention) else 0.0
    values = np.full((len(item.patches), 1 + len(classes)), np.nan, dtype=np.float32)
    row_of = {(int(x), int(y)): i for i, (x, y) in enumerate(item.patches.xy.tolist())}
    rows = [row_of[(int(x), int(y))] for x, y in features.xy.tolist()]
    values[rows, 0] = attention / top if top > 0 else attention
    values[rows, 1:] = patch_probs
    return cohort_heatmap(
        item,
        values,
        (ATTENTION_CHANNEL, *classes),
        run_id,
        extra={
            "value_range": [0.0, 1.0],
            "channels": "attention / its slide maximum, then each class's patch probability",
            "attention_max": top,
            **(extra or {}),
        },
    )
