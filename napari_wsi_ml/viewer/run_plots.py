"""What a training run's events say so far, and its learning curves as a matplotlib figure.

A run writes ``events.jsonl`` (format in :mod:`napari_wsi_ml.jobs.events`). :class:`RunTrace`
folds its events in as they arrive (no Qt, no file access): the per-epoch metric curves, the
progress (step of total, ETA), the status and the errors. :func:`draw_run_curves` draws the
loss and metric curves on a figure. The Train panel does both on a timer; a notebook can too.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from matplotlib.figure import Figure

from napari_wsi_ml.jobs.events import Event

TERMINAL_STATES = frozenset({"finished", "failed", "cancelled"})


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


@dataclass
class RunTrace:
    """Curves, progress, status and errors of one run, folded from its events.

    Attributes:
        curves: Metric name → ``[(epoch, value), …]`` from the ``metric`` events, in order.
        step: Optimisation steps done, from the latest ``progress`` event (None before any).
        total: Steps of the whole run.
        eta_s: Seconds left as the run estimated them (None until known).
        epoch: The epoch of the latest progress event.
        status: The latest status (``running``, ``finished``, ``failed``, ``cancelled``).
        message: The latest status or log message.
        errors: ``error`` events' messages, oldest first.
        tracebacks: Their tracebacks, where given.
    """

    curves: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    step: float | None = None
    total: float | None = None
    eta_s: float | None = None
    epoch: float | None = None
    status: str | None = None
    message: str = ""
    errors: list[str] = field(default_factory=list)
    tracebacks: list[str] = field(default_factory=list)

    def add(self, event: Event) -> None:
        """Fold one event in; unknown kinds and non-numeric metric fields are ignored."""
        fields = event.fields
        if event.kind == "metric":
            epoch = _number(fields.get("epoch"))
            x = (
                epoch
                if epoch is not None
                else float(max(map(len, self.curves.values()), default=0))
            )
            for name, value in fields.items():
                number = _number(value)
                if name != "epoch" and number is not None:
                    self.curves.setdefault(name, []).append((x, number))
        elif event.kind == "progress":
            self.step = _number(fields.get("step"))
            self.total = _number(fields.get("total")) or self.total
            self.eta_s = _number(fields.get("eta_s"))
            self.epoch = _number(fields.get("epoch"))
        elif event.kind == "status":
            self.status = str(fields.get("status") or self.status)
            self.message = str(fields.get("message") or self.status or "")
        elif event.kind == "error":
            self.errors.append(str(fields.get("message") or "error"))
            if fields.get("traceback"):
                self.tracebacks.append(str(fields["traceback"]))
        elif event.kind == "log":
            self.message = str(fields.get("message", ""))

    def extend(self, events: Iterable[Event]) -> None:
        """Fold several events in, in order."""
        for event in events:
            self.add(event)

    @property
    def fraction(self) -> float | None:
        """Steps done / total, in [0, 1]; None while unknown."""
        if self.step is None or not self.total:
            return None
        return min(max(self.step / self.total, 0.0), 1.0)

    @property
    def ended(self) -> bool:
        """Whether the run has ended (finished, failed or cancelled)."""
        return self.status in TERMINAL_STATES

    def progress_text(self) -> str:
        """``"epoch 2 · step 40 / 400 · ETA 3:07"`` (the parts that are known)."""
        parts = []
        if self.epoch is not None:
            parts.append(f"epoch {self.epoch:g}")
        if self.step is not None:
            parts.append(f"step {self.step:g} / {self.total:g}" if self.total else "")
        if self.eta_s is not None and not self.ended:
            parts.append(format_eta(self.eta_s))
        return " · ".join(part for part in parts if part)


def format_eta(seconds: float) -> str:
    """``"ETA 1:05:09"`` or ``"ETA 3:07"``."""
    hours, rest = divmod(max(round(seconds), 0), 3600)
    minutes, secs = divmod(rest, 60)
    return f"ETA {hours}:{minutes:02d}:{secs:02d}" if hours else f"ETA {minutes}:{secs:02d}"


def is_loss(name: str) -> bool:
    """Whether a curve goes on the loss axes (its name mentions loss)."""
    return "loss" in name.lower()


LEARNING_RATE_NAMES = ("lr", "learning_rate")


def draw_run_curves(figure: Figure, trace: RunTrace, *, title: str = "") -> None:
    """Draw the loss curves (left) and the other metrics (right) of ``trace`` on ``figure``.

    The learning rate, on another scale, is a dashed grey line on its own axis at the right of
    the loss plot. The figure is cleared first; every point is marked, so one epoch shows.
    """
    figure.clear()
    loss_axes, metric_axes = figure.subplots(1, 2)
    rates = [name for name in trace.curves if name in LEARNING_RATE_NAMES]
    for axes, want_loss, label in ((loss_axes, True, "loss"), (metric_axes, False, "metric")):
        names = sorted(
            name for name in trace.curves if is_loss(name) == want_loss and name not in rates
        )
        for name in names:
            xs, ys = zip(*trace.curves[name], strict=True)
            axes.plot(xs, ys, marker="o", markersize=3, linewidth=1.5, label=name)
        axes.set_xlabel("epoch")
        axes.set_title(label, fontsize="medium")
        axes.grid(True, alpha=0.3)
        if names:
            axes.legend(fontsize="small", loc="best")
        else:
            axes.text(
                0.5,
                0.5,
                f"no {label} yet",
                ha="center",
                va="center",
                color="gray",
                transform=axes.transAxes,
            )
    for name in rates:
        rate_axes = loss_axes.twinx()
        xs, ys = zip(*trace.curves[name], strict=True)
        rate_axes.plot(xs, ys, linestyle="--", color="gray", linewidth=1, label=name)
        rate_axes.set_ylabel(name, color="gray", fontsize="small")
        rate_axes.tick_params(axis="y", labelsize="x-small", colors="gray")
        rate_axes.set_ylim(bottom=0)
    if title:
        figure.suptitle(title, fontsize="medium")
    figure.tight_layout()
