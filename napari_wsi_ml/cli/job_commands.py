"""CLI sub-commands of training jobs: ``train``, ``runs``, ``cancel``.

Exit codes of ``train``: 0 finished, 1 failed, 2 invalid config, 3 cancelled; with
``--detach`` 0 once the job process started. ``cancel``: 0 when asked, 1 when the run was not
running. ``runs``: 0.
"""

from __future__ import annotations

import argparse
import json
from typing import Any


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add this group's sub-commands."""
    train = subparsers.add_parser(
        "train",
        help="train a model from a job config (YAML); resume a run",
        description=(
            "Validate a job config, create a run directory (config.yaml, env.json, data.json, "
            "events.jsonl, checkpoints, metrics.json) and run the job. Ctrl+C stops it after a "
            "checkpoint; --resume RUN_DIR continues it. Under torchrun use "
            "`torchrun --nproc_per_node N -m napari_wsi_ml.jobs train CONFIG`."
        ),
    )
    train.add_argument("config", nargs="?", help="job config (YAML); optional with --resume")
    train.add_argument(
        "--resume", metavar="RUN_DIR", help="continue this run from its last checkpoint"
    )
    train.add_argument(
        "--run-root", metavar="DIR", help="folder for the run (default: job.output_dir)"
    )
    train.add_argument("--detach", action="store_true", help="start in the background and return")
    train.add_argument("--quiet", action="store_true", help="no progress bar")
    train.set_defaults(handler=run_train)

    runs = subparsers.add_parser("runs", help="list runs with status, progress and best metric")
    runs.add_argument(
        "--root", default="runs", help="folder holding run directories (default: runs)"
    )
    runs.add_argument("--json", action="store_true", help="print JSON instead of a table")
    runs.set_defaults(handler=run_runs)

    cancel = subparsers.add_parser("cancel", help="stop a running job after a checkpoint")
    cancel.add_argument("run_dir", help="the run directory")
    cancel.set_defaults(handler=run_cancel)


def run_train(args: argparse.Namespace) -> int:
    """Run (or start in the background) a job; the exit code reflects how it ended."""
    from napari_wsi_ml.errors import WsiMlError

    if args.config is None and args.resume is None:
        raise WsiMlError("train: give a config file, or --resume RUN_DIR")
    if args.detach:
        from napari_wsi_ml.jobs.api import resume_job, start_job

        if args.resume:
            handle = resume_job(args.resume)
        else:
            handle = start_job(args.config, run_root=args.run_root)
        print(f"started {handle.run_dir} (pid {handle.pid}); log: {handle.paths.log}")
        return 0
    from napari_wsi_ml.jobs.runner import run_job

    with _ProgressBar(disabled=args.quiet) as bar:
        outcome = run_job(
            args.config, resume_dir=args.resume, run_root=args.run_root, on_event=bar.update
        )
    print(f"{outcome.status}: {outcome.run_dir}")
    return outcome.exit_code


class _ProgressBar:
    """A tqdm bar fed by progress events; metric and error events are printed."""

    def __init__(self, *, disabled: bool) -> None:
        self.disabled = disabled
        self.bar: Any = None

    def __enter__(self) -> _ProgressBar:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.close()

    def update(self, event: Any) -> None:
        if self.disabled:
            return
        from tqdm import tqdm

        fields = event.fields
        if event.kind == "progress":
            if self.bar is None:
                self.bar = tqdm(total=fields["total"], unit="step")
            self.bar.n = fields["step"]
            shown = {k: v for k, v in fields.items() if k in ("epoch", "loss")}
            self.bar.set_postfix(shown, refresh=True)
        elif event.kind in ("metric", "error", "log"):
            text = (
                json.dumps(fields, default=str) if event.kind == "metric" else fields.get("message")
            )
            (self.bar.write if self.bar is not None else print)(f"{event.kind}: {text}")


def run_runs(args: argparse.Namespace) -> int:
    """Print the runs under ``--root``."""
    from napari_wsi_ml.jobs.status import list_runs

    runs = list_runs(args.root)
    if args.json:
        rows = [
            {
                "run_dir": str(r.run_dir),
                "run_id": r.run_id,
                "status": r.status,
                "task": r.task,
                "progress": r.fraction,
                "epoch": r.epoch,
                "best": r.best,
                "started": r.started,
                "ended": r.ended,
            }
            for r in runs
        ]
        print(json.dumps(rows, indent=2))
        return 0
    if not runs:
        print(f"no runs in {args.root}")
        return 0
    header = ("RUN", "STATUS", "TASK", "PROGRESS", "BEST", "STARTED")
    rows = [header]
    for run in runs:
        progress = f"{100 * run.fraction:.0f}%" if run.fraction is not None else "-"
        best = (
            f"{run.best['metric']}={run.best['value']:.4g} (epoch {run.best['epoch']})"
            if run.best and isinstance(run.best.get("value"), int | float)
            else "-"
        )
        rows.append((run.run_id, run.status, run.task or "?", progress, best, run.started or "-"))
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(header))]
    for row in rows:
        print(
            "  ".join(
                str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)
            ).rstrip()
        )
    return 0


def run_cancel(args: argparse.Namespace) -> int:
    """Ask a run to stop; 1 when it was not running."""
    from napari_wsi_ml.jobs.api import cancel_run
    from napari_wsi_ml.jobs.status import read_status

    if cancel_run(args.run_dir):
        print(f"cancel requested: {args.run_dir} stops after its next checkpoint")
        return 0
    print(f"{args.run_dir} is not running ({read_status(args.run_dir).status}); nothing to cancel")
    return 1
