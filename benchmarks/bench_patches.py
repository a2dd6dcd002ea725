"""Patch-reading benchmark: ``read_patches`` vs a plain OpenSlide ``read_region`` + resize loop.

256 × 256 patches at 0.5 µm/px from a 0.25 µm/px synthetic slide (20 480 px a side, written
once under ``--slide-dir`` and reused). The same tissue patches (random, and in grid order) are
read side by side in one process:

- ``napari_wsi_ml.data.read_patches`` (level 1, cached tiles, :func:`resize_patch`);
- OpenSlide ``read_region`` at the same level, RGBA → RGB, the same resize;
- OpenSlide ``read_region`` at level 0 (512 × 512) resized with ``INTER_AREA`` (the naive way).

Each method runs ``--repeats`` times on the same coordinates, alternating, with a fresh slide
handle (cold caches) each time; the table gives the median patches/s.

Run: ``.venv/bin/python benchmarks/bench_patches.py [--patches 1500] [--repeats 3]``
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import openslide

from napari_wsi_ml.data import (
    RandomPatchSampler,
    grid_patches,
    plan_patch_read,
    read_patches,
    resize_patch,
)
from napari_wsi_ml.data.resolution import ReadPlan
from napari_wsi_ml.slide import open_slide
from napari_wsi_ml.synthetic import generate_benchmark_slide

SIZE = 20_480


def ours(path: Path, xys: np.ndarray, plan: ReadPlan) -> int:
    with open_slide(path, cache_bytes=256 << 20) as slide:
        batch = read_patches(slide, xys, plan)
    return int(batch.ok.sum())


def openslide_same_level(path: Path, xys: np.ndarray, plan: ReadPlan) -> int:
    osr = openslide.OpenSlide(str(path))
    done = 0
    for x, y in xys.tolist():
        rgba = np.asarray(osr.read_region((x, y), plan.level, plan.read_size))
        patch = resize_patch(np.ascontiguousarray(rgba[..., :3]), plan.patch_size)
        done += patch.shape[0] > 0
    osr.close()
    return done


def openslide_level0(path: Path, xys: np.ndarray, plan: ReadPlan) -> int:
    osr = openslide.OpenSlide(str(path))
    done = 0
    for x, y in xys.tolist():
        rgba = np.asarray(osr.read_region((x, y), 0, plan.extent))
        patch = cv2.resize(rgba[..., :3], plan.patch_size, interpolation=cv2.INTER_AREA)
        done += patch.shape[0] > 0
    osr.close()
    return done


METHODS: dict[str, Callable[[Path, np.ndarray, ReadPlan], int]] = {
    "napari_wsi_ml.data.read_patches": ours,
    "OpenSlide read_region (level 1) + resize": openslide_same_level,
    "OpenSlide read_region (level 0, 512 px) + INTER_AREA": openslide_level0,
}


def time_methods(path: Path, xys: np.ndarray, plan: ReadPlan, repeats: int) -> dict[str, float]:
    rates: dict[str, list[float]] = {name: [] for name in METHODS}
    for _ in range(repeats):
        for name, method in METHODS.items():
            start = time.perf_counter()
            count = method(path, xys, plan)
            rates[name].append(count / (time.perf_counter() - start))
    return {name: statistics.median(values) for name, values in rates.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slide-dir", type=Path, default=Path("/tmp/bench_patches"))
    parser.add_argument("--patches", type=int, default=1500)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    args.slide_dir.mkdir(parents=True, exist_ok=True)
    path = args.slide_dir / f"bench_{SIZE}.svs"
    start = time.perf_counter()
    generate_benchmark_slide(path, size=SIZE, seed=0)
    print(f"slide ready in {time.perf_counter() - start:.1f} s: {path}\n")
    with open_slide(path, cache_bytes=0) as slide:
        plan = plan_patch_read(slide, patch_size=256, target_mpp=0.5)
        sampler = RandomPatchSampler(slide, plan, min_tissue=0.4, seed=0)
        random_xy = sampler.sample(args.patches).xy
        grid_xy = grid_patches(slide, plan, index=sampler.index).xy[: args.patches]
    assert plan.level == 1 and plan.read_size == (256, 256)
    print(
        f"{os.cpu_count()} CPUs; plan: level {plan.level}, read {plan.read_size}, "
        f"extent {plan.extent}, patches {args.patches}, repeats {args.repeats}\n"
    )
    print("| order | method | patches/s | × OpenSlide same level |")
    print("|---|---|---|---|")
    for order, xys in (("random", random_xy), ("grid", grid_xy)):
        rates = time_methods(path, xys, plan, args.repeats)
        base = rates["OpenSlide read_region (level 1) + resize"]
        for name, rate in rates.items():
            print(f"| {order} | {name} | {rate:.0f} | {rate / base:.2f} |")


if __name__ == "__main__":
    main()
