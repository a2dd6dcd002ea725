"""ROC curves: the same points as scikit-learn, and a band that covers the true curve."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from sklearn.metrics import roc_auc_score, roc_curve

from napari_wsi_ml.evaluation.roc import roc_points, roc_with_band, sensitivity_band


@pytest.mark.parametrize("drop", [True, False])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_roc_points_match_sklearn(seed: int, drop: bool) -> None:
    rng = np.random.default_rng(seed)
    labels = rng.random(300) < 0.3
    # rounded scores: many ties, which is where ROC implementations differ
    scores = np.round(rng.normal(labels * 1.0, 1.0), 1)
    fpr, tpr, thresholds = roc_points(labels, scores, drop_intermediate=drop)
    ref_fpr, ref_tpr, ref_thresholds = roc_curve(labels, scores, drop_intermediate=drop)
    np.testing.assert_allclose(fpr, ref_fpr)
    np.testing.assert_allclose(tpr, ref_tpr)
    np.testing.assert_array_equal(thresholds[1:], ref_thresholds[1:])
    assert thresholds[0] == np.inf
    assert np.trapezoid(tpr, fpr) == pytest.approx(roc_auc_score(labels, scores))


def test_roc_refuses_one_class_and_bad_scores() -> None:
    with pytest.raises(ValueError, match="positives and negatives"):
        roc_points(np.ones(5, bool), np.arange(5.0))
    with pytest.raises(ValueError, match="finite"):
        roc_points(np.array([0, 1, 0, 1]), np.array([0.1, np.nan, 0.3, 0.9]))


def test_band_and_auc_interval() -> None:
    rng = np.random.default_rng(3)
    labels = np.r_[np.ones(80, bool), np.zeros(120, bool)]
    scores = np.r_[rng.normal(1.5, 1, 80), rng.normal(0, 1, 120)]
    roc = roc_with_band(labels, scores)
    assert roc.auc.auc == pytest.approx(roc_auc_score(labels, scores))
    assert roc.auc.ci_low < roc.auc.auc < roc.auc.ci_high
    assert roc.band_fpr[0] == 0.0 and roc.band_fpr[-1] == 1.0
    assert np.all(roc.band_low <= roc.band_high)
    assert np.all((roc.band_low >= 0) & (roc.band_high <= 1))
    # the curve lies inside its band at the band's points (upper envelope of the staircase)
    curve = np.array([roc.tpr[roc.fpr <= t + 1e-12].max() for t in roc.band_fpr])
    inside = (roc.band_low - 1e-9 <= curve) & (curve <= roc.band_high + 1e-9)
    assert inside.mean() > 0.97
    # four times the cases: about half the width
    big_labels = np.r_[np.ones(320, bool), np.zeros(480, bool)]
    big_scores = np.r_[rng.normal(1.5, 1, 320), rng.normal(0, 1, 480)]
    _, low, high = sensitivity_band(big_labels, big_scores, roc.band_fpr)
    ratio = np.median((high - low)[20:180]) / np.median((roc.band_high - roc.band_low)[20:180])
    assert 0.35 < ratio < 0.65


def test_band_covers_the_true_binormal_curve() -> None:
    """Pointwise coverage of the 95 % band, over 300 binormal samples of 60 + 60 cases."""
    rng = np.random.default_rng(7)
    separation, fprs = 1.2, np.array([0.1, 0.3, 0.6])
    truth = stats.norm.sf(stats.norm.isf(fprs) - separation)
    labels = np.r_[np.ones(60, bool), np.zeros(60, bool)]
    covered = np.zeros(len(fprs))
    for _ in range(300):
        scores = np.r_[rng.normal(separation, 1, 60), rng.normal(0, 1, 60)]
        _, low, high = sensitivity_band(labels, scores, fprs)
        covered += (low <= truth) & (truth <= high)
    coverage = covered / 300
    assert np.all((coverage > 0.9) & (coverage < 0.995)), coverage
