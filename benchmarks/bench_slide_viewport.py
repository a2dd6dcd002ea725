"""Viewport benchmark: Slide.levels vs OpenSlide read_region vs napari-wsi's dask path.

Writes (once) a synthetic 51,200 x 51,200 px Aperio-style JPEG-tiled pyramid under
``bench_output/`` (or ``--slide-dir``), then times random 1920 x 1080 viewports inside tissue at
level 0 and at an intermediate level, side by side, plus revisits (cache hits) and resident
memory after 1,000 random viewports. Prints a Markdown table.

Run: ``.venv/bin/python benchmarks/bench_slide_viewport.py [--viewports 40]``
"""

from __future__ import annotations

import argparse
import gc
import statistics
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import cv2
import dask.array as da
import numpy as np
import psutil
import tifffile

SIZE = 51_200
TILE = 256
DOWNSAMPLES = (1, 4, 16, 64)
VIEW_W, VIEW_H = 1920, 1080
DESCRIPTION = (
    f"Aperio Image Library v12.0.0\n{SIZE}x{SIZE} (256x256) JPEG/RGB Q=80|AppMag = 40|MPP = 0.25"
)


def tissue_map(n: int) -> np.ndarray:
    """Low-resolution tissue map (n x n), True inside two big blobs."""
    yy, xx = np.mgrid[0:n, 0:n] / n
    return ((xx - 0.35) ** 2 / 0.08 + (yy - 0.5) ** 2 / 0.15 < 1) | (
        (xx - 0.75) ** 2 / 0.03 + (yy - 0.45) ** 2 / 0.06 < 1
    )


def tile_pool(rng: np.random.Generator, count: int = 48) -> list[np.ndarray]:
    """H&E-like textured tiles: pink stroma with purple nucleus-like dots and grain."""
    pool = []
    for _ in range(count):
        field = cv2.GaussianBlur(rng.random((TILE, TILE)).astype(np.float32), (0, 0), 6)
        field = (field - field.min()) / (np.ptp(field) + 1e-6)
        rgb = (
            np.array([230, 160, 200], np.float32) * (1 - field[..., None])
            + np.array([190, 110, 170], np.float32) * field[..., None]
        )
        for _ in range(int(rng.integers(20, 60))):
            c = (int(rng.integers(0, TILE)), int(rng.integers(0, TILE)))
            cv2.circle(rgb, c, int(rng.integers(3, 7)), (100, 50, 140), -1)
        rgb += rng.normal(0, 8, rgb.shape)
        pool.append(np.clip(rgb, 0, 255).astype(np.uint8))
    return pool


def write_slide(path: Path) -> None:
    """Write the pyramid tile by tile (little memory) with tifffile."""
    rng = np.random.default_rng(0)
    pool = tile_pool(rng)
    background = np.clip(243 + rng.normal(0, 2, (TILE, TILE, 3)), 0, 255).astype(np.uint8)
    with tifffile.TiffWriter(path, bigtiff=True) as tif:
        for index, ds in enumerate(DOWNSAMPLES):
            side = SIZE // ds
            n = -(-side // TILE)
            inside = tissue_map(n)
            choice = rng.integers(0, len(pool), size=(n, n))

            def tiles(
                inside: np.ndarray = inside, choice: np.ndarray = choice
            ) -> Iterator[np.ndarray]:
                for r in range(inside.shape[0]):
                    for c in range(inside.shape[1]):
                        yield pool[choice[r, c]] if inside[r, c] else background

            tif.write(
                tiles(),
                shape=(side, side, 3),
                dtype=np.uint8,
                tile=(TILE, TILE),
                compression="jpeg",
                compressionargs={"level": 80},
                photometric="rgb",
                description=DESCRIPTION if index == 0 else None,
                subfiletype=0 if index == 0 else 1,
                metadata=None,
            )


def viewports(level_side: int, rng: np.random.Generator, count: int) -> list[tuple[int, int]]:
    """Random viewport origins (level pixels) whose centre lies in tissue."""
    inside = tissue_map(256)
    out: list[tuple[int, int]] = []
    while len(out) < count:
        x = int(rng.integers(0, level_side - VIEW_W))
        y = int(rng.integers(0, level_side - VIEW_H))
        cx, cy = (x + VIEW_W // 2) * 256 // level_side, (y + VIEW_H // 2) * 256 // level_side
        if inside[cy, cx]:
            out.append((x, y))
    return out


def median_ms(fn: Callable[[int, int], object], boxes: list[tuple[int, int]]) -> float:
    times = []
    for x, y in boxes:
        start = time.perf_counter()
        fn(x, y)
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--slide-dir", type=Path, default=Path("bench_output"))
    parser.add_argument("--viewports", type=int, default=40)
    parser.add_argument("--memory-viewports", type=int, default=1000)
    args = parser.parse_args()

    import openslide
    from napari_wsi.backends.openslide import OpenSlideStore

    from napari_wsi_ml.slide import DEFAULT_CACHE_BYTES, open_slide

    args.slide_dir.mkdir(parents=True, exist_ok=True)
    path = args.slide_dir / f"synthetic-{SIZE}.svs"
    if not path.exists():
        start = time.perf_counter()
        write_slide(path)
        print(
            f"wrote {path} ({path.stat().st_size / 1e6:.0f} MB) "
            f"in {time.perf_counter() - start:.0f} s"
        )

    start = time.perf_counter()
    slide = open_slide(path)
    open_s = time.perf_counter() - start
    osr = openslide.OpenSlide(str(path))
    peer = OpenSlideStore(path).to_layer_data_tuples()[0][0]
    rng = np.random.default_rng(1)
    rows = []
    for level in (0, 1):
        ds = int(slide.level_downsamples[level])
        side = slide.level_dimensions[level][0]
        boxes = viewports(side, rng, args.viewports)
        arr, peer_arr = slide.levels[level], peer[level]

        def view(x: int, y: int, a: da.Array = arr) -> np.ndarray:
            return np.asarray(a[y : y + VIEW_H, x : x + VIEW_W])  # what napari does

        slide.cache.clear()
        median_ms(view, boxes)  # first visits, to fill the cache
        misses = slide.cache.misses
        revisit = median_ms(view, boxes)  # every viewport again, all its tiles cached
        tasks = da.Array(arr.dask, arr.name, arr.chunks, meta=arr._meta)  # plain dask slicing
        revisit_tasks = median_ms(
            lambda x, y, a=tasks: np.asarray(a[y : y + VIEW_H, x : x + VIEW_W]), boxes
        )
        if slide.cache.misses != misses:
            raise RuntimeError("a revisited viewport missed the cache; raise its bound")
        boxes2 = viewports(side, rng, args.viewports)  # fresh regions: no cache help for others
        slide.cache.clear()
        ours = median_ms(view, boxes2)  # first visits, read before OpenSlide reads them
        reference = median_ms(
            lambda x, y, lv=level, d=ds: osr.read_region((x * d, y * d), lv, (VIEW_W, VIEW_H)),
            boxes2,
        )
        napari_wsi = median_ms(
            lambda x, y, a=peer_arr: np.asarray(a[y : y + VIEW_H, x : x + VIEW_W]), boxes
        )
        rows.append((level, side, ours, reference, napari_wsi, revisit, revisit_tasks))

    print(f"\nopen_slide: {1000 * open_s:.0f} ms; readers {slide.level_readers}\n")
    print(
        "| level | level size | Slide.levels (ms) | OpenSlide read_region (ms) "
        "| napari-wsi dask (ms) | ours / read_region | ours / napari-wsi | revisit (ms) "
        "| revisit / read_region | revisit, one dask task per tile (ms) |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for level, side, ours, ref, peer_ms, revisit, revisit_tasks in rows:
        print(
            f"| {level} | {side} | {ours:.1f} | {ref:.1f} | {peer_ms:.1f} | {ours / ref:.2f} | "
            f"{ours / peer_ms:.2f} | {revisit:.2f} | {revisit / ref:.3f} | {revisit_tasks:.1f} |"
        )

    process = psutil.Process()
    gc.collect()
    rss0 = process.memory_info().rss
    level0 = slide.levels[0]
    for x, y in viewports(SIZE, rng, args.memory_viewports):
        np.asarray(level0[y : y + VIEW_H, x : x + VIEW_W])
    gc.collect()
    grown = (process.memory_info().rss - rss0) / 2**20
    print(
        f"\nRSS growth after {args.memory_viewports} random level-0 viewports: {grown:.0f} MiB "
        f"(cache holds {slide.cache.nbytes / 2**20:.0f} MiB; "
        f"bound {DEFAULT_CACHE_BYTES / 2**20:.0f} MiB "
        f"+ 200 MiB allowed)"
    )


if __name__ == "__main__":
    main()
