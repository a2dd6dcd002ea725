"""How much of a slide's tissue is lesion: the fraction behind the lesion-size strata.

A slide's lesion fraction is the area of its lesion annotations divided by the area of tissue
and lesions together (level-0 px²; the union, because a tissue detector may leave a lesion out
of the tissue, e.g. as a hole). Lesion annotations are the area annotations of every
group that is not a non-lesion group (:data:`NON_LESION_GROUPS`, compared case-insensitively
after ``label_map``). A cohort CSV column ``tumour_fraction`` (the synthetic cohort's exact
truth) takes precedence over the annotation files.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import shapely
from shapely.geometry.base import BaseGeometry

from napari_wsi_ml.annotations.geometry import valid_geometry
from napari_wsi_ml.annotations.registry import read_annotations
from napari_wsi_ml.errors import WsiMlError

FRACTION_COLUMNS = ("tumour_fraction", "tumor_fraction", "lesion_fraction")
"""Cohort CSV columns read as the lesion fraction, in order of preference."""

NON_LESION_GROUPS = frozenset(
    {"normal", "background", "tissue", "stroma", "exclude", "excluded", "artefact", "artifact"}
)
"""Annotation groups that do not mark a lesion."""


def fraction_from_columns(extra: Mapping[str, str]) -> tuple[float | None, str | None]:
    """The lesion fraction of a cohort row's extra columns, and a problem if it is malformed."""
    for column in FRACTION_COLUMNS:
        text = extra.get(column, "").strip()
        if not text:
            continue
        try:
            value = float(text)
        except ValueError:
            return None, f"column {column}: {text!r} is not a number"
        if not (math.isfinite(value) and 0 <= value <= 1):
            return None, f"column {column}: {text!r} is not a fraction between 0 and 1"
        return value, None
    return None, None


def lesion_geometry(
    paths: Sequence[Path], label_map: Mapping[str, str] | None = None
) -> BaseGeometry:
    """Union (level-0) of the lesion area annotations of the annotation files ``paths``."""
    label_map = label_map or {}
    parts = []
    for path in paths:
        for annotation in read_annotations(path).annotations:
            group = label_map.get(annotation.group or "", annotation.group or "")
            if not annotation.type.is_area or group.lower() in NON_LESION_GROUPS:
                continue
            geometry, _ = valid_geometry(annotation)
            if not geometry.is_empty:
                parts.append(geometry)
    return shapely.unary_union(parts) if parts else shapely.Polygon()


def lesion_fraction(
    extra: Mapping[str, str],
    annotations: Sequence[Path],
    tissue: BaseGeometry,
    label_map: Mapping[str, str] | None = None,
) -> tuple[float | None, str | None]:
    """Lesion area / tissue area of one slide (None when unknown), and a problem if any.

    Args:
        extra: The cohort row's extra columns (a fraction column wins).
        annotations: The slide's annotation / truth files.
        tissue: The slide's level-0 tissue geometry.
        label_map: Raw group name → class name, applied before the non-lesion test.
    """
    value, problem = fraction_from_columns(extra)
    if value is not None or problem is not None:
        return value, problem
    if not annotations:
        return None, None
    try:
        lesion = lesion_geometry(annotations, label_map)
    except WsiMlError as error:
        return None, f"annotations cannot be read ({error})"
    whole = tissue.union(lesion)
    if whole.is_empty or whole.area <= 0:
        return None, None
    return float(lesion.area / whole.area), None
