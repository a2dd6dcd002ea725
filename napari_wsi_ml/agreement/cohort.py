"""Cohort mode: agreement per slide and pooled over slides (bootstrap over slides).

The cohort CSV has the columns ``slide`` (slide file), ``rater`` and ``annotation`` (file);
relative paths are resolved against the CSV's folder. A rater absent from a slide counts as
missing there: Krippendorff's α uses the other ratings, Cohen's κ the slides both rated,
Fleiss' κ only cells rated by everyone.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path

import numpy as np

from napari_wsi_ml.agreement.bootstrap import estimate, resample_groups
from napari_wsi_ml.agreement.overlap import dice_iou
from napari_wsi_ml.agreement.report import AgreementReport
from napari_wsi_ml.agreement.stats import categorical_metrics, matrix_json, pair_key
from napari_wsi_ml.errors import AgreementInputError

COLUMNS = ("slide", "rater", "annotation")


def read_cohort_csv(path: str | Path) -> dict[str, list[tuple[str, Path]]]:
    """``{slide path: [(rater, annotation path), ...]}`` from a cohort CSV."""
    path = Path(path)
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            rows = list(csv.DictReader(handle))
    except OSError as error:
        raise AgreementInputError(f"{path}: cannot read the cohort CSV ({error})") from error
    if not rows or any(c not in rows[0] for c in COLUMNS):
        raise AgreementInputError(
            f"{path}: a cohort CSV needs a header with columns {', '.join(COLUMNS)}"
        )
    cohort: dict[str, list[tuple[str, Path]]] = {}
    for line, row in enumerate(rows, start=2):
        if not all((row.get(c) or "").strip() for c in COLUMNS):
            raise AgreementInputError(
                f"{path}, line {line}: slide, rater and annotation are required"
            )
        slide = str(path.parent / row["slide"].strip())
        annotation = path.parent / row["annotation"].strip()
        cohort.setdefault(slide, []).append((row["rater"].strip(), annotation))
    return cohort


def pool_reports(
    reports: dict[str, AgreementReport],
    *,
    n_boot: int = 1000,
    seed: int = 0,
    weighting: str | None = None,
) -> AgreementReport:
    """Pooled metrics over slides; intervals resample whole slides."""
    if not reports:
        raise AgreementInputError("the cohort has no slide to analyse")
    rng = np.random.default_rng(seed)
    raters = list(dict.fromkeys(r for rep in reports.values() for r in rep.raters))
    classes = sorted({c for rep in reports.values() for c in rep.classes})
    categories = ["background", *classes]
    n_cat, n = len(categories), len(raters)
    codes_per_slide = []
    powers = (n_cat + 1) ** np.arange(n, dtype=np.int64)
    for rep in reports.values():
        local = rep.grid_data.ratings()
        lut = np.array([categories.index(c) for c in rep.grid_data.categories])
        ratings = np.full((local.shape[0], n), -1, np.int64)
        for col, name in enumerate(rep.raters):
            ratings[:, raters.index(name)] = np.where(local[:, col] < 0, -1, lut[local[:, col]])
        codes_per_slide.append((ratings + 1) @ powers)
    uniq = np.unique(np.concatenate(codes_per_slide))
    per_slide = np.stack(
        [np.bincount(np.searchsorted(uniq, c), minlength=uniq.size) for c in codes_per_slide]
    ).astype(float)
    pats = (uniq[:, None] // powers[None, :]) % (n_cat + 1) - 1
    metrics = categorical_metrics(
        pats,
        per_slide.sum(0),
        resample_groups(per_slide, n_boot, rng),
        categories,
        raters,
        weighting=weighting,
    )
    _pooled_overlap(metrics, reports, raters, classes, n_boot, rng)
    first = next(iter(reports.values()))
    return AgreementReport(
        slide=None,
        raters=raters,
        classes=classes,
        metrics=metrics,
        grid={k: first.grid.get(k) for k in ("units", "size")} | {"slides": len(reports)},
        areas={},
        lesions={},
        consensus={},
        disagreement_regions=[],
        notes=[f"{s}: {note}" for s, rep in reports.items() for note in rep.notes],
        warnings=[f"{s}: {text}" for s, rep in reports.items() for text in rep.warnings],
        per_slide={s: rep.to_dict() for s, rep in reports.items()},
    )


def _pooled_overlap(metrics, reports, raters, classes, n_boot, rng) -> None:
    """Pooled Dice/IoU: summed exact areas over slides, slides resampled for intervals."""
    n, k, g = len(raters), len(classes), len(reports)
    values = np.zeros((g, n, n, k, 3))  # intersection, area_i, area_j
    for s, rep in enumerate(reports.values()):
        idx = [raters.index(r) for r in rep.raters]
        area = np.asarray(rep.areas["area_px2"])
        inter = np.asarray(rep.areas["intersection_px2"])
        for a, ga in enumerate(idx):
            for b, gb in enumerate(idx):
                for c, cls in enumerate(rep.classes):
                    values[s, ga, gb, classes.index(cls)] = (inter[a, b, c], area[a, c], area[b, c])
    flat = values.reshape(g, -1)
    reps = resample_groups(flat, n_boot, rng).reshape(n_boot, n, n, k, 3)
    total = flat.sum(0).reshape(n, n, k, 3)
    scopes: list[tuple[str, Callable]] = [("overall", lambda v: v.sum(-2))]
    scopes += [(cls, lambda v, c=c: v[..., c, :]) for c, cls in enumerate(classes)]
    for scope, pick in scopes:
        t, r = pick(total), pick(reps)
        block = metrics["overall"] if scope == "overall" else metrics["per_class"][scope]
        for m, which in (("dice", 0), ("iou", 1)):
            matrix = np.eye(n)
            pairs = {}
            for i in range(n):
                for j in range(i + 1, n):
                    value = dice_iou(t[i, j, 1], t[i, j, 2], t[i, j, 0])[which]
                    boot = dice_iou(r[:, i, j, 1], r[:, i, j, 2], r[:, i, j, 0])[which]
                    matrix[i, j] = matrix[j, i] = value
                    pairs[pair_key(raters[i], raters[j])] = estimate(value, boot)
            block[m] = {"raters": raters, "matrix": matrix_json(matrix), "pairs": pairs}
