"""Training throughput of the patch classifier: the task's data pipeline vs pre-loaded tensors.

Every column runs the task's own training path from the batch on: the same model (a timm
backbone from random weights, fine-tuned), optimiser (AdamW), loss, batch size and torch
threads; :func:`~napari_wsi_ml.training.loops.device_batches` moves each collated uint8 batch
to the training device and augments it there as a whole (flips/rotations, HED and colour
jitter, seeded per batch), then :func:`~napari_wsi_ml.jobs.distributed.train_step`. The only
difference is where the uint8 batches come from:

- ``pipeline``: the task's DataLoader (:func:`~napari_wsi_ml.training.loops.patch_loader`:
  forked persistent workers, prefetching) reading annotation patches from the slides with
  :class:`~napari_wsi_ml.data.dataset.PatchDataset`, in the task's shuffled order;
- ``pre-loaded``: the same batches (same patches, same order), read before timing and held
  in memory as uint8 tensors.

So both sides pay the same augmentation, counted in the step. A last column,
``pre-loaded, no augmentation``, is the model alone, to show what augmentation itself costs.
Configurations are measured in interleaved rounds (so a change of machine load hits all
alike); the table gives each one's mean over rounds, ratio = pipeline / pre-loaded
(target ≥ 0.9), and the median over rounds of the ratio within a round (less sensitive to a
change of load between rounds).

Run (make the cohort first with ``napari-wsi-ml sample-data sample_cohort``)::

    .venv/bin/python benchmarks/bench_training_throughput.py --cohort sample_cohort/manifest.csv
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Iterable

import torch
from torch import nn

from napari_wsi_ml.data.augment import Augmenter
from napari_wsi_ml.data.dataset import PatchDataset
from napari_wsi_ml.jobs.distributed import train_step
from napari_wsi_ml.models import create_classifier
from napari_wsi_ml.training.data_setup import prepare_slides, slide_records
from napari_wsi_ml.training.loops import device_batches, patch_loader
from napari_wsi_ml.training.options import PatchDataOptions

DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _rate(batches: Iterable[dict], args: argparse.Namespace, augment: bool) -> float:
    """Patches per second of training on ``batches`` after ``args.warmup`` steps."""
    torch.manual_seed(0)
    model = create_classifier(args.backbone, num_classes=2).to(DEVICE).train()
    optimiser = torch.optim.AdamW(model.trainable_parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()
    steps = device_batches(batches, DEVICE, augment=Augmenter() if augment else None, seed=0)
    seen, start = 0, time.perf_counter()
    for position, batch in steps:
        if position == args.warmup:
            if DEVICE.type == "cuda":
                torch.cuda.synchronize()
            seen, start = 0, time.perf_counter()
        train_step(model, (batch["image"], batch["label"]), loss_fn, optimiser)
        seen += len(batch["label"])
        if position + 1 >= args.warmup + args.steps:
            break
    if DEVICE.type == "cuda":
        torch.cuda.synchronize()
    return seen / (time.perf_counter() - start)


def _augment_cost(batches: list[dict]) -> tuple[float, float]:
    """Milliseconds per patch of :class:`Augmenter`: per item (as in a data-loader worker, one
    torch thread) and per batch (as in the training process, its torch threads)."""
    images = torch.cat([b["image"] for b in batches])
    augmenter, generator = Augmenter(), torch.Generator().manual_seed(0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    start = time.perf_counter()
    for image in images:
        augmenter(image, generator)
    per_item = (time.perf_counter() - start) / len(images)
    torch.set_num_threads(threads)
    start = time.perf_counter()
    for batch in batches:
        augmenter(batch["image"].to(DEVICE).float() / 255, generator)
    if DEVICE.type == "cuda":
        torch.cuda.synchronize()
    per_batch = (time.perf_counter() - start) / len(images)
    return per_item * 1e3, per_batch * 1e3


def _pipeline(dataset: PatchDataset, args: argparse.Namespace, workers: int) -> float:
    loader, _ = patch_loader(
        dataset, batch_size=args.batch_size, num_workers=workers, seed=0, shuffle=True
    )
    rate = _rate(loader, args, augment=not args.no_augment)
    del loader  # stops the workers
    dataset.close()  # the next configuration starts with cold slides and caches too
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cohort", required=True, help="cohort CSV with annotation files")
    parser.add_argument("--backbone", default="resnet18")
    parser.add_argument("--patch-size", type=int, default=64)
    parser.add_argument("--mpp", type=float, default=1.0)
    parser.add_argument("--stride", type=int, default=32, help="training grid step (output px)")
    parser.add_argument(
        "--max-per-class", type=int, default=300, help="patches per slide and class"
    )
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=10, help="timed steps per measurement")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--no-augment", action="store_true", help="no augmentation anywhere")
    args = parser.parse_args()

    data = PatchDataOptions(
        cohort=args.cohort,
        patch_size=args.patch_size,
        target_mpp=args.mpp,
        stride=args.stride,
        max_patches_per_class=args.max_per_class,
    )
    slides = prepare_slides(slide_records(data), data, None, seed=0)
    sets = [p.patches["train"] for p in slides if len(p.patches.get("train", ()))]
    dataset = PatchDataset(sets, seed=0)
    loader, _ = patch_loader(
        dataset, batch_size=args.batch_size, num_workers=0, seed=0, shuffle=True
    )
    preloaded = []
    for batch in loader:  # the pipeline's first batches, in its order
        preloaded.append({"image": batch["image"].clone(), "label": batch["label"].clone()})
        if len(preloaded) == args.warmup + args.steps:
            break
    dataset.close()
    load_before = os.getloadavg()[0]
    print(
        f"{len(dataset)} patches of {len(sets)} slides; device {DEVICE}; "
        f"{torch.get_num_threads()} torch threads; {os.cpu_count()} CPU cores"
    )

    results: dict[str, list[float]] = {}
    for round_index in range(args.rounds):
        measured = {"pre-loaded": _rate(preloaded, args, augment=not args.no_augment)}
        for workers in args.workers:
            measured[f"pipeline, {workers} workers"] = _pipeline(dataset, args, workers)
        if not args.no_augment:
            measured["pre-loaded, no augmentation"] = _rate(preloaded, args, augment=False)
        for name, rate in measured.items():
            results.setdefault(name, []).append(rate)
        print(f"round {round_index}: " + ", ".join(f"{k} {v:.1f}" for k, v in measured.items()))
    load_after = os.getloadavg()[0]
    per_item, per_batch = _augment_cost(preloaded)

    base = statistics.mean(results["pre-loaded"])
    bare = statistics.mean(results.get("pre-loaded, no augmentation", [base]))
    augment = "off" if args.no_augment else "on (per batch, on the device)"
    print(
        f"\n{args.backbone}, batch {args.batch_size}, {args.patch_size} px at {args.mpp} µm/px, "
        f"augmentation {augment}, {args.steps} steps after {args.warmup} warm-up, "
        f"{args.rounds} rounds; 1-min load average {load_before:.1f} → {load_after:.1f}\n"
    )
    print(
        "| data | patches/s (mean) | per round | vs pre-loaded | median of per-round ratios "
        "| vs model alone |"
    )
    print("|---|---|---|---|---|---|")
    for name, rates in results.items():
        mean = statistics.mean(rates)
        rounds = " / ".join(f"{r:.1f}" for r in rates)
        paired = statistics.median(r / b for r, b in zip(rates, results["pre-loaded"], strict=True))
        print(
            f"| {name} | {mean:.1f} | {rounds} | {mean / base:.2f} | {paired:.2f} "
            f"| {mean / bare:.2f} |"
        )
    print(
        f"\nAugmentation cost: {per_item:.2f} ms per patch one item at a time (1 thread, as in "
        f"a worker), {per_batch:.2f} ms per patch on whole batches ({DEVICE}, "
        f"{torch.get_num_threads()} threads); training step: {1e3 / bare:.1f} ms per patch."
    )


if __name__ == "__main__":
    main()
