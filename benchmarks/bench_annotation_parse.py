"""ASAP XML parse speed: napari-wsi-ml's reader vs a plain ``xml.etree`` full parse.

Writes a synthetic ASAP file (100k polygons x 30 vertices = 3M vertices by default) with
``write_asap``, then times, on the same file:

* ``read_asap`` (fast canonical path; falls back to the defused expat parser otherwise),
* the general defused expat parser alone (what files in another layout get),
* a plain ``xml.etree.ElementTree.parse`` + per-coordinate ``float()`` (unsafe baseline).

Run: ``.venv/bin/python benchmarks/bench_annotation_parse.py [--polygons N] [--vertices V]``
Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path

import numpy as np

from napari_wsi_ml.annotations import Annotation, AnnotationSet, read_asap, write_asap
from napari_wsi_ml.annotations._asap_expat import parse_generic


def synthetic_set(polygons: int, vertices: int, seed: int = 0) -> AnnotationSet:
    """Random circles-ish polygons with float coordinates, in one class."""
    rng = np.random.default_rng(seed)
    t = np.linspace(0, 2 * np.pi, vertices, endpoint=False)
    centres = rng.uniform(0, 100_000, (polygons, 2))
    radii = rng.uniform(10, 100, (polygons, 1))
    xs = np.round(centres[:, :1] + radii * np.cos(t), 3)
    ys = np.round(centres[:, 1:] + radii * np.sin(t), 3)
    annotation_set = AnnotationSet()
    annotation_set.add(
        Annotation(f"Annotation {i}", "Polygon", np.c_[xs[i], ys[i]], group="tumor")
        for i in range(polygons)
    )
    return annotation_set


def plain_etree(path: Path) -> int:
    """Baseline: full ``xml.etree`` parse, then float() per coordinate (no protection)."""
    root = ET.parse(path).getroot()
    total = 0
    for annotation in root.iter("Annotation"):
        coords = np.array(
            [(float(c.get("X")), float(c.get("Y"))) for c in annotation.iter("Coordinate")]
        )
        total += len(coords)
    return total


def timed(function: Callable[[], int], repeats: int) -> tuple[float, float, int]:
    """Best wall and CPU time over ``repeats`` runs, and the vertex count.

    CPU time is reported too because on a shared machine wall time includes time stolen by
    other processes.
    """
    best_wall, best_cpu, count = float("inf"), float("inf"), 0
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        count = function()
        best_wall = min(best_wall, time.perf_counter() - wall)
        best_cpu = min(best_cpu, time.process_time() - cpu)
    return best_wall, best_cpu, count


def main() -> None:
    """Run the benchmark and print a Markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--polygons", type=int, default=100_000)
    parser.add_argument("--vertices", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "synthetic.xml"
        start = time.perf_counter()
        write_asap(synthetic_set(args.polygons, args.vertices), path)
        write_s = time.perf_counter() - start
        size_mb = path.stat().st_size / 1e6
        data = path.read_bytes()
        rows = [
            ("read_asap (fast path)", lambda: sum(len(a.coordinates) for a in read_asap(path))),
            (
                "defused expat parser (general path)",
                lambda: sum(len(a.coordinates) for a in parse_generic(data, str(path)).annotations),
            ),
            ("plain xml.etree.parse + float()", lambda: plain_etree(path)),
        ]
        print(
            f"{args.polygons} polygons x {args.vertices} vertices, {size_mb:.0f} MB;"
            f" write_asap took {write_s:.2f} s\n"
        )
        print("| parser | wall (s) | CPU (s) | vertices/s (CPU) | vs xml.etree (CPU) |")
        print("|---|---|---|---|---|")
        baseline = None
        results = []
        for name, function in rows:
            wall, cpu, count = timed(function, args.repeats)
            results.append((name, wall, cpu, count))
            if name.startswith("plain"):
                baseline = cpu
        for name, wall, cpu, count in results:
            speedup = f"{baseline / cpu:.1f}x" if baseline else "-"
            rate = count / cpu / 1e6
            print(f"| {name} | {wall:.2f} | {cpu:.2f} | {rate:.2f} M | {speedup} |")


if __name__ == "__main__":
    main()
