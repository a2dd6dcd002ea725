"""The work of one extraction task, run on a Dask worker: sample one slide, or export one chunk.

Each worker process opens its own slides (:func:`worker_slide`, a few kept open per process)
and reads patches with :func:`~napari_wsi_ml.data.reading.read_patches`, so exported pixels
are exactly "read the level region, then :func:`~napari_wsi_ml.data.resolution.resize_patch`".
A patch over an undecodable tile is skipped and counted; the task goes on.

Output formats (every file written to a temporary name, then renamed):

- ``png``: ``<dir>/<label>/<key>.png`` (``unlabelled`` when a patch has no label), the layout
  of an image-folder dataset;
- ``tar``: one WebDataset-style shard per chunk, ``<dir>/shards/<slide>-<chunk>.tar``, holding
  ``<key>.png``, ``<key>.cls`` (label index) and ``<key>.json`` (the manifest row) per patch.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import tarfile
import tempfile
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from napari_wsi_ml.data.config import ExtractionConfig
from napari_wsi_ml.data.export_jobs import SlideJob, read_job_annotations
from napari_wsi_ml.data.patchset import PatchSet
from napari_wsi_ml.data.reading import read_patches
from napari_wsi_ml.data.slide_sampling import sample_slide_patches
from napari_wsi_ml.errors import SaveError

if TYPE_CHECKING:
    from napari_wsi_ml.slide import Slide

OPEN_SLIDES_PER_WORKER = 4
UNLABELLED_FOLDER = "unlabelled"
MAX_ERRORS_KEPT = 5

_open: OrderedDict[str, Slide] = OrderedDict()
_open_lock = threading.Lock()


def worker_slide(path: Path) -> Slide:
    """This process's open handle on ``path`` (the least recently used one closed beyond 4)."""
    from napari_wsi_ml.slide import open_slide

    key = str(path)
    with _open_lock:
        if key in _open:
            _open.move_to_end(key)
            return _open[key]
        slide = open_slide(path)
        _open[key] = slide
        while len(_open) > OPEN_SLIDES_PER_WORKER:
            _, old = _open.popitem(last=False)
            old.close()
        return slide


def close_worker_slides() -> int:
    """Close this process's open slides (and drop their tile caches); how many were open."""
    with _open_lock:
        count = len(_open)
        while _open:
            _, slide = _open.popitem()
            slide.close()
    return count


def sample_slide(config: ExtractionConfig, job: SlideJob, names: tuple[str, ...]) -> PatchSet:
    """The patches of one slide under ``config`` (on a worker, with its own slide handle)."""
    options = config.sampling_options()
    annotations = read_job_annotations(job) if options.strategy == "annotations" else None
    label = config.label_map.get(job.label, job.label) or None
    sample = sample_slide_patches(
        worker_slide(job.path),
        options,
        annotations=annotations,
        label=label,
        label_names=names,
        index=job.index,
    )
    return sample.patches


@dataclass
class ChunkResult:
    """What one export task did.

    Attributes:
        slide: The slide id.
        chunk: Chunk number within the slide.
        rows: Manifest rows of the patches written.
        failed: Patches skipped because a tile under them could not be decoded.
        errors: The first few of their messages.
    """

    slide: str
    chunk: int
    rows: list[dict[str, Any]] = field(default_factory=list)
    failed: int = 0
    errors: list[str] = field(default_factory=list)


def patch_key(slide: str, x: int, y: int) -> str:
    """Sample key of a patch: no dots (WebDataset splits a member name at its first dot)."""
    return f"{slide.replace('.', '_')}_x{x:07d}_y{y:07d}"


def export_chunk(
    config: ExtractionConfig, job: SlideJob, patches: PatchSet, chunk: int
) -> ChunkResult:
    """Read ``patches`` (one chunk of a slide) and write them in ``config``'s output format."""
    slide = worker_slide(job.path)
    batch = read_patches(slide, patches.xy, patches.plan)
    result = ChunkResult(job.slide, chunk, failed=batch.failed)
    result.errors = [message for _, message in batch.errors[:MAX_ERRORS_KEPT]]
    mpp = patches.plan.target_mpp[0] if patches.plan.target_mpp is not None else None
    encoded: list[tuple[str, bytes, dict[str, Any]]] = []
    for i in np.flatnonzero(batch.ok).tolist():
        x, y = (int(v) for v in patches.xy[i])
        label_index = int(patches.labels[i])
        row = {
            "slide": job.slide,
            "x": x,
            "y": y,
            "level": patches.plan.level,
            "mpp": mpp,
            "width": patches.plan.extent[0],
            "height": patches.plan.extent[1],
            "label": patches.label_name(label_index),
            "label_index": label_index,
            "coverage": round(float(patches.coverage[i]), 4),  # type: ignore[index]
            "patient": job.patient,
            "site": job.site,
            "file": "",
            "key": patch_key(job.slide, x, y),
        }
        encoded.append((row["key"], encode_png(batch.images[i]), row))
    if config.output_format == "png":
        for key, png, row in encoded:
            relative = Path(row["label"] or UNLABELLED_FOLDER) / f"{key}.png"
            atomic_write_bytes(config.output_dir / relative, png)
            row["file"] = relative.as_posix()
    elif encoded:
        relative = Path("shards") / f"{job.slide}-{chunk:05d}.tar"
        for _, _, row in encoded:
            row["file"] = relative.as_posix()
        write_shard(config.output_dir / relative, encoded)
    result.rows = [row for _, _, row in encoded]
    return result


def encode_png(image: np.ndarray) -> bytes:
    """Lossless PNG bytes of an RGB uint8 image."""
    ok, data = cv2.imencode(".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    if not ok:
        raise SaveError("OpenCV could not encode a patch as PNG; check the OpenCV install.")
    return data.tobytes()


def _temporary(path: Path) -> tuple[int, str]:
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        return tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as error:
        raise SaveError(
            f"Cannot write {path}: {error.strerror or error}. Choose a writable output dir."
        ) from error


def _finish(tmp_name: str, path: Path, error: OSError | None) -> None:
    if error is None:
        try:
            os.replace(tmp_name, path)
            return
        except OSError as replace_error:
            error = replace_error
    with contextlib.suppress(OSError):
        os.unlink(tmp_name)
    raise SaveError(
        f"Cannot write {path}: {error.strerror or error}. Free some disk space or choose "
        "another output dir."
    ) from error


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file and a rename."""
    fd, tmp_name = _temporary(path)
    error = None
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
    except OSError as caught:
        error = caught
    _finish(tmp_name, path, error)


def write_shard(path: Path, samples: list[tuple[str, bytes, dict[str, Any]]]) -> None:
    """Write a WebDataset-style tar shard of ``(key, png bytes, row)`` samples, atomically."""
    fd, tmp_name = _temporary(path)
    now = time.time()
    error = None
    try:
        with os.fdopen(fd, "wb") as handle, tarfile.open(fileobj=handle, mode="w") as tar:
            for key, png, row in samples:
                members = (
                    ("png", png),
                    ("cls", str(row["label_index"]).encode()),
                    ("json", json.dumps(row).encode()),
                )
                for extension, data in members:
                    info = tarfile.TarInfo(f"{key}.{extension}")
                    info.size, info.mtime, info.mode = len(data), now, 0o644
                    tar.addfile(info, io.BytesIO(data))
    except OSError as caught:
        error = caught
    _finish(tmp_name, path, error)
