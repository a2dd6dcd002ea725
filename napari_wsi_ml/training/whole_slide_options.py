"""The ``whole_slide_cnn:`` config section: image size, model, memory and optimisation.

The ``data:`` section is :class:`~napari_wsi_ml.training.slide_data.SlideDataOptions` (cohort,
classes, split); its patch settings only shape the cohort's tissue check. The whole-slide image
is set here: ``target_mpp`` *or* ``max_size``, on a ``canvas``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from napari_wsi_ml.config_schema import spec


@dataclass(frozen=True)
class WholeSlideOptions:
    """Options of the whole-slide CNN (pixel sizes are pixels of the downscaled slide).

    Attributes:
        backbone: A timm ResNet name (resnet18, resnet34, resnet50 …).
        pretrained: timm's published weights (needs them cached locally); else random.
        weights: A local weights file for the backbone (.safetensors or a torch state dict).
        pooling: ``gmp`` (global max pooling) or ``gap`` (global average pooling).
        target_mpp: µm per pixel of the downscaled slide (exclusive with ``max_size``).
        max_size: Longer side of the downscaled slide in pixels (exclusive with ``target_mpp``).
        canvas: Side of the square white canvas every slide is padded to; a slide larger than
            the canvas is shrunk to fit. None: each batch is padded to its largest slide,
            rounded up to ``size_multiple``.
        size_multiple: Rounding of canvas sides when ``canvas`` is None.
        checkpointing: Activation checkpointing over the ResNet: ``off``, ``stages`` (stem and
            the four stages) or ``blocks`` (stem and every residual block).
        amp: Mixed precision on CUDA: ``bf16``, ``fp16`` (with loss scaling) or ``off``.
        cpu_bf16: bfloat16 autocast on the CPU as well.
        mask_background: Paint everything outside the cohort's tissue polygons white (glass,
            pen marks, dust).
        mask_ink: Paint blue, green and black marker ink white on the tissue too (a colour
            rule that leaves H&E alone).
        cache_dir: Folder of the downscaled-slide cache; None: ``.cache/whole_slide`` beside
            the run folders.
        augment: Random dihedral flips / 90° rotations and a random place on the canvas.
        color_jitter: Brightness, contrast, hue and value jitter (whole image).
        hed_jitter: HED stain jitter (whole image).
        heatmaps: Write class activation maps of the evaluated slides.
    """

    backbone: str = field(default="resnet18", metadata=spec(hint="a timm ResNet, e.g. resnet18"))
    pretrained: bool = False
    weights: Path | None = field(default=None, metadata=spec(hint="a local .safetensors file"))
    pooling: Literal["gmp", "gap"] = field(
        default="gmp", metadata=spec(help="global max pooling (small lesions) or average pooling")
    )
    target_mpp: float | None = field(
        default=4.0,
        metadata=spec(gt=0, hint="µm/px, e.g. 4.0", help="resolution of the downscaled slide"),
    )
    max_size: int | None = field(
        default=None,
        metadata=spec(ge=32, le=65536, hint="e.g. 1024", help="or: longer side in pixels"),
    )
    canvas: int | None = field(
        default=512,
        metadata=spec(ge=32, le=65536, hint="px, e.g. 512", help="square white canvas side"),
    )
    size_multiple: int = field(default=32, metadata=spec(ge=1, le=1024))
    checkpointing: Literal["off", "stages", "blocks"] = field(
        default="off", metadata=spec(help="recompute activations in backward: less memory")
    )
    amp: Literal["off", "bf16", "fp16"] = field(
        default="bf16", metadata=spec(help="mixed precision on CUDA")
    )
    cpu_bf16: bool = False
    mask_background: bool = field(
        default=True, metadata=spec(help="paint glass, pen marks and dust white")
    )
    mask_ink: bool = field(
        default=True, metadata=spec(help="paint blue, green and black marker ink white")
    )
    cache_dir: Path | None = field(default=None, metadata=spec(hint="a folder, e.g. cache"))
    epochs: int = field(default=30, metadata=spec(ge=1, le=10_000))
    batch_size: int = field(default=4, metadata=spec(ge=1, le=1024))
    eval_batch_size: int = field(default=4, metadata=spec(ge=1, le=1024))
    learning_rate: float = field(default=1e-3, metadata=spec(gt=0, le=10, hint="e.g. 0.001"))
    weight_decay: float = field(default=1e-4, metadata=spec(ge=0, le=1))
    class_weights: Literal["auto", "none"] | tuple[float, ...] = "auto"
    patience: int = field(default=10, metadata=spec(ge=0, hint="epochs; 0 turns it off"))
    augment: bool = True
    color_jitter: bool = True
    hed_jitter: bool = False
    heatmaps: bool = True


def check_whole_slide_options(options: WholeSlideOptions) -> list[str]:
    """Cross-field problems, each ``key: what is wrong; write what instead.``"""
    problems = []
    if (options.target_mpp is None) == (options.max_size is None):
        problems.append(
            "whole_slide_cnn.target_mpp: give exactly one of target_mpp (µm/px) and max_size "
            "(px); set the other to null"
        )
    if options.pretrained and options.weights is not None:
        problems.append("whole_slide_cnn.pretrained: give pretrained: true or weights, not both")
    canvas, max_size = options.canvas, options.max_size
    if canvas is not None and max_size is not None and max_size > canvas:
        problems.append(
            f"whole_slide_cnn.max_size: {max_size} px does not fit the {canvas} px canvas; "
            "make max_size ≤ canvas"
        )
    weights = options.class_weights
    if isinstance(weights, tuple) and any(w < 0 for w in weights):
        problems.append("whole_slide_cnn.class_weights: weights must be ≥ 0")
    return problems
