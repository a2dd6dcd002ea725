"""The run directory: its layout, and atomic JSON/text writes into it.

Layout (every path relative to the run directory; ``run_id`` = the folder's name,
``YYYYmmdd-HHMMSS-<job name>`` with a ``-2``, ``-3`` … suffix when taken)::

    config.yaml          the validated, fully resolved config (absolute paths, defaults filled)
    env.json             python, platform, hostname, package versions, git revision, seed, device
    data.json            slides (paths, fingerprints), labels, splits, annotation snapshot hash
    events.jsonl         status / progress / metric / log / error events (see events.py)
    status.json          {"status", "pid", "task", "name", "run_id", "started", "ended", ...}
    metrics.json         {"history": [per-epoch rows], "best": {...} | null, "summary": {...}}
    log.txt              stdout and stderr of a job started with start_job()
    cancel.request       present once a cancel was asked for
    checkpoints/last.pt  latest checkpoint (torch.save; read with weights_only=True)
    checkpoints/best.pt  checkpoint of the best validation metric so far
    plots/               figures the task writes
    heatmaps/            heatmaps (napari_wsi_ml.inference) the task writes

Only rank 0 of a distributed job writes here.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from napari_wsi_ml.errors import SaveError

CONFIG_FILE = "config.yaml"
ENV_FILE = "env.json"
DATA_FILE = "data.json"
EVENTS_FILE = "events.jsonl"
STATUS_FILE = "status.json"
METRICS_FILE = "metrics.json"
LOG_FILE = "log.txt"
CANCEL_FILE = "cancel.request"
CHECKPOINT_DIR = "checkpoints"
PLOTS_DIR = "plots"
HEATMAPS_DIR = "heatmaps"
CHECKPOINT_NAMES = ("last", "best")


@dataclass(frozen=True)
class RunPaths:
    """Where each file of a run directory lives."""

    root: Path

    @property
    def run_id(self) -> str:
        """The folder name."""
        return self.root.name

    @property
    def config(self) -> Path:
        """``config.yaml``."""
        return self.root / CONFIG_FILE

    @property
    def env(self) -> Path:
        """``env.json``."""
        return self.root / ENV_FILE

    @property
    def data(self) -> Path:
        """``data.json``."""
        return self.root / DATA_FILE

    @property
    def events(self) -> Path:
        """``events.jsonl``."""
        return self.root / EVENTS_FILE

    @property
    def status(self) -> Path:
        """``status.json``."""
        return self.root / STATUS_FILE

    @property
    def metrics(self) -> Path:
        """``metrics.json``."""
        return self.root / METRICS_FILE

    @property
    def log(self) -> Path:
        """``log.txt``."""
        return self.root / LOG_FILE

    @property
    def cancel(self) -> Path:
        """``cancel.request``."""
        return self.root / CANCEL_FILE

    @property
    def checkpoints(self) -> Path:
        """``checkpoints``."""
        return self.root / CHECKPOINT_DIR

    @property
    def plots(self) -> Path:
        """``plots``."""
        return self.root / PLOTS_DIR

    @property
    def heatmaps(self) -> Path:
        """``heatmaps``."""
        return self.root / HEATMAPS_DIR

    def checkpoint(self, which: str) -> Path:
        """``checkpoints/last.pt`` or ``checkpoints/best.pt``."""
        if which not in CHECKPOINT_NAMES:
            raise ValueError(f"checkpoint must be one of {CHECKPOINT_NAMES}, got {which!r}")
        return self.checkpoints / f"{which}.pt"

    def make_dirs(self) -> None:
        """Create the folder and its sub-folders."""
        for folder in (self.root, self.checkpoints, self.plots, self.heatmaps):
            folder.mkdir(parents=True, exist_ok=True)


def is_run_dir(path: str | os.PathLike[str]) -> bool:
    """True when ``path`` holds a run (its config.yaml and status.json)."""
    root = Path(path)
    return (root / CONFIG_FILE).is_file() and (root / STATUS_FILE).is_file()


def new_run_dir(output_root: Path, name: str) -> Path:
    """Create and return a fresh, uniquely named run folder under ``output_root``."""
    output_root.mkdir(parents=True, exist_ok=True)
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-") or "run"
    stem = f"{time.strftime('%Y%m%d-%H%M%S')}-{slug}"
    for index in range(1, 10_000):
        candidate = output_root / (stem if index == 1 else f"{stem}-{index}")
        try:
            candidate.mkdir()
        except FileExistsError:
            continue
        RunPaths(candidate).make_dirs()
        return candidate
    raise SaveError(f"{output_root}: cannot create a new run folder named {stem}-N.")


def fsync_dir(folder: Path) -> None:
    """Flush a folder's entries (a rename) to disk, where the OS allows it."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` to a temporary file beside ``path``, fsync, then replace ``path``."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: Path, data: Any) -> None:
    """Atomically write ``data`` as indented JSON."""
    write_text_atomic(path, json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")


def read_json(path: Path) -> Any:
    """Parsed JSON of ``path``, or None when it is missing or unreadable."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
