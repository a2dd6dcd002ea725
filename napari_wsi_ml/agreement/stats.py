"""Agreement statistics with bootstrap confidence intervals, per class and overall.

Categorical statistics (Cohen's κ, Fleiss' κ, Krippendorff's α, percent agreement) come from
rating patterns (see :mod:`kappa`); region statistics (Dice, IoU) from exact areas, with
intervals from resampled cell (or slide) area sums.
"""

from __future__ import annotations

import numpy as np

from napari_wsi_ml.agreement import kappa
from napari_wsi_ml.agreement.bootstrap import estimate, resample_counts
from napari_wsi_ml.agreement.overlap import dice_iou


def pair_key(a: str, b: str) -> str:
    """JSON key of a rater pair."""
    return f"{a} vs {b}"


def _categorical(
    pats: np.ndarray,
    counts: np.ndarray,
    reps: np.ndarray,
    n_categories: int,
    names: list[str],
    weighting: str | None,
) -> dict[str, object]:
    n = len(names)
    matrix = np.eye(n)
    pairs = {}
    for i in range(n):
        for j in range(i + 1, n):
            value = float(kappa.cohen_kappa(pats, counts, i, j, n_categories, weighting))
            boot = kappa.cohen_kappa(pats, reps, i, j, n_categories, weighting)
            matrix[i, j] = matrix[j, i] = value
            pairs[pair_key(names[i], names[j])] = estimate(value, boot)
    out: dict[str, object] = {
        "cohen_kappa": {
            "weighting": weighting or "unweighted",
            "raters": names,
            "matrix": _matrix(matrix),
            "pairs": pairs,
        }
    }
    for key, fn in (
        ("fleiss_kappa", kappa.fleiss_kappa),
        ("krippendorff_alpha", kappa.krippendorff_alpha),
        ("percent_agreement", kappa.percent_agreement),
    ):
        out[key] = estimate(float(fn(pats, counts, n_categories)), fn(pats, reps, n_categories))
    return out


def categorical_metrics(
    pats: np.ndarray,
    counts: np.ndarray,
    reps: np.ndarray,
    categories: list[str],
    names: list[str],
    *,
    weighting: str | None = None,
) -> dict[str, dict[str, object]]:
    """Overall (all categories) and per-class (one vs rest) categorical agreement.

    Args:
        pats: ``(P, R)`` rating patterns (see :func:`kappa.patterns`).
        counts: ``(P,)`` how many units show each pattern.
        reps: ``(B, P)`` bootstrap replicates of ``counts``.
        categories: Category names, background first.
        names: Rater names.
        weighting: ``None``, ``"linear"`` or ``"quadratic"`` for the overall Cohen's κ
            (categories in the given order are then ordinal).

    Returns:
        ``{"overall": {...}, "per_class": {class: {...}}}``.
    """
    overall = _categorical(pats, counts, reps, len(categories), names, weighting)
    per_class = {
        cls: _categorical(kappa.one_vs_rest(pats, c), counts, reps, 2, names, None)
        for c, cls in enumerate(categories)
        if c > 0
    }
    return {"overall": overall, "per_class": per_class}


def ratio_replicates(
    values: np.ndarray, n_boot: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cell bootstrap of summed ``(intersection, area_a, area_b)`` rows.

    Returns:
        ``(point (3,), dice replicates (B,), iou replicates (B,))`` from cell sums.
    """
    values = np.asarray(values, dtype=np.float64).reshape(-1, 3)
    nonzero = values.any(axis=1)
    uniq, counts = np.unique(values[nonzero], axis=0, return_counts=True)
    uniq = np.vstack([uniq, np.zeros((1, 3))])
    counts = np.append(counts, (~nonzero).sum()).astype(float)
    sums = resample_counts(counts, n_boot, rng) @ uniq
    dice, iou = dice_iou(sums[:, 1], sums[:, 2], sums[:, 0])
    return values.sum(0), dice, iou


def overlap_entry(
    exact: tuple[float, float, float],
    approx: np.ndarray | None,
    dice_reps: np.ndarray,
    iou_reps: np.ndarray,
) -> tuple[dict, dict]:
    """Dice and IoU estimates: exact value, interval from replicates.

    When the replicates come from approximate (rastered) cell areas, the interval is shifted
    by the difference between the exact value and the approximate one.
    """
    inter, area_a, area_b = exact
    dice, iou = (float(v) for v in dice_iou(area_a, area_b, inter))
    if approx is not None:
        d_approx, i_approx = (float(v) for v in dice_iou(approx[1], approx[2], approx[0]))
        if np.isfinite(d_approx) and np.isfinite(dice):
            dice_reps = dice_reps + (dice - d_approx)
            iou_reps = iou_reps + (iou - i_approx)
    return estimate(dice, dice_reps), estimate(iou, iou_reps)


def _matrix(m: np.ndarray) -> list[list[float | None]]:
    return [[float(v) if np.isfinite(v) else None for v in row] for row in m]


def matrix_json(m: np.ndarray) -> list[list[float | None]]:
    """A float matrix for JSON (NaN becomes ``None``)."""
    return _matrix(np.asarray(m, dtype=float))
