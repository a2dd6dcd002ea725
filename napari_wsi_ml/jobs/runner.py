"""Running a job in this process: prepare the run directory, run the task, record the outcome.

:func:`run_job` is what ``python -m napari_wsi_ml.jobs train`` and ``napari-wsi-ml train`` call
(also under ``torchrun``: rank 0 creates the run directory and tells the others). SIGTERM and
SIGINT ask the task to stop (it writes a checkpoint and the run ends ``cancelled``).
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from napari_wsi_ml.errors import WsiMlError
from napari_wsi_ml.jobs.config import JobConfig, load_job_config, with_output_dir
from napari_wsi_ml.jobs.distributed import (
    broadcast_text,
    distributed_info_from_env,
    init_distributed,
    resolve_device,
    shutdown_distributed,
)
from napari_wsi_ml.jobs.environment import collect_environment
from napari_wsi_ml.jobs.events import Event
from napari_wsi_ml.jobs.reproducibility import seed_everything
from napari_wsi_ml.jobs.run_context import RunContext, load_checkpoint_file
from napari_wsi_ml.jobs.run_dir import (
    RunPaths,
    new_run_dir,
    read_json,
    write_json,
    write_text_atomic,
)
from napari_wsi_ml.jobs.status import RunError, update_status, utc_now
from napari_wsi_ml.jobs.task import load_task_class

EXIT_CODES = {"finished": 0, "failed": 1, "cancelled": 3}
"""Process exit code per final status (a config error exits with 2)."""


@dataclass(frozen=True)
class RunOutcome:
    """Where a run lives and how it ended."""

    run_dir: Path
    status: str

    @property
    def exit_code(self) -> int:
        """0 finished, 1 failed, 3 cancelled."""
        return EXIT_CODES.get(self.status, 1)


def prepare_run(config: JobConfig, *, run_root: str | os.PathLike[str] | None = None) -> Path:
    """Create a run directory with ``config.yaml`` and a ``queued`` status.json."""
    if run_root is not None:
        config = with_output_dir(config, run_root)
    run_dir = new_run_dir(config.job.output_dir, config.job.run_name)
    paths = RunPaths(run_dir)
    write_text_atomic(paths.config, config.to_yaml())
    update_status(
        paths,
        status="queued",
        run_id=paths.run_id,
        task=config.job.task,
        name=config.job.run_name,
        created=utc_now(),
        attempt=0,
    )
    return run_dir


def load_run_config(run_dir: Path) -> JobConfig:
    """The validated config of a run directory."""
    paths = RunPaths(run_dir)
    if not paths.config.is_file():
        raise RunError(f"{run_dir} has no config.yaml; it is not a run directory.")
    return load_job_config(paths.config)


@contextmanager
def _stop_on_signals(request_stop: Callable[[], None]) -> Iterator[None]:
    """SIGTERM/SIGINT call ``request_stop`` instead of killing the process."""
    try:
        previous = {s: signal.signal(s, lambda *_: request_stop()) for s in _SIGNALS}
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def run_job(
    config_source: str | os.PathLike[str] | dict | None = None,
    *,
    resume_dir: str | os.PathLike[str] | None = None,
    run_root: str | os.PathLike[str] | None = None,
    on_event: Callable[[Event], None] | None = None,
) -> RunOutcome:
    """Validate, create (or reuse, when resuming) the run directory and run the task here.

    Args:
        config_source: A config file or parsed mapping (not needed with ``resume_dir``).
        resume_dir: Continue this run from its ``checkpoints/last.pt``.
        run_root: Put the new run under this folder instead of ``job.output_dir``.
        on_event: Called with each event rank 0 writes (e.g. a console progress bar).

    Raises:
        ConfigError: The config is invalid (nothing ran); RunError: bad ``resume_dir``.
    """
    if resume_dir is not None:
        run_dir: Path | None = Path(resume_dir).resolve()
        config = load_run_config(run_dir)
        if config_source is not None:
            given = load_job_config(config_source)
            if with_output_dir(given, config.job.output_dir).to_dict() != config.to_dict():
                raise RunError(
                    f"{config_source} differs from {run_dir}/config.yaml; a resumed run keeps "
                    "its own config: leave CONFIG out, or start a new run."
                )
    elif config_source is not None:
        config = load_job_config(config_source)
        run_dir = None
    else:
        raise RunError("give a config file, or --resume RUN_DIR")
    device = resolve_device(config.job.device, distributed_info_from_env())
    dist = init_distributed(device)
    try:
        if run_dir is None:
            created = prepare_run(config, run_root=run_root) if dist.is_main else None
            run_dir = Path(broadcast_text(str(created) if created else None, dist))
        status = execute_run(run_dir, resume=resume_dir is not None, on_event=on_event)
    finally:
        shutdown_distributed()
    return RunOutcome(run_dir, status)


def execute_run(
    run_dir: str | os.PathLike[str],
    *,
    resume: bool = False,
    on_event: Callable[[Event], None] | None = None,
) -> str:
    """Run the task of a prepared run directory; returns the final status.

    Joins the process group first when started by torchrun (if :func:`run_job` did not).
    """
    paths = RunPaths(Path(run_dir).resolve())
    config = load_run_config(paths.root)
    task = load_task_class(config.job.task)()
    device = resolve_device(config.job.device, distributed_info_from_env())
    dist = init_distributed(device)
    seed_everything(config.job.seed, deterministic=config.job.deterministic)
    resume_state = load_checkpoint_file(paths.checkpoint("last")) if resume else None
    previous = _read_status_file(paths)
    mlflow = None
    if dist.is_main:
        if resume:
            paths.cancel.unlink(missing_ok=True)
        paths.make_dirs()
        write_json(
            paths.env,
            collect_environment(
                seed=config.job.seed,
                device=device,
                world_size=dist.world_size,
                deterministic=config.job.deterministic,
            ),
        )
        if config.job.mlflow.enabled:
            from napari_wsi_ml.jobs.mlflow_mirror import MlflowMirror

            resume_id = previous.get("mlflow_run_id") if resume else None
            mlflow = MlflowMirror.start(config, paths.root, resume_id=resume_id)
    ctx = RunContext(
        paths.root,
        config,
        device=device,
        dist=dist,
        resume_state=resume_state,
        mlflow=mlflow,
        on_event=on_event,
    )
    status, message = "failed", None
    with _stop_on_signals(ctx.request_stop):
        if dist.is_main:
            attempt = int(previous.get("attempt") or 0) + 1
            update_status(
                paths,
                status="running",
                pid=os.getpid(),
                host=socket.gethostname(),
                started=utc_now(),
                ended=None,
                attempt=attempt,
                world_size=dist.world_size,
                message=None,
                exit_code=None,
                **({"mlflow_run_id": mlflow.run_id} if mlflow else {}),
            )
            resumed = (
                {"epoch": resume_state.get("epoch"), "step": resume_state.get("step_in_epoch")}
                if resume_state
                else None
            )
            ctx.log_event("status", status="running", attempt=attempt, resumed_from=resumed)
            if resume and resume_state is None:
                ctx.log("no checkpoint to resume from; starting from the beginning", "warning")
            if mlflow is not None:
                mlflow.log_artifact(paths.config)
                mlflow.log_artifact(paths.env)
        try:
            task.run(ctx)
            status = "cancelled" if ctx.stopped else "finished"
        except WsiMlError as error:  # bad input found by the task (e.g. the cohort): no traceback
            message = str(error)
            ctx.log_event("error", message=message, traceback=traceback.format_exc())
            print(f"error: {message}", file=sys.stderr)
        except Exception as error:  # the task failed: record it, never lose the run directory
            message = f"{type(error).__name__}: {error}"
            ctx.log_event("error", message=message, traceback=traceback.format_exc())
            traceback.print_exc(file=sys.stderr)
        finally:
            if dist.is_main:
                update_status(
                    paths,
                    status=status,
                    ended=utc_now(),
                    message=message,
                    exit_code=EXIT_CODES[status],
                )
                ctx.log_event("status", status=status, message=message)
                if mlflow is not None:
                    if paths.metrics.is_file():
                        mlflow.log_artifact(paths.metrics)
                    mlflow.end(status)
            ctx.close()
    return status


def _read_status_file(paths: RunPaths) -> dict:
    data = read_json(paths.status)
    return data if isinstance(data, dict) else {}
