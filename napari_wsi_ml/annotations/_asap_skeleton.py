"""The skeleton of an ASAP file, parsed by the guarded expat builder, for the fast reader.

The fast reader (:mod:`._asap_fast`) cuts every ``<Coordinates>`` … ``</Coordinates>`` element
out of the file and leaves a marker in its place: an empty comment, which expat accepts only in
element content (neither in a tag nor in an attribute value) and reports to no handler. What
remains goes through the same builder as the general parser, so an annotation costs two Python
calls (its start and end tags) instead of one per coordinate.
"""

from __future__ import annotations

import sys
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
    """Builds from the skeleton: notes where each annotation and marker is.

    Lines are the skeleton's until :meth:`shift_lines` adds the line breaks cut out with the
    elements before each annotation and group.
    """

    def __init__(self, parser: expat.XMLParserType, path: str, markers: list[int]) -> None:
        super().__init__(parser, path)
        self.markers = [*markers, sys.maxsize]  # byte offsets of the markers in the skeleton
        self.passed = 0  # markers before the current position
        self.opened = (0, 0)  # the last annotation's start tag: offset, markers before it
        self.children = 0  # elements started since then
        self.spans: list[tuple[int, int, bool]] = []  # per annotation: start, end, no child
        self.placed: list[tuple[RawAnnotation | RawGroup, int]] = []  # item, markers before

    def _markers_before(self) -> int:
        position = self.parser.CurrentByteIndex
        while self.markers[self.passed] < position:
            self.passed += 1
        return self.passed

    def start(self, name: str, attrs: dict[str, str]) -> None:
        stack = self.stack
        parent = stack[-1] if stack else None
        if name == "Annotation" and parent == "Annotations":  # what Builder.start does, inline
            self.opened, self.children = (self.parser.CurrentByteIndex, self._markers_before()), 0
            self.annotation = (attrs, self.parser.CurrentLineNumber, [])
            stack.append(name)
            return
        self.children += 1
        super().start(name, attrs)
        if name == "Group" and parent == "AnnotationGroups" and self.group is not None:
            self.placed.append((self.group, self._markers_before()))

    def end(self, name: str) -> None:
        stack = self.stack
        if name != "Annotation" or len(stack) < 2 or stack[-2] != "Annotations":
            super().end(name)
        elif self.annotation is not None:  # what Builder.end does, inline
            stack.pop()
            attrs, line, points = self.annotation
            if points:
                raise _NotCanonical  # a <Coordinate> that was not cut out
            self.spans.append((self.opened[0], self.parser.CurrentByteIndex, self.children == 0))
            item = RawAnnotation(attrs, _NO_POINTS, line)
            self.placed.append((item, self.opened[1]))
            self.raw.annotations.append(item)
            self.annotation = None
        else:
            stack.pop()

    def owners(self) -> np.ndarray | None:
        """Per marker, the annotation holding it directly (its only content besides text), or
        ``None`` if a marker is anywhere else (a case left to the general parser)."""
        markers = np.array(self.markers[:-1], dtype=np.int64)
        spans = np.array(self.spans, dtype=np.int64).reshape(-1, 3)
        owner = np.searchsorted(spans[:, 0], markers) - 1  # the annotations never nest
        held = spans[np.maximum(owner, 0)]
        if not np.all((owner >= 0) & (markers < held[:, 1]) & (held[:, 2] == 1)):
            return None
        return owner

    def shift_lines(self, newlines: np.ndarray) -> None:
        """Make lines the file's: ``newlines`` are the line breaks in each cut-out element."""
        shift = np.concatenate([[0], np.cumsum(newlines)]).tolist()
        for item, passed in self.placed:
            item.line = (item.line or 0) + shift[passed]


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
