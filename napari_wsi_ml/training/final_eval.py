"""End-of-run evaluation: patch level (AUC with DeLong CI, per site) and slide level (top-k).

Patch level scores the annotation-labelled patches of the evaluated split; slide level scores
every tissue patch of each evaluated slide (the heatmap), a slide's score being the mean of its
``top_k`` highest probabilities of a class, against the slides' labels.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from napari_wsi_ml.evaluation import (
    classification_metrics,
    per_class_auc,
    slide_evaluation,
    top_k_mean,
)
from napari_wsi_ml.training.data_setup import PreparedSlide


def patch_level(
    probs: np.ndarray,
    labels: np.ndarray,
    slide_index: np.ndarray,
    slides: Sequence[PreparedSlide],
    class_names: tuple[str, ...],
) -> dict[str, Any]:
    """Metrics of labelled patches, with per-class DeLong intervals, overall and per site."""
    out: dict[str, Any] = classification_metrics(labels, probs, class_names)
    out.pop("loss")
    out["auc_ci"] = per_class_auc(labels, probs, class_names)
    sites = np.array([slides[i].record.site for i in slide_index.tolist()], dtype=object)
    per_site = {}
    for site in sorted(set(sites.tolist())):
        chosen = sites == site
        per_site[site or "unknown"] = {
            "n": int(chosen.sum()),
            "auc_ci": per_class_auc(labels[chosen], probs[chosen], class_names),
        }
    out["per_site"] = per_site
    return out


def slide_level(
    tissue_probs: dict[str, np.ndarray],
    slides: Sequence[PreparedSlide],
    class_names: tuple[str, ...],
    background: str | None,
    top_k: int,
) -> dict[str, Any] | None:
    """Slide AUCs (DeLong CI, per site) of each non-background class; None without labels."""
    labels = {s.record.slide: s.record.label for s in slides if s.record.label}
    sites = {s.record.slide: s.record.site for s in slides}
    scored = [s for s in slides if s.record.slide in labels and len(tissue_probs[s.record.slide])]
    if len(scored) < 2:
        return None
    out: dict[str, Any] = {"top_k": top_k, "classes": {}}
    for index, name in enumerate(class_names):
        if name == background:
            continue
        scores = {
            s.record.slide: top_k_mean(tissue_probs[s.record.slide][:, index], top_k)
            for s in scored
        }
        out["classes"][name] = slide_evaluation(scores, labels, name, sites=sites)
    return out
