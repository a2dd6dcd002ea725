"""An on-disk cache of patch features, one file per (encoder, slide, patch grid).

Layout under the cache root::

    <encoder key[:16]>/encoder.json                      what the encoder is (readable)
    <encoder key[:16]>/<fingerprint[:32]>-<grid key>.npz  features of one slide's grid

A file is named by the :func:`~.feature_encoder.encoder_key` (model, weights digest, input size,
normalisation), the slide's content fingerprint and the :attr:`SlideFeatureJob.grid_key` (the
read plan: level, sizes, target resolution; and the exact patch corners). Any change of weights,
slide file or grid therefore reads another file; nothing is ever recomputed for a hit.

Files are ``.npz`` (``features`` float32 ``(N, F)``, ``xy`` int64 ``(N, 2)``, ``metadata`` a
JSON string), read with ``allow_pickle=False`` and written to a temporary name, then renamed.
:meth:`FeatureCache.load` checks the metadata (keys, shapes) and a SHA-256 of the arrays: a
truncated, corrupt or foreign file counts as a miss (and is recomputed and replaced).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np

from napari_wsi_ml.data.patchset import PatchSet
from napari_wsi_ml.data.resolution import ReadPlan
from napari_wsi_ml.errors import SaveError

log = logging.getLogger(__name__)

CACHE_VERSION = 1


@dataclass(frozen=True, eq=False)
class SlideFeatureJob:
    """The patches of one slide whose features are wanted.

    Attributes:
        slide: Slide id.
        path: The slide file.
        fingerprint: The slide's content fingerprint (:attr:`Slide.fingerprint`).
        plan: How patches are read.
        xy: ``(N, 2)`` int64 level-0 top-left corners ``(x, y)``.
    """

    slide: str
    path: Path
    fingerprint: str
    plan: ReadPlan
    xy: np.ndarray

    @classmethod
    def from_patches(cls, patches: PatchSet, fingerprint: str) -> SlideFeatureJob:
        """The job of a :class:`PatchSet` (which must name its slide file)."""
        if not patches.slide_path:
            raise ValueError(f"patch set of {patches.slide_name!r} has no slide file")
        xy = np.ascontiguousarray(patches.xy, dtype=np.int64)
        return cls(patches.slide_name, Path(patches.slide_path), fingerprint, patches.plan, xy)

    @property
    def grid_key(self) -> str:
        """16 hex characters over the read plan and the patch corners."""
        digest = hashlib.sha256(json.dumps(self.plan.to_dict(), sort_keys=True).encode())
        digest.update(np.ascontiguousarray(self.xy, dtype="<i8").tobytes())
        return digest.hexdigest()[:16]


@dataclass
class SlideFeatures:
    """Features of one slide's patches.

    Attributes:
        slide: Slide id.
        features: ``(M, F)`` float32, one row per patch that could be read.
        xy: ``(M, 2)`` int64 level-0 corners of those patches (a subset of the job's, in order).
        encoder_key: Key of the encoder that made them.
        grid_key: The job's grid key.
        skipped: Patches of the job left out because a tile under them could not be decoded.
        from_cache: Whether they were read from the cache.
    """

    slide: str
    features: np.ndarray
    xy: np.ndarray
    encoder_key: str
    grid_key: str
    skipped: int = 0
    from_cache: bool = field(default=False, compare=False)

    def checksum(self) -> str:
        """SHA-256 of the arrays (dtype-normalised)."""
        digest = hashlib.sha256(np.ascontiguousarray(self.features, dtype="<f4").tobytes())
        digest.update(np.ascontiguousarray(self.xy, dtype="<i8").tobytes())
        return digest.hexdigest()


class FeatureCache:
    """Patch features on disk under ``root`` (see the module docstring)."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    def folder(self, encoder_key: str) -> Path:
        """The folder of one encoder's features."""
        return self.root / encoder_key[:16]

    def path(self, encoder_key: str, job: SlideFeatureJob) -> Path:
        """The file of ``job``'s features by that encoder."""
        return self.folder(encoder_key) / f"{job.fingerprint[:32]}-{job.grid_key}.npz"

    def describe_encoder(self, encoder_key: str, description: dict[str, object]) -> Path:
        """Write ``encoder.json`` (what the encoder is) once per encoder folder."""
        target = self.folder(encoder_key) / "encoder.json"
        if not target.is_file():
            text = json.dumps({"encoder_key": encoder_key, **description}, indent=2)
            _atomic_write(target, lambda handle: handle.write(text.encode()))
        return target

    def load(self, encoder_key: str, job: SlideFeatureJob) -> SlideFeatures | None:
        """The cached features of ``job``, or None (missing, or invalid: then logged)."""
        path = self.path(encoder_key, job)
        if not path.is_file():
            return None
        try:
            found, meta = _read(path)
            problem = _mismatch(found, meta, encoder_key, job)
        except (OSError, ValueError, KeyError, TypeError, EOFError, zipfile.BadZipFile) as error:
            problem = f"unreadable ({type(error).__name__}: {error})"
        if problem:
            log.warning("Feature cache file %s is invalid (%s); recomputing it.", path, problem)
            return None
        return found

    def save(self, features: SlideFeatures, job: SlideFeatureJob) -> Path:
        """Write ``features`` of ``job`` atomically; returns the file.

        Raises:
            SaveError: The file cannot be written (the cache folder is not writable, disk full).
        """
        meta = {
            "version": CACHE_VERSION,
            "slide": features.slide,
            "fingerprint": job.fingerprint,
            "encoder_key": features.encoder_key,
            "grid_key": features.grid_key,
            "shape": list(features.features.shape),
            "skipped": int(features.skipped),
            "sha256": features.checksum(),
        }
        arrays = {
            "features": np.ascontiguousarray(features.features, dtype=np.float32),
            "xy": np.ascontiguousarray(features.xy, dtype=np.int64),
            "metadata": np.array(json.dumps(meta)),
        }
        target = self.path(features.encoder_key, job)
        try:
            return _atomic_write(target, lambda handle: np.savez(handle, **arrays))
        except OSError as error:
            raise SaveError(
                f"Cannot write patch features to '{target}' ({error}). Check that the feature "
                "cache folder is writable and has space, or set another feature_cache folder."
            ) from error


def _read(path: Path) -> tuple[SlideFeatures, dict]:
    with np.load(path, allow_pickle=False) as archive:
        meta = json.loads(str(archive["metadata"][()]))
        features, xy = archive["features"], archive["xy"]
    if meta.get("version") != CACHE_VERSION:
        raise ValueError(f"cache format {meta.get('version')!r}, expected {CACHE_VERSION}")
    found = SlideFeatures(
        slide=str(meta["slide"]),
        features=features,
        xy=xy,
        encoder_key=str(meta["encoder_key"]),
        grid_key=str(meta["grid_key"]),
        skipped=int(meta["skipped"]),
        from_cache=True,
    )
    return found, meta


def _mismatch(
    found: SlideFeatures, meta: dict, encoder_key: str, job: SlideFeatureJob
) -> str | None:
    """Why ``found`` is not the features of ``job`` by ``encoder_key`` (None when it is)."""
    shape = list(meta["shape"])
    if found.encoder_key != encoder_key or found.grid_key != job.grid_key:
        return "written for another encoder or patch grid"
    if meta["fingerprint"] != job.fingerprint:
        return "written for another slide file"
    if found.features.dtype != np.float32 or found.features.ndim != 2:
        return f"features are {found.features.dtype} {found.features.shape}"
    if list(found.features.shape) != shape or found.xy.shape != (shape[0], 2):
        return f"arrays of shapes {found.features.shape} / {found.xy.shape}, expected {shape}"
    if shape[0] + found.skipped != len(job.xy):
        return f"{shape[0]} + {found.skipped} skipped patches, the grid has {len(job.xy)}"
    if found.checksum() != meta["sha256"]:
        return "checksum mismatch"
    return None


def _atomic_write(target: Path, write: Callable[[BinaryIO], object]) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target
