"""Run directories for the inference tests, in the layout the job system writes.

A patch-classifier run gets the config the job system validates and writes
(:func:`~napari_wsi_ml.jobs.config.validate_job_config` → ``config.yaml``), a ``data.json``
with the class order and a checkpoint ``{"model": state_dict, ...}`` as the trainer saves it,
without spending minutes on training: the weights are a seeded random initialisation.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import numpy as np
import torch
import yaml

from napari_wsi_ml.inference import RunModel, top_k_scores
from napari_wsi_ml.jobs.config import validate_job_config
from napari_wsi_ml.jobs.run_dir import RunPaths
from napari_wsi_ml.models import create_classifier

CLASSES = ("normal", "tumour")
PATCH, MPP, EVAL_STRIDE, TOP_K = 32, 2.0, 16, 3


def make_patch_classifier_run(
    root: Path, slide: Path, annotations: Path, *, seed: int = 0, checkpoints=("best", "last")
) -> Path:
    """A finished-looking ``patch_classifier`` run with random weights drawn from ``seed``."""
    config = validate_job_config(
        {
            "job": {"task": "patch_classifier", "seed": seed, "device": "cpu"},
            "data": {
                "slides": [str(slide)],
                "annotations": [str(annotations)],
                "patch_size": PATCH,
                "target_mpp": MPP,
                "eval_stride": EVAL_STRIDE,
            },
            "patch_classifier": {"backbone": "resnet18", "top_k": TOP_K, "amp": False},
        }
    )
    run = root / f"20250101-00000{seed}-patch_classifier"
    paths = RunPaths(run)
    paths.make_dirs()
    paths.config.write_text(config.to_yaml())
    paths.status.write_text(json.dumps({"status": "finished", "task": "patch_classifier"}))
    paths.data.write_text(json.dumps({"class_names": list(CLASSES)}))
    torch.manual_seed(seed)
    model = create_classifier("resnet18", num_classes=len(CLASSES))
    for which in checkpoints:
        torch.save({"model": model.state_dict(), "epoch": 1}, paths.checkpoint(which))
    return run


def make_topk_mil_run(root: Path, cohort: Path, *, seed: int = 0) -> Path:
    """A finished-looking ``topk_mil`` run (patch model on slide labels, top-2 mean)."""
    config = validate_job_config(
        {
            "job": {"task": "topk_mil", "seed": seed, "device": "cpu"},
            "data": {"cohort": str(cohort), "patch_size": PATCH, "target_mpp": MPP},
            "topk_mil": {"backbone": "resnet18", "k": 2, "aggregation": "top_k_mean"},
        }
    )
    run = root / f"20250102-00000{seed}-topk_mil"
    paths = RunPaths(run)
    paths.make_dirs()
    paths.config.write_text(config.to_yaml())
    paths.data.write_text(json.dumps({"class_names": list(CLASSES)}))
    torch.manual_seed(seed)
    model = create_classifier("resnet18", num_classes=len(CLASSES))
    torch.save({"model": model.state_dict()}, paths.checkpoint("best"))
    return run


def write_run_config(root: Path, task: str) -> Path:
    """A run folder whose config names ``task`` (for loaders registered by a test)."""
    run = root / f"run-{task}"
    RunPaths(run).make_dirs()
    RunPaths(run).config.write_text(yaml.safe_dump({"job": {"task": task}, "data": {}}))
    return run


class PurpleOracle:
    """Scores ``(normal, dense)`` = (1 − f, f), f = fraction of purple pixels in the patch."""

    def __call__(self, patches: np.ndarray, xy: np.ndarray) -> np.ndarray:
        close = np.abs(patches.astype(np.int16) - (80, 40, 130)).max(axis=-1) <= 40
        fraction = close.reshape(len(patches), -1).mean(axis=1)
        return np.stack([1 - fraction, fraction], axis=1)


def load_purple_oracle(run_dir: Path, config: dict, *, device: str = "auto") -> RunModel:
    """A loader as the registry expects: the purple oracle at 1.5 µm/px, 32 px, stride 16."""
    return RunModel(
        run_dir=run_dir,
        run_id=run_dir.name,
        task=config["job"]["task"],
        score_fn=PurpleOracle(),
        class_names=("normal", "dense"),
        background="normal",
        patch_size=32,
        target_mpp=1.5,
        stride=16,
        min_tissue=0.4,
        aggregate=functools.partial(top_k_scores, k=3),
    )
