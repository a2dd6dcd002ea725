"""Differentiable gather and scatter of row blocks between the ranks of a process group.

Used by end-to-end slide training: every rank encodes its share of a slide's tiles, the tile
features are gathered to one rank where the aggregator runs, and the gradients with respect to
the features travel back along the same path, so each rank backpropagates its own tiles
through the encoder.

- :func:`gather_rows` — forward: the ``(n_r, *F)`` blocks of every rank, concatenated in rank
  order, on ``dst`` (an empty ``(0, *F)`` tensor elsewhere); backward: the rows of the
  gradient on ``dst`` are scattered back to the ranks they came from.
- :func:`scatter_rows` — its adjoint: forward splits ``dst``'s rows among the ranks; backward
  gathers the row gradients to ``dst``.
- :func:`backward_at` — every rank must take part in the backward collective: ``dst`` calls
  ``loss.backward()``, the others backpropagate a zero-size gradient into their gathered
  (empty) tensor.
- :func:`reduce_gradients` — after the backward pass: gradients of encoder parameters
  (``summed``) are summed over ranks, those only ``dst`` computed (``from_root``) are copied
  from it, in one all-reduce; every rank then takes the same optimiser step.

Blocks may have different numbers of rows on different ranks (they are padded to the largest
for the collective); trailing shapes and dtypes must agree. Works with ``gloo`` (CPU tensors)
and ``nccl`` (CUDA tensors). In a single process (no process group, or world size 1) every
function is the identity on its input.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import torch
import torch.distributed as torch_dist
from torch import nn


def rank_and_world(group: Any = None) -> tuple[int, int]:
    """``(rank, world size)`` in ``group``; ``(0, 1)`` without a process group."""
    if not (torch_dist.is_available() and torch_dist.is_initialized()):
        return 0, 1
    return torch_dist.get_rank(group), torch_dist.get_world_size(group)


def row_counts(n_local: int, device: torch.device, group: Any = None) -> list[int]:
    """Every rank's number of rows, in rank order (one small all-gather)."""
    _, world = rank_and_world(group)
    if world == 1:
        return [int(n_local)]
    mine = torch.tensor([int(n_local)], dtype=torch.int64, device=device)
    every = [torch.zeros_like(mine) for _ in range(world)]
    torch_dist.all_gather(every, mine, group=group)
    return [int(c.item()) for c in every]


def _padded(rows: torch.Tensor, size: int) -> torch.Tensor:
    if rows.shape[0] == size:
        return rows.contiguous()
    pad = rows.new_zeros((size - rows.shape[0], *rows.shape[1:]))
    return torch.cat([rows, pad]).contiguous()


def _gather(local: torch.Tensor, counts: Sequence[int], dst: int, group: Any) -> torch.Tensor:
    rank, world = rank_and_world(group)
    largest = max(counts)
    buffers = [local.new_empty((largest, *local.shape[1:])) for _ in range(world)]
    torch_dist.gather(
        _padded(local, largest),
        buffers if rank == dst else None,
        dst=torch_dist.get_global_rank(group, dst) if group is not None else dst,
        group=group,
    )
    if rank != dst:
        return local.new_empty((0, *local.shape[1:]))
    return torch.cat([b[:n] for b, n in zip(buffers, counts, strict=True)])


def _scatter(full: torch.Tensor, counts: Sequence[int], src: int, group: Any) -> torch.Tensor:
    rank, world = rank_and_world(group)
    largest = max(counts)
    out = full.new_empty((largest, *full.shape[1:]))
    pieces = None
    if rank == src:
        starts = [sum(counts[:r]) for r in range(world)]
        pieces = [_padded(full[s : s + n], largest) for s, n in zip(starts, counts, strict=True)]
    torch_dist.scatter(
        out,
        pieces,
        src=torch_dist.get_global_rank(group, src) if group is not None else src,
        group=group,
    )
    return out[: counts[rank]]


class _GatherRows(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, local: torch.Tensor, counts: list[int], dst: int, group: Any):
        ctx.counts, ctx.dst, ctx.group = counts, dst, group
        ctx.local_shape = local.shape
        return _gather(local, counts, dst, group)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor):
        rank, _ = rank_and_world(ctx.group)
        if rank != ctx.dst:  # only the shape and dtype matter on the other ranks
            grad = grad.new_empty((0, *ctx.local_shape[1:]))
        return _scatter(grad.contiguous(), ctx.counts, ctx.dst, ctx.group), None, None, None


class _ScatterRows(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, full: torch.Tensor, counts: list[int], src: int, group: Any):
        ctx.counts, ctx.src, ctx.group = counts, src, group
        ctx.full_shape = full.shape
        return _scatter(full.contiguous(), counts, src, group)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor):
        rank, _ = rank_and_world(ctx.group)
        gathered = _gather(grad.contiguous(), ctx.counts, ctx.src, ctx.group)
        if rank != ctx.src:
            gathered = grad.new_zeros(ctx.full_shape)
        return gathered, None, None, None


def gather_rows(
    local: torch.Tensor,
    *,
    dst: int = 0,
    counts: Sequence[int] | None = None,
    group: Any = None,
) -> torch.Tensor:
    """Every rank's rows concatenated in rank order on ``dst``; ``(0, *F)`` elsewhere.

    Args:
        local: This rank's ``(n_r, *F)`` rows (may differ in ``n_r`` between ranks).
        dst: The rank (within ``group``) that receives the rows.
        counts: Every rank's ``n_r`` if known (saves an all-gather); else exchanged.
        group: Process group (default: the world).
    """
    _, world = rank_and_world(group)
    if world == 1:
        return local
    counts = list(counts) if counts is not None else row_counts(len(local), local.device, group)
    return _GatherRows.apply(local, counts, dst, group)


def scatter_rows(
    full: torch.Tensor,
    counts: Sequence[int],
    *,
    src: int = 0,
    group: Any = None,
) -> torch.Tensor:
    """Rank ``r``'s block of ``src``'s rows: rows ``sum(counts[:r])`` to ``sum(counts[:r+1])``.

    Args:
        full: On ``src``, ``(sum(counts), *F)`` rows; elsewhere any tensor with the same
            trailing shape and dtype (e.g. an empty one).
        counts: Rows per rank, in rank order (the same on every rank).
        src: The rank that holds the rows.
        group: Process group (default: the world).
    """
    _, world = rank_and_world(group)
    if world == 1:
        return full
    return _ScatterRows.apply(full, list(counts), src, group)


def backward_at(loss: torch.Tensor | None, gathered: torch.Tensor, *, dst: int = 0) -> None:
    """Run the backward pass on every rank of a gather: ``loss`` on ``dst``, the rest join in.

    Args:
        loss: The scalar loss on ``dst`` (ignored elsewhere, may be None there).
        gathered: What :func:`gather_rows` returned on this rank.
        dst: The rank the rows were gathered to.
    """
    rank, _ = rank_and_world()
    if rank == dst:
        if loss is None:
            raise ValueError(f"rank {dst} holds the gathered rows and needs a loss")
        loss.backward()
    elif gathered.requires_grad:
        torch.autograd.backward(gathered, grad_tensors=torch.zeros_like(gathered))


def reduce_gradients(
    summed: Iterable[nn.Parameter],
    from_root: Iterable[nn.Parameter] = (),
    *,
    root: int = 0,
    group: Any = None,
) -> None:
    """Sum ``summed`` gradients over ranks and give every rank ``root``'s ``from_root`` ones.

    Missing gradients count as zero (and are created). One flat all-reduce for both.
    """
    rank, world = rank_and_world(group)
    if world == 1:
        return
    summed, from_root = list(summed), list(from_root)
    params = summed + from_root
    if not params:
        return
    for param in params:
        if param.grad is None:
            param.grad = torch.zeros_like(param)
    if rank != root:
        for param in from_root:
            param.grad.zero_()
    flat = torch.cat([p.grad.reshape(-1) for p in params])
    torch_dist.all_reduce(flat, group=group)
    start = 0
    for param in params:
        size = param.numel()
        param.grad.copy_(flat[start : start + size].view_as(param.grad))
        start += size


def broadcast_value(value: float | None, *, src: int = 0, device: torch.device | None = None):
    """``src``'s number on every rank (``value`` itself in one process)."""
    _, world = rank_and_world()
    if world == 1:
        return float(value) if value is not None else float("nan")
    tensor = torch.tensor([float("nan") if value is None else float(value)], dtype=torch.float64)
    tensor = tensor.to(device or torch.device("cpu"))
    torch_dist.broadcast(tensor, src=src)
    return float(tensor.item())
