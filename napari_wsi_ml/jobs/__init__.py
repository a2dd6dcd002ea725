"""Background training jobs: validated configs, run directories, events, cancel and resume.

Light to import (no torch): the panel-facing API and the formats.

- Config: ``napari_wsi_ml.jobs.config`` (``load_job_config``, ``JobConfig``, ``JobOptions``).
- Tasks: ``napari_wsi_ml.jobs.task`` (``Task`` protocol, ``TASKS`` registry).
- What a task gets: ``napari_wsi_ml.jobs.run_context`` (``RunContext``).
- Files: ``napari_wsi_ml.jobs.run_dir`` (layout), ``.events`` (``events.jsonl``),
  ``.status`` (``status.json``).
- Processes: :func:`start_job`, :func:`resume_job`, :func:`cancel_run`, :func:`list_runs`,
  :func:`read_status`, :class:`RunHandle`; in-process: ``napari_wsi_ml.jobs.runner.run_job``.
- Training helpers: ``.distributed`` (``train_step``, DDP), ``.early_stopping``,
  ``.reproducibility``.
"""

from __future__ import annotations

from napari_wsi_ml.jobs.api import RunHandle, cancel_run, resume_job, start_job
from napari_wsi_ml.jobs.events import Event, EventReader, read_events
from napari_wsi_ml.jobs.status import RunError, RunStatus, list_runs, read_status
from napari_wsi_ml.jobs.task import TASKS, Task

__all__ = [
    "TASKS",
    "Event",
    "EventReader",
    "RunError",
    "RunHandle",
    "RunStatus",
    "Task",
    "cancel_run",
    "list_runs",
    "read_events",
    "read_status",
    "resume_job",
    "start_job",
]
