"""Helpers for the job tests: smoke-task configs written to a temporary folder."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml


def smoke_config(folder: Path, *, name: str = "c.yaml", **sections: dict[str, Any]) -> Path:
    """Write a smoke-task config (sections merged over small defaults) and return its path."""
    config: dict[str, Any] = {
        "job": {"task": "smoke", "seed": 3, "device": "cpu", "output_dir": "runs"},
        "data": {"n_samples": 40, "n_features": 6},
        "smoke": {"epochs": 3, "batch_size": 8, "model": "mlp"},
    }
    for section, values in sections.items():
        config.setdefault(section, {}).update(values)
    path = folder / name
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def history(run_dir: Path) -> list[dict[str, float]]:
    """metrics.json's per-epoch rows."""
    return json.loads((run_dir / "metrics.json").read_text())["history"]


@pytest.fixture(autouse=True)
def _every_progress_event(monkeypatch: pytest.MonkeyPatch) -> None:
    """In-process runs write a progress event for every step (no rate limit)."""
    from napari_wsi_ml.jobs.run_context import RunContext

    monkeypatch.setattr(RunContext, "progress_interval_s", 0.0)
