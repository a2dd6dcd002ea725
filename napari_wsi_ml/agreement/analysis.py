"""One slide, several raters: every agreement measure in one call."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from shapely.geometry.base import BaseGeometry

from napari_wsi_ml.agreement import consensus as cons
from napari_wsi_ml.agreement import kappa
from napari_wsi_ml.agreement.bootstrap import resample_counts
from napari_wsi_ml.agreement.disagreement import (
    disagreement_map,
    disagreement_regions,
    regions_area,
)
from napari_wsi_ml.agreement.grid import Grid, GridData, make_grid, rate_cells
from napari_wsi_ml.agreement.inputs import RaterInput, prepare_raters
from napari_wsi_ml.agreement.lesions import lesion_summary, match_lesions
from napari_wsi_ml.agreement.overlap import overlap_table
from napari_wsi_ml.agreement.report import AgreementReport
from napari_wsi_ml.agreement.staple import staple
from napari_wsi_ml.agreement.stats import (
    categorical_metrics,
    matrix_json,
    overlap_entry,
    pair_key,
    ratio_replicates,
)
from napari_wsi_ml.annotations.model import AnnotationSet
from napari_wsi_ml.errors import AgreementInputError

OPENING_FRACTION = 16


@dataclass
class Options:
    """Analysis settings.

    Attributes:
        grid: Cell size; ``grid_units`` ``"px"`` (level-0) or ``"um"``.
        weighting: Cohen's κ weighting for ordinal classes (``None``, linear, quadratic).
        iou_threshold: Lesion match threshold.
        k: Majority-vote threshold (default strict majority).
        n_boot: Bootstrap replicates; ``seed`` seeds them.
        grid_method: ``auto``, ``exact`` or ``raster`` (see :mod:`grid`).
        min_region_area: Disagreement regions smaller than this (grid units², i.e. px² or
            µm²) are dropped; ``None``: one grid cell's area.
        region_opening: Opening radius (grid units) that removes disagreement slivers
            narrower than twice it (boundary jitter); ``None``: 1/16 of the grid cell.
    """

    grid: float = 256.0
    grid_units: str = "px"
    weighting: str | None = None
    iou_threshold: float = 0.5
    k: int | None = None
    n_boot: int = 1000
    seed: int = 0
    grid_method: str = "auto"
    min_region_area: float | None = None
    region_opening: float | None = None


def region_filter_px(options: Options, grid: Grid, mpp) -> tuple[float, float]:
    """``(min area px², opening px)`` of the disagreement regions, from the options' units."""
    cell_area, cell_side = grid.cell_w * grid.cell_h, min(grid.cell_w, grid.cell_h)
    area_per_unit, length_per_unit = 1.0, 1.0
    if options.grid_units == "um":  # make_grid already refused µm without an mpp
        area_per_unit = 1.0 / (mpp[0] * mpp[1])
        length_per_unit = 1.0 / float(np.sqrt(mpp[0] * mpp[1]))
    min_area = (
        cell_area if options.min_region_area is None else options.min_region_area * area_per_unit
    )
    opening = (
        cell_side / OPENING_FRACTION
        if options.region_opening is None
        else options.region_opening * length_per_unit
    )
    if min_area < 0 or opening < 0:
        raise AgreementInputError(
            "the minimum disagreement-region area and the opening must be >= 0"
        )
    return min_area, opening


def build_grid(data: RaterInput, options: Options, mpp, extent) -> Grid:
    """The grid over the slide extent, or over the annotations when the slide is unknown."""
    bounds = None
    if extent is None:
        geoms = [g for r in data.raters for g in r.regions.values() if not g.is_empty]
        if data.region is not None and not data.region.is_empty:
            geoms.append(data.region)
        if not geoms:
            raise AgreementInputError("no rater has any region inside the region of interest")
        b = np.array([g.bounds for g in geoms])
        bounds = (b[:, 0].min(), b[:, 1].min(), b[:, 2].max(), b[:, 3].max())
    return make_grid(options.grid, units=options.grid_units, mpp=mpp, extent=extent, bounds=bounds)


def region_metrics(
    data: RaterInput, grid: GridData, rng: np.random.Generator, n_boot: int
) -> dict[str, dict]:
    """Exact Dice/IoU per pair, per class and overall, with cell-bootstrap intervals."""
    table = overlap_table(data)
    names, n = data.names, len(data.raters)
    out: dict[str, dict] = {"overall": {}, **{c: {} for c in data.classes}}
    valid = grid.valid
    for scope in out:
        dice_m, iou_m = np.eye(n), np.eye(n)
        dice_p, iou_p = {}, {}
        sel = slice(None) if scope == "overall" else [data.classes.index(scope)]
        for i in range(n):
            for j in range(i + 1, n):
                exact = (
                    table["intersection"][i, j, sel].sum(),
                    table["area"][i, sel].sum(),
                    table["area"][j, sel].sum(),
                )
                cells = np.stack(
                    [
                        grid.pair_intersection[i, j][sel].sum(0)[valid],
                        grid.coverage[i][sel].sum(0)[valid],
                        grid.coverage[j][sel].sum(0)[valid],
                    ],
                    axis=1,
                )
                approx, d_reps, i_reps = ratio_replicates(cells, n_boot, rng)
                d, u = overlap_entry(exact, approx, d_reps, i_reps)
                key = pair_key(names[i], names[j])
                dice_p[key], iou_p[key] = d, u
                dice_m[i, j] = dice_m[j, i] = np.nan if d["value"] is None else d["value"]
                iou_m[i, j] = iou_m[j, i] = np.nan if u["value"] is None else u["value"]
        out[scope] = {
            "dice": {"raters": names, "matrix": matrix_json(dice_m), "pairs": dice_p},
            "iou": {"raters": names, "matrix": matrix_json(iou_m), "pairs": iou_p},
        }
    out["_areas"] = {
        "area_px2": table["area"].tolist(),
        "intersection_px2": table["intersection"].tolist(),
    }
    return out


def lesion_metrics(data: RaterInput, threshold: float, area_scale: float) -> dict[str, dict]:
    """Per class, per rater pair (first = reference): matched objects and F1."""
    out: dict[str, dict] = {}
    for cls in data.classes:
        out[cls] = {}
        for i, a in enumerate(data.raters):
            for j in range(i + 1, len(data.raters)):
                b = data.raters[j]
                pieces = data.pair_pieces(i, j, cls)
                match = match_lesions(a.parts(cls), b.parts(cls), threshold, pieces)
                out[cls][pair_key(a.rater, b.rater)] = lesion_summary(match, area_scale=area_scale)
    return out


def analyse(
    data: RaterInput,
    options: Options | None = None,
    *,
    mpp: tuple[float, float] | None = None,
    extent: tuple[int, int] | None = None,
) -> AgreementReport:
    """All agreement measures for prepared raters on one slide.

    Args:
        data: From :func:`prepare_raters`.
        options: Settings.
        mpp: Slide µm per level-0 pixel ``(x, y)``, if known.
        extent: Slide level-0 size ``(width, height)``, if known.
    """
    options = options or Options()
    rng = np.random.default_rng(options.seed)
    grid = rate_cells(data, build_grid(data, options, mpp, extent), method=options.grid_method)
    min_area, opening = region_filter_px(options, grid.grid, mpp)
    regions_found = disagreement_regions(data, min_area=min_area, opening=opening)
    ratings = grid.ratings()
    if ratings.shape[0] == 0:
        raise AgreementInputError("no grid cell lies inside the region of interest")
    n_cat = len(grid.categories)
    pats, counts = kappa.patterns(ratings, n_cat)
    reps = resample_counts(counts, options.n_boot, rng)
    metrics = categorical_metrics(
        pats, counts, reps, grid.categories, data.names, weighting=options.weighting
    )
    regions = region_metrics(data, grid, rng, options.n_boot)
    areas = regions.pop("_areas")
    metrics["overall"].update(regions["overall"])
    for cls in data.classes:
        metrics["per_class"][cls].update(regions[cls])
    area_scale = mpp[0] * mpp[1] if mpp else 1.0
    majority = cons.majority_vote(data, options.k)
    staple_out, staple_maps = {}, {}
    for c, cls in enumerate(grid.categories[1:], start=1):
        decisions = np.where(grid.labels < 0, -1, (grid.labels == c).astype(np.int64))
        result = staple(decisions.reshape(len(data.raters), -1).T)
        staple_maps[cls] = np.where(
            grid.valid, result.probability.reshape(grid.valid.shape), np.nan
        )
        staple_out[cls] = {
            "sensitivity": dict(zip(data.names, map(float, result.sensitivity), strict=True)),
            "specificity": dict(zip(data.names, map(float, result.specificity), strict=True)),
            "prevalence": result.prior,
            "converged": result.converged,
        }
    return AgreementReport(
        slide=data.slide,
        raters=data.names,
        classes=data.classes,
        metrics=metrics,
        grid={
            **grid.grid.to_json(),
            "method": grid.method,
            "rated_cells": int(ratings.shape[0]),
            "units": options.grid_units,
            "size": options.grid,
            "mpp": list(mpp) if mpp else None,
        },
        areas=areas,
        lesions=lesion_metrics(data, options.iou_threshold, area_scale),
        consensus={
            "majority_k": options.k or cons.default_k(len(data.raters)),
            "majority_area_px2": cons.total_area(majority),
            "staple": staple_out,
        },
        disagreement_regions=regions_found,
        disagreement={
            "min_area_px2": min_area,
            "opening_px": opening,
            "count": len(regions_found),
            "area_px2": regions_area(regions_found),
        },
        notes=list(data.notes),
        warnings=list(data.warnings),
        consensus_regions=majority,
        disagreement_map=disagreement_map(grid.labels, n_cat),
        staple_maps=staple_maps,
        grid_data=grid,
    )


def compute_agreement(
    sets: Sequence[AnnotationSet],
    *,
    mapping: Mapping[str, str] | None = None,
    region: BaseGeometry | None = None,
    slide: str | None = None,
    sources: Sequence[str | None] | None = None,
    allow_empty: bool = False,
    options: Options | None = None,
    mpp: tuple[float, float] | None = None,
    extent: tuple[int, int] | None = None,
) -> AgreementReport:
    """Validate raters' annotation sets of one slide and compute every agreement measure.

    See :func:`prepare_raters` for the input rules and :func:`analyse` for the rest.
    """
    data = prepare_raters(
        sets, mapping=mapping, region=region, slide=slide, sources=sources, allow_empty=allow_empty
    )
    return analyse(data, options, mpp=mpp, extent=extent)
