"""Evaluation (pure core: NumPy, SciPy, scikit-learn; no torch).

- :func:`delong_auc` → :class:`AucInterval`: ROC AUC with its DeLong variance and 95 %
  interval (fast DeLong, Sun & Xu 2014); :func:`delong_covariance`, :func:`delong_test`.
- :func:`classification_metrics`: loss, accuracy, balanced accuracy, per-class AUC, confusion
  matrix; :func:`per_class_auc` with intervals.
- Slide level: :func:`top_k_mean`, :func:`slide_scores` (mean of the top-k patch
  probabilities), :func:`slide_evaluation` (AUC with interval, per site, confusion).
"""

from __future__ import annotations

from napari_wsi_ml.evaluation.delong import (
    AucInterval,
    delong_auc,
    delong_covariance,
    delong_test,
    midranks,
    structural_components,
)
from napari_wsi_ml.evaluation.metrics import classification_metrics, per_class_auc
from napari_wsi_ml.evaluation.slides import (
    auc_summary,
    slide_evaluation,
    slide_scores,
    top_k_mean,
)

__all__ = [
    "AucInterval",
    "auc_summary",
    "classification_metrics",
    "delong_auc",
    "delong_covariance",
    "delong_test",
    "midranks",
    "per_class_auc",
    "slide_evaluation",
    "slide_scores",
    "structural_components",
    "top_k_mean",
]
