"""Patch extraction over many slides, in parallel on a Dask cluster.

By default the work runs on a local cluster of one single-threaded worker process per core
(:func:`local_client`); with a scheduler address it runs on that existing
``dask.distributed`` cluster instead. The work is split into tasks: one sampling task per
slide, then one export task per chunk of ``chunk_size`` patches (so one large slide still keeps
every worker busy). Each worker opens its own slides. Results are gathered with
``as_completed`` as they finish, which feeds the progress bar. A patch over an unreadable tile
is skipped and counted per slide; a slide that fails altogether is reported and the others go
on. The manifest CSV (and ``extraction.json``, a summary) are written atomically at the end.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from napari_wsi_ml.annotations.atomic import atomic_write_text
from napari_wsi_ml.data.config import ExtractionConfig
from napari_wsi_ml.data.export_jobs import SlideJob, label_names, preflight, slide_jobs
from napari_wsi_ml.data.export_tasks import ChunkResult, export_chunk, sample_slide
from napari_wsi_ml.errors import ConfigError

MANIFEST_NAME = "manifest.csv"
SUMMARY_NAME = "extraction.json"
MANIFEST_COLUMNS = (
    "slide", "x", "y", "level", "mpp", "width", "height", "label", "label_index",
    "coverage", "patient", "site", "file", "key",
)  # fmt: skip
"""Manifest columns: level-0 top-left ``x, y``, its level-0 ``width, height``, the read
``level``, µm per output pixel ``mpp``, and where the pixels are (``file``, and ``key`` in a
tar shard)."""


@dataclass
class ExtractionResult:
    """What an extraction wrote.

    Attributes:
        manifest: The manifest CSV.
        patches: Patches written.
        per_slide: Slide id → patches written.
        failed: Slide id → patches skipped over unreadable tiles.
        slide_errors: Slide id → why the whole slide failed.
        errors: Some messages of skipped patches.
    """

    manifest: Path
    patches: int = 0
    per_slide: dict[str, int] = field(default_factory=dict)
    failed: dict[str, int] = field(default_factory=dict)
    slide_errors: dict[str, str] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    @property
    def skipped(self) -> int:
        """Patches skipped over unreadable tiles, all slides."""
        return sum(self.failed.values())


def available_cores() -> int:
    """CPU cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


@contextlib.contextmanager
def local_client(workers: int | None = None) -> Iterator[Any]:
    """A ``distributed.Client`` on a new local cluster: ``workers`` single-threaded processes."""
    from distributed import Client, LocalCluster

    n_workers = workers or available_cores()
    with (
        LocalCluster(
            n_workers=n_workers, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        Client(cluster) as client,
    ):
        yield client


@contextlib.contextmanager
def client_for(config: ExtractionConfig, scheduler: str | None = None) -> Iterator[Any]:
    """The client ``config`` asks for: an existing scheduler's, or a local cluster's."""
    from distributed import Client

    address = scheduler or config.scheduler
    if address is None:
        with local_client(config.workers) as client:
            yield client
        return
    try:
        client = Client(address, timeout="20s")
    except (OSError, TimeoutError) as error:
        raise ConfigError(
            f"{config.source}: cannot reach the Dask scheduler at {address!r} ({error}). "
            "Start it (dask scheduler), check the address, or leave scheduler out to run locally."
        ) from error
    with client:
        yield client


def chunks(n: int, size: int) -> list[slice]:
    """Consecutive slices of at most ``size`` covering ``range(n)``."""
    return [slice(start, min(n, start + size)) for start in range(0, n, size)]


def prepare_extraction(config: ExtractionConfig) -> list[SlideJob]:
    """The slides of ``config``, checked (:func:`~.export_jobs.preflight`) before any work."""
    jobs = slide_jobs(config)
    preflight(config, jobs)
    return jobs


def run_extraction(
    config: ExtractionConfig,
    client: Any,
    *,
    jobs: list[SlideJob] | None = None,
    progress: bool = True,
    on_progress: Callable[[int, int], None] | None = None,
) -> ExtractionResult:
    """Extract the patches ``config`` describes, on the Dask ``client``'s workers.

    Args:
        config: A validated config (:func:`~napari_wsi_ml.data.config.load_config`).
        client: A ``distributed.Client`` (see :func:`client_for`).
        jobs: The slides, from :func:`prepare_extraction` (prepared here when None).
        progress: Show a tqdm progress bar (patches done / patches sampled so far).
        on_progress: Called with ``(done, total)`` after every finished task.

    Raises:
        ConfigError: The slides, their resolution or their annotations do not fit the config
            (every problem listed, before any task runs).
    """
    from distributed import as_completed
    from tqdm import tqdm

    jobs = prepare_extraction(config) if jobs is None else jobs
    names = label_names(config, jobs)
    config.output_dir.mkdir(parents=True, exist_ok=True)
    result = ExtractionResult(config.output_dir / MANIFEST_NAME)
    by_key: dict[str, tuple[str, SlideJob]] = {}
    pending = []
    for job in jobs:
        future = client.submit(sample_slide, config, job, names, pure=False)
        by_key[future.key] = ("sample", job)
        pending.append(future)
    done_chunks: list[ChunkResult] = []
    bar = tqdm(total=0, unit="patch", desc="extract", disable=not progress)
    done = total = 0
    queue = as_completed(pending, with_results=False)
    for future in queue:
        kind, job = by_key.pop(future.key)
        try:
            value = future.result()
        except Exception as error:  # a worker's failure is reported per slide
            result.slide_errors[job.slide] = f"{type(error).__name__}: {error}"
            future.release()
            continue
        future.release()
        if kind == "sample":
            total += len(value)
            bar.total = total
            for number, part in enumerate(chunks(len(value), config.chunk_size)):
                chunk = client.submit(
                    export_chunk,
                    config,
                    job,
                    value.subset(np.arange(part.start, part.stop)),
                    number,
                    pure=False,
                )
                by_key[chunk.key] = ("export", job)
                queue.add(chunk)
        else:
            done_chunks.append(value)
            done += len(value.rows) + value.failed
            bar.update(len(value.rows) + value.failed)
        if on_progress is not None:
            on_progress(done, total)
    bar.close()
    return _finish(config, jobs, names, done_chunks, result)


def _finish(
    config: ExtractionConfig,
    jobs: list[SlideJob],
    names: tuple[str, ...],
    done: list[ChunkResult],
    result: ExtractionResult,
) -> ExtractionResult:
    order = {job.slide: job.index for job in jobs}
    done.sort(key=lambda c: (order[c.slide], c.chunk))
    rows = [row for chunk in done for row in chunk.rows]
    for job in jobs:
        result.per_slide[job.slide] = 0
        result.failed[job.slide] = 0
    for chunk in done:
        result.per_slide[chunk.slide] += len(chunk.rows)
        result.failed[chunk.slide] += chunk.failed
        result.errors.extend(chunk.errors[: max(0, 20 - len(result.errors))])
    result.patches = len(rows)
    write_manifest(rows, result.manifest)
    summary = {
        "config": config.source,
        "label_names": list(names),
        "patches": result.patches,
        "per_slide": result.per_slide,
        "skipped_unreadable": result.failed,
        "slide_errors": result.slide_errors,
        "errors": result.errors,
    }
    atomic_write_text(config.output_dir / SUMMARY_NAME, [json.dumps(summary, indent=2)])
    return result


def write_manifest(rows: list[dict[str, Any]], path: Path) -> Path:
    """Write the manifest CSV (:data:`MANIFEST_COLUMNS`) atomically."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, MANIFEST_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({**row, "mpp": "" if row["mpp"] is None else f"{row['mpp']:.6g}"})
    return atomic_write_text(path, [buffer.getvalue()])


def extract(
    config: ExtractionConfig, *, scheduler: str | None = None, progress: bool = True
) -> ExtractionResult:
    """Run ``config`` on the cluster it names (or a local one): :func:`run_extraction`."""
    jobs = prepare_extraction(config)
    with client_for(config, scheduler) as client:
        return run_extraction(config, client, jobs=jobs, progress=progress)
