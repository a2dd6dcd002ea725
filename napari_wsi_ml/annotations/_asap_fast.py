"""Fast parser for ASAP XML in the exact layout ASAP itself writes (≥ 1M vertices/s).

It accepts only a strict, well-formed subset of XML: no DTD, no entity or character
references, no comments, CDATA or processing instructions, double-quoted attributes, and
coordinates written exactly as ``<Coordinate Order="i" X="x" Y="y" />``. One regular
expression checks the whole ``<Annotations>`` block against that grammar, so a document that
passes is well-formed and cannot carry an entity bomb; numbers are then converted in one
vectorised call. Anything else returns ``None`` and the caller uses the general, defused
expat parser, which also reports errors with line numbers.
"""

from __future__ import annotations

import re
import warnings

import numpy as np

from napari_wsi_ml.annotations._asap_expat import parse_generic
from napari_wsi_ml.annotations._asap_raw import RawAnnotation, RawAsap, sort_by_order
from napari_wsi_ml.errors import AnnotationFileError

_ATTRS = rb'(?:\s+[A-Za-z_][\w.-]*\s*=\s*"[^"<]*")*'
_VALUE = rb'[^"\s<]+'
_COORD_OPEN = b'<Coordinate Order="'
_COORD_MARKERS = (_COORD_OPEN, b'" X="', b'" Y="', b'" />')
_PROLOG = re.compile(
    rb'\s*(?:<\?xml(?:\s+[a-z]+\s*=\s*(?:"[^"<>?]*"|\'[^\'<>?]*\'))*\s*\?>)?\s*'
    rb"<ASAP_Annotations\s*>\s*(?:<Annotations\s*/>|<Annotations\s*>)\s*"
)
_BLOCK = re.compile(
    rb"(?:<Annotation"
    + _ATTRS
    + rb"\s*>\s*<Coordinates>\s*(?:"
    + _COORD_OPEN
    + _VALUE
    + rb'" X="'
    + _VALUE
    + rb'" Y="'
    + _VALUE
    + rb'" />\s*)*</Coordinates>\s*</Annotation>\s*)*'
)
_ANNOTATION = re.compile(rb"<Annotation(" + _ATTRS + rb")\s*>")
_ATTR = re.compile(rb'([A-Za-z_][\w.-]*)\s*=\s*"([^"<]*)"')
_GROUPS = re.compile(
    rb"\s*(?:<AnnotationGroups\s*/>|<AnnotationGroups\s*>.*?</AnnotationGroups\s*>)\s*", re.S
)
_END = re.compile(rb"\s*</ASAP_Annotations\s*>\s*")
_ENCODING = re.compile(rb'encoding\s*=\s*["\']([^"\']*)["\']')


def _attrs(blob: bytes) -> dict[str, str] | None:
    pairs = _ATTR.findall(blob)
    attrs = {key.decode("ascii"): value.decode("utf-8") for key, value in pairs}
    return attrs if len(attrs) == len(pairs) else None  # duplicate attributes are malformed


def _numbers(blob: bytes, count: int) -> np.ndarray | None:
    """``count`` rows of (Order, X, Y) from the joined coordinate blocks, or ``None``."""
    for marker in _COORD_MARKERS:
        blob = blob.replace(marker, b" ")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            values = np.fromstring(blob, dtype=np.float64, sep=" ")  # text mode: not deprecated
    except (ValueError, DeprecationWarning):
        return None  # e.g. a decimal comma: the general parser handles it
    if values.size != 3 * count or not np.isfinite(values).all():
        return None
    return values.reshape(-1, 3)


def _annotations(data: bytes, start: int, stop: int) -> list[RawAnnotation] | None:
    """The annotations of a block that already matched ``_BLOCK``."""
    all_attrs: list[dict[str, str]] = []
    blocks: list[bytes] = []
    counts: list[int] = []
    for match in _ANNOTATION.finditer(data, start, stop):
        attrs = _attrs(match.group(1))
        if attrs is None:
            return None
        opened = data.find(b"<Coordinates>", match.end()) + len(b"<Coordinates>")
        closed = data.find(b"</Coordinates>", opened)
        all_attrs.append(attrs)
        counts.append(data.count(b"<", opened, closed))
        blocks.append(data[opened:closed])
    table = _numbers(b" ".join(blocks), sum(counts))
    if table is None:
        return None
    offsets = np.concatenate([[0], np.cumsum(counts, dtype=np.int64)])
    expected = np.arange(len(table)) - np.repeat(offsets[:-1], counts)
    in_sequence = bool(np.array_equal(table[:, 0], expected))
    result = []
    for index, attrs in enumerate(all_attrs):
        block = table[offsets[index] : offsets[index + 1]]
        coords = block[:, 1:3] if in_sequence else sort_by_order(block[:, 1:3], block[:, 0])
        result.append(RawAnnotation(attrs, np.ascontiguousarray(coords)))
    return result


def parse_canonical(data: bytes, path: str) -> RawAsap | None:
    """Parse ASAP XML in ASAP's own layout, or return ``None`` if it is laid out otherwise."""
    if b"&" in data or b"<!" in data or b"]]>" in data or data.count(b"<?") > 1:
        return None
    encoding = _ENCODING.search(data, 0, 200)
    if encoding and encoding.group(1).lower() not in (b"utf-8", b"utf8"):
        return None
    prolog = _PROLOG.match(data)
    if prolog is None:
        return None
    raw = RawAsap()
    pos = prolog.end()
    if not prolog.group(0).rstrip().endswith(b"/>"):
        stop = data.find(b"</Annotations>", pos)
        if stop < 0 or _BLOCK.fullmatch(data, pos, stop) is None:
            return None
        try:
            annotations = _annotations(data, pos, stop)
        except UnicodeDecodeError:
            return None
        if annotations is None:
            return None
        raw.annotations = annotations
        pos = stop + len(b"</Annotations>")
    groups = _GROUPS.match(data, pos)
    if groups is not None:
        pos = groups.end()
        wrapped = b"<ASAP_Annotations>" + groups.group(0) + b"</ASAP_Annotations>"
        try:
            raw.groups = parse_generic(wrapped, path).groups
        except AnnotationFileError:
            return None
    end = _END.match(data, pos)
    if end is None or end.end() != len(data):
        return None
    return raw
