"""Patch features of many slides, extracted once and cached, in parallel over slides.

:func:`slide_features` is the entry point: it builds the encoder once here (for its key),
reads every slide it finds in the :class:`~.feature_cache.FeatureCache`, and extracts the
others — one task per slide — in this process (``workers=1``), on a local Dask cluster of
single-threaded worker processes (the default, as :mod:`napari_wsi_ml.data.extract` does), or
on an existing ``dask.distributed`` scheduler (``scheduler="tcp://host:8786"``). Each result
is written to the cache as soon as it arrives, so an interrupted extraction resumes where it
stopped. A worker rebuilds the encoder from its :class:`~.feature_encoder.EncoderSpec` (once
per process) and refuses to work when its encoder's key differs from the one asked for
(another timm or torch version on a cluster node would silently give other features).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import torch

from napari_wsi_ml.data.export_tasks import worker_slide
from napari_wsi_ml.data.extract import available_cores, local_client
from napari_wsi_ml.data.reading import read_patches
from napari_wsi_ml.errors import ConfigError, SlideError
from napari_wsi_ml.training.feature_cache import FeatureCache, SlideFeatureJob, SlideFeatures
from napari_wsi_ml.training.feature_encoder import (
    EncoderSpec,
    PatchEncoder,
    build_encoder,
    encoder_description,
    encoder_key,
)

Progress = Callable[[int, int, SlideFeatures], None]
"""Called with ``(slides done, slides in all, the slide's features)`` after each slide."""

SCHEDULER_TIMEOUT = "20s"
"""How long to wait for a Dask scheduler to answer."""

_ENCODERS: dict[EncoderSpec, tuple[PatchEncoder, str]] = {}


def process_encoder(spec: EncoderSpec) -> tuple[PatchEncoder, str]:
    """This process's encoder for ``spec`` and its key (built on first use)."""
    if spec not in _ENCODERS:
        _ENCODERS.clear()  # one encoder per process at a time
        encoder = build_encoder(spec)
        _ENCODERS[spec] = (encoder, encoder_key(spec.backbone, encoder))
    return _ENCODERS[spec]


def compute_slide_features(
    spec: EncoderSpec,
    key: str,
    job: SlideFeatureJob,
    *,
    batch_size: int = 64,
    torch_threads: int | None = None,
    device: str = "cpu",
) -> SlideFeatures:
    """Extract the features of one slide (in whichever process runs it; no cache involved).

    The encoder runs on ``device`` (features are float32 on the CPU either way).

    Raises:
        SlideError: The slide file changed since it was planned (another fingerprint).
        RuntimeError: This process's encoder has another key than ``key``.
    """
    if torch_threads is not None:
        torch.set_num_threads(torch_threads)
    encoder, own_key = process_encoder(spec)
    if own_key != key:
        raise RuntimeError(
            f"encoder {spec.backbone!r} has key {own_key[:12]}… in this process, {key[:12]}… "
            "where the job was planned: install the same torch and timm versions everywhere."
        )
    encoder = encoder.to(device)
    slide = worker_slide(job.path)
    if slide.fingerprint != job.fingerprint:
        raise SlideError(f"Slide '{job.path}' changed since the job was planned; start it again.")
    chunks, kept, skipped = [], [], 0
    for start in range(0, len(job.xy), batch_size):
        xy = job.xy[start : start + batch_size]
        batch = read_patches(slide, xy, job.plan)
        skipped += batch.failed
        if batch.ok.any():
            images = torch.from_numpy(batch.good()).permute(0, 3, 1, 2).contiguous()
            chunks.append(encoder(images.to(device)).cpu().numpy())
            kept.append(xy[batch.ok])
    width = encoder.num_features
    return SlideFeatures(
        slide=job.slide,
        features=np.concatenate(chunks) if chunks else np.zeros((0, width), np.float32),
        xy=np.concatenate(kept) if kept else np.zeros((0, 2), np.int64),
        encoder_key=key,
        grid_key=job.grid_key,
        skipped=skipped,
    )


@contextlib.contextmanager
def feature_client(scheduler: str | None, workers: int | None) -> Iterator[Any]:
    """A ``distributed.Client``: the scheduler's at ``scheduler``, else a new local cluster's."""
    if scheduler is None:
        with local_client(workers) as client:
            yield client
        return
    from distributed import Client

    try:
        client = Client(scheduler, timeout=SCHEDULER_TIMEOUT)
    except (OSError, TimeoutError) as error:
        raise ConfigError(
            f"scheduler: cannot reach the Dask scheduler at {scheduler!r} ({error}). Start it "
            "(dask scheduler), check the address, or leave scheduler out to run locally."
        ) from error
    with client:
        yield client


def slide_features(
    jobs: Sequence[SlideFeatureJob],
    spec: EncoderSpec,
    cache: FeatureCache,
    *,
    scheduler: str | None = None,
    workers: int | None = None,
    batch_size: int = 64,
    device: str = "cpu",
    progress: Progress | None = None,
) -> dict[str, SlideFeatures]:
    """The features of every job's slide: from the cache, else extracted and cached.

    Args:
        jobs: One per slide (unique slide ids).
        spec: The encoder.
        cache: Where features are kept.
        scheduler: Address of a ``dask.distributed`` scheduler; None runs locally.
        workers: Local worker processes (default: the cores available); 1 extracts in this
            process, without Dask. Ignored with ``scheduler``.
        batch_size: Patches per encoder call.
        device: Where the encoder runs when extracting in this process (Dask workers use
            their CPU).
        progress: Called after each slide (cached slides first).

    Returns:
        Slide id → features, in the order of ``jobs``.

    Raises:
        SlideError: Slides failed (every one named; the others' features are cached).
    """
    encoder, key = process_encoder(spec)
    cache.describe_encoder(key, encoder_description(spec.backbone, encoder))
    found: dict[str, SlideFeatures] = {}
    missing = []
    for job in jobs:
        hit = cache.load(key, job)
        if hit is None:
            missing.append(job)
        else:
            found[job.slide] = hit
            if progress is not None:
                progress(len(found), len(jobs), hit)
    errors: dict[str, str] = {}

    def store(job: SlideFeatureJob, result: SlideFeatures) -> None:
        cache.save(result, job)
        found[job.slide] = result
        if progress is not None:
            progress(len(found), len(jobs), result)

    workers = workers or available_cores()
    if missing and scheduler is None and (workers == 1 or len(missing) == 1):
        for job in missing:  # in this process, without Dask
            try:
                result = compute_slide_features(
                    spec, key, job, batch_size=batch_size, device=device
                )
            except SlideError as error:
                errors[job.slide] = str(error)
                continue
            store(job, result)
    elif missing:
        _on_cluster(missing, spec, key, scheduler, workers, batch_size, store, errors)
    if errors:
        listing = "\n".join(f"  {slide}: {message}" for slide, message in errors.items())
        raise SlideError(
            f"Feature extraction failed for {len(errors)} slide(s); the features of the others "
            f"are cached, so a new run extracts only these:\n{listing}"
        )
    return {job.slide: found[job.slide] for job in jobs}


def _on_cluster(
    missing: list[SlideFeatureJob],
    spec: EncoderSpec,
    key: str,
    scheduler: str | None,
    workers: int,
    batch_size: int,
    store: Callable[[SlideFeatureJob, SlideFeatures], None],
    errors: dict[str, str],
) -> None:
    """Extract ``missing`` on Dask, one task per slide, storing results as they finish."""
    from distributed import as_completed

    n_local = min(workers, len(missing))
    threads = None if scheduler is not None else max(1, available_cores() // n_local)
    with feature_client(scheduler, n_local) as client:
        by_key, futures = {}, []
        for job in missing:
            future = client.submit(
                compute_slide_features, spec, key, job, batch_size=batch_size,
                torch_threads=threads, pure=False,
            )  # fmt: skip
            by_key[future.key] = job
            futures.append(future)
        for future in as_completed(futures):
            job = by_key[future.key]
            try:
                result = future.result()
            except Exception as error:  # a worker's failure is reported per slide
                errors[job.slide] = f"{type(error).__name__}: {error}"
                continue
            finally:
                future.release()
            store(job, result)
