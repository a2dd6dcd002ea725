"""ROC curves with a pointwise confidence band and the DeLong interval of their AUC.

The curve is the empirical ROC: one point per distinct score threshold (as
``sklearn.metrics.roc_curve``, collinear points dropped unless asked otherwise).

The band is **pointwise**: at each false-positive rate ``t`` it is a 95 % interval for the
sensitivity ``R(t)``; it is not a simultaneous band for the whole curve. It is built from the
DeLong structural components (:func:`~napari_wsi_ml.evaluation.delong.structural_components`):
a positive's component ``V10_i`` is the fraction of negatives it outranks, so its placement
value ``1 − V10_i`` is the false-positive rate at which it is detected, and the empirical ROC is
their distribution function, ``R(t) = mean_i [1 − V10_i ≤ t]``. Its variance has two parts
(Hsieh & Turnbull 1996; Pepe 2003, §5.2): the binomial spread of the ``m`` positives,
``R(1 − R)/m``, and the noise of the placement values from ``n`` finite negatives,
``R'(t)² · t(1 − t)/n``. The slope ``R'(t)`` is a central difference of the empirical ROC over
``±0.5 · n^(−1/3)``. The interval is Wilson's score interval with the effective sample size
``R(1 − R)/var`` (so it stays inside [0, 1] and keeps a width where ``R`` is 0 or 1); ``R`` in
the binomial part is shrunk by half a case to avoid a zero variance. In simulations with
binormal scores (20–300 cases per class, ``benchmarks/bench_roc_band.py``) its pointwise
coverage is 0.93–0.98 for a nominal 0.95 at false-positive rates of 0.1 and above, and
0.87–0.90 at 0.05 with 60 cases per class or fewer (``tests/evaluation/test_roc.py`` checks it).

The AUC's interval is DeLong's (:func:`~napari_wsi_ml.evaluation.delong.delong_auc`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

from napari_wsi_ml.evaluation.delong import AucInterval, delong_auc, structural_components

BAND_POINTS = 201
SLOPE_BANDWIDTH = 0.5  # × n^(-1/3), in false-positive rate


def _binary(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    labels = np.asarray(labels).reshape(-1).astype(bool)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    if len(labels) != len(scores):
        raise ValueError(f"{len(scores)} scores for {len(labels)} labels")
    if not np.isfinite(scores).all():
        raise ValueError("scores must be finite")
    if labels.all() or not labels.any():
        raise ValueError("a ROC curve needs positives and negatives")
    return labels, scores


def roc_points(
    labels: np.ndarray, scores: np.ndarray, *, drop_intermediate: bool = True
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The empirical ROC curve: ``(fpr, tpr, thresholds)``, thresholds descending.

    The first point is ``(0, 0)`` at threshold ``+inf``; a case is called positive when its
    score is ``>=`` the threshold.

    Args:
        labels: ``(N,)`` booleans (or 0/1): positive or not.
        scores: ``(N,)``: higher = more likely positive.
        drop_intermediate: Drop points that lie on a straight segment between their neighbours.

    Raises:
        ValueError: Only one class present, lengths differ, or a score is not finite.
    """
    labels, scores = _binary(labels, scores)
    order = np.argsort(-scores, kind="mergesort")
    sorted_scores, sorted_labels = scores[order], labels[order]
    last_of_each = np.r_[np.flatnonzero(np.diff(sorted_scores)), len(scores) - 1]
    tps = np.cumsum(sorted_labels)[last_of_each].astype(np.float64)
    fps = (last_of_each + 1) - tps
    thresholds = sorted_scores[last_of_each]
    if drop_intermediate and len(tps) > 2:
        bends = np.logical_or(np.diff(fps, 2), np.diff(tps, 2))
        keep = np.flatnonzero(np.r_[True, bends, True])
        tps, fps, thresholds = tps[keep], fps[keep], thresholds[keep]
    tpr = np.r_[0.0, tps / tps[-1]]
    fpr = np.r_[0.0, fps / fps[-1]]
    return fpr, tpr, np.r_[np.inf, thresholds]


@dataclass(frozen=True)
class RocBand:
    """A ROC curve, its pointwise confidence band and its AUC with the DeLong interval.

    Attributes:
        fpr: False-positive rates of the curve's points (1 − specificity).
        tpr: Their sensitivities.
        thresholds: The score threshold of each point (descending, the first ``inf``).
        band_fpr: False-positive rates at which the band is given.
        band_low: Lower bound of the sensitivity at each ``band_fpr``.
        band_high: Upper bound.
        auc: The AUC with its DeLong interval (same ``level``).
        level: Confidence level of band and interval.
    """

    fpr: np.ndarray
    tpr: np.ndarray
    thresholds: np.ndarray
    band_fpr: np.ndarray
    band_low: np.ndarray
    band_high: np.ndarray
    auc: AucInterval
    level: float


def empirical_sensitivity(placement: np.ndarray, fpr: np.ndarray) -> np.ndarray:
    """``R(t)``: fraction of positives whose placement value is at most ``t``, for each ``t``."""
    ordered = np.sort(np.asarray(placement, dtype=np.float64))
    return np.searchsorted(ordered, np.asarray(fpr) + 1e-12, side="right") / len(ordered)


def sensitivity_band(
    labels: np.ndarray,
    scores: np.ndarray,
    fpr: np.ndarray | None = None,
    *,
    level: float = 0.95,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pointwise ``level`` interval of the sensitivity at each false-positive rate.

    See the module docstring for the method.

    Returns:
        ``(fpr, low, high)``; ``fpr`` defaults to 201 points from 0 to 1.
    """
    labels, scores = _binary(labels, scores)
    grid = np.linspace(0.0, 1.0, BAND_POINTS) if fpr is None else np.asarray(fpr, np.float64)
    _, v10, _ = structural_components(labels, scores)
    placement = 1.0 - v10[0]
    m, n = int(labels.sum()), int((~labels).sum())
    sens = empirical_sensitivity(placement, grid)
    half_width = max(SLOPE_BANDWIDTH * n ** (-1.0 / 3.0), 1.0 / n)
    below, above = np.clip(grid - half_width, 0, 1), np.clip(grid + half_width, 0, 1)
    slope = (empirical_sensitivity(placement, above) - empirical_sensitivity(placement, below)) / (
        above - below
    )
    shrunk = (m * sens + 0.5) / (m + 1)
    variance = shrunk * (1 - shrunk) / m + slope**2 * grid * (1 - grid) / n
    effective = shrunk * (1 - shrunk) / variance
    z = float(stats.norm.ppf(0.5 + level / 2))
    z2 = z * z
    centre = (sens + z2 / (2 * effective)) / (1 + z2 / effective)
    half = (
        z / (1 + z2 / effective) * np.sqrt(sens * (1 - sens) / effective + z2 / (4 * effective**2))
    )
    return grid, np.clip(centre - half, 0.0, 1.0), np.clip(centre + half, 0.0, 1.0)


def roc_with_band(labels: np.ndarray, scores: np.ndarray, *, level: float = 0.95) -> RocBand:
    """The ROC curve of ``scores`` for binary ``labels``, its band and its AUC interval.

    Raises:
        ValueError: Only one class present, lengths differ, or a score is not finite.
    """
    fpr, tpr, thresholds = roc_points(labels, scores)
    band_fpr, low, high = sensitivity_band(labels, scores, level=level)
    return RocBand(
        fpr=fpr,
        tpr=tpr,
        thresholds=thresholds,
        band_fpr=band_fpr,
        band_low=low,
        band_high=high,
        auc=delong_auc(labels, scores, level=level),
        level=level,
    )
