"""AnnotationSet ⇄ napari Shapes layer, and the npe2 annotation reader and writers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from napari.layers import Layer, Shapes

from napari_wsi_ml.annotations import Annotation, AnnotationSet, Group, read_asap
from napari_wsi_ml.coords import xy_to_rowcol
from napari_wsi_ml.viewer.annotation_layers import (
    annotation_layer_data,
    annotation_set_from_layer,
    spline_display_xy,
)
from napari_wsi_ml.viewer.annotation_reader import get_annotation_reader
from napari_wsi_ml.viewer.annotation_writer import write_asap_xml
from napari_wsi_ml.viewer.slide_reader import open_slide_layer_data

DATA_DIR = Path(__file__).resolve().parents[1] / "data"  # see tests/data/PROVENANCE.md
SLIDES_DIR, ANNOTATIONS_DIR = DATA_DIR / "slides", DATA_DIR / "annotations"
MPP = (0.2527, 0.2527)
ASAP_FILES = sorted((ANNOTATIONS_DIR / "asap").glob("*.xml"))


def _every_type() -> AnnotationSet:
    rng = np.random.default_rng(7)
    far = rng.uniform(40_000.0, 99_999.0, (9, 2)) + rng.uniform(0, 1, (9, 2)) / 3
    annotations = [
        Annotation("poly", "Polygon", far[:5], group="tumor", color="#E6194B"),
        Annotation(
            "rect",
            "Rectangle",
            [[61234.123, 7000.7], [61334.9, 7000.7], [61334.9, 7100.31], [61234.123, 7100.31]],
            group="tumor",
            color="#E6194B",
        ),
        Annotation("spline", "Spline", far[3:9], group="stroma", color="#3CB44B"),
        Annotation("dot", "Dot", [[43210.987654321, 1234.5678]], group="cell", color="#4363D8"),
        Annotation("dots", "Dot", far[:4], group="cell", color="#4363D8"),
        Annotation("set", "PointSet", far[4:8], group="cell", color="#4363D8"),
        Annotation("ruler", "Measurement", far[:2]),
        Annotation(
            "holed",
            "Polygon",
            [[0.5, 0.5], [1000.25, 0.5], [1000.25, 800.75], [0.5, 800.75]],
            group="tumor",
            holes=[np.array([[100.1, 100.1], [200.2, 100.1], [200.2, 300.3]])],
            properties={"objectType": "annotation"},
        ),
    ]
    groups = {
        "tumor": Group("tumor", color="#E6194B"),
        "stroma": Group("stroma", color="#3CB44B"),
        "unused": Group("unused", parent="tumor", color="#000080", attributes={"k": "v"}),
    }
    return AnnotationSet(annotations, groups=groups, rater="alice")


def _layer(annotation_set: AnnotationSet, mpp=MPP) -> Shapes:
    return Layer.create(*annotation_layer_data(annotation_set, mpp=mpp))


def _assert_same(expected: AnnotationSet, actual: AnnotationSet, mpp=MPP) -> None:
    assert len(actual) == len(expected)
    for a, b in zip(expected, actual, strict=True):
        assert (b.name, b.type, b.group, b.color) == (a.name, a.type, a.group, a.color)
        assert b.coordinates.shape == a.coordinates.shape
        error_um = np.abs((b.coordinates - a.coordinates) * np.asarray(mpp)).max()
        assert error_um <= 1e-6, (a.name, error_um)
        assert len(b.holes) == len(a.holes)
        for ha, hb in zip(a.holes, b.holes, strict=True):
            assert np.abs((hb - ha) * np.asarray(mpp)).max() <= 1e-6
        assert b.properties == a.properties


def test_round_trip_exact_with_non_unit_mpp() -> None:
    original = _every_type()
    layer = _layer(original)
    assert tuple(layer.scale) == (0.2527, 0.2527)
    assert layer.data[0].dtype == np.float32  # what napari keeps: not exact by itself
    back = annotation_set_from_layer(layer)
    _assert_same(original, back)
    assert back.rater == "alice"
    assert back.groups["unused"] == Group(
        "unused", parent="tumor", color="#000080", attributes={"k": "v"}
    )
    assert list(layer.features["class"]) == [
        "tumor",
        "tumor",
        "stroma",
        "cell",
        "cell",
        "cell",
        "",
        "tumor",
    ]
    assert list(layer.shape_type) == [
        "polygon",
        "rectangle",
        "polygon",
        "ellipse",
        "ellipse",
        "ellipse",
        "line",
        "polygon",
    ]


def test_shapes_land_on_the_slide_world() -> None:
    """World µm of a vertex = level-0 (x, y) × mpp, as for the slide image."""
    original = _every_type()
    layer = _layer(original, mpp=(0.2527, 0.2531))
    world = np.array([layer.data_to_world(v) for v in layer.data[0]])
    expected = xy_to_rowcol(original.annotations[0].coordinates) * np.array([0.2531, 0.2527])
    assert np.abs(world - expected).max() < 0.01  # float32 display, < 0.01 µm


def test_spline_shows_its_curve_and_saves_its_control_points() -> None:
    original = _every_type()
    layer = _layer(original)
    curve = spline_display_xy(original.annotations[2].coordinates)
    assert len(layer.data[2]) == len(curve) > len(original.annotations[2].coordinates)
    assert np.allclose(layer.data[2], xy_to_rowcol(curve), atol=0.01)
    assert annotation_set_from_layer(layer).annotations[2].type == "Spline"
    edited = [np.array(d) for d in layer.data]
    edited[2][0] += 5.0
    layer.data = edited
    saved = annotation_set_from_layer(layer).annotations[2]
    assert saved.type == "Polygon" and len(saved.coordinates) == len(curve)


def test_edits_keep_untouched_vertices_exact_and_move_dots() -> None:
    original = _every_type()
    layer = _layer(original)
    data = [np.array(d) for d in layer.data]
    data[0][1] = [50_000.0, 60_000.0]  # one vertex of the polygon moved
    data[3] += np.float32(10.0)  # the Dot's circle moved 10 px down and right
    data[7][1] = [0.5, 50.0]  # the holed square cut so that its hole is outside
    layer.data = data
    back = annotation_set_from_layer(layer)
    poly = back.annotations[0].coordinates
    assert poly[1].tolist() == [60_000.0, 50_000.0]
    keep = [0, 2, 3, 4]
    assert np.array_equal(poly[keep], original.annotations[0].coordinates[keep])
    moved = back.annotations[3].coordinates - original.annotations[3].coordinates
    assert np.abs(moved - 10.0).max() < 1e-2
    assert back.annotations[7].holes == []
    assert any("hole" in note for note in back.skipped)


def test_shapes_drawn_in_napari_become_asap_types() -> None:
    layer = _layer(AnnotationSet())
    layer.add_ellipses(np.array([[10.0, 20.0], [10.0, 60.0], [30.0, 60.0], [30.0, 20.0]]))
    layer.add_lines(np.array([[0.0, 0.0], [3.0, 4.0]]))
    layer.add_paths(np.array([[0.0, 0.0], [3.0, 4.0], [8.0, 1.0]]))
    back = annotation_set_from_layer(layer)
    assert [a.type for a in back] == ["Polygon", "Measurement", "Polygon"]
    ellipse = back.annotations[0].coordinates
    assert len(ellipse) == 64
    assert np.allclose(ellipse.mean(axis=0), [40.0, 20.0])
    assert np.allclose(np.ptp(ellipse, axis=0), [40.0, 20.0], atol=0.1)
    assert back.annotations[1].coordinates.tolist() == [[0.0, 0.0], [4.0, 3.0]]
    assert any("open path" in note for note in back.skipped)


@pytest.mark.parametrize("path", ASAP_FILES, ids=lambda p: p.name)
def test_real_asap_files_survive_the_layer(path: Path, tmp_path: Path) -> None:
    original = read_asap(path)
    layer = _layer(original, mpp=(0.499, 0.499))
    back = annotation_set_from_layer(layer)
    for a, b in zip(original, back, strict=True):
        assert np.array_equal(a.coordinates, b.coordinates)
        assert (a.type, a.group, a.color) == (b.type, b.group, b.color)
    assert list(back.groups) == list(original.groups) + [
        g for g in back.groups if g not in original.groups
    ]
    out = tmp_path / "out.xml"
    assert write_asap_xml(str(out), layer.data, layer._get_state()) == [str(out)]
    again = read_asap(out)
    for a, b in zip(original, again, strict=True):
        assert np.array_equal(a.coordinates, b.coordinates) and a.type == b.type


def test_reader_declines_files_that_are_not_annotations(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text('{"learning_rate": 0.1}')
    (tmp_path / "pom.xml").write_text("<project><modelVersion>4</modelVersion></project>")
    (tmp_path / "shapes.json").write_text('{"type": "FeatureCollection", "features": []}')
    assert get_annotation_reader(str(tmp_path / "config.json")) is None
    assert get_annotation_reader(str(tmp_path / "pom.xml")) is None
    assert get_annotation_reader(str(tmp_path / "missing.xml")) is None
    assert get_annotation_reader(str(tmp_path / "shapes.json")) is not None
    assert get_annotation_reader(str(ASAP_FILES[0])) is not None


@pytest.mark.gui
def test_reader_puts_annotations_on_the_open_slide(make_napari_viewer) -> None:
    viewer = make_napari_viewer()
    slide = viewer.add_layer(
        Layer.create(*open_slide_layer_data(SLIDES_DIR / "cmu-1-small-region.svs"))
    )
    layers = viewer.open(str(ASAP_FILES[0]), plugin="napari-wsi-ml")
    assert len(layers) == 1
    shapes = layers[0]
    assert tuple(shapes.scale) == tuple(slide.scale) == (0.499, 0.499)
    assert shapes.metadata["slide_fingerprint"] == slide.metadata["slide_fingerprint"]
    assert len(shapes.data) == len(read_asap(ASAP_FILES[0]))


@pytest.mark.gui
def test_malformed_file_notifies_and_leaves_layers_untouched(
    make_napari_viewer, tmp_path: Path
) -> None:
    from napari.utils.notifications import notification_manager

    viewer = make_napari_viewer()
    viewer.open(str(ASAP_FILES[1]), plugin="napari-wsi-ml")
    before = [(layer.name, len(layer.data)) for layer in viewer.layers]
    bad = tmp_path / "broken.xml"
    lines = ASAP_FILES[0].read_text().splitlines()
    lines[6] = lines[6].replace('X="', 'X="12,3x')
    bad.write_text("\n".join(lines))
    notification_manager.records.clear()
    assert viewer.open(str(bad), plugin="napari-wsi-ml") == []
    assert [(layer.name, len(layer.data)) for layer in viewer.layers] == before
    messages = [str(record.message) for record in notification_manager.records]
    assert any("broken.xml" in m and "line 7" in m for m in messages), messages


def test_geojson_writer_from_a_layer(tmp_path: Path) -> None:
    from napari_wsi_ml.annotations import read_geojson
    from napari_wsi_ml.viewer.annotation_writer import write_geojson

    original = _every_type()
    original.annotations = [a for a in original if a.type in ("Polygon", "Rectangle")]
    layer = _layer(original)
    out = tmp_path / "alice.geojson"
    assert write_geojson(str(out), layer.data, layer._get_state()) == [str(out)]
    back = read_geojson(out)
    assert [a.group for a in back] == [a.group for a in original]
    for a, b in zip(original, back, strict=True):
        assert np.abs(a.coordinates - b.coordinates[: len(a.coordinates)]).max() < 1e-6
        assert len(b.holes) == len(a.holes)
