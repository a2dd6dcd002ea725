"""DDP with 2 gloo processes under torchrun equals one process on the same global batch."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import torch
from conftest import smoke_config

from napari_wsi_ml.jobs.events import read_events
from napari_wsi_ml.jobs.runner import run_job


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_one_ddp_step_equals_one_single_process_step(tmp_path: Path) -> None:
    # 10 samples, 2 for validation: the 8 training samples are one global batch → one step.
    config = smoke_config(
        tmp_path,
        data={"n_samples": 10, "val_fraction": 0.2, "n_features": 12},
        smoke={"epochs": 1, "batch_size": 8, "model": "cnn", "learning_rate": 0.5},
    )
    single = run_job(config, run_root=tmp_path / "single").run_dir
    torchrun = Path(sys.executable).with_name("torchrun")
    result = subprocess.run(
        [
            str(torchrun),
            "--nnodes=1",
            "--nproc_per_node=2",
            "--master_addr=127.0.0.1",
            f"--master_port={free_port()}",
            "-m",
            "napari_wsi_ml.jobs",
            "train",
            str(config),
            "--run-root",
            str(tmp_path / "ddp"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "GLOO_SOCKET_IFNAME": "lo", "OMP_NUM_THREADS": "1"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    (ddp,) = (tmp_path / "ddp").iterdir()  # only rank 0 made a run directory
    assert '"world_size": 2' in (ddp / "env.json").read_text()

    one = torch.load(single / "checkpoints" / "last.pt", weights_only=True)["model"]
    two = torch.load(ddp / "checkpoints" / "last.pt", weights_only=True)["model"]
    steps = [e.fields for e in read_events(single / "events.jsonl") if e.kind == "progress"]
    assert [(s["step"], s["total"]) for s in steps] == [(1, 1)]  # exactly one optimisation step
    for name, value in one.items():
        assert torch.allclose(value, two[name], atol=1e-5, rtol=0), name
    # and the step did change the weights (the comparison is not between two initial states)
    from napari_wsi_ml.jobs.builtin_tasks import make_smoke_model
    from napari_wsi_ml.jobs.reproducibility import seed_everything

    seed_everything(3)
    initial = make_smoke_model("cnn", 12).state_dict()
    assert not torch.allclose(initial["1.weight"], one["1.weight"], atol=1e-3)
