"""Inference benchmark: heatmap() throughput against the model alone, and its peak memory.

1. Throughput. A ResNet-18 patch classifier (``create_classifier("resnet18")``, random
   weights, CPU) scores 224 × 224 px patches at 0.5 µm/px (level 1 of a 0.25 µm/px synthetic
   slide, no resize). ``heatmap()`` (tissue index, region reads on its reader thread, batches
   of 32) is timed against the same scorer on the same patches pre-loaded in memory; the two
   alternate for a few rounds (medians reported, so that a change of machine load hits both).
   A "reading only" row times ``heatmap()`` with a score function that does nothing.
2. Memory. In a fresh process per row, ``heatmap()`` scores every tissue patch of a large
   synthetic slide (cheap score: mean colour) with the private 256 MiB tile cache that
   ``napari-wsi-ml infer`` uses, then exports the heatmap as a slide-sized TIFF. Peak RSS is
   compared with the memory the full grid of patches would take.

    .venv/bin/python benchmarks/bench_inference.py [--patches 64] [--rounds 3] [--size 24576]

Slides are written once under /tmp/napari-wsi-ml-bench/ and reused. Prints Markdown tables.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

BENCH_DIR = Path("/tmp/napari-wsi-ml-bench")
PATCH, MPP, BATCH = 224, 0.5, 32


def small_slide() -> Path:
    """8192 × 8192 px at 0.25 µm/px, one large tissue section (generated on first use)."""
    from napari_wsi_ml.synthetic import generate_slide

    path = BENCH_DIR / "inference-8192.svs"
    if not path.exists():
        BENCH_DIR.mkdir(parents=True, exist_ok=True)
        partial = path.with_name("partial-" + path.name)
        generate_slide(partial, width=8192, height=8192, seed=5, tumour="large", n_pieces=1)
        os.replace(partial, path)
    return path


# -- 1. throughput -------------------------------------------------------------------------
def throughput(n_patches: int, rounds: int) -> list[tuple[str, int, float, float, str]]:
    """Rows ``(what, torch threads, patches/s, ratio to the model alone, ratio range)``."""
    import torch
    from shapely.geometry import box

    from napari_wsi_ml.data.reading import read_patch
    from napari_wsi_ml.inference import heatmap
    from napari_wsi_ml.inference.grid import ScoringGrid, scoring_plan
    from napari_wsi_ml.inference.patch_model import TorchPatchScorer
    from napari_wsi_ml.models import create_classifier
    from napari_wsi_ml.slide import open_slide

    torch.manual_seed(0)
    scorer = TorchPatchScorer(create_classifier("resnet18", num_classes=2), torch.device("cpu"))
    rows: list[tuple[str, int, float, float, str]] = []
    with open_slide(small_slide()) as slide:
        plan = scoring_plan(slide, PATCH, MPP)
        grid = ScoringGrid.over(slide.level_dimensions[0], plan, None)
        side = int(np.ceil(np.sqrt(n_patches)))
        # a block of side × side tissue cells in the middle of the section
        x0 = y0 = 6 * grid.stride[0]
        tissue = box(x0, y0, x0 + side * grid.stride[0], y0 + side * grid.stride[1])
        cells = grid.tissue_cells(slide, 0.4, tissue=tissue)
        rr, cc = np.nonzero(cells)
        xy = grid.corners(rr, cc)
        patches = np.stack([read_patch(slide, corner, plan) for corner in xy])

        def preloaded() -> float:
            start = time.perf_counter()
            for i in range(0, len(xy), BATCH):
                scorer(patches[i : i + BATCH], xy[i : i + BATCH])
            return len(xy) / (time.perf_counter() - start)

        def streamed(score_fn) -> float:
            slide.cache.clear()
            start = time.perf_counter()
            result = heatmap(slide, score_fn, PATCH, None, MPP, batch_size=BATCH, tissue=tissue)
            assert result.extra["patches_scored"] == len(xy)
            return len(xy) / (time.perf_counter() - start)

        for threads in (2, 1):
            torch.set_num_threads(threads)
            preloaded()  # warm-up
            alone, ours = [], []
            for _ in range(rounds):  # alternate, so that a change of load hits both
                alone.append(preloaded())
                ours.append(streamed(scorer))
            alone.append(preloaded())
            reference = float(np.median(alone))
            ratios = [r / reference for r in ours]
            rows += [
                (f"model alone, pre-loaded patches (median of {len(alone)})", threads,
                 reference, 1.0, ""),
                (f"heatmap() with the model (median of {rounds})", threads,
                 float(np.median(ours)), float(np.median(ours)) / reference,
                 f"{min(ratios):.2f}–{max(ratios):.2f}×"),
            ]  # fmt: skip
        reading = streamed(lambda p, q: np.zeros((len(p), 2), np.float32))
        rows.append(("heatmap(), reading only (no model)", 0, reading, reading / reference, ""))
    return rows


# -- 2. memory -----------------------------------------------------------------------------
def large_slide(size: int) -> Path:
    from napari_wsi_ml.synthetic import generate_benchmark_slide

    BENCH_DIR.mkdir(parents=True, exist_ok=True)
    path = BENCH_DIR / f"inference-{size}.svs"
    generate_benchmark_slide(path, size=size, seed=2)
    return path


def peak_rss() -> int:
    """High-water resident set of this process image, bytes (``VmHWM``: unlike ``ru_maxrss``,
    it does not inherit the parent's peak across fork + exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def memory_child(path: str, mpp: float, stride: int) -> None:
    """Run in a fresh process: score the whole slide, export the TIFF, print JSON figures."""
    import psutil

    from napari_wsi_ml.inference import export_heatmap_tiff, heatmap
    from napari_wsi_ml.inference.slide_inference import SLIDE_CACHE_BYTES
    from napari_wsi_ml.slide import open_slide

    def mean_colour(patches: np.ndarray, xy: np.ndarray) -> np.ndarray:
        return patches.reshape(len(patches), -1, 3).mean(axis=1) / 255

    process = psutil.Process()
    with open_slide(path, cache_bytes=SLIDE_CACHE_BYTES) as slide:
        slide.tissue_polygons()
        baseline = process.memory_info().rss
        start = time.perf_counter()
        result = heatmap(slide, mean_colour, PATCH, stride, mpp, batch_size=BATCH)
        seconds = time.perf_counter() - start
        peak_heatmap = peak_rss()
        size, slide_mpp = slide.level_dimensions[0], slide.mpp
    start = time.perf_counter()
    export_heatmap_tiff(result, BENCH_DIR / "inference-memory.tif", size, slide_mpp, channel=1)
    export_s = time.perf_counter() - start
    peak = peak_rss()
    n = result.extra["patches_scored"]
    print(
        json.dumps(
            {
                "patches": n,
                "grid": list(result.grid_shape),
                "level": result.extra["read_plan"]["level"],
                "all_patches_bytes": n * PATCH * PATCH * 3,
                "baseline": baseline,
                "peak_heatmap": peak_heatmap,
                "peak_export": peak,
                "seconds": seconds,
                "export_s": export_s,
                "size": list(size),
            }
        )
    )


def memory(size: int) -> list[dict]:
    path = large_slide(size)
    rows = []
    for mpp, stride in ((1.0, PATCH // 2), (0.5, PATCH // 2), (0.5, PATCH // 4)):
        output = subprocess.run(
            [sys.executable, __file__, "--memory-child", str(path), str(mpp), str(stride)],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        rows.append({"mpp": mpp, "stride": stride, **json.loads(output.strip().splitlines()[-1])})
    return rows


def len_patches(n: int) -> int:
    """Patches the throughput part scores: a square block of tissue cells."""
    return int(np.ceil(np.sqrt(n))) ** 2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patches", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--size", type=int, default=24576)
    parser.add_argument("--memory-child", nargs=3, metavar=("SLIDE", "MPP", "STRIDE"))
    parser.add_argument("--skip-memory", action="store_true")
    args = parser.parse_args()
    if args.memory_child:
        slide, mpp, stride = args.memory_child
        memory_child(slide, float(mpp), int(stride))
        return
    load = os.getloadavg()[0]
    rows = throughput(args.patches, args.rounds)
    print(
        f"ResNet-18 on {len_patches(args.patches)} patches of {PATCH} px at {MPP} µm/px, batch "
        f"{BATCH}, {os.cpu_count()} CPU cores, 1-min load average {load:.1f} at the start\n"
    )
    print("| scoring | torch threads | patches/s | vs model alone | range over rounds |")
    print("|---|---|---|---|---|")
    for name, threads, rate, ratio, spread in rows:
        print(f"| {name} | {threads or '-'} | {rate:.1f} | {ratio:.2f}× | {spread} |")
    if args.skip_memory:
        return
    print()
    mib = 1 << 20
    print(
        "| slide | patches at | stride | patches scored | all patches in memory would be "
        "| RSS before | peak RSS, heatmap | peak RSS, + TIFF export | heatmap s | export s |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in memory(args.size):
        print(
            f"| {r['size'][0]}² px | {r['mpp']} µm/px (level {r['level']}) | {r['stride']} px "
            f"| {r['patches']} | {r['all_patches_bytes'] / mib:.0f} MiB "
            f"| {r['baseline'] / mib:.0f} MiB | {r['peak_heatmap'] / mib:.0f} MiB "
            f"| {r['peak_export'] / mib:.0f} MiB | {r['seconds']:.1f} | {r['export_s']:.1f} |"
        )


if __name__ == "__main__":
    main()
