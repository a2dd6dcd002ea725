"""Review: a thresholded heatmap becomes the polygons it was made from, and is compared with
raters through the agreement metrics."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import shapely
from shapely.geometry import Point, Polygon, box

from napari_wsi_ml.agreement import Options
from napari_wsi_ml.annotations import Annotation, AnnotationSet, read_annotations, write_asap
from napari_wsi_ml.annotations.geojson import write_geojson
from napari_wsi_ml.errors import AgreementInputError
from napari_wsi_ml.inference import Heatmap
from napari_wsi_ml.inference.review import (
    MODEL_RATER,
    PolygonOptions,
    compare_with_raters,
    comparison_rows,
    matching_class,
    model_annotations,
    model_disagreement,
    score_polygons,
    smoothed_scores,
)

PATCH = 256
# a tumour with a hole, away from the grid origin: x ∈ [1500, 4500], y ∈ [1000, 4000]
TUMOUR = Point(3000, 2500).buffer(1500, 64).difference(Point(3200, 2400).buffer(550, 64))
MPP = (0.5, 0.5)


def oracle_heatmap(region, stride: float, *, origin=(37.0, 53.0), size=(6400, 5200)) -> Heatmap:
    """Score of each patch = fraction of it inside ``region`` (level-0 px)."""
    cols = int((size[0] - origin[0] - PATCH) // stride) + 1
    rows = int((size[1] - origin[1] - PATCH) // stride) + 1
    x = origin[0] + np.arange(cols) * stride
    y = origin[1] + np.arange(rows) * stride
    xx, yy = np.meshgrid(x, y)
    patches = shapely.box(xx, yy, xx + PATCH, yy + PATCH)
    values = shapely.area(shapely.intersection(patches, region)) / PATCH**2
    return Heatmap(values, origin, stride, PATCH, ("tumour",), "oracle", "fp-slide")


def iou(a, b) -> float:
    return a.intersection(b).area / a.union(b).area


@pytest.mark.parametrize("stride", [PATCH, PATCH / 2])
def test_oracle_heatmap_gives_back_the_tumour_with_its_hole(stride: float) -> None:
    heatmap = oracle_heatmap(TUMOUR, stride)
    region = score_polygons(heatmap, "tumour", PolygonOptions(threshold=0.5), mpp=MPP)
    assert region.geom_type == "Polygon"
    assert iou(region, TUMOUR) >= 0.93  # smoothing (0.5 cells) rounds it a little
    assert Point(region.centroid).distance(TUMOUR.centroid) <= 0.05 * PATCH
    [hole] = region.interiors
    assert iou(Polygon(hole), Polygon(TUMOUR.interiors[0])) >= 0.85
    assert region.is_valid
    sharp = score_polygons(heatmap, "tumour", PolygonOptions(smoothing=0, simplify=0), mpp=MPP)
    assert iou(sharp, TUMOUR) >= 0.96


def test_minimum_area_drops_small_parts_and_fills_small_holes() -> None:
    small_blob = box(5200, 4000, 5700, 4500)  # 250 000 px² = 62 500 µm²
    heatmap = oracle_heatmap(TUMOUR.union(small_blob), PATCH / 2)
    hole_area_um2 = Polygon(TUMOUR.interiors[0]).area * MPP[0] * MPP[1]  # ≈ 237 000 µm²
    both = score_polygons(heatmap, 0, PolygonOptions(min_area=10_000), mpp=MPP)
    assert both.geom_type == "MultiPolygon" and len(both.geoms) == 2
    big_only = score_polygons(heatmap, 0, PolygonOptions(min_area=100_000), mpp=MPP)
    assert big_only.geom_type == "Polygon" and len(big_only.interiors) == 1
    filled = score_polygons(heatmap, 0, PolygonOptions(min_area=hole_area_um2 * 1.5), mpp=MPP)
    assert filled.geom_type == "Polygon" and len(filled.interiors) == 0
    # without an mpp the minimum area is in level-0 px²: 100 000 px² keeps the 250 000 px² blob
    in_px = score_polygons(heatmap, 0, PolygonOptions(min_area=100_000))
    assert len(in_px.geoms) == 2


def test_unscored_cells_stay_outside_and_smoothing_ignores_them() -> None:
    values = np.full((6, 8), 0.9, np.float32)
    values[:, 5:] = np.nan  # off tissue
    smooth = smoothed_scores(values, 1.0)
    np.testing.assert_allclose(smooth[:, :5], 0.9, rtol=1e-6)  # NaN neighbours do not pull down
    assert np.isnan(smooth[:, 5:]).all()
    heatmap = Heatmap(values, (0, 0), 100, 100, ("tumour",), "r", "fp")
    region = score_polygons(heatmap, "tumour", PolygonOptions(threshold=0.5, simplify=0))
    minx, miny, maxx, maxy = region.bounds
    # cell centres 50 … 450 scored; the boundary lies between the last scored and the first
    # unscored centre (x 450 → 550), never beyond
    assert 450 < maxx < 550 and -50 < minx < 50 and -50 < miny < 50 and 550 < maxy < 650
    empty = score_polygons(heatmap, "tumour", PolygonOptions(threshold=0.95))
    assert empty.is_empty


def test_model_annotations_save_as_asap_and_geojson(tmp_path: Path) -> None:
    heatmap = oracle_heatmap(TUMOUR, PATCH)
    model = model_annotations(heatmap, {"tumour": "tumor"}, mpp=MPP, slide="slide.svs")
    assert model.rater == MODEL_RATER and model.slide == "slide.svs"
    [annotation] = model.annotations
    assert annotation.group == "tumor" and len(annotation.holes) == 1
    assert list(model.groups) == ["tumor"]
    notes = write_asap(model, tmp_path / "slide.model.xml")
    assert any("hole" in note for note in notes)  # ASAP XML has no holes: said, not silent
    back = read_annotations(tmp_path / "slide.model.xml")
    np.testing.assert_array_equal(back.annotations[0].coordinates, annotation.coordinates)
    write_geojson(model, tmp_path / "slide.model.geojson")
    again = read_annotations(tmp_path / "slide.model.geojson")
    np.testing.assert_allclose(again.annotations[0].holes[0], annotation.holes[0])


def rater(name: str, *boxes) -> AnnotationSet:
    annotations = [
        Annotation(f"{name} {k}", "Polygon", np.asarray(b.exterior.coords)[:-1], group="tumor")
        for k, b in enumerate(boxes)
    ]
    return AnnotationSet(annotations, rater=name)


def test_model_against_raters_and_consensus() -> None:
    box_a, box_b = box(1000, 1000, 3000, 3000), box(1400, 1000, 3400, 2600)
    truth = box(1200, 1000, 3200, 2800)
    heatmap = oracle_heatmap(truth, PATCH / 2)
    model = model_annotations(heatmap, {"tumour": "tumor"}, mpp=MPP)
    region = score_polygons(heatmap, "tumour", mpp=MPP)
    _, comparison = compare_with_raters(
        model,
        [rater("A", box_a), rater("B", box_b)],
        mpp=MPP,
        extent=(6400, 5200),
        options=Options(n_boot=50),
    )
    rows = {(r["metric"], r["reference"]): r for r in comparison_rows(comparison, "tumor")}
    for name, reference in (("A", box_a), ("B", box_b)):
        expected = 2 * region.intersection(reference).area / (region.area + reference.area)
        assert rows[("dice", name)]["value"] == pytest.approx(expected, rel=1e-6)
    consensus = box_a.intersection(box_b)  # 2 raters: both must agree
    expected = 2 * region.intersection(consensus).area / (region.area + consensus.area)
    assert rows[("dice", "consensus")]["value"] == pytest.approx(expected, rel=1e-6)
    inter = 2 * box_a.intersection(box_b).area / (box_a.area + box_b.area)
    assert rows[("dice", "A")]["raters_median"] == pytest.approx(inter, rel=1e-6)
    assert {r["metric"] for r in comparison_rows(comparison, "tumor")} >= {
        "dice",
        "iou",
        "cohen_kappa",
        "lesion_f1",
    }
    with pytest.raises(AgreementInputError, match="at least two raters"):
        compare_with_raters(model, [rater("A", box_a)])


def test_model_disagreement_is_one_minus_mean_dice() -> None:
    box_a, box_b = box(0, 0, 1000, 1000), box(500, 0, 1500, 1000)
    model = rater(MODEL_RATER, box(0, 0, 1000, 1000))
    value, per_rater = model_disagreement(model, [rater("A", box_a), rater("B", box_b)], "tumor")
    assert per_rater == {"A": pytest.approx(1.0), "B": pytest.approx(0.5)}
    assert value == pytest.approx(0.25)
    nothing = AnnotationSet(rater=MODEL_RATER)
    value, per_rater = model_disagreement(nothing, [rater("A", box_a)], "tumor")
    assert value == pytest.approx(1.0) and per_rater == {"A": 0.0}


def test_matching_class() -> None:
    assert matching_class("tumour", ["stroma", "tumor"]) == "tumor"
    assert matching_class("Tumor", ["tumor"]) == "tumor"
    assert matching_class("normal", ["tumor"]) is None


# --- cohort review (pure) -------------------------------------------------------------------


def prediction(slide: str, label: str | None, scores: dict[str, float]):
    from napari_wsi_ml.inference.predictions import SlidePrediction

    predicted = max(scores, key=scores.__getitem__)
    return SlidePrediction(slide, Path(f"/x/{slide}.svs"), "fp", scores, predicted, label, 0.1,
                           (0.0, 0.0))  # fmt: skip


def test_rater_files_beside_a_slide(tmp_path: Path) -> None:
    from napari_wsi_ml.inference.cohort_review import (
        predictions_file,
        rater_files,
        resolve_slide_paths,
    )

    names = ["s[1].svs", "s[1].A.xml", "s[1].B.geojson", "s[1].truth.xml", "s[1].model.xml",
             "s[1].A.recovery.xml", "s[1].txt", "s[1].C.json", "other.A.xml"]  # fmt: skip
    for name in names:
        (tmp_path / name).write_text("")
    assert [p.name for p in rater_files(tmp_path / "s[1].svs")] == ["s[1].A.xml", "s[1].B.geojson"]
    assert predictions_file(tmp_path) == tmp_path / "predictions.csv"
    table = tmp_path / "out" / "predictions.csv"
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "moved.svs").write_text("")
    moved = replace(prediction("moved", None, {"t": 1.0}), path=Path("moved.svs"))
    elsewhere = replace(moved, path=Path("nowhere.svs"))
    resolved = resolve_slide_paths([moved, elsewhere], table)
    assert resolved[0].path == tmp_path / "out" / "moved.svs"  # found beside the table
    assert resolved[1].path == Path("nowhere.svs")  # left as written: the error will name it
    assert predictions_file(tmp_path / "p.csv") == tmp_path / "p.csv"


def test_cohort_rows_errors_and_roc_classes() -> None:
    from napari_wsi_ml.inference.cohort_review import cohort_rows, default_class, roc_curves

    binary = [
        prediction("a", "tumour", {"normal": 0.2, "tumour": 0.8}),
        prediction("b", "normal", {"normal": 0.7, "tumour": 0.3}),
        prediction("c", None, {"normal": 0.4, "tumour": 0.6}),
        prediction("d", "tumour", {"normal": 0.75, "tumour": 0.25}),
    ]
    assert default_class(binary) == "tumour"
    rows = cohort_rows(binary, "tumour")
    assert [r.error for r in rows] == [pytest.approx(0.2), pytest.approx(0.3), None,
                                       pytest.approx(0.75)]  # fmt: skip
    assert [r.score for r in cohort_rows(binary, "normal")] == [0.2, 0.7, 0.4, 0.75]
    curves = roc_curves(binary)
    assert list(curves) == ["tumour"]  # the background's curve would only mirror it
    assert curves["tumour"].auc.auc == pytest.approx(0.5)  # a beats b, d does not
    three = [
        prediction("a", "tumour_a", {"normal": 0.1, "tumour_a": 0.8, "tumour_b": 0.1}),
        prediction("b", "tumour_b", {"normal": 0.1, "tumour_a": 0.2, "tumour_b": 0.7}),
        prediction("c", "normal", {"normal": 0.8, "tumour_a": 0.1, "tumour_b": 0.1}),
    ]
    assert default_class(three) == "tumour_a"
    assert list(roc_curves(three)) == ["normal", "tumour_a", "tumour_b"]
    assert roc_curves([prediction("a", None, {"tumour": 0.5})]) == {}
