"""Slide-level evaluation: a slide's score is the mean of its top-k patch probabilities.

For each positive class, slides whose label is that class are positives and every other slide a
negative; the AUC of the slide scores comes with its DeLong interval, for the whole cohort and
per site, and a confusion matrix at a threshold.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from napari_wsi_ml.evaluation.delong import delong_auc


def top_k_mean(scores: np.ndarray, k: int) -> float:
    """Mean of the ``k`` largest ``scores`` (all of them when there are fewer than ``k``)."""
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    values = np.asarray(scores, dtype=np.float64).reshape(-1)
    if len(values) == 0:
        raise ValueError("a slide without scored patches has no top-k score")
    k = min(k, len(values))
    return float(np.partition(values, len(values) - k)[len(values) - k :].mean())


def slide_scores(slide_ids: Sequence[str], scores: np.ndarray, k: int) -> dict[str, float]:
    """Top-``k`` mean of the patch ``scores`` of each slide, in first-seen order."""
    ids = np.asarray(list(slide_ids))
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    if len(ids) != len(scores):
        raise ValueError(f"{len(ids)} slide ids for {len(scores)} scores")
    order = list(dict.fromkeys(ids.tolist()))
    return {slide: top_k_mean(scores[ids == slide], k) for slide in order}


def auc_summary(labels: Sequence[bool], scores: Sequence[float]) -> dict[str, object]:
    """AUC with DeLong 95 % CI, or ``{"auc": None, …}`` when a class is missing."""
    labels_array = np.asarray(labels, dtype=bool)
    n_pos, n_neg = int(labels_array.sum()), int((~labels_array).sum())
    if n_pos == 0 or n_neg == 0:
        return {"auc": None, "ci_low": None, "ci_high": None, "n_positive": n_pos,
                "n_negative": n_neg}  # fmt: skip
    result = delong_auc(labels_array, np.asarray(scores, dtype=np.float64)).to_dict()
    return {k: result[k] for k in ("auc", "variance", "ci_low", "ci_high", "n_positive",
                                   "n_negative")}  # fmt: skip


def slide_evaluation(
    scores: Mapping[str, float],
    labels: Mapping[str, str],
    positive: str,
    *,
    sites: Mapping[str, str] | None = None,
    threshold: float = 0.5,
) -> dict[str, object]:
    """Slide-level AUC (DeLong 95 % CI), per site, and the confusion at ``threshold``.

    Args:
        scores: Slide id → score for class ``positive`` (e.g. from :func:`slide_scores`).
        labels: Slide id → slide label.
        positive: The label that counts as positive.
        sites: Slide id → site, for per-site AUCs.
        threshold: Score at or above which a slide is called positive.
    """
    slides = [s for s in scores if s in labels]
    truth = [labels[s] == positive for s in slides]
    values = [scores[s] for s in slides]
    called = [v >= threshold for v in values]
    confusion = [
        [sum(not t and not c for t, c in zip(truth, called, strict=True)),
         sum(not t and c for t, c in zip(truth, called, strict=True))],
        [sum(t and not c for t, c in zip(truth, called, strict=True)),
         sum(t and c for t, c in zip(truth, called, strict=True))],
    ]  # fmt: skip
    out: dict[str, object] = {
        "positive": positive,
        "threshold": threshold,
        **auc_summary(truth, values),
        "confusion": confusion,
        "slides": {s: {"score": scores[s], "label": labels[s]} for s in slides},
    }
    if sites is not None:
        per_site: dict[str, object] = {}
        for site in sorted({sites.get(s, "") for s in slides}):
            chosen = [i for i, s in enumerate(slides) if sites.get(s, "") == site]
            per_site[site] = auc_summary([truth[i] for i in chosen], [values[i] for i in chosen])
        out["per_site"] = per_site
    return out
