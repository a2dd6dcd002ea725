"""Training and evaluation loops of the patch classifier: batches, steps, predictions.

Batches come from a :class:`~torch.utils.data.DataLoader` over a patch dataset with an
:class:`EpochOrderSampler`: the order of epoch ``e`` is drawn from ``(seed, e)`` only, each rank
takes every ``world_size``-th index, and a resumed epoch starts at the batch it stopped at, so a
resumed run sees exactly the batches an uninterrupted one does. Workers read and collate uint8
patches only (forked where the platform allows: no re-import per worker); augmentation runs on
whole batches on the training device (:func:`device_batches`), seeded per batch from
``(seed, epoch, batch, rank)``. AMP runs on the device types of :data:`AMP_DEVICE_TYPES`
(CUDA). The optimisation step itself is :func:`napari_wsi_ml.jobs.distributed.train_step`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Sampler

from napari_wsi_ml.data._torch_color import to_float
from napari_wsi_ml.data._torch_loader import item_generator, worker_start_method
from napari_wsi_ml.data.dataset import collate_patches, worker_init

AMP_DEVICE_TYPES: tuple[str, ...] = ("cuda",)
"""Device types on which ``amp: true`` turns mixed precision on (float16 on CUDA, with loss
scaling). CPU autocast (bfloat16) is correct but slower than float32 on most CPUs, so it is off;
the tests add ``"cpu"`` to run the mixed-precision code path without a GPU."""
AMP_DTYPES = {"cuda": torch.float16, "cpu": torch.bfloat16}
"""Autocast dtype per device type."""
AUGMENT_KEY = 0xA06
"""Last key of a batch's augmentation seed (keeps it apart from other seeds of the run)."""

BatchAugment = Callable[[torch.Tensor, torch.Generator], torch.Tensor]
"""Batch augmentation: ``(N, 3, H, W)`` float images in [0, 1] and a generator → images
(e.g. :class:`~napari_wsi_ml.data.augment.Augmenter`)."""


class EpochOrderSampler(Sampler[int]):
    """This rank's indices of epoch ``dataset.epoch``, from batch ``start_batch`` on.

    The order is a permutation drawn from ``(seed, epoch)`` (or the identity when
    ``shuffle=False``), padded by wrapping to a multiple of ``world_size``.
    """

    def __init__(
        self,
        dataset: Any,
        *,
        seed: int,
        shuffle: bool = True,
        rank: int = 0,
        world_size: int = 1,
        batch_size: int = 1,
    ) -> None:
        self.dataset, self.seed, self.shuffle = dataset, int(seed), shuffle
        self.rank, self.world_size, self.batch_size = rank, world_size, batch_size
        self.start_batch = 0

    def _indices(self) -> list[int]:
        n = len(self.dataset)
        order = (
            np.random.default_rng([self.seed, int(self.dataset.epoch)]).permutation(n)
            if self.shuffle
            else np.arange(n)
        )
        if self.world_size > 1 and n:
            pad = (-n) % self.world_size
            order = np.concatenate([order, order[:pad]])[self.rank :: self.world_size]
        return order[self.start_batch * self.batch_size :].tolist()

    def __len__(self) -> int:
        return len(self._indices())

    def __iter__(self) -> Iterator[int]:
        return iter(self._indices())


def patch_loader(
    dataset: Any,
    *,
    batch_size: int,
    num_workers: int,
    seed: int,
    shuffle: bool,
    rank: int = 0,
    world_size: int = 1,
    prefetch_factor: int = 4,
    pin_memory: bool | None = None,
    multiprocessing_context: str | None = None,
) -> tuple[DataLoader, EpochOrderSampler]:
    """A DataLoader over a patch dataset and its sampler (set ``sampler.start_batch``).

    Workers (``num_workers > 0``) persist across epochs, prefetch ``prefetch_factor`` batches
    each and start by ``multiprocessing_context`` (default
    :func:`~napari_wsi_ml.data._torch_loader.worker_start_method`: fork on Linux). Batches are
    pinned (default: when CUDA is available) so that :func:`device_batches` copies them
    asynchronously.
    """
    sampler = EpochOrderSampler(
        dataset,
        seed=seed,
        shuffle=shuffle,
        rank=rank,
        world_size=world_size,
        batch_size=batch_size,
    )
    options: dict[str, Any] = {}
    if num_workers > 0:
        options = {
            "worker_init_fn": worker_init,
            "persistent_workers": True,
            "prefetch_factor": prefetch_factor,
            "multiprocessing_context": multiprocessing_context or worker_start_method(),
        }
    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=num_workers,
        collate_fn=collate_patches,
        pin_memory=torch.cuda.is_available() if pin_memory is None else pin_memory,
        **options,
    )
    return loader, sampler


def batch_generator(seed: int, epoch: int, batch: int, rank: int = 0) -> torch.Generator:
    """The CPU generator of the augmentation of batch ``batch`` of ``epoch`` on ``rank``.

    It depends on these numbers only, so a resumed epoch augments its remaining batches as an
    uninterrupted one does, whatever the number of data-loader workers.
    """
    return item_generator(seed, epoch, batch, rank, AUGMENT_KEY)


def _on_device(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    moved = dict(batch)
    for key in ("image", "label"):
        moved[key] = batch[key].to(device, non_blocking=True)
    return moved


def device_batches(
    batches: Iterable[dict[str, Any]],
    device: torch.device,
    *,
    augment: BatchAugment | None = None,
    seed: int = 0,
    epoch: int = 0,
    start_batch: int = 0,
    rank: int = 0,
) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(position, batch)`` of collated patch batches, images and labels on ``device``.

    The copy of the next batch is issued before the current one is handed out (asynchronous
    from pinned memory on CUDA: it overlaps the current step). With ``augment``, each batch's
    uint8 images become float in [0, 1] and are augmented as a whole on ``device``, with
    :func:`batch_generator` ``(seed, epoch, position, rank)``; ``position`` counts the
    loader's batches from ``start_batch`` (empty batches included).
    """
    iterator = iter(batches)
    upcoming = next(iterator, None)
    ahead = None if upcoming is None else _on_device(upcoming, device)
    position = start_batch
    while ahead is not None:
        current = ahead
        upcoming = next(iterator, None)
        ahead = None if upcoming is None else _on_device(upcoming, device)
        if augment is not None and len(current["label"]):
            generator = batch_generator(seed, epoch, position, rank)
            current["image"] = augment(to_float(current["image"]), generator)
        yield position, current
        position += 1


def class_weights(
    labels: np.ndarray, n_classes: int, setting: str | tuple[float, ...]
) -> torch.Tensor | None:
    """Loss weights: ``"auto"`` = N / (C · count) per class (absent classes weigh 0)."""
    if setting == "none":
        return None
    if isinstance(setting, tuple):
        return torch.tensor(setting, dtype=torch.float32)
    counts = np.bincount(labels[labels >= 0], minlength=n_classes).astype(np.float64)
    weights = np.where(counts > 0, counts.sum() / (n_classes * np.maximum(counts, 1)), 0.0)
    return torch.tensor(weights, dtype=torch.float32)


def amp_enabled(device: torch.device, enabled: bool) -> bool:
    """Whether ``amp: enabled`` means mixed precision on ``device`` (see
    :data:`AMP_DEVICE_TYPES`)."""
    return enabled and device.type in AMP_DEVICE_TYPES


def autocast(device: torch.device, enabled: bool) -> contextlib.AbstractContextManager:
    """Mixed precision (:data:`AMP_DTYPES`) where :func:`amp_enabled`; a no-op elsewhere."""
    if amp_enabled(device, enabled):
        return torch.autocast(device_type=device.type, dtype=AMP_DTYPES[device.type])
    return contextlib.nullcontext()


@torch.no_grad()
def predict(
    model: nn.Module, batches: Any, device: torch.device, *, amp: bool = False
) -> dict[str, np.ndarray]:
    """Softmax probabilities of every patch of ``batches`` (collated patch batches).

    Returns:
        ``probs`` ``(N, C)``, ``labels`` ``(N,)``, ``xy`` ``(N, 2)`` level-0 corners and
        ``slide_index`` ``(N,)``.
    """
    was_training = model.training
    model.eval()
    out: dict[str, list[np.ndarray]] = {"probs": [], "labels": [], "xy": [], "slide_index": []}
    for batch in batches:
        if len(batch["label"]) == 0:
            continue
        with autocast(device, amp):
            logits = model(batch["image"].to(device, non_blocking=True))
        out["probs"].append(torch.softmax(logits.float(), dim=1).cpu().numpy())
        out["labels"].append(batch["label"].numpy())
        out["xy"].append(batch["xy"].numpy())
        out["slide_index"].append(batch["slide_index"].numpy())
    model.train(was_training)
    empty = {"probs": np.zeros((0, 0)), "xy": np.zeros((0, 2), np.int64)}
    return {
        k: np.concatenate(v) if v else empty.get(k, np.zeros(0, np.int64)) for k, v in out.items()
    }


def mean_loss(probs: np.ndarray, labels: np.ndarray) -> float:
    """Mean cross-entropy of predicted probabilities (unweighted)."""
    if len(labels) == 0:
        return float("nan")
    picked = probs[np.arange(len(labels)), labels]
    return float(-np.log(np.clip(picked, 1e-12, None)).mean())


@torch.no_grad()
def extract_features(
    model: nn.Module, batches: Any, device: torch.device, *, amp: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """Backbone features ``(N, F)`` (float32, CPU) and labels ``(N,)`` of every patch."""
    features, labels = [], []
    for batch in batches:
        if len(batch["label"]) == 0:
            continue
        with autocast(device, amp):
            feats = model.features(batch["image"].to(device, non_blocking=True))
        features.append(feats.float().cpu())
        labels.append(batch["label"])
    if not features:
        return torch.zeros(0, 0), torch.zeros(0, dtype=torch.int64)
    return torch.cat(features), torch.cat(labels)


def feature_batches(
    features: torch.Tensor,
    labels: torch.Tensor,
    *,
    batch_size: int,
    seed: int,
    epoch: int,
    start_batch: int = 0,
    rank: int = 0,
    world_size: int = 1,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Batches of precomputed features in the order of epoch ``epoch`` (as the sampler's)."""
    order = np.random.default_rng([seed, epoch]).permutation(len(labels))
    if world_size > 1 and len(order):
        order = np.concatenate([order, order[: (-len(order)) % world_size]])[rank::world_size]
    order = order[start_batch * batch_size :]
    for start in range(0, len(order), batch_size):
        index = torch.as_tensor(order[start : start + batch_size])
        yield features[index], labels[index]
