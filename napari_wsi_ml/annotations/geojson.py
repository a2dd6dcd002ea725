"""QuPath GeoJSON: read and write annotations as QuPath does.

Reading accepts a FeatureCollection, the bare array of features older QuPath writes, or a
single Feature. The class is ``properties.classification.name`` (else ``classification`` as
a string, ``class``, or QuPath 0.5's ``name``); the colour ``classification.color`` (else
``color``), as an ``[r, g, b]`` list, a packed signed 32-bit ARGB int or ``"#RRGGBB"``.
Geometries: Polygon → Polygon (holes kept), MultiPolygon → one annotation per part (noted in
``AnnotationSet.notes``), Point → Dot, MultiPoint → PointSet, LineString → Measurement,
MultiLineString → one Measurement per part. Our own type hints (``asap_type``,
``asap_control_points``) restore Splines and Rectangles exactly.

Bad input (same policy as ASAP): invalid JSON, an unsupported geometry type or a coordinate
that is not a number refuses the whole file, naming the feature; a feature without geometry
is skipped and listed in ``AnnotationSet.skipped``.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from napari_wsi_ml.annotations.asap_xml import read_bytes
from napari_wsi_ml.annotations.atomic import atomic_write_text
from napari_wsi_ml.annotations.colors import color_from_json, hex_to_rgb
from napari_wsi_ml.annotations.model import (
    DEFAULT_COLOR,
    Annotation,
    AnnotationSet,
    AnnotationType,
    Group,
)
from napari_wsi_ml.annotations.spline import catmull_rom_closed
from napari_wsi_ml.errors import AnnotationFileError

TYPE_HINT = "asap_type"
CONTROL_POINTS = "asap_control_points"
_QUPATH_KEYS = {"objectType", "classification", "name", "color", "isLocked", "class"}


def _features(document: Any, path: str) -> list[Any]:
    if isinstance(document, list):
        return document
    if isinstance(document, dict) and document.get("type") == "FeatureCollection":
        features = document.get("features")
        if isinstance(features, list):
            return features
    if isinstance(document, dict) and document.get("type") == "Feature":
        return [document]
    raise AnnotationFileError(
        f"{path}: not GeoJSON annotations: expected a FeatureCollection, an array of features"
        " or a Feature. Export the annotations from QuPath as GeoJSON."
    )


def _ring(value: Any, where: str) -> np.ndarray:
    try:
        ring = np.array(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise AnnotationFileError(f"{where}: a coordinate is not a number") from None
    if ring.ndim != 2 or ring.shape[1] < 2 or not np.isfinite(ring).all():
        raise AnnotationFileError(f"{where}: coordinates are not a list of finite [x, y]")
    ring = ring[:, :2]
    if len(ring) > 1 and np.array_equal(ring[0], ring[-1]):
        ring = ring[:-1]
    return ring


def _class_and_color(
    props: dict[str, Any], where: str
) -> tuple[str | None, str | None, str | None]:
    """Class name, class colour and the object's own colour (each may be ``None``)."""
    classification = props.get("classification")
    name: Any = None
    color: Any = None
    if isinstance(classification, dict):
        name, color = classification.get("name"), classification.get("color")
    elif isinstance(classification, str):
        name = classification
    if name is None:
        name = props.get("class", props.get("name"))
    try:
        class_color = color_from_json(color)
        own_color = color_from_json(props.get("color"))
    except ValueError as error:
        raise AnnotationFileError(f"{where}: {error}") from None
    return (None if name is None else str(name)), class_color, own_color


def _parts(geometry: dict[str, Any], where: str) -> list[tuple[AnnotationType, np.ndarray, list]]:
    kind, coords = geometry.get("type"), geometry.get("coordinates")
    if kind == "Polygon":
        rings = [_ring(r, where) for r in coords or []]
        return [(AnnotationType.POLYGON, rings[0], rings[1:])] if rings else []
    if kind == "MultiPolygon":
        return [
            p
            for polygon in coords or []
            for p in _parts({"type": "Polygon", "coordinates": polygon}, where)
        ]
    if kind == "Point":
        return [(AnnotationType.DOT, _ring([coords], where), [])]
    if kind == "MultiPoint":
        return [(AnnotationType.POINTSET, _ring(coords, where), [])]
    if kind == "LineString":
        return [(AnnotationType.MEASUREMENT, _ring(coords, where), [])]
    if kind == "MultiLineString":
        return [(AnnotationType.MEASUREMENT, _ring(c, where), []) for c in coords or []]
    raise AnnotationFileError(
        f"{where}: unsupported geometry type {kind!r}; supported: Polygon, MultiPolygon, Point,"
        " MultiPoint, LineString, MultiLineString. Split it into those in QuPath."
    )


def _restore(props: dict[str, Any], kind: AnnotationType, coords: np.ndarray, where: str):
    hint = props.get(TYPE_HINT)
    if hint == AnnotationType.SPLINE.value and props.get(CONTROL_POINTS) is not None:
        return AnnotationType.SPLINE, _ring(props[CONTROL_POINTS], where)
    if hint == AnnotationType.DOT.value and kind is AnnotationType.POINTSET:
        return AnnotationType.DOT, coords
    if hint == AnnotationType.RECTANGLE.value and kind is AnnotationType.POLYGON:
        return AnnotationType.RECTANGLE, coords
    return kind, coords


def parse_geojson_document(document: Any, path: str) -> AnnotationSet:
    """Build an :class:`AnnotationSet` from decoded GeoJSON."""
    result = AnnotationSet()
    for index, feature in enumerate(_features(document, path)):
        where = f"{path}, feature #{index}"
        if not isinstance(feature, dict) or feature.get("type") != "Feature":
            raise AnnotationFileError(f"{where}: not a GeoJSON Feature")
        props = feature.get("properties") or {}
        geometry = feature.get("geometry")
        if not isinstance(props, dict):
            raise AnnotationFileError(f"{where}: properties is not an object")
        group, class_color, own_color = _class_and_color(props, where)
        if group is not None and group not in result.groups:
            result.groups[group] = Group(group, color=class_color or own_color or DEFAULT_COLOR)
        color = own_color or class_color or DEFAULT_COLOR
        name = str(props.get("name") or f"Annotation {index}")
        if not isinstance(geometry, dict):
            result.skipped.append(f"{where}: {name!r} has no geometry")
            continue
        parts = _parts(geometry, where)
        if len(parts) > 1:
            result.notes.append(
                f"{where}: {geometry['type']} {name!r} split into {len(parts)} annotations"
            )
        extra = {
            k: v
            for k, v in props.items()
            if k not in _QUPATH_KEYS and k not in (TYPE_HINT, CONTROL_POINTS)
        }
        if props.get("objectType", "annotation") != "annotation":
            extra["objectType"] = props["objectType"]
        for part, (kind, coords, holes) in enumerate(parts):
            kind, coords = _restore(props, kind, coords, where)
            if len(coords) == 0:
                result.skipped.append(f"{where}: {name!r} has no coordinates")
                continue
            result.add(
                [
                    Annotation(
                        name=name if len(parts) == 1 else f"{name} ({part + 1})",
                        type=kind,
                        coordinates=coords,
                        group=group,
                        color=color
                        or (
                            result.groups[group].color if group in result.groups else DEFAULT_COLOR
                        ),
                        holes=holes,
                        properties=dict(extra),
                    )
                ]
            )
    return result


def read_geojson(path: str | os.PathLike[str]) -> AnnotationSet:
    """Read QuPath GeoJSON annotations (level-0 ``(x, y)`` pixels).

    Raises:
        AnnotationFileError: Unreadable, not JSON, not GeoJSON features, an unsupported
            geometry or a coordinate that is not a number (names file and feature).
    """
    text_path = str(path)
    data = read_bytes(path)
    try:
        document = json.loads(data.decode("utf-8-sig"))
    except UnicodeDecodeError as error:
        raise AnnotationFileError(f"{text_path}: not UTF-8 text ({error.reason}).") from None
    except json.JSONDecodeError as error:
        raise AnnotationFileError(
            f"{text_path}, line {error.lineno}, column {error.colno}: invalid JSON ({error.msg})."
            " The file may be truncated or damaged."
        ) from None
    return parse_geojson_document(document, text_path)


def _closed(ring: np.ndarray) -> list[list[float]]:
    points = np.asarray(ring, dtype=np.float64).tolist()
    return points + points[:1] if points and points[0] != points[-1] else points


def _feature(
    annotation: Annotation, index: int, class_color: str | None, notes: list[str]
) -> dict[str, Any]:
    props: dict[str, Any] = {k: v for k, v in annotation.properties.items() if k != "objectType"}
    props["objectType"] = annotation.properties.get("objectType", "annotation")
    props["name"] = annotation.name
    if annotation.group is not None:
        props["classification"] = {
            "name": annotation.group,
            "color": list(hex_to_rgb(class_color or annotation.color)),
        }
    props["color"] = list(hex_to_rgb(annotation.color))
    props["isLocked"] = False
    kind, coords = annotation.type, annotation.coordinates
    if kind is AnnotationType.SPLINE:
        curve = catmull_rom_closed(coords)
        geometry = {"type": "Polygon", "coordinates": [_closed(curve)]}
        props[TYPE_HINT], props[CONTROL_POINTS] = kind.value, coords.tolist()
        notes.append(
            f"annotation {annotation.name!r}: Spline written as a polygon of {len(curve)}"
            f" vertices (control points kept in properties.{CONTROL_POINTS})"
        )
    elif kind.is_area:
        geometry = {
            "type": "Polygon",
            "coordinates": [_closed(coords)] + [_closed(h) for h in annotation.holes],
        }
        if kind is AnnotationType.RECTANGLE:
            props[TYPE_HINT] = kind.value
            notes.append(
                f"annotation {annotation.name!r}: Rectangle written as a Polygon"
                f" (properties.{TYPE_HINT} restores it)"
            )
    elif kind is AnnotationType.DOT and len(coords) == 1:
        geometry = {"type": "Point", "coordinates": coords[0].tolist()}
    elif kind in (AnnotationType.DOT, AnnotationType.POINTSET):
        geometry = {"type": "MultiPoint", "coordinates": coords.tolist()}
        props[TYPE_HINT] = kind.value
    else:
        geometry = {
            "type": "LineString" if len(coords) > 1 else "Point",
            "coordinates": coords.tolist() if len(coords) > 1 else coords[0].tolist(),
        }
    ident = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{index}:{annotation.name}"))
    return {"type": "Feature", "id": ident, "geometry": geometry, "properties": props}


def geojson_chunks(annotation_set: AnnotationSet, notes: list[str]) -> Iterator[str]:
    """The GeoJSON text, one feature per line; conversions are appended to ``notes``."""
    yield '{"type": "FeatureCollection", "features": [\n'
    for index, annotation in enumerate(annotation_set.annotations):
        group = annotation_set.groups.get(annotation.group or "")
        feature = _feature(annotation, index, group.color if group else None, notes)
        text = json.dumps(feature, allow_nan=False)
        yield ("" if index == 0 else ",\n") + text
    yield "\n]}\n"


def write_geojson(annotation_set: AnnotationSet, path: str | os.PathLike[str]) -> list[str]:
    """Write QuPath-compatible GeoJSON atomically.

    Returns:
        Notes on what was converted (Spline → polygon with control points kept, Rectangle →
        Polygon with a type hint); nothing is dropped.

    Raises:
        SaveError: The file could not be written; the previous version is intact.
    """
    notes: list[str] = []
    atomic_write_text(Path(path), geojson_chunks(annotation_set, notes))
    return notes + _group_losses(annotation_set)


def _group_losses(annotation_set: AnnotationSet) -> list[str]:
    """What GeoJSON cannot hold of the groups: unused ones, parents, attributes."""
    used = {a.group for a in annotation_set.annotations}
    notes = []
    for group in annotation_set.groups.values():
        if group.name not in used:
            notes.append(f"group {group.name!r} has no annotation; GeoJSON cannot store it")
        if group.parent is not None or group.attributes:
            notes.append(
                f"group {group.name!r}: its parent group and attributes cannot be stored in"
                " GeoJSON and were not written"
            )
    return notes


read = read_geojson
write = write_geojson
