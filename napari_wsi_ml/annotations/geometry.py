"""Shapely geometry of annotations, validity repair that says what it did, and areas.

Geometries are in level-0 ``(x, y)`` pixels. Polygons and rectangles become polygons (with
their holes), splines the polygon of their smooth curve (:mod:`.spline`), dots and point
sets points, measurements line strings.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import shapely
from shapely.geometry import LineString, MultiPoint, Point, Polygon
from shapely.geometry.base import BaseGeometry

from napari_wsi_ml.annotations.model import Annotation, AnnotationType
from napari_wsi_ml.annotations.spline import catmull_rom_closed

Mpp = float | tuple[float, float] | None


@dataclass(frozen=True)
class Repair:
    """What :func:`valid_geometry` changed in one annotation's geometry."""

    annotation: str
    problem: str
    result: str

    def __str__(self) -> str:
        return f"annotation {self.annotation!r}: {self.problem}; repaired as {self.result}"


def outline(annotation: Annotation) -> np.ndarray:
    """The outline vertices (N, 2) used for drawing and areas: the spline curve for splines."""
    if annotation.type is AnnotationType.SPLINE:
        return catmull_rom_closed(annotation.coordinates)
    return annotation.coordinates


def annotation_geometry(annotation: Annotation) -> BaseGeometry:
    """The shapely geometry of ``annotation`` as drawn (possibly invalid; see valid_geometry)."""
    coords = annotation.coordinates
    kind = annotation.type
    if kind in (AnnotationType.DOT, AnnotationType.POINTSET):
        if kind is AnnotationType.DOT and len(coords) == 1:
            return Point(coords[0])
        return MultiPoint(coords)
    if kind is AnnotationType.MEASUREMENT:
        return LineString(coords) if len(coords) >= 2 else Point(coords[0])
    ring = outline(annotation)
    if len(ring) < 3:
        return Polygon()
    holes = [h for h in annotation.holes if len(h) >= 3]
    return Polygon(ring, holes)


def valid_geometry(annotation: Annotation) -> tuple[BaseGeometry, Repair | None]:
    """The geometry made valid (``shapely.make_valid``), and what was repaired, if anything.

    Area geometries keep only their polygonal parts after repair (a bow-tie becomes two
    triangles); degenerate ones (fewer than 3 distinct vertices) become empty.
    """
    geometry = annotation_geometry(annotation)
    if not annotation.type.is_area:
        return geometry, None
    if geometry.is_empty:
        return geometry, Repair(annotation.name, "fewer than 3 vertices", "an empty polygon")
    if geometry.is_valid:
        return geometry, None
    reason = shapely.is_valid_reason(geometry)
    repaired = shapely.make_valid(geometry)
    polygons = [
        g for g in getattr(repaired, "geoms", [repaired]) if g.geom_type.endswith("Polygon")
    ]
    fixed = shapely.unary_union(polygons) if polygons else Polygon()
    return fixed, Repair(
        annotation.name, reason, f"a {fixed.geom_type} of area {fixed.area:.6g} px²"
    )


def valid_geometries(
    annotations: Iterable[Annotation],
) -> tuple[list[BaseGeometry], list[Repair]]:
    """Valid geometries of several annotations, and every repair made."""
    geometries: list[BaseGeometry] = []
    repairs: list[Repair] = []
    for annotation in annotations:
        geometry, repair = valid_geometry(annotation)
        geometries.append(geometry)
        if repair is not None:
            repairs.append(repair)
    return geometries, repairs


def area_px2(annotation: Annotation) -> float:
    """Area in level-0 px² of the valid geometry (0 for dots, point sets, measurements)."""
    if not annotation.type.is_area:
        return 0.0
    return float(valid_geometry(annotation)[0].area)


def area_um2(annotation: Annotation, mpp: Mpp) -> float | None:
    """Area in µm², given the slide's µm per pixel (a number or ``(x, y)``); ``None`` if unknown."""
    if mpp is None:
        return None
    mpp_x, mpp_y = (mpp, mpp) if isinstance(mpp, (int, float)) else mpp
    return area_px2(annotation) * float(mpp_x) * float(mpp_y)
