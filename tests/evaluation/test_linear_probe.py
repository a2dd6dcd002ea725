"""The logistic-regression probe on frozen features."""

from __future__ import annotations

import numpy as np
import pytest

from napari_wsi_ml.evaluation.linear_probe import fit_linear_probe


def blobs(n: int, centres: list[tuple[float, float]], seed: int, spread: float = 0.3):
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(len(centres)), n)
    features = np.asarray(centres, dtype=float)[labels] + spread * rng.normal(size=(len(labels), 2))
    return features, labels


def test_separable_classes_are_probed_perfectly_with_a_column_per_task_class() -> None:
    train = blobs(30, [(0, 0), (3, 0)], seed=0)
    # the task has 3 classes; class 2 has no training patch: its probability is 0
    probe = fit_linear_probe(train, 3, c_values=(1.0,))
    test_x, test_y = blobs(20, [(0, 0), (3, 0)], seed=1)
    probs = probe.probabilities(test_x)
    assert probs.shape == (40, 3)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0)
    assert (probs[:, 2] == 0).all()
    assert (probs.argmax(axis=1) == test_y).all()
    assert probe.c == 1.0 and probe.validation == {}


def test_c_is_chosen_on_validation_balanced_accuracy() -> None:
    # overlapping classes with a heavy imbalance: strong regularisation predicts the majority
    train = blobs(40, [(0, 0), (1.0, 0)], seed=2, spread=0.6)
    keep = np.r_[np.arange(40), np.arange(40, 44)]  # 40 of class 0, 4 of class 1
    train = (train[0][keep], train[1][keep])
    val = blobs(30, [(0, 0), (1.0, 0)], seed=3, spread=0.6)
    probe = fit_linear_probe(train, 2, val=val, c_values=(1e-4, 10.0))
    assert set(probe.validation) == {1e-4, 10.0}
    assert probe.validation[1e-4] == pytest.approx(0.5)  # always the majority class
    assert probe.validation[10.0] > 0.5
    assert probe.c == 10.0


def test_a_single_training_class_is_refused() -> None:
    x = np.zeros((5, 2))
    with pytest.raises(ValueError, match="two classes"):
        fit_linear_probe((x, np.zeros(5, np.int64)), 2)


def test_balanced_class_weights_rescue_the_minority_class() -> None:
    train = blobs(40, [(0, 0), (1.0, 0)], seed=2, spread=0.6)
    keep = np.r_[np.arange(40), np.arange(40, 44)]
    train = (train[0][keep], train[1][keep])
    val = blobs(30, [(0, 0), (1.0, 0)], seed=3, spread=0.6)
    plain = fit_linear_probe(train, 2, val=val, c_values=(1e-4, 1e-3))
    balanced = fit_linear_probe(train, 2, val=val, c_values=(1e-4, 1e-3), balanced=True)
    assert max(plain.validation.values()) == pytest.approx(0.5)
    assert min(balanced.validation.values()) > 0.7
