"""Where raters disagree: a per-cell map and exact disagreement regions sorted by area."""

from __future__ import annotations

from functools import reduce

import numpy as np
import shapely

from napari_wsi_ml.agreement import geometry as geo
from napari_wsi_ml.agreement.inputs import RaterInput
from napari_wsi_ml.agreement.kappa import category_counts, patterns
from napari_wsi_ml.errors import AgreementInputError


def disagreement_map(labels: np.ndarray, n_categories: int, *, kind: str = "dissent") -> np.ndarray:
    """Per-cell disagreement of ``labels`` ``(R, rows, cols)`` (-1 = not rated).

    Args:
        labels: Each rater's category per cell.
        n_categories: Number of categories.
        kind: ``"dissent"``: raters not giving the most frequent label; ``"entropy"``: Shannon
            entropy (bits) of the labels in the cell.

    Returns:
        ``(rows, cols)`` float, NaN where fewer than one rater rated the cell.
    """
    n, rows, cols = labels.shape
    flat = labels.reshape(n, -1).T
    pats, _ = patterns(flat, n_categories)
    counts = category_counts(pats, n_categories)
    m = counts.sum(1)
    if kind == "dissent":
        per_pattern = m - counts.max(1)
    elif kind == "entropy":
        with np.errstate(invalid="ignore", divide="ignore"):
            share = counts / m[:, None]
            per_pattern = -np.nansum(np.where(share > 0, share * np.log2(share), 0), axis=1)
    else:
        raise ValueError(f"kind must be 'dissent' or 'entropy', got {kind!r}")
    per_pattern = np.where(m > 0, per_pattern, np.nan)
    base = n_categories + 1
    powers = base ** np.arange(n, dtype=np.int64)
    index = np.searchsorted((pats + 1) @ powers, (flat + 1) @ powers)
    return per_pattern[index].reshape(rows, cols)


def disagreement_regions(
    data: RaterInput, *, min_area: float = 0.0, opening: float = 0.0
) -> list[dict]:
    """Regions where raters disagree, largest first.

    For each class, the area some but not all raters gave it (union minus common area), split
    into connected polygons. Slivers from boundary jitter are removed by a morphological
    opening (erosion then dilation by ``opening`` px, mitre joins, clipped to the region), which
    drops every part narrower than ``2 × opening``; then regions under ``min_area`` px² are
    dropped.

    Args:
        data: Prepared raters.
        min_area: Smallest region kept (level-0 px²); 0 keeps all.
        opening: Opening radius in level-0 px; 0 for none.

    Returns:
        Dicts with ``class``, ``area_px2``, ``centroid`` ``(x, y)`` and ``bbox``
        ``(minx, miny, maxx, maxy)`` in level-0 px, the raters who marked the region
        (``raters_with``) and ``geometry`` (shapely polygon, not serialised).
    """
    if min_area < 0 or opening < 0:
        raise AgreementInputError(
            f"the minimum region area and the opening must be >= 0, got {min_area}, {opening}"
        )
    regions: list[dict] = []
    for cls in data.classes:
        polys = open_regions(class_disagreement(data, cls, min_area), min_area, opening)
        if polys.size:
            regions.extend(_describe(data, cls, polys))
    regions.sort(key=lambda r: -r["area_px2"])
    return regions


def class_disagreement(data: RaterInput, cls: str, min_area: float = 0.0) -> np.ndarray:
    """Polygons of the area some but not all raters gave ``cls``.

    The raters' parts are grouped into clusters of touching parts, and each cluster is
    resolved with one vectorised overlay (symmetric difference for two raters, union minus
    intersection for more). Clusters whose disagreement area cannot reach ``min_area`` (an
    upper bound from cached areas) are skipped without any overlay.
    """
    per = [r.parts(cls) for r in data.raters]
    sizes = np.array([p.size for p in per])
    if sizes.sum() == 0:
        return np.empty(0, dtype=object)
    every = np.concatenate(per)
    comp = geo.clusters(every)
    n_clusters = int(comp.max()) + 1
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    keep = np.ones(n_clusters, bool)
    if min_area > 0:
        keep = _area_bound(data, cls, comp, offsets, n_clusters) >= min_area
    if not keep.any():
        return np.empty(0, dtype=object)
    wanted = np.flatnonzero(keep)
    merged = []
    for k in range(len(per)):
        local = comp[offsets[k] : offsets[k + 1]]
        chosen = keep[local]
        out = np.full(wanted.size, geo.EMPTY, dtype=object)
        if chosen.any():
            slot = np.searchsorted(wanted, local[chosen])
            present = np.unique(slot)
            order = np.argsort(slot, kind="stable")
            grouped = np.searchsorted(present, slot[order])
            out[present] = shapely.multipolygons(per[k][chosen][order], indices=grouped)
        merged.append(out)
    if len(merged) == 2:
        diff = shapely.symmetric_difference(merged[0], merged[1])
    else:
        union = reduce(shapely.union, merged)
        common = reduce(shapely.intersection, merged)
        diff = shapely.difference(union, common)
    return geo.polygon_parts(diff)


def _area_bound(
    data: RaterInput, cls: str, comp: np.ndarray, offsets: np.ndarray, n_clusters: int
) -> np.ndarray:
    """Per cluster, an upper bound of the disagreement area (exact for two raters).

    |union| <= Σ|A_i| − Σ|A_(i-1) ∩ A_i| (a chain of pairwise overlaps), minus |common|.
    """
    n = len(data.raters)
    bound = np.bincount(
        comp,
        weights=shapely.area(np.concatenate([r.parts(cls) for r in data.raters])),
        minlength=n_clusters,
    )
    for i in range(1, n):
        ia, _, pieces = data.pair_pieces(i - 1, i, cls)
        overlap = np.bincount(
            comp[offsets[i - 1] + ia], weights=shapely.area(pieces), minlength=n_clusters
        )
        bound -= overlap * (2 if n == 2 else 1)
    if n > 2:
        common = data.common_parts(list(range(n)), cls)
        if common.size:
            first = data.raters[0].parts(cls)
            point, part = shapely.STRtree(first).query(
                shapely.point_on_surface(common), predicate="intersects"
            )
            seen = np.unique(point, return_index=True)[1]
            bound -= np.bincount(
                comp[part[seen]], weights=shapely.area(common[point[seen]]), minlength=n_clusters
            )
    return bound + 1e-6 * np.abs(bound).max(initial=1.0)  # rounding must not drop a region


def open_regions(polys: np.ndarray, min_area: float, opening: float) -> np.ndarray:
    """Drop regions under ``min_area`` px², then open by ``opening`` px and drop again."""
    polys = polys[shapely.area(polys) >= min_area] if polys.size else polys
    if opening > 0 and polys.size:
        eroded = shapely.buffer(polys, -opening, join_style="mitre")
        opened = shapely.buffer(eroded, opening, join_style="mitre")
        polys = geo.polygon_parts(shapely.intersection(opened, polys))
        polys = polys[shapely.area(polys) >= min_area] if polys.size else polys
    return polys


def _describe(data: RaterInput, cls: str, polys: np.ndarray) -> list[dict]:
    points = shapely.point_on_surface(polys)
    marked = []
    for rater in data.raters:
        region = rater.region(cls)
        shapely.prepare(region)
        marked.append(shapely.intersects(region, points))
    centroids = shapely.get_coordinates(shapely.centroid(polys))
    bounds = shapely.bounds(polys)
    areas = shapely.area(polys)
    return [
        {
            "class": cls,
            "area_px2": float(areas[k]),
            "centroid": [float(v) for v in centroids[k]],
            "bbox": [float(v) for v in bounds[k]],
            "raters_with": [r.rater for r, m in zip(data.raters, marked, strict=True) if m[k]],
            "geometry": poly,
        }
        for k, poly in enumerate(polys)
    ]


def regions_json(regions: list[dict], limit: int | None = None) -> list[dict]:
    """Regions without their shapely geometry, for JSON."""
    chosen = regions if limit is None else regions[:limit]
    return [{k: v for k, v in r.items() if k != "geometry"} for r in chosen]


def regions_area(regions: list[dict]) -> float:
    """Total area of the regions (px²)."""
    return (
        float(shapely.area(np.asarray([r["geometry"] for r in regions])).sum()) if regions else 0.0
    )
