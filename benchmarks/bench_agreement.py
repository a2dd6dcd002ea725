"""Agreement speed on a synthetic 100k x 100k slide with two raters x 10k polygons.

Run: .venv/bin/python benchmarks/bench_agreement.py   (prints a Markdown table)
"""

from __future__ import annotations

import time

import numpy as np

from napari_wsi_ml.agreement import kappa
from napari_wsi_ml.agreement.analysis import lesion_metrics
from napari_wsi_ml.agreement.bootstrap import resample_counts
from napari_wsi_ml.agreement.consensus import majority_vote
from napari_wsi_ml.agreement.disagreement import disagreement_regions
from napari_wsi_ml.agreement.grid import make_grid, rate_cells
from napari_wsi_ml.agreement.inputs import prepare_raters
from napari_wsi_ml.agreement.overlap import overlap_table
from napari_wsi_ml.agreement.stats import categorical_metrics
from napari_wsi_ml.annotations.model import Annotation, AnnotationSet

SIDE = 100_000
N_POLYGONS = 10_000
CELL = 256


def blob(rng, cx, cy, r, n=24):
    """An irregular star-shaped polygon."""
    angles = np.sort(rng.uniform(0, 2 * np.pi, n))
    radii = r * rng.uniform(0.7, 1.0, n)
    return np.c_[cx + radii * np.cos(angles), cy + radii * np.sin(angles)]


def raters(seed: int = 0) -> list[AnnotationSet]:
    """Rater A: 10k blobs in 2 classes; rater B: A jittered, 5 % dropped, 5 % added."""
    rng = np.random.default_rng(seed)
    centres = rng.uniform(1000, SIDE - 1000, (N_POLYGONS, 2))
    radii = rng.uniform(80, 400, N_POLYGONS)
    classes = np.where(rng.random(N_POLYGONS) < 0.7, "tumor", "stroma")
    a, b = AnnotationSet(rater="A"), AnnotationSet(rater="B")
    for k in range(N_POLYGONS):
        (cx, cy), r, cls = centres[k], radii[k], str(classes[k])
        a.annotations.append(Annotation(f"a{k}", "Polygon", blob(rng, cx, cy, r), group=cls))
        if rng.random() < 0.05:
            cx, cy = rng.uniform(1000, SIDE - 1000, 2)
        dx, dy = rng.normal(0, 0.15 * r, 2)
        b.annotations.append(
            Annotation(
                f"b{k}",
                "Polygon",
                blob(rng, cx + dx, cy + dy, r * rng.uniform(0.85, 1.15)),
                group=cls,
            )
        )
    return [a, b]


def timed(label, fn, rows):
    t = time.perf_counter()
    out = fn()
    rows.append((label, time.perf_counter() - t))
    return out


def main() -> None:
    sets = raters()
    rows: list[tuple[str, float]] = []
    data = timed("prepare (make_valid, union per class)", lambda: prepare_raters(sets), rows)
    timed("Dice / IoU, exact, all pairs and classes", lambda: overlap_table(data), rows)
    lesions = timed("lesion matching (IoU >= 0.5)", lambda: lesion_metrics(data, 0.5, 1.0), rows)
    regions = timed(
        f"disagreement regions ≥ one {CELL}-px cell, opening {CELL // 16} px (default)",
        lambda: disagreement_regions(data, min_area=CELL * CELL, opening=CELL / 16),
        rows,
    )
    timed("majority-vote consensus (k = 2)", lambda: majority_vote(data), rows)
    metrics_total = sum(t for _, t in rows[:3])
    review_total = sum(t for _, t in rows)
    rows.append(("**region + lesion metrics (prepare, Dice/IoU, lesions)**", metrics_total))
    rows.append(("all of the above incl. disagreement regions + consensus", review_total))
    every = timed(
        "disagreement regions, unfiltered (every sliver)",
        lambda: disagreement_regions(data),
        rows,
    )

    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, (1_000_000, 2))
    labels[rng.random(1_000_000) < 0.7, 1] = labels[rng.random(1_000_000) < 0.7, 0][:1]

    def grid_kappa():
        pats, counts = kappa.patterns(labels, 3)
        reps = resample_counts(counts, 1000, rng)
        return categorical_metrics(pats, counts, reps, ["bg", "a", "b"], ["A", "B"])

    timed("**grid κ/α/Fleiss/% + 1000 bootstrap, 1M cells**", grid_kappa, rows)
    grid = make_grid(100, extent=(SIDE, SIDE))
    timed(f"rasterise 2 raters onto {grid.n_cells:,} cells", lambda: rate_cells(data, grid), rows)
    grid = make_grid(CELL, extent=(SIDE, SIDE))
    timed(f"rasterise 2 raters onto {grid.n_cells:,} cells", lambda: rate_cells(data, grid), rows)

    tumor = lesions["tumor"]["A vs B"]
    print(
        f"{N_POLYGONS} polygons per rater, slide {SIDE}x{SIDE}; tumor lesions matched "
        f"{tumor['matched']}/{tumor['n_reference']}; disagreement regions: {len(regions)} kept "
        f"of {len(every)} (slivers and regions under one grid cell dropped)\n"
    )
    print("| step | seconds |\n|---|---:|")
    for label, seconds in rows:
        print(f"| {label} | {seconds:.2f} |")


if __name__ == "__main__":
    main()
