"""The general ASAP XML parser: expat with defusedxml's protections, and line numbers.

It reads any well-formed ASAP file (comments, CDATA, entities such as ``&amp;``, attributes
in any order, decimal commas) and reports problems with the line of the offending element.
Entity declarations and external references are refused (defusedxml's exceptions), which
stops entity-expansion bombs before any expansion.
"""

from __future__ import annotations

from xml.parsers import expat

import numpy as np
from defusedxml import DefusedXmlException, EntitiesForbidden, ExternalReferenceForbidden

from napari_wsi_ml.annotations._asap_raw import (
    RawAnnotation,
    RawAsap,
    RawGroup,
    parse_coordinate_value,
    parse_order,
    sort_by_order,
)
from napari_wsi_ml.errors import AnnotationFileError

ROOT = "ASAP_Annotations"


class Builder:
    """expat callbacks that collect annotations, coordinates and groups.

    The fast reader subclasses it for the file's skeleton, overriding :meth:`line` and
    :meth:`add_annotation`.
    """

    def __init__(self, parser: expat.XMLParserType, path: str) -> None:
        self.parser = parser
        self.path = path
        self.stack: list[str] = []
        self.raw = RawAsap()
        self.annotation: tuple[dict[str, str], int, list[tuple[float, float, float]]] | None = None
        self.group: RawGroup | None = None
        self.attribute_key: str | None = None
        self.text: list[str] = []

    def line(self) -> int:
        """Line of the element being parsed, in the file."""
        return self.parser.CurrentLineNumber

    def start(self, name: str, attrs: dict[str, str]) -> None:
        parent = self.stack[-1] if self.stack else None
        if parent is None and name != ROOT:
            raise AnnotationFileError(
                f"{self.path}, line {self.line()}: not an ASAP annotation file: the root element"
                f" is <{name}>, expected <{ROOT}>. Open an ASAP XML or a GeoJSON file."
            )
        if name == "Annotation" and parent == "Annotations":
            self.annotation = (attrs, self.line(), [])
        elif name == "Coordinate" and parent == "Coordinates" and self.annotation is not None:
            self._coordinate(attrs, self.line())
        elif name == "Group" and parent == "AnnotationGroups":
            self.group = RawGroup(attrs=attrs, line=self.line())
        elif parent == "Attributes" and self.group is not None:
            self.attribute_key = attrs.get("Name", name)
            self.text = [attrs["Value"]] if "Value" in attrs else []
            self.parser.CharacterDataHandler = self.characters  # text matters only here
        self.stack.append(name)

    def _coordinate(self, attrs: dict[str, str], line: int) -> None:
        assert self.annotation is not None
        points = self.annotation[2]
        for key in ("X", "Y"):
            if key not in attrs:
                raise AnnotationFileError(
                    f"{self.path}, line {line}: <Coordinate> has no {key} attribute. Correct or"
                    " remove it in a text editor and open the file again."
                )
        order = parse_order(attrs.get("Order"), len(points), self.path, line)
        x = parse_coordinate_value(attrs["X"], "X", self.path, line)
        y = parse_coordinate_value(attrs["Y"], "Y", self.path, line)
        points.append((order, x, y))

    def end(self, name: str) -> None:
        self.stack.pop()
        parent = self.stack[-1] if self.stack else None
        if name == "Annotation" and parent == "Annotations" and self.annotation is not None:
            self.add_annotation(*self.annotation)
            self.annotation = None
        elif name == "Group" and parent == "AnnotationGroups" and self.group is not None:
            self.raw.groups.append(self.group)
            self.group = None
        elif parent == "Attributes" and self.group is not None:
            if self.attribute_key:
                self.group.attributes[self.attribute_key] = "".join(self.text)
            self.attribute_key = None
            self.parser.CharacterDataHandler = None

    def add_annotation(
        self, attrs: dict[str, str], line: int, points: list[tuple[float, float, float]]
    ) -> None:
        """Append a finished ``<Annotation>``; ``points`` are its (Order, X, Y)."""
        table = np.array(points, dtype=np.float64).reshape(-1, 3)
        coords = sort_by_order(table[:, 1:3], table[:, 0])
        self.raw.annotations.append(RawAnnotation(attrs, np.ascontiguousarray(coords), line))

    def characters(self, data: str) -> None:
        if self.attribute_key is not None:
            self.text.append(data)


def _refuse_entity(name: str, *args: object) -> None:
    raise EntitiesForbidden(name, None, None, None, None, None)


def _refuse_external(context: str, base: str, sysid: str, pubid: str) -> None:
    raise ExternalReferenceForbidden(context, base, sysid, pubid)


def make_guarded_parser() -> expat.XMLParserType:
    """An expat parser that refuses entity declarations and external references."""
    parser = expat.ParserCreate()
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    parser.EntityDeclHandler = _refuse_entity
    parser.UnparsedEntityDeclHandler = _refuse_entity
    parser.ExternalEntityRefHandler = _refuse_external
    return parser


def raise_for_xml(error: Exception, parser: expat.XMLParserType, path: str) -> None:
    """Turn an expat or defusedxml error into an :class:`AnnotationFileError`."""
    if isinstance(error, expat.ExpatError):
        raise AnnotationFileError(
            f"{path}, line {error.lineno}, column {error.offset + 1}: the XML is malformed"
            f" ({expat.ErrorString(error.code)}). The file may be truncated or damaged; check"
            " it in a text editor at that line."
        ) from None
    if isinstance(error, DefusedXmlException):
        raise AnnotationFileError(
            f"{path}, line {parser.CurrentLineNumber}: refused for safety: the file declares"
            f" XML entities or external references ({type(error).__name__}), which annotation"
            " files never need (entity expansion can exhaust memory). Remove the <!DOCTYPE>"
            " block."
        ) from None
    raise error


def parse_generic(data: bytes, path: str) -> RawAsap:
    """Parse ASAP XML bytes with the guarded expat parser.

    Raises:
        AnnotationFileError: Malformed or unsafe XML, another root element, or a bad
            coordinate; the message names the file and the line.
    """
    parser = make_guarded_parser()
    builder = Builder(parser, path)
    try:
        run_builder(builder, data)
    except (expat.ExpatError, DefusedXmlException) as error:
        raise_for_xml(error, parser, path)
    return builder.raw


def run_builder(builder: Builder, data: bytes) -> None:
    """Feed ``data`` to ``builder``'s parser with its callbacks attached."""
    parser = builder.parser
    parser.StartElementHandler = builder.start
    parser.EndElementHandler = builder.end
    parser.buffer_text = True
    parser.Parse(data, True)
