"""Label-free embedding metrics against hand computations."""

from __future__ import annotations

import math

import numpy as np
import pytest

from napari_wsi_ml.evaluation.embeddings import (
    correlation_matrix,
    dead_dimensions,
    embedding_quality,
    mean_abs_offdiagonal_correlation,
    rankme,
    singular_value_distribution,
)


@pytest.mark.parametrize("rank", [1, 3, 7])
def test_rankme_of_an_identity_like_matrix_is_its_rank(rank: int) -> None:
    z = np.zeros((20, 10))
    z[np.arange(rank), np.arange(rank)] = 5.0  # r equal singular values, the rest zero
    assert rankme(z) == pytest.approx(rank, rel=1e-12)


def test_rankme_by_hand_for_two_unequal_singular_values() -> None:
    z = np.diag([3.0, 1.0])  # p = (3/4, 1/4)
    entropy = -(0.75 * math.log(0.75) + 0.25 * math.log(0.25))
    assert rankme(z) == pytest.approx(math.exp(entropy), rel=1e-12)
    np.testing.assert_allclose(singular_value_distribution(z), [0.75, 0.25])


def test_rankme_is_invariant_to_rotation_and_scale() -> None:
    rng = np.random.default_rng(0)
    z = rng.normal(size=(50, 8)) * np.linspace(0.1, 2.0, 8)
    rotation, _ = np.linalg.qr(rng.normal(size=(8, 8)))
    assert rankme(3.0 * z @ rotation) == pytest.approx(rankme(z), rel=1e-9)


def test_isotropic_gaussian_has_rankme_close_to_its_dimension() -> None:
    z = np.random.default_rng(1).normal(size=(20_000, 32))
    value = rankme(z)
    assert 31.5 < value <= 32.0


def test_collapsed_embedding_has_rankme_one_and_full_correlation() -> None:
    direction = np.random.default_rng(2).normal(size=16)
    z = np.random.default_rng(3).normal(size=(40, 1)) * direction  # every sample on one line
    assert rankme(z) == pytest.approx(1.0, abs=1e-6)
    assert mean_abs_offdiagonal_correlation(z) == pytest.approx(1.0)


def test_duplicated_columns_are_fully_correlated() -> None:
    x = np.random.default_rng(4).normal(size=(100, 1))
    z = np.hstack([x, x, -2 * x, 0.5 * x + 3])  # negatives and affine copies: |r| = 1
    assert mean_abs_offdiagonal_correlation(z) == pytest.approx(1.0)


def test_offdiagonal_correlation_by_hand() -> None:
    # Zero-mean columns: corr(a, b) = a·b / (|a| |b|) = 2√2 / (2 · 2) = 1/√2; c is orthogonal
    # to both (corr 0), so the mean over the three pairs is (1/√2) / 3.
    a = np.array([1.0, -1.0, 1.0, -1.0])
    b = np.array([1.0, -1.0, 0.0, 0.0]) * math.sqrt(2)
    c = np.array([1.0, 1.0, -1.0, -1.0])
    z = np.column_stack([a, b, c])
    corr = correlation_matrix(z)
    np.testing.assert_allclose(corr, [[1, 2**-0.5, 0], [2**-0.5, 1, 0], [0, 0, 1]], atol=1e-12)
    assert mean_abs_offdiagonal_correlation(z) == pytest.approx(2**-0.5 / 3)


def test_uncorrelated_gaussian_dimensions_have_small_correlation() -> None:
    z = np.random.default_rng(5).normal(size=(10_000, 20))
    # |r| of independent columns is about sqrt(2 / (pi N)) = 0.008 for N = 10 000
    assert mean_abs_offdiagonal_correlation(z) == pytest.approx(0.008, abs=0.002)


def test_dead_dimensions_are_counted_and_left_out_of_the_correlation() -> None:
    rng = np.random.default_rng(6)
    z = np.column_stack([rng.normal(size=30), np.full(30, 2.0), rng.normal(size=30)])
    assert dead_dimensions(z).tolist() == [False, True, False]
    assert correlation_matrix(z).shape == (2, 2)
    quality = embedding_quality(z)
    assert quality["dead_dimensions"] == 1 and quality["n"] == 30 and quality["dim"] == 3
    assert quality["rankme_fraction"] == pytest.approx(quality["rankme"] / 3)
    assert mean_abs_offdiagonal_correlation(z[:, :2]) is None  # one live dimension


@pytest.mark.parametrize("bad", [np.zeros(5), np.zeros((0, 4)), np.full((3, 3), np.nan)])
def test_bad_matrices_are_refused(bad: np.ndarray) -> None:
    with pytest.raises(ValueError):
        rankme(bad)


def test_all_zero_matrix_has_no_rank() -> None:
    with pytest.raises(ValueError, match="all-zero"):
        rankme(np.zeros((4, 3)))
