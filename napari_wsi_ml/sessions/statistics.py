"""Per-class counts and areas of an AnnotationSet, in µm² when the slide's mpp is known."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from napari_wsi_ml.annotations.model import Annotation, AnnotationSet


@dataclass(frozen=True)
class ClassStatistics:
    """Counts and areas of one class.

    Attributes:
        name: The class.
        count: How many annotations.
        area_px: Their summed area in level-0 pixels² (Splines by their smooth curve, holes
            subtracted; Dots, PointSets and Measurements count 0).
        area_um2: The same in µm², or None when the mpp is unknown.
    """

    name: str
    count: int
    area_px: float
    area_um2: float | None

    @property
    def area_mm2(self) -> float | None:
        """Area in mm², or None when the mpp is unknown."""
        return None if self.area_um2 is None else self.area_um2 / 1e6


class AreaCache:
    """Areas of annotations already measured, by object: a set's statistics computed again after
    a few edits measure only the annotations that are new objects (edits make new ones)."""

    def __init__(self) -> None:
        self._areas: dict[int, tuple[Annotation, float]] = {}

    def areas(self, annotations: Sequence[Annotation]) -> list[float]:
        """Area in level-0 px² of each annotation; forgets annotations not asked for."""
        from napari_wsi_ml.annotations.geometry import area_px2

        known, kept, result = self._areas, {}, []
        for annotation in annotations:
            entry = known.get(id(annotation))
            if entry is None or entry[0] is not annotation:
                entry = (annotation, area_px2(annotation))
            kept[id(annotation)] = entry
            result.append(entry[1])
        self._areas = kept
        return result


def class_statistics(
    annotation_set: AnnotationSet,
    mpp: Sequence[float] | None,
    cache: AreaCache | None = None,
) -> dict[str, ClassStatistics]:
    """Statistics of every class of ``annotation_set`` (unused classes count 0), by name.

    Annotations without a class are listed under ``""``. With a ``cache``, annotations measured
    by an earlier call are not measured again (their coordinates must not have changed in place).
    """
    counts: dict[str, int] = dict.fromkeys(annotation_set.class_names, 0)
    areas: dict[str, float] = dict.fromkeys(annotation_set.class_names, 0.0)
    measured = (cache or AreaCache()).areas(annotation_set.annotations)
    for annotation, area in zip(annotation_set, measured, strict=True):
        name = annotation.group or ""
        counts[name] = counts.get(name, 0) + 1
        areas[name] = areas.get(name, 0.0) + area
    pixel_um2 = None if mpp is None else float(mpp[0]) * float(mpp[1])
    return {
        name: ClassStatistics(
            name, counts[name], areas[name], None if pixel_um2 is None else areas[name] * pixel_um2
        )
        for name in counts
    }


def format_area(area_um2: float | None, area_px: float) -> str:
    """An area for people: µm² below 0.1 mm², mm² above, pixels² when the mpp is unknown."""
    if area_um2 is None:
        return f"{area_px:,.0f} px²"
    if area_um2 < 1e5:
        return f"{area_um2:,.0f} µm²"
    return f"{area_um2 / 1e6:,.3f} mm²"
