"""DeLong AUC variance against independent computations; slide-level top-k scores."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from napari_wsi_ml.evaluation import (
    classification_metrics,
    delong_auc,
    delong_covariance,
    delong_test,
    slide_evaluation,
    slide_scores,
    top_k_mean,
)


def _psi(x: float, y: float) -> float:
    return 1.0 if x > y else 0.5 if x == y else 0.0


def plain_delong(labels: np.ndarray, scores: np.ndarray) -> tuple[float, float]:
    """DeLong's structural components written out pair by pair (O(m n))."""
    pos, neg = scores[labels], scores[~labels]
    m, n = len(pos), len(neg)
    v10 = np.array([sum(_psi(x, y) for y in neg) / n for x in pos])
    v01 = np.array([sum(_psi(x, y) for x in pos) / m for y in neg])
    auc = v10.mean()
    s10 = ((v10 - auc) ** 2).sum() / (m - 1)
    s01 = ((v01 - auc) ** 2).sum() / (n - 1)
    return auc, s10 / m + s01 / n


@pytest.mark.parametrize("ties", [False, True])
def test_delong_matches_pairwise_formula_and_sklearn(ties: bool) -> None:
    rng = np.random.default_rng(5)
    labels = rng.random(70) < 0.4
    scores = rng.normal(size=70) + 1.1 * labels
    if ties:
        scores = np.round(scores, 0)  # many tied scores across the classes
    result = delong_auc(labels, scores)
    auc, variance = plain_delong(labels, scores)
    assert result.auc == pytest.approx(auc, abs=1e-12)
    assert result.auc == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)
    assert result.variance == pytest.approx(variance, rel=1e-10)
    half = 1.959963984540054 * np.sqrt(variance)
    assert result.ci_low == pytest.approx(max(0, auc - half), abs=1e-9)
    assert result.ci_high == pytest.approx(min(1, auc + half), abs=1e-9)
    assert (result.n_positive, result.n_negative) == (labels.sum(), (~labels).sum())


def test_delong_variance_agrees_with_bootstrap() -> None:
    rng = np.random.default_rng(11)
    labels = rng.random(400) < 0.5
    scores = rng.normal(size=400) + 0.8 * labels
    result = delong_auc(labels, scores)
    pos, neg = np.flatnonzero(labels), np.flatnonzero(~labels)
    boot = []
    for _ in range(600):  # stratified bootstrap, as pROC does
        idx = np.concatenate([rng.choice(pos, len(pos)), rng.choice(neg, len(neg))])
        boot.append(roc_auc_score(labels[idx], scores[idx]))
    assert np.std(boot, ddof=1) == pytest.approx(np.sqrt(result.variance), rel=0.12)
    assert 0.6 < result.ci_low < result.auc < result.ci_high < 0.85


def test_delong_covariance_of_two_scorers_and_test() -> None:
    rng = np.random.default_rng(2)
    labels = rng.random(120) < 0.5
    good = rng.normal(size=120) + 2.0 * labels
    noisy = good + rng.normal(scale=3.0, size=120)
    aucs, cov = delong_covariance(labels, np.vstack([good, noisy]))
    assert aucs[0] == pytest.approx(roc_auc_score(labels, good))
    assert cov[0, 0] == pytest.approx(plain_delong(labels, good)[1], rel=1e-10)
    assert cov[0, 1] == pytest.approx(cov[1, 0]) and cov[0, 1] > 0  # correlated scorers
    assert delong_test(labels, good, noisy) < 0.01
    assert delong_test(labels, good, good) == 1.0


def test_delong_perfect_separation_and_one_class() -> None:
    result = delong_auc(np.array([0, 0, 1, 1]), np.array([0.1, 0.2, 0.8, 0.9]))
    assert (result.auc, result.variance, result.ci_high) == (1.0, 0.0, 1.0)
    with pytest.raises(ValueError, match="positives and negatives"):
        delong_auc(np.array([1, 1]), np.array([0.3, 0.4]))


def test_top_k_mean_and_slide_scores() -> None:
    assert top_k_mean(np.array([0.1, 0.9, 0.5, 0.7]), 2) == pytest.approx(0.8)
    assert top_k_mean(np.array([0.2, 0.4]), 5) == pytest.approx(0.3)  # fewer than k
    with pytest.raises(ValueError):
        top_k_mean(np.array([]), 1)
    ids = ["b", "a", "b", "a", "b"]
    scores = np.array([0.9, 0.1, 0.2, 0.3, 0.8])
    assert slide_scores(ids, scores, 2) == pytest.approx({"b": 0.85, "a": 0.2})
    assert list(slide_scores(ids, scores, 1)) == ["b", "a"]


def test_slide_evaluation_per_site_and_confusion() -> None:
    scores = {"s1": 0.9, "s2": 0.2, "s3": 0.7, "s4": 0.6, "s5": 0.1}
    labels = {"s1": "tumour", "s2": "normal", "s3": "tumour", "s4": "normal", "s5": "normal"}
    sites = {"s1": "A", "s2": "A", "s3": "B", "s4": "B", "s5": "B"}
    out = slide_evaluation(scores, labels, "tumour", sites=sites, threshold=0.5)
    assert out["auc"] == pytest.approx(1.0)
    assert out["confusion"] == [[2, 1], [0, 2]]
    assert out["per_site"]["A"]["auc"] == pytest.approx(1.0)
    assert out["per_site"]["B"]["n_positive"] == 1 and out["per_site"]["B"]["n_negative"] == 2
    only_normal = slide_evaluation({"s2": 0.2}, labels, "tumour")
    assert only_normal["auc"] is None


def test_classification_metrics() -> None:
    labels = np.array([0, 0, 0, 1, 1, 2])
    probs = np.array(
        [[0.8, 0.1, 0.1], [0.6, 0.3, 0.1], [0.2, 0.7, 0.1], [0.1, 0.8, 0.1], [0.3, 0.6, 0.1],
         [0.2, 0.2, 0.6]]
    )  # fmt: skip
    out = classification_metrics(labels, probs, ["a", "b", "c"], loss=0.5)
    assert out["accuracy"] == pytest.approx(5 / 6)
    assert out["balanced_accuracy"] == pytest.approx((2 / 3 + 1 + 1) / 3)
    assert out["auc"]["a"] == pytest.approx(roc_auc_score(labels == 0, probs[:, 0]))
    assert out["confusion"] == [[2, 1, 0], [0, 2, 0], [0, 0, 1]]
    assert out["loss"] == 0.5 and out["n"] == 6
    absent = classification_metrics(labels[:3], probs[:3], ["a", "b", "c"])
    assert absent["auc"]["a"] is None and absent["balanced_accuracy"] is None
