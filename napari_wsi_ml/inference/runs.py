"""Trained runs as score functions: :func:`load_run` and the registry of loaders by task name.

A run directory (see :mod:`napari_wsi_ml.jobs.run_dir`) names its task in ``config.yaml``
(``job.task``). :data:`RUN_LOADERS` maps task names to ``"module:function"`` strings, imported
only when used (this module never imports torch); a loader takes ``(run_dir, config, device)``
(the config as plain data) and returns a :class:`RunModel`. To make another task's runs usable
for inference, add its loader here; runs whose model is a patch classifier reuse
:func:`~napari_wsi_ml.inference.patch_model.patch_model_from_config` with their own slide
aggregation (as ``topk_mil`` does).
"""

from __future__ import annotations

import difflib
import importlib
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from napari_wsi_ml.config_schema import read_yaml
from napari_wsi_ml.errors import ConfigError, RunError
from napari_wsi_ml.inference.heatmap import Heatmap
from napari_wsi_ml.inference.scoring import ScoreFn
from napari_wsi_ml.jobs.run_dir import RunPaths

RUN_LOADERS: dict[str, str] = {
    "patch_classifier": "napari_wsi_ml.inference.patch_model:load_patch_classifier",
    "topk_mil": "napari_wsi_ml.inference.mil_model:load_topk_mil",
}
"""Task name → ``"module:function"`` loading a run of that task as a :class:`RunModel`."""

SlideAggregation = Callable[[Heatmap], Mapping[str, float]]
"""A run's slide scores (class → score) from its heatmap of a slide."""


@dataclass(frozen=True)
class RunModel:
    """A trained run, ready to score patches (it is itself a :class:`~.scoring.ScoreFn`).

    Attributes:
        run_dir: The run directory.
        run_id: The run's id (its folder name).
        task: The run's task name.
        score_fn: Patches ``(N, H, W, 3)`` uint8 + level-0 corners → ``(N, C)`` probabilities.
        class_names: Class of each score column.
        background: The background (negative) class, or None.
        patch_size: Patch side in output pixels, as trained.
        target_mpp: µm per output pixel, as trained (None: level 0's resolution).
        stride: Default inference stride in output pixels (None: the patch size).
        min_tissue: Tissue fraction below which a patch is not scored, as trained.
        aggregate: Slide scores from a heatmap (e.g. per-class top-k mean).
        slide_distribution: Whether ``aggregate`` returns a probability distribution over the
            classes (e.g. a MIL slide prediction), used as is for the slide's prediction.
        value_range: Range of the scores, for colour scales.
        checkpoint: The weights file loaded.
    """

    run_dir: Path
    run_id: str
    task: str
    score_fn: ScoreFn
    class_names: tuple[str, ...]
    background: str | None
    patch_size: int
    target_mpp: float | None
    stride: int | None
    min_tissue: float
    aggregate: SlideAggregation
    slide_distribution: bool = False
    value_range: tuple[float, float] | None = (0.0, 1.0)
    checkpoint: Path | None = None

    def __call__(self, patches: np.ndarray, xy: np.ndarray) -> np.ndarray:
        """``(N, C)`` scores of a batch (see :class:`~.scoring.ScoreFn`)."""
        return self.score_fn(patches, xy)


def read_run_config(run_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """The run's ``config.yaml`` as plain data.

    Raises:
        RunError: The folder is not a run directory, or its config cannot be read.
    """
    paths = RunPaths(Path(run_dir))
    if not paths.config.is_file():
        raise RunError(
            f"'{run_dir}' is not a run directory (no config.yaml). Give the folder a training "
            "run wrote, e.g. runs/20250101-120000-patch_classifier."
        )
    try:
        config = read_yaml(paths.config, kind="run")
    except ConfigError as error:
        raise RunError(f"Run '{run_dir}': {error}") from error
    if not isinstance(config, dict) or not isinstance(config.get("job"), dict):
        raise RunError(f"Run '{run_dir}': config.yaml has no 'job:' section; the run is damaged.")
    return config


def run_task(config: Mapping[str, Any]) -> str:
    """The task name of a run's config."""
    return str(config["job"].get("task", ""))


def _loader_target(run_dir: Path, config: Mapping[str, Any]) -> str:
    task = run_task(config)
    target = RUN_LOADERS.get(task)
    if target is None:
        close = difflib.get_close_matches(task, RUN_LOADERS, n=1)
        maybe = f" (did you mean '{close[0]}'?)" if close else ""
        raise RunError(
            f"Run '{run_dir}' is a '{task}' run{maybe}; inference can load runs of: "
            f"{', '.join(sorted(RUN_LOADERS))}."
        )
    return target


def check_run(run_dir: str | os.PathLike[str]) -> str:
    """The run's task, once it is known to have an inference loader (nothing is loaded).

    Raises:
        RunError: Not a run directory, or a task without an inference loader.
    """
    config = read_run_config(run_dir)
    _loader_target(Path(run_dir), config)
    return run_task(config)


def load_run(run_dir: str | os.PathLike[str], *, device: str = "auto") -> RunModel:
    """Load a trained run as a :class:`RunModel`.

    Args:
        run_dir: The run directory.
        device: ``"auto"`` (a GPU when there is one), ``"cpu"`` or ``"cuda"``.

    Raises:
        RunError: Not a run, a task without an inference loader, no usable checkpoint.
        ConfigError: ``device`` cannot be used.
    """
    run_dir = Path(run_dir)
    config = read_run_config(run_dir)
    module_name, _, function_name = _loader_target(run_dir, config).partition(":")
    loader = getattr(importlib.import_module(module_name), function_name)
    return loader(run_dir, config, device=device)
