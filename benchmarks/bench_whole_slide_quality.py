"""Whole-slide CNN quality, GMP vs GAP: trained runs scored on an independent synthetic cohort.

Train the runs first (configs/whole_slide_synthetic.yaml on cohorts/wsl36, once with
``pooling: gmp`` and once with ``pooling: gap``, per seed), make a second cohort the runs never
saw (40 slides, 27 with tumour, 14 of them under 10 % of the tissue):

    napari-wsi-ml sample-data cohorts/wsl_ext --slides 40 --size 3000-6000 --seed 21 --raters 1

then score every run on all of its slides (CPU, the runs' best checkpoints; prints Markdown
tables: per run, mean per pooling, and a paired DeLong test GMP vs GAP per seed). With
``--heatmaps`` the class activation maps are written too, and for every tumour slide the table
counts whether the cell of the CAM's tumour peak touches the truth lesion (its footprint
intersects the annotated tumour) and whether its centre lies inside it:

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_whole_slide_quality.py RUN_DIR ...
        [--cohort cohorts/wsl_ext/manifest.csv] [--checkpoint best] [--json report.json]
        [--heatmaps FOLDER] [--figure cam.png --figure-slides slide_014 slide_026 slide_037]

``--figure`` draws, for the first run, each named slide with its truth outline next to its CAM
(tumour channel) with the peak cell marked (docs/images/whole-slide-cam.png).
"""

from __future__ import annotations

import argparse
import json
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
from shapely.geometry import box

from napari_wsi_ml.data import read_cohort
from napari_wsi_ml.evaluation import delong_test
from napari_wsi_ml.inference import Heatmap
from napari_wsi_ml.jobs.run_dir import read_json
from napari_wsi_ml.training.heatmaps import heatmap_path
from napari_wsi_ml.training.slide_lesions import lesion_geometry
from napari_wsi_ml.training.whole_slide_eval import evaluate_whole_slide_run

REPO = Path(__file__).resolve().parents[1]
POSITIVE = "tumour"


def _auc(interval: dict | None) -> str:
    if not interval:
        return "n/a"
    return f"{interval['auc']:.3f} [{interval['ci_low']:.2f}, {interval['ci_high']:.2f}]"


def _versus_normals(report: dict, stratum: str) -> dict | None:
    found = report["strata"]["lesion_size"].get(stratum)
    return (found or {}).get("auc_vs_all_negatives", {}).get(POSITIVE)


def peak_on_lesion(heatmaps: Path, cohort: Path, report: dict) -> dict[str, list[int]]:
    """Per lesion-size stratum: [slides, peak cell touches the lesion, peak centre inside it]."""
    index = report["classes"].index(POSITIVE)
    sizes = {s["slide"]: s["lesion_size"] for s in report["slides"] if s["label"] == POSITIVE}
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    for row in read_cohort(cohort):
        if row.slide not in sizes:
            continue
        lesion = lesion_geometry(row.annotations)
        heatmap = Heatmap.load(heatmap_path(heatmaps, row.slide))
        values = heatmap.values[..., index]
        i, j = np.unravel_index(np.nanargmax(values), values.shape)
        x, y = heatmap.origin[0] + j * heatmap.stride[0], heatmap.origin[1] + i * heatmap.stride[1]
        cell = box(x, y, x + heatmap.patch_size[0], y + heatmap.patch_size[1])
        found = counts[sizes[row.slide]]
        found[0] += 1
        found[1] += int(cell.intersects(lesion))
        found[2] += int(lesion.contains(cell.centroid))
    return dict(counts)


def score(run_dir: Path, args: argparse.Namespace) -> dict[str, Any]:
    """One run: its own test-split summary and its report on the other cohort."""
    started = time.perf_counter()
    heatmaps = args.heatmaps / run_dir.name if args.heatmaps else None
    report = evaluate_whole_slide_run(
        run_dir, args.cohort, checkpoint=args.checkpoint, cache_dir=args.cache,
        heatmaps_dir=heatmaps,
    )  # fmt: skip
    peaks = peak_on_lesion(heatmaps, args.cohort, report) if heatmaps else {}
    metrics = read_json(run_dir / "metrics.json")
    config_seed = read_json(run_dir / "data.json")["split"]["seed"]
    return {
        "run": run_dir.name,
        "seed": config_seed,
        "pooling": report["run"]["pooling"],
        "epochs": len(metrics["history"]),
        "best_epoch": metrics["summary"].get("best_epoch"),
        "train_wall_s": metrics["summary"].get("wall_s"),
        "in_split": metrics["summary"]["slide"],
        "external": report,
        "cam_peak_on_lesion": peaks,
        "eval_wall_s": time.perf_counter() - started,
    }


def _peaks(counts: dict[str, list[int]]) -> str:
    parts = [counts.get(k) for k in ("<10%", "≥10%")]
    return "; ".join(f"{p[1]}/{p[2]} of {p[0]}" for p in parts if p) or "n/a"


def run_rows(results: list[dict]) -> str:
    """Per run: in-split test AUC, external AUC, balanced accuracy, AUC by lesion size."""
    lines = [
        "| pooling | seed | best epoch | in-split test AUC (slides) | external AUC [95 % CI] "
        "| external balanced accuracy | < 10 % lesions vs normals | ≥ 10 % vs normals "
        "| CAM peak touches / centre in lesion (< 10 %; ≥ 10 %) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in sorted(results, key=lambda r: (r["pooling"] != "gmp", r["seed"])):
        own, ext = r["in_split"], r["external"]
        lines.append(
            f"| {r['pooling'].upper()} | {r['seed']} | {r['best_epoch']} of {r['epochs']} "
            f"| {_auc(own['auc'][POSITIVE])} ({own['n']}) | {_auc(ext['auc'][POSITIVE])} "
            f"| {ext['balanced_accuracy']:.3f} | {_auc(_versus_normals(ext, '<10%'))} "
            f"| {_auc(_versus_normals(ext, '≥10%'))} | {_peaks(r['cam_peak_on_lesion'])} |"
        )
    return "\n".join(lines)


def pooled_rows(results: list[dict]) -> str:
    """Mean over seeds per pooling (in-split, external, small lesions)."""
    groups: dict[str, list[dict]] = defaultdict(list)
    for r in results:
        groups[r["pooling"]].append(r)
    lines = [
        "| pooling | runs | mean in-split test AUC | mean external AUC | min external AUC "
        "| mean < 10 % vs normals |",
        "|---|---|---|---|---|---|",
    ]
    for pooling in sorted(groups, key=lambda p: p != "gmp"):
        rows = groups[pooling]
        own = [r["in_split"]["auc"][POSITIVE]["auc"] for r in rows]
        ext = [r["external"]["auc"][POSITIVE]["auc"] for r in rows]
        small = [(_versus_normals(r["external"], "<10%") or {}).get("auc", np.nan) for r in rows]
        lines.append(
            f"| {pooling.upper()} | {len(rows)} | {np.mean(own):.3f} | {np.mean(ext):.3f} "
            f"| {np.min(ext):.3f} | {np.nanmean(small):.3f} |"
        )
    return "\n".join(lines)


def _scores(report: dict) -> tuple[np.ndarray, np.ndarray, list[str]]:
    index = report["classes"].index(POSITIVE)
    slides = report["slides"]
    labels = np.array([s["label"] == POSITIVE for s in slides])
    return labels, np.array([s["probs"][index] for s in slides]), [s["slide"] for s in slides]


def paired_rows(results: list[dict]) -> str:
    """Per seed with both poolings: DeLong test of GMP vs GAP on the same external slides."""
    by_seed: dict[int, dict[str, dict]] = defaultdict(dict)
    for r in results:
        by_seed[r["seed"]][r["pooling"]] = r["external"]
    lines = ["| seed | GMP AUC | GAP AUC | DeLong p (paired) |", "|---|---|---|---|"]
    for seed, pair in sorted(by_seed.items()):
        if set(pair) != {"gmp", "gap"}:
            continue
        labels, gmp, order = _scores(pair["gmp"])
        labels_b, gap, order_b = _scores(pair["gap"])
        assert order == order_b and (labels == labels_b).all(), "runs scored different slides"
        auc = (pair["gmp"]["auc"][POSITIVE]["auc"], pair["gap"]["auc"][POSITIVE]["auc"])
        lines.append(
            f"| {seed} | {auc[0]:.3f} | {auc[1]:.3f} | {delong_test(labels, gmp, gap):.3f} |"
        )
    return "\n".join(lines)


def draw_cams(heatmaps: Path, cohort: Path, slides: list[str], out: Path) -> None:
    """Per slide: thumbnail + truth outline | CAM tumour probability + peak cell centre."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from napari_wsi_ml.slide import open_slide

    table = read_cohort(cohort)
    figure = Figure(figsize=(9, 4.2 * len(slides)), dpi=80)
    FigureCanvasAgg(figure)
    for n, name in enumerate(slides):
        row = table[name]
        slide = open_slide(row.path)
        width, height = slide.level_dimensions[0]
        lesion = lesion_geometry(row.annotations)
        heatmap = Heatmap.load(heatmap_path(heatmaps, name))
        values = heatmap.values[..., 1]
        i, j = np.unravel_index(np.nanargmax(values), values.shape)
        (x0, y0), (sx, sy) = heatmap.origin, heatmap.stride
        extent = (x0, x0 + values.shape[1] * sx, y0 + values.shape[0] * sy, y0)
        for k in range(2):
            axes = figure.add_subplot(len(slides), 2, 2 * n + k + 1)
            axes.imshow(slide.thumbnail(1024), extent=(0, width, height, 0))
            if k == 1:
                image = axes.imshow(values, extent=extent, cmap="magma", vmin=0, vmax=1, alpha=0.55)
                figure.colorbar(image, ax=axes, fraction=0.03)
                axes.plot([x0 + (j + 0.5) * sx], [y0 + (i + 0.5) * sy], "c+", ms=14, mew=2)
            for part in getattr(lesion, "geoms", [lesion]):
                axes.plot(*part.exterior.xy, color="lime", lw=1.2)
            axes.set_xlim(0, width)
            axes.set_ylim(height, 0)
            fraction = row.extra.get("tumour_fraction", "?")
            peak = f"CAM p(tumour), peak {values[i, j]:.3f} (+)"
            axes.set_title(f"{name}: tumour fraction {fraction}" if k == 0 else peak, fontsize=9)
    figure.tight_layout()
    figure.savefig(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("runs", type=Path, nargs="+", help="whole_slide_cnn run directories")
    parser.add_argument("--cohort", type=Path, default=REPO / "cohorts/wsl_ext/manifest.csv")
    parser.add_argument("--checkpoint", default="best", choices=("best", "last"))
    parser.add_argument("--cache", type=Path, default=None, help="downscaled-slide cache")
    parser.add_argument("--heatmaps", type=Path, default=None, help="write CAMs per run here")
    parser.add_argument("--json", type=Path, default=None, help="write all reports here")
    parser.add_argument("--figure", type=Path, default=None, help="CAM figure (needs --heatmaps)")
    parser.add_argument("--figure-slides", nargs="+", default=["slide_014", "slide_026"])
    args = parser.parse_args()
    results = []
    for run_dir in args.runs:
        results.append(score(run_dir.resolve(), args))
        r = results[-1]
        print(f"{r['run']}: external AUC {r['external']['auc'][POSITIVE]['auc']:.3f} "
              f"({r['eval_wall_s']:.0f} s)", flush=True)  # fmt: skip
    print(f"\nCohort: {args.cohort} ({results[0]['external']['n']} slides), "
          f"checkpoint: {args.checkpoint}\n")  # fmt: skip
    print(run_rows(results), pooled_rows(results), paired_rows(results), sep="\n\n")
    if args.figure and args.heatmaps:
        draw_cams(args.heatmaps / args.runs[0].resolve().name, args.cohort, args.figure_slides,
                  args.figure)  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, default=float))


if __name__ == "__main__":
    main()
