"""Shapely geometry from annotations, and part-level overlay helpers.

All geometry is in level-0 ``(x, y)`` pixels. Region annotations (polygon, rectangle, spline)
become polygons with their holes through the shared annotation geometry helper (a spline is its
smooth curve); points and lines are not regions and are skipped with a note. Invalid rings
(self-intersections, bow ties) are repaired with :func:`shapely.make_valid` and the repair is
reported, never silent.

The overlay helpers work on arrays of polygons whose interiors are pairwise disjoint (the parts
of a union), so that sums of part-level intersection areas are exact areas of the whole.
"""

from __future__ import annotations

import numpy as np
import shapely
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from shapely.geometry.base import BaseGeometry

from napari_wsi_ml.annotations.geometry import valid_geometry
from napari_wsi_ml.annotations.model import Annotation, AnnotationType

EMPTY = shapely.MultiPolygon()


def polygonal(geometry: BaseGeometry) -> BaseGeometry:
    """Keep only the polygonal parts of a geometry (``make_valid`` may add lines or points)."""
    if geometry.is_empty:
        return EMPTY
    if geometry.geom_type in ("Polygon", "MultiPolygon"):
        return geometry
    parts = [p for p in shapely.get_parts(geometry) if p.geom_type in ("Polygon", "MultiPolygon")]
    return shapely.union_all(parts) if parts else EMPTY


def region_geometry(annotation: Annotation) -> tuple[BaseGeometry | None, str | None]:
    """The region an annotation encloses, and a note when it was skipped or repaired.

    The geometry comes from the shared annotation helper
    (:func:`napari_wsi_ml.annotations.valid_geometry`): splines are their smooth curve, holes
    are kept, invalid rings are repaired with ``shapely.make_valid``.

    Returns:
        ``(geometry, note)``: ``geometry`` is a valid (Multi)Polygon in level-0 ``(x, y)`` or
        ``None`` when the annotation is not a region; ``note`` explains a skip or a repair.
    """
    label = f"annotation {annotation.name!r} ({annotation.type.value})"
    if not annotation.type.is_area:
        return None, f"{label} is not a region (points/lines): ignored for region metrics"
    geometry, repair = valid_geometry(annotation)
    geometry = polygonal(geometry)
    if geometry.is_empty:
        problem = repair.problem if repair is not None else "no area"
        return None, f"{label} has no area ({problem}): ignored"
    if repair is None:
        return geometry, None
    return geometry, f"{repair} (shapely make_valid)"


def region_geometries(
    annotations: list[Annotation],
) -> tuple[list[BaseGeometry | None], list[str | None]]:
    """:func:`region_geometry` for many annotations.

    Valid hole-less polygons and rectangles (whose outline is their vertices) are built in one
    vectorised call; everything else (splines, holes, invalid rings) goes one by one.
    """
    geoms: list[BaseGeometry | None] = [None] * len(annotations)
    notes: list[str | None] = [None] * len(annotations)
    bulk_types = (AnnotationType.POLYGON, AnnotationType.RECTANGLE)
    simple = [
        k
        for k, a in enumerate(annotations)
        if a.type in bulk_types and not a.holes and len(a.coordinates) >= 3
    ]
    if simple:
        coords = [annotations[k].coordinates for k in simple]
        index = np.repeat(np.arange(len(coords)), [len(c) for c in coords])
        rings = shapely.linearrings(np.concatenate(coords), indices=index)  # closes the rings
        polys = shapely.polygons(rings)
        valid = shapely.is_valid(polys)
        for k, poly, ok in zip(simple, polys, valid, strict=True):
            if ok:
                geoms[k] = poly
    for k, annotation in enumerate(annotations):
        if geoms[k] is None:
            geoms[k], notes[k] = region_geometry(annotation)
    return geoms, notes


def parts(geometry: BaseGeometry) -> np.ndarray:
    """The polygons of a (Multi)Polygon as an object array (empty array when empty)."""
    if geometry is None or geometry.is_empty:
        return np.empty(0, dtype=object)
    return np.asarray(shapely.get_parts(geometry), dtype=object)


def clusters(geometries: np.ndarray) -> np.ndarray:
    """Cluster index of each geometry: geometries that touch or overlap, transitively, share one."""
    if geometries.size == 0:
        return np.empty(0, dtype=np.int64)
    i, j = shapely.STRtree(geometries).query(geometries, predicate="intersects")
    graph = coo_matrix((np.ones(i.size), (i, j)), shape=(geometries.size, geometries.size))
    return connected_components(graph, directed=False)[1].astype(np.int64)


def union(geometries: np.ndarray | list) -> BaseGeometry:
    """Union of polygons as a valid (Multi)Polygon (empty MultiPolygon when none).

    Polygons are grouped into connected clusters with an STRtree first and each cluster is
    merged on its own: GEOS's unary union of thousands of scattered polygons is an order of
    magnitude slower than that.
    """
    arr = np.asarray([g for g in np.asarray(geometries, dtype=object).ravel() if g is not None])
    arr = arr[~shapely.is_empty(arr)] if arr.size else arr
    if arr.size == 0:
        return EMPTY
    if arr.size == 1:
        return polygonal(arr[0])
    comp = clusters(arr)
    sizes = np.bincount(comp)
    single = (sizes[comp] == 1) & (shapely.get_type_id(arr) == 3)
    polys = list(arr[single])
    rest = np.flatnonzero(~single)
    order = rest[np.argsort(comp[rest], kind="stable")]
    for group in np.split(order, np.flatnonzero(np.diff(comp[order])) + 1):
        if group.size:
            polys.extend(shapely.get_parts(polygonal(shapely.union_all(arr[group]))))
    return shapely.MultiPolygon(polys) if len(polys) > 1 else polys[0] if polys else EMPTY


def polygon_parts(geometries: np.ndarray) -> np.ndarray:
    """The polygons inside an array of polygonal (or mixed) geometries."""
    if geometries.size == 0:
        return np.empty(0, dtype=object)
    out = shapely.get_parts(geometries)
    kinds = shapely.get_type_id(out)
    nested = kinds == 7  # GeometryCollection from an intersection
    if nested.any():
        out = np.concatenate([out[~nested], *(parts(polygonal(g)) for g in out[nested])])
        kinds = shapely.get_type_id(out)
    out = out[(kinds == 3) & (shapely.area(out) > 0)]
    return np.asarray(out, dtype=object)


def candidate_pairs(parts_a: np.ndarray, parts_b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Indices ``(ia, ib)`` of the part pairs whose interiors may intersect (STRtree query)."""
    if parts_a.size == 0 or parts_b.size == 0:
        return np.empty(0, dtype=np.intp), np.empty(0, dtype=np.intp)
    tree = shapely.STRtree(parts_b)
    ia, ib = tree.query(parts_a, predicate="intersects")
    return ia, ib


def pairwise_intersections(
    parts_a: np.ndarray, parts_b: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Intersections of every overlapping pair of parts.

    Returns:
        ``(ia, ib, pieces)``: the part indices and the intersection polygons, keeping only pairs
        whose intersection has a positive area.
    """
    ia, ib = candidate_pairs(parts_a, parts_b)
    if ia.size == 0:
        return ia, ib, np.empty(0, dtype=object)
    pieces = shapely.intersection(parts_a[ia], parts_b[ib])
    keep = shapely.area(pieces) > 0
    return ia[keep], ib[keep], pieces[keep]


def intersection_parts(parts_list: list[np.ndarray]) -> np.ndarray:
    """Polygons of the common area of several disjoint-part arrays.

    Intersections of disjoint parts are disjoint, so no union is needed.
    """
    current = parts_list[0]
    for other in parts_list[1:]:
        _, _, pieces = pairwise_intersections(current, other)
        current = polygon_parts(pieces)
    return current


def subtract(parts_a: np.ndarray, cutters: np.ndarray) -> np.ndarray:
    """``parts_a`` minus ``cutters`` (disjoint polygons), part by part, as polygons."""
    if parts_a.size == 0 or cutters.size == 0:
        return parts_a
    ia, ic = candidate_pairs(parts_a, cutters)
    untouched = parts_a[np.setdiff1d(np.arange(parts_a.size), ia)]
    if ia.size == 0:
        return untouched
    order = np.argsort(ia, kind="stable")
    ia, ic = ia[order], ic[order]
    targets, group = np.unique(ia, return_inverse=True)
    knives = shapely.multipolygons(cutters[ic], indices=group)  # disjoint: valid without union
    remainder = shapely.difference(parts_a[targets], knives)
    return np.concatenate([untouched, polygon_parts(remainder)])
