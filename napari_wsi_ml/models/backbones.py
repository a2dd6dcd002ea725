"""timm backbones by name, without downloads: random weights or a local weights file.

``pretrained=True`` asks timm for its published weights (which needs them in the local
Hugging Face cache, or network access); the offline way is ``weights=PATH``, a ``.safetensors``
file or a torch state dict (read with ``weights_only=True``, never unpickled objects).
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping
from pathlib import Path

import timm
import torch
from torch import nn

from napari_wsi_ml.errors import ConfigError

HEAD_PREFIXES = ("fc.", "head.", "classifier.", "head_dist.", "last_linear.")
"""State-dict prefixes of timm classification heads (ignored when loading a backbone)."""
_WRAPPER_KEYS = ("state_dict", "model", "model_state", "backbone")
_WRAPPER_PREFIXES = ("module.", "_orig_mod.")


def check_backbone_name(name: str) -> None:
    """Raise :class:`ConfigError` (with the closest timm names) unless timm knows ``name``."""
    known = timm.list_models()
    if name in known or timm.is_model(name):
        return
    close = difflib.get_close_matches(name, known, n=5, cutoff=0.6)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    raise ConfigError(
        f"backbone: unknown timm model {name!r}.{hint} "
        "List the names with `python -c \"import timm; print(timm.list_models('resnet*'))\"`."
    )


def create_backbone(name: str = "resnet18", *, pretrained: bool = False) -> nn.Module:
    """A timm model without its classifier (``num_classes=0``): images → pooled features.

    Raises:
        ConfigError: Unknown name, or pretrained weights that cannot be obtained.
    """
    check_backbone_name(name)
    try:
        return timm.create_model(name, pretrained=pretrained, num_classes=0)
    except (OSError, RuntimeError, ValueError) as error:  # hub offline, no weights for the name
        if not pretrained:
            raise
        raise ConfigError(
            f"backbone: cannot get timm's pretrained weights of {name!r} ({error}). "
            "Set pretrained: false and weights: a local .safetensors or .pth file instead."
        ) from error


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Tensors of a weights file: ``.safetensors``, or a torch file read with weights_only.

    Nested checkpoints (``{"state_dict": …}``, ``{"model": …}``) and DataParallel / compiled
    prefixes (``module.``, ``_orig_mod.``) are unwrapped.

    Raises:
        ConfigError: The file is missing or is not a weights file.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"weights: file '{path}' does not exist. Give a local weights file.")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state: object = load_file(str(path), device="cpu")
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # any decoding failure means "not weights"
        raise ConfigError(
            f"weights: cannot read '{path}' as a weights file ({error}). Give a .safetensors "
            "file or a torch state dict saved with torch.save(model.state_dict(), path)."
        ) from error
    while isinstance(state, Mapping):
        inner = next((state[k] for k in _WRAPPER_KEYS if isinstance(state.get(k), Mapping)), None)
        if inner is None:
            break
        state = inner
    if not isinstance(state, Mapping) or not all(
        isinstance(v, torch.Tensor) for v in state.values()
    ):
        raise ConfigError(f"weights: '{path}' holds no state dict of tensors.")
    out = {}
    for key, value in state.items():
        for prefix in _WRAPPER_PREFIXES:
            key = key.removeprefix(prefix)
        out[key] = value
    return out


def load_backbone_weights(backbone: nn.Module, path: str | os.PathLike) -> list[str]:
    """Load a weights file into ``backbone`` (its classifier keys are ignored).

    Returns:
        The names of the file's tensors that were not used (classifier heads).

    Raises:
        ConfigError: A backbone tensor is missing from the file or has another shape.
    """
    state = read_state_dict(path)
    own = backbone.state_dict()
    if own and not any(k in own for k in state):
        stripped = {k.removeprefix("backbone."): v for k, v in state.items()}
        state = stripped if any(k in own for k in stripped) else state
    wrong = [
        f"{k} {tuple(v.shape)} ≠ {tuple(own[k].shape)}"
        for k, v in state.items()
        if k in own and own[k].shape != v.shape
    ]
    missing = [k for k in own if k not in state]
    if wrong or missing:
        listing = "; ".join(wrong[:3] + [f"missing {k}" for k in missing[:3]])
        raise ConfigError(
            f"weights: '{path}' does not fit this backbone ({len(wrong)} tensors of another "
            f"shape, {len(missing)} missing: {listing}). Use weights of the same timm model."
        )
    unused = [k for k in state if k not in own]
    backbone.load_state_dict({k: v for k, v in state.items() if k in own}, strict=True)
    return unused
