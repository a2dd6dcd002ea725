"""Single-process and DistributedDataParallel training with the same code.

Under ``torchrun --nproc_per_node N`` the environment gives ``RANK``, ``WORLD_SIZE`` and
``LOCAL_RANK`` (plus ``MASTER_ADDR``/``MASTER_PORT``); :func:`init_distributed` joins the
process group (``gloo`` on CPU, ``nccl`` on CUDA). Without them everything runs in one process.

The training step every task uses is :func:`train_step`. With DDP each rank gets a
``batch_size / world_size`` share of the global batch (see :func:`distributed_sampler`) and the
gradients are averaged, so one step equals a single-process step on the global batch (for
models whose forward pass treats samples independently; :func:`wrap_model` converts batch norm
to ``SyncBatchNorm`` for that reason).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.distributed as torch_dist
from torch import nn
from torch.utils.data import Dataset
from torch.utils.data.distributed import DistributedSampler

from napari_wsi_ml.errors import ConfigError
from napari_wsi_ml.jobs.run_context import DistributedInfo


def distributed_info_from_env() -> DistributedInfo:
    """Rank, world size and local rank from torchrun's environment (1 process without it)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistributedInfo()
    return DistributedInfo(
        rank=int(os.environ.get("RANK", "0")),
        world_size=world,
        local_rank=int(os.environ.get("LOCAL_RANK", "0")),
    )


def resolve_device(requested: str, dist: DistributedInfo) -> torch.device:
    """``auto`` → this rank's GPU when CUDA is available, else the CPU.

    Raises:
        ConfigError: ``cuda`` was asked for and no GPU is visible.
    """
    has_cuda = torch.cuda.is_available()
    if requested == "cuda" and not has_cuda:
        raise ConfigError(
            "job.device: cuda was asked for but no CUDA GPU is visible; write device: auto or cpu."
        )
    if requested == "cpu" or not has_cuda:
        return torch.device("cpu")
    return torch.device("cuda", dist.local_rank % max(1, torch.cuda.device_count()))


def init_distributed(device: torch.device) -> DistributedInfo:
    """Join the process group when torchrun started several processes; return where we stand."""
    info = distributed_info_from_env()
    if not info.is_distributed:
        return info
    backend = "nccl" if device.type == "cuda" else "gloo"
    if not torch_dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        torch_dist.init_process_group(backend=backend)
    return DistributedInfo(info.rank, info.world_size, info.local_rank, backend)


def shutdown_distributed() -> None:
    """Leave the process group, if one was joined."""
    if torch_dist.is_available() and torch_dist.is_initialized():
        torch_dist.destroy_process_group()


def broadcast_text(text: str | None, dist: DistributedInfo) -> str:
    """Rank 0's ``text`` on every rank (as a byte tensor, no pickling)."""
    if not dist.is_distributed:
        return text or ""
    data = (text or "").encode("utf-8") if dist.is_main else b""
    length = torch.tensor([len(data)], dtype=torch.int64)
    torch_dist.broadcast(length, src=0)
    buffer = torch.zeros(int(length.item()), dtype=torch.uint8)
    if dist.is_main:
        buffer = torch.frombuffer(bytearray(data), dtype=torch.uint8)
    torch_dist.broadcast(buffer, src=0)
    return bytes(buffer.tolist()).decode("utf-8")


def all_reduce_mean(value: float, dist: DistributedInfo) -> float:
    """The mean of ``value`` over ranks (``value`` itself in one process)."""
    if not dist.is_distributed:
        return float(value)
    tensor = torch.tensor([float(value)], dtype=torch.float64)
    torch_dist.all_reduce(tensor)
    return float(tensor.item()) / dist.world_size


def wrap_model(
    model: nn.Module, dist: DistributedInfo, device: torch.device, *, sync_batchnorm: bool = True
) -> nn.Module:
    """``model`` on ``device``, inside DistributedDataParallel when distributed."""
    model = model.to(device)
    if not dist.is_distributed:
        return model
    if sync_batchnorm:
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    device_ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=device_ids)


def unwrap_model(model: nn.Module) -> nn.Module:
    """The module inside a DDP wrapper (the model itself otherwise)."""
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def local_batch_size(global_batch: int, dist: DistributedInfo) -> int:
    """Each rank's share of the global batch.

    Raises:
        ConfigError: The global batch does not divide among the processes.
    """
    if global_batch % dist.world_size:
        raise ConfigError(
            f"batch_size {global_batch} does not divide among {dist.world_size} processes; "
            f"write a multiple of {dist.world_size}."
        )
    return global_batch // dist.world_size


def distributed_sampler(
    dataset: Dataset, dist: DistributedInfo, *, shuffle: bool, seed: int, drop_last: bool = False
) -> DistributedSampler:
    """This rank's share of ``dataset``; also used with one process, so the order is the same.

    Call ``sampler.set_epoch(epoch)`` before each epoch.
    """
    return DistributedSampler(
        dataset,
        num_replicas=dist.world_size,
        rank=dist.rank,
        shuffle=shuffle,
        seed=seed,
        drop_last=drop_last,
    )


def _to_device(value: Any, device: torch.device) -> Any:
    if isinstance(value, torch.Tensor):
        return value.to(device, non_blocking=True)
    if isinstance(value, list | tuple):
        return type(value)(_to_device(v, device) for v in value)
    if isinstance(value, dict):
        return {k: _to_device(v, device) for k, v in value.items()}
    return value


def train_step(
    model: nn.Module,
    batch: Sequence[Any],
    loss_fn: Callable[[Any, Any], torch.Tensor],
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler | None = None,
) -> torch.Tensor:
    """One optimisation step on ``batch = (inputs, targets)``; returns the detached loss.

    Moves the batch to the model's device. With an enabled ``scaler`` the forward pass runs
    under autocast (mixed precision) and the loss is scaled. Under DDP the backward pass
    averages the gradients over ranks.
    """
    device = next(model.parameters()).device
    inputs, targets = _to_device(batch[0], device), _to_device(batch[1], device)
    optimizer.zero_grad(set_to_none=True)
    use_amp = scaler is not None and scaler.is_enabled()
    with torch.autocast(device_type=device.type, enabled=use_amp):
        loss = loss_fn(model(inputs), targets)
    if use_amp:
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
    else:
        loss.backward()
        optimizer.step()
    return loss.detach()
