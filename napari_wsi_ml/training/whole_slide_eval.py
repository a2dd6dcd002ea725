"""Score a trained ``whole_slide_cnn`` run on another cohort: :func:`evaluate_whole_slide_run`.

The run's own ``config.yaml`` fixes the preprocessing (the ``data:`` tissue check, the
downscaling to ``target_mpp`` / ``max_size``, the canvas, the background mask) and the model
(backbone, pooling); its ``data.json`` fixes the class order. Every slide of the other cohort is
evaluated (the cohort is not split), with the run's ``best`` (or ``last``) checkpoint, and the
result is the same :func:`~.slide_eval.slide_report` the run wrote for its own test split,
stratified by site and lesion size.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from napari_wsi_ml.errors import RunError
from napari_wsi_ml.jobs.config import JobConfig, load_job_config
from napari_wsi_ml.jobs.run_context import load_checkpoint_file
from napari_wsi_ml.jobs.run_dir import RunPaths, is_run_dir, read_json
from napari_wsi_ml.models.whole_slide import WholeSlideNet, create_whole_slide_net
from napari_wsi_ml.training.heatmaps import heatmap_path
from napari_wsi_ml.training.slide_data import CohortItem, load_slide_cohort
from napari_wsi_ml.training.slide_eval import cohort_strata, slide_report
from napari_wsi_ml.training.whole_slide_cam import cam_heatmap
from napari_wsi_ml.training.whole_slide_data import SlideImageCache
from napari_wsi_ml.training.whole_slide_loop import load_slide_images, predict_slides

TASK = "whole_slide_cnn"


def read_whole_slide_run(run_dir: Path) -> tuple[JobConfig, tuple[str, ...]]:
    """The validated config and the class order of a ``whole_slide_cnn`` run.

    Raises:
        RunError: Not a run directory, a run of another task, or no class list in data.json.
    """
    paths = RunPaths(run_dir)
    if not is_run_dir(run_dir):
        raise RunError(f"'{run_dir}' is not a run directory (no config.yaml and status.json)")
    config = load_job_config(paths.config)
    if config.job.task != TASK:
        raise RunError(f"'{run_dir}' is a {config.job.task} run, not a {TASK} run")
    data = read_json(paths.data) if paths.data.is_file() else {}
    classes = tuple(data.get("class_names") or config.data.classes)
    if len(classes) < 2:
        raise RunError(f"'{run_dir}': data.json names no classes; the run did not start training")
    trained = data.get("whole_slide") or {}
    if trained and "mask_ink" not in trained and config.task.mask_ink:
        # runs from before the ink mask existed were trained without it: score them the same
        config = replace(config, task=replace(config.task, mask_ink=False))
    return config, classes


def load_whole_slide_model(
    run_dir: Path, config: JobConfig, n_classes: int, which: str = "best"
) -> tuple[WholeSlideNet, dict[str, Any]]:
    """The run's network with the weights of checkpoint ``which`` (CPU, eval mode).

    Returns:
        The model and ``{"file", "epochs_trained"}`` of the checkpoint.

    Raises:
        RunError: The checkpoint is missing or does not fit the configured network.
    """
    opts = config.task
    path = RunPaths(run_dir).checkpoint(which)
    state = load_checkpoint_file(path)
    if state is None or "model" not in state:
        raise RunError(f"'{run_dir}': no usable checkpoints/{which}.pt")
    model = create_whole_slide_net(opts.backbone, num_classes=n_classes, pooling=opts.pooling)
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as error:
        raise RunError(f"'{path}' does not fit a {opts.backbone} network: {error}") from error
    return model.eval(), {"file": str(path), "epochs_trained": state.get("epoch")}


def evaluated_items(
    config: JobConfig, classes: tuple[str, ...], cohort_csv: Path
) -> list[CohortItem]:
    """Every slide of ``cohort_csv``, read with the run's ``data:`` options, as ``"test"``.

    Raises:
        ConfigError: Listing every problem of the cohort (as before training).
    """
    options = replace(
        config.data, cohort=Path(cohort_csv), classes=classes, val_fraction=0.0,
        test_fraction=0.0, holdout_sites=(),
    )  # fmt: skip
    cohort = load_slide_cohort(options, config.job.seed)
    return [replace(item, part="test") for item in cohort.items]


def evaluate_whole_slide_run(
    run_dir: str | os.PathLike[str],
    cohort_csv: str | os.PathLike[str],
    *,
    checkpoint: str = "best",
    device: str = "cpu",
    cache_dir: str | os.PathLike[str] | None = None,
    heatmaps_dir: str | os.PathLike[str] | None = None,
    progress: Callable[[int, int], Any] | None = None,
) -> dict[str, Any]:
    """The slide report of a ``whole_slide_cnn`` run on every slide of another cohort.

    Args:
        run_dir: The run directory.
        cohort_csv: A cohort CSV (path, label, patient[, site, truth …]); its labels must be
            the run's classes (after the run's ``label_map``).
        checkpoint: ``"best"`` (lowest validation loss) or ``"last"``.
        device: A torch device name.
        cache_dir: Downscaled-slide cache; None: the run's ``cache_dir``, or
            ``.cache/whole_slide`` beside the run folder (as in training).
        heatmaps_dir: Write each slide's class activation map there (``<slide>.heatmap.npz``).
        progress: ``progress(done, total)`` while slides are downscaled.

    Returns:
        :func:`~.slide_eval.slide_report` (strata ``site`` and ``lesion_size``) plus ``"run"``
        ``{"run_id", "pooling", "checkpoint", "epochs_trained", "cohort"}``.

    Raises:
        RunError: Not a usable ``whole_slide_cnn`` run.
        ConfigError: The cohort has problems (all listed) or a slide cannot be downscaled.
    """
    run_dir = Path(run_dir)
    config, classes = read_whole_slide_run(run_dir)
    opts = config.task
    model, found = load_whole_slide_model(run_dir, config, len(classes), checkpoint)
    items = evaluated_items(config, classes, Path(cohort_csv))
    folder = cache_dir or opts.cache_dir or run_dir.parent / ".cache" / "whole_slide"
    images = load_slide_images(items, opts, SlideImageCache(folder), progress)
    target = torch.device(device)
    model = model.to(target, memory_format=torch.channels_last)
    with_cams = heatmaps_dir is not None
    probs, cams = predict_slides(model, images, opts, target, with_cams=with_cams)
    report = slide_report(
        np.array([i.label_index for i in items]), probs, classes, cohort_strata(items),
        slides=[i.slide for i in items],
    )  # fmt: skip
    if heatmaps_dir is not None:
        Path(heatmaps_dir).mkdir(parents=True, exist_ok=True)
    for image, cam in zip(images, cams, strict=False):
        heatmap = cam_heatmap(
            cam, image.spec, model.geometry, class_names=classes, run_id=run_dir.name,
            slide=image.item.slide, pooling=opts.pooling,
        )  # fmt: skip
        heatmap.save(heatmap_path(Path(heatmaps_dir), image.item.slide))
    report["run"] = {
        "run_id": run_dir.name,
        "pooling": opts.pooling,
        "checkpoint": found["file"],
        "epochs_trained": found["epochs_trained"],
        "cohort": str(Path(cohort_csv)),
    }
    return report
