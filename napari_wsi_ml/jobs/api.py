"""Start, follow, cancel and resume jobs in their own processes (for the Train panel and CLI).

Importing this module does not import torch. ``start_job`` validates the config here (a
:class:`~napari_wsi_ml.errors.ConfigError` is raised before any process starts), creates the
run directory and launches ``python -m napari_wsi_ml.jobs run RUN_DIR`` in a new process group,
its stdout and stderr going to ``RUN_DIR/log.txt``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from napari_wsi_ml.jobs.events import EventReader
from napari_wsi_ml.jobs.run_dir import RunPaths, is_run_dir, read_json
from napari_wsi_ml.jobs.status import (
    ACTIVE_STATES,
    RunError,
    RunStatus,
    list_runs,
    process_alive,
    read_status,
    update_status,
)

__all__ = [
    "RunHandle",
    "cancel_run",
    "list_runs",
    "read_status",
    "resume_job",
    "start_job",
]


@dataclass
class RunHandle:
    """A job started from this process (or found on disk): its folder and process."""

    run_dir: Path
    process: subprocess.Popen | None = field(default=None, repr=False)

    @property
    def pid(self) -> int | None:
        """The job process id (None when it was not started from here)."""
        return self.process.pid if self.process is not None else None

    @property
    def paths(self) -> RunPaths:
        """The run directory layout."""
        return RunPaths(self.run_dir)

    def poll(self) -> int | None:
        """The exit code once the process ended, else None (None too when not ours)."""
        return self.process.poll() if self.process is not None else None

    def wait(self, timeout: float | None = None) -> int:
        """Wait for the process to end; its exit code (``subprocess.TimeoutExpired`` on timeout)."""
        if self.process is None:
            raise RunError(f"{self.run_dir}: this run was not started from this process.")
        return self.process.wait(timeout)

    def status(self) -> RunStatus:
        """The run's current state (see :func:`read_status`)."""
        return read_status(self.run_dir)

    def events(self) -> EventReader:
        """A fresh reader of the run's ``events.jsonl`` (call ``read_new()`` repeatedly)."""
        return EventReader(self.paths.events)

    def cancel(self) -> bool:
        """Ask the job to stop after a checkpoint; False when it is not running."""
        return cancel_run(self.run_dir)

    def log_tail(self, lines: int = 20) -> str:
        """The last lines of ``log.txt`` (what the job printed, e.g. a traceback)."""
        try:
            text = self.paths.log.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


def _launch(arguments: list[str], run_dir: Path, env: dict[str, str] | None) -> RunHandle:
    paths = RunPaths(run_dir)
    command = [sys.executable, "-m", "napari_wsi_ml.jobs", *arguments]
    environment = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    with open(paths.log, "ab") as log:
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=environment,
        )
    update_status(paths, pid=process.pid)
    return RunHandle(run_dir, process)


def start_job(
    config: str | os.PathLike[str] | dict[str, Any],
    *,
    run_root: str | os.PathLike[str] | None = None,
    env: dict[str, str] | None = None,
) -> RunHandle:
    """Validate ``config`` (a YAML file or a mapping), create its run directory, start it.

    Args:
        config: Config file path or parsed mapping (paths in a mapping are relative to the
            working folder).
        run_root: Folder for the run (default: the config's ``job.output_dir``).
        env: Extra environment variables for the job process.

    Raises:
        ConfigError: The config is invalid; nothing was started.
    """
    from napari_wsi_ml.jobs.config import load_job_config
    from napari_wsi_ml.jobs.runner import prepare_run

    run_dir = prepare_run(load_job_config(config), run_root=run_root)
    return _launch(["run", str(run_dir)], run_dir, env)


def resume_job(run_dir: str | os.PathLike[str], *, env: dict[str, str] | None = None) -> RunHandle:
    """Continue a stopped run (cancelled, failed, interrupted) from ``checkpoints/last.pt``.

    Raises:
        RunError: Not a run directory, or the run is still running.
    """
    state = read_status(run_dir)
    if state.status in ACTIVE_STATES and state.pid is not None:
        raise RunError(
            f"{state.run_dir} is still {state.status} (pid {state.pid}); cancel it first."
        )
    return _launch(["train", "--resume", str(state.run_dir)], state.run_dir, env)


def cancel_run(run_dir: str | os.PathLike[str]) -> bool:
    """Ask a run to stop: create ``cancel.request`` and send SIGTERM to its process.

    The job notices at its next step, writes a checkpoint and ends ``cancelled``. Returns
    False when the run is not queued or running.

    Raises:
        RunError: ``run_dir`` is not a run directory.
    """
    if not is_run_dir(run_dir):
        raise RunError(
            f"{run_dir} is not a run directory; give a folder `napari-wsi-ml runs` lists."
        )
    paths = RunPaths(Path(run_dir))
    state = read_status(paths.root)
    if state.status not in ACTIVE_STATES:
        return False
    paths.cancel.touch()
    data = read_json(paths.status) or {}
    pid = data.get("pid")
    if data.get("status") == "running" and process_alive(pid, data.get("host")):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(int(pid), signal.SIGTERM)
    return True
