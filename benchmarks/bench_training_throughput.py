"""Training throughput of the patch classifier: real DataLoader pipeline vs pre-loaded tensors.

Both columns run the same optimisation step (:func:`napari_wsi_ml.jobs.distributed.train_step`,
same model, batch size, loss and optimiser). "pipeline" reads annotation patches from the
slides with :class:`~napari_wsi_ml.data.dataset.PatchDataset` (augmentation on) through the
task's DataLoader; "pre-loaded" trains on the same number of patches already in memory as a
uint8 tensor. Ratio = pipeline / pre-loaded (target ≥ 0.9).

Run (make the cohort first with ``napari-wsi-ml sample-data sample_cohort``)::

    .venv/bin/python benchmarks/bench_training_throughput.py --cohort sample_cohort/manifest.csv
"""

from __future__ import annotations

import argparse
import time

import torch
from torch import nn

from napari_wsi_ml.data.augment import Augmenter
from napari_wsi_ml.data.dataset import PatchDataset
from napari_wsi_ml.jobs.distributed import train_step
from napari_wsi_ml.models import create_classifier
from napari_wsi_ml.training.data_setup import prepare_slides, slide_records
from napari_wsi_ml.training.loops import patch_loader
from napari_wsi_ml.training.options import PatchDataOptions


def _model_and_optimiser(backbone: str) -> tuple[nn.Module, torch.optim.Optimizer]:
    torch.manual_seed(0)
    model = create_classifier(backbone, num_classes=2)
    model.train()
    return model, torch.optim.AdamW(model.trainable_parameters(), lr=1e-3)


def _timed(model: nn.Module, optimiser: torch.optim.Optimizer, batches, steps: int, warmup: int):
    loss_fn = nn.CrossEntropyLoss()
    seen, start = 0, None
    for index, (images, labels) in enumerate(batches):
        if index == warmup:
            start, seen = time.perf_counter(), 0
        train_step(model, (images, labels), loss_fn, optimiser)
        seen += len(labels)
        if index + 1 >= warmup + steps:
            break
    return seen / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cohort", required=True, help="cohort CSV with annotation files")
    parser.add_argument("--backbone", default="resnet18")
    parser.add_argument("--patch-size", type=int, default=64)
    parser.add_argument("--mpp", type=float, default=1.0)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--no-augment", action="store_true", help="read patches only")
    args = parser.parse_args()

    data = PatchDataOptions(
        cohort=args.cohort, patch_size=args.patch_size, target_mpp=args.mpp, stride=None
    )
    slides = prepare_slides(slide_records(data), data, None, seed=0)
    sets = [p.patches["train"] for p in slides if len(p.patches.get("train", ()))]
    dataset = PatchDataset(sets, transform=None if args.no_augment else Augmenter(), seed=0)
    needed = args.batch_size * (args.steps + args.warmup)
    print(f"{len(dataset)} patches of {len(sets)} slides; {torch.get_num_threads()} torch threads")

    images = torch.randint(0, 256, (needed, 3, args.patch_size, args.patch_size), dtype=torch.uint8)
    labels = torch.randint(0, 2, (needed,))
    preloaded = [
        (images[i : i + args.batch_size], labels[i : i + args.batch_size])
        for i in range(0, needed, args.batch_size)
    ]
    model, optimiser = _model_and_optimiser(args.backbone)
    base = _timed(model, optimiser, preloaded, args.steps, args.warmup)

    rows = []
    for workers in args.workers:
        loader, _ = patch_loader(
            dataset, batch_size=args.batch_size, num_workers=workers, seed=0, shuffle=True
        )
        model, optimiser = _model_and_optimiser(args.backbone)
        batches = ((b["image"], b["label"]) for b in loader)
        rate = _timed(model, optimiser, batches, args.steps, args.warmup)
        rows.append((workers, rate))
        del loader

    print()
    augment = "off" if args.no_augment else "on"
    print("| backbone | patch px | batch | augment | workers | pipeline patches/s "
          "| pre-loaded patches/s | ratio |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|")
    for workers, rate in rows:
        print(
            f"| {args.backbone} | {args.patch_size} | {args.batch_size} | {augment} | {workers} | "
            f"{rate:.1f} | {base:.1f} | {rate / base:.2f} |"
        )


if __name__ == "__main__":
    main()
