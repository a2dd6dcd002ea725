"""Top-k MIL on the synthetic many-small-lesions cohort: held-out slide AUC for k = 1, 3, 5.

Make the cohort first (36 slides, 24 with tumour, 14 of them under 10 % of the tissue):

    napari-wsi-ml sample-data cohorts/wsl36 --slides 36 --size 3000-6000 --seed 7 --raters 1

Run (CPU; every run trains configs/topk_mil_synthetic.yaml with another k; prints a Markdown
table with the test-slide AUC and its DeLong 95 % interval, overall and for small lesions):

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_topk_mil.py [--k 1 3 5]
        [--cohort cohorts/wsl36/manifest.csv] [--out runs/bench_topk_mil] [--table-only]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import yaml

from napari_wsi_ml.jobs.runner import run_job

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "configs" / "topk_mil_synthetic.yaml"
STEP_EXAMPLES = 24
"""k × passes: selected patches trained per slide and epoch, the same for every k."""


def config_for(k: int, cohort: Path, out: Path) -> dict:
    """The shipped config with ``k`` (and ``passes = 24 / k``), cohort and output replaced."""
    config = yaml.safe_load(CONFIG.read_text())
    config["job"].update(name=f"topk-k{k}", output_dir=str(out), device="cpu")
    config["data"]["cohort"] = str(cohort)
    config["topk_mil"].update(k=k, passes=max(1, round(STEP_EXAMPLES / k)))
    return config


def run(k: int, cohort: Path, out: Path) -> Path:
    """Train one k; returns the run folder (its metrics.json summary records wall_s)."""
    started = time.perf_counter()
    outcome = run_job(config_for(k, cohort, out / f"k{k}"))
    print(f"k={k}: {outcome.status} in {time.perf_counter() - started:.0f} s: {outcome.run_dir}")
    return outcome.run_dir


def _auc(interval: dict | None) -> str:
    if not interval:
        return "n/a"
    return f"{interval['auc']:.3f} [{interval['ci_low']:.3f}, {interval['ci_high']:.3f}]"


def table(runs: dict[int, Path]) -> str:
    """Markdown rows: k, epochs, wall time, test AUC (all / tumour < 10 % / ≥ 10 %), accuracy."""
    lines = [
        "| k | epochs (best) | CPU wall time | test slides | test AUC tumour [95 % CI] "
        "| < 10 % lesions vs normal | ≥ 10 % vs normal | test accuracy |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for k, folder in sorted(runs.items()):
        metrics = json.loads((folder / "metrics.json").read_text())
        summary, history = metrics["summary"], metrics["history"]
        test = summary["test"]
        sizes = test["strata"]["lesion_size"]
        small = sizes.get("<10%", {}).get("auc_vs_all_negatives", {}).get("tumour")
        large = sizes.get("≥10%", {}).get("auc_vs_all_negatives", {}).get("tumour")
        lines.append(
            f"| {k} | {len(history)} ({summary['best_epoch']}) | {summary['wall_s'] / 60:.1f} min "
            f"| {test['n']} | {_auc(test['auc']['tumour'])} | {_auc(small)} | {_auc(large)} "
            f"| {test['accuracy']:.3f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--k", type=int, nargs="+", default=[1, 3, 5])
    parser.add_argument("--cohort", type=Path, default=REPO / "cohorts/wsl36/manifest.csv")
    parser.add_argument("--out", type=Path, default=REPO / "runs" / "bench_topk_mil")
    parser.add_argument("--table-only", action="store_true", help="tabulate finished runs")
    args = parser.parse_args()
    runs = {}
    for k in args.k:
        if args.table_only:
            runs[k] = max((args.out / f"k{k}").iterdir(), key=lambda p: p.stat().st_mtime)
        else:
            runs[k] = run(k, args.cohort.resolve(), args.out.resolve())
    print(table(runs))


if __name__ == "__main__":
    main()
