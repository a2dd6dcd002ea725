"""Annotations: the model, and ASAP XML / QuPath GeoJSON readers and writers."""

from __future__ import annotations

from napari_wsi_ml.annotations.model import (
    Annotation,
    AnnotationSet,
    AnnotationType,
    Group,
)

__all__ = ["Annotation", "AnnotationSet", "AnnotationType", "Group"]
