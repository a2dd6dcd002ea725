"""Chance-corrected agreement on categorical ratings, computed from rating patterns.

Ratings are an ``(n_units, n_raters)`` integer array of categories ``0 .. C-1`` with ``-1`` for
a missing rating. They are compressed into unique *patterns* (rows) with counts; every
statistic here is a function of a weight vector over patterns, vectorised over leading axes,
so that a bootstrap is a matrix of resampled pattern counts and costs one call.
"""

from __future__ import annotations

import numpy as np

MISSING = -1


def patterns(ratings: np.ndarray, n_categories: int) -> tuple[np.ndarray, np.ndarray]:
    """Unique rating rows and their counts.

    Args:
        ratings: ``(n_units, n_raters)`` ints in ``-1 .. n_categories-1``.
        n_categories: Number of categories.

    Returns:
        ``(patterns (P, n_raters), counts (P,))``.
    """
    ratings = np.asarray(ratings, dtype=np.int64)
    base = n_categories + 1
    powers = base ** np.arange(ratings.shape[1], dtype=np.int64)
    codes = (ratings + 1) @ powers
    uniq, counts = np.unique(codes, return_counts=True)
    decoded = (uniq[:, None] // powers[None, :]) % base - 1
    return decoded.astype(np.int64), counts.astype(np.float64)


def category_counts(pats: np.ndarray, n_categories: int) -> np.ndarray:
    """``(P, C)``: how many raters gave each category in each pattern (missing excluded)."""
    out = np.zeros((pats.shape[0], n_categories))
    for col in pats.T:
        ok = col >= 0
        out[np.flatnonzero(ok), col[ok]] += 1
    return out


def disagreement_weights(n_categories: int, weighting: str | None) -> np.ndarray:
    """Cohen's disagreement weights: 0/1, ``linear`` |i-j| or ``quadratic`` (i-j)²."""
    idx = np.arange(n_categories)
    diff = np.abs(idx[:, None] - idx[None, :]).astype(float)
    if weighting is None:
        return (diff > 0).astype(float)
    if weighting == "linear":
        return diff
    if weighting == "quadratic":
        return diff**2
    raise ValueError(f"weighting must be None, 'linear' or 'quadratic', got {weighting!r}")


def confusion(pats: np.ndarray, w: np.ndarray, i: int, j: int, n_categories: int) -> np.ndarray:
    """Confusion matrices ``(..., C, C)`` of raters ``i`` (rows) and ``j`` (units both rated)."""
    a, b = pats[:, i], pats[:, j]
    ok = (a >= 0) & (b >= 0)
    onehot = np.zeros((pats.shape[0], n_categories * n_categories))
    onehot[np.flatnonzero(ok), a[ok] * n_categories + b[ok]] = 1.0
    return (np.asarray(w) @ onehot).reshape(*np.shape(w)[:-1], n_categories, n_categories)


def cohen_kappa_from_confusion(cm: np.ndarray, weighting: str | None = None) -> np.ndarray:
    """Cohen's κ of confusion matrices ``(..., C, C)`` (as scikit-learn's cohen_kappa_score)."""
    cm = np.asarray(cm, dtype=float)
    n_categories = cm.shape[-1]
    total = cm.sum(axis=(-2, -1), keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        expected = cm.sum(-1, keepdims=True) * cm.sum(-2, keepdims=True) / total
        weights = disagreement_weights(n_categories, weighting)
        observed_d = (weights * cm).sum(axis=(-2, -1))
        expected_d = (weights * expected).sum(axis=(-2, -1))
        return 1.0 - observed_d / expected_d


def cohen_kappa(
    pats: np.ndarray, w: np.ndarray, i: int, j: int, n_categories: int, weighting: str | None
) -> np.ndarray:
    """Cohen's κ of raters ``i`` and ``j`` for pattern weights ``w`` (..., P)."""
    return cohen_kappa_from_confusion(confusion(pats, w, i, j, n_categories), weighting)


def fleiss_kappa(pats: np.ndarray, w: np.ndarray, n_categories: int) -> np.ndarray:
    """Fleiss' κ over units rated by every rater (as statsmodels' fleiss_kappa)."""
    complete = (pats >= 0).all(axis=1)
    counts = category_counts(pats, n_categories)
    n = pats.shape[1]
    w = np.asarray(w, dtype=float) * complete
    units = w.sum(-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        p_unit = ((counts**2).sum(1) - n) / (n * (n - 1))
        p_bar = (w @ p_unit) / units
        p_cat = (w @ counts) / (units[..., None] * n)
        p_e = (p_cat**2).sum(-1)
        return (p_bar - p_e) / (1 - p_e)


def krippendorff_alpha(pats: np.ndarray, w: np.ndarray, n_categories: int) -> np.ndarray:
    """Krippendorff's α, nominal, tolerating missing ratings (as the krippendorff package)."""
    counts = category_counts(pats, n_categories)
    m = counts.sum(1)
    pairable = m >= 2
    w = np.asarray(w, dtype=float) * pairable
    with np.errstate(invalid="ignore", divide="ignore"):
        unit_d = np.where(pairable, (m**2 - (counts**2).sum(1)) / np.maximum(m - 1, 1), 0.0)
        d_observed = w @ unit_d
        n_c = w @ counts
        n_total = n_c.sum(-1)
        d_expected = n_total**2 - (n_c**2).sum(-1)
        return 1.0 - (n_total - 1) * d_observed / d_expected


def percent_agreement(pats: np.ndarray, w: np.ndarray, n_categories: int) -> np.ndarray:
    """Mean share of agreeing rater pairs per unit (units with at least two ratings)."""
    counts = category_counts(pats, n_categories)
    m = counts.sum(1)
    pairable = m >= 2
    w = np.asarray(w, dtype=float) * pairable
    per_unit = np.where(pairable, (counts * (counts - 1)).sum(1) / np.maximum(m * (m - 1), 1), 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (w @ per_unit) / w.sum(-1)


def one_vs_rest(pats: np.ndarray, category: int) -> np.ndarray:
    """Binary patterns: 1 where the rating is ``category``, 0 otherwise, missing kept."""
    return np.where(pats < 0, MISSING, (pats == category).astype(np.int64))
