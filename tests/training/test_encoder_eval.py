"""The encoder_eval task through the job runner on a small synthetic cohort."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from slide_cohorts import small_slide_cohort

from napari_wsi_ml.errors import ConfigError
from napari_wsi_ml.jobs.config import load_job_config
from napari_wsi_ml.jobs.runner import prepare_run, run_job
from napari_wsi_ml.models import create_classifier
from napari_wsi_ml.models.end_to_end import create_end_to_end_model
from napari_wsi_ml.training.feature_encoder import weights_digest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Tiny models on 32 px tiles: one thread is as fast, and never oversubscribes the CPU."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def cohort_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return small_slide_cohort(tmp_path_factory) / "manifest.csv"


def eval_config(cohort: Path, **task: object) -> dict:
    """Annotation patches (32 px at 2 µm/px, at most 15 per class and slide), a tiny ResNet."""
    return {
        "job": {"task": "encoder_eval", "seed": 3, "device": "cpu"},
        "data": {
            "cohort": str(cohort), "patch_size": 32, "target_mpp": 2.0,
            "max_patches_per_class": 15,
        },
        "encoder_eval": {"backbone": "test_resnet", "batch_size": 64, **task},
    }  # fmt: skip


def fake_run(cohort_csv: Path, root: Path, task: str) -> tuple[Path, str]:
    """A run folder of ``task`` whose best checkpoint holds known ``test_resnet`` weights."""
    config = load_job_config(
        {
            "job": {"task": task},
            "data": {"cohort": str(cohort_csv)},
            task: {"backbone": "test_resnet"},
        }
    )
    run = prepare_run(config, run_root=root)
    torch.manual_seed(11)
    if task == "end_to_end":
        model = create_end_to_end_model("test_resnet", num_classes=2)
    else:
        model = create_classifier("test_resnet", num_classes=2)
    with torch.no_grad():
        for param in model.backbone.parameters():
            param.mul_(1.5).add_(0.01)  # not what a fresh seeded model would have
    (run / "checkpoints").mkdir(exist_ok=True)
    torch.save({"model": model.state_dict(), "epoch": 1}, run / "checkpoints" / "best.pt")
    return run, weights_digest(model.backbone)


@pytest.fixture(scope="module")
def end_to_end_run(cohort_csv: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple:
    """A run folder of an end_to_end job whose best checkpoint holds known encoder weights."""
    return fake_run(cohort_csv, tmp_path_factory.mktemp("e2e_runs"), "end_to_end")


def test_random_encoder_report(cohort_csv, tmp_path):
    outcome = run_job(eval_config(cohort_csv), run_root=tmp_path)
    assert outcome.status == "finished"
    run = outcome.run_dir
    metrics = json.loads((run / "metrics.json").read_text())
    summary = metrics["summary"]
    patches = summary["patches"]
    assert set(patches) == {"train", "val", "test"} and all(n > 0 for n in patches.values())
    emb = summary["embedding"]
    assert emb["dim"] == 96 and emb["n"] == sum(patches.values())  # under embedding_patches
    assert 1.0 <= emb["rankme"] <= min(emb["n"], emb["dim"])
    assert emb["rankme_fraction"] == pytest.approx(emb["rankme"] / min(emb["n"], emb["dim"]))
    assert 0.0 <= emb["mean_abs_offdiagonal_correlation"] <= 1.0
    probe = summary["probe"]
    assert probe["evaluated_split"] == "test" and probe["n"] == patches["test"]
    assert probe["c"] in (0.01, 0.1, 1.0, 10.0)
    assert set(probe["validation_balanced_accuracy"]) == {"0.01", "0.1", "1.0", "10.0"}
    assert probe["classes"] == ["normal", "tumour"]
    for name in probe["classes"]:
        auc = probe["auc"][name]
        assert auc["ci_low"] <= auc["auc"] <= auc["ci_high"]
    assert sum(map(sum, probe["confusion"])) == patches["test"]
    assert set(probe["strata"]["site"]) <= {"site_0", "site_1"}
    (row,) = metrics["history"]
    assert row["rankme"] == emb["rankme"] and row["probe_accuracy"] == probe["accuracy"]
    assert summary["encoder"]["backbone"] == "test_resnet"
    report = (run / "report.md").read_text()
    assert f"{emb['rankme']:.1f}" in report and "DeLong" in report
    for name in ("singular_values", "correlation", "probe_confusion", "probe_roc"):
        assert (run / "plots" / f"{name}.png").stat().st_size > 1000, name


@pytest.mark.parametrize("task", ["end_to_end", "patch_classifier"])
def test_checkpoint_of_our_run_is_evaluated(cohort_csv, tmp_path, task):
    run, digest = fake_run(cohort_csv, tmp_path / "runs", task)
    config = eval_config(cohort_csv, backbone=None, weights=str(run), embedding_patches=40)
    outcome = run_job(config, run_root=tmp_path / "eval")
    assert outcome.status == "finished"
    summary = json.loads((outcome.run_dir / "metrics.json").read_text())["summary"]
    # the backbone name came from the run's config, the weights from its best checkpoint
    assert summary["encoder"]["backbone"] == "test_resnet"
    assert summary["encoder"]["weights_sha256"] == digest
    assert summary["embedding"]["n"] == 40


def test_config_problems_are_reported_before_running(cohort_csv, end_to_end_run):
    run, _ = end_to_end_run
    with pytest.raises(ConfigError) as info:
        load_job_config(eval_config(cohort_csv, backbone="resnet18", weights=str(run)))
    assert "resnet18 differs from the run's backbone test_resnet" in str(info.value)
    config = eval_config(cohort_csv, backbone="resnet181", pretrained=True, weights="none.pt")
    config["data"]["val_fraction"] = 0.9
    with pytest.raises(ConfigError) as info:
        load_job_config(config)
    text = str(info.value)
    assert "give pretrained: true or weights, not both" in text
    assert "none.pt' does not exist" in text
    assert "val_fraction + test_fraction must be under 1" in text
    with pytest.raises(ConfigError, match="unknown timm model 'resnet181'"):
        load_job_config(eval_config(cohort_csv, backbone="resnet181"))


def test_shipped_config_loads():
    config = load_job_config(REPO / "configs" / "encoder_eval_synthetic.yaml")
    assert config.job.task == "encoder_eval"
    assert config.data.cohort == REPO / "cohorts" / "wsl36" / "manifest.csv"
