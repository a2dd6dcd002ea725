"""Majority-vote consensus polygons: the area that at least k of n raters gave a class.

Exact: the union, over every k-subset of raters, of the subset's common area (computed part by
part with an STRtree). With k > n/2 and raters whose classes do not overlap, each point gets
at most one consensus class.
"""

from __future__ import annotations

from itertools import combinations

import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry

from napari_wsi_ml.agreement import geometry as geo
from napari_wsi_ml.agreement.inputs import RaterInput
from napari_wsi_ml.annotations.model import Annotation, AnnotationSet, AnnotationType, Group
from napari_wsi_ml.errors import AgreementInputError

CONSENSUS_COLORS = ("#E41A1C", "#377EB8", "#4DAF4A", "#984EA3", "#FF7F00", "#A65628")


def default_k(n_raters: int) -> int:
    """Strict majority: ``n // 2 + 1``."""
    return n_raters // 2 + 1


def majority_vote(data: RaterInput, k: int | None = None) -> dict[str, BaseGeometry]:
    """Per class, the region marked by at least ``k`` raters (default: strict majority)."""
    n = len(data.raters)
    k = default_k(n) if k is None else k
    if not 1 <= k <= n:
        raise AgreementInputError(f"majority vote needs 1 <= k <= {n} raters, got k={k}")
    out: dict[str, BaseGeometry] = {}
    for cls in data.classes:
        pieces = [data.common_parts(subset, cls) for subset in combinations(range(n), k)]
        out[cls] = geo.union(np.concatenate(pieces)) if pieces else geo.EMPTY
    return out


def consensus_annotations(
    regions: dict[str, BaseGeometry], *, slide: str | None = None, rater: str = "consensus"
) -> AnnotationSet:
    """Consensus regions as an AnnotationSet (one polygon per part; holes kept as holes)."""
    aset = AnnotationSet(rater=rater, slide=slide)
    for ci, (cls, geometry) in enumerate(regions.items()):
        color = CONSENSUS_COLORS[ci % len(CONSENSUS_COLORS)]
        aset.groups[cls] = Group(cls, color=color)
        for pi, poly in enumerate(geo.parts(geometry)):
            aset.annotations.append(
                Annotation(
                    name=f"{cls} {pi}",
                    type=AnnotationType.POLYGON,
                    coordinates=np.asarray(poly.exterior.coords)[:-1],
                    group=cls,
                    color=color,
                    holes=[np.asarray(r.coords)[:-1] for r in poly.interiors],
                )
            )
    return aset


def total_area(regions: dict[str, BaseGeometry]) -> dict[str, float]:
    """Area per class in level-0 px²."""
    return {cls: float(shapely.area(g)) for cls, g in regions.items()}
