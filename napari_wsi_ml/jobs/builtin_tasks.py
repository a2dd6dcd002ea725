"""``smoke``: a tiny, real regression task on synthetic tensors that exercises the job system.

It trains a linear model, a small MLP or a small 1-D CNN with SGD (momentum) and a step
learning-rate schedule, logs progress and per-epoch metrics, writes ``last``/``best``
checkpoints (also every ``checkpoint_every`` steps within an epoch), stops early, honours
cancel requests, resumes mid-epoch, and runs under torchrun. Runs in well under a second.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from napari_wsi_ml.config_schema import spec
from napari_wsi_ml.jobs.distributed import (
    all_reduce_mean,
    distributed_sampler,
    local_batch_size,
    train_step,
    unwrap_model,
    wrap_model,
)
from napari_wsi_ml.jobs.early_stopping import EarlyStopping
from napari_wsi_ml.jobs.manifest import sha256_json
from napari_wsi_ml.jobs.reproducibility import make_generator
from napari_wsi_ml.jobs.run_context import RunContext


@dataclass(frozen=True)
class SmokeData:
    """``data:`` synthetic regression data ``y = x·w + noise``."""

    n_samples: int = field(default=64, metadata=spec(ge=4, hint="an integer ≥ 4, e.g. 64"))
    n_features: int = field(default=8, metadata=spec(ge=1, le=4096, hint="e.g. 8"))
    noise: float = field(default=0.1, metadata=spec(ge=0, hint="a standard deviation, e.g. 0.1"))
    val_fraction: float = field(default=0.25, metadata=spec(gt=0, le=0.9, hint="e.g. 0.25"))


@dataclass(frozen=True)
class SmokeOptions:
    """``smoke:`` training options."""

    model: Literal["linear", "mlp", "cnn"] = "linear"
    epochs: int = field(default=3, metadata=spec(ge=1, le=100_000, hint="e.g. 3"))
    batch_size: int = field(default=16, metadata=spec(ge=1, hint="the global batch, e.g. 16"))
    learning_rate: float = field(default=0.05, metadata=spec(gt=0, hint="e.g. 0.05"))
    momentum: float = field(default=0.9, metadata=spec(ge=0, le=1, hint="e.g. 0.9"))
    lr_step_epochs: int = field(default=2, metadata=spec(ge=1, hint="halve the lr every N"))
    patience: int = field(default=0, metadata=spec(ge=0, hint="epochs; 0 = no early stop"))
    checkpoint_every: int = field(default=0, metadata=spec(ge=0, hint="steps; 0 = per epoch"))
    step_delay_s: float = field(default=0.0, metadata=spec(ge=0, le=60, hint="e.g. 0.05"))


def make_smoke_model(kind: str, n_features: int) -> nn.Module:
    """The model of ``smoke.model`` for ``n_features`` inputs and one output."""
    if kind == "linear":
        return nn.Linear(n_features, 1)
    if kind == "mlp":
        return nn.Sequential(nn.Linear(n_features, 16), nn.Tanh(), nn.Linear(16, 1))
    return nn.Sequential(
        nn.Unflatten(1, (1, n_features)),
        nn.Conv1d(1, 4, kernel_size=3, padding=1),
        nn.GroupNorm(2, 4),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(4 * n_features, 1),
    )


def make_smoke_data(data: SmokeData, seed: int) -> tuple[TensorDataset, TensorDataset]:
    """Train and validation sets, a pure function of ``data`` and ``seed``."""
    generator = make_generator(seed)
    x = torch.randn(data.n_samples, data.n_features, generator=generator)
    weights = torch.randn(data.n_features, 1, generator=generator)
    y = x @ weights + data.noise * torch.randn(data.n_samples, 1, generator=generator)
    n_val = max(1, round(data.n_samples * data.val_fraction))
    return TensorDataset(x[n_val:], y[n_val:]), TensorDataset(x[:n_val], y[:n_val])


class SmokeTask:
    """The ``smoke`` job type (see the module docstring)."""

    name: ClassVar[str] = "smoke"
    options_schema: ClassVar[type] = SmokeOptions
    data_schema: ClassVar[type] = SmokeData

    def check_config(self, config: Any) -> list[str]:
        """Cross-field checks: the validation split must leave training samples."""
        data: SmokeData = config.data
        if data.n_samples - max(1, round(data.n_samples * data.val_fraction)) < 1:
            return ["data.val_fraction: leaves no training samples; write a smaller fraction."]
        return []

    def run(self, ctx: RunContext) -> None:
        """Train; see the module docstring."""
        options: SmokeOptions = ctx.config.task
        train_set, val_set = make_smoke_data(ctx.config.data, ctx.seed)
        ctx.write_data_manifest(
            {
                "kind": "synthetic regression",
                "n_train": len(train_set),
                "n_val": len(val_set),
                "seed": ctx.seed,
                "hash": sha256_json([train_set.tensors[0].tolist(), val_set.tensors[0].tolist()]),
            }
        )
        model = make_smoke_model(options.model, ctx.config.data.n_features)
        optimizer = torch.optim.SGD(
            model.parameters(), lr=options.learning_rate, momentum=options.momentum
        )
        scheduler = torch.optim.lr_scheduler.StepLR(optimizer, options.lr_step_epochs, 0.5)
        stopper = EarlyStopping(patience=options.patience)
        epoch, skip, loss_sum, loss_count = 0, 0, 0.0, 0
        state = ctx.resume_state
        if state is not None:
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            stopper.load_state_dict(state["early_stopping"])
            epoch, skip = int(state["epoch"]), int(state["step_in_epoch"])
            loss_sum, loss_count = float(state["loss_sum"]), int(state["loss_count"])
            ctx.restore_rng()
        net = wrap_model(model, ctx.dist, ctx.device)
        sampler = distributed_sampler(train_set, ctx.dist, shuffle=True, seed=ctx.seed)
        loader = DataLoader(
            train_set,
            batch_size=local_batch_size(options.batch_size, ctx.dist),
            sampler=sampler,
            generator=make_generator(ctx.seed),
        )
        steps, total = len(loader), len(loader) * options.epochs

        def checkpoint(next_epoch: int, step_in_epoch: int, *, best: bool = False) -> None:
            ctx.save_checkpoint(
                {
                    "model": unwrap_model(net).state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(),
                    "early_stopping": stopper.state_dict(),
                    "epoch": next_epoch,
                    "step_in_epoch": step_in_epoch,
                    "loss_sum": loss_sum,
                    "loss_count": loss_count,
                },
                best=best,
            )

        while epoch < options.epochs and not stopper.should_stop:
            sampler.set_epoch(epoch)
            net.train()
            for index, batch in enumerate(loader):
                if index < skip:
                    continue
                loss = float(train_step(net, batch, nn.functional.mse_loss, optimizer))
                loss_sum, loss_count = loss_sum + loss, loss_count + 1
                ctx.progress(epoch * steps + index + 1, total, epoch=epoch, loss=loss)
                if options.step_delay_s:
                    time.sleep(options.step_delay_s)
                every = options.checkpoint_every
                if ctx.should_stop() or (every and (epoch * steps + index + 1) % every == 0):
                    checkpoint(epoch, index + 1)
                    if ctx.stopped:
                        return
            scheduler.step()
            val_loss = self._validate(unwrap_model(net), val_set, ctx.device)
            improved = stopper.update(val_loss, epoch)
            ctx.log_metrics(
                epoch,
                train_loss=all_reduce_mean(loss_sum / max(1, loss_count), ctx.dist),
                val_loss=val_loss,
                lr=optimizer.param_groups[0]["lr"],
            )
            if improved:
                ctx.set_best("val_loss", val_loss, epoch)
            epoch, skip, loss_sum, loss_count = epoch + 1, 0, 0.0, 0
            checkpoint(epoch, 0, best=improved)
            if ctx.should_stop():
                return
        ctx.set_summary(epochs_run=epoch, best_val_loss=stopper.best)

    @staticmethod
    def _validate(model: nn.Module, val_set: TensorDataset, device: torch.device) -> float:
        model.eval()
        x, y = val_set.tensors
        with torch.no_grad():
            return float(nn.functional.mse_loss(model(x.to(device)), y.to(device)))
