"""MLflow mirroring: params, per-epoch metrics and artifacts go to the (lazily imported) module."""

from __future__ import annotations

import importlib.machinery
import sys
import types
from pathlib import Path

import pytest
from conftest import history, smoke_config

from napari_wsi_ml.errors import ConfigError
from napari_wsi_ml.jobs.runner import run_job


class Recorder(types.ModuleType):
    """Stands in for the mlflow module and records what the run sends it."""

    def __init__(self) -> None:
        super().__init__("mlflow")
        self.__spec__ = importlib.machinery.ModuleSpec("mlflow", None)
        self.calls: list[tuple[str, object]] = []

    def set_tracking_uri(self, uri: str) -> None:
        self.calls.append(("uri", uri))

    def set_experiment(self, name: str) -> None:
        self.calls.append(("experiment", name))

    def start_run(self, run_name: str | None = None, run_id: str | None = None):
        self.calls.append(("start", run_id or run_name))
        return types.SimpleNamespace(info=types.SimpleNamespace(run_id="abc123"))

    def log_params(self, params: dict) -> None:
        self.calls.append(("params", params))

    def set_tag(self, key: str, value: str) -> None:
        self.calls.append(("tag", key))

    def log_metrics(self, metrics: dict, step: int | None = None) -> None:
        self.calls.append(("metrics", (step, metrics)))

    def log_artifact(self, path: str) -> None:
        self.calls.append(("artifact", Path(path).name))

    def end_run(self, status: str) -> None:
        self.calls.append(("end", status))


def test_params_metrics_and_artifacts_are_mirrored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = Recorder()
    monkeypatch.setitem(sys.modules, "mlflow", fake)
    config = smoke_config(tmp_path, job={"mlflow": {"enabled": True, "experiment": "exp"}})
    outcome = run_job(config)
    calls = fake.calls
    assert calls[0] == ("uri", (tmp_path / "runs" / "mlruns").resolve().as_uri())
    assert ("experiment", "exp") in calls and ("start", outcome.run_dir.name) in calls
    params = next(value for kind, value in calls if kind == "params")
    assert params["smoke.epochs"] == "3" and params["job.seed"] == "3"
    epochs = [value for kind, value in calls if kind == "metrics" and value[0] is not None]
    rows = history(outcome.run_dir)
    assert [step for step, _ in epochs] == [0, 1, 2]
    assert epochs[2][1]["val_loss"] == pytest.approx(rows[2]["val_loss"])
    artifacts = {value for kind, value in calls if kind == "artifact"}
    assert {"config.yaml", "env.json", "data.json", "metrics.json"} <= artifacts
    assert calls[-1] == ("end", "FINISHED")
    assert '"mlflow_run_id": "abc123"' in (outcome.run_dir / "status.json").read_text()


def test_enabled_but_missing_mlflow_stops_before_running(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "mlflow", None)  # import mlflow → ImportError
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "mlflow" else real(name, *a)
    )
    config = smoke_config(tmp_path, job={"mlflow": {"enabled": True}})
    with pytest.raises(ConfigError, match=r"job.mlflow.enabled: MLflow is not installed"):
        run_job(config)
    assert not (tmp_path / "runs").exists()
