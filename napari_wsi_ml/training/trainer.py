"""Optimisation state of one training run: model, optimiser, schedule, AMP scaler, early stop.

:meth:`Trainer.state_dict` holds everything a resumed run needs to continue exactly where the
interrupted one stopped (the epoch and batch reached, the running loss of that epoch, the early
stopping counters); it is made of tensors and plain containers only, so checkpoints load with
``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from napari_wsi_ml.jobs.early_stopping import EarlyStopping
from napari_wsi_ml.models import PatchClassifier
from napari_wsi_ml.training.loops import amp_enabled


@dataclass
class Progress:
    """Where training stands: epoch in progress, batches done in it, its running loss."""

    epoch: int = 0
    batch: int = 0
    loss_sum: float = 0.0
    loss_count: int = 0
    done: bool = False


class Trainer:
    """The trainable network (DDP-wrapped where distributed) and its optimisation state.

    Args:
        model: The classifier (unwrapped).
        net: What is trained and called on a batch: ``model`` or ``model.head`` (features
            precomputed), possibly wrapped in DistributedDataParallel.
        lr: Peak learning rate (AdamW), decayed by a cosine over ``total_steps``.
        weight_decay: AdamW weight decay.
        total_steps: Optimisation steps of the whole run.
        amp: Mixed precision, used where :func:`~.loops.amp_enabled` (CUDA): autocast in
            the step and a :class:`torch.amp.GradScaler` scaling the loss.
        patience: Early stopping on validation loss after this many epochs (0: never).
    """

    def __init__(
        self,
        model: PatchClassifier,
        net: nn.Module,
        *,
        lr: float,
        weight_decay: float,
        total_steps: int,
        amp: bool,
        device: torch.device,
        patience: int = 0,
    ) -> None:
        self.model, self.net = model, net
        self.optimizer = torch.optim.AdamW(
            model.trainable_parameters(), lr=lr, weight_decay=weight_decay
        )
        steps = max(1, total_steps)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda step: 0.5 * (1 + math.cos(math.pi * min(step, steps) / steps))
        )
        self.amp = amp_enabled(device, amp)
        self.scaler = torch.amp.GradScaler(device.type, enabled=self.amp)
        self.progress = Progress()
        self.early = EarlyStopping(patience=patience, mode="min")

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume (plain containers and tensors)."""
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "progress": asdict(self.progress),
            "epoch": self.progress.epoch,
            "step_in_epoch": self.progress.batch,
            "early_stopping": self.early.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`'s output."""
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        self.progress = Progress(**state["progress"])
        self.early.load_state_dict(state["early_stopping"])

    def end_epoch(self, val_loss: float | None) -> bool:
        """Close the epoch; True when ``val_loss`` is the best so far (always without one)."""
        p = self.progress
        improved = True if val_loss is None else self.early.update(val_loss, p.epoch)
        p.done = self.early.should_stop
        p.epoch, p.batch, p.loss_sum, p.loss_count = p.epoch + 1, 0, 0.0, 0
        return improved

    @property
    def epoch_loss(self) -> float:
        """Mean training loss of the epoch so far."""
        p = self.progress
        return p.loss_sum / p.loss_count if p.loss_count else float("nan")
