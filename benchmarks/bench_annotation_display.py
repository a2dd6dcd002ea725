"""ASAP XML with 100k polygons to a usable view: our overview + live window vs plain add_shapes.

Run under a display:

    xvfb-run -a -s "-screen 0 1920x1200x24" .venv/bin/python benchmarks/bench_annotation_display.py

Generates ``--n`` random, mostly non-overlapping polygons of ``--vertices`` vertices over a
100 000 x 100 000 pixel slide, writes them as ASAP XML, then measures in one process, after a
throw-away viewer has paid napari's start-up costs (as in a running napari, where a file is
opened): (a) parsing the XML, (b) ``add_annotation_set`` to the first drawn frame, (b') moving
the view to a zoomed-in region (live, editable shapes) to its frame, (b'') a half zoom (detail
raster), and (c) a plain ``viewer.add_shapes(polygons, shape_type="polygon")`` of ``--plain-n``
of the same polygons to its first frame. (a) and (b) run ``--repeats`` times (the median is
used); (c) once. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from napari_wsi_ml.annotations import read_asap, write_asap
from napari_wsi_ml.annotations.model import Annotation, AnnotationSet, Group
from napari_wsi_ml.coords import xy_to_rowcol

CLASSES = {"tumor": "#E6194B", "stroma": "#3CB44B", "necrosis": "#4363D8", "other": "#F58231"}
EXTENT = 100_000.0
MPP = (0.25, 0.25)


def random_polygons(n: int, vertices: int, seed: int = 0) -> np.ndarray:
    """(n, vertices, 2) level-0 (x, y): star-shaped polygons on a jittered grid."""
    rng = np.random.default_rng(seed)
    side = int(np.ceil(np.sqrt(n)))
    cell = EXTENT / side
    k = np.arange(n)
    cx = (k % side + 0.5 + rng.uniform(-0.15, 0.15, n)) * cell
    cy = (k // side + 0.5 + rng.uniform(-0.15, 0.15, n)) * cell
    radius = rng.uniform(0.15, 0.33, n)[:, None] * cell * rng.uniform(0.7, 1.0, (n, vertices))
    angles = np.linspace(0, 2 * np.pi, vertices, endpoint=False) + rng.uniform(0, 0.15, (n, 1))
    return np.stack(
        [cx[:, None] + radius * np.cos(angles), cy[:, None] + radius * np.sin(angles)], -1
    )


def benchmark_set(polygons: np.ndarray, seed: int = 0) -> AnnotationSet:
    """The polygons as an AnnotationSet of four classes, rounded to 0.01 px as in ASAP files."""
    names = list(CLASSES)
    classes = np.random.default_rng(seed).integers(0, len(names), len(polygons))
    annotations = [
        Annotation(f"Annotation {i}", "Polygon", np.round(ring, 2), names[c], CLASSES[names[c]])
        for i, (ring, c) in enumerate(zip(polygons, classes, strict=True))
    ]
    groups = {name: Group(name, color=color) for name, color in CLASSES.items()}
    return AnnotationSet(annotations=annotations, groups=groups, rater="bench")


def first_frame(viewer) -> np.ndarray:
    """Process pending events and draw the canvas once (what a user would see)."""
    from qtpy.QtWidgets import QApplication

    QApplication.processEvents()
    return viewer.screenshot(canvas_only=True, flash=False)


def new_viewer():
    import napari
    from qtpy.QtWidgets import QApplication

    viewer = napari.Viewer(show=False)
    viewer.window._qt_window.resize(1600, 1000)
    viewer.window._qt_window.show()
    QApplication.processEvents()
    return viewer


def warm_up() -> None:
    """Pay napari's one-off start-up costs (units registry, shaders) before timing anything."""
    viewer = new_viewer()
    viewer.add_image(np.zeros((64, 64, 4), np.uint8), rgb=True)
    viewer.add_shapes([np.array([[0, 0], [0, 10], [10, 5]])], shape_type="polygon")
    first_frame(viewer)
    viewer.close()


def measure_ours(annotation_set: AnnotationSet, out_dir: Path, max_live: int | None) -> dict:
    from napari_wsi_ml.viewer.large_annotations import (
        add_annotation_set,
        camera_of,
        default_max_live_shapes,
    )

    max_live = max_live or default_max_live_shapes()
    viewer = new_viewer()
    start, cpu = time.perf_counter(), time.process_time()
    view = add_annotation_set(
        viewer,
        annotation_set,
        mpp=MPP,
        rater="bench",
        max_live_shapes=max_live,
        extent_wh=(EXTENT, EXTENT),
    )
    image = first_frame(viewer)
    overview_s = time.perf_counter() - start
    overview_cpu = time.process_time() - cpu
    _save(out_dir / "overview.png", image)
    # Zoom to a region holding about max_live / 2 annotations (live, editable shapes).
    width_px = viewer.canvas.size[1]
    width = EXTENT * np.sqrt(max_live / 2 / len(annotation_set))
    camera_of(viewer).zoom = width_px / (width * MPP[0])
    camera_of(viewer).center = (EXTENT / 2 * MPP[1], EXTENT / 2 * MPP[0])
    start = time.perf_counter()
    view.refresh()
    image = first_frame(viewer)
    live_s = time.perf_counter() - start
    _save(out_dir / "live.png", image)
    live = len(view.live_ids)
    # Half-way zoom: too many annotations to edit, drawn at screen resolution.
    camera_of(viewer).zoom = width_px / (EXTENT / 6 * MPP[0])
    start = time.perf_counter()
    view.refresh()
    image = first_frame(viewer)
    detail_s = time.perf_counter() - start
    _save(out_dir / "detail.png", image)
    viewer.close()
    return {
        "overview": overview_s,
        "overview_cpu": overview_cpu,
        "live": live_s,
        "live_n": live,
        "detail": detail_s,
    }


def measure_plain(polygons: list[np.ndarray], out_dir: Path) -> tuple[float, float]:
    viewer = new_viewer()
    start, cpu = time.perf_counter(), time.process_time()
    viewer.add_shapes(polygons, shape_type="polygon", edge_color="yellow", face_color="#ffff0040")
    image = first_frame(viewer)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    _save(out_dir / f"plain_{len(polygons)}.png", image)
    viewer.close()
    return seconds, cpu


def _spread(runs: list[float]) -> str:
    """`` (runs 1.2-1.4 s)`` when there are several runs."""
    return f"; runs {min(runs):.2f}-{max(runs):.2f} s" if len(runs) > 1 else ""


def _save(path: Path, image: np.ndarray) -> None:
    import imageio.v3 as iio

    iio.imwrite(path, image)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000, help="polygons in the XML file")
    parser.add_argument("--vertices", type=int, default=30, help="vertices per polygon")
    parser.add_argument("--plain-n", type=int, default=20_000, help="polygons for add_shapes")
    parser.add_argument(
        "--max-live", type=int, default=None, help="max_live_shapes (default: the view's)"
    )
    parser.add_argument("--repeats", type=int, default=3, help="runs of (a) and (b)")
    parser.add_argument("--out-dir", type=Path, default=Path(tempfile.gettempdir()) / "bench_ann")
    args = parser.parse_args(argv)
    args.out_dir.mkdir(parents=True, exist_ok=True)

    from napari.utils.triangulation_backend import get_backend

    generated = benchmark_set(random_polygons(args.n, args.vertices))
    xml = args.out_dir / "bench.xml"
    write_asap(generated, xml)
    n_vertices = args.n * args.vertices

    warm_up()
    parse_runs, parse_cpu, our_runs = [], [], []
    for _ in range(args.repeats):
        start, cpu = time.perf_counter(), time.process_time()
        parsed = read_asap(xml)
        parse_runs.append(time.perf_counter() - start)
        parse_cpu.append(time.process_time() - cpu)
        assert len(parsed) == args.n
        our_runs.append(measure_ours(parsed, args.out_dir, args.max_live))
    parse_s = float(np.median(parse_runs))
    ours = {key: float(np.median([run[key] for run in our_runs])) for key in our_runs[0]}
    plain_polygons = [xy_to_rowcol(a.coordinates) for a in parsed.annotations[: args.plain_n]]
    plain_s, plain_cpu = measure_plain(plain_polygons, args.out_dir)
    load = os.getloadavg()[0]

    backend = str(get_backend())
    compiled = "bermuda" in sys.modules or "PartSegCore_compiled_backend" in sys.modules
    print(f"\n{args.n} polygons, {n_vertices:,} vertices, {xml.stat().st_size / 1e6:.0f} MB XML; ")
    print(f"napari triangulation backend: {backend} (compiled module loaded: {compiled})\n")
    print("| step | polygons | seconds | CPU s | note |")
    print("|---|---:|---:|---:|---|")
    rate = n_vertices / parse_s / 1e6
    spread = _spread(parse_runs)
    parse_c = float(np.median(parse_cpu))
    print(
        f"| (a) read_asap | {args.n} | {parse_s:.2f} | {parse_c:.2f}"
        f" | {rate:.2f} M vertices/s{spread} |"
    )
    spread = _spread([run["overview"] for run in our_runs])
    print(
        f"| (b) add_annotation_set → first frame | {args.n} | {ours['overview']:.2f}"
        f" | {ours['overview_cpu']:.2f} | overview{spread} |"
    )
    print(
        f"| (b') zoom in → live shapes drawn | {ours['live_n']:.0f} | {ours['live']:.2f}"
        " | | editable |"
    )
    print(f"| (b'') half zoom → detail raster | {args.n} | {ours['detail']:.2f} | | |")
    print(
        f"| (c) plain add_shapes → first frame | {args.plain_n} | {plain_s:.2f}"
        f" | {plain_cpu:.2f} | |"
    )
    display_ratio = plain_s / ours["overview"]
    total_ratio = (parse_s + plain_s) / (parse_s + ours["overview"])
    cpu_ratio = (parse_c + plain_cpu) / (parse_c + ours["overview_cpu"])
    scaled = f" (plain at {args.plain_n} of {args.n} polygons)" if args.plain_n < args.n else ""
    print(f"\nratio (c)/(b): {display_ratio:.1f}x{scaled}")
    print(f"ratio (a+c)/(a+b), XML to usable view: {total_ratio:.1f}x{scaled}")
    print(f"the same in CPU seconds of this process (all threads): {cpu_ratio:.1f}x{scaled}")
    print(f"load average (1 min) at the end: {load:.1f} on {os.cpu_count()} CPUs")
    print(f"screenshots in {args.out_dir}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
