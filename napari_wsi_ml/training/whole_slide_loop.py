"""The whole-slide CNN's data flow: slide images, epoch batches, augmentation, prediction.

Every random choice of a training batch (the epoch's slide order, the place on the canvas, the
flips and colour jitter) is drawn from ``(seed, epoch, batch)``, so a run resumed in the middle
of an epoch replays exactly the batches it had left.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from napari_wsi_ml.data.augment import AugmentConfig, Augmenter
from napari_wsi_ml.errors import ConfigError
from napari_wsi_ml.training.slide_data import CohortItem
from napari_wsi_ml.training.whole_slide_data import (
    SlideImageCache,
    SlideImageSpec,
    canvas_batch,
    canvas_size,
    output_size,
    tissue_key,
)
from napari_wsi_ml.training.whole_slide_options import WholeSlideOptions


@dataclass
class SlideImage:
    """One cohort slide with its downscaled image (memory-mapped from the cache)."""

    item: CohortItem
    spec: SlideImageSpec
    image: np.ndarray


def slide_specs(items: Sequence[CohortItem], opts: WholeSlideOptions) -> list[SlideImageSpec]:
    """The downscaled size of every slide.

    Raises:
        ConfigError: Listing every slide that cannot be downscaled as asked.
    """
    fit = (opts.canvas, opts.canvas) if opts.canvas is not None else None
    specs, problems = [], []
    for item in items:
        try:
            size = output_size(
                item.size, mpp=item.plan.slide_mpp, target_mpp=opts.target_mpp,
                max_size=opts.max_size, fit=fit,
            )  # fmt: skip
        except ConfigError as error:
            problems.append(f"slide {item.slide!r} ('{item.path}'): {error}")
            continue
        key = tissue_key(item.tissue) if opts.mask_background else ""
        spec = SlideImageSpec(item.fingerprint, tuple(item.size), size, key, opts.mask_ink)
        specs.append(spec)
    if problems:
        listing = "\n".join(f"  - {p}" for p in problems)
        raise ConfigError(f"{len(problems)} slide(s) cannot be downscaled:\n{listing}")
    return specs


def load_slide_images(
    items: Sequence[CohortItem],
    opts: WholeSlideOptions,
    cache: SlideImageCache,
    progress: Callable[[int, int], Any] | None = None,
) -> list[SlideImage]:
    """The downscaled image of every slide, from the cache (made there first when missing)."""
    out = []
    for index, (item, spec) in enumerate(zip(items, slide_specs(items, opts), strict=True)):
        out.append(SlideImage(item, spec, cache.get(spec, item.path, item.tissue)))
        if progress is not None:
            progress(index + 1, len(items))
    return out


def autocast(device: torch.device, opts: WholeSlideOptions) -> contextlib.AbstractContextManager:
    """Mixed precision as configured: ``amp`` on CUDA, bfloat16 on the CPU with ``cpu_bf16``."""
    if device.type == "cuda" and opts.amp != "off":
        dtype = torch.bfloat16 if opts.amp == "bf16" else torch.float16
        return torch.autocast(device_type="cuda", dtype=dtype)
    if device.type == "cpu" and opts.cpu_bf16:
        return torch.autocast(device_type="cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _to_device(images: torch.Tensor, device: torch.device) -> torch.Tensor:
    """``images`` on ``device`` in channels-last layout (faster convolutions on CPU and GPU)."""
    return images.to(device).contiguous(memory_format=torch.channels_last)


def _rng(seed: int, epoch: int, batch: int = -1) -> np.random.Generator:
    return np.random.default_rng([seed, epoch, batch + 1, 0x5DE])


def epoch_batches(
    n: int, batch_size: int, *, seed: int, epoch: int, drop_last: bool = False
) -> list[np.ndarray]:
    """The epoch's global batches: slide indices in an order drawn from ``(seed, epoch)``."""
    order = _rng(seed, epoch).permutation(n)
    batches = [order[i : i + batch_size] for i in range(0, n, batch_size)]
    if drop_last and batches and len(batches[-1]) < batch_size:
        batches.pop()
    return batches


def train_batch(
    slides: Sequence[SlideImage],
    opts: WholeSlideOptions,
    *,
    seed: int,
    epoch: int,
    batch: int,
    device: torch.device,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Augmented canvases ``(N, 3, H, W)`` uint8 on ``device`` and their labels ``(N,)``."""
    size = canvas_size([s.spec.size for s in slides], canvas=opts.canvas,
                       multiple=opts.size_multiple)  # fmt: skip
    rng = _rng(seed, epoch, batch)
    offsets = [(0, 0)] * len(slides)
    if opts.augment:
        offsets = [
            (int(rng.integers(0, size[0] - w + 1)), int(rng.integers(0, size[1] - h + 1)))
            for w, h in (s.spec.size for s in slides)
        ]
    images = _to_device(canvas_batch([s.image for s in slides], size, offsets=offsets), device)
    config = AugmentConfig(flips=opts.augment, color=opts.color_jitter, hed=opts.hed_jitter)
    if config.flips or config.color or config.hed:
        generator = torch.Generator().manual_seed(int(rng.integers(2**62)))
        images = Augmenter(config)(images, generator)
    labels = torch.tensor([s.item.label_index for s in slides], dtype=torch.int64, device=device)
    return images.contiguous(memory_format=torch.channels_last), labels


@torch.no_grad()
def predict_slides(
    model: nn.Module,
    slides: Sequence[SlideImage],
    opts: WholeSlideOptions,
    device: torch.device,
    *,
    with_cams: bool = False,
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Class probabilities ``(N, C)`` of the slides and, if asked, their class activation maps.

    Slides sit at the canvas' top-left corner, without augmentation; without a fixed canvas
    each slide is predicted alone, on its own size rounded up to ``size_multiple``. ``model`` is
    the plain :class:`~napari_wsi_ml.models.whole_slide.WholeSlideNet`; it is left in training
    mode.
    """
    was_training = model.training
    model.eval()
    probs, cams = [], []
    step = opts.eval_batch_size if opts.canvas is not None else 1  # own padding per slide
    for start in range(0, len(slides), step):
        chunk = slides[start : start + step]
        size = canvas_size([s.spec.size for s in chunk], canvas=opts.canvas,
                           multiple=opts.size_multiple)  # fmt: skip
        images = _to_device(canvas_batch([s.image for s in chunk], size), device)
        with autocast(device, opts):
            features = model.feature_map(images)
            logits = model.head(model.pool(features))
            if with_cams:
                cams.extend(model.class_activation_maps(features).float().cpu().numpy())
        probs.append(torch.softmax(logits.float(), dim=1).cpu().numpy())
    model.train(was_training)
    n_classes = model.head.out_features
    return (np.concatenate(probs) if probs else np.zeros((0, n_classes))), cams
