"""Simulated raters depart from the truth exactly as their profiles say."""

from __future__ import annotations

import numpy as np
import pytest
from shapely.geometry import Polygon

from napari_wsi_ml.synthetic import (
    DEFAULT_RATERS,
    RaterProfile,
    make_scene,
    simulate_rater,
    simulate_raters,
)
from napari_wsi_ml.synthetic.truth import truth_from_scene


def _truth(seed: int = 4, multiclass: bool = False, morphology: str = "a"):
    scene = make_scene(
        8000, 5000, seed=seed, tumour="large", n_pieces=1, n_small_lesions=2, morphology=morphology
    )
    return truth_from_scene(
        scene, "slide_r.svs", downsample=2, level_dimensions=[(8000, 5000)], multiclass=multiclass
    )


def _polygons(annotation_set) -> list[Polygon]:
    return [Polygon(a.coordinates) for a in annotation_set]


def _iou(a, b) -> float:
    return a.intersection(b).area / a.union(b).area


EXACT = RaterProfile(
    "exact", jitter_um=0, bias_um=0, miss_small=0, false_positives=0, vertex_spacing_um=2
)


def test_truth_has_one_large_and_two_small_lesions():
    truth = _truth()
    assert sorted(les.size_class for les in truth.lesions) == ["large", "small", "small"]
    assert truth.tumour_fraction < 0.5


def test_rater_without_disagreement_redraws_every_lesion_closely():
    truth = _truth()
    drawn = _polygons(simulate_rater(truth, EXACT, seed=0))
    assert len(drawn) == len(truth.lesions)
    for lesion, polygon in zip(truth.lesions, drawn, strict=True):
        assert _iou(lesion.polygon, polygon) > 0.97  # only the vertex resampling differs


def test_rater_who_misses_every_small_lesion_draws_none_of_them():
    truth = _truth()
    profile = RaterProfile("misser", jitter_um=0, miss_small=1.0, false_positives=0)
    drawn = _polygons(simulate_rater(truth, profile, seed=1))
    small = [les.polygon for les in truth.lesions if les.size_class == "small"]
    large = [les.polygon for les in truth.lesions if les.size_class == "large"]
    assert len(drawn) == len(large) == 1
    assert not any(p.intersects(s) for p in drawn for s in small)


@pytest.mark.parametrize("jitter_um", [5.0, 20.0])
def test_boundary_jitter_lowers_iou_by_the_expected_amount(jitter_um):
    truth = _truth()
    lesion = next(les.polygon for les in truth.lesions if les.size_class == "large")
    sigma = jitter_um / truth.mpp
    expected_loss = 0.8 * lesion.length * sigma / lesion.area  # |displacement| × perimeter / area
    losses = []
    for seed in range(6):
        profile = RaterProfile("j", jitter_um=jitter_um, miss_small=0, false_positives=0)
        drawn = simulate_rater(truth, profile, seed=seed)
        polygon = max(_polygons(drawn), key=lambda p: p.intersection(lesion).area)
        losses.append(1 - _iou(lesion, polygon))
    assert 0.3 * expected_loss < np.mean(losses) < 2.0 * expected_loss


def test_more_jitter_means_less_overlap():
    truth = _truth()
    lesion = next(les.polygon for les in truth.lesions if les.size_class == "large")
    ious = []
    for jitter in (0.0, 5.0, 15.0, 40.0):
        profile = RaterProfile("j", jitter_um=jitter, miss_small=0, false_positives=0)
        drawn = _polygons(simulate_rater(truth, profile, seed=3))
        ious.append(max(_iou(lesion, p) for p in drawn))
    assert ious == sorted(ious, reverse=True)
    assert ious[0] > 0.97 and ious[-1] < 0.95


def test_bias_grows_or_shrinks_the_outline_by_perimeter_times_bias():
    truth = _truth()
    lesion = next(les.polygon for les in truth.lesions if les.size_class == "large")
    for bias_um in (15.0, -15.0):
        profile = RaterProfile("b", jitter_um=0, bias_um=bias_um, miss_small=0, false_positives=0)
        drawn = max(_polygons(simulate_rater(truth, profile, seed=0)), key=lambda p: p.area)
        change = drawn.area - lesion.area
        expected = lesion.length * bias_um / truth.mpp
        assert 0.7 * abs(expected) < abs(change) < 1.3 * abs(expected)
        assert np.sign(change) == np.sign(bias_um)


def test_false_positives_lie_in_tissue_away_from_tumour():
    truth = _truth()
    profile = RaterProfile("fp", jitter_um=0, miss_small=1, miss_large=1, false_positives=4)
    counts = []
    for seed in range(5):
        drawn = _polygons(simulate_rater(truth, profile, seed=seed))
        counts.append(len(drawn))
        for polygon in drawn:
            assert truth.tissue.contains(polygon)
            assert not polygon.intersects(truth.tumour)
    assert 2 <= np.mean(counts) <= 6


def test_raters_are_reproducible_and_differ_between_seeds():
    truth = _truth()
    a = simulate_raters(truth, 3, seed=9)
    b = simulate_raters(truth, 3, seed=9)
    c = simulate_raters(truth, 3, seed=10)
    assert [r.rater for r in a] == [p.name for p in DEFAULT_RATERS]
    for x, y in zip(a, b, strict=True):
        assert len(x) == len(y)
        for p, q in zip(x, y, strict=True):
            np.testing.assert_array_equal(p.coordinates, q.coordinates)
    flat = lambda sets: np.concatenate([a.coordinates for s in sets for a in s])  # noqa: E731
    assert flat(a).shape != flat(c).shape or not np.array_equal(flat(a), flat(c))


def test_multiclass_groups_and_class_confusion():
    truth = _truth(multiclass=True, morphology="b")
    assert truth.label == "tumour_b"
    assert set(truth.groups) == {"tumor_a", "tumor_b"}
    honest = simulate_rater(truth, EXACT, seed=0)
    assert {a.group for a in honest} == {"tumor_b"}
    confused = RaterProfile("c", jitter_um=0, miss_small=0, false_positives=0, confuse_classes=1)
    assert {a.group for a in simulate_rater(truth, confused, seed=0)} == {"tumor_a"}
