"""Fast ASAP XML reading: the coordinates without one Python call per ``<Coordinate>``.

Why it exists: almost all of an ASAP file is ``<Coordinate Order X Y />`` tags (3M vertices are
~186 MB). A general parser calls back into Python for each of them, which caps reading at
~0.2M vertices/s; the issue asks for ≥ 1M vertices/s.

How it works: the file is cut at every ``<Coordinates>`` … ``</Coordinates>``. What lies in
between (a *block*) is checked and converted with whole-buffer C-speed operations
(``bytes.translate``/``replace``, one ``numpy.fromstring``); what remains, the *skeleton* with
empty ``<Coordinates></Coordinates>`` (~8% of the file), goes through the same guarded expat
parser and builder as the general path, which yields annotations, groups and file lines.

How it stays safe: a block is accepted only if it consists of whitespace and tags
byte-identical to ``<Coordinate Order="…" X="…" Y="…" />``, each ``…`` a non-empty run of
``0-9 . + -`` (``,`` too when decimal commas are present) that parses as one finite number.
Such a block is well-formed element content free of any reference, so inserting it into a
skeleton that expat accepted (well-formed, no entity declaration, no external reference)
gives a document that expat would also accept and read the same. ``<!`` (DOCTYPE,
comments, CDATA) and processing instructions are refused so that no cut falls inside one.
Whenever anything is off, :func:`parse_canonical` returns ``None`` and the caller runs the
general parser, which reports the exact problem with its line.
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
_TO_TEXT = bytes(c if c in _NUMBER else 32 for c in range(256)).replace(b",", b".")
_COMMA_TOKEN = re.compile(rb"[-+.0-9]*,[-+.,0-9]*")
_DECIMAL_COMMA = re.compile(rb"[-+]?[0-9]+,[0-9]+")  # the only form the general parser reads
_ENCODING = re.compile(rb'encoding\s*=\s*["\']([^"\']*)["\']')


class _SkeletonBuilder(Builder):
    """Builds from the skeleton: notes each block's annotation, reports lines of the file."""

    def __init__(self, parser: expat.XMLParserType, path: str, newlines: list[int]) -> None:
        super().__init__(parser, path)
        self.shift = np.cumsum([0, *newlines]).tolist()  # lines removed before block i
        self.owners: list[int] = []  # per block: index of its annotation, -1 if none
        self.has_points = False

    def line(self) -> int:
        removed = self.shift[min(len(self.owners), len(self.shift) - 1)]
        return self.parser.CurrentLineNumber + removed

    def start(self, name: str, attrs: dict[str, str]) -> None:
        super().start(name, attrs)
        if name == "Coordinates":
            self.owners.append(len(self.raw.annotations) if self.annotation is not None else -1)

    def add_annotation(
        self, attrs: dict[str, str], line: int, points: list[tuple[float, float, float]]
    ) -> None:
        self.has_points = self.has_points or bool(points)
        self.raw.annotations.append(RawAnnotation(attrs, np.empty((0, 2)), line))


def _cut(data: bytes) -> tuple[bytes, list[bytes]] | None:
    """The skeleton and the blocks, or ``None`` if a ``<Coordinates>`` is not closed."""
    first, *pieces = data.split(_OPEN)
    cut = [piece.rpartition(_CLOSE) for piece in pieces]  # a 2nd _CLOSE fails the block check
    if not all(found for _, found, _ in cut):
        return None
    skeleton = (_OPEN + _CLOSE).join([first, *(rest for _, _, rest in cut)])
    return skeleton, [block for block, _, _ in cut]


def _numbers(blocks: list[bytes]) -> np.ndarray | None:
    """(Order, X, Y) rows of all blocks, or ``None`` unless every block is canonical."""
    joined = _SEPARATOR.join(blocks)
    tags_only = joined.translate(None, _NUMBER)  # values deleted: tags and whitespace remain
    tags = tags_only.count(_TAG)
    spaces = len(tags_only) - len(tags_only.translate(None, _SPACE))
    if len(tags_only) - tags * len(_TAG) != spaces - tags * _TAG.count(b" "):
        return None  # something besides whitespace between the tags
    if b'""' in joined:
        return None  # an empty value
    if b"," in joined:  # decimal commas: only "12,5" as the general parser; other comma → None
        tokens = _COMMA_TOKEN.findall(joined)
        if not all(_DECIMAL_COMMA.fullmatch(token) for token in tokens):
            return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # older numpy warns instead of raising
            values = np.fromstring(joined.translate(_TO_TEXT), dtype=np.float64, sep=" ")
    except (ValueError, DeprecationWarning):
        return None
    if values.size != 3 * tags or not np.isfinite(values).all():
        return None  # e.g. "1.5.5" or "1-2" read as two numbers
    return values.reshape(-1, 3)


def _skeleton(skeleton: bytes, blocks: list[bytes], path: str) -> _SkeletonBuilder | None:
    """Parse the skeleton with the guarded builder, or ``None`` if it is not plain ASAP."""
    if b"<!" in skeleton or skeleton.find(b"<?", 1) >= 0:
        return None  # a cut inside a DOCTYPE, comment, CDATA or processing instruction
    newlines = [block.count(b"\n") for block in blocks]
    builder = _SkeletonBuilder(make_guarded_parser(), path, newlines)
    try:
        run_builder(builder, skeleton)
    except (expat.ExpatError, DefusedXmlException, AnnotationFileError):
        return None  # the general parser reports it with the file's line
    if builder.has_points or builder.owners.count(-1) or len(builder.owners) != len(blocks):
        return None  # coordinates left in the skeleton or outside an annotation
    return builder


def parse_canonical(data: bytes, path: str) -> RawAsap | None:
    """Parse ASAP XML whose coordinates are laid out as ASAP writes them, else ``None``."""
    encoding = _ENCODING.search(data, 0, 200)
    if encoding and encoding.group(1).lower() not in (b"utf-8", b"utf8"):
        return None
    cut = _cut(data)
    if cut is None or not cut[1]:
        return None
    skeleton, blocks = cut
    table = _numbers(blocks)
    builder = _skeleton(skeleton, blocks, path) if table is not None else None
    if table is None or builder is None:
        return None
    annotations = builder.raw.annotations
    counts = [block.count(b"<") for block in blocks]
    sizes = np.bincount(builder.owners, weights=counts, minlength=len(annotations))
    ends = np.cumsum(sizes.astype(np.int64))
    starts = ends - sizes.astype(np.int64)
    orders, coords = table[:, 0], np.ascontiguousarray(table[:, 1:])
    in_sequence = np.array_equal(orders, np.arange(len(table)) - np.repeat(starts, sizes))
    for item, start, end in zip(annotations, starts.tolist(), ends.tolist(), strict=True):
        block = coords[start:end]
        item.coordinates = block if in_sequence else sort_by_order(block, orders[start:end])
    return builder.raw
