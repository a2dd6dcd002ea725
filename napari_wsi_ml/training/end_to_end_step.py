"""One end-to-end step's forward and backward pass, in one process or spread over several.

Every rank encodes its block of the step's tiles; the features (and which slide each tile
belongs to) are gathered to rank ``dst`` (:func:`~napari_wsi_ml.jobs.feature_exchange.
gather_rows`), which packs them into padded bags, runs the aggregator and the loss; the
gradients with respect to the features are scattered back, every rank backpropagates its tiles
through the encoder, and the gradients are combined (encoder: summed over ranks; aggregator:
``dst``'s) so that every rank holds the gradient of the single-process step and takes the same
optimiser step. In one process the same code runs without any communication.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from napari_wsi_ml.jobs.feature_exchange import (
    backward_at,
    broadcast_value,
    gather_rows,
    rank_and_world,
    reduce_gradients,
    row_counts,
)
from napari_wsi_ml.models.end_to_end import EndToEndModel
from napari_wsi_ml.training.loops import autocast


def bag_batch(
    features: torch.Tensor, groups: torch.Tensor, n_bags: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pack tile features into padded bags (differentiable).

    Args:
        features: ``(T, F)`` tile features.
        groups: ``(T,)`` bag (0..n_bags-1) of each tile; tiles keep their order in a bag.
        n_bags: Number of bags B.

    Returns:
        ``bags`` ``(B, N, F)`` (N = the largest bag, at least 1) and ``mask`` ``(B, N)``, True
        on real tiles.
    """
    groups = groups.to(features.device, torch.int64)
    sizes = torch.bincount(groups, minlength=n_bags)
    order = torch.argsort(groups, stable=True)
    starts = torch.cumsum(sizes, 0) - sizes
    position = torch.empty_like(groups)
    position[order] = torch.arange(len(groups), device=groups.device) - starts[groups[order]]
    longest = max(1, int(sizes.max().item()) if len(groups) else 1)
    bags = features.new_zeros((n_bags, longest, features.shape[1]))
    bags = bags.index_put((groups, position), features)
    mask = torch.zeros((n_bags, longest), dtype=torch.bool, device=features.device)
    mask[groups, position] = True
    return bags, mask


def forward_backward(
    model: EndToEndModel,
    images: torch.Tensor,
    groups: torch.Tensor,
    labels: torch.Tensor,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    *,
    scaler: torch.amp.GradScaler | None = None,
    dst: int = 0,
) -> float:
    """Gradients of one step on every rank (see the module docstring); returns the loss.

    Args:
        model: The model (the same parameters on every rank; not DDP-wrapped).
        images: This rank's tiles ``(n_r, 3, H, W)`` (may be empty).
        groups: ``(n_r,)`` slide position (0..B-1) of each tile in the step.
        labels: ``(B,)`` class indices of the step's slides (the same on every rank).
        loss_fn: ``(logits (B, C), labels (B,)) → scalar``.
        scaler: An enabled GradScaler runs the encoder under autocast and scales the loss.
        dst: The rank the aggregator runs on.

    Returns:
        The loss (``dst``'s value, on every rank).
    """
    device = labels.device
    rank, _ = rank_and_world()
    amp = scaler is not None and scaler.is_enabled()
    if len(images):
        with autocast(device, amp):
            features = model.encode(images.to(device, non_blocking=True)).float()
    else:  # an empty block still takes part in the collectives (and in their backward)
        features = torch.zeros((0, model.num_features), device=device, requires_grad=True)
    counts = row_counts(len(features), device)
    gathered = gather_rows(features, dst=dst, counts=counts)
    every_group = gather_rows(groups.to(device, torch.int64), dst=dst, counts=counts)
    loss = None
    to_backward = None
    if rank == dst:
        bags, mask = bag_batch(gathered, every_group, len(labels))
        logits = model.aggregate(bags, mask).logits.float()
        loss = loss_fn(logits, labels)
        to_backward = scaler.scale(loss) if amp else loss
    elif amp:
        scaler.scale(torch.zeros((), device=device))  # sets up the scale on this rank too
    backward_at(to_backward, gathered, dst=dst)
    reduce_gradients(model.encoder_parameters(), model.aggregator_parameters(), root=dst)
    return broadcast_value(None if loss is None else float(loss.detach()), src=dst, device=device)
