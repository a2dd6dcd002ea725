"""One slide through a trained run: heatmap, its files, and the slide's prediction.

:func:`infer_slide` is what ``napari-wsi-ml infer`` runs per slide, in this process or as one
task on a Dask worker; workers keep the loaded model between slides (:func:`cached_run`).
Files: ``<out>/heatmaps/<slide>.heatmap.npz`` and, when asked,
``<out>/tiff/<slide>.<class>.tif`` (:mod:`.tiff_export`) for every non-background class.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from napari_wsi_ml.inference.heatmap import Heatmap
from napari_wsi_ml.inference.predictions import SlidePrediction, predict_slide
from napari_wsi_ml.inference.runs import RunModel, load_run
from napari_wsi_ml.inference.scoring import DEFAULT_BATCH_SIZE, Progress, heatmap
from napari_wsi_ml.inference.tiff_export import Mode, export_heatmap_tiff

if TYPE_CHECKING:
    from napari_wsi_ml.slide import Slide

HEATMAPS_DIR = "heatmaps"
TIFF_DIR = "tiff"
SLIDE_CACHE_BYTES = 256 << 20
"""Tile cache of a slide opened for inference: regions are read once, in order, so a small
private cache (not the viewer's 1 GiB shared one) is enough."""


@dataclass(frozen=True)
class InferenceJob:
    """One slide to score: its id, file and (when known) its true label."""

    slide: str
    path: Path
    label: str | None = None


@dataclass(frozen=True)
class InferenceSettings:
    """How slides are scored (None: the run's own setting).

    Attributes:
        stride: Step between patches in output pixels.
        batch_size: Patches per model call.
        min_tissue: Tissue fraction below which a patch is not scored.
        device: ``auto``, ``cpu`` or ``cuda``.
        tiff: Also export a pyramidal TIFF per non-background class.
        tiff_mode: ``uint8``, ``float32`` or ``rgba``.
    """

    stride: int | None = None
    batch_size: int = DEFAULT_BATCH_SIZE
    min_tissue: float | None = None
    device: str = "auto"
    tiff: bool = False
    tiff_mode: Mode = "uint8"


def heatmap_file(out: Path, slide: str) -> Path:
    """``<out>/heatmaps/<slide>.heatmap.npz``."""
    return out / HEATMAPS_DIR / f"{slide}.heatmap.npz"


def score_slide(
    slide: Slide,
    model: RunModel,
    *,
    stride: int | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    min_tissue: float | None = None,
    progress: Progress | None = None,
) -> Heatmap:
    """The heatmap of ``slide`` by ``model``, at the patch size and resolution it was trained on."""
    return heatmap(
        slide,
        model,
        model.patch_size,
        stride if stride is not None else model.stride,
        model.target_mpp,
        batch_size=batch_size,
        min_tissue=model.min_tissue if min_tissue is None else min_tissue,
        progress=progress,
    )


@functools.lru_cache(maxsize=2)
def cached_run(run_dir: str, device: str) -> RunModel:
    """:func:`load_run`, once per process for each run and device."""
    return load_run(run_dir, device=device)


def infer_slide(
    run_dir: str | os.PathLike[str],
    job: InferenceJob,
    out: str | os.PathLike[str],
    settings: InferenceSettings | None = None,
    progress: Progress | None = None,
) -> SlidePrediction:
    """Score one slide, write its heatmap (and TIFFs), and return its prediction.

    Raises:
        WsiMlError: The run cannot be loaded, the slide cannot be read or has no tissue patch.
    """
    from napari_wsi_ml.slide import open_slide

    settings = settings or InferenceSettings()
    model = cached_run(str(Path(run_dir).resolve()), settings.device)
    out = Path(out)
    with open_slide(job.path, cache_bytes=SLIDE_CACHE_BYTES) as slide:
        result = score_slide(
            slide, model, stride=settings.stride, batch_size=settings.batch_size,
            min_tissue=settings.min_tissue, progress=progress,
        )  # fmt: skip
        result.extra["slide"] = job.slide
        size, mpp = slide.level_dimensions[0], slide.mpp
    target = heatmap_file(out, job.slide)
    target.parent.mkdir(parents=True, exist_ok=True)
    result.save(target)
    prediction = predict_slide(
        result, slide=job.slide, path=job.path, scores=model.aggregate(result),
        background=model.background, label=job.label, heatmap_path=target,
        distribution=model.slide_distribution,
    )  # fmt: skip
    if settings.tiff:
        (out / TIFF_DIR).mkdir(parents=True, exist_ok=True)
        for name in result.class_names:
            if name != model.background:
                export_heatmap_tiff(
                    result, out / TIFF_DIR / f"{job.slide}.{name}.tif", size, mpp,
                    channel=name, mode=settings.tiff_mode,
                )  # fmt: skip
    return prediction
