"""End-to-end slide training: how the training loss falls with K, the tiles sampled per slide.

Runs the ``end_to_end`` job (the task itself, through the job runner) once per K on the same
cohort, split, seed, encoder and schedule, for the **same number of optimisation steps**
(``--epochs`` passes over the training slides, ``--slides-per-step`` slides a step), so a
larger K also means proportionally more compute (tiles encoded = steps × slides × K). Prints
Markdown tables: the mean training loss of each epoch per K, and per K the tiles encoded, the
wall time, the last epochs' mean loss and the held-out (test) slide AUC of the best epoch.

``--memory`` instead measures the encoder's activation memory: one training step (forward and
backward of one slide's K tiles) in a fresh process, with and without activation
checkpointing, reporting the growth of the peak resident memory over the state before the step
(CPU; on CUDA the peak allocated GPU memory) and the step time.

Run (make the cohort first)::

    napari-wsi-ml sample-data cohorts/wsl36 --slides 36 --size 3000-6000 --seed 7 --raters 1
    .venv/bin/python benchmarks/bench_end_to_end_k.py --cohort cohorts/wsl36/manifest.csv
    .venv/bin/python benchmarks/bench_end_to_end_k.py --memory --ks 16 64 --patch-size 128
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from napari_wsi_ml.jobs.runner import run_job


def job_config(args: argparse.Namespace, k: int) -> dict[str, Any]:
    """The end_to_end job of one K."""
    return {
        "job": {"task": "end_to_end", "name": f"k{k}", "seed": args.seed, "device": "auto"},
        "data": {
            "cohort": str(Path(args.cohort).resolve()), "classes": ["normal", "tumour"],
            "patch_size": args.patch_size, "target_mpp": args.target_mpp, "min_tissue": 0.4,
        },
        "end_to_end": {
            "backbone": args.backbone, "tiles_per_slide": k,
            "slides_per_step": args.slides_per_step, "epochs": args.epochs,
            "learning_rate": args.learning_rate, "patience": 0, "eval_tiles": args.eval_tiles,
            "eval_batch_size": 256, "heatmaps": False, "attention_dim": 64, "dropout": 0.1,
        },
    }  # fmt: skip


def measure(args: argparse.Namespace, k: int, root: Path) -> dict[str, Any]:
    """Run the job for one K; its per-epoch losses, test AUC, steps and wall time."""
    started = time.perf_counter()
    outcome = run_job(job_config(args, k), run_root=root)
    wall = time.perf_counter() - started
    if outcome.status != "finished":
        raise SystemExit(f"K = {k}: the run {outcome.status} ({outcome.run_dir})")
    metrics = json.loads((outcome.run_dir / "metrics.json").read_text())
    data = json.loads((outcome.run_dir / "data.json").read_text())
    train = [s for s in data["slides"] if s["part"] == "train"]
    steps = -(-len(train) // args.slides_per_step) * args.epochs
    tiles = sum(min(k, s["patches"]) for s in train) * args.epochs
    report = metrics["summary"]["slide"]
    return {
        "k": k,
        "losses": [row["train_loss"] for row in metrics["history"]],
        "val_losses": [row.get("val_loss") for row in metrics["history"]],
        "auc": report["auc"]["tumour"],
        "steps": steps,
        "tiles": tiles,
        "wall_s": wall,
        "run": outcome.run_dir,
        "patches": [s["patches"] for s in train],
    }


MEMORY_PROBE = """
import resource, sys, time, torch
from torch import nn
from napari_wsi_ml.models.end_to_end import create_end_to_end_model
from napari_wsi_ml.training.end_to_end_step import forward_backward
backbone, k, size, ckpt = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == "1"
device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
torch.manual_seed(0)
model = create_end_to_end_model(backbone, num_classes=2, checkpointing=ckpt).to(device)
images = torch.randint(0, 256, (k, 3, size, size), dtype=torch.uint8)
groups, labels = torch.zeros(k, dtype=torch.int64), torch.tensor([1], device=device)
forward_backward(model, images[:2], groups[:2], labels, nn.CrossEntropyLoss())  # warm up
model.zero_grad(set_to_none=False)
if device.type == "cuda":
    torch.cuda.synchronize(); torch.cuda.reset_peak_memory_stats(); base = 0
else:
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
start = time.perf_counter()
forward_backward(model, images, groups, labels, nn.CrossEntropyLoss())
if device.type == "cuda":
    torch.cuda.synchronize(); peak = torch.cuda.max_memory_allocated()
else:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(peak - base, time.perf_counter() - start)
"""


def memory_table(args: argparse.Namespace) -> None:
    """Activation memory of one step with and without checkpointing, per K."""
    print(f"\n{args.backbone}, {args.patch_size} px tiles, one slide of K tiles per step\n")
    print("| K | checkpointing | peak memory growth MiB | step s |")
    print("|---:|---|---:|---:|")
    for k in args.ks:
        for checkpointing in (False, True):
            command = [sys.executable, "-c", MEMORY_PROBE, args.backbone, str(k),
                       str(args.patch_size), "1" if checkpointing else "0"]  # fmt: skip
            out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
            grown, seconds = (float(v) for v in out.split())
            print(f"| {k} | {'on' if checkpointing else 'off'} | {grown / 2**20:.0f} | "
                  f"{seconds:.2f} |")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cohort", help="cohort CSV (e.g. cohorts/wsl36/manifest.csv)")
    parser.add_argument("--memory", action="store_true", help="measure activation memory")
    parser.add_argument("--ks", type=int, nargs="+", default=[4, 16, 64])
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--slides-per-step", type=int, default=2)
    parser.add_argument("--backbone", default="resnet18")
    parser.add_argument("--patch-size", type=int, default=32)
    parser.add_argument("--target-mpp", type=float, default=1.0)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--eval-tiles", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--runs", help="folder for the run directories (default: temporary)")
    args = parser.parse_args()
    if args.memory:
        memory_table(args)
        return
    if not args.cohort:
        parser.error("--cohort is required (unless --memory)")
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(args.runs or scratch)
        results = [measure(args, k, root) for k in args.ks]
    patches = results[0]["patches"]
    print(
        f"\n{len(patches)} training slides, {min(patches)}–{max(patches)} tissue patches each "
        f"(median {sorted(patches)[len(patches) // 2]}); {args.backbone}, "
        f"{args.patch_size} px at {args.target_mpp} µm/px, {args.slides_per_step} slides a "
        f"step, {results[0]['steps']} steps for every K, seed {args.seed}.\n"
    )
    print("| epoch | " + " | ".join(f"K = {r['k']}" for r in results) + " |")
    print("|---:|" + "---:|" * len(results))
    for epoch in range(args.epochs):
        cells = [f"{r['losses'][epoch]:.3f}" for r in results]
        print(f"| {epoch} | " + " | ".join(cells) + " |")
    print()
    print("| K | tiles encoded | wall s | train loss, last 3 epochs | val loss, last epoch "
          "| test slide AUC (tumour) [95 % CI] |")  # fmt: skip
    print("|---:|---:|---:|---:|---:|---|")
    for r in results:
        last = sum(r["losses"][-3:]) / len(r["losses"][-3:])
        auc = r["auc"]
        shown = (
            "–" if auc is None else f"{auc['auc']:.3f} [{auc['ci_low']:.2f}, {auc['ci_high']:.2f}]"
        )
        val = r["val_losses"][-1]
        print(f"| {r['k']} | {r['tiles']} | {r['wall_s']:.0f} | {last:.3f} | "
              f"{'–' if val is None else f'{val:.3f}'} | {shown} |")  # fmt: skip


if __name__ == "__main__":
    main()
