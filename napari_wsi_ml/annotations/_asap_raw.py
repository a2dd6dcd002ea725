"""What an ASAP XML file holds before it becomes model objects, and number parsing.

Shared by the two ASAP parsers (the defused expat parser and the fast canonical-layout
parser) so that both build annotations the same way.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

import numpy as np

from napari_wsi_ml.errors import AnnotationFileError

_DECIMAL_COMMA_RX = re.compile(r"\s*[-+]?\d+,\d+\s*")


@dataclass(slots=True)
class RawAnnotation:
    """One ``<Annotation>``: its attributes and its coordinates sorted by ``Order``.

    Attributes:
        attrs: The XML attributes of ``<Annotation>``.
        coordinates: (N, 2) float64 level-0 ``(x, y)``, sorted by ``Order`` (stable).
        line: Line of the ``<Annotation>`` start tag, when known.
    """

    attrs: dict[str, str]
    coordinates: np.ndarray
    line: int | None = None


@dataclass
class RawGroup:
    """One ``<Group>``: its attributes and its ``<Attributes>`` key/value pairs."""

    attrs: dict[str, str]
    attributes: dict[str, str] = field(default_factory=dict)
    line: int | None = None


@dataclass
class RawRows:
    """The annotations of a file laid out as ASAP writes it, in columns (the fast reader's).

    Attributes:
        attrs: Per annotation, its ``Name``, ``Type``, ``PartOfGroup`` and ``Color``.
        lines: Per annotation, the line of its start tag.
        coordinates: Per annotation, (N, 2) float64 level-0 ``(x, y)`` sorted by ``Order``.
    """

    attrs: list[tuple[str, str, str, str]]
    lines: np.ndarray
    coordinates: list[np.ndarray]

    def annotations(self) -> list[RawAnnotation]:
        """The same annotations as the general parser gives them."""
        keys = ("Name", "Type", "PartOfGroup", "Color")
        return [
            RawAnnotation(dict(zip(keys, attrs, strict=True)), coordinates, line)
            for attrs, coordinates, line in zip(
                self.attrs, self.coordinates, self.lines.tolist(), strict=True
            )
        ]


@dataclass
class RawAsap:
    """A whole ASAP file: annotations and groups in file order.

    The fast reader gives the annotations of files laid out as ASAP writes them as ``rows``
    (``annotations`` is then empty).
    """

    annotations: list[RawAnnotation] = field(default_factory=list)
    groups: list[RawGroup] = field(default_factory=list)
    rows: RawRows | None = None


def parse_coordinate_value(text: str, what: str, path: str, line: int | None) -> float:
    """Parse one coordinate value; accepts a decimal comma (``"123,45"``).

    Raises:
        AnnotationFileError: The value is not a finite number (names file, line and value).
    """
    try:
        value = float(text)
    except ValueError:
        if _DECIMAL_COMMA_RX.fullmatch(text) is None:
            raise AnnotationFileError(
                f"{path}, line {line}: {what}={text!r} is not a number. Correct or remove this"
                " <Coordinate> in a text editor and open the file again."
            ) from None
        value = float(text.replace(",", "."))
    if not math.isfinite(value):
        raise AnnotationFileError(
            f"{path}, line {line}: {what}={text!r} is not a finite number. Correct or remove"
            " this <Coordinate> in a text editor and open the file again."
        )
    return value


def parse_order(text: str | None, position: int, path: str, line: int | None) -> float:
    """Parse an ``Order`` attribute; a missing one takes the coordinate's position.

    Raises:
        AnnotationFileError: ``Order`` is present but not a number.
    """
    if text is None:
        return float(position)
    return parse_coordinate_value(text, "Order", path, line)


def sort_by_order(coordinates: np.ndarray, orders: np.ndarray) -> np.ndarray:
    """Coordinates sorted by their ``Order`` (stable: ties keep file order)."""
    if orders.size and np.any(orders[1:] < orders[:-1]):
        return coordinates[np.argsort(orders, kind="stable")]
    return coordinates
