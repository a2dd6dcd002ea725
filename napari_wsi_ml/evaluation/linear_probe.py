"""Linear probing of frozen embeddings: a logistic regression on standardised features.

The inverse regularisation strength ``C`` is chosen on a validation set (highest balanced
accuracy, ties to the stronger regularisation) when one is given, and the probe is then refit
on train + validation. Probabilities always have one column per class of the task, also for
classes the training patches lack (probability 0).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import balanced_accuracy_score
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler


@dataclass
class LinearProbe:
    """A fitted probe and how it was chosen.

    Attributes:
        pipeline: Standardisation + logistic regression.
        n_classes: Classes of the task (columns of :meth:`probabilities`).
        c: The chosen inverse regularisation strength.
        validation: ``C`` → validation balanced accuracy (empty without validation data).
    """

    pipeline: Pipeline
    n_classes: int
    c: float
    validation: dict[float, float] = field(default_factory=dict)

    def probabilities(self, features: np.ndarray) -> np.ndarray:
        """``(N, n_classes)`` class probabilities of ``features`` ``(N, D)``."""
        found = self.pipeline.predict_proba(np.asarray(features, dtype=np.float64))
        out = np.zeros((len(found), self.n_classes))
        out[:, self.pipeline.classes_.astype(np.int64)] = found
        return out


def _fit(
    x: np.ndarray, y: np.ndarray, c: float, seed: int, max_iter: int, balanced: bool
) -> Pipeline:
    weight = "balanced" if balanced else None
    pipeline = make_pipeline(
        StandardScaler(),
        LogisticRegression(C=c, max_iter=max_iter, random_state=seed, class_weight=weight),
    )
    return pipeline.fit(x, y)


def fit_linear_probe(
    train: tuple[np.ndarray, np.ndarray],
    n_classes: int,
    *,
    val: tuple[np.ndarray, np.ndarray] | None = None,
    c_values: Sequence[float] = (0.01, 0.1, 1.0, 10.0),
    seed: int = 0,
    max_iter: int = 2000,
    balanced: bool = False,
) -> LinearProbe:
    """Fit a probe on ``train = (features (N, D), labels (N,))``; choose ``C`` on ``val``.

    ``balanced`` weighs each class inversely to its frequency in the fitting data.

    Raises:
        ValueError: Fewer than two classes among the training labels, or no ``c_values``.
    """
    x, y = np.asarray(train[0], dtype=np.float64), np.asarray(train[1], dtype=np.int64)
    if len(np.unique(y)) < 2:
        raise ValueError(f"a linear probe needs two classes among the training labels, got {y}")
    if not len(c_values):
        raise ValueError("give at least one C value")
    c_values = sorted(float(c) for c in c_values)
    scores: dict[float, float] = {}
    if val is not None and len(val[1]) and len(c_values) > 1:
        vx, vy = np.asarray(val[0], dtype=np.float64), np.asarray(val[1], dtype=np.int64)
        for c in c_values:
            predicted = _fit(x, y, c, seed, max_iter, balanced).predict(vx)
            scores[c] = float(balanced_accuracy_score(vy, predicted))
        best = max(c_values, key=lambda c: (scores[c], -c))
        x, y = np.concatenate([x, vx]), np.concatenate([y, vy])
    else:
        best = 1.0 if 1.0 in c_values else c_values[len(c_values) // 2]
    return LinearProbe(_fit(x, y, best, seed, max_iter, balanced), n_classes, best, scores)
