"""Pointwise coverage of the ROC band (evaluation/roc.py) on binormal scores, and the time to
trace a large heatmap into review polygons (inference/review.py).

Run: .venv/bin/python benchmarks/bench_roc_band.py [--replicates 1000]   (prints Markdown)
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from scipy import stats

from napari_wsi_ml.evaluation.roc import sensitivity_band
from napari_wsi_ml.inference import Heatmap
from napari_wsi_ml.inference.review import PolygonOptions, score_polygons

FPRS = np.array([0.05, 0.1, 0.2, 0.4, 0.6])
CASES = [(0.8, 20, 30), (1.2, 20, 30), (1.2, 60, 60), (2.0, 60, 60), (1.2, 200, 300)]


def coverage(separation: float, m: int, n: int, replicates: int, seed: int) -> np.ndarray:
    """Fraction of replicates whose band holds the true binormal sensitivity, per FPR."""
    rng = np.random.default_rng(seed)
    truth = stats.norm.sf(stats.norm.isf(FPRS) - separation)
    labels = np.r_[np.ones(m, bool), np.zeros(n, bool)]
    covered = np.zeros(len(FPRS))
    for _ in range(replicates):
        scores = np.r_[rng.normal(separation, 1, m), rng.normal(0, 1, n)]
        _, low, high = sensitivity_band(labels, scores, FPRS)
        covered += (low <= truth) & (truth <= high)
    return covered / replicates


def polygon_time(side: int) -> tuple[float, int]:
    """Seconds to trace a ``side`` × ``side`` heatmap of blobs, and the parts found."""
    rng = np.random.default_rng(0)
    field = rng.random((side // 16, side // 16))
    values = np.kron(field, np.ones((16, 16)))[:side, :side] ** 3
    heatmap = Heatmap(values, (0, 0), 224, 224, ("tumour",), "bench", "fp")
    start = time.perf_counter()
    region = score_polygons(heatmap, 0, PolygonOptions(threshold=0.5, min_area=0))
    return time.perf_counter() - start, len(getattr(region, "geoms", [region]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--replicates", type=int, default=1000)
    args = parser.parse_args()
    print(f"Pointwise coverage of the nominal 95 % band ({args.replicates} replicates)\n")
    print("| separation (SD) | positives | negatives | " + " | ".join(f"FPR {t:g}" for t in FPRS)
          + " |")  # fmt: skip
    print("|---|---|---|" + "---|" * len(FPRS))
    for k, (separation, m, n) in enumerate(CASES):
        values = coverage(separation, m, n, args.replicates, seed=k)
        print(f"| {separation} | {m} | {n} | " + " | ".join(f"{v:.3f}" for v in values) + " |")
    print("\n| heatmap cells | parts | trace + smooth + simplify (s) |\n|---|---|---|")
    for side in (256, 1024):
        seconds, parts = polygon_time(side)
        print(f"| {side} × {side} | {parts} | {seconds:.2f} |")


if __name__ == "__main__":
    main()
