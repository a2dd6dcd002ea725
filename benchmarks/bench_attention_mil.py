"""Attention MIL on the synthetic many-small-lesions cohorts: held-out slide AUC over splits.

Make the cohorts first (36 slides, 24 with tumour, 14 of them under 10 % of the tissue; the
multi-class one has tumour_a / tumour_b):

    napari-wsi-ml sample-data cohorts/wsl36 --slides 36 --size 3000-6000 --seed 7 --raters 1

Run (CPU; extracts the patch features once into OUT/feature_cache, timed, then trains
configs/attention_mil_synthetic.yaml once per split seed; prints a Markdown table with the
test-slide AUC of every class and its DeLong 95 % interval, overall and for small lesions):

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_attention_mil.py [--seeds 0 1 2 3 4]
        [--cohort cohorts/wsl36/manifest.csv] [--out runs/bench_attention_mil]
        [--set data.stride=32 attention_mil.epochs=30 ...] [--table-only]
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from pathlib import Path
from typing import Any

import numpy as np
import shapely
import yaml

from napari_wsi_ml.evaluation import delong_auc
from napari_wsi_ml.jobs.config import load_job_config
from napari_wsi_ml.jobs.runner import run_job

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "configs" / "attention_mil_synthetic.yaml"


def config_for(seed: int, cohort: Path, out: Path, overrides: list[str]) -> dict[str, Any]:
    """The shipped config with the split seed, cohort, output, cache and ``overrides`` set."""
    config = yaml.safe_load(CONFIG.read_text())
    config["job"].update(name=f"amil-seed{seed}", seed=seed, output_dir=str(out), device="cpu")
    config["data"]["cohort"] = str(cohort)
    config["attention_mil"]["feature_cache"] = str(out / "feature_cache")
    for item in overrides:
        key, _, value = item.partition("=")
        section, _, name = key.partition(".")
        config[section][name] = yaml.safe_load(value)
    return config


def extract(config: dict[str, Any]) -> str:
    """Extract (or find) every slide's features; a line with the time it took."""
    from napari_wsi_ml.training.feature_cache import FeatureCache
    from napari_wsi_ml.training.feature_extraction import slide_features
    from napari_wsi_ml.training.mil_bags import feature_jobs
    from napari_wsi_ml.training.slide_data import load_slide_cohort

    loaded = load_job_config(config)
    opts = loaded.task
    cohort = load_slide_cohort(loaded.data, loaded.job.seed)
    cpu, started = _cpu_s(), time.perf_counter()
    found = slide_features(
        feature_jobs(cohort.items), opts.encoder(), FeatureCache(opts.feature_cache),
        scheduler=opts.scheduler, workers=opts.workers, batch_size=opts.extract_batch_size,
    )  # fmt: skip
    wall, cpu = time.perf_counter() - started, _cpu_s() - cpu
    patches = sum(len(f.xy) for f in found.values())
    cached = sum(f.from_cache for f in found.values())
    return (
        f"features: {len(found)} slides, {patches} patches, {cached} from the cache; "
        f"{wall:.0f} s wall, {cpu:.0f} s CPU in this process (workers: {opts.workers or 'cores'})"
    )


def attention_hits(run: Path) -> tuple[int, int]:
    """Test slides with a lesion whose most attended patch touches it, and how many there are."""
    from napari_wsi_ml.inference import Heatmap
    from napari_wsi_ml.training.slide_lesions import lesion_geometry

    data = json.loads((run / "data.json").read_text())
    hits = total = 0
    for entry in data["slides"]:
        if entry["part"] != "test" or not entry["lesion_fraction"] or not entry["annotations"]:
            continue
        lesion = lesion_geometry([Path(a) for a in entry["annotations"]])
        heatmap = Heatmap.load(run / "heatmaps" / f"{entry['slide']}.heatmap.npz")
        attention = np.nan_to_num(heatmap.channel("attention"), nan=-1.0)
        row, col = np.unravel_index(int(np.argmax(attention)), attention.shape)
        x0, y0 = heatmap.patch_origins_xy()[row, col]
        w, h = heatmap.patch_size
        total += 1
        hits += bool(lesion.intersects(shapely.box(x0, y0, x0 + w, y0 + h)))
    return hits, total


def _cpu_s() -> float:
    """CPU seconds (user + system) of this process so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _auc(interval: dict | None) -> str:
    if not interval:
        return "n/a"
    return f"{interval['auc']:.3f} [{interval['ci_low']:.2f}, {interval['ci_high']:.2f}]"


def table(runs: dict[int, Path]) -> str:
    """Markdown rows per split seed, then the test slides of all splits pooled."""
    first = json.loads((next(iter(runs.values())) / "metrics.json").read_text())
    classes = first["summary"]["test"]["classes"]
    lesions = [c for c in classes if c != "normal"]
    shown = classes if len(classes) > 2 else lesions  # binary: both columns would be equal
    lines = [
        "| split seed | epochs (best) | wall time | test slides | "
        + " | ".join(f"AUC {c} [95 % CI]" for c in shown)
        + " | "
        + " | ".join(f"{c} < 10 % vs rest" for c in lesions)
        + " | accuracy | top-attention patch on the lesion |",
        "|---" * (6 + len(shown) + len(lesions)) + "|",
    ]
    labels, probs = [], []
    for seed, folder in sorted(runs.items()):
        metrics = json.loads((folder / "metrics.json").read_text())
        summary = metrics["summary"]
        report = summary["test"]
        sizes = report["strata"]["lesion_size"]
        small = sizes.get("<10%", {}).get("auc_vs_all_negatives", {})
        hits, total = attention_hits(folder)
        lines.append(
            f"| {seed} | {len(metrics['history'])} ({summary['best_epoch']}) "
            f"| {summary['wall_s']:.0f} s | {report['n']} | "
            + " | ".join(_auc(report["auc"][c]) for c in shown)
            + " | "
            + " | ".join(_auc(small.get(c)) for c in lesions)
            + f" | {report['accuracy']:.3f} | {hits} / {total} |"
        )
        labels += [classes.index(s["label"]) for s in report["slides"]]
        probs += [s["probs"] for s in report["slides"]]
    pooled_labels, pooled = np.array(labels), np.array(probs)
    pooled_aucs = [
        delong_auc(pooled_labels == i, pooled[:, i]).to_dict() for i in range(len(classes))
    ]
    accuracy = float((pooled.argmax(1) == pooled_labels).mean())
    lines.append(
        f"| pooled ({len(runs)} splits) | | | {len(labels)} | "
        + " | ".join(_auc(pooled_aucs[classes.index(c)]) for c in shown)
        + " | "
        + " | ".join("" for _ in lesions)
        + f" | {accuracy:.3f} | |"
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--cohort", type=Path, default=REPO / "cohorts/wsl36/manifest.csv")
    parser.add_argument("--out", type=Path, default=REPO / "runs" / "bench_attention_mil")
    parser.add_argument("--set", nargs="*", default=[], help="SECTION.KEY=YAML overrides")
    parser.add_argument("--table-only", action="store_true", help="tabulate finished runs")
    args = parser.parse_args()
    out = args.out.resolve()
    runs = {}
    if not args.table_only:
        print(extract(config_for(args.seeds[0], args.cohort.resolve(), out, args.set)))
    for seed in args.seeds:
        folder = out / f"seed{seed}"
        if args.table_only:
            runs[seed] = max(folder.iterdir(), key=lambda p: p.stat().st_mtime)
            continue
        config = config_for(seed, args.cohort.resolve(), folder, args.set)
        config["attention_mil"]["feature_cache"] = str(out / "feature_cache")
        started, cpu = time.perf_counter(), _cpu_s()
        outcome = run_job(config)
        print(
            f"seed {seed}: {outcome.status} in {time.perf_counter() - started:.0f} s wall, "
            f"{_cpu_s() - cpu:.0f} s CPU"
        )
        runs[seed] = outcome.run_dir
    print(table(runs))


if __name__ == "__main__":
    main()
