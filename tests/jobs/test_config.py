"""Job config validation: every problem at once, with suggestions, before anything runs."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from napari_wsi_ml.errors import ConfigError
from napari_wsi_ml.jobs.config import load_job_config


def write(folder: Path, text: str) -> Path:
    path = folder / "job.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_typo_is_answered_with_the_closest_key(tmp_path: Path) -> None:
    path = write(tmp_path, "job: {task: smoke}\nsmoke: {lerning_rate: 0.1}\n")
    with pytest.raises(ConfigError) as error:
        load_job_config(path)
    assert (
        f"{path}: smoke.lerning_rate: unknown key 'lerning_rate' — did you mean 'learning_rate'?"
        in str(error.value)
    )


def test_every_problem_is_listed_at_once(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "job: {task: smoke, seed: -1, devise: cpu, device: tpu}\n"
        "data: {n_samples: two, val_fraction: 1.5}\n"
        "smoke: {epochs: 0, model: linaer}\n"
        "extra: 1\n",
    )
    with pytest.raises(ConfigError) as error:
        load_job_config(path)
    lines = str(error.value).splitlines()
    assert lines[0] == f"{path}: 8 problems in the job config:"
    body = "\n".join(lines[1:])
    for expected in (
        "extra: unknown key 'extra'; write one of job, data, smoke.",
        "job.devise: unknown key 'devise' — did you mean 'device'?",
        "job.seed: must be ≥ 0, got -1",
        "job.device: must be one of auto, cpu, cuda, got 'tpu'",
        "data.n_samples: must be an integer, got 'two'",
        "data.val_fraction: must be ≤ 0.9, got 1.5",
        "smoke.epochs: must be ≥ 1, got 0",
        "smoke.model: must be one of linear, mlp, cnn, got 'linaer' (did you mean 'linear'?)",
    ):
        assert expected in body
    assert all(line.startswith(f"{path}: ") for line in lines)


def test_unknown_task_suggests_a_registered_one(tmp_path: Path) -> None:
    path = write(tmp_path, "job: {task: smok}\n")
    with pytest.raises(
        ConfigError, match=r"job.task: unknown task 'smok' — did you mean 'smoke'\?"
    ):
        load_job_config(path)


def test_missing_job_section_and_required_task(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"job.task: missing"):
        load_job_config(write(tmp_path, "job: {seed: 1}\n"))
    with pytest.raises(ConfigError, match=r"job: missing"):
        load_job_config(write(tmp_path, "data: {}\n"))


def test_bad_yaml_and_missing_file_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"job\.yaml: not valid YAML"):
        load_job_config(write(tmp_path, "job: [unclosed\n"))
    with pytest.raises(ConfigError, match=r"Cannot read job config .*nope\.yaml"):
        load_job_config(tmp_path / "nope.yaml")


def test_defaults_are_filled_and_paths_resolved(tmp_path: Path) -> None:
    path = write(tmp_path, "job: {task: smoke, output_dir: out}\nsmoke: {learning_rate: 1e-3}\n")
    config = load_job_config(path)
    assert config.job.output_dir == tmp_path / "out"
    assert config.job.device == "auto" and config.job.seed == 0
    assert config.task.learning_rate == pytest.approx(0.001)  # YAML reads 1e-3 as text
    assert config.data.n_samples == 64
    resolved = yaml.safe_load(config.to_yaml())
    assert resolved["smoke"]["epochs"] == 3 and resolved["job"]["output_dir"] == str(
        tmp_path / "out"
    )
    assert load_job_config(resolved).to_dict() == config.to_dict()  # config.yaml round-trips


def test_task_cross_checks_run_after_the_schema(tmp_path: Path) -> None:
    path = write(tmp_path, "job: {task: smoke}\ndata: {n_samples: 4, val_fraction: 0.9}\n")
    with pytest.raises(ConfigError, match=r"data\.val_fraction: leaves no training samples"):
        load_job_config(path)


def test_enabled_mlflow_without_mlflow_names_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "mlflow" else real(name, *a)
    )
    path = write(tmp_path, "job: {task: smoke, mlflow: {enabled: true}}\n")
    with pytest.raises(ConfigError, match=r"pip install napari-wsi-ml\[mlflow\]"):
        load_job_config(path)
