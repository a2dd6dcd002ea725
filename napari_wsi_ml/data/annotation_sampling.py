"""Annotation-driven patch sampling: grid patches labelled by the annotated class regions.

Two rules decide a patch's label:

- ``"centre"``: the class whose region contains the patch centre;
- ``"coverage"``: the class covering at least ``min_coverage`` of the patch.

With ``background_label``, usable tissue outside every annotation is a class of its own (e.g.
``"normal"``). Exclusion groups and holes are never labelled; QC-flagged areas are cut out of
every class. Coverages are exact shapely areas.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
import shapely
from shapely.geometry import Polygon
from shapely.geometry.base import BaseGeometry

from napari_wsi_ml.annotations import AnnotationSet
from napari_wsi_ml.data.patchset import PatchSet
from napari_wsi_ml.data.qc import EXCLUDED_BY_DEFAULT, QCMask
from napari_wsi_ml.data.regions import DEFAULT_EXCLUDE, class_regions
from napari_wsi_ml.data.resolution import ReadPlan
from napari_wsi_ml.data.sampling import DEFAULT_MIN_TISSUE, grid_corners, usable_area
from napari_wsi_ml.errors import ConfigError

if TYPE_CHECKING:
    from napari_wsi_ml.slide import Slide

RULES = ("centre", "coverage")
MIXED_TOLERANCE = 1e-6
"""Coverage (fraction of a patch) under which a class does not count as present."""


def label_names_for(
    label_map: Mapping[str, str], background_label: str | None = None
) -> tuple[str, ...]:
    """Default class order: the background label first, then the label map's values."""
    names = [background_label] if background_label else []
    for value in label_map.values():
        if value not in names:
            names.append(value)
    return tuple(names)


def _coverage(region: BaseGeometry, boxes: np.ndarray, box_area: float) -> np.ndarray:
    out = np.zeros(len(boxes))
    if region.is_empty or len(boxes) == 0:
        return out
    shapely.prepare(region)
    hits = shapely.intersects(region, boxes)
    if hits.any():
        out[hits] = shapely.area(shapely.intersection(boxes[hits], region)) / box_area
    return out


def annotation_patches(
    slide: Slide,
    annotation_set: AnnotationSet,
    plan: ReadPlan,
    *,
    label_map: Mapping[str, str],
    rule: str = "centre",
    min_coverage: float = 0.5,
    exclude: Sequence[str] = DEFAULT_EXCLUDE,
    drop_mixed: bool = False,
    stride: int | tuple[int, int] | None = None,
    background_label: str | None = None,
    min_tissue: float = DEFAULT_MIN_TISSUE,
    tissue: BaseGeometry | None = None,
    qc: QCMask | None = None,
    label_names: Sequence[str] | None = None,
    on_unknown: str = "error",
) -> PatchSet:
    """Grid patches labelled from annotations.

    Args:
        slide: The slide.
        annotation_set: Its annotations (level-0 ``(x, y)``).
        plan: From :func:`~napari_wsi_ml.data.resolution.plan_patch_read`.
        label_map: Annotation group → label name, e.g. ``{"tumor": "tumour"}``.
        rule: ``"centre"`` or ``"coverage"`` (see the module docstring).
        min_coverage: Fraction a class must cover under the ``"coverage"`` rule.
        exclude: Groups cut out of every class (default ``"Exclusion"``, ``"_2"``).
        drop_mixed: Drop patches where more than one class (background included) is present.
        stride: Grid step in output pixels; None = patch size.
        background_label: Label of unannotated usable tissue, or None to skip it.
        min_tissue: Minimum usable-tissue fraction of a background patch.
        tissue: Tissue geometry for the background (default the slide's tissue polygons).
        qc: A QC mask whose blur and pen flags are cut out of every class.
        label_names: Class order (default: background first, then the label map's values).
        on_unknown: ``"error"`` or ``"ignore"`` for groups not in the label map (see
            :func:`~napari_wsi_ml.data.regions.class_regions`).

    Raises:
        ConfigError: Unknown rule, unknown groups, or a label missing from ``label_names``.
    """
    if rule not in RULES:
        raise ConfigError(f"rule must be one of {RULES}, got {rule!r}.")
    names = tuple(label_names) if label_names else label_names_for(label_map, background_label)
    wanted = set(label_map.values()) | ({background_label} if background_label else set())
    if missing := sorted(wanted - set(names)):
        raise ConfigError(f"labels {missing} are not in label_names {list(names)}.")
    found = class_regions(annotation_set, label_map, exclude=exclude, on_unknown=on_unknown)
    regions = dict(found.regions)
    flagged = qc.polygons(EXCLUDED_BY_DEFAULT) if qc is not None else Polygon()
    if not flagged.is_empty:
        regions = {k: v.difference(flagged) for k, v in regions.items()}
    if background_label:
        usable = usable_area(slide, tissue=tissue, qc=qc)
        regions[background_label] = usable.difference(found.annotated).difference(found.excluded)
    corners = grid_corners(slide.level_dimensions[0], plan, stride)
    ex, ey = plan.extent
    boxes = shapely.box(corners[:, 0], corners[:, 1], corners[:, 0] + ex, corners[:, 1] + ey)
    everything = shapely.unary_union([g for g in regions.values() if not g.is_empty])
    if everything.is_empty:
        empty = np.zeros((0, 2), np.int64)
        return PatchSet(
            empty, empty[:, 0], names, plan, slide.name, str(slide.path), None, found.notes
        )
    shapely.prepare(everything)
    near = shapely.intersects(everything, boxes)
    corners, boxes = corners[near], boxes[near]
    order = [name for name in names if name in regions]
    coverage = np.column_stack([_coverage(regions[n], boxes, ex * ey) for n in order])
    centres = corners + np.array([ex / 2, ey / 2])
    labels = _decide(rule, centres, coverage, order, regions, min_coverage)
    keep = labels >= 0
    if drop_mixed:
        keep &= (coverage > MIXED_TOLERANCE).sum(axis=1) <= 1
    if background_label:
        is_background = labels == order.index(background_label)
        keep &= ~is_background | (coverage[:, order.index(background_label)] >= min_tissue)
    label_index = np.array([names.index(n) for n in order], dtype=np.int64)
    fraction = coverage[np.arange(len(labels)), np.maximum(labels, 0)]
    return PatchSet(
        corners[keep],
        label_index[labels[keep]],
        names,
        plan,
        slide.name,
        str(slide.path),
        fraction[keep],
        found.notes,
    )


def _decide(
    rule: str,
    centres: np.ndarray,
    coverage: np.ndarray,
    order: list[str],
    regions: dict[str, BaseGeometry],
    min_coverage: float,
) -> np.ndarray:
    """Column index (into ``order``) of each patch's label, -1 for none."""
    labels = np.full(len(centres), -1, dtype=np.int64)
    if rule == "centre":
        for column, name in enumerate(order):
            inside = shapely.contains_xy(regions[name], centres[:, 0], centres[:, 1])
            labels[inside & (labels < 0)] = column
        return labels
    best = coverage.argmax(axis=1)
    ok = coverage[np.arange(len(best)), best] >= min_coverage
    labels[ok] = best[ok]
    return labels
