"""AnnotationSet ⇄ napari Shapes layer: the only place where annotations become shapes and back.

The layer's data are level-0 pixels in napari ``(row, col)`` order (via :mod:`napari_wsi_ml.coords`)
and its ``scale`` is the slide's µm per pixel, so shapes land on the tissue of a slide layer made
with the same scale.

napari keeps shape vertices as float32, which cannot hold level-0 coordinates exactly (0.004 px at
x = 50 000). Every row therefore also carries the annotation's exact float64 coordinates in the
``xy`` feature column; on the way back a vertex takes its exact value whenever its float32 value is
unchanged, so coordinates that nobody edited come back bit for bit, and edited vertices keep what
the user drew.

How ASAP types that napari cannot draw are shown (and saved again):

* **Spline**: shown as its smooth closed curve (a polygon). Saved back as a Spline with its
  original control points while the curve is unedited; once the user edits its vertices it is
  saved as the Polygon the user sees.
* **Dot / PointSet**: shown as a small circle (radius ``dot_radius_um``) around the point, or a
  box around all points of a PointSet (or of an ASAP Dot carrying several points). Saved back with
  the exact points; moving the circle moves the points by the same offset.
* **Holes** (GeoJSON only): napari polygons have none. The outer ring is shown; the holes ride
  along in the ``holes`` column and are restored on save, except holes that no longer lie inside
  an edited outer ring, which are dropped and listed in ``AnnotationSet.skipped``.
* Shapes drawn in napari: polygon → Polygon, rectangle → Rectangle, line → Measurement, ellipse →
  Polygon (64 vertices), path → Measurement for 2 vertices, else a closed Polygon (ASAP has no
  open polylines; reported in ``skipped``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from napari_wsi_ml.annotations.model import (
    DEFAULT_COLOR,
    Annotation,
    AnnotationSet,
    AnnotationType,
    Group,
)
from napari_wsi_ml.coords import layer_scale, rowcol_to_xy, xy_to_rowcol
from napari_wsi_ml.viewer.slide_layer import FINGERPRINT_KEY, KIND_KEY, layer_units

ANNOTATIONS_KIND = "annotations"
FEATURE_COLUMNS = ("class", "name", "type", "xy", "holes", "extra")
FACE_ALPHA = 0.25
ELLIPSE_VERTICES = 64
DEFAULT_DOT_RADIUS_UM = 4.0
UNKNOWN_MPP_DOT_RADIUS_PX = 8.0
VIEW_KEY = "napari_wsi_ml.annotation_view"  # metadata: the view that shows a windowed layer

LayerDataTuple = tuple[list[np.ndarray], dict[str, Any], str]


def hex_to_rgba(color: str, alpha: float = 1.0) -> list[float]:
    """``"#RRGGBB"`` to an RGBA list of floats in [0, 1]."""
    text = color.lstrip("#")
    if len(text) < 6:
        text = DEFAULT_COLOR.lstrip("#")
    return [int(text[i : i + 2], 16) / 255.0 for i in (0, 2, 4)] + [alpha]


def rgba_to_hex(rgba: Sequence[float]) -> str:
    """An RGB(A) sequence of floats in [0, 1] to ``"#RRGGBB"`` (alpha ignored)."""
    return "#" + "".join(f"{round(float(c) * 255):02X}" for c in rgba[:3])


def pack_xy(xy: np.ndarray) -> bytes:
    """Exact float64 ``(x, y)`` coordinates as bytes (the ``xy`` feature column)."""
    return np.ascontiguousarray(xy, dtype=np.float64).tobytes()


def unpack_xy(blob: bytes | None) -> np.ndarray:
    """Inverse of :func:`pack_xy`; an empty (0, 2) array for empty or missing values."""
    if not isinstance(blob, bytes | bytearray) or len(blob) % 16:
        return np.empty((0, 2))
    return np.frombuffer(blob, dtype=np.float64).reshape(-1, 2).copy()


def pack_rings(rings: Sequence[np.ndarray]) -> bytes:
    """Several (M, 2) rings as one bytes value: count, lengths, then the coordinates."""
    if not rings:
        return b""
    header = np.array([len(rings), *(len(r) for r in rings)], dtype=np.float64)
    body = [np.ascontiguousarray(r, dtype=np.float64).ravel() for r in rings]
    return np.concatenate([header, *body]).tobytes()


def unpack_rings(blob: bytes | None) -> list[np.ndarray]:
    """Inverse of :func:`pack_rings`."""
    if not isinstance(blob, bytes | bytearray) or not blob:
        return []
    values = np.frombuffer(blob, dtype=np.float64)
    count = int(values[0])
    lengths = values[1 : 1 + count].astype(int)
    rings, start = [], 1 + count
    for length in lengths:
        rings.append(values[start : start + 2 * length].reshape(-1, 2).copy())
        start += 2 * length
    return rings


def spline_display_xy(control_xy: np.ndarray) -> np.ndarray:
    """The smooth closed curve drawn (and measured) for a Spline's level-0 (x, y) control points."""
    from napari_wsi_ml.annotations.geometry import outline

    spline = Annotation("", AnnotationType.SPLINE, control_xy)
    return np.asarray(outline(spline), dtype=np.float64)


def dot_display_xy(points_xy: np.ndarray, radius_px: float) -> np.ndarray:
    """Bounding box (4 corners, level-0 (x, y)) of the circle shown for a Dot or PointSet."""
    lo = points_xy.min(axis=0) - radius_px
    hi = points_xy.max(axis=0) + radius_px
    return np.array([[lo[0], lo[1]], [hi[0], lo[1]], [hi[0], hi[1]], [lo[0], hi[1]]])


def dot_radius_px(mpp: Sequence[float] | None, radius_um: float = DEFAULT_DOT_RADIUS_UM) -> float:
    """Radius in level-0 pixels of the circle that shows a Dot."""
    if mpp is None:
        return UNKNOWN_MPP_DOT_RADIUS_PX
    return radius_um / float(mpp[0])


def _display(annotation: Annotation, radius_px: float) -> tuple[np.ndarray, str]:
    """Level-0 (x, y) vertices shown for an annotation, and the napari shape type."""
    xy, kind = annotation.coordinates, annotation.type
    if kind in (AnnotationType.DOT, AnnotationType.POINTSET) and len(xy):
        return dot_display_xy(xy, radius_px), "ellipse"
    if kind is AnnotationType.SPLINE and len(xy) >= 3:
        return spline_display_xy(xy), "polygon"
    if kind is AnnotationType.RECTANGLE and len(xy) == 4:
        return xy, "rectangle"
    if kind is AnnotationType.MEASUREMENT:
        return xy, "line" if len(xy) == 2 else "path"
    return xy, "polygon" if len(xy) >= 3 else "path"


def annotation_layer_data(
    annotation_set: AnnotationSet,
    *,
    mpp: Sequence[float] | None,
    rater: str | None = None,
    name: str | None = None,
    slide_path: str | None = None,
    slide_fingerprint: str | None = None,
    source_file: str | None = None,
    dot_radius_um: float = DEFAULT_DOT_RADIUS_UM,
) -> LayerDataTuple:
    """A napari Shapes layer-data tuple showing ``annotation_set`` on a slide of ``mpp`` (x, y).

    Args:
        annotation_set: The annotations (level-0 (x, y)).
        mpp: The slide's µm per level-0 pixel (x, y), or None when unknown (scale 1).
        rater: Whose annotations these are (defaults to ``annotation_set.rater``).
        name: Layer name (defaults to the rater, else "annotations").
        slide_path: Path of the slide they belong to, kept in the metadata.
        slide_fingerprint: The slide's fingerprint, kept in the metadata.
        source_file: The file they were read from, kept in the metadata.
        dot_radius_um: Radius of the circle that shows a Dot, in µm.

    Returns:
        ``(data, kwargs, "shapes")`` with data in level-0 (row, col).
    """
    rater = rater if rater is not None else annotation_set.rater
    radius_px = dot_radius_px(mpp, dot_radius_um)
    data, shape_types, edge, face = [], [], [], []
    columns: dict[str, list[Any]] = {c: [] for c in FEATURE_COLUMNS}
    for annotation in annotation_set:
        if len(annotation.coordinates) == 0:
            continue
        shown_xy, shape_type = _display(annotation, radius_px)
        data.append(xy_to_rowcol(shown_xy))
        shape_types.append(shape_type)
        edge.append(hex_to_rgba(annotation.color))
        face.append(hex_to_rgba(annotation.color, FACE_ALPHA))
        columns["class"].append(annotation.group or "")
        columns["name"].append(annotation.name)
        columns["type"].append(annotation.type.value)
        columns["xy"].append(pack_xy(annotation.coordinates))
        columns["holes"].append(pack_rings(annotation.holes))
        columns["extra"].append(json.dumps(annotation.properties, default=str))
    skipped = list(annotation_set.skipped)
    skipped += [
        f"{a.name}: no coordinates, not shown" for a in annotation_set if not len(a.coordinates)
    ]
    metadata = {
        KIND_KEY: ANNOTATIONS_KIND,
        "rater": rater,
        "slide_path": slide_path if slide_path is not None else annotation_set.slide,
        FINGERPRINT_KEY: slide_fingerprint,
        "source_file": source_file,
        "mpp": None if mpp is None else [float(mpp[0]), float(mpp[1])],
        "dot_radius_px": radius_px,
        "groups": [group_to_dict(g) for g in annotation_set.groups.values()],
        "skipped": skipped,
    }
    kwargs: dict[str, Any] = {
        "name": name or rater or "annotations",
        "shape_type": shape_types,
        "edge_width": 2.0,
        "features": pd.DataFrame({c: pd.Series(v, dtype=object) for c, v in columns.items()}),
        "scale": layer_scale(mpp),
        "units": layer_units(mpp),
        "metadata": metadata,
    }
    if data:  # napari refuses an empty colour array
        kwargs["edge_color"] = np.array(edge)
        kwargs["face_color"] = np.array(face)
    return data, kwargs, "shapes"


def group_to_dict(group: Group) -> dict[str, Any]:
    """A group as the plain dict kept in layer metadata."""
    return {
        "name": group.name,
        "parent": group.parent,
        "color": group.color,
        "attributes": dict(group.attributes),
    }


def groups_from_metadata(metadata: dict[str, Any]) -> dict[str, Group]:
    """The groups (classes) kept in an annotation layer's metadata, by name."""
    groups = {}
    for entry in metadata.get("groups") or []:
        group = Group(
            entry["name"],
            parent=entry.get("parent"),
            color=entry.get("color", DEFAULT_COLOR),
            attributes=dict(entry.get("attributes") or {}),
        )
        groups[group.name] = group
    return groups


def is_annotation_layer(layer: Any) -> bool:
    """Whether ``layer`` is a Shapes layer made by :func:`annotation_layer_data`."""
    metadata = getattr(layer, "metadata", None) or {}
    return metadata.get(KIND_KEY) == ANNOTATIONS_KIND


def _layer_parts(
    layer_or_data: Any, attributes: dict[str, Any] | None
) -> tuple[list[np.ndarray], list[str], np.ndarray, dict[str, list[Any]], dict[str, Any]]:
    """(data, shape types, edge colours, feature columns, metadata) of a layer or its data."""
    if hasattr(layer_or_data, "shape_type") and hasattr(layer_or_data, "features"):
        layer = layer_or_data
        features = layer.features
        return (
            list(layer.data),
            list(layer.shape_type),
            np.asarray(layer.edge_color),
            {c: list(features[c]) for c in features.columns},
            dict(layer.metadata),
        )
    if attributes is None:
        data, attributes = layer_or_data[0], layer_or_data[1]
    else:
        data = layer_or_data
    data = list(data)
    shape_type = attributes.get("shape_type", "polygon")
    shape_types = [shape_type] * len(data) if isinstance(shape_type, str) else list(shape_type)
    edge = np.asarray(attributes.get("edge_color", [hex_to_rgba(DEFAULT_COLOR)] * len(data)))
    if edge.ndim == 1:
        edge = np.tile(edge, (len(data), 1))
    raw = attributes.get("features")
    if raw is None:
        raw = attributes.get("properties") or {}
    if hasattr(raw, "columns"):
        columns = {c: list(raw[c]) for c in raw.columns}
    else:
        columns = {c: list(v) for c, v in dict(raw).items()}
    return data, shape_types, edge, columns, dict(attributes.get("metadata") or {})


def annotation_set_from_layer(
    layer_or_data: Any,
    attributes: dict[str, Any] | None = None,
    *,
    rater: str | None = None,
) -> AnnotationSet:
    """The AnnotationSet a Shapes layer shows: the exact inverse of :func:`annotation_layer_data`.

    Args:
        layer_or_data: A napari Shapes layer, a layer-data tuple ``(data, kwargs, "shapes")``, or
            the ``data`` of a layer when ``attributes`` is given (napari writer signature).
        attributes: The layer's attributes (``layer._get_state()``) when ``layer_or_data`` is data.
        rater: Overrides the rater kept in the layer's metadata.

    Returns:
        Annotations in level-0 (x, y), in layer order, with the layer's classes as groups.
    """
    data, shape_types, edge, columns, metadata = _layer_parts(layer_or_data, attributes)
    radius_px = float(metadata.get("dot_radius_px") or UNKNOWN_MPP_DOT_RADIUS_PX)
    result = AnnotationSet(
        groups=groups_from_metadata(metadata),
        rater=rater if rater is not None else metadata.get("rater"),
        slide=metadata.get("slide_path"),
    )
    for index, (rowcol, shape_type) in enumerate(zip(data, shape_types, strict=True)):

        def column(key: str, default: Any, index: int = index) -> Any:
            values = columns.get(key)
            if values is None or index >= len(values):
                return default
            value = values[index]
            return default if value is None or value != value else value  # NaN → default

        annotation = _annotation_from_shape(
            np.asarray(rowcol),
            shape_type,
            kept_type=str(column("type", "")),
            exact_xy=unpack_xy(column("xy", b"")),
            holes=unpack_rings(column("holes", b"")),
            radius_px=radius_px,
            skipped=result.skipped,
        )
        annotation.name = str(column("name", "")) or f"Annotation {index}"
        annotation.group = str(column("class", "")) or None
        annotation.color = rgba_to_hex(edge[index]) if index < len(edge) else DEFAULT_COLOR
        annotation.properties = _extra(column("extra", ""))
        result.annotations.append(annotation)
    for annotation in result.annotations:
        if annotation.group is not None and annotation.group not in result.groups:
            result.groups[annotation.group] = Group(annotation.group, color=annotation.color)
    return result


def annotation_set_of_layer(
    layer_or_data: Any,
    attributes: dict[str, Any] | None = None,
    *,
    rater: str | None = None,
) -> AnnotationSet:
    """Every annotation of an annotation layer: what to save, count or compare.

    A very large set is shown as a live window of the annotations in view
    (:mod:`napari_wsi_ml.viewer.large_annotations`); for such a layer this is the whole set with
    the window's edits merged in, where :func:`annotation_set_from_layer` would give only the
    window. For any other layer the two are the same.

    Args:
        layer_or_data: A Shapes layer, a layer-data tuple, or a layer's data when ``attributes``
            is given (napari writer signature).
        attributes: The layer's attributes (``layer._get_state()``) when ``layer_or_data`` is data.
        rater: Overrides the rater kept in the layer's metadata.

    Returns:
        A new AnnotationSet (its annotation objects may be shared with the view: copy them
        before changing them).
    """
    view = _view_behind(layer_or_data, attributes)
    if view is None:
        return annotation_set_from_layer(layer_or_data, attributes, rater=rater)
    full = view.annotation_set()
    metadata = view.shapes_layer.metadata
    return AnnotationSet(
        annotations=list(full.annotations),
        groups=dict(full.groups),
        rater=rater if rater is not None else metadata.get("rater") or full.rater,
        slide=full.slide if full.slide is not None else metadata.get("slide_path"),
        skipped=list(full.skipped),
        notes=list(full.notes),
    )


def _view_behind(layer_or_data: Any, attributes: dict[str, Any] | None) -> Any:
    """The view whose Shapes layer this is (or whose layer gave these attributes), else None."""
    if attributes is None and hasattr(layer_or_data, "metadata"):
        metadata = layer_or_data.metadata
    elif attributes is not None:
        metadata = attributes.get("metadata")
    elif isinstance(layer_or_data, tuple) and len(layer_or_data) > 1:
        metadata = layer_or_data[1].get("metadata")
    else:
        metadata = None
    view = (metadata or {}).get(VIEW_KEY)
    layer = getattr(view, "shapes_layer", None)
    # A duplicated layer shares the dict's values but not the dict: it is not the view's layer.
    return view if layer is not None and layer.metadata is metadata else None


def _extra(text: Any) -> dict[str, object]:
    if not isinstance(text, str) or not text:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def _as_displayed(xy: np.ndarray) -> np.ndarray:
    """What napari holds for level-0 (x, y) vertices: float32 (row, col)."""
    return xy_to_rowcol(xy).astype(np.float32)


def restore_exact(rowcol: np.ndarray, exact_xy: np.ndarray) -> np.ndarray:
    """Level-0 (x, y) of layer vertices, each exact where its float32 value is unedited."""
    xy = rowcol_to_xy(rowcol)
    if not len(exact_xy):
        return xy
    lookup = {
        tuple(key): value
        for key, value in zip(_as_displayed(exact_xy).tolist(), exact_xy, strict=True)
    }
    shown = np.asarray(rowcol, dtype=np.float32).tolist()
    for i, key in enumerate(shown):
        value = lookup.get(tuple(key))
        if value is not None:
            xy[i] = value
    return xy


def _unchanged(rowcol: np.ndarray, shown_xy: np.ndarray) -> bool:
    return rowcol.shape == shown_xy[:, ::-1].shape and np.array_equal(
        np.asarray(rowcol, dtype=np.float32), _as_displayed(shown_xy)
    )


def _annotation_from_shape(
    rowcol: np.ndarray,
    shape_type: str,
    *,
    kept_type: str,
    exact_xy: np.ndarray,
    holes: list[np.ndarray],
    radius_px: float,
    skipped: list[str],
) -> Annotation:
    """One annotation (name, group and colour filled in by the caller) from one shape."""
    known = kept_type if kept_type in AnnotationType._value2member_map_ else ""
    kind = AnnotationType(known) if known else None
    if shape_type == "ellipse" and kind in (AnnotationType.DOT, AnnotationType.POINTSET):
        return Annotation("", kind, _points_from_circle(rowcol, exact_xy, radius_px))
    if kind is AnnotationType.SPLINE and len(exact_xy) >= 3:
        if _unchanged(rowcol, spline_display_xy(exact_xy)):
            return Annotation("", kind, exact_xy)
        kind = AnnotationType.POLYGON
    xy = restore_exact(rowcol, exact_xy)
    if shape_type == "ellipse":
        return Annotation("", AnnotationType.POLYGON, _ellipse_polygon(xy))
    if shape_type == "rectangle":
        return Annotation("", AnnotationType.RECTANGLE, xy)
    if shape_type == "line" or (shape_type == "path" and len(xy) == 2):
        return Annotation("", AnnotationType.MEASUREMENT, xy)
    if shape_type == "path" and kind is not AnnotationType.MEASUREMENT:
        saved = kind if kind is not None else AnnotationType.POLYGON
        if kind is None:
            skipped.append(f"an open path of {len(xy)} vertices was saved as a closed Polygon")
        return Annotation("", saved, xy)
    if kind not in (AnnotationType.POLYGON, AnnotationType.RECTANGLE, AnnotationType.SPLINE):
        kind = AnnotationType.POLYGON
    edited = not _unchanged(rowcol, exact_xy) if len(exact_xy) else True
    return Annotation("", kind, xy, holes=_kept_holes(xy, holes, edited, skipped))


def _points_from_circle(rowcol: np.ndarray, exact_xy: np.ndarray, radius_px: float) -> np.ndarray:
    """The Dot/PointSet points behind a circle: exact, shifted by however far it was moved."""
    if not len(exact_xy):
        return rowcol_to_xy(rowcol).mean(axis=0, keepdims=True)
    shown = dot_display_xy(exact_xy, radius_px)
    if _unchanged(rowcol, shown):
        return exact_xy
    now = rowcol_to_xy(np.asarray(rowcol, dtype=np.float64)).mean(axis=0)
    before = rowcol_to_xy(_as_displayed(shown).astype(np.float64)).mean(axis=0)
    return exact_xy + (now - before)


def _ellipse_polygon(corners_xy: np.ndarray) -> np.ndarray:
    """A polygon of ``ELLIPSE_VERTICES`` vertices for an ellipse given by its 4 box corners."""
    center = corners_xy.mean(axis=0)
    half_a = (corners_xy[1] - corners_xy[0]) / 2.0
    half_b = (corners_xy[3] - corners_xy[0]) / 2.0
    angles = np.linspace(0.0, 2.0 * np.pi, ELLIPSE_VERTICES, endpoint=False)
    return center + np.outer(np.cos(angles), half_a) + np.outer(np.sin(angles), half_b)


def _kept_holes(
    xy: np.ndarray, holes: list[np.ndarray], edited: bool, skipped: list[str]
) -> list[np.ndarray]:
    """Holes restored on save: all when unedited, else those still inside the outer ring."""
    if not holes or not edited:
        return holes
    from shapely.geometry import Polygon

    outer = Polygon(xy).buffer(0)
    kept = [h for h in holes if outer.contains(Polygon(h))]
    if len(kept) < len(holes):
        skipped.append(f"{len(holes) - len(kept)} hole(s) outside an edited polygon were dropped")
    return kept
