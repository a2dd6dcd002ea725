"""``patch_classifier`` runs as score functions (needs torch and timm).

The model is rebuilt from the run's ``config.yaml`` (backbone, mode, classes) and its weights
are read from ``checkpoints/best.pt`` (else ``last.pt``) with ``torch.load(weights_only=True)``.
Scores are softmax probabilities, one column per class in the run's class order.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from napari_wsi_ml.errors import ConfigError, RunError
from napari_wsi_ml.inference.predictions import top_k_scores
from napari_wsi_ml.inference.runs import RunModel, SlideAggregation
from napari_wsi_ml.jobs.run_context import load_checkpoint_file
from napari_wsi_ml.jobs.run_dir import RunPaths, read_json
from napari_wsi_ml.models import create_classifier
from napari_wsi_ml.training.options import PatchDataOptions, class_names

DEFAULT_TOP_K = 5


class TorchPatchScorer:
    """Softmax probabilities of a classifier on uint8 patch batches.

    Args:
        model: Maps ``(N, 3, H, W)`` uint8 images to ``(N, C)`` logits (e.g.
            :class:`~napari_wsi_ml.models.PatchClassifier`, which normalises them itself).
        device: Where the model runs.
        amp: Mixed precision (CUDA only).
    """

    def __init__(self, model: nn.Module, device: torch.device, *, amp: bool = False) -> None:
        self.model = model.to(device).eval()
        self.device = device
        self.amp = amp and device.type == "cuda"

    def __call__(self, patches: np.ndarray, xy: np.ndarray) -> np.ndarray:
        """``(N, C)`` float32 probabilities of ``(N, H, W, 3)`` uint8 ``patches``."""
        images = torch.from_numpy(np.ascontiguousarray(patches)).to(self.device)
        images = images.permute(0, 3, 1, 2).contiguous()
        with torch.inference_mode(), torch.autocast(self.device.type, enabled=self.amp):
            logits = self.model(images)
        return torch.softmax(logits.float(), dim=1).cpu().numpy()


def resolve_device(requested: str) -> torch.device:
    """``auto`` → the GPU when CUDA is available, else the CPU.

    Raises:
        ConfigError: ``cuda`` was asked for and no GPU is visible, or an unknown name.
    """
    if requested not in ("auto", "cpu", "cuda"):
        raise ConfigError(f"device: write auto, cpu or cuda, not {requested!r}.")
    if requested == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device: cuda was asked for but no CUDA GPU is visible; use auto or cpu.")
    if requested == "cpu" or not torch.cuda.is_available():
        return torch.device("cpu")
    return torch.device("cuda")


def checkpoint_state(run_dir: Path) -> tuple[Path, dict[str, Any]]:
    """The best (else last) checkpoint of a run and its state.

    Raises:
        RunError: There is no checkpoint, or it cannot be read as plain tensors.
    """
    paths = RunPaths(run_dir)
    for which in ("best", "last"):
        path = paths.checkpoint(which)
        if not path.is_file():
            continue
        try:
            state = load_checkpoint_file(path)
        except Exception as error:  # any unpickling refusal or damage means "unusable"
            raise RunError(
                f"Run '{run_dir}': cannot read {path.name} as a weights-only checkpoint "
                f"({type(error).__name__}: {error}). Resume or retrain the run."
            ) from error
        if state is not None and isinstance(state.get("model"), Mapping):
            return path, state
        raise RunError(f"Run '{run_dir}': {path.name} holds no model weights ('model' entry).")
    raise RunError(
        f"Run '{run_dir}' has no checkpoint (checkpoints/best.pt or last.pt): it has not "
        "finished an epoch yet. Wait for it, or resume it."
    )


def patch_model_from_config(
    run_dir: Path, config: Mapping[str, Any], section: str, *, device: str = "auto"
) -> tuple[TorchPatchScorer, tuple[str, ...], Path]:
    """The scorer of a run whose ``section`` of the config describes a patch classifier.

    Returns:
        ``(scorer, class names, checkpoint path)``.
    """
    data = config.get("data") or {}
    options = config.get(section) or {}
    names = _class_names(run_dir, data)
    path, state = checkpoint_state(run_dir)
    model = create_classifier(
        str(options.get("backbone", "resnet18")),
        num_classes=len(names),
        mode=str(options.get("mode", "finetune")),
        pretrained=False,
    )
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as error:
        raise RunError(
            f"Run '{run_dir}': the weights in {path.name} do not fit a "
            f"{options.get('backbone')} with {len(names)} classes ({error})."
        ) from error
    scorer = TorchPatchScorer(model, resolve_device(device), amp=bool(options.get("amp", False)))
    return scorer, names, path


def _class_names(run_dir: Path, data: Mapping[str, Any]) -> tuple[str, ...]:
    manifest = read_json(RunPaths(run_dir).data)
    if isinstance(manifest, dict) and manifest.get("class_names"):
        return tuple(str(n) for n in manifest["class_names"])
    label_map = data.get("label_map", PatchDataOptions().label_map)
    background = data.get("background_label", PatchDataOptions().background_label)
    return class_names(PatchDataOptions(label_map=dict(label_map), background_label=background))


def load_patch_classifier(
    run_dir: Path, config: Mapping[str, Any], *, device: str = "auto"
) -> RunModel:
    """A ``patch_classifier`` run as a :class:`~.runs.RunModel` (slide score: top-k mean)."""
    data = config.get("data") or {}
    options = config.get("patch_classifier") or {}
    scorer, names, path = patch_model_from_config(
        run_dir, config, "patch_classifier", device=device
    )
    top_k = int(options.get("top_k", DEFAULT_TOP_K))
    aggregate: SlideAggregation = functools.partial(top_k_scores, k=top_k)
    background = data.get("background_label", PatchDataOptions().background_label)
    mpp = data.get("target_mpp", PatchDataOptions().target_mpp)
    stride = data.get("eval_stride")
    return RunModel(
        run_dir=run_dir,
        run_id=RunPaths(run_dir).run_id,
        task="patch_classifier",
        score_fn=scorer,
        class_names=names,
        background=background if background in names else None,
        patch_size=int(data.get("patch_size", PatchDataOptions().patch_size)),
        target_mpp=None if mpp is None else float(mpp),
        stride=None if stride is None else int(stride),
        min_tissue=float(data.get("min_tissue", PatchDataOptions().min_tissue)),
        aggregate=aggregate,
        checkpoint=path,
    )
