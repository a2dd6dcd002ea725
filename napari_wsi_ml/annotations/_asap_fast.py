"""Fast ASAP XML reading: the coordinates without one Python call per ``<Coordinate>``.

Why it exists: speed. Almost all of an ASAP file is ``<Coordinate Order X Y />`` tags (3M
vertices are ~186 MB). A general parser calls back into Python for each of them, which caps
reading at ~0.2M vertices/s; the target is ≥ 1M vertices/s.

How it works: the file is cut at every ``<Coordinates>`` … ``</Coordinates>``. The content in
between (a *block*) is checked and converted with a few whole-buffer C-speed operations
(``bytes.translate``/``count`` and one ``numpy.fromstring`` for all numbers); what remains, the
*skeleton* with empty ``<Coordinates></Coordinates>`` (~8% of the file), goes through the same
guarded expat parser and builder as the general path, which gives annotations, groups and lines.

How it stays safe: a block is accepted only if it consists of whitespace and tags
byte-identical to ``<Coordinate Order="…" X="…" Y="…" />``, each ``…`` a run of ``0-9 . + -``
(or a decimal comma as in ``12,5``) that parses as exactly one finite number. Such a block is
well-formed element content without any reference, so putting it back into a skeleton that
expat accepted (well-formed, no entity declaration, no external reference) gives a document
that expat accepts and reads the same. ``<!`` (DOCTYPE, comments, CDATA) and processing
instructions are refused, so no cut falls inside one. Whenever anything is off,
:func:`parse_canonical` returns ``None`` and the caller runs the general parser, which
reports the exact problem with its line.
"""

from __future__ import annotations

import re
import warnings
from xml.parsers import expat

import numpy as np
from defusedxml import DefusedXmlException

from napari_wsi_ml.annotations._asap_expat import Builder, make_guarded_parser, run_builder
from napari_wsi_ml.annotations._asap_raw import RawAnnotation, RawAsap, sort_by_order
from napari_wsi_ml.errors import AnnotationFileError

_OPEN, _CLOSE = b"<Coordinates>", b"</Coordinates>"
_TAG = b'<Coordinate Order="" X="" Y="" />'  # a coordinate tag with its values deleted
_NUMBER = b"0123456789.+-,"
_SEPARATOR = b"|"  # joins blocks, so that no tag can span two of them
_SPACE = b" \t\r\n" + _SEPARATOR
_COMMA_TO_POINT = bytes(range(256)).replace(b",", b".")
_NOT_VALUE = bytes(c for c in range(256) if c not in _NUMBER + b'"')
_COMMA_TOKEN = re.compile(rb"[-+.0-9]*,[-+.,0-9]*")
_DECIMAL_COMMA = re.compile(rb"[-+]?[0-9]+,[0-9]+")  # the only form the general parser reads
_NO_POINTS = np.empty((0, 2))
_ENCODING = re.compile(rb'encoding\s*=\s*["\']([^"\']*)["\']')


class _NotCanonical(Exception):
    """Raised inside the skeleton parse to give up on the fast path."""


class _SkeletonBuilder(Builder):
    """Builds from the skeleton: notes each block's annotation, reports lines of the file.

    The emptied blocks are told apart from other ``<Coordinates>`` elements (such as an
    empty ``<Coordinates />``, which the builder handles as usual) by their byte offset.
    """

    def __init__(
        self, parser: expat.XMLParserType, path: str, offsets: list[int], newlines: list[int]
    ) -> None:
        super().__init__(parser, path)
        self.offsets = [*offsets, -1]  # where each emptied block's tag is in the skeleton
        self.shift = np.cumsum([0, *newlines]).tolist()  # lines removed before block i
        self.owners: list[int] = []  # per block: index of its annotation
        self.in_block = False

    def line(self) -> int:
        return self.parser.CurrentLineNumber + self.shift[len(self.owners)]

    def start(self, name: str, attrs: dict[str, str]) -> None:
        if self.parser.CurrentByteIndex != self.offsets[len(self.owners)]:
            super().start(name, attrs)
        elif self.annotation is None or self.stack[-1] == "Attributes":
            raise _NotCanonical  # a block outside an annotation: rare, left to the general path
        else:
            self.owners.append(len(self.raw.annotations))
            self.stack.append(name)
            self.in_block = True

    def end(self, name: str) -> None:
        if self.in_block:
            self.stack.pop()
            self.in_block = False
        else:
            super().end(name)

    def add_annotation(
        self, attrs: dict[str, str], line: int, points: list[tuple[float, float, float]]
    ) -> None:
        if points:
            raise _NotCanonical  # a <Coordinate> that was not cut out
        self.raw.annotations.append(RawAnnotation(attrs, _NO_POINTS, line))


def _cut(data: bytes) -> tuple[bytes, bytes, list[tuple[int, int]]] | None:
    """The skeleton, the blocks joined by ``_SEPARATOR`` and their (start, end) in ``data``."""
    spans = []
    end = 0
    while (start := data.find(_OPEN, end)) >= 0:
        end = data.find(_CLOSE, start)  # a nested _OPEN lands in the block and fails its check
        if end < 0:
            return None
        spans.append((start + len(_OPEN), end))
    view = memoryview(data)
    bounds = [0, *(offset for span in spans for offset in span), len(data)]
    skeleton = b"".join([view[a:b] for a, b in zip(bounds[::2], bounds[1::2], strict=True)])
    joined = _SEPARATOR.join([view[a:b] for a, b in spans])
    return skeleton, joined, spans


def _numbers(joined: bytes) -> np.ndarray | None:
    """(Order, X, Y) rows of all blocks, or ``None`` unless every block is canonical."""
    tags_only = joined.translate(None, _NUMBER)  # values deleted: tags and whitespace remain
    tags = tags_only.count(_TAG)
    spaces = len(tags_only) - len(tags_only.translate(None, _SPACE))
    if len(tags_only) - tags * len(_TAG) != spaces - tags * _TAG.count(b" "):
        return None  # something besides whitespace between the tags
    if b"," in joined:  # decimal commas: only "12,5" as the general parser; other comma → None
        tokens = _COMMA_TOKEN.findall(joined)
        if not all(_DECIMAL_COMMA.fullmatch(token) for token in tokens):
            return None
    # Keep only values and quotes: '"v1""v2""v3"…'. Parsing with the separator '""' fails
    # on an empty value, on a value that is not one number, and on anything between tags.
    values_only = joined.translate(_COMMA_TO_POINT, _NOT_VALUE)
    if not (values_only.startswith(b'"') and values_only.endswith(b'"')):
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # older numpy warns instead of raising
            values = np.fromstring(values_only[1:-1], dtype=np.float64, sep='""')
    except (ValueError, DeprecationWarning):
        return None
    if values.size != 3 * tags or not np.isfinite(values).all():
        return None
    return values.reshape(-1, 3)


def _line_breaks(data: bytes, spans: list[tuple[int, int]], has_cr: bool) -> list[int]:
    """Line breaks in each block, counted as expat does (LF, CRLF or a lone CR)."""
    if not has_cr:
        return [data.count(b"\n", *span) for span in spans]
    return [
        data.count(b"\n", *span) + data.count(b"\r", *span) - data.count(b"\r\n", *span)
        for span in spans
    ]


def _skeleton(
    skeleton: bytes, spans: list[tuple[int, int]], newlines: list[int], path: str
) -> _SkeletonBuilder | None:
    """Parse the skeleton with the guarded builder, or ``None`` if it is not plain ASAP."""
    if b"<!" in skeleton or skeleton.find(b"<?", 1) >= 0:
        return None  # a cut inside a DOCTYPE, comment, CDATA or processing instruction
    starts, ends = np.array(spans, dtype=np.int64).T
    removed = np.cumsum(ends - starts) - (ends - starts)  # block bytes cut before each block
    offsets = (starts - len(_OPEN) - removed).tolist()
    builder = _SkeletonBuilder(make_guarded_parser(), path, offsets, newlines)
    try:
        run_builder(builder, skeleton)
    except (expat.ExpatError, DefusedXmlException, AnnotationFileError, _NotCanonical):
        return None  # the general parser reports errors with the file's line
    return builder if len(builder.owners) == len(spans) else None


def parse_canonical(data: bytes, path: str) -> RawAsap | None:
    """Parse ASAP XML whose coordinates are laid out as ASAP writes them, else ``None``."""
    encoding = _ENCODING.search(data, 0, 200)
    if encoding and encoding.group(1).lower() not in (b"utf-8", b"utf8"):
        return None
    cut = _cut(data)
    if cut is None or not cut[2]:
        return None
    skeleton, joined, spans = cut
    table = _numbers(joined)
    if table is None:
        return None
    builder = _skeleton(skeleton, spans, _line_breaks(data, spans, b"\r" in joined), path)
    if builder is None:
        return None
    annotations = builder.raw.annotations
    counts = [data.count(b"<", *span) for span in spans]
    weights = np.bincount(builder.owners, weights=counts, minlength=len(annotations))
    sizes = weights.astype(np.int64)  # rows per annotation (it may hold several blocks)
    ends = np.cumsum(sizes)
    starts = ends - sizes
    orders, coords = table[:, 0], np.ascontiguousarray(table[:, 1:])
    in_sequence = np.array_equal(orders, np.arange(len(table)) - np.repeat(starts, sizes))
    for item, start, end in zip(annotations, starts.tolist(), ends.tolist(), strict=True):
        block = coords[start:end]
        item.coordinates = block if in_sequence else sort_by_order(block, orders[start:end])
    return builder.raw
