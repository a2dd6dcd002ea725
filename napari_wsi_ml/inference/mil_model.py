"""``topk_mil`` runs as score functions (needs torch and timm).

A top-k MIL run trains a patch classifier on slide labels, so its patches are scored exactly
like a ``patch_classifier`` run's (:func:`~.patch_model.patch_model_from_config`, section
``topk_mil:``); its slide prediction is its own aggregation
(:func:`~napari_wsi_ml.training.topk_selection.slide_probabilities`: the probability vector of
the most suspicious patch, or the mean of the ``eval_k`` most suspicious ones), a distribution
over the classes. Class 0 (``normal``) is the background.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from napari_wsi_ml.errors import HeatmapError
from napari_wsi_ml.inference.heatmap import Heatmap
from napari_wsi_ml.inference.patch_model import patch_model_from_config
from napari_wsi_ml.inference.runs import RunModel
from napari_wsi_ml.jobs.run_dir import RunPaths
from napari_wsi_ml.training.topk_selection import slide_probabilities


def mil_slide_scores(heatmap: Heatmap, how: str, k: int) -> dict[str, float]:
    """The run's slide prediction (class → probability) from the scored cells of ``heatmap``.

    Raises:
        HeatmapError: No cell was scored.
    """
    values = heatmap.values.reshape(-1, len(heatmap.class_names))
    scored = values[np.isfinite(values).all(axis=1)]
    if len(scored) == 0:
        raise HeatmapError(
            f"Heatmap '{heatmap.run_id}' has no scored patch, so the slide has no prediction: no "
            "patch held enough tissue. Lower min_tissue, or check the slide's tissue detection."
        )
    probs = slide_probabilities(scored, how, k)
    return {name: float(p) for name, p in zip(heatmap.class_names, probs, strict=True)}


def load_topk_mil(run_dir: Path, config: Mapping[str, Any], *, device: str = "auto") -> RunModel:
    """A ``topk_mil`` run as a :class:`~.runs.RunModel` (slide score: its MIL aggregation)."""
    data = config.get("data") or {}
    options = config.get("topk_mil") or {}
    scorer, names, path = patch_model_from_config(run_dir, config, "topk_mil", device=device)
    k = int(options.get("eval_k") or options.get("k", 1))
    how = str(options.get("aggregation", "max"))
    mpp = data.get("target_mpp", 1.0)
    stride = data.get("stride")
    return RunModel(
        run_dir=run_dir,
        run_id=RunPaths(run_dir).run_id,
        task="topk_mil",
        score_fn=scorer,
        class_names=names,
        background=names[0],
        patch_size=int(data.get("patch_size", 64)),
        target_mpp=None if mpp is None else float(mpp),
        stride=None if stride is None else int(stride),
        min_tissue=float(data.get("min_tissue", 0.4)),
        aggregate=functools.partial(mil_slide_scores, how=how, k=k),
        slide_distribution=True,
        checkpoint=path,
    )
