"""Categorical agreement equals scikit-learn, statsmodels and krippendorff on the same ratings."""

from __future__ import annotations

import krippendorff
import numpy as np
import pytest
from sklearn.metrics import cohen_kappa_score
from statsmodels.stats.inter_rater import aggregate_raters, fleiss_kappa

from napari_wsi_ml.agreement import kappa
from napari_wsi_ml.agreement.bootstrap import percentile_ci, resample_counts, resample_groups


def noisy_ratings(n_units: int, n_raters: int, n_cat: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, n_cat, n_units)
    ratings = np.repeat(truth[:, None], n_raters, axis=1)
    flip = rng.random((n_units, n_raters)) < 0.3
    ratings[flip] = rng.integers(0, n_cat, flip.sum())
    return ratings


@pytest.mark.parametrize("weighting", [None, "linear", "quadratic"])
def test_cohen_kappa_equals_sklearn(weighting):
    ratings = noisy_ratings(5000, 3, 4, seed=1)
    pats, counts = kappa.patterns(ratings, 4)
    for i, j in [(0, 1), (0, 2), (1, 2)]:
        ours = kappa.cohen_kappa(pats, counts, i, j, 4, weighting)
        ref = cohen_kappa_score(ratings[:, i], ratings[:, j], weights=weighting)
        assert ours == pytest.approx(ref, abs=1e-12)


def test_cohen_kappa_skips_units_missing_a_rating():
    ratings = noisy_ratings(2000, 2, 3, seed=2)
    ratings[::7, 1] = -1
    pats, counts = kappa.patterns(ratings, 3)
    both = ratings[:, 1] >= 0
    ref = cohen_kappa_score(ratings[both, 0], ratings[both, 1])
    assert kappa.cohen_kappa(pats, counts, 0, 1, 3, None) == pytest.approx(ref, abs=1e-12)


def test_fleiss_kappa_equals_statsmodels():
    ratings = noisy_ratings(3000, 4, 3, seed=3)
    pats, counts = kappa.patterns(ratings, 3)
    table, _ = aggregate_raters(ratings, n_cat=3)
    assert kappa.fleiss_kappa(pats, counts, 3) == pytest.approx(fleiss_kappa(table), abs=1e-12)


def test_krippendorff_alpha_equals_package_with_missing_values():
    ratings = noisy_ratings(3000, 3, 4, seed=4)
    rng = np.random.default_rng(5)
    ratings[rng.random(ratings.shape) < 0.2] = -1
    pats, counts = kappa.patterns(ratings, 4)
    reliability = np.where(ratings < 0, np.nan, ratings).T.astype(float)
    ref = krippendorff.alpha(reliability_data=reliability, level_of_measurement="nominal")
    assert kappa.krippendorff_alpha(pats, counts, 4) == pytest.approx(ref, abs=1e-10)


def test_percent_agreement_for_two_raters_is_share_of_equal_labels():
    ratings = noisy_ratings(1000, 2, 3, seed=6)
    pats, counts = kappa.patterns(ratings, 3)
    expected = np.mean(ratings[:, 0] == ratings[:, 1])
    assert kappa.percent_agreement(pats, counts, 3) == pytest.approx(expected)


def test_statistics_are_vectorised_over_replicates():
    ratings = noisy_ratings(4000, 3, 3, seed=7)
    pats, counts = kappa.patterns(ratings, 3)
    reps = resample_counts(counts, 50, np.random.default_rng(0))
    assert reps.shape == (50, pats.shape[0])
    assert np.allclose(reps.sum(1), 4000)
    vec = kappa.fleiss_kappa(pats, reps, 3)
    one_by_one = [kappa.fleiss_kappa(pats, r, 3) for r in reps]
    assert np.allclose(vec, one_by_one)
    low, high = percentile_ci(vec)
    assert low < kappa.fleiss_kappa(pats, counts, 3) < high


def test_bootstrap_interval_covers_like_a_cell_bootstrap():
    ratings = noisy_ratings(2000, 2, 3, seed=8)
    pats, counts = kappa.patterns(ratings, 3)
    rng = np.random.default_rng(1)
    fast = kappa.cohen_kappa(pats, resample_counts(counts, 400, rng), 0, 1, 3, None)
    slow = []
    for _ in range(400):
        idx = rng.integers(0, 2000, 2000)
        slow.append(cohen_kappa_score(ratings[idx, 0], ratings[idx, 1]))
    assert np.std(fast) == pytest.approx(np.std(slow), rel=0.2)
    assert np.mean(fast) == pytest.approx(np.mean(slow), abs=0.01)


def test_group_resampling_sums_whole_groups():
    per_group = np.array([[1.0, 0.0], [0.0, 10.0], [5.0, 5.0]])
    reps = resample_groups(per_group, 200, np.random.default_rng(0))
    totals = reps.sum(1)
    assert set(np.unique(totals)) <= {3.0, 12.0, 21.0, 30.0}
    assert reps.shape == (200, 2)
