"""Exact region overlap between raters: areas, intersections, Dice and IoU per class."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import shapely

from napari_wsi_ml.agreement import geometry as geo
from napari_wsi_ml.agreement.inputs import RaterInput, RaterRegions


@dataclass
class PairOverlap:
    """Areas (level-0 px²) of two regions and of their intersection."""

    area_a: float
    area_b: float
    intersection: float

    @property
    def dice(self) -> float:
        """2|A∩B| / (|A|+|B|); NaN when both are empty."""
        total = self.area_a + self.area_b
        return 2.0 * self.intersection / total if total > 0 else float("nan")

    @property
    def iou(self) -> float:
        """|A∩B| / |A∪B|; NaN when both are empty."""
        union = self.area_a + self.area_b - self.intersection
        return self.intersection / union if union > 0 else float("nan")


def intersection_area(parts_a: np.ndarray, parts_b: np.ndarray) -> float:
    """Exact area of the intersection of two sets of disjoint polygons."""
    _, _, pieces = geo.pairwise_intersections(parts_a, parts_b)
    return float(shapely.area(pieces).sum()) if pieces.size else 0.0


def pair_overlap(a: RaterRegions, b: RaterRegions, cls: str) -> PairOverlap:
    """Exact overlap of two raters' ``cls`` regions (holes respected)."""
    return PairOverlap(
        float(a.region(cls).area),
        float(b.region(cls).area),
        intersection_area(a.parts(cls), b.parts(cls)),
    )


def overlap_table(data: RaterInput) -> dict[str, np.ndarray]:
    """Areas and intersections of every rater pair and class.

    Returns:
        ``{"area": (R, C), "intersection": (R, R, C)}`` in level-0 px²; the diagonal of
        ``intersection`` holds each rater's own area.
    """
    n, k = len(data.raters), len(data.classes)
    area = np.array([[r.region(c).area for c in data.classes] for r in data.raters], float)
    inter = np.zeros((n, n, k))
    for ci, cls in enumerate(data.classes):
        for i in range(n):
            inter[i, i, ci] = area[i, ci]
            for j in range(i + 1, n):
                pieces = data.pair_pieces(i, j, cls)[2]
                value = float(shapely.area(pieces).sum()) if pieces.size else 0.0
                inter[i, j, ci] = inter[j, i, ci] = value
    return {"area": area.reshape(n, k), "intersection": inter}


def dice_iou(area_i: np.ndarray, area_j: np.ndarray, inter: np.ndarray) -> tuple:
    """Vectorised Dice and IoU from areas (NaN where both areas are zero)."""
    total = np.asarray(area_i, float) + np.asarray(area_j, float)
    inter = np.asarray(inter, float)
    with np.errstate(invalid="ignore", divide="ignore"):
        dice = np.where(total > 0, 2 * inter / total, np.nan)
        iou = np.where(total - inter > 0, inter / (total - inter), np.nan)
    return dice, iou
