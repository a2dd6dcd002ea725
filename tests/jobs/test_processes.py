"""Jobs in their own processes: SIGKILL then resume, cancel by SIGTERM, the CLI."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest
import torch
from conftest import history, smoke_config

from napari_wsi_ml.cli import main
from napari_wsi_ml.jobs import read_status, resume_job, start_job
from napari_wsi_ml.jobs.events import read_events
from napari_wsi_ml.jobs.runner import run_job


def wait_for(condition, timeout: float = 60.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def mid_epoch_checkpoint(run_dir: Path):
    path = run_dir / "checkpoints" / "last.pt"
    if not path.is_file():
        return None
    state = torch.load(path, weights_only=True)
    return state if state["epoch"] == 1 and state["step_in_epoch"] > 0 else None


def test_sigkill_mid_epoch_then_resume_gives_the_uninterrupted_result(tmp_path: Path) -> None:
    config = smoke_config(
        tmp_path,
        data={"n_samples": 40},
        smoke={"epochs": 3, "batch_size": 2, "checkpoint_every": 4, "step_delay_s": 0.04},
    )
    handle = start_job(config, run_root=tmp_path / "runs")
    state = wait_for(lambda: mid_epoch_checkpoint(handle.run_dir), what="a mid-epoch checkpoint")
    os.kill(handle.pid, signal.SIGKILL)
    assert handle.wait(timeout=10) == -signal.SIGKILL
    assert read_status(handle.run_dir).status == "interrupted"
    assert len(history(handle.run_dir)) == 1  # epoch 0 done, epoch 1 cut short

    resumed = resume_job(handle.run_dir)
    assert resumed.wait(timeout=60) == 0, resumed.log_tail()
    assert read_status(handle.run_dir).status == "finished"
    statuses = [
        e.fields for e in read_events(handle.run_dir / "events.jsonl") if e.kind == "status"
    ]
    assert statuses[-2]["resumed_from"]["epoch"] == 1
    assert statuses[-2]["resumed_from"]["step"] >= state["step_in_epoch"]

    reference = history(run_job(config, run_root=tmp_path / "reference").run_dir)
    for got, expected in zip(history(handle.run_dir), reference, strict=True):
        assert got == pytest.approx(expected, abs=1e-6, rel=0)


def test_cancel_sends_sigterm_and_the_job_stops_after_a_checkpoint(tmp_path: Path) -> None:
    config = smoke_config(tmp_path, smoke={"epochs": 200, "step_delay_s": 0.02})
    handle = start_job(config, run_root=tmp_path / "runs")
    wait_for(lambda: (handle.run_dir / "checkpoints" / "last.pt").is_file(), what="epoch 0")
    assert read_status(handle.run_dir).status == "running"
    assert handle.cancel()
    assert handle.wait(timeout=30) == 3, handle.log_tail()
    state = read_status(handle.run_dir)
    assert state.status == "cancelled" and state.ended
    last = torch.load(handle.run_dir / "checkpoints" / "last.pt", weights_only=True)
    assert 1 <= last["epoch"] < 200
    assert not handle.cancel()  # no longer running


def test_cli_exit_codes_and_listing(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    runs = tmp_path / "runs"
    bad = tmp_path / "bad.yaml"
    bad.write_text("job: {task: smoke}\nsmoke: {lerning_rate: 0.1}\n")
    assert main(["train", str(bad)]) == 2
    assert "did you mean 'learning_rate'?" in capsys.readouterr().err
    assert main(["train"]) == 2
    assert main(["train", str(smoke_config(tmp_path)), "--quiet", "--run-root", str(runs)]) == 0
    (run_dir,) = runs.iterdir()
    capsys.readouterr()
    assert main(["runs", "--root", str(runs)]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split() == ["RUN", "STATUS", "TASK", "PROGRESS", "BEST", "STARTED"]
    assert table[1].split()[:4] == [run_dir.name, "finished", "smoke", "100%"]
    assert main(["runs", "--root", str(runs), "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["status"] == "finished" and row["best"]["metric"] == "val_loss"
    assert main(["cancel", str(run_dir)]) == 1
    assert main(["cancel", str(tmp_path)]) == 2
    assert main(["runs", "--root", str(tmp_path / "none")]) == 0
    assert "no runs" in capsys.readouterr().out

    detached = smoke_config(tmp_path, name="d.yaml", job={"name": "detached"})
    assert main(["train", str(detached), "--detach", "--run-root", str(runs)]) == 0
    assert "started" in capsys.readouterr().out
    (new_run,) = [p for p in runs.iterdir() if p.name.endswith("detached")]
    wait_for(lambda: read_status(new_run).status == "finished", what="the detached run")
    assert (new_run / "log.txt").is_file()
