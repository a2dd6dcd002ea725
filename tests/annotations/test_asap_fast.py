"""The fast ASAP reader: same result as the general parser, or it defers to it."""

from __future__ import annotations

import dataclasses
import random
import re
from pathlib import Path

import numpy as np
import pytest

from napari_wsi_ml.annotations import Annotation, AnnotationType, _asap_numbers, read_asap
from napari_wsi_ml.annotations._asap_expat import parse_generic
from napari_wsi_ml.annotations._asap_fast import parse_canonical
from napari_wsi_ml.annotations._asap_raw import RawAnnotation, RawAsap
from napari_wsi_ml.errors import AnnotationFileError
from tests.conftest import ANNOTATIONS_DIR

HEAD = '<?xml version="1.0"?>\n<ASAP_Annotations>\n\t<Annotations>\n'
TAIL = (
    "\t</Annotations>\n\t<AnnotationGroups>\n"
    '\t\t<Group Name="t" PartOfGroup="None" Color="#112233">\n\t\t\t<Attributes />\n'
    "\t\t</Group>\n\t</AnnotationGroups>\n</ASAP_Annotations>\n"
)
OPEN = '\t\t<Annotation Name="{}" Type="Polygon" PartOfGroup="t" Color="#F4FA58">\n'


def _doc(*blocks: str, name: str = "A") -> bytes:
    """An ASAP file with one annotation per coordinate block."""
    body = "".join(
        OPEN.format(f"{name}{i}") + f"\t\t\t<Coordinates>{block}</Coordinates>\n\t\t</Annotation>\n"
        for i, block in enumerate(blocks)
    )
    return (HEAD + body + TAIL).encode()


def _rows(*rows: tuple[str, str, str]) -> str:
    return "".join(f'\n\t\t\t\t<Coordinate Order="{o}" X="{x}" Y="{y}" />' for o, x, y in rows)


SQUARE = (
    _rows(("0", "0", "0"), ("1", "10.5", "0"), ("2", "10.5", "7"), ("3", "0", "7")) + "\n\t\t\t"
)


def _annotations(raw: RawAsap) -> list[RawAnnotation]:
    """The annotations of ``raw``, whether the fast reader gave them as rows or not."""
    if raw.rows is None:
        return raw.annotations
    assert not raw.annotations
    return raw.rows.annotations()


def _assert_same(fast: RawAsap, general: RawAsap) -> None:
    assert [(a.attrs, a.line) for a in _annotations(fast)] == [
        (a.attrs, a.line) for a in general.annotations
    ]
    for a, b in zip(_annotations(fast), general.annotations, strict=True):
        assert a.coordinates.dtype == np.float64 and a.coordinates.shape == b.coordinates.shape
        assert np.array_equal(a.coordinates, b.coordinates)
    assert [(g.attrs, g.attributes, g.line) for g in fast.groups] == [
        (g.attrs, g.attributes, g.line) for g in general.groups
    ]


ACCEPTED = {
    "canonical": _doc(SQUARE, SQUARE),
    "crlf": _doc(SQUARE, SQUARE).replace(b"\n", b"\r\n"),
    "lone-cr": _doc(SQUARE, SQUARE).replace(b"\n", b"\r"),
    "one-line": _doc(SQUARE.replace("\n", "").replace("\t", ""), SQUARE),
    "out-of-sequence": _doc(
        _rows(("2", "20", "0"), ("0", "0", "0"), ("1", "10", "5"), ("1", "9", "9"))
    ),
    "decimal-comma": _doc(_rows(("0", "123,45", "-6,5"), ("1", "+1,0", "2"))),
    "signs-and-points": _doc(_rows(("0", "-0", "+.5"), ("1", "1.", "007"))),
    "entity-in-name": _doc(SQUARE, name="a &amp; b &#233; "),
    "empty-block": _doc(SQUARE, "\n\t\t\t", SQUARE),
    "two-blocks-one-annotation": _doc(SQUARE).replace(
        b"</Coordinates>",
        b"</Coordinates><Coordinates>" + _rows(("4", "1", "1")).encode() + b"</Coordinates>",
    ),
    "group-attributes": _doc(SQUARE).replace(
        b"<Attributes />",
        b'<Attributes><grade>3 &amp; 4</grade><Attribute Name="k" Value="v" /></Attributes>',
    ),
    "self-closed-empty": _doc(SQUARE, SQUARE).replace(
        b"<Coordinates>",
        b"<Coordinates />\n\t\t</Annotation>\n" + OPEN.format("E").encode() + b"<Coordinates>",
        1,
    ),
}


@pytest.fixture(params=["one-chunk", "chunk-per-block"])
def chunking(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Blocks checked and converted all in one chunk, or each in its own."""
    if request.param == "chunk-per-block":
        monkeypatch.setattr(_asap_numbers, "CHUNK_BYTES", 1)


@pytest.mark.parametrize("data", ACCEPTED.values(), ids=ACCEPTED.keys())
@pytest.mark.usefixtures("chunking")
def test_fast_path_reads_what_the_general_parser_reads(data: bytes) -> None:
    fast = parse_canonical(data, "f.xml")
    assert fast is not None
    _assert_same(fast, parse_generic(data, "f.xml"))


def test_fast_path_values() -> None:
    fast = parse_canonical(ACCEPTED["out-of-sequence"], "f.xml")
    assert fast is not None
    assert _annotations(fast)[0].coordinates.tolist() == [[0, 0], [10, 5], [9, 9], [20, 0]]
    fast = parse_canonical(ACCEPTED["decimal-comma"], "f.xml")
    assert fast is not None
    assert _annotations(fast)[0].coordinates.tolist() == [[123.45, -6.5], [1.0, 2.0]]
    fast = parse_canonical(ACCEPTED["entity-in-name"], "f.xml")
    assert fast is not None
    assert _annotations(fast)[0].attrs["Name"] == "a & b é 0"


def test_fast_path_values_are_exactly_what_float_reads() -> None:
    # Shortest round-trip texts (up to 17 significant digits) and long or odd ones: every value
    # must be the correctly rounded double, as float() gives.
    rng = np.random.default_rng(7)
    values = rng.uniform(0, 1, 3000) * 10.0 ** rng.integers(-4, 12, 3000)
    texts = [t for t in map(repr, values.tolist()) if "e" not in t]
    texts += ["0.1", "0.30000000000000004", "9007199254740993", "123456789012345678901234.5"]
    texts += ["1." + "0" * 40 + "1", "-0.000", "+42", "007.250", "2.2250738585072014"]
    pairs = [(texts[i], texts[(i + 1) % len(texts)]) for i in range(len(texts))]
    data = _doc(_rows(*((str(k), x, y) for k, (x, y) in enumerate(pairs))))
    fast = parse_canonical(data, "f.xml")
    assert fast is not None
    expected = [[float(x), float(y)] for x, y in pairs]
    assert _annotations(fast)[0].coordinates.tolist() == expected
    assert np.signbit(_annotations(fast)[0].coordinates).sum() == sum(np.signbit(expected).ravel())


DEFERRED = {
    "exponent": _doc(_rows(("0", "1e5", "2"))),
    "empty-value": _doc(_rows(("0", "", "2"))),
    "two-numbers-in-a-value": _doc(_rows(("0", "1-2", "2"))),
    "two-points": _doc(_rows(("0", "1.5.5", "2"))),
    "comma-without-digits": _doc(_rows(("0", ",5", "2"))),
    "digit-in-tag-name": _doc(_rows(("0", "1", "2"))).replace(b"<Coordinate ", b"<Coordinate1 "),
    "junk-after-value": _doc(_rows(("0", "1", "2"))).replace(b'X="1"', b'X="1"7'),
    # An empty value and a stray number as many values as expected: not one number per value.
    "empty-first-value-and-junk": _doc(_rows(("", "1", "2"))).replace(b'Order=""', b'Order=""5'),
    "empty-last-value-and-junk": _doc(_rows(("0", "1", ""))).replace(b'Y=""', b'5Y=""'),
    "empty-value-and-junk": _doc(_rows(("0", "1", "2"), ("1", "", "3"))).replace(
        b'"1" Y="2" />', b'"1" Y="2" />5'
    ),
    "number-in-an-empty-block": _doc(SQUARE, "\n\t5\n", SQUARE),
    "annotation-in-annotation": _doc(SQUARE)
    .replace(b"<Coordinates>", b'<Annotations><Annotation Name="in" Type="Dot"><Coordinates>')
    .replace(b"</Coordinates>", b"</Coordinates></Annotation></Annotations>"),
    "text-between-tags": _doc(SQUARE).replace(b'<Coordinate Order="1"', b'|<Coordinate Order="1"'),
    "empty-value-between-junk": _doc(_rows(("0", "1", "2"), ("1", "", "3"))).replace(
        b' X="" Y', b'5 X="" 6Y'
    ),
    "missing-space": _doc(_rows(("0", "1", "2"))).replace(b'" Y', b'"Y'),
    "attribute-order": _doc(_rows(("0", "1", "2"))).replace(b'X="1" Y="2"', b'Y="2" X="1"'),
    "single-quotes": _doc(_rows(("0", "1", "2"))).replace(b'X="1"', b"X='1'"),
    "nan": _doc(_rows(("0", "nan", "2"))),
    "comment": _doc(SQUARE).replace(b"<Annotations>", b"<Annotations><!-- <Coordinates> -->"),
    "processing-instruction": _doc(SQUARE).replace(
        b"<Annotations>", b"<Annotations><?x <Coordinates> ?>"
    ),
    "tag-in-attribute": _doc(SQUARE).replace(b'Name="A0"', b'Name="<Coordinates></Coordinates>"'),
    "nested": _doc(SQUARE).replace(b"<Coordinates>", b"<Coordinates><Coordinates>", 1),
    "unclosed": _doc(SQUARE).replace(b"</Coordinates>", b""),
    "outside-annotation": _doc(SQUARE).replace(
        b"</AnnotationGroups>", b"<Coordinates></Coordinates></AnnotationGroups>"
    ),
    "other-encoding": _doc(SQUARE).replace(
        b'version="1.0"', b'version="1.0" encoding="ISO-8859-1"'
    ),
    "no-coordinates-at-all": (HEAD + TAIL).encode(),
}


@pytest.mark.parametrize("data", DEFERRED.values(), ids=DEFERRED.keys())
@pytest.mark.usefixtures("chunking")
def test_fast_path_defers_and_reading_matches_the_general_parser(
    data: bytes, tmp_path: Path
) -> None:
    assert parse_canonical(data, "f.xml") is None
    path = tmp_path / "f.xml"
    path.write_bytes(data)
    try:
        general = parse_generic(data, str(path))
    except AnnotationFileError as error:
        with pytest.raises(AnnotationFileError) as info:
            read_asap(path)
        assert str(info.value) == str(error)
        assert re.search(r"line \d+", str(error))
    else:
        assert len(read_asap(path)) == sum(len(a.coordinates) > 0 for a in general.annotations)


@pytest.mark.usefixtures("chunking")
def test_messages_from_the_fast_path_name_the_file_line(tmp_path: Path) -> None:
    data = _doc(SQUARE, "\n\t\t\t", SQUARE).replace(b"\n", b"\r\n")
    path = tmp_path / "f.xml"
    path.write_bytes(data)
    assert parse_canonical(data, str(path)) is not None
    skipped = read_asap(path).skipped
    assert skipped == [f"{path}, line 12: annotation 'A1' has no coordinates"]
    path.write_bytes(data.replace(b'Name="A2" Type="Polygon"', b'Name="A2" Type="Ellipse"'))
    with pytest.raises(
        AnnotationFileError, match=r"f\.xml, line 16: annotation 'A2' has the unknown"
    ):
        read_asap(path)


@pytest.mark.usefixtures("chunking")
def test_random_damage_is_refused_or_read_as_the_general_parser_does() -> None:
    """Differential check: whatever the fast path accepts, the general parser reads the same."""
    text = (ANNOTATIONS_DIR / "asap" / "CMU-1_detection.xml").read_bytes()
    snippets = [b"<", b">", b'"', b"'", b"=", b" ", b"\r", b"5", b".", b",", b"-", b"e", b"&amp;"]
    snippets += [b"<Coordinates>", b"</Coordinates>", b"<!-- -->", b"<Coordinates />"]
    rng = random.Random(0)
    accepted = 0
    for _ in range(400):
        data = text
        for _ in range(rng.randint(1, 2)):
            data = _damaged(data, rng.randrange(len(data)), rng, snippets)
        accepted += _checked_fast_parse(data) is not None
    assert accepted > 20  # the damage often falls in text where it changes nothing


def test_trusted_annotation_equals_a_checked_one() -> None:
    coords = np.array([[0.0, 1.0], [2.0, 3.0], [4.0, 0.5]])
    checked = Annotation("a", AnnotationType.DOT, coords, group="g", color="#000000")
    trusted = Annotation.trusted("a", AnnotationType.DOT, coords, "g", "#000000")
    for field in dataclasses.fields(Annotation):
        value, expected = getattr(trusted, field.name), getattr(checked, field.name)
        assert type(value) is type(expected)
        assert np.array_equal(value, expected) if field.name == "coordinates" else value == expected
    assert repr(trusted) == repr(checked)


GROUPS = (
    '\t<AnnotationGroups>\n\t\t<Group Name="g" PartOfGroup="None" Color="#1" />\n'
    "\t</AnnotationGroups>\n"
)
ROWS_LAYOUT = {  # ASAP's own layout: the annotations are read as rows, without callbacks
    "canonical": ACCEPTED["canonical"],
    "crlf": ACCEPTED["crlf"],
    "empty-block": ACCEPTED["empty-block"],
    "out-of-sequence": ACCEPTED["out-of-sequence"],
    "decimal-comma": ACCEPTED["decimal-comma"],
    "unicode-and-markup-in-name": _doc(SQUARE, name="é 'x' > y Ω"),
    "groups-before-annotations": _doc(SQUARE, SQUARE).replace(
        b"<ASAP_Annotations>\n", b"<ASAP_Annotations>\n" + GROUPS.encode()
    ),
}
BUILDER_LAYOUT = {  # valid, canonical coordinates, another layout of the annotations
    "attributes-reordered": _doc(SQUARE, SQUARE).replace(
        b'Name="A1" Type="Polygon"', b'Type="Polygon" Name="A1"'
    ),
    "extra-attribute": _doc(SQUARE).replace(b'Color="#F4FA58"', b'Color="#F4FA58" Id="7"'),
    "entity-in-name": ACCEPTED["entity-in-name"],
    "tab-in-name": _doc(SQUARE, name="a\tb"),
    "single-line-annotation": _doc(SQUARE, SQUARE).replace(b'#F4FA58">\n\t\t\t<C', b'#F4FA58"><C'),
    "missing-color": _doc(SQUARE).replace(b' Color="#F4FA58"', b""),
}


@pytest.mark.parametrize("data", ROWS_LAYOUT.values(), ids=ROWS_LAYOUT.keys())
@pytest.mark.usefixtures("chunking")
def test_asap_layout_is_read_as_rows(data: bytes) -> None:
    fast = parse_canonical(data, "f.xml")
    assert fast is not None and fast.rows is not None
    _assert_same(fast, parse_generic(data, "f.xml"))


@pytest.mark.parametrize("data", BUILDER_LAYOUT.values(), ids=BUILDER_LAYOUT.keys())
def test_other_annotation_layouts_use_the_skeleton_builder(data: bytes) -> None:
    fast = parse_canonical(data, "f.xml")
    assert fast is not None and fast.rows is None
    _assert_same(fast, parse_generic(data, "f.xml"))


def test_groups_before_the_annotations_keep_their_lines() -> None:
    data = ROWS_LAYOUT["groups-before-annotations"]
    fast = parse_canonical(data, "f.xml")
    assert fast is not None and fast.rows is not None
    assert [g.line for g in fast.groups] == [4, 25]
    assert fast.rows.lines.tolist() == [7, 15]


def test_comment_with_coordinates_goes_to_the_general_parser(tmp_path: Path) -> None:
    data = ACCEPTED["canonical"].replace(
        b"\t</Annotations>", b'\t<!-- <Coordinate Order="9" X="1" Y="2" /> -->\n\t</Annotations>'
    )
    assert parse_canonical(data, "f.xml") is None
    path = tmp_path / "f.xml"
    path.write_bytes(data)
    assert [len(a.coordinates) for a in read_asap(path)] == [4, 4]


@pytest.mark.usefixtures("chunking")
def test_random_damage_to_the_annotation_rows() -> None:
    """Differential check on the row reader: damage in the annotations' start tags."""
    text = _doc(SQUARE, SQUARE, SQUARE, name="Ann ")
    snippets = [b"<", b">", b'"', b"=", b" ", b"\t", b"\n", b"\r", b"&amp;", b"&", b"\x01"]
    snippets += ["é".encode(), b"\xff", b"<!---->", b'Id="1" ', b"</Annotation>"]
    rng = random.Random(1)
    rows = 0
    starts = [m.start() for m in re.finditer(rb"<Annotation ", text)]
    for _ in range(300):
        data = _damaged(text, rng.choice(starts) + rng.randrange(90), rng, snippets)
        fast = _checked_fast_parse(data)
        rows += fast is not None and fast.rows is not None
    assert rows > 20


def test_row_reader_reports_the_first_unknown_type_in_the_file(tmp_path: Path) -> None:
    data = _doc(SQUARE, SQUARE, SQUARE)
    data = data.replace(b'"A2" Type="Polygon"', b'"A2" Type="Blob"')
    data = data.replace(b'"A1" Type="Polygon"', b'"A1" Type="Ellipse"')
    path = tmp_path / "f.xml"
    path.write_bytes(data)
    raw = parse_canonical(data, str(path))
    assert raw is not None and raw.rows is not None
    with pytest.raises(AnnotationFileError, match=r"f\.xml, line 12: annotation 'A1' has the"):
        read_asap(path)


def _damaged(data: bytes, at: int, rng: random.Random, snippets: list[bytes]) -> bytes:
    """``data`` with the byte at ``at`` deleted (30 %) or a random snippet inserted there."""
    out = bytearray(data)
    if rng.random() < 0.3:
        del out[at]
    else:
        out[at:at] = rng.choice(snippets)
    return bytes(out)


def _checked_fast_parse(data: bytes) -> RawAsap | None:
    """The fast parse of ``data``; when it accepts the file, it must equal the general parse."""
    fast = parse_canonical(data, "f.xml")
    if fast is not None:
        _assert_same(fast, parse_generic(data, "f.xml"))
    return fast
