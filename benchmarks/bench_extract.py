"""Benchmark patch extraction on two Dask workers against a plain one-process OpenSlide loop.

Run: ``.venv/bin/python benchmarks/bench_extract.py [--size 12288] [--slides 2] [--out DIR]``;
prints a Markdown table. 256 × 256 patches at 0.5 µm/px from 0.25 µm/px synthetic slides
(generated once into ``--out``, then reused), on the grid over tissue (≥ 40 %). Side by side in
one run, on the same patch corners:

- OpenSlide: one process, ``read_region`` at the level the plan reads + the core's resize;
- Dask read: the patches read (and resized) by ``read_patches`` in chunk tasks on a local
  cluster of 1 and 2 single-threaded worker processes (cluster start-up not counted);
- Dask export: the whole ``napari-wsi-ml extract`` run on 2 workers (sampling, reading, PNG
  encoding, tar shards, manifest), cluster start-up not counted.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import openslide

from napari_wsi_ml.data.config import validate_config
from napari_wsi_ml.data.extract import chunks, prepare_extraction, run_extraction
from napari_wsi_ml.data.reading import read_patches
from napari_wsi_ml.data.resolution import ReadPlan, resize_patch
from napari_wsi_ml.data.sampling import grid_patches, tissue_index
from napari_wsi_ml.data.slide_sampling import SamplingOptions, plan_for
from napari_wsi_ml.slide import open_slide
from napari_wsi_ml.synthetic import generate_benchmark_slide

CHUNK = 64


def read_chunk(path: str, xy: np.ndarray, plan: ReadPlan) -> int:
    """A Dask task: read (and resize) the patches at ``xy``; the number read."""
    from napari_wsi_ml.data.export_tasks import worker_slide

    return int(read_patches(worker_slide(Path(path)), xy, plan).ok.sum())


def openslide_loop(work: list[tuple[Path, np.ndarray, ReadPlan]]) -> int:
    """The baseline: plain OpenSlide read_region + resize, one process."""
    count = 0
    for path, xy, plan in work:
        with openslide.OpenSlide(str(path)) as osr:
            for x, y in xy.tolist():
                region = np.asarray(osr.read_region((x, y), plan.level, plan.read_size))
                resize_patch(np.ascontiguousarray(region[..., :3]), plan.patch_size)
                count += 1
    return count


def dask_read(client, work: list[tuple[Path, np.ndarray, ReadPlan]]) -> int:
    """Read every patch in chunk tasks on the client's workers."""
    from distributed import as_completed

    futures = [
        client.submit(read_chunk, str(path), xy[part], plan, pure=False)
        for path, xy, plan in work
        for part in chunks(len(xy), CHUNK)
    ]
    return sum(f.result() for f in as_completed(futures))


def timed(fn, repeats: int = 3, client=None) -> tuple[int, float]:
    """Patches done and the median wall time of ``repeats`` runs, each with cold slide caches."""
    from napari_wsi_ml.data.export_tasks import close_worker_slides

    walls = []
    for _ in range(repeats):
        if client is not None:
            client.run(close_worker_slides)
        start = time.perf_counter()
        count = fn()
        walls.append(time.perf_counter() - start)
    return count, float(np.median(walls))


def main() -> None:
    from distributed import Client, LocalCluster

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=int, default=20_480, help="slide side (multiple of 1024)")
    parser.add_argument("--slides", type=int, default=2)
    parser.add_argument("--out", default=str(Path(tempfile.gettempdir()) / "bench_extract"))
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(args.slides):
        path = out / f"bench_{args.size}_{i}.svs"
        generate_benchmark_slide(path, size=args.size, seed=i, downsample=2)
        paths.append(path)
    options = SamplingOptions(patch_size=256, target_mpp=0.5)
    work = []
    for path in paths:
        path.read_bytes()  # warm the page cache for every method alike
        with open_slide(path) as slide:
            plan = plan_for(slide, options)
            patches = grid_patches(slide, plan, index=tissue_index(slide, plan))
        work.append((path, patches.xy, plan))
    total = sum(len(xy) for _, xy, _ in work)
    rows = []
    n, wall = timed(lambda: openslide_loop(work))
    base = n / wall
    rows.append(("OpenSlide read_region + resize, 1 process", n, wall))
    for workers in (1, 2):
        with (
            LocalCluster(
                n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None
            ) as cluster,
            Client(cluster) as client,
        ):
            n, wall = timed(lambda client=client: dask_read(client, work), client=client)
            rows.append((f"Dask read_patches, {workers} worker(s)", n, wall))
            if workers == 2:
                config = validate_config(
                    {
                        "slides": [str(p) for p in paths],
                        "target_mpp": 0.5,
                        "patch_size": 256,
                        "chunk_size": CHUNK,
                        "output": {"dir": str(out / "export"), "format": "tar"},
                    },
                    source="bench",
                )
                jobs = prepare_extraction(config)
                n, wall = timed(
                    lambda c=config, j=jobs: (
                        run_extraction(c, client, jobs=j, progress=False).patches
                    )
                )
                rows.append(
                    ("Dask export (sample + read + PNG + tar + manifest), 2 workers", n, wall)
                )
    plan = work[0][2]
    print(
        f"{args.slides} slides of {args.size} × {args.size} px at 0.25 µm/px; {total} grid "
        f"patches; plan: level {plan.level}, read {plan.read_size}, out {plan.patch_size}. "
        f"CPUs: {os.cpu_count()}; load average before: {os.getloadavg()[0]:.1f}\n"
    )
    print("| method | patches | wall s | patches/s | × OpenSlide loop |")
    print("|---|---|---|---|---|")
    for name, n, wall in rows:
        print(f"| {name} | {n} | {wall:.2f} | {n / wall:.0f} | {n / wall / base:.2f} |")


if __name__ == "__main__":
    main()
