"""Mirror a run to MLflow (optional extra ``[mlflow]``): params, per-epoch metrics, artifacts.

MLflow is imported only here, only when ``job.mlflow.enabled`` is true. The default tracking
store is a local folder, ``mlruns/`` beside the run folders.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from napari_wsi_ml.errors import ConfigError
from napari_wsi_ml.jobs.config import MLFLOW_HINT, JobConfig

_END_STATUS = {"finished": "FINISHED", "failed": "FAILED", "cancelled": "KILLED"}


def flatten(data: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """``{"job": {"seed": 0}}`` → ``{"job.seed": "0"}`` (values cut to MLflow's 500 chars)."""
    flat: dict[str, str] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = str(value)[:500]
    return flat


class MlflowMirror:
    """One MLflow run that follows one run directory."""

    def __init__(self, mlflow: Any, run_id: str) -> None:
        self._mlflow = mlflow
        self.run_id = run_id

    @classmethod
    def start(
        cls, config: JobConfig, run_dir: Path, *, resume_id: str | None = None
    ) -> MlflowMirror:
        """Start (or, with ``resume_id``, reopen) the MLflow run and log the config as params.

        Raises:
            ConfigError: MLflow is not installed.
        """
        try:
            mlflow = importlib.import_module("mlflow")
        except ImportError as error:
            raise ConfigError(
                f"{config.source}: job.mlflow.enabled is true but MLflow is not installed; "
                f"run `{MLFLOW_HINT}` or set enabled: false."
            ) from error
        options = config.job.mlflow
        uri = options.tracking_uri or (run_dir.parent / "mlruns").resolve().as_uri()
        mlflow.set_tracking_uri(uri)
        mlflow.set_experiment(options.experiment)
        if resume_id:
            active = mlflow.start_run(run_id=resume_id)
        else:
            active = mlflow.start_run(run_name=run_dir.name)
            mlflow.log_params(flatten(config.to_dict()))
            mlflow.set_tag("run_dir", str(run_dir))
        return cls(mlflow, active.info.run_id)

    def log_metrics(self, row: dict[str, Any], *, step: int | None) -> None:
        """Numeric entries of ``row`` (``epoch`` excluded) at ``step``."""
        numbers = {
            k: float(v)
            for k, v in row.items()
            if k != "epoch" and isinstance(v, int | float) and not isinstance(v, bool)
        }
        if numbers:
            self._mlflow.log_metrics(numbers, step=step)

    def log_artifact(self, path: Path) -> None:
        """Copy a file of the run into MLflow's artifact store."""
        self._mlflow.log_artifact(str(path))

    def end(self, status: str) -> None:
        """Close the run with the MLflow status matching ``status``."""
        self._mlflow.end_run(status=_END_STATUS.get(status, "FAILED"))
