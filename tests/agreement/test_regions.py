"""Exact region overlap, lesion matching, consensus, STAPLE and disagreement on hand-made cases."""

from __future__ import annotations

import numpy as np
import pytest
import shapely
from agreement_helpers import rater, rect, square

from napari_wsi_ml.agreement import (
    Options,
    analyse,
    disagreement_map,
    disagreement_regions,
    majority_vote,
    match_lesions,
    prepare_raters,
    staple,
)
from napari_wsi_ml.agreement.geometry import parts
from napari_wsi_ml.agreement.grid import make_grid, rate_cells
from napari_wsi_ml.agreement.overlap import pair_overlap


@pytest.mark.parametrize("d", [0.0, 10.0, 35.0, 99.0])
def test_dice_iou_of_two_offset_squares(d):
    s = 100.0
    data = prepare_raters([rater("A", square(0, 0, s)), rater("B", square(d, 0, s))])
    ov = pair_overlap(*data.raters, "tumor")
    assert ov.iou == pytest.approx((s - d) * s / ((s + d) * s))
    assert ov.dice == pytest.approx(2 * (s - d) * s / (2 * s * s))


def test_hole_is_respected():
    hole = [[25, 25], [75, 25], [75, 75], [25, 75]]
    data = prepare_raters(
        [rater("A", square(0, 0, 100, holes=[hole])), rater("B", square(0, 0, 100))]
    )
    ov = pair_overlap(*data.raters, "tumor")
    assert ov.area_a == pytest.approx(10000 - 2500)
    assert ov.intersection == pytest.approx(7500)
    assert ov.iou == pytest.approx(0.75)


def test_region_of_interest_clips_both_raters():
    roi = shapely.box(0, 0, 50, 100)
    data = prepare_raters(
        [rater("A", square(0, 0, 100)), rater("B", square(25, 0, 100))], region=roi
    )
    ov = pair_overlap(*data.raters, "tumor")
    assert (ov.area_a, ov.area_b, ov.intersection) == pytest.approx((5000, 2500, 2500))


def test_overlapping_polygons_of_one_rater_are_merged():
    data = prepare_raters(
        [rater("A", square(0, 0, 100), square(50, 0, 100)), rater("B", rect(0, 0, 150, 100))]
    )
    assert data.raters[0].region("tumor").area == pytest.approx(15000)
    assert pair_overlap(*data.raters, "tumor").dice == pytest.approx(1.0)


def test_grid_labels_majority_class_and_exact_vs_raster_agree():
    a = rater("A", square(0, 0, 60), square(60, 0, 40, "stroma"))
    b = rater("B", square(0, 0, 40), square(40, 40, 60, "stroma"))
    data = prepare_raters([a, b])
    grid = make_grid(20, extent=(100, 100))
    exact = rate_cells(data, grid, method="exact")
    raster = rate_cells(data, grid, method="raster")
    assert exact.categories == ["background", "stroma", "tumor"]
    assert exact.labels[0, 0, 0] == 2 and exact.labels[0, 0, 4] == 1
    assert exact.labels[0, 4, 0] == 0
    assert np.array_equal(exact.labels, raster.labels)
    assert np.allclose(exact.coverage, raster.coverage, atol=1 / 256)


def test_grid_in_micrometres_uses_mpp():
    grid = make_grid(50, units="um", mpp=(0.5, 0.25), extent=(1000, 1000))
    assert (grid.cell_w, grid.cell_h) == (100, 200)
    assert (grid.rows, grid.cols) == (5, 10)


def test_lesion_matching_hand_made():
    a = parts(
        shapely.union_all(
            [shapely.box(0, 0, 10, 10), shapely.box(100, 0, 110, 10), shapely.box(200, 0, 210, 10)]
        )
    )
    b = parts(
        shapely.union_all(
            [shapely.box(1, 0, 11, 10), shapely.box(105, 0, 115, 10), shapely.box(300, 0, 330, 10)]
        )
    )
    match = match_lesions(a, b, threshold=0.5)
    # box 1: IoU 90/110 matched; box 2: IoU 50/150 < 0.5 unmatched; box 3 unmatched.
    assert len(match.pairs) == 1 and match.pairs[0][2] == pytest.approx(90 / 110)
    assert match.precision == pytest.approx(1 / 3) and match.recall == pytest.approx(1 / 3)
    assert sorted(o["area_px2"] for o in match.unmatched_b) == [100, 300]
    assert match_lesions(a, b, threshold=0.3).f1 == pytest.approx(2 * 2 / 6)


def test_lesion_matching_is_optimal_not_greedy():
    a = np.array([shapely.box(0, 0, 10, 10), shapely.box(10, 0, 20, 10)], dtype=object)
    b = np.array([shapely.box(2, 0, 12, 10), shapely.box(14, 0, 24, 10)], dtype=object)
    match = match_lesions(a, b, threshold=0.3)
    assert [(i, j) for i, j, _ in match.pairs] == [(0, 0), (1, 1)]


def test_majority_vote_of_three_raters():
    raters = [
        rater("A", square(0, 0, 100)),
        rater("B", square(50, 0, 100)),
        rater("C", square(25, 0, 100)),
    ]
    data = prepare_raters(raters)
    # x-extents [0,100], [50,150], [25,125]: at least 2 raters on [25, 125].
    assert majority_vote(data)["tumor"].area == pytest.approx(100 * 100)
    assert majority_vote(data, k=3)["tumor"].area == pytest.approx(50 * 100)
    assert majority_vote(data, k=1)["tumor"].area == pytest.approx(150 * 100)


def test_staple_recovers_simulated_sensitivities():
    rng = np.random.default_rng(0)
    truth = rng.random(200_000) < 0.3
    sens, spec = np.array([0.9, 0.8, 0.7]), np.array([0.95, 0.9, 0.85])
    u = rng.random((truth.size, 3))
    decisions = np.where(truth[:, None], u < sens, u >= spec).astype(np.int64)
    result = staple(decisions)
    assert result.converged
    assert np.allclose(result.sensitivity, sens, atol=0.02)
    assert np.allclose(result.specificity, spec, atol=0.02)
    assert result.prior == pytest.approx(0.3, abs=0.02)
    assert np.mean((result.probability > 0.5) == truth) > 0.9


def test_disagreement_regions_sorted_by_area():
    a = rater("A", square(0, 0, 100), square(500, 0, 10))
    b = rater("B", square(20, 0, 100), square(500, 0, 20))
    regions = disagreement_regions(prepare_raters([a, b]))
    areas = [r["area_px2"] for r in regions]
    assert areas == sorted(areas, reverse=True)
    assert areas == pytest.approx([2000, 2000, 300])
    assert regions[-1]["bbox"] == pytest.approx([500, 0, 520, 20])
    assert regions[-1]["raters_with"] == ["B"]
    # L-shape: bar 20x10 (centroid 510, 15) above block 10x10 (centroid 515, 5).
    assert regions[-1]["centroid"] == pytest.approx([(510 * 200 + 515 * 100) / 300, 35 / 3])


def test_disagreement_map_counts_dissenters():
    labels = np.array([[[0, 1], [2, -1]], [[0, 1], [1, -1]], [[0, 2], [0, -1]]])
    dissent = disagreement_map(labels, 3)
    assert dissent[0, 0] == 0 and dissent[0, 1] == 1 and dissent[1, 0] == 2
    assert np.isnan(dissent[1, 1])
    entropy = disagreement_map(labels, 3, kind="entropy")
    assert entropy[1, 0] == pytest.approx(np.log2(3))


def test_full_analysis_numbers_match_direct_computation():
    a, b = rater("A", square(0, 0, 100)), rater("B", square(20, 0, 100))
    report = analyse(prepare_raters([a, b]), Options(grid=20, n_boot=200), extent=(200, 200))
    dice = report.metrics["overall"]["dice"]["pairs"]["A vs B"]
    assert dice["value"] == pytest.approx(0.8)
    assert dice["ci"][0] < 0.8 < dice["ci"][1]
    labels = report.grid_data.ratings()
    from sklearn.metrics import cohen_kappa_score

    kappa = report.metrics["overall"]["cohen_kappa"]["pairs"]["A vs B"]["value"]
    assert kappa == pytest.approx(cohen_kappa_score(labels[:, 0], labels[:, 1]))
    assert report.lesions["tumor"]["A vs B"]["f1"] == 1.0
    assert report.consensus["majority_area_px2"]["tumor"] == pytest.approx(8000)
