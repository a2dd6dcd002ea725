"""Where raters disagree: a per-cell map and exact disagreement regions sorted by area."""

from __future__ import annotations

import numpy as np
import shapely

from napari_wsi_ml.agreement import geometry as geo
from napari_wsi_ml.agreement.inputs import RaterInput
from napari_wsi_ml.agreement.kappa import category_counts, patterns


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


def disagreement_regions(data: RaterInput, *, min_area: float = 0.0) -> list[dict]:
    """Regions where raters disagree, largest first.

    For each class, the area some but not all raters gave it (union minus common area), split
    into connected polygons. Each region: ``class``, ``area_px2``, ``centroid`` ``(x, y)`` and
    ``bbox`` ``(minx, miny, maxx, maxy)`` in level-0 px, the raters who marked it
    (``raters_with``) and ``geometry`` (shapely polygon, not serialised).
    """
    regions: list[dict] = []
    for cls in data.classes:
        all_parts = [r.parts(cls) for r in data.raters]
        union_parts = geo.parts(geo.union(np.concatenate(all_parts)))
        common = geo.intersection_parts(all_parts)
        polys = np.asarray(
            [p for p in geo.subtract(union_parts, common) if p.area > min_area], dtype=object
        )
        if polys.size == 0:
            continue
        points = shapely.point_on_surface(polys)
        marked = []
        for rater in data.raters:
            region = rater.region(cls)
            shapely.prepare(region)
            marked.append(shapely.intersects(region, points))
        centroids = shapely.get_coordinates(shapely.centroid(polys))
        bounds = shapely.bounds(polys)
        for k, poly in enumerate(polys):
            regions.append(
                {
                    "class": cls,
                    "area_px2": float(poly.area),
                    "centroid": [float(v) for v in centroids[k]],
                    "bbox": [float(v) for v in bounds[k]],
                    "raters_with": [
                        r.rater for r, m in zip(data.raters, marked, strict=True) if m[k]
                    ],
                    "geometry": poly,
                }
            )
    regions.sort(key=lambda r: -r["area_px2"])
    return regions


def regions_json(regions: list[dict], limit: int | None = None) -> list[dict]:
    """Regions without their shapely geometry, for JSON."""
    chosen = regions if limit is None else regions[:limit]
    return [{k: v for k, v in r.items() if k != "geometry"} for r in chosen]


def regions_area(regions: list[dict]) -> float:
    """Total area of the regions (px²)."""
    return (
        float(shapely.area(np.asarray([r["geometry"] for r in regions])).sum()) if regions else 0.0
    )
