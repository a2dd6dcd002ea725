"""Disagreement regions: exact pieces, sliver opening, minimum area, analysis defaults."""

from __future__ import annotations

import numpy as np
import pytest
import shapely
from agreement_helpers import rater, rect, square

from napari_wsi_ml.agreement import Options, analyse, disagreement_regions, prepare_raters
from napari_wsi_ml.annotations.model import Annotation
from napari_wsi_ml.errors import AgreementInputError


def blob_rater(name: str, seed: int, n: int = 60) -> object:
    """``n`` jittered squares on a 2000 px field; the same seed gives the same layout."""
    rng = np.random.default_rng(0)
    jitter = np.random.default_rng(seed)
    corners = rng.uniform(0, 2000, (n, 2))
    sizes = rng.uniform(20, 120, n)
    annotations = [
        square(x + jitter.normal(0, 6), y + jitter.normal(0, 6), s * jitter.uniform(0.9, 1.1))
        for (x, y), s in zip(corners, sizes, strict=True)
    ]
    return rater(name, *annotations)


def brute_force_areas(data, cls: str) -> np.ndarray:
    """Areas of the connected parts of (union − common), straight from shapely."""
    regions = [r.region(cls) for r in data.raters]
    union = shapely.union_all(regions)
    common = regions[0]
    for region in regions[1:]:
        common = shapely.intersection(common, region)
    pieces = shapely.get_parts(shapely.difference(union, common))
    pieces = pieces[shapely.get_type_id(pieces) == 3]
    return np.sort(shapely.area(pieces[shapely.area(pieces) > 0]))[::-1]


def test_opening_removes_jitter_slivers_and_keeps_real_region_exactly():
    a = rater("A", square(0, 0, 100))
    b = rater("B", square(1, 0, 100), square(300, 0, 50))
    data = prepare_raters([a, b])
    exact = disagreement_regions(data)
    assert [r["area_px2"] for r in exact] == pytest.approx([2500, 100, 100])
    opened = disagreement_regions(data, opening=2)
    assert len(opened) == 1
    assert opened[0]["area_px2"] == pytest.approx(2500)
    assert opened[0]["bbox"] == pytest.approx([300, 0, 350, 50])
    assert opened[0]["raters_with"] == ["B"]
    by_area = disagreement_regions(data, min_area=101)
    assert [r["area_px2"] for r in by_area] == pytest.approx([2500])


def test_opening_cuts_a_thin_tail_and_stays_inside_the_region():
    tail = [[0, 0], [50, 0], [50, 20], [90, 20], [90, 23], [50, 23], [50, 50], [0, 50]]
    a = rater("A", Annotation("t", "Polygon", tail, group="tumor"))
    b = rater("B", square(500, 500, 10))
    (region,) = disagreement_regions(prepare_raters([a, b]), min_area=200, opening=2)
    assert region["area_px2"] == pytest.approx(2500)
    assert region["bbox"] == pytest.approx([0, 0, 50, 50])
    assert shapely.covered_by(region["geometry"], shapely.Polygon(tail))


@pytest.mark.parametrize("n_raters", [2, 3])
def test_regions_equal_union_minus_common(n_raters):
    data = prepare_raters([blob_rater(f"R{k}", seed=k + 1) for k in range(n_raters)])
    expected = brute_force_areas(data, "tumor")
    found = [r["area_px2"] for r in disagreement_regions(data)]
    assert len(found) == len(expected)
    assert found == pytest.approx(expected)
    # the per-cluster skip under a minimum area never drops a region that reaches it
    threshold = float(np.median(expected))
    kept = [r["area_px2"] for r in disagreement_regions(data, min_area=threshold)]
    assert kept == pytest.approx(expected[expected >= threshold])


def test_raters_with_names_who_marked_each_region():
    a = rater("A", square(0, 0, 100))
    b = rater("B", square(0, 0, 100), square(200, 0, 30))
    c = rater("C", rect(0, 0, 60, 100))
    regions = disagreement_regions(prepare_raters([a, b, c]))
    by_bbox = {tuple(r["bbox"]): r["raters_with"] for r in regions}
    assert by_bbox[(60.0, 0.0, 100.0, 100.0)] == ["A", "B"]
    assert by_bbox[(200.0, 0.0, 230.0, 30.0)] == ["B"]


def test_negative_filters_refused():
    data = prepare_raters([rater("A", square(0, 0, 10)), rater("B", square(2, 0, 10))])
    with pytest.raises(AgreementInputError, match=">= 0"):
        disagreement_regions(data, opening=-1)


def test_analysis_default_drops_regions_under_one_grid_cell():
    a = rater("A", square(0, 0, 100))
    b = rater("B", square(20, 0, 100), square(150, 150, 15))  # 225 px² < one 20x20 cell
    report = analyse(prepare_raters([a, b]), Options(grid=20, n_boot=10), extent=(200, 200))
    assert [r["area_px2"] for r in report.disagreement_regions] == pytest.approx([2000, 2000])
    assert report.disagreement["min_area_px2"] == pytest.approx(400)
    assert report.disagreement["opening_px"] == pytest.approx(20 / 16)
    assert report.to_dict()["disagreement"]["count"] == 2
    keep_all = Options(grid=20, n_boot=10, min_region_area=0, region_opening=0)
    report = analyse(prepare_raters([a, b]), keep_all, extent=(200, 200))
    assert [r["area_px2"] for r in report.disagreement_regions] == pytest.approx([2000, 2000, 225])


def test_filter_in_micrometres_uses_mpp():
    a = rater("A", square(0, 0, 100))
    b = rater("B", square(20, 0, 100))
    options = Options(grid=10, grid_units="um", n_boot=10, min_region_area=600, region_opening=1)
    report = analyse(prepare_raters([a, b]), options, mpp=(0.5, 0.5), extent=(200, 200))
    assert report.disagreement["min_area_px2"] == pytest.approx(2400)
    assert report.disagreement["opening_px"] == pytest.approx(2)
    assert report.disagreement_regions == []  # both 2000 px² slivers < 2400 px²
