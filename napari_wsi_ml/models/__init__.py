"""Models (pure core; needs torch and timm).

- :func:`create_classifier` → :class:`PatchClassifier`: any timm backbone (default
  ``resnet18``, random weights unless ``pretrained`` or a local ``weights`` file), a linear
  head, modes ``"finetune"`` and ``"linear_probe"`` (frozen backbone, batch norm in eval mode).
- :func:`create_backbone`, :func:`check_backbone_name` (unknown names → ConfigError with the
  closest timm names), :func:`read_state_dict`, :func:`load_backbone_weights`.
"""

from __future__ import annotations

from napari_wsi_ml.models.backbones import (
    check_backbone_name,
    create_backbone,
    load_backbone_weights,
    read_state_dict,
)
from napari_wsi_ml.models.classifier import MODES, PatchClassifier, create_classifier

__all__ = [
    "MODES",
    "PatchClassifier",
    "check_backbone_name",
    "create_backbone",
    "create_classifier",
    "load_backbone_weights",
    "read_state_dict",
]
