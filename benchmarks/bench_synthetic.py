"""Benchmark the synthetic generator: demo cohort time and MB/s on a large slide.

Run: ``.venv/bin/python benchmarks/bench_synthetic.py [--size 50000] [--out DIR]``; prints a
Markdown table.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import psutil

from napari_wsi_ml.synthetic import generate_benchmark_slide, generate_cohort, plan_cohort


def _timed(fn):
    process = psutil.Process()
    cpu0, wall0 = process.cpu_times(), time.perf_counter()
    result = fn()
    wall = time.perf_counter() - wall0
    cpu1 = process.cpu_times()
    return result, wall, (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=int, default=50_000, help="side of the large slide")
    parser.add_argument("--slides", type=int, default=8, help="demo cohort size")
    parser.add_argument("--out", default=None, help="folder to keep the outputs in")
    args = parser.parse_args()
    out = Path(args.out or tempfile.mkdtemp(prefix="bench_synthetic_"))
    out.mkdir(parents=True, exist_ok=True)

    specs = plan_cohort(args.slides, seed=0)
    megapixels = sum(s.width * s.height for s in specs) / 1e6
    cohort, wall, cpu = _timed(
        lambda: generate_cohort(out / "cohort", n_slides=args.slides, seed=0)
    )
    cohort_mb = sum(f.stat().st_size for f in cohort.folder.iterdir()) / 1e6

    big = out / f"bench_{args.size}.svs"
    if big.exists():
        big.unlink()
    peak_rss = [psutil.Process().memory_info().rss]
    truth, big_wall, big_cpu = _timed(lambda: generate_benchmark_slide(big, size=args.size))
    rss_after = psutil.Process().memory_info().rss
    raw_mb = sum(w * h * 3 for w, h in truth.level_dimensions) / 1e6
    file_mb = big.stat().st_size / 1e6

    print(f"Machine: {os.cpu_count()} CPUs; load average before: {os.getloadavg()[0]:.1f}\n")
    print("| what | size | wall s | CPU s | output | rate |")
    print("|---|---|---|---|---|---|")
    print(
        f"| demo cohort ({args.slides} slides + 3 raters each) | {megapixels:.0f} Mpx level 0 "
        f"| {wall:.1f} | {cpu:.1f} | {cohort_mb:.1f} MB | {megapixels / wall:.1f} Mpx/s |"
    )
    print(
        f"| large slide {args.size}×{args.size} | {truth.width * truth.height / 1e6:.0f} Mpx "
        f"level 0, {len(truth.level_dimensions)} levels | {big_wall:.1f} | {big_cpu:.1f} "
        f"| {file_mb:.0f} MB JPEG | {raw_mb / big_wall:.1f} MB/s raw RGB, "
        f"{file_mb / big_wall:.1f} MB/s written |"
    )
    print(f"\nRSS growth while writing the large slide: {(rss_after - peak_rss[0]) / 1e6:.0f} MB")
    print(f"Outputs in {out}")


if __name__ == "__main__":
    main()
