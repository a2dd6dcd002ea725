"""Class regions of an annotation set: disjoint level-0 geometries per label, minus exclusions.

Annotation groups map to labels through a label map (``{"tumor": "tumour", "_0": "tumour"}``).
Groups named in ``exclude`` (e.g. CAMELYON's ``"Exclusion"`` and ``"_2"``) are cut out of every
class; holes of GeoJSON polygons are respected. Where polygons overlap, the smaller one wins
(a necrosis drawn inside a tumour is necrosis), so the regions of different labels are disjoint.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import shapely
from shapely.geometry import MultiPolygon, Polygon
from shapely.geometry.base import BaseGeometry

from napari_wsi_ml.annotations import AnnotationSet, valid_geometry
from napari_wsi_ml.errors import ConfigError

DEFAULT_EXCLUDE = ("Exclusion", "exclusion", "_2")
"""Annotation groups cut out of every class by default (ASAP / CAMELYON conventions)."""


@dataclass(frozen=True)
class ClassRegions:
    """Disjoint per-label areas of one annotation set.

    Attributes:
        regions: Label name → level-0 geometry (disjoint between labels, exclusions removed).
        excluded: Union of the exclusion annotations.
        annotated: Union of everything annotated with a mapped label (before exclusion).
        notes: Repairs and ignored annotations, for reports.
    """

    regions: dict[str, BaseGeometry]
    excluded: BaseGeometry
    annotated: BaseGeometry
    notes: tuple[str, ...] = field(default_factory=tuple)


def unknown_classes(
    annotation_set: AnnotationSet, label_map: Mapping[str, str], exclude: Sequence[str]
) -> dict[str, int]:
    """Groups used by area annotations that are neither mapped nor excluded, with counts."""
    unknown: dict[str, int] = {}
    for annotation in annotation_set:
        group = annotation.group or "(no group)"
        if annotation.type.is_area and group not in label_map and group not in exclude:
            unknown[group] = unknown.get(group, 0) + 1
    return unknown


def class_regions(
    annotation_set: AnnotationSet,
    label_map: Mapping[str, str],
    *,
    exclude: Sequence[str] = DEFAULT_EXCLUDE,
    on_unknown: str = "error",
) -> ClassRegions:
    """Build the disjoint class regions of ``annotation_set``.

    Args:
        annotation_set: The annotations (level-0 ``(x, y)``).
        label_map: Annotation group → label name.
        exclude: Groups whose area is cut out of every class.
        on_unknown: ``"error"`` raises on groups not in ``label_map`` nor ``exclude``;
            ``"ignore"`` skips them and lists them in ``notes``.

    Raises:
        ConfigError: Unknown groups (all listed with their counts), when ``on_unknown="error"``.
    """
    if on_unknown not in ("error", "ignore"):
        raise ConfigError(f"on_unknown must be 'error' or 'ignore', got {on_unknown!r}.")
    notes: list[str] = []
    unknown = unknown_classes(annotation_set, label_map, exclude)
    if unknown:
        listing = ", ".join(f"{g!r} ({n} annotations)" for g, n in unknown.items())
        source = f" of slide {annotation_set.slide!r}" if annotation_set.slide else ""
        message = (
            f"Annotations{source} use classes that are not in the label map: {listing}. "
            f"Known: {', '.join(repr(k) for k in label_map) or 'none'}. Add them to the label "
            f"map, or to the excluded groups."
        )
        if on_unknown == "error":
            raise ConfigError(message)
        notes.append(message)
    pieces: list[tuple[float, str, BaseGeometry]] = []
    exclusions: list[BaseGeometry] = []
    for annotation in annotation_set:
        if not annotation.type.is_area or annotation.group not in (*label_map, *exclude):
            continue
        geometry, repair = valid_geometry(annotation)
        if repair is not None:
            notes.append(str(repair))
        if geometry.is_empty:
            continue
        if annotation.group in exclude:
            exclusions.append(geometry)
        else:
            pieces.append((geometry.area, label_map[annotation.group], geometry))  # type: ignore[index]
    excluded = shapely.unary_union(exclusions) if exclusions else Polygon()
    regions = _smallest_wins(pieces)
    if not excluded.is_empty:
        regions = {k: _polygonal(v.difference(excluded)) for k, v in regions.items()}
    annotated = shapely.unary_union([g for _, _, g in pieces]) if pieces else Polygon()
    return ClassRegions(regions, excluded, annotated, tuple(notes))


def _smallest_wins(pieces: list[tuple[float, str, BaseGeometry]]) -> dict[str, BaseGeometry]:
    """Per-label union where each point belongs to the smallest polygon covering it."""
    parts: dict[str, list[BaseGeometry]] = {}
    covered: BaseGeometry = Polygon()
    for _, label, geometry in sorted(pieces, key=lambda p: p[0]):
        own = geometry if covered.is_empty else geometry.difference(covered)
        if not own.is_empty:
            parts.setdefault(label, []).append(own)
        covered = geometry if covered.is_empty else covered.union(geometry)
    return {label: _polygonal(shapely.unary_union(geoms)) for label, geoms in parts.items()}


def _polygonal(geometry: BaseGeometry) -> BaseGeometry:
    """Only the polygonal parts of ``geometry`` (differences can leave lines and points)."""
    if geometry.geom_type in ("Polygon", "MultiPolygon"):
        return geometry
    polygons = [g for g in getattr(geometry, "geoms", []) if g.geom_type == "Polygon"]
    return MultiPolygon(polygons) if polygons else Polygon()
