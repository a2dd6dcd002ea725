"""The skeleton of an ASAP file, parsed by the guarded expat builder, for the fast reader.

The fast reader (:mod:`._asap_fast`) cuts every ``<Coordinates>`` … ``</Coordinates>`` element
out of the file and leaves a marker in its place: an empty comment, which expat accepts only in
element content (neither in a tag nor in an attribute value) and reports to no handler. What
remains goes through the same builder as the general parser, so an annotation costs two Python
calls (its start and end tags) instead of one per coordinate.

In ASAP's own layout (:func:`parse_layout`) the annotations' start tags are read as rows by one
regular expression instead, and only the rest of the skeleton goes through the builder.
"""

from __future__ import annotations

import itertools
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from xml.parsers import expat

import numpy as np
from defusedxml import DefusedXmlException

from napari_wsi_ml.annotations._asap_expat import Builder, make_guarded_parser, run_builder
from napari_wsi_ml.annotations._asap_raw import RawAnnotation, RawGroup
from napari_wsi_ml.errors import AnnotationFileError

MARKER = b"<!---->"  # an empty comment: where a <Coordinates> element was cut out
_NO_POINTS = np.empty((0, 2))


class _NotCanonical(Exception):
    """Raised inside the skeleton parse to give up on the fast path."""


class SkeletonBuilder(Builder):
    """Builds from the skeleton: notes where each annotation, group and marker is.

    The annotations join ``raw.annotations`` in :meth:`finish`, which also makes lines the
    file's by adding the line breaks cut out with the elements before each of them.
    """

    def __init__(self, parser: expat.XMLParserType, path: str, markers: list[int]) -> None:
        super().__init__(parser, path)
        self.markers = [*markers, sys.maxsize]  # byte offsets of the markers in the skeleton
        self.passed = 0  # markers before the current position
        self.children = 0  # elements started since the last annotation's start tag
        self.points: list[tuple[float, float, float]] = []  # a <Coordinate> left in: give up
        # Per annotation: attributes, skeleton line, markers before it, start and end tags'
        # offsets, and whether it has no child element.
        self.attrs: list[dict[str, str]] = []
        self.lines: list[int] = []
        self.before: list[int] = []
        self.starts: list[int] = []
        self.ends: list[int] = []
        self.bare: list[bool] = []
        self.groups_before: list[tuple[RawGroup, int]] = []

    def _markers_before(self, position: int) -> int:
        markers, passed = self.markers, self.passed
        while markers[passed] < position:
            passed += 1
        self.passed = passed
        return passed

    def start(self, name: str, attrs: dict[str, str]) -> None:
        stack = self.stack
        parent = stack[-1] if stack else None
        if name == "Annotation" and parent == "Annotations":  # what Builder.start does, inline
            parser = self.parser
            position, line = parser.CurrentByteIndex, parser.CurrentLineNumber
            self.annotation = (attrs, line, self.points)
            self.attrs.append(attrs)
            self.lines.append(line)
            self.before.append(self._markers_before(position))
            self.starts.append(position)
            self.children = 0
            stack.append(name)
            return
        self.children += 1
        super().start(name, attrs)
        if name == "Group" and parent == "AnnotationGroups" and self.group is not None:
            position = self.parser.CurrentByteIndex
            self.groups_before.append((self.group, self._markers_before(position)))

    def end(self, name: str) -> None:
        stack = self.stack
        if name != "Annotation" or len(stack) < 2 or stack[-2] != "Annotations":
            super().end(name)
            return
        stack.pop()  # what Builder.end does, inline
        if self.annotation is None:
            return
        if self.points:
            raise _NotCanonical  # a <Coordinate> that was not cut out
        self.ends.append(self.parser.CurrentByteIndex)
        self.bare.append(self.children == 0)
        self.annotation = None

    def owners(self) -> np.ndarray | None:
        """Per marker, the annotation holding it directly (its only content besides text), or
        ``None`` if a marker is anywhere else (a case left to the general parser)."""
        if len(self.starts) != len(self.ends):
            return None  # an annotation inside another: left to the general parser
        markers = np.array(self.markers[:-1], dtype=np.int64)
        starts, ends = np.array(self.starts, dtype=np.int64), np.array(self.ends, dtype=np.int64)
        owner = np.searchsorted(starts, markers) - 1
        held = np.maximum(owner, 0)
        bare = np.array(self.bare, dtype=bool)
        if not np.all((owner >= 0) & (markers < ends[held]) & bare[held]):
            return None
        return owner

    def finish(self, newlines: Sequence[int]) -> None:
        """Add the annotations to ``raw``, lines made the file's: ``newlines`` are the line
        breaks in each cut-out element."""
        shift = np.concatenate([[0], np.cumsum(newlines, dtype=np.int64)])
        lines = (np.array(self.lines, dtype=np.int64) + shift[self.before]).tolist()
        self.raw.annotations = [
            RawAnnotation(attrs, _NO_POINTS, line)
            for attrs, line in zip(self.attrs, lines, strict=True)
        ]
        for group, before in self.groups_before:
            group.line = (group.line or 0) + int(shift[before])


def parse_skeleton(
    skeleton: bytes, markers: list[int], path: str
) -> tuple[SkeletonBuilder, np.ndarray] | None:
    """Parse the skeleton: the builder and each marker's annotation, or ``None`` if the file is
    not plain ASAP (the general parser then reports errors with the file's lines)."""
    if skeleton.count(b"<!") != len(markers) or skeleton.find(b"<?", 1) >= 0:
        return None  # a cut inside a DOCTYPE, comment, CDATA or processing instruction
    builder = SkeletonBuilder(make_guarded_parser(), path, markers)
    try:
        run_builder(builder, skeleton)
    except (expat.ExpatError, DefusedXmlException, AnnotationFileError, _NotCanonical):
        return None
    owners = builder.owners()
    return None if owners is None else (builder, owners)


_VALUE = r'"([^"&<\x00-\x1f\ufffe\uffff]*)"'  # a value that expat reads as written
_ROW = (  # one annotation, {0} its line break
    '\t\t<Annotation Name="" Type="" PartOfGroup="" Color="">{0}'
    "\t\t\t<!---->{0}\t\t</Annotation>{0}"
)
_ROWS = {
    newline: re.compile(re.escape(_ROW.format(newline)).replace('""', _VALUE))
    for newline in ("\n", "\r\n")
}


def parse_layout(skeleton: bytes, markers: int, path: str) -> LayoutSkeleton | None:
    """The skeleton of a file laid out as ASAP writes it, read without a call per annotation.

    Every annotation must be ``\t\t<Annotation Name Type PartOfGroup Color>`` (these
    attributes, in this order, without entity references, tabs or line breaks in the values),
    then its marker and its end tag on their own lines, all annotations one after another right
    after ``<Annotations>``. The annotations are then read with one regular expression; the
    rest of the skeleton (root, groups) goes through the guarded builder. ``None`` if the
    skeleton is laid out otherwise (:func:`parse_skeleton` then reads it).

    Args:
        skeleton: The file with each ``<Coordinates>`` element replaced by :data:`MARKER`.
        markers: How many markers it holds.
        path: The file, for messages.
    """
    crlf = skeleton.find(b"\r") >= 0
    newline = "\r\n" if crlf else "\n"
    end_tag = f"</Annotation>{newline}".encode()
    start = skeleton.find(b"\t\t<Annotation ")
    end = skeleton.rfind(end_tag) + len(end_tag)
    if start < 0 or not skeleton.endswith(f"<Annotations>{newline}".encode(), 0, start):
        return None
    try:
        region = skeleton[start:end].decode("utf-8")
    except UnicodeDecodeError:
        return None
    rows = _ROWS[newline].findall(region)
    values = sum(map(len, itertools.chain.from_iterable(rows)))
    if len(rows) != markers or len(rows) * len(_ROW.format(newline)) + values != len(region):
        return None  # the rows do not tile the region: another layout
    rest = skeleton[:start] + skeleton[end:]
    builder = Builder(make_guarded_parser(), path)
    try:
        run_builder(builder, rest)
    except (expat.ExpatError, DefusedXmlException, AnnotationFileError):
        return None  # the general parser reports it
    if builder.raw.annotations or rest.find(b"<!") >= 0 or rest.find(b"<?", 1) >= 0:
        return None
    head_lines = _line_breaks(skeleton[:start])
    return LayoutSkeleton(rows, builder.raw.groups, head_lines, 3 * len(rows))


@dataclass
class LayoutSkeleton:
    """What :func:`parse_layout` read.

    Attributes:
        rows: Per annotation, its Name, Type, PartOfGroup and Color.
        groups: The groups, lines as in the skeleton without the annotations.
        head_lines: Line breaks before the first annotation.
        row_lines: Line breaks in the annotations (without those of the cut-out elements).
    """

    rows: list[tuple[str, str, str, str]]
    groups: list[RawGroup]
    head_lines: int
    row_lines: int

    def finish(self, newlines: Sequence[int]) -> tuple[list[RawGroup], np.ndarray]:
        """The groups with the file's lines, and the line of each annotation's start tag;
        ``newlines`` are the line breaks in each cut-out element."""
        steps = np.asarray(newlines, dtype=np.int64) + 3  # each row holds three line breaks
        lines = self.head_lines + 1 + np.concatenate([[0], np.cumsum(steps[:-1])])
        shift = self.row_lines + int(np.sum(newlines))
        for group in self.groups:
            if group.line is not None and group.line > self.head_lines:
                group.line += shift
        return self.groups, lines


def _line_breaks(text: bytes) -> int:
    """Line breaks in ``text``, counted as expat does (LF, CRLF or a lone CR)."""
    return text.count(b"\n") + text.count(b"\r") - text.count(b"\r\n")
