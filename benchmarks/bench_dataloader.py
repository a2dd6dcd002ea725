"""Data-loader benchmark: does a ResNet-18 CPU training step wait for patches?

Online random patches (224 px at 0.5 µm/px, read from the 0.25 µm/px level-0 pyramid's level 1,
augmented per item with flips, HED and colour jitter) of a synthetic slide feed
``timm.create_model("resnet18", pretrained=False, num_classes=2)``; every step is split into
the time spent waiting for the next batch and the time of forward + backward + SGD step.
The same model trained on the same batches pre-loaded in memory gives the reference
throughput; it runs before and after the loaders (the mean is the reference), so that a change
of machine load during the run shows. Prints a Markdown table.

    .venv/bin/python benchmarks/bench_dataloader.py [--steps 8] [--batch-size 32]

The slide is written once under /tmp/napari-wsi-ml-bench/ and reused.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import torch

from napari_wsi_ml.data import RandomPatchSampler, plan_patch_read
from napari_wsi_ml.data.augment import Augmenter
from napari_wsi_ml.data.dataset import OnlinePatchDataset, make_loader
from napari_wsi_ml.slide import open_slide

SLIDE = Path("/tmp/napari-wsi-ml-bench/dataloader-8192.svs")
WARMUP = 2


def slide_path() -> Path:
    """The benchmark slide (8192 × 8192 px at 0.25 µm/px), generated on first use."""
    if not SLIDE.exists():
        from napari_wsi_ml.synthetic import generate_slide

        SLIDE.parent.mkdir(parents=True, exist_ok=True)
        partial = SLIDE.with_name("partial-" + SLIDE.name)
        generate_slide(partial, width=8192, height=8192, seed=5, tumour="large", n_pieces=1)
        os.replace(partial, SLIDE)
    return SLIDE


def build_dataset(patch_size: int, n_patches: int) -> OnlinePatchDataset:
    with open_slide(slide_path()) as slide:
        plan = plan_patch_read(slide, patch_size=patch_size, target_mpp=0.5)
        sampler = RandomPatchSampler(
            slide, plan, seed=0, label="tumour", label_names=("normal", "tumour")
        )
    return OnlinePatchDataset(
        [sampler], patches_per_slide=n_patches, shard_size=16, seed=0, transform=Augmenter()
    )


def new_model() -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    import timm

    torch.manual_seed(0)
    model = timm.create_model("resnet18", pretrained=False, num_classes=2)
    model.train()
    return model, torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)


def train_step(model, optimiser, batch: dict) -> None:
    images = batch["image"].float().div_(255.0)
    loss = torch.nn.functional.cross_entropy(model(images), batch["label"])
    optimiser.zero_grad(set_to_none=True)
    loss.backward()
    optimiser.step()


def run(batches, steps: int) -> dict:
    """Train on ``batches`` (any iterable); time waiting vs computing after the warm-up."""
    model, optimiser = new_model()
    wait = compute = 0.0
    patches = 0
    iterator = iter(batches)
    for step in range(WARMUP + steps):
        t0 = time.perf_counter()
        batch = next(iterator)
        t1 = time.perf_counter()
        train_step(model, optimiser, batch)
        t2 = time.perf_counter()
        if step >= WARMUP:
            wait, compute = wait + t1 - t0, compute + t2 - t1
            patches += len(batch["label"])
    total = wait + compute
    return {"wait": wait / total, "step_s": total / steps, "throughput": patches / total}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--patch-size", type=int, default=224)
    args = parser.parse_args()
    n = args.batch_size * (args.steps + WARMUP)
    dataset = build_dataset(args.patch_size, n)
    rows = []
    load = os.getloadavg()[0]
    for threads in (2, 1):
        torch.set_num_threads(threads)
        preloaded = list(make_loader(dataset, batch_size=args.batch_size))
        measured = [("pre-loaded tensors", 0, run(preloaded, args.steps))]
        for workers in (0, 2):
            loader = make_loader(dataset, batch_size=args.batch_size, num_workers=workers)
            measured.append(("DataLoader, online patches", workers, run(loader, args.steps)))
        measured.append(("pre-loaded tensors (again)", 0, run(preloaded, args.steps)))
        reference = (measured[0][2]["throughput"] + measured[-1][2]["throughput"]) / 2
        rows += [(name, workers, threads, result, reference) for name, workers, result in measured]
    print(
        f"ResNet-18 training step, batch {args.batch_size}, {args.patch_size} px patches at "
        f"0.5 µm/px, {args.steps} steps after {WARMUP} warm-up, {os.cpu_count()} CPU cores, "
        f"1-min load average {load:.1f} at the start\n"
    )
    print(
        "| data | workers | torch threads | waiting for data | step (s) | patches/s "
        "| vs pre-loaded (mean of both runs) |"
    )
    print("|---|---|---|---|---|---|---|")
    for name, workers, threads, result, reference in rows:
        ratio = result["throughput"] / reference
        print(
            f"| {name} | {workers} | {threads} | {result['wait']:.1%} | "
            f"{result['step_s']:.2f} | {result['throughput']:.1f} | {ratio:.2f}× |"
        )


if __name__ == "__main__":
    main()
