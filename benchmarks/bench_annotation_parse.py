"""ASAP XML parse speed: napari-wsi-ml's reader vs a plain ``xml.etree`` full parse.

Writes a synthetic ASAP file (100k polygons x 30 vertices = 3M vertices by default) with
``write_asap``, then times, on the same file:

* ``read_asap``: the whole reader, file to ``AnnotationSet`` (its fast path for this layout),
* the general defused expat parser alone (what files in another layout get),
* expat with no callbacks at all (well-formedness only: a floor for any expat-based reader),
* a plain ``xml.etree.ElementTree.parse`` + per-coordinate ``float()`` (unsafe baseline).

CPU time (``time.process_time``) is the main figure, as the machine may be shared; wall time
is shown too, and two fixed calibration loops (numpy and pure Python, run before and after)
show how loaded the machine was.

Run: ``.venv/bin/python benchmarks/bench_annotation_parse.py [--polygons N] [--vertices V]
[--repeats R]``. Prints Markdown tables.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from xml.parsers import expat

import numpy as np

from napari_wsi_ml.annotations import Annotation, AnnotationSet, read_asap, write_asap
from napari_wsi_ml.annotations._asap_expat import make_guarded_parser, parse_generic


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


def expat_only(data: bytes) -> int:
    """Well-formedness check by expat with the entity guards and no element callbacks."""
    parser: expat.XMLParserType = make_guarded_parser()
    parser.Parse(data, True)
    return data.count(b"<Coordinate ")


def calibration() -> tuple[float, float]:
    """CPU seconds of a fixed numpy loop and of a fixed pure-Python loop."""
    start = time.process_time()
    values = np.arange(1_000_000, dtype=np.float64)
    for _ in range(200):
        values = np.sqrt(values * values + 1.0)
    middle = time.process_time()
    sum(range(10_000_000))
    return middle - start, time.process_time() - middle


def timed(function: Callable[[], int], repeats: int) -> tuple[float, float, int]:
    """Best wall and CPU time over ``repeats`` runs, and the vertex count."""
    best_wall, best_cpu, count = float("inf"), float("inf"), 0
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        count = function()
        best_wall = min(best_wall, time.perf_counter() - wall)
        best_cpu = min(best_cpu, time.process_time() - cpu)
    return best_wall, best_cpu, count


def main() -> None:
    """Run the benchmark and print Markdown tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--polygons", type=int, default=100_000)
    parser.add_argument("--vertices", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=3, help="best of R (etree: 1 run)")
    args = parser.parse_args()
    before = calibration()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "synthetic.xml"
        start = time.perf_counter()
        write_asap(synthetic_set(args.polygons, args.vertices), path)
        write_s = time.perf_counter() - start
        data = path.read_bytes()
        rows = [
            (
                "read_asap (file → AnnotationSet)",
                lambda: sum(len(a.coordinates) for a in read_asap(path)),
                args.repeats,
            ),
            (
                "general path: defused expat + callbacks",
                lambda: sum(len(a.coordinates) for a in parse_generic(data, str(path)).annotations),
                1,
            ),
            ("expat, no callbacks (well-formedness only)", lambda: expat_only(data), args.repeats),
            ("plain xml.etree.parse + float()", lambda: plain_etree(path), 1),
        ]
        results = [(name, *timed(function, repeats)) for name, function, repeats in rows]
    after = calibration()
    print(
        f"{args.polygons} polygons x {args.vertices} vertices, {len(data) / 1e6:.0f} MB;"
        f" write_asap took {write_s:.1f} s (wall)\n"
    )
    baseline = results[-1][2]
    print("| parser | wall (s) | CPU (s) | vertices/s (wall) | vertices/s (CPU) | vs etree (CPU) |")
    print("|---|---|---|---|---|---|")
    for name, wall, cpu, count in results:
        rates = f"{count / wall / 1e6:.2f} M | {count / cpu / 1e6:.2f} M"
        print(f"| {name} | {wall:.2f} | {cpu:.2f} | {rates} | {baseline / cpu:.1f}x |")
    print("\n| calibration (CPU s) | numpy loop | pure-Python loop |")
    print("|---|---|---|")
    print(f"| before | {before[0]:.2f} | {before[1]:.2f} |")
    print(f"| after | {after[0]:.2f} | {after[1]:.2f} |")


if __name__ == "__main__":
    main()
