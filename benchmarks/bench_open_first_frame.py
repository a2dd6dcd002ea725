"""Open-to-first-frame in napari: napari-wsi-ml's reader vs the napari-wsi package, one run.

For each reader and repetition: a fresh, shown napari viewer; the clock starts; the slide is
opened through the reader plugin (``viewer.open(path, plugin=...)``); Qt events are processed
until every layer reports its visible data loaded; the canvas is rendered once
(``viewer.screenshot(canvas_only=True)``, which draws the scene). That is the first frame.
Tile reads by level are counted for napari-wsi-ml (opening must touch only low levels).

Uses the 51,200 × 51,200 px JPEG-tiled slide of ``bench_slide_viewport.py`` (written once
under ``bench_output/``). Run under a display, e.g.::

    xvfb-run -a -s "-screen 0 1920x1200x24" .venv/bin/python benchmarks/bench_open_first_frame.py
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections import Counter
from pathlib import Path

from bench_slide_viewport import SIZE, write_slide

READERS = {
    "napari-wsi-ml": "napari-wsi-ml",
    "napari-wsi (OpenSlide backend)": "napari-wsi",
    "napari floor: dask zeros, same shapes and chunks, no decoding": None,
}
TARGET_S = 1.0


def zeros_pyramid(path: Path) -> list:
    """Dask arrays of zeros with the slide's level shapes and 256-px chunks (no decoding)."""
    import dask.array as da
    import openslide

    with openslide.OpenSlide(path) as slide:
        shapes = [(h, w, 3) for w, h in slide.level_dimensions]
    return [da.zeros(shape, dtype="uint8", chunks=(256, 256, 3)) for shape in shapes]


def open_to_first_frame(path: Path, plugin: str | None) -> tuple[float, int]:
    """Seconds from ``viewer.open`` to the first rendered frame, and the number of layers.

    ``plugin=None`` adds :func:`zeros_pyramid` with ``add_image`` instead: napari's own floor.
    """
    import napari
    from qtpy.QtWidgets import QApplication

    viewer = napari.Viewer(show=True)
    viewer.window.resize(1600, 1000)
    for _ in range(20):
        QApplication.processEvents()
    zeros = zeros_pyramid(path) if plugin is None else None
    start = time.perf_counter()
    if zeros is not None:
        layers = [viewer.add_image(zeros, multiscale=True, rgb=True, contrast_limits=(0, 255))]
    else:
        layers = viewer.open(path, plugin=plugin)
    while not all(layer.loaded for layer in layers):
        QApplication.processEvents()
    QApplication.processEvents()
    viewer.screenshot(canvas_only=True, flash=False)
    elapsed = time.perf_counter() - start
    viewer.close()
    return elapsed, len(layers)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--slide-dir", type=Path, default=Path("bench_output"))
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    from napari_wsi_ml.slide import dask_levels

    args.slide_dir.mkdir(parents=True, exist_ok=True)
    path = args.slide_dir / f"synthetic-{SIZE}.svs"
    if not path.exists():
        write_slide(path)

    reads: Counter[int] = Counter()
    original_tile = dask_levels.CachedTiles.tile

    def counting_tile(self, level: int, col: int, row: int):  # type: ignore[no-untyped-def]
        reads[level] += 1
        return original_tile(self, level, col, row)

    dask_levels.CachedTiles.tile = counting_tile  # type: ignore[method-assign]
    open_to_first_frame(path, "napari-wsi-ml")  # warm-up: imports, plugin discovery, GL
    open_to_first_frame(path, "napari-wsi")
    reads.clear()
    times: dict[str, list[float]] = {name: [] for name in READERS}
    for _ in range(args.repeats):  # interleaved, so that both see the same machine state
        for name, plugin in READERS.items():
            times[name].append(open_to_first_frame(path, plugin)[0])

    print(f"Open-to-first-frame, {SIZE:,} × {SIZE:,} px JPEG-tiled SVS, {args.repeats} runs each\n")
    print("| reader | median (s) | min (s) | max (s) |")
    print("|---|---|---|---|")
    for name, values in times.items():
        print(
            f"| {name} | {statistics.median(values):.2f} | {min(values):.2f} | {max(values):.2f} |"
        )
    ours = statistics.median(times["napari-wsi-ml"])
    peer = statistics.median(times["napari-wsi (OpenSlide backend)"])
    verdict = "met" if ours <= TARGET_S else "NOT met"
    print(f"\nnapari-wsi-ml / napari-wsi: {ours / peer:.2f}×; target ≤ {TARGET_S:.0f} s: {verdict}")
    per_open = {level: count / args.repeats for level, count in sorted(reads.items())}
    print(f"napari-wsi-ml tiles read per open, by level: {per_open}")


if __name__ == "__main__":
    main()
