"""The config sections of the patch-classifier task: ``data:`` and ``patch_classifier:``.

Validated by :func:`napari_wsi_ml.config_schema.check_dataclass` before anything runs (types,
bounds, choices, unknown keys with did-you-mean); cross-field checks are in
:func:`check_options`. Sizes are output pixels at ``target_mpp`` unless said otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from napari_wsi_ml.config_schema import spec


@dataclass(frozen=True)
class PatchDataOptions:
    """Where the labelled patches come from and how they are read.

    Either ``cohort`` (a cohort CSV whose ``annotations`` / ``truth`` column names each slide's
    annotation files) or ``slides`` with one ``annotations`` file per slide (the Train panel's
    "this slide's annotations"). Patches are annotation-grid patches: ``label_map`` turns
    annotation groups into classes and unannotated tissue is ``background_label``.
    """

    cohort: Path | None = field(default=None, metadata=spec(hint="a cohort CSV, e.g. cohort.csv"))
    slides: tuple[Path, ...] = ()
    annotations: tuple[Path, ...] = ()
    slide_labels: tuple[str, ...] = ()
    label_map: dict[str, str] = field(default_factory=lambda: {"tumor": "tumour"})
    background_label: str | None = "normal"
    patch_size: int = field(default=96, metadata=spec(ge=16, le=1024, hint="e.g. 96"))
    target_mpp: float | None = field(default=1.0, metadata=spec(gt=0, hint="µm/px, e.g. 1.0"))
    stride: int | None = field(default=None, metadata=spec(ge=1, hint="e.g. 48"))
    eval_stride: int | None = field(default=None, metadata=spec(ge=1, hint="e.g. 96"))
    label_rule: Literal["centre", "coverage"] = "centre"
    min_coverage: float = field(default=0.5, metadata=spec(gt=0, le=1))
    min_tissue: float = field(default=0.4, metadata=spec(ge=0, le=1))
    max_patches_per_class: int | None = field(default=None, metadata=spec(ge=1))
    val_fraction: float = field(default=0.25, metadata=spec(ge=0, le=0.9))
    test_fraction: float = field(default=0.25, metadata=spec(ge=0, le=0.9))
    holdout_sites: tuple[str, ...] = ()
    augment: bool = True
    num_workers: int = field(default=0, metadata=spec(ge=0, le=64))


@dataclass(frozen=True)
class PatchClassifierOptions:
    """Model and optimisation of the patch classifier."""

    backbone: str = field(default="resnet18", metadata=spec(hint="a timm model name"))
    mode: Literal["finetune", "linear_probe"] = "finetune"
    pretrained: bool = False
    weights: Path | None = field(default=None, metadata=spec(hint="a local .safetensors file"))
    epochs: int = field(default=3, metadata=spec(ge=1, le=10_000))
    batch_size: int = field(default=32, metadata=spec(ge=1, le=4096))
    eval_batch_size: int = field(default=64, metadata=spec(ge=1, le=8192))
    learning_rate: float = field(default=1e-3, metadata=spec(gt=0, le=10, hint="e.g. 0.001"))
    weight_decay: float = field(default=1e-4, metadata=spec(ge=0, le=1))
    class_weights: Literal["auto", "none"] | tuple[float, ...] = "auto"
    patience: int = field(default=3, metadata=spec(ge=0, hint="epochs; 0 turns it off"))
    amp: bool = True
    precompute_features: bool = True
    top_k: int = field(default=5, metadata=spec(ge=1))
    heatmaps: bool = True


def check_options(data: PatchDataOptions, task: PatchClassifierOptions) -> list[str]:
    """Cross-field problems, each ``key: what is wrong; write what instead.``"""
    problems = []
    if (data.cohort is None) == (not data.slides):
        problems.append("data.cohort: give either cohort or slides (not both, not neither)")
    if data.annotations and not data.slides:
        problems.append("data.annotations: goes with slides; a cohort names its own files")
    if data.slides and len(data.annotations) != len(data.slides):
        problems.append(
            f"data.annotations: {len(data.annotations)} files for {len(data.slides)} slides; "
            "give one annotation file per slide"
        )
    if data.slide_labels and len(data.slide_labels) != len(data.slides):
        problems.append("data.slide_labels: give one label per slide, or none")
    if data.val_fraction + data.test_fraction >= 1:
        problems.append("data.val_fraction: val_fraction + test_fraction must be under 1")
    names = class_names(data)
    if len(names) < 2:
        problems.append(
            "data.label_map: needs at least two classes (label_map values and background_label)"
        )
    if isinstance(task.class_weights, tuple) and len(task.class_weights) != len(names):
        problems.append(
            f"patch_classifier.class_weights: {len(task.class_weights)} weights for "
            f"{len(names)} classes ({', '.join(names)}); write auto, none or one per class"
        )
    if task.pretrained and task.weights is not None:
        problems.append("patch_classifier.pretrained: give pretrained: true or weights, not both")
    return problems


def class_names(data: PatchDataOptions) -> tuple[str, ...]:
    """Class order: the background label first, then the label map's values."""
    names = [data.background_label] if data.background_label else []
    for value in data.label_map.values():
        if value not in names:
            names.append(value)
    return tuple(names)
