"""Bad input: every refusal carries a message naming what is wrong and what to do."""

from __future__ import annotations

import numpy as np
import pytest
import shapely
from agreement_helpers import rater, square

from napari_wsi_ml.agreement import parse_mapping, prepare_raters
from napari_wsi_ml.agreement.grid import make_grid
from napari_wsi_ml.agreement.inputs import split_annotation_name
from napari_wsi_ml.annotations.model import Annotation
from napari_wsi_ml.errors import AgreementInputError


def test_disjoint_classes_without_mapping_list_both_sides():
    a = rater("A", square(0, 0, 10, "tumor"), square(20, 0, 10, "stroma"))
    b = rater("B", square(0, 0, 10, "Tumour"))
    with pytest.raises(AgreementInputError) as err:
        prepare_raters([a, b])
    message = str(err.value)
    assert "'stroma', 'tumor'" in message and "'Tumour'" in message and "--map" in message


def test_mapping_makes_disjoint_names_comparable_global_and_per_rater():
    a = rater("A", square(0, 0, 10, "tumor"))
    b = rater("B", square(0, 0, 10, "Tumour"))
    assert prepare_raters([a, b], mapping={"Tumour": "tumor"}).classes == ["tumor"]
    data = prepare_raters([a, b], mapping=parse_mapping(["B:Tumour=tumor"]))
    assert data.raters[1].region("tumor").area == pytest.approx(100)
    with pytest.raises(AgreementInputError, match="RATERCLASS=CANON"):
        parse_mapping(["tumour"])


def test_empty_set_refused_unless_allowed():
    with pytest.raises(AgreementInputError, match="no region annotation"):
        prepare_raters([rater("A", square(0, 0, 10)), rater("B")])
    data = prepare_raters([rater("A", square(0, 0, 10)), rater("B")], allow_empty=True)
    assert data.raters[1].region("tumor").is_empty


def test_points_only_set_is_empty_and_noted():
    dot = Annotation("d", "Dot", [[5, 5]], group="tumor")
    with pytest.raises(AgreementInputError, match="'B' has no region"):
        prepare_raters([rater("A", square(0, 0, 10)), rater("B", dot)])
    data = prepare_raters([rater("A", square(0, 0, 10), dot), rater("B", square(0, 0, 10))])
    assert any("not a region" in n for n in data.notes)


def test_single_rater_and_duplicate_names_refused():
    with pytest.raises(AgreementInputError, match="at least two"):
        prepare_raters([rater("A", square(0, 0, 10))])
    with pytest.raises(AgreementInputError, match="unique"):
        prepare_raters([rater("A", square(0, 0, 10)), rater("A", square(0, 0, 10))])


def test_self_intersecting_polygon_repaired_and_reported():
    bow_tie = Annotation("bow", "Polygon", [[0, 0], [10, 10], [10, 0], [0, 10]], group="tumor")
    data = prepare_raters([rater("A", bow_tie), rater("B", square(0, 0, 10))])
    assert data.raters[0].region("tumor").is_valid
    assert data.raters[0].region("tumor").area == pytest.approx(50)
    assert any("make_valid" in n and "Self-intersection" in n for n in data.notes)


def test_different_slides_refused_by_set_slide_and_by_file_name():
    a = rater("A", square(0, 0, 10), slide="/data/case1.svs")
    b = rater("B", square(0, 0, 10), slide="case2.svs")
    with pytest.raises(AgreementInputError, match="different slides"):
        prepare_raters([a, b])
    c, d = rater(None, square(0, 0, 10)), rater(None, square(0, 0, 10))
    with pytest.raises(AgreementInputError, match=r"case2\.bob\.xml"):
        prepare_raters([c, d], sources=["case1.alice.xml", "case2.bob.xml"])
    with pytest.raises(AgreementInputError, match="expected slide 'case9'"):
        prepare_raters([c, d], sources=["case1.alice.xml", "case1.bob.xml"], slide="x/case9.svs")
    data = prepare_raters([c, d], sources=["case1.alice.xml", "case1.bob.xml"], slide="case1.svs")
    assert data.names == ["alice", "bob"] and data.slide == "case1"


def test_file_naming_convention():
    assert split_annotation_name("dir/CMU-1.alice.xml") == ("CMU-1", "alice")
    assert split_annotation_name("CMU-1_classification.xml") == (None, "CMU-1_classification")


def test_grid_in_um_without_mpp_refused():
    with pytest.raises(AgreementInputError, match="microns per pixel"):
        make_grid(100, units="um", mpp=None, extent=(10, 10))
    with pytest.raises(AgreementInputError, match="positive"):
        make_grid(0, extent=(10, 10))


def test_holes_with_fewer_than_three_points_are_ignored():
    ann = Annotation(
        "h",
        "Polygon",
        [[0, 0], [10, 0], [10, 10], [0, 10]],
        group="tumor",
        holes=[np.array([[1, 1], [2, 2]])],
    )
    data = prepare_raters([rater("A", ann), rater("B", square(0, 0, 10))])
    assert data.raters[0].region("tumor").area == pytest.approx(100)


def test_class_spelling_mismatch_goes_on_with_a_warning_listing_both_sides():
    a = rater("A", square(0, 0, 10, "tumor"), square(20, 0, 10, "stroma"))
    b = rater("B", square(0, 0, 10, "Tumour"), square(20, 0, 10, "stroma"))
    c = rater("C", square(0, 0, 10, "tumor"), square(20, 0, 10, "stroma"))
    data = prepare_raters([a, b, c])
    assert data.classes == ["Tumour", "stroma", "tumor"]
    assert len(data.warnings) == 2  # A vs B and B vs C; A and C agree
    first = data.warnings[0]
    assert "'A' and 'B'" in first
    assert "only 'A' uses 'tumor'" in first and "only 'B' uses 'Tumour'" in first
    assert "--map Tumour=tumor" in first  # the name most raters use is the canonical one
    assert "--map Tumour=tumor" in data.warnings[1]
    assert prepare_raters([a, b, c], mapping={"Tumour": "tumor"}).warnings == []


def test_spline_region_is_its_smooth_curve_not_the_control_polygon():
    from napari_wsi_ml.annotations import outline

    corners = [[0, 0], [100, 0], [100, 100], [0, 100]]
    spline = Annotation("s", "Spline", corners, group="tumor")
    data = prepare_raters([rater("A", spline), rater("B", square(0, 0, 100))])
    curve_area = shapely.Polygon(outline(spline)).area
    assert data.raters[0].region("tumor").area == pytest.approx(curve_area)
    assert abs(curve_area - 10_000) > 100  # the curve bulges out of the control square


def test_rater_files_in_any_format(tmp_path):
    from napari_wsi_ml.agreement import read_rater_files
    from napari_wsi_ml.annotations import write_asap, write_geojson

    write_geojson(rater(None, square(0, 0, 100)), tmp_path / "case1.alice.geojson")
    write_asap(rater(None, square(50, 0, 100)), tmp_path / "case1.bob.xml")
    sets = read_rater_files([tmp_path / "case1.alice.geojson", tmp_path / "case1.bob.xml"])
    assert [s.rater for s in sets] == ["alice", "bob"]
    data = prepare_raters(sets, sources=["case1.alice.geojson", "case1.bob.xml"])
    assert data.raters[0].region("tumor").area == pytest.approx(10_000)
    assert data.pair_pieces(0, 1, "tumor")[2][0].area == pytest.approx(5_000)
