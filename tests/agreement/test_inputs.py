"""Bad input: every refusal carries a message naming what is wrong and what to do."""

from __future__ import annotations

import numpy as np
import pytest
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
