"""What a task gets while it runs: :class:`RunContext`.

Attributes: ``run_dir`` (Path), ``paths`` (:class:`~.run_dir.RunPaths`), ``config``
(:class:`~.config.JobConfig`: ``.job``, ``.data``, ``.task`` dataclasses), ``seed`` (int),
``device`` (``torch.device``), ``dist`` (:class:`DistributedInfo`: ``rank``, ``world_size``,
``local_rank``, ``is_main``), ``resume_state`` (the dict of ``checkpoints/last.pt`` when
resuming, else None). ``plots_dir`` and ``heatmaps_dir`` are folders the task may write to.

Methods (on ranks other than 0, writes are silently skipped):

- ``log_event(kind, **fields)``; ``log(message, level="info")``.
- ``progress(step, total, **metrics)``: a ``progress`` event with elapsed time and ETA
  (at most every ``progress_interval_s``, always for the first and last step).
- ``log_metrics(epoch, **metrics)``: a ``metric`` event, a row of ``metrics.json["history"]``
  and, when enabled, MLflow metrics. ``set_best(metric, value, epoch)`` and
  ``set_summary(**values)`` fill ``metrics.json["best"]`` / ``["summary"]``.
- ``write_data_manifest(content)``: ``data.json`` (slides with fingerprints, labels, splits,
  ``annotation_hash`` …; see :func:`~.manifest.annotation_snapshot_hash`).
- ``save_checkpoint(state, *, best=False) -> bool``: writes ``last.pt`` (and ``best.pt`` when
  ``best``) atomically; adds ``state["rng"]`` (see :mod:`.reproducibility`) unless present.
  State must be tensors and plain containers (``torch.load(weights_only=True)``). On failure
  the previous file stays valid, an ``error`` event is logged and False is returned.
- ``load_checkpoint("last" | "best") -> dict | None``; ``restore_rng()`` restores the RNG
  state of ``resume_state`` (call it after building the model and data).
- ``should_stop() -> bool``: a cancel was requested (``cancel.request`` file or SIGTERM). In a
  distributed job it is a collective: call it at the same points on every rank.
- ``log_artifact(path)``: mirrored to MLflow when enabled.
"""

from __future__ import annotations

import os
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from napari_wsi_ml.jobs.events import Event, EventWriter, make_event
from napari_wsi_ml.jobs.reproducibility import restore_rng_state, rng_state
from napari_wsi_ml.jobs.run_dir import RunPaths, fsync_dir, read_json, write_json

if TYPE_CHECKING:
    from napari_wsi_ml.jobs.config import JobConfig
    from napari_wsi_ml.jobs.mlflow_mirror import MlflowMirror


@dataclass(frozen=True)
class DistributedInfo:
    """Where this process stands in a (possibly) distributed job."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str | None = None

    @property
    def is_main(self) -> bool:
        """True on rank 0, the only one that writes the run directory."""
        return self.rank == 0

    @property
    def is_distributed(self) -> bool:
        """True when more than one process takes part."""
        return self.world_size > 1


class RunContext:
    """The run directory, config and services a task uses; see the module docstring."""

    progress_interval_s: float = 0.2

    def __init__(
        self,
        run_dir: str | os.PathLike[str],
        config: JobConfig,
        *,
        device: torch.device | None = None,
        dist: DistributedInfo | None = None,
        resume_state: dict[str, Any] | None = None,
        mlflow: MlflowMirror | None = None,
        on_event: Callable[[Event], None] | None = None,
    ) -> None:
        self.run_dir = Path(run_dir)
        self.paths = RunPaths(self.run_dir)
        self.config = config
        self.seed: int = config.job.seed
        self.device = device or torch.device("cpu")
        self.dist = dist or DistributedInfo()
        self.resume_state = resume_state
        self._mlflow = mlflow
        self._on_event = on_event
        self._writer = EventWriter(self.paths.events) if self.dist.is_main else None
        self._stop_requested = False
        self.stopped = False
        self._started = time.monotonic()
        self._first_step: int | None = None
        self._last_progress = -1.0
        self._metrics: dict[str, Any] = {"history": [], "best": None, "summary": {}}
        if self.dist.is_main:
            previous = read_json(self.paths.metrics)
            if isinstance(previous, dict) and resume_state is not None:
                self._metrics.update(previous)

    # -- paths --------------------------------------------------------------------------
    @property
    def plots_dir(self) -> Path:
        """Folder for figures."""
        return self.paths.plots

    @property
    def heatmaps_dir(self) -> Path:
        """Folder for heatmaps."""
        return self.paths.heatmaps

    # -- events -------------------------------------------------------------------------
    def log_event(self, kind: str, **fields: Any) -> None:
        """Append an event to ``events.jsonl`` (rank 0 only)."""
        event = make_event(kind, **fields)
        if self._writer is not None:
            self._writer.write(event)
        if self._on_event is not None and self.dist.is_main:
            self._on_event(event)

    def log(self, message: str, level: str = "info") -> None:
        """A ``log`` event."""
        self.log_event("log", message=message, level=level)

    def progress(self, step: int, total: int, **metrics: Any) -> None:
        """A ``progress`` event (rate-limited); ``step`` counts from 0 to ``total``."""
        now = time.monotonic()
        if self._first_step is None:
            self._first_step, self._started = step, now
        last = step >= total
        if not last and now - self._last_progress < self.progress_interval_s:
            return
        self._last_progress = now
        elapsed = now - self._started
        done = step - self._first_step
        eta = elapsed / done * (total - step) if done > 0 else None
        self.log_event(
            "progress", step=step, total=total, elapsed_s=round(elapsed, 3), eta_s=eta, **metrics
        )

    def log_metrics(self, epoch: int, **metrics: float) -> None:
        """Per-epoch metrics: an event, a ``metrics.json`` history row, MLflow."""
        self.log_event("metric", epoch=epoch, **metrics)
        if not self.dist.is_main:
            return
        row = {"epoch": epoch, **{k: _number(v) for k, v in metrics.items()}}
        history = [r for r in self._metrics["history"] if r.get("epoch") != epoch]
        self._metrics["history"] = [*history, row]
        self._write_metrics()
        if self._mlflow is not None:
            self._mlflow.log_metrics(row, step=epoch)

    def set_best(self, metric: str, value: float, epoch: int, *, mode: str = "min") -> None:
        """Record the best validation value so far in ``metrics.json["best"]``."""
        self._metrics["best"] = {
            "metric": metric,
            "value": _number(value),
            "epoch": epoch,
            "mode": mode,
        }
        if self.dist.is_main:
            self._write_metrics()

    def set_summary(self, **values: Any) -> None:
        """Final (e.g. test-set) results in ``metrics.json["summary"]``, also to MLflow."""
        self._metrics["summary"].update(values)
        if self.dist.is_main:
            self._write_metrics()
            if self._mlflow is not None:
                numbers = {k: v for k, v in values.items() if isinstance(v, int | float)}
                self._mlflow.log_metrics(numbers, step=None)

    @property
    def metrics(self) -> dict[str, Any]:
        """The content of ``metrics.json`` so far (history, best, summary)."""
        return self._metrics

    def _write_metrics(self) -> None:
        write_json(self.paths.metrics, self._metrics)

    def write_data_manifest(self, content: dict[str, Any]) -> None:
        """Write ``data.json`` (rank 0) and mirror it to MLflow."""
        if not self.dist.is_main:
            return
        write_json(self.paths.data, content)
        self.log_artifact(self.paths.data)

    def log_artifact(self, path: str | os.PathLike[str]) -> None:
        """Mirror a file of the run to MLflow, when enabled."""
        if self._mlflow is not None and self.dist.is_main:
            self._mlflow.log_artifact(Path(path))

    # -- checkpoints --------------------------------------------------------------------
    def save_checkpoint(self, state: dict[str, Any], *, best: bool = False) -> bool:
        """Atomically write ``last.pt`` (and ``best.pt``); False (and an error event) on failure."""
        if not self.dist.is_main:
            return True
        if "rng" not in state:
            state = {**state, "rng": rng_state()}
        ok = self._write_checkpoint(state, "last")
        if best:
            ok = self._write_checkpoint(state, "best") and ok
        return ok

    def _write_checkpoint(self, state: dict[str, Any], which: str) -> bool:
        target = self.paths.checkpoint(which)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        try:
            with open(tmp, "wb") as file:
                torch.save(state, file)
                file.flush()
                os.fsync(file.fileno())
            os.replace(tmp, target)
            fsync_dir(target.parent)
        except (OSError, RuntimeError) as error:
            tmp.unlink(missing_ok=True)
            self.log_event(
                "error",
                where="checkpoint",
                message=f"cannot write {target.name}: {error}; the previous checkpoint is kept",
                traceback=traceback.format_exc(limit=3),
            )
            return False
        return True

    def load_checkpoint(self, which: str = "last") -> dict[str, Any] | None:
        """The saved state (tensors on CPU), or None when there is no such checkpoint."""
        return load_checkpoint_file(self.paths.checkpoint(which))

    def restore_rng(self) -> None:
        """Restore the RNG state saved in ``resume_state`` (no-op on a fresh run)."""
        if self.resume_state is not None and "rng" in self.resume_state:
            restore_rng_state(self.resume_state["rng"])

    # -- cancellation -------------------------------------------------------------------
    def request_stop(self) -> None:
        """Ask the task to stop at its next :meth:`should_stop` (the SIGTERM handler)."""
        self._stop_requested = True

    def should_stop(self) -> bool:
        """True once a cancel was requested; collective across ranks when distributed."""
        local = self._stop_requested or self.paths.cancel.exists()
        if self.dist.is_distributed and torch.distributed.is_initialized():
            flag = torch.tensor([1.0 if local else 0.0])
            torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
            local = bool(flag.item() > 0)
        if local:
            self.stopped = True
        return local

    def close(self) -> None:
        """Close the event file."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None


def load_checkpoint_file(path: Path) -> dict[str, Any] | None:
    """``torch.load(path, weights_only=True)`` on CPU; None when the file does not exist."""
    if not path.is_file():
        return None
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict):
        raise TypeError(f"{path}: checkpoint is a {type(state).__name__}, expected a dict")
    return state


def _number(value: Any) -> Any:
    if hasattr(value, "item") and callable(value.item):
        value = value.item()
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else value
