"""``status.json`` of a run, and reading the state of runs for listings (CLI, Train panel).

``status.json``: ``status`` (``queued`` | ``running`` | ``finished`` | ``failed`` |
``cancelled``), ``run_id``, ``task``, ``name``, ``pid``, ``host``, ``created``, ``started``,
``ended`` (ISO 8601 UTC, ``ended`` null while running), ``attempt`` (1, 2 … with resumes),
``world_size``, ``exit_code``, ``message`` (the error of a failed run), ``mlflow_run_id``.

A run whose file says ``queued``/``running`` but whose process is gone (killed, machine
restarted) is reported as ``interrupted`` by :func:`read_status`; resume it.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import psutil

from napari_wsi_ml.errors import RunError
from napari_wsi_ml.jobs.events import iter_last_events
from napari_wsi_ml.jobs.run_dir import RunPaths, is_run_dir, read_json, write_json

ACTIVE_STATES = ("queued", "running")
FINAL_STATES = ("finished", "failed", "cancelled")


def utc_now() -> str:
    """The current time, ISO 8601 in UTC, to the second."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def update_status(paths: RunPaths, **fields: Any) -> dict[str, Any]:
    """Merge ``fields`` into ``status.json`` (atomically) and return the new content."""
    current = read_json(paths.status)
    data = {**(current if isinstance(current, dict) else {}), **fields}
    write_json(paths.status, data)
    return data


def process_alive(pid: int | None, host: str | None) -> bool:
    """True when ``pid`` runs (not a zombie) on this host; True when on another host."""
    if not pid:
        return False
    if host and host != socket.gethostname():
        return True  # cannot tell from here
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except (psutil.NoSuchProcess, psutil.AccessDenied, ValueError):
        return False


@dataclass(frozen=True)
class RunStatus:
    """A run's state as a listing shows it."""

    run_dir: Path
    run_id: str
    status: str
    task: str | None = None
    name: str | None = None
    pid: int | None = None
    started: str | None = None
    ended: str | None = None
    message: str | None = None
    step: int | None = None
    total: int | None = None
    epoch: int | None = None
    eta_s: float | None = None
    best: dict[str, Any] | None = None

    @property
    def fraction(self) -> float | None:
        """Progress in [0, 1], or None before the first progress event."""
        if self.step is None or not self.total:
            return None
        return min(1.0, self.step / self.total)

    @property
    def is_active(self) -> bool:
        """Queued or running (with a live process)."""
        return self.status in ACTIVE_STATES


def read_status(run_dir: str | os.PathLike[str]) -> RunStatus:
    """The state of one run: status.json, the last progress event, metrics.json's best.

    Raises:
        RunError: ``run_dir`` is not a run directory.
    """
    paths = RunPaths(Path(run_dir))
    if not is_run_dir(paths.root):
        raise RunError(
            f"{paths.root} is not a run directory (no config.yaml and status.json); "
            "give a folder that `napari-wsi-ml runs` lists."
        )
    data = read_json(paths.status) or {}
    state = str(data.get("status", "queued"))
    if (
        state in ACTIVE_STATES
        and data.get("pid")
        and not process_alive(data.get("pid"), data.get("host"))
    ):
        state = "interrupted"
    progress = next((e for e in iter_last_events(paths.events) if e.kind == "progress"), None)
    fields = progress.fields if progress else {}
    metrics = read_json(paths.metrics)
    return RunStatus(
        run_dir=paths.root,
        run_id=paths.run_id,
        status=state,
        task=data.get("task"),
        name=data.get("name"),
        pid=data.get("pid"),
        started=data.get("started") or data.get("created"),
        ended=data.get("ended"),
        message=data.get("message"),
        step=fields.get("step"),
        total=fields.get("total"),
        epoch=fields.get("epoch"),
        eta_s=fields.get("eta_s"),
        best=metrics.get("best") if isinstance(metrics, dict) else None,
    )


def list_runs(root: str | os.PathLike[str]) -> list[RunStatus]:
    """Every run directly under ``root``, oldest first (an empty list when there is none)."""
    folder = Path(root)
    if not folder.is_dir():
        return []
    runs = [read_status(path) for path in sorted(folder.iterdir()) if is_run_dir(path)]
    return sorted(runs, key=lambda run: (run.started or "", run.run_id))
