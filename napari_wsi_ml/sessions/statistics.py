"""Per-class counts and areas of an AnnotationSet, in µm² when the slide's mpp is known."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from napari_wsi_ml.annotations.model import AnnotationSet


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


def class_statistics(
    annotation_set: AnnotationSet, mpp: Sequence[float] | None
) -> dict[str, ClassStatistics]:
    """Statistics of every class of ``annotation_set`` (unused classes count 0), by name.

    Annotations without a class are listed under ``""``.
    """
    from napari_wsi_ml.annotations.geometry import area_px2

    counts: dict[str, int] = dict.fromkeys(annotation_set.class_names, 0)
    areas: dict[str, float] = dict.fromkeys(annotation_set.class_names, 0.0)
    for annotation in annotation_set:
        name = annotation.group or ""
        counts[name] = counts.get(name, 0) + 1
        areas[name] = areas.get(name, 0.0) + area_px2(annotation)
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
