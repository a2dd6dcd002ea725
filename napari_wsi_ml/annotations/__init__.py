"""Annotations: the model, and ASAP XML / QuPath GeoJSON readers and writers (pure, no Qt).

Coordinates are level-0 ``(x, y)`` pixels everywhere.
"""

from __future__ import annotations

from napari_wsi_ml.annotations.asap_xml import read_asap, write_asap
from napari_wsi_ml.annotations.geojson import read_geojson, write_geojson
from napari_wsi_ml.annotations.geometry import (
    Repair,
    annotation_geometry,
    area_px2,
    area_um2,
    outline,
    valid_geometries,
    valid_geometry,
)
from napari_wsi_ml.annotations.model import (
    Annotation,
    AnnotationSet,
    AnnotationType,
    Group,
)
from napari_wsi_ml.annotations.registry import FORMATS, read_annotations, write_annotations

__all__ = [
    "FORMATS",
    "Annotation",
    "AnnotationSet",
    "AnnotationType",
    "Group",
    "Repair",
    "annotation_geometry",
    "area_px2",
    "area_um2",
    "outline",
    "read_annotations",
    "read_asap",
    "read_geojson",
    "valid_geometries",
    "valid_geometry",
    "write_annotations",
    "write_asap",
    "write_geojson",
]
