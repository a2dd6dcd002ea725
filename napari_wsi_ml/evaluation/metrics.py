"""Patch-level classification metrics: accuracy, balanced accuracy, per-class AUC, confusion.

Inputs are integer labels ``(N,)`` and class probabilities ``(N, C)``. A class's AUC is
one-vs-rest and ``None`` where it cannot be computed (the class, or every other class, absent).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.metrics import balanced_accuracy_score, confusion_matrix

from napari_wsi_ml.evaluation.delong import delong_auc


def _check(labels: np.ndarray, probs: np.ndarray, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim != 2 or probs.shape != (len(labels), n_classes):
        raise ValueError(f"probs must be ({len(labels)}, {n_classes}), got {probs.shape}")
    if len(labels) and (labels.min() < 0 or labels.max() >= n_classes):
        raise ValueError(f"labels must lie in 0..{n_classes - 1}")
    return labels, probs


def per_class_auc(
    labels: np.ndarray, probs: np.ndarray, class_names: Sequence[str], *, level: float = 0.95
) -> dict[str, dict[str, float | int] | None]:
    """One-vs-rest AUC of each class with its DeLong interval (None where undefined)."""
    labels, probs = _check(labels, probs, len(class_names))
    out: dict[str, dict[str, float | int] | None] = {}
    for index, name in enumerate(class_names):
        positive = labels == index
        if positive.all() or not positive.any():
            out[name] = None
            continue
        out[name] = delong_auc(positive, probs[:, index], level=level).to_dict()
    return out


def classification_metrics(
    labels: np.ndarray,
    probs: np.ndarray,
    class_names: Sequence[str],
    *,
    loss: float | None = None,
) -> dict[str, object]:
    """Loss (if given), accuracy, balanced accuracy, per-class AUC and the confusion matrix.

    Returns:
        ``{"loss", "accuracy", "balanced_accuracy", "auc": {class: float | None},
        "confusion": [[…]] (rows = truth, columns = prediction), "n": N}``; a metric that is
        undefined (no patches, or a single class for balanced accuracy) is None.
    """
    labels, probs = _check(labels, probs, len(class_names))
    predicted = probs.argmax(axis=1) if len(labels) else np.zeros(0, np.int64)
    aucs = per_class_auc(labels, probs, class_names)
    present = np.unique(labels)
    balanced = float(balanced_accuracy_score(labels, predicted)) if len(present) > 1 else None
    return {
        "loss": None if loss is None else float(loss),
        "accuracy": float((predicted == labels).mean()) if len(labels) else None,
        "balanced_accuracy": balanced,
        "auc": {k: (None if v is None else float(v["auc"])) for k, v in aucs.items()},
        "confusion": confusion_matrix(labels, predicted, labels=range(len(class_names))).tolist(),
        "n": len(labels),
    }
