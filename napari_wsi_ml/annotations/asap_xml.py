"""ASAP XML: read and write annotation files as ASAP (Computational Pathology Group) does.

Layout written (tabs, ``<?xml version="1.0"?>``, self-closing tags, as ASAP writes it)::

    <ASAP_Annotations>
      <Annotations>
        <Annotation Name Type PartOfGroup Color>
          <Coordinates><Coordinate Order X Y /> ...</Coordinates>
        </Annotation>
      </Annotations>
      <AnnotationGroups>
        <Group Name PartOfGroup Color><Attributes /></Group>
      </AnnotationGroups>
    </ASAP_Annotations>

Conventions:
    * Coordinates are level-0 ``(x, y)`` pixels. On reading they are sorted by ``Order``
      (stable, so ties keep file order); on writing ``Order`` is ``0..N-1`` in the
      annotation's coordinate sequence. A file whose ``Order`` runs 0..N-1 keeps its vertex
      sequence exactly; values are written in the shortest text that parses back to the same
      float, so ASAP → ASAP keeps every value exactly.
    * ``PartOfGroup="None"`` means no group (ASAP's convention), so a group literally named
      ``None`` cannot be expressed in ASAP.
    * Group ``<Attributes>`` children are read as ``Name``/``Value`` pairs (or element name
      and text) and written as ``<Attribute Name=".." Value=".." />``.
    * Quirks read, not rejected: a Dot with several coordinates (kept as a Dot), Splines (kept
      as control points), groups defined but unused or used but undefined, Order out of
      sequence, decimal commas, a UTF-8 byte-order mark, CRLF line endings.

Bad input policy (the same for GeoJSON): the whole file is refused with an
:class:`~napari_wsi_ml.errors.AnnotationFileError` naming file, line and problem when it is
not well-formed, unsafe (entity declarations, external references), of another kind (root
element), carries a value that is not a number or an unknown annotation type; well-formed
but empty items (an annotation without coordinates) are skipped and listed in
``AnnotationSet.skipped``.
"""

from __future__ import annotations

import gc
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from xml.sax.saxutils import quoteattr

import numpy as np

from napari_wsi_ml.annotations._asap_expat import parse_generic
from napari_wsi_ml.annotations._asap_fast import parse_canonical
from napari_wsi_ml.annotations._asap_raw import RawAsap, RawRows
from napari_wsi_ml.annotations.atomic import atomic_write_text
from napari_wsi_ml.annotations.model import (
    DEFAULT_COLOR,
    Annotation,
    AnnotationSet,
    AnnotationType,
    Group,
)
from napari_wsi_ml.errors import AnnotationFileError

NO_GROUP = "None"
_BOM = b"\xef\xbb\xbf"


def read_bytes(path: str | os.PathLike[str]) -> bytes:
    """The file's bytes, as an :class:`AnnotationFileError` when it cannot be read."""
    try:
        return Path(path).read_bytes()
    except OSError as error:
        raise AnnotationFileError(
            f"Cannot read annotation file {path}: {error.strerror or error}. Check the path"
            " and its permissions."
        ) from error


def parse_asap_bytes(data: bytes, path: str) -> RawAsap:
    """Parse ASAP XML bytes: the fast canonical parser, else the general defused one."""
    if data.startswith(_BOM):
        data = data[len(_BOM) :]
    raw = parse_canonical(data, path)
    return raw if raw is not None else parse_generic(data, path)


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while reading.

    Reading allocates several objects per annotation (none of them cyclic), which triggers
    collector passes over the whole growing heap: ~10% of the reading time on large files.
    Afterwards the objects are moved to the oldest generation at once (``gc.freeze`` then
    ``gc.unfreeze``, when nothing else is frozen), where the collector would have moved the
    long-lived annotation set anyway, instead of being scanned again by the next young
    collections.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if gc.get_freeze_count() == 0:
            gc.freeze()
            gc.unfreeze()
        if enabled:
            gc.enable()


def _group_name(value: str | None) -> str | None:
    return None if value in (None, "", NO_GROUP) else value


def _where(line: int | None, index: int) -> str:
    return f"line {line}" if line is not None else f"annotation #{index}"


def _to_set(raw: RawAsap, path: str) -> AnnotationSet:
    result = AnnotationSet()
    for raw_group in raw.groups:
        name = raw_group.attrs.get("Name")
        if not name:
            result.skipped.append(f"{path}, line {raw_group.line}: a <Group> without a Name")
            continue
        result.groups[name] = Group(
            name=name,
            parent=_group_name(raw_group.attrs.get("PartOfGroup")),
            color=raw_group.attrs.get("Color") or DEFAULT_COLOR,
            attributes=dict(raw_group.attributes),
        )
    if raw.rows is not None:
        _add_rows(result, raw.rows, path)
        return result
    for index, item in enumerate(raw.annotations):
        attrs = item.attrs
        name = attrs.get("Name", f"Annotation {index}")
        annotation_type = _TYPES.get(attrs.get("Type", ""))
        if annotation_type is None:
            _raise_unknown_type(path, _where(item.line, index), name, attrs.get("Type", ""))
        if len(item.coordinates) == 0:
            result.skipped.append(
                f"{path}, {_where(item.line, index)}: annotation {name!r} has no coordinates"
            )
            continue
        result.annotations.append(
            Annotation.trusted(  # the parsers give float64 (N, 2) coordinates
                name,
                annotation_type,
                item.coordinates,
                _group_name(attrs.get("PartOfGroup")),
                attrs.get("Color") or DEFAULT_COLOR,
            )
        )
    return result


_TYPES = {t.value: t for t in AnnotationType}


def _raise_unknown_type(path: str, where: str, name: str, type_text: str) -> None:
    raise AnnotationFileError(
        f"{path}, {where}: annotation {name!r} has the unknown Type {type_text!r}; ASAP knows"
        f" {', '.join(_TYPES)}. Correct the Type."
    )


def _add_rows(result: AnnotationSet, rows: RawRows, path: str) -> None:
    """Add the fast reader's annotations (all four attributes present) to ``result``."""
    attrs = rows.attrs
    unknown = {row[1] for row in attrs} - _TYPES.keys()
    if unknown:  # the first in the file, as the general parser reports it
        index = next(i for i, row in enumerate(attrs) if row[1] in unknown)
        _raise_unknown_type(path, f"line {rows.lines[index]}", attrs[index][0], attrs[index][1])
    groups = {text: _group_name(text) for text in {row[2] for row in attrs}}
    types, trusted = _TYPES, Annotation.trusted
    annotations = [
        trusted(name, types[type_text], coordinates, groups[group], color or DEFAULT_COLOR)
        for (name, type_text, group, color), coordinates in zip(
            attrs, rows.coordinates, strict=True
        )
        if len(coordinates)
    ]
    if len(annotations) < len(attrs):
        lines = rows.lines.tolist()
        result.skipped += [
            f"{path}, line {line}: annotation {row[0]!r} has no coordinates"
            for row, coordinates, line in zip(attrs, rows.coordinates, lines, strict=True)
            if not len(coordinates)
        ]
    result.annotations = annotations


def read_asap(path: str | os.PathLike[str]) -> AnnotationSet:
    """Read an ASAP XML annotation file.

    Args:
        path: The ``.xml`` file.

    Returns:
        The annotations (level-0 ``(x, y)``), groups in file order, and ``skipped`` notes.

    Raises:
        AnnotationFileError: The file cannot be read, is malformed or unsafe XML, is not ASAP
            XML, or holds a coordinate that is not a number; the message names file and line.
    """
    text_path = str(path)
    data = read_bytes(path)
    with _gc_paused():
        return _to_set(parse_asap_bytes(data, text_path), text_path)


def format_number(value: float) -> str:
    """Shortest text that parses back to exactly ``value``; integers without ``.0``."""
    text = repr(float(value))
    return text[:-2] if text.endswith(".0") else text


_COORDINATE_XML = '\t\t\t\t<Coordinate Order="%d" X="%r" Y="%r" />\n'


def _coordinates_xml(coordinates: np.ndarray) -> str:
    """``<Coordinate>`` lines of (N, 2) ``(x, y)``, formatted as :func:`format_number` does.

    One C-level ``%`` formatting call per annotation (``%r`` of a float is its shortest exact
    text); dropping ``.0`` before the closing quote then matches :func:`format_number`. This is
    ~10x faster than formatting coordinate by coordinate.
    """
    count = len(coordinates)
    values: list[float | int] = [0] * (3 * count)
    values[0::3] = range(count)
    values[1::3] = coordinates[:, 0].tolist()
    values[2::3] = coordinates[:, 1].tolist()
    return ((_COORDINATE_XML * count) % tuple(values)).replace('.0"', '"')


def _annotation_xml(annotation: Annotation) -> Iterator[str]:
    group = annotation.group if annotation.group is not None else NO_GROUP
    yield (
        f"\t\t<Annotation Name={quoteattr(annotation.name)}"
        f" Type={quoteattr(AnnotationType(annotation.type).value)}"
        f" PartOfGroup={quoteattr(group)} Color={quoteattr(annotation.color)}>\n"
        "\t\t\t<Coordinates>\n"
    )
    yield _coordinates_xml(np.asarray(annotation.coordinates, dtype=np.float64))
    yield "\t\t\t</Coordinates>\n\t\t</Annotation>\n"


def _group_xml(group: Group) -> str:
    parent = group.parent if group.parent is not None else NO_GROUP
    head = (
        f"\t\t<Group Name={quoteattr(group.name)} PartOfGroup={quoteattr(parent)}"
        f" Color={quoteattr(group.color)}>\n"
    )
    if not group.attributes:
        return head + "\t\t\t<Attributes />\n\t\t</Group>\n"
    items = "".join(
        f"\t\t\t\t<Attribute Name={quoteattr(str(k))} Value={quoteattr(str(v))} />\n"
        for k, v in group.attributes.items()
    )
    return head + "\t\t\t<Attributes>\n" + items + "\t\t\t</Attributes>\n\t\t</Group>\n"


def asap_xml_chunks(annotation_set: AnnotationSet) -> Iterator[str]:
    """The ASAP XML text of ``annotation_set``, in pieces.

    Groups used by annotations but not defined are written as groups too (with the colour
    of their first annotation), so ASAP shows every class.
    """
    yield '<?xml version="1.0"?>\n<ASAP_Annotations>\n'
    if annotation_set.annotations:
        yield "\t<Annotations>\n"
        for annotation in annotation_set.annotations:
            yield from _annotation_xml(annotation)
        yield "\t</Annotations>\n"
    else:
        yield "\t<Annotations />\n"
    groups = dict(annotation_set.groups)
    for annotation in annotation_set.annotations:
        if annotation.group is not None and annotation.group not in groups:
            groups[annotation.group] = Group(annotation.group, color=annotation.color)
    if groups:
        yield "\t<AnnotationGroups>\n"
        yield from (_group_xml(group) for group in groups.values())
        yield "\t</AnnotationGroups>\n"
    else:
        yield "\t<AnnotationGroups />\n"
    yield "</ASAP_Annotations>\n"


def asap_losses(annotation_set: AnnotationSet) -> list[str]:
    """What ASAP XML cannot hold of ``annotation_set`` (holes, extra properties)."""
    notes = []
    for annotation in annotation_set.annotations:
        if annotation.holes:
            notes.append(
                f"annotation {annotation.name!r}: {len(annotation.holes)} hole(s) cannot be"
                " stored in ASAP XML and were not written"
            )
    with_properties = [a.name for a in annotation_set.annotations if a.properties]
    if with_properties:
        notes.append(
            f"{len(with_properties)} annotation(s) carry properties (e.g. {with_properties[0]!r})"
            " that ASAP XML cannot store; they were not written"
        )
    return notes


def write_asap(annotation_set: AnnotationSet, path: str | os.PathLike[str]) -> list[str]:
    """Write ``annotation_set`` as ASAP XML, atomically.

    Args:
        annotation_set: What to write (level-0 ``(x, y)``).
        path: Destination ``.xml``.

    Returns:
        Notes on what ASAP XML could not hold and was not written (holes, properties).

    Raises:
        SaveError: The file could not be written; the previous version is intact.
    """
    atomic_write_text(path, asap_xml_chunks(annotation_set))
    return asap_losses(annotation_set)


read = read_asap
write = write_asap
