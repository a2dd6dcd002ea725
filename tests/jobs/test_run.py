"""In-process runs of the smoke task: run directory, cancel/resume, reproducibility, failures."""

from __future__ import annotations

import errno
import json
from pathlib import Path

import pytest
import torch
import yaml
from conftest import history, smoke_config

from napari_wsi_ml.jobs.config import load_job_config
from napari_wsi_ml.jobs.events import read_events
from napari_wsi_ml.jobs.run_context import RunContext
from napari_wsi_ml.jobs.run_dir import RunPaths
from napari_wsi_ml.jobs.runner import prepare_run, run_job
from napari_wsi_ml.jobs.status import read_status


def test_a_run_writes_every_file_of_its_directory(tmp_path: Path) -> None:
    outcome = run_job(smoke_config(tmp_path))
    assert outcome.status == "finished" and outcome.exit_code == 0
    run = RunPaths(outcome.run_dir)
    assert run.root.parent == tmp_path / "runs"
    for path in (run.config, run.env, run.data, run.events, run.status, run.metrics):
        assert path.is_file(), path.name
    assert run.plots.is_dir() and run.heatmaps.is_dir()
    config = yaml.safe_load(run.config.read_text())
    assert config["smoke"]["learning_rate"] == 0.05  # resolved defaults
    env = json.loads(run.env.read_text())
    assert env["packages"]["torch"] == torch.__version__.split("+")[0] or env["packages"]["torch"]
    assert env["seed"] == 3 and env["device"] == "cpu" and env["hostname"]
    assert json.loads(run.data.read_text())["n_train"] == 30
    status = json.loads(run.status.read_text())
    assert status["status"] == "finished" and status["ended"] and status["exit_code"] == 0
    rows = history(run.root)
    assert [row["epoch"] for row in rows] == [0, 1, 2]
    assert rows[-1]["train_loss"] < rows[0]["train_loss"]
    events = read_events(run.events)
    progress = [e.fields["step"] for e in events if e.kind == "progress"]
    assert progress == list(range(1, 13))  # 30 samples, batch 8 → 4 steps × 3 epochs
    assert [e.fields["status"] for e in events if e.kind == "status"] == ["running", "finished"]
    last = torch.load(run.checkpoint("last"), weights_only=True)
    best = torch.load(run.checkpoint("best"), weights_only=True)
    assert last["epoch"] == 3 and set(last) >= {"model", "optimizer", "scheduler", "rng"}
    best_epoch = json.loads(run.metrics.read_text())["best"]["epoch"]
    assert best["epoch"] == best_epoch + 1
    state = read_status(run.root)
    assert (
        state.status == "finished" and state.fraction == 1.0 and state.best["epoch"] == best_epoch
    )


def test_same_seed_same_metrics_other_seed_other_metrics(tmp_path: Path) -> None:
    first = history(run_job(smoke_config(tmp_path)).run_dir)
    second = history(run_job(smoke_config(tmp_path)).run_dir)
    other = history(run_job(smoke_config(tmp_path, job={"seed": 4})).run_dir)
    for a, b in zip(first, second, strict=True):
        assert a == pytest.approx(b, abs=1e-6, rel=0)
    assert other[-1]["val_loss"] != pytest.approx(first[-1]["val_loss"], abs=1e-6)


def test_cancel_stops_with_a_checkpoint_and_resume_matches_an_uninterrupted_run(
    tmp_path: Path,
) -> None:
    config = smoke_config(tmp_path, smoke={"epochs": 3})
    reference = history(run_job(config).run_dir)
    run_dir = prepare_run(load_job_config(config))

    def cancel_at_step_6(event) -> None:
        if event.kind == "progress" and event.fields["step"] == 6:
            (run_dir / "cancel.request").touch()

    from napari_wsi_ml.jobs.runner import execute_run

    assert execute_run(run_dir, on_event=cancel_at_step_6) == "cancelled"
    state = torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)
    assert (state["epoch"], state["step_in_epoch"]) == (1, 2)  # mid-epoch 1
    assert read_status(run_dir).status == "cancelled"
    outcome = run_job(resume_dir=run_dir)
    assert outcome.status == "finished"
    resumed = history(run_dir)
    assert [r["epoch"] for r in resumed] == [0, 1, 2]
    for a, b in zip(resumed, reference, strict=True):
        assert a == pytest.approx(b, abs=1e-6, rel=0)
    statuses = [e.fields for e in read_events(run_dir / "events.jsonl") if e.kind == "status"]
    assert statuses[2]["resumed_from"] == {"epoch": 1, "step": 2}
    assert json.loads((run_dir / "status.json").read_text())["attempt"] == 2


def test_failed_checkpoint_write_keeps_the_previous_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = load_job_config(smoke_config(tmp_path))
    run_dir = prepare_run(config)
    ctx = RunContext(run_dir, config)
    assert ctx.save_checkpoint({"weights": torch.ones(3), "epoch": 1})
    real_save = torch.save

    def disk_full(obj, file, *args, **kwargs):
        real_save(obj, file, *args, **kwargs)  # part of the bytes reach the disk …
        file.seek(0)
        file.truncate(10)
        raise OSError(errno.ENOSPC, "No space left on device")  # … then the disk is full

    monkeypatch.setattr(torch, "save", disk_full)
    assert not ctx.save_checkpoint({"weights": torch.zeros(3), "epoch": 2}, best=True)
    monkeypatch.setattr(torch, "save", real_save)
    kept = ctx.load_checkpoint("last")
    assert kept["epoch"] == 1 and torch.equal(kept["weights"], torch.ones(3))
    assert ctx.load_checkpoint("best") is None
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == ["last.pt"]
    ctx.close()
    errors = [e.fields for e in read_events(run_dir / "events.jsonl") if e.kind == "error"]
    assert [e["message"].split(":")[0] for e in errors] == [
        "cannot write last.pt",
        "cannot write best.pt",
    ]
    assert all(e["where"] == "checkpoint" and "No space left" in e["message"] for e in errors)


def test_a_crashing_task_ends_failed_with_the_error_recorded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from napari_wsi_ml.jobs import builtin_tasks

    def broken(*args, **kwargs):
        raise RuntimeError("synthetic data generator exploded")

    monkeypatch.setattr(builtin_tasks, "make_smoke_data", broken)
    outcome = run_job(smoke_config(tmp_path))
    assert outcome.status == "failed" and outcome.exit_code == 1
    state = read_status(outcome.run_dir)
    assert state.status == "failed" and "exploded" in state.message
    errors = [e for e in read_events(outcome.run_dir / "events.jsonl") if e.kind == "error"]
    assert "Traceback" in errors[0].fields["traceback"]


def test_early_stopping_ends_before_the_last_epoch(tmp_path: Path) -> None:
    config = smoke_config(
        tmp_path, smoke={"epochs": 30, "patience": 1, "learning_rate": 0.3, "momentum": 0.0}
    )
    run_dir = run_job(config).run_dir
    rows = history(run_dir)
    assert len(rows) < 30
    best = json.loads((run_dir / "metrics.json").read_text())["best"]
    losses = [r["val_loss"] for r in rows]
    assert best["value"] == pytest.approx(min(losses)) and losses[-1] >= best["value"]
