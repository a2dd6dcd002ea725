"""The job config (YAML): ``job:`` + ``data:`` + a section named after the task.

Example (``smoke`` is the built-in test task)::

    job:
      task: smoke            # a name of napari_wsi_ml.jobs.task.TASKS
      name: first-try        # run folder suffix (default: the task name)
      seed: 0
      device: auto           # auto | cpu | cuda
      output_dir: runs       # relative to this file's folder
      mlflow: {enabled: false, tracking_uri: null, experiment: napari-wsi-ml}
    data: {n_samples: 64}    # schema: the task's data_schema
    smoke: {epochs: 3}       # schema: the task's options_schema

Everything is validated before anything runs; every problem is listed in one
:class:`~napari_wsi_ml.errors.ConfigError` naming the file.
"""

from __future__ import annotations

import difflib
import importlib.util
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import yaml

from napari_wsi_ml.config_schema import Problems, check_dataclass, read_yaml, spec, to_plain
from napari_wsi_ml.errors import ConfigError
from napari_wsi_ml.jobs.task import TASKS, load_task_class

MLFLOW_HINT = "pip install napari-wsi-ml[mlflow]"


@dataclass(frozen=True)
class MlflowOptions:
    """``job.mlflow``: mirror params, metrics and artifacts to MLflow."""

    enabled: bool = False
    tracking_uri: str | None = field(
        default=None,
        metadata=spec(hint="an MLflow URI (default: a file store beside the run folders)"),
    )
    experiment: str = "napari-wsi-ml"


@dataclass(frozen=True)
class JobOptions:
    """``job:``, the generic part of every job config."""

    task: str = field(metadata=spec(hint=f"one of {', '.join(sorted(TASKS))}"))
    name: str | None = None
    seed: int = field(default=0, metadata=spec(ge=0, hint="a non-negative integer, e.g. 0"))
    device: Literal["auto", "cpu", "cuda"] = "auto"
    output_dir: Path = field(default=Path("runs"), metadata=spec(hint="a folder, e.g. runs"))
    deterministic: bool = True
    mlflow: MlflowOptions = field(default_factory=MlflowOptions)

    @property
    def run_name(self) -> str:
        """The name used in run folder names."""
        return self.name or self.task


@dataclass(frozen=True)
class JobConfig:
    """A validated job config: generic options, the task's data and task sections."""

    job: JobOptions
    data: Any
    task: Any
    source: str = "<config>"

    def to_dict(self) -> dict[str, Any]:
        """Fully resolved plain data (absolute paths, defaults filled), as in config.yaml."""
        return {
            "job": to_plain(self.job),
            "data": to_plain(self.data),
            self.job.task: to_plain(self.task),
        }

    def to_yaml(self) -> str:
        """:meth:`to_dict` as YAML text."""
        return yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True)


def validate_job_config(
    data: Any, *, source: str = "<config>", base: Path | None = None
) -> JobConfig:
    """Validate parsed YAML; every problem is listed in one ConfigError.

    Args:
        data: The parsed YAML (a mapping).
        source: Name of the file, shown in messages.
        base: Folder relative paths are resolved against (default: the working folder).
    """
    base = base or Path.cwd()
    problems = Problems(source)
    if not isinstance(data, dict):
        problems.add("(top level)", f"must be a mapping, got {data!r}", "job:, data: sections")
        problems.raise_if_any("the job config")
    raw_job = data.get("job")
    task_name = raw_job.get("task") if isinstance(raw_job, dict) else None
    task_cls = None
    if isinstance(task_name, str) and task_name in TASKS:
        try:
            task_cls = load_task_class(task_name)
        except ConfigError as error:
            problems.lines.append(f"{source}: {error}")
    elif task_name is not None:
        close = difflib.get_close_matches(str(task_name), TASKS, n=1)
        maybe = f" — did you mean '{close[0]}'?" if close else f"; write one of {', '.join(TASKS)}."
        problems.lines.append(f"{source}: job.task: unknown task '{task_name}'{maybe}")
    sections = ["job", "data", *([task_cls.name] if task_cls else [])]
    for name in data:
        if name not in sections and not (task_cls is None and name in TASKS):
            problems.unknown_key("", name, sections)
    job = check_dataclass(problems, raw_job, JobOptions, prefix="job.", base=base)
    if "job" not in data:
        problems.add("job", "missing", "a 'job:' section with at least 'task: NAME'")
    if job is not None and job.mlflow.enabled and importlib.util.find_spec("mlflow") is None:
        problems.add("job.mlflow.enabled", "MLflow is not installed", f"`{MLFLOW_HINT}` first")
    data_options = task_options = None
    if task_cls is not None:
        data_options = check_dataclass(
            problems, data.get("data"), task_cls.data_schema, prefix="data.", base=base
        )
        task_options = check_dataclass(
            problems,
            data.get(task_cls.name),
            task_cls.options_schema,
            prefix=f"{task_cls.name}.",
            base=base,
        )
    problems.raise_if_any("the job config")
    config = JobConfig(job=job, data=data_options, task=task_options, source=source)
    check = getattr(task_cls, "check_config", None)
    if check is not None:
        for line in check(task_cls(), config):
            problems.lines.append(f"{source}: {line}")
        problems.raise_if_any("the job config")
    return config


def load_job_config(
    source: str | os.PathLike[str] | dict[str, Any], *, base: Path | None = None
) -> JobConfig:
    """Read and validate a job config file, or validate an already parsed mapping.

    Raises:
        ConfigError: The file cannot be read, is not YAML, or has problems (all listed).
    """
    if isinstance(source, dict):
        return validate_job_config(source, source="<config>", base=base)
    path = Path(source)
    data = read_yaml(path, kind="job")
    return validate_job_config(data, source=str(path), base=base or path.resolve().parent)


def with_output_dir(config: JobConfig, output_dir: str | os.PathLike[str]) -> JobConfig:
    """A copy of ``config`` whose runs go under ``output_dir``."""
    job = replace(config.job, output_dir=Path(output_dir).resolve())
    return replace(config, job=job)
