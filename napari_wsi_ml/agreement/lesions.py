"""Lesion-level agreement: connected objects matched between raters by IoU.

Each rater's objects of a class are the connected polygons of the union of their regions.
Pairs whose IoU reaches the threshold are matched one-to-one by optimal assignment (maximum
total IoU; Hungarian algorithm on each connected group of candidate pairs, found with an
STRtree), which is exact and stays small however many objects a slide holds.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np
import shapely
from scipy.optimize import linear_sum_assignment
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from napari_wsi_ml.agreement import geometry as geo

SIZE_BINS_PX2 = (0.0, 1e3, 1e4, 1e5, 1e6, np.inf)


@dataclass
class LesionMatch:
    """Matching of reference objects ``a`` against test objects ``b`` for one class."""

    n_a: int
    n_b: int
    pairs: list[tuple[int, int, float]]
    unmatched_a: list[dict] = field(default_factory=list)
    unmatched_b: list[dict] = field(default_factory=list)

    @property
    def precision(self) -> float:
        """Matched share of ``b``'s objects."""
        return len(self.pairs) / self.n_b if self.n_b else float("nan")

    @property
    def recall(self) -> float:
        """Matched share of ``a``'s objects."""
        return len(self.pairs) / self.n_a if self.n_a else float("nan")

    @property
    def f1(self) -> float:
        """2·TP / (|a| + |b|)."""
        total = self.n_a + self.n_b
        return 2 * len(self.pairs) / total if total else float("nan")


def _describe(polys: np.ndarray, idx: np.ndarray) -> list[dict]:
    out = []
    for k in idx:
        p = polys[k]
        c = p.centroid
        out.append(
            {
                "index": int(k),
                "area_px2": float(p.area),
                "centroid": [c.x, c.y],
                "bbox": [float(v) for v in p.bounds],
            }
        )
    return out


def match_lesions(
    parts_a: np.ndarray,
    parts_b: np.ndarray,
    threshold: float = 0.5,
    pieces: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
) -> LesionMatch:
    """Optimal one-to-one matching of objects with IoU ≥ ``threshold``.

    Args:
        parts_a: Disjoint polygons of the reference rater.
        parts_b: Disjoint polygons of the other rater.
        threshold: Minimum IoU of a match, in (0, 1].
        pieces: Precomputed ``geometry.pairwise_intersections(parts_a, parts_b)``.
    """
    ia, ib, pieces = pieces or geo.pairwise_intersections(parts_a, parts_b)
    pairs: list[tuple[int, int, float]] = []
    if ia.size:
        inter = shapely.area(pieces)
        iou = inter / (shapely.area(parts_a[ia]) + shapely.area(parts_b[ib]) - inter)
        keep = iou >= threshold
        ia, ib, iou = ia[keep], ib[keep], iou[keep]
    if ia.size:
        n_a, n_b = parts_a.size, parts_b.size
        graph = coo_matrix((np.ones(ia.size), (ia, ib + n_a)), shape=(n_a + n_b,) * 2)
        _, comp = connected_components(graph, directed=False)
        edge_comp = comp[ia]
        order = np.argsort(edge_comp, kind="stable")
        bounds = np.flatnonzero(np.diff(edge_comp[order])) + 1
        for group in np.split(order, bounds):
            ra, rows = np.unique(ia[group], return_inverse=True)
            rb, cols = np.unique(ib[group], return_inverse=True)
            cost = np.zeros((ra.size, rb.size))
            cost[rows, cols] = iou[group]
            r, c = linear_sum_assignment(cost, maximize=True)
            pairs.extend(
                (int(ra[x]), int(rb[y]), float(cost[x, y]))
                for x, y in zip(r, c, strict=True)
                if cost[x, y] >= threshold
            )
    matched_a = {p[0] for p in pairs}
    matched_b = {p[1] for p in pairs}
    return LesionMatch(
        int(parts_a.size),
        int(parts_b.size),
        sorted(pairs),
        _describe(parts_a, np.setdiff1d(np.arange(parts_a.size), list(matched_a))),
        _describe(parts_b, np.setdiff1d(np.arange(parts_b.size), list(matched_b))),
    )


def size_histogram(objects: list[dict], scale: float = 1.0) -> dict[str, int]:
    """Counts of objects per area bin; ``scale`` converts px² into the reported unit."""
    areas = np.array([o["area_px2"] * scale for o in objects])
    counts, _ = np.histogram(areas, bins=np.asarray(SIZE_BINS_PX2))
    labels = [f"{lo:g}-{hi:g}" for lo, hi in itertools.pairwise(SIZE_BINS_PX2)]
    return dict(zip(labels, (int(c) for c in counts), strict=True))


def lesion_summary(match: LesionMatch, *, area_scale: float = 1.0) -> dict[str, object]:
    """JSON summary: counts, precision/recall/F1, unmatched objects and their size bins."""
    nan = lambda v: v if np.isfinite(v) else None  # noqa: E731
    return {
        "n_reference": match.n_a,
        "n_other": match.n_b,
        "matched": len(match.pairs),
        "precision": nan(match.precision),
        "recall": nan(match.recall),
        "f1": nan(match.f1),
        "unmatched_reference": match.unmatched_a,
        "unmatched_other": match.unmatched_b,
        "unmatched_reference_by_size": size_histogram(match.unmatched_a, area_scale),
        "unmatched_other_by_size": size_histogram(match.unmatched_b, area_scale),
    }
