"""QuPath GeoJSON: real files, QuPath variants, ASAP → GeoJSON → ASAP, and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from napari_wsi_ml.annotations import (
    AnnotationType,
    read_annotations,
    read_asap,
    read_geojson,
    write_asap,
    write_geojson,
)
from napari_wsi_ml.errors import AnnotationFileError
from tests.conftest import ANNOTATIONS_DIR

ASAP_FILES = sorted((ANNOTATIONS_DIR / "asap").glob("*.xml"))
SQUARE = [[0, 0], [10, 0], [10, 10], [0, 10], [0, 0]]
HOLE = [[2, 2], [4, 2], [4, 4], [2, 4], [2, 2]]


def _dump(tmp_path: Path, document: object, name: str = "a.geojson") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(document))
    return path


def _feature(geometry: dict, **properties: object) -> dict:
    return {"type": "Feature", "geometry": geometry, "properties": properties}


def test_qupath05_name_and_color() -> None:
    annotation_set = read_geojson(ANNOTATIONS_DIR / "geojson" / "qupath05.geojson")
    assert [(a.name, a.group, a.color) for a in annotation_set] == [
        ("UT", "UT", "#FF0000"),
        ("I", "I", "#FF0000"),
        ("I", "I", "#FF0000"),
    ]
    first = annotation_set.annotations[0]
    assert first.type is AnnotationType.POLYGON
    assert first.coordinates[:2].tolist() == [[8909, 6277], [8902, 6278]]
    assert not np.array_equal(first.coordinates[0], first.coordinates[-1])  # ring left open


def test_minimal_file_with_numeric_class() -> None:
    annotation_set = read_annotations(ANNOTATIONS_DIR / "geojson" / "test_annotation.geojson")
    (annotation,) = annotation_set.annotations
    assert annotation.group == "0"
    assert annotation.coordinates.tolist() == [[0, 0], [0, 1], [1, 1], [1, 0]]


@pytest.mark.parametrize("path", ASAP_FILES, ids=lambda p: p.name)
def test_asap_to_geojson_to_asap_keeps_geometry_and_classes(path: Path, tmp_path: Path) -> None:
    original = read_asap(path)
    notes = write_geojson(original, tmp_path / "a.geojson")
    converted = [a for a in original if a.type in (AnnotationType.SPLINE, AnnotationType.RECTANGLE)]
    assert len(notes) == len(converted)  # every conversion is reported
    back = read_geojson(tmp_path / "a.geojson")
    assert [(a.name, a.type, a.group, a.color) for a in back] == [
        (a.name, a.type, a.group, a.color) for a in original
    ]
    assert {n: g.color for n, g in back.groups.items()} == {
        n: g.color for n, g in original.groups.items()
    }
    for before, after in zip(original, back, strict=True):
        assert np.array_equal(before.coordinates, after.coordinates)
    write_asap(back, tmp_path / "b.xml")
    assert (tmp_path / "b.xml").read_bytes() == path.read_bytes()


def test_written_geojson_is_qupath_shaped(tmp_path: Path) -> None:
    write_geojson(read_asap(ASAP_FILES[0]), tmp_path / "a.geojson")
    document = json.loads((tmp_path / "a.geojson").read_text())
    assert document["type"] == "FeatureCollection"
    spline = document["features"][0]
    props = spline["properties"]
    assert props["objectType"] == "annotation" and props["isLocked"] is False
    assert props["classification"] == {"name": "malignant", "color": [0x64, 0xFE, 0x2E]}
    assert spline["geometry"]["type"] == "Polygon"
    ring = spline["geometry"]["coordinates"][0]
    assert ring[0] == ring[-1] and len(ring) == 16 * 45 + 1
    assert props["asap_type"] == "Spline" and len(props["asap_control_points"]) == 45


def test_bare_array_single_feature_packed_color_and_holes(tmp_path: Path) -> None:
    packed = -65536  # 0xFFFF0000 as QuPath's signed ARGB int: opaque red
    feature = _feature(
        {"type": "Polygon", "coordinates": [SQUARE, HOLE]},
        objectType="annotation",
        classification={"name": "tumor", "color": packed},
    )
    for document in ([feature], feature):
        annotation_set = read_geojson(_dump(tmp_path, document))
        (annotation,) = annotation_set.annotations
        assert (annotation.group, annotation.color) == ("tumor", "#FF0000")
        assert annotation_set.groups["tumor"].color == "#FF0000"
        assert len(annotation.holes) == 1 and annotation.holes[0].tolist() == HOLE[:-1]
    notes = write_asap(annotation_set, tmp_path / "a.xml")
    assert "hole" in notes[0]


def test_multipolygon_points_lines(tmp_path: Path) -> None:
    document = {
        "type": "FeatureCollection",
        "features": [
            _feature(
                {"type": "MultiPolygon", "coordinates": [[SQUARE], [SQUARE, HOLE]]}, name="mp"
            ),
            _feature({"type": "Point", "coordinates": [5, 6]}),
            _feature({"type": "MultiPoint", "coordinates": [[1, 2], [3, 4]]}),
            _feature({"type": "LineString", "coordinates": [[0, 0], [3, 4]]}),
            _feature(None),
        ],
    }
    annotation_set = read_geojson(_dump(tmp_path, document))
    assert [a.type.value for a in annotation_set] == [
        "Polygon",
        "Polygon",
        "Dot",
        "PointSet",
        "Measurement",
    ]
    assert [len(a.holes) for a in annotation_set][:2] == [0, 1]
    assert "split into 2" in annotation_set.notes[0]
    assert len(annotation_set.skipped) == 1 and "feature #4" in annotation_set.skipped[0]
    write_geojson(annotation_set, tmp_path / "b.geojson")
    again = read_geojson(tmp_path / "b.geojson")
    assert [a.type for a in again] == [a.type for a in annotation_set]
    assert again.annotations[1].holes[0].tolist() == HOLE[:-1]


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        (
            {
                "type": "FeatureCollection",
                "features": [_feature({"type": "GeometryCollection", "geometries": []})],
            },
            "feature #0: unsupported geometry type 'GeometryCollection'",
        ),
        (
            [
                _feature({"type": "Point", "coordinates": [1, 2]}),
                _feature({"type": "Point", "coordinates": ["a", 2]}),
            ],
            "feature #1",
        ),
        ({"type": "Topology"}, "not GeoJSON annotations"),
        ([{"type": "Point"}], "feature #0: not a GeoJSON Feature"),
        (
            [_feature({"type": "Point", "coordinates": [1, 2]}, color="blue")],
            "feature #0: colour 'blue'",
        ),
    ],
    ids=["geometry-collection", "not-a-number", "topology", "not-a-feature", "bad-colour"],
)
def test_bad_geojson(tmp_path: Path, document: object, expected: str) -> None:
    path = _dump(tmp_path, document)
    with pytest.raises(AnnotationFileError, match="") as info:
        read_geojson(path)
    assert str(path) in str(info.value) and expected in str(info.value)


def test_invalid_json_names_line(tmp_path: Path) -> None:
    path = tmp_path / "a.geojson"
    path.write_text('{"type": "FeatureCollection",\n "features": [}')
    with pytest.raises(AnnotationFileError, match=r"line 2, column 15: invalid JSON"):
        read_geojson(path)


def test_sniffing_ignores_a_misleading_extension(tmp_path: Path) -> None:
    xml_as_json = tmp_path / "really_xml.json"
    xml_as_json.write_bytes(ASAP_FILES[0].read_bytes())
    assert len(read_annotations(xml_as_json)) == 5
    garbage = tmp_path / "a.xml"
    garbage.write_text("hello")
    with pytest.raises(AnnotationFileError, match="neither ASAP XML nor GeoJSON"):
        read_annotations(garbage)
