"""How many live shapes a window of a large annotation set can hold: load and frame times.

Run under a display:

    xvfb-run -a -s "-screen 0 1920x1200x24" .venv/bin/python benchmarks/bench_live_window.py

Shows 40 000 random 30-vertex polygons with ``add_annotation_set`` and, for each window limit
``max_live_shapes`` and each napari triangulation backend, zooms to a region holding about 90 % of
the limit, then measures (1) loading those polygons into the live Shapes layer until the frame is
drawn, and (2) the mean time of a frame while panning a little within the window (no reload).
Prints a Markdown table; the defaults of ``MAX_LIVE_SHAPES_COMPILED`` / ``_PYTHON`` come from it.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_annotation_display import EXTENT, MPP, benchmark_set, random_polygons

BACKENDS = {"compiled": "Fastest available", "python": "Pure python"}


def measure(viewer, annotation_set, limit: int) -> tuple[int, float, float]:
    """(live shapes, load seconds, frame seconds) for a window of about 0.9 ``limit`` polygons."""
    from qtpy.QtWidgets import QApplication

    from napari_wsi_ml.viewer.large_annotations import add_annotation_set, camera_of

    view = add_annotation_set(
        viewer, annotation_set, mpp=MPP, max_live_shapes=limit, extent_wh=(EXTENT, EXTENT)
    )
    view._margin = 0.0  # the window is exactly what is in view
    height_px, width_px = viewer.canvas.size
    width = EXTENT * np.sqrt(0.9 * limit / len(annotation_set) * width_px / height_px)
    camera = camera_of(viewer)
    camera.zoom = width_px / (width * MPP[0])
    camera.center = (EXTENT / 2 * MPP[1], EXTENT / 2 * MPP[0])
    start = time.perf_counter()
    view.refresh()
    QApplication.processEvents()
    viewer.screenshot(canvas_only=True, flash=False)
    load = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(5):
        camera.center = (camera.center[0], camera.center[1] + 5.0)
        QApplication.processEvents()
        viewer.screenshot(canvas_only=True, flash=False)
    frame = (time.perf_counter() - start) / 5
    live = view.shapes_layer.nshapes
    viewer.layers.remove(view.shapes_layer)  # the overview goes with it
    return live, load, frame


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=40_000, help="polygons in the set")
    parser.add_argument("--compiled", type=int, nargs="*", default=[1000, 2500, 5000])
    parser.add_argument("--python", type=int, nargs="*", default=[500, 1000])
    args = parser.parse_args(argv)

    import napari
    from napari.utils.triangulation_backend import TriangulationBackend, set_backend
    from qtpy.QtWidgets import QApplication

    annotation_set = benchmark_set(random_polygons(args.n, 30))
    viewer = napari.Viewer(show=True)
    viewer.window._qt_window.resize(1600, 1000)
    QApplication.processEvents()
    print("| triangulation | max_live_shapes | live shapes | load + frame (s) | pan frame (ms) |")
    print("|---|---:|---:|---:|---:|")
    for key, limits in (("compiled", args.compiled), ("python", args.python)):
        set_backend(TriangulationBackend(BACKENDS[key]))
        for limit in limits:
            live, load, frame = measure(viewer, annotation_set, limit)
            print(f"| {key} | {limit} | {live} | {load:.2f} | {frame * 1000:.0f} |", flush=True)
    viewer.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
