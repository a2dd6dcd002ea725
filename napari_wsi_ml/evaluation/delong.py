"""ROC AUC with its DeLong variance and confidence interval (fast DeLong, Sun & Xu 2014).

DeLong et al. (1988) estimate the variance of the empirical AUC from its structural components:
for each positive ``x_i``, ``V10_i`` = the fraction of negatives it outranks (ties count ½);
for each negative ``y_j``, ``V01_j`` = the fraction of positives that outrank it. Then
``var(AUC) = var(V10) / m + var(V01) / n`` (m positives, n negatives; sample variances).
Sun & Xu compute the components from midranks in O((m + n) log(m + n)) instead of O(m n):
``V10_i = (rank of x_i among all − rank of x_i among positives) / n``.
The confidence interval is the normal one, ``AUC ± z·sd``, clipped to [0, 1] (as pROC does).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats


def midranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks of ``values`` along the last axis, ties sharing their average rank."""
    values = np.asarray(values, dtype=np.float64)
    return stats.rankdata(values, method="average", axis=-1)


def _split(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    labels = np.asarray(labels).reshape(-1).astype(bool)
    scores = np.atleast_2d(np.asarray(scores, dtype=np.float64))
    if scores.shape[-1] != len(labels):
        raise ValueError(f"{scores.shape[-1]} scores for {len(labels)} labels")
    if not np.isfinite(scores).all():
        raise ValueError("scores must be finite")
    return scores[:, labels], scores[:, ~labels]


def structural_components(
    labels: np.ndarray, scores: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """AUCs ``(k,)`` and components ``V10`` ``(k, m)`` and ``V01`` ``(k, n)`` of k scorers.

    Args:
        labels: ``(N,)`` booleans (or 0/1): positive or not.
        scores: ``(N,)`` or ``(k, N)``: higher = more likely positive.
    """
    positives, negatives = _split(labels, scores)
    m, n = positives.shape[1], negatives.shape[1]
    if m == 0 or n == 0:
        raise ValueError(f"AUC needs positives and negatives, got {m} and {n}")
    ranks_pos = midranks(positives)
    ranks_neg = midranks(negatives)
    ranks_all = midranks(np.concatenate([positives, negatives], axis=1))
    v10 = (ranks_all[:, :m] - ranks_pos) / n
    v01 = 1.0 - (ranks_all[:, m:] - ranks_neg) / m
    aucs = (ranks_all[:, :m].sum(axis=1) - m * (m + 1) / 2) / (m * n)
    return aucs, v10, v01


def delong_covariance(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """AUCs ``(k,)`` and their DeLong covariance matrix ``(k, k)``."""
    aucs, v10, v01 = structural_components(labels, scores)
    m, n = v10.shape[1], v01.shape[1]
    s10 = np.atleast_2d(np.cov(v10)) if m > 1 else np.zeros((len(aucs), len(aucs)))
    s01 = np.atleast_2d(np.cov(v01)) if n > 1 else np.zeros((len(aucs), len(aucs)))
    return aucs, s10 / m + s01 / n


@dataclass(frozen=True)
class AucInterval:
    """An AUC with its DeLong variance and confidence interval."""

    auc: float
    variance: float
    ci_low: float
    ci_high: float
    level: float
    n_positive: int
    n_negative: int

    def to_dict(self) -> dict[str, float | int]:
        """JSON-ready values."""
        return asdict(self)


def delong_auc(labels: np.ndarray, scores: np.ndarray, *, level: float = 0.95) -> AucInterval:
    """The AUC of ``scores`` for binary ``labels`` with its DeLong ``level`` interval.

    Raises:
        ValueError: Only one class present, or non-finite scores.
    """
    labels = np.asarray(labels).reshape(-1).astype(bool)
    aucs, cov = delong_covariance(labels, np.asarray(scores, dtype=np.float64).reshape(-1))
    auc, variance = float(aucs[0]), max(float(cov[0, 0]), 0.0)
    half = float(stats.norm.ppf(0.5 + level / 2)) * np.sqrt(variance)
    return AucInterval(
        auc=auc,
        variance=variance,
        ci_low=max(0.0, auc - half),
        ci_high=min(1.0, auc + half),
        level=level,
        n_positive=int(labels.sum()),
        n_negative=int((~labels).sum()),
    )


def delong_test(labels: np.ndarray, scores_a: np.ndarray, scores_b: np.ndarray) -> float:
    """Two-sided p-value of DeLong's test that two correlated AUCs are equal."""
    aucs, cov = delong_covariance(labels, np.vstack([scores_a, scores_b]))
    variance = cov[0, 0] + cov[1, 1] - 2 * cov[0, 1]
    if variance <= 0:
        return 1.0 if np.isclose(aucs[0], aucs[1]) else 0.0
    z = abs(aucs[0] - aucs[1]) / np.sqrt(variance)
    return float(2 * stats.norm.sf(z))
