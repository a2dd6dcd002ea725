"""ASAP XML: exact round trips of real files, real-world quirks, and bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from napari_wsi_ml.annotations import AnnotationType, read_asap, write_asap
from napari_wsi_ml.annotations._asap_expat import parse_generic
from napari_wsi_ml.annotations._asap_fast import parse_canonical
from napari_wsi_ml.errors import AnnotationFileError
from tests.conftest import ANNOTATIONS_DIR

ASAP_FILES = sorted((ANNOTATIONS_DIR / "asap").glob("*.xml"))


def _xml(annotations: str, groups: str = "") -> str:
    return (
        '<?xml version="1.0"?>\n<ASAP_Annotations>\n<Annotations>\n'
        + annotations
        + "</Annotations>\n<AnnotationGroups>\n"
        + groups
        + "</AnnotationGroups>\n</ASAP_Annotations>\n"
    )


def _annotation(name: str, type_: str, group: str, coords: list[tuple[str, str, str]]) -> str:
    rows = "".join(f'<Coordinate Order="{o}" X="{x}" Y="{y}" />\n' for o, x, y in coords)
    return (
        f'<Annotation Name="{name}" Type="{type_}" PartOfGroup="{group}" Color="#F4FA58">\n'
        f"<Coordinates>\n{rows}</Coordinates>\n</Annotation>\n"
    )


def _write(tmp_path: Path, text: str | bytes, name: str = "a.xml") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode("utf-8") if isinstance(text, str) else text)
    return path


def test_there_are_asap_files() -> None:
    assert len(ASAP_FILES) == 3


@pytest.mark.parametrize("path", ASAP_FILES, ids=lambda p: p.name)
def test_asap_round_trip_is_byte_exact(path: Path, tmp_path: Path) -> None:
    annotation_set = read_asap(path)
    out = tmp_path / "out.xml"
    assert write_asap(annotation_set, out) == []
    assert out.read_bytes() == path.read_bytes()
    again = read_asap(out)
    assert [(a.name, a.type, a.group, a.color) for a in again] == [
        (a.name, a.type, a.group, a.color) for a in annotation_set
    ]
    for before, after in zip(annotation_set, again, strict=True):
        assert np.array_equal(before.coordinates, after.coordinates)


@pytest.mark.parametrize("path", ASAP_FILES, ids=lambda p: p.name)
def test_fast_and_general_parsers_agree(path: Path) -> None:
    data = path.read_bytes()
    fast = parse_canonical(data, str(path))
    general = parse_generic(data, str(path))
    assert fast is not None and fast.rows is not None  # ASAP's own layout: the row reader
    annotations = fast.rows.annotations()
    assert [(a.attrs, a.line) for a in annotations] == [
        (a.attrs, a.line) for a in general.annotations
    ]
    for a, b in zip(annotations, general.annotations, strict=True):
        assert np.array_equal(a.coordinates, b.coordinates)
    assert [(g.attrs, g.attributes) for g in fast.groups] == [
        (g.attrs, g.attributes) for g in general.groups
    ]


def test_real_file_content() -> None:
    detection = read_asap(ANNOTATIONS_DIR / "asap" / "CMU-1_detection.xml")
    assert len(detection) == 24
    assert list(detection.groups) == ["malignant", "benign", "cell"]
    assert detection.groups["cell"].parent is None
    assert detection.groups["cell"].color == "#64FE2E"
    first = detection.annotations[0]
    assert first.type is AnnotationType.RECTANGLE and first.group == "malignant"
    assert first.coordinates[0].tolist() == [6513.42529, 20190.4805]
    dots = [a for a in detection if a.type is AnnotationType.DOT]
    assert [len(a.coordinates) for a in dots] == [4]  # a Dot carrying 4 coordinates
    classification = read_asap(ANNOTATIONS_DIR / "asap" / "CMU-1_classification.xml")
    assert [a.type.value for a in classification] == [
        "Spline",
        "Polygon",
        "Spline",
        "Spline",
        "Dot",
    ]


def test_bom_and_crlf(tmp_path: Path) -> None:
    text = _xml(
        _annotation("A", "Polygon", "t", [("0", "1.5", "2"), ("1", "3", "4"), ("2", "5", "0")])
    )
    path = _write(tmp_path, b"\xef\xbb\xbf" + text.replace("\n", "\r\n").encode())
    annotation = read_asap(path).annotations[0]
    assert annotation.coordinates.tolist() == [[1.5, 2.0], [3.0, 4.0], [5.0, 0.0]]


def test_decimal_comma(tmp_path: Path) -> None:
    path = _write(tmp_path, _xml(_annotation("A", "Dot", "None", [("0", "123,45", "-6,5")])))
    annotation_set = read_asap(path)
    assert annotation_set.annotations[0].coordinates.tolist() == [[123.45, -6.5]]
    assert annotation_set.annotations[0].group is None


def test_order_out_of_sequence_is_sorted_and_rewritten(tmp_path: Path) -> None:
    coords = [("2", "20", "0"), ("0", "0", "0"), ("1", "10", "5")]
    path = _write(tmp_path, _xml(_annotation("A", "Polygon", "t", coords)))
    annotation = read_asap(path).annotations[0]
    assert annotation.coordinates.tolist() == [[0, 0], [10, 5], [20, 0]]
    out = tmp_path / "out.xml"
    write_asap(read_asap(path), out)
    text = out.read_text()
    assert '<Coordinate Order="0" X="0" Y="0" />' in text
    assert '<Coordinate Order="2" X="20" Y="0" />' in text


def test_groups_used_but_undefined_and_defined_but_unused(tmp_path: Path) -> None:
    groups = '<Group Name="unused" PartOfGroup="None" Color="#112233"><Attributes /></Group>\n'
    text = _xml(
        _annotation("A", "Polygon", "orphan", [("0", "0", "0"), ("1", "1", "0"), ("2", "1", "1")]),
        groups,
    )
    annotation_set = read_asap(_write(tmp_path, text))
    assert list(annotation_set.groups) == ["unused"]
    assert annotation_set.class_names == ["unused", "orphan"]
    out = tmp_path / "out.xml"
    write_asap(annotation_set, out)
    assert set(read_asap(out).groups) == {"unused", "orphan"}


def test_general_layout_comments_entities_and_attribute_order(tmp_path: Path) -> None:
    text = (
        "<?xml version='1.0' encoding='UTF-8'?>\n<!-- written by hand -->\n<ASAP_Annotations>"
        "<Annotations><Annotation Color='#FF0000' PartOfGroup='a &amp; b' Type='Spline' Name='S'>"
        "<Coordinates><Coordinate Y='2' X='1' Order='0'/><Coordinate X='3' Y='4' Order='1'>"
        "</Coordinate><Coordinate X='5' Y='0' Order='2'/></Coordinates></Annotation></Annotations>"
        "<AnnotationGroups><Group Name='a &amp; b' PartOfGroup='None' Color='#00FF00'>"
        "<Attributes><Attribute Name='grade' Value='3'/></Attributes></Group></AnnotationGroups>"
        "</ASAP_Annotations>"
    )
    path = _write(tmp_path, text)
    assert parse_canonical(path.read_bytes(), str(path)) is None
    annotation_set = read_asap(path)
    annotation = annotation_set.annotations[0]
    assert annotation.type is AnnotationType.SPLINE and annotation.group == "a & b"
    assert annotation.coordinates.tolist() == [[1, 2], [3, 4], [5, 0]]
    assert annotation_set.groups["a & b"].attributes == {"grade": "3"}
    out = tmp_path / "out.xml"
    write_asap(annotation_set, out)
    assert read_asap(out).groups["a & b"].attributes == {"grade": "3"}


def test_annotation_without_coordinates_is_skipped_and_listed(tmp_path: Path) -> None:
    empty = (
        '<Annotation Name="E" Type="Polygon" PartOfGroup="None" Color="#F4FA58">'
        "<Coordinates /></Annotation>\n"
    )
    text = _xml(empty + _annotation("A", "Dot", "None", [("0", "1", "2")]))
    annotation_set = read_asap(_write(tmp_path, text))
    assert [a.name for a in annotation_set] == ["A"]
    assert len(annotation_set.skipped) == 1 and "'E'" in annotation_set.skipped[0]


BOMB = (
    '<?xml version="1.0"?>\n<!DOCTYPE lolz [\n <!ENTITY lol "lol">\n'
    ' <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">\n]>\n'
    "<ASAP_Annotations><Annotations>&lol2;</Annotations></ASAP_Annotations>\n"
)
EXTERNAL = (
    '<?xml version="1.0"?>\n<!DOCTYPE x [<!ENTITY ext SYSTEM "file:///etc/passwd">]>\n'
    "<ASAP_Annotations>&ext;</ASAP_Annotations>\n"
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            _xml(_annotation("A", "Polygon", "t", [("0", "1", "2")])).replace("</Annotations>", ""),
            "line 12, column 3: the XML is malformed",
        ),
        ("<ASAP_Annotations><Annotations>", "malformed"),
        ('<?xml version="1.0"?>\n<Annotations>\n</Annotations>\n', "root element is <Annotations>"),
        (BOMB, "line 3"),
        (EXTERNAL, "refused"),
        (
            _xml(_annotation("A", "Polygon", "t", [("0", "1", "2"), ("1", "abc", "3")])),
            "line 7: X='abc' is not a number",
        ),
        (
            _xml(_annotation("A", "Polygon", "t", [("0", "1", "nan")])),
            "line 6: Y='nan' is not a finite",
        ),
        (_xml(_annotation("A", "Ellipse", "t", [("0", "1", "2")])), "unknown Type 'Ellipse'"),
        ("", "malformed"),
    ],
    ids=[
        "truncated",
        "unclosed",
        "other-root",
        "bomb",
        "external-entity",
        "not-a-number",
        "nan",
        "unknown-type",
        "empty",
    ],
)
def test_bad_input_names_file_and_line(tmp_path: Path, text: str, expected: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(AnnotationFileError) as info:
        read_asap(path)
    message = str(info.value)
    assert str(path) in message
    assert expected in message


def test_bomb_is_refused_before_expansion(tmp_path: Path) -> None:
    with pytest.raises(AnnotationFileError, match="entities"):
        read_asap(_write(tmp_path, BOMB))


def test_missing_file() -> None:
    with pytest.raises(AnnotationFileError, match="Cannot read"):
        read_asap(ANNOTATIONS_DIR / "missing.xml")
