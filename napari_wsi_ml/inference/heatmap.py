"""Heatmaps that carry their georeference, so that every cell lands on the patch it scored.

A heatmap cell ``(i, j)`` holds the scores of the patch whose top-left corner is at level-0
``origin + (j * stride_x, i * stride_y)`` and whose size is ``patch_size`` level-0 pixels; its
centre is that patch's centre. Everything here is in level-0 pixels, ``(x, y)``, sizes
``(width, height)``.
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from napari_wsi_ml.errors import HeatmapError

FORMAT_VERSION = 1


def _pair(value: float | Sequence[float], name: str) -> tuple[float, float]:
    """``value`` as an ``(x, y)`` pair of positive or zero floats."""
    pair = (float(value), float(value)) if np.isscalar(value) else tuple(map(float, value))
    if len(pair) != 2:
        raise ValueError(f"{name} must be a number or an (x, y) pair, got {value!r}")
    return pair  # type: ignore[return-value]


@dataclass
class Heatmap:
    """Patch scores on a regular grid of one slide.

    Attributes:
        values: Float32 array (rows, cols, C): the scores of each patch, NaN where no patch
            was scored (e.g. off tissue).
        origin: Level-0 ``(x, y)`` of the top-left corner of the first patch (cell (0, 0)).
        stride: Level-0 ``(x, y)`` step between neighbouring patches.
        patch_size: Level-0 ``(width, height)`` of each patch.
        class_names: One name per channel of ``values``.
        run_id: What produced the scores (a model run, or the name of a stain measure).
        slide_fingerprint: :attr:`Slide.fingerprint` of the slide that was scored.
        extra: Free-form JSON-serialisable provenance (e.g. the pyramid level read).
    """

    values: np.ndarray
    origin: tuple[float, float]
    stride: tuple[float, float]
    patch_size: tuple[float, float]
    class_names: tuple[str, ...]
    run_id: str
    slide_fingerprint: str
    extra: dict[str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        values = np.asarray(self.values, dtype=np.float32)
        if values.ndim == 2:
            values = values[:, :, None]
        if values.ndim != 3:
            raise ValueError(f"values must have shape (rows, cols, C), got {values.shape}")
        self.values = values
        self.origin = _pair(self.origin, "origin")
        self.stride = _pair(self.stride, "stride")
        self.patch_size = _pair(self.patch_size, "patch_size")
        if min(self.stride) <= 0 or min(self.patch_size) <= 0:
            raise ValueError("stride and patch_size must be positive")
        self.class_names = tuple(str(name) for name in self.class_names)
        if len(self.class_names) != values.shape[2]:
            raise ValueError(
                f"{len(self.class_names)} class names for {values.shape[2]} score channels"
            )

    @property
    def grid_shape(self) -> tuple[int, int]:
        """``(rows, cols)`` of the grid of patches."""
        return int(self.values.shape[0]), int(self.values.shape[1])

    def patch_origins_xy(self) -> np.ndarray:
        """Level-0 ``(x, y)`` of every patch's top-left corner, shape (rows, cols, 2)."""
        rows, cols = self.grid_shape
        x = self.origin[0] + np.arange(cols) * self.stride[0]
        y = self.origin[1] + np.arange(rows) * self.stride[1]
        xx, yy = np.meshgrid(x, y)
        return np.stack([xx, yy], axis=-1)

    def cell_centres_xy(self) -> np.ndarray:
        """Level-0 ``(x, y)`` of each cell's centre (its patch's centre), shape (rows, cols, 2)."""
        return self.patch_origins_xy() + 0.5 * np.asarray(self.patch_size)

    def channel(self, name_or_index: str | int) -> np.ndarray:
        """The (rows, cols) scores of one class."""
        index = (
            self.class_names.index(name_or_index)
            if isinstance(name_or_index, str)
            else int(name_or_index)
        )
        return self.values[:, :, index]

    def check_slide(self, fingerprint: str, slide_name: str = "this slide") -> None:
        """Raise :class:`HeatmapError` unless the heatmap was computed on the given slide."""
        if fingerprint != self.slide_fingerprint:
            raise HeatmapError(
                f"Heatmap '{self.run_id}' was computed on another slide (fingerprint "
                f"{self.slide_fingerprint[:12]}…, {slide_name} has {fingerprint[:12]}…): "
                "refusing to overlay it. Open the slide it was computed on, or recompute it."
            )

    def metadata(self) -> dict[str, object]:
        """The georeference and provenance as JSON-serialisable values."""
        return {
            "format_version": FORMAT_VERSION,
            "origin": list(self.origin),
            "stride": list(self.stride),
            "patch_size": list(self.patch_size),
            "class_names": list(self.class_names),
            "run_id": self.run_id,
            "slide_fingerprint": self.slide_fingerprint,
            "extra": self.extra,
        }

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the heatmap as ``.npz`` (values + JSON metadata), atomically; returns the path."""
        target = Path(path)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
        try:
            with os.fdopen(fd, "wb") as handle:
                np.savez_compressed(
                    handle, values=self.values, metadata=np.array(json.dumps(self.metadata()))
                )
            os.replace(tmp_name, target)
        except BaseException:
            Path(tmp_name).unlink(missing_ok=True)
            raise
        return target

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Heatmap:
        """Read a heatmap written by :meth:`save`; :class:`HeatmapError` if the file is not one."""
        try:
            with np.load(path, allow_pickle=False) as archive:
                values = archive["values"]
                meta = json.loads(str(archive["metadata"][()]))
            if meta.get("format_version") != FORMAT_VERSION:
                raise ValueError(f"unsupported format version {meta.get('format_version')!r}")
            return cls(
                values=values,
                origin=meta["origin"],
                stride=meta["stride"],
                patch_size=meta["patch_size"],
                class_names=tuple(meta["class_names"]),
                run_id=meta["run_id"],
                slide_fingerprint=meta["slide_fingerprint"],
                extra=dict(meta.get("extra", {})),
            )
        except FileNotFoundError as error:
            raise HeatmapError(f"{path}: no such heatmap file.") from error
        except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile) as error:
            raise HeatmapError(
                f"{path}: not a readable heatmap file ({error}). Recompute the heatmap."
            ) from error


def napari_heatmap_transform(
    heatmap: Heatmap, mpp: Sequence[float] | None
) -> tuple[tuple[float, float], tuple[float, float]]:
    """napari ``(scale, translate)``, ``(row, col)``, of an image layer of ``heatmap.values``.

    napari puts the centre of image pixel ``(i, j)`` at data coordinate ``(i, j)``; with this
    transform it lands at world ``(patch centre) × mpp``, i.e. on the centre of the patch scored
    in the slide layers' world (continuous level-0 × mpp, see :mod:`napari_wsi_ml.coords`).
    """
    mpp_x, mpp_y = (1.0, 1.0) if mpp is None else (float(mpp[0]), float(mpp[1]))
    scale = (heatmap.stride[1] * mpp_y, heatmap.stride[0] * mpp_x)
    translate = (
        (heatmap.origin[1] + 0.5 * heatmap.patch_size[1]) * mpp_y,
        (heatmap.origin[0] + 0.5 * heatmap.patch_size[0]) * mpp_x,
    )
    return scale, translate
