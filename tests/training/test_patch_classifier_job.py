"""The patch-classifier task end to end through the job system, on a tiny synthetic cohort."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from napari_wsi_ml.data import grid_patches, plan_patch_read
from napari_wsi_ml.errors import ConfigError
from napari_wsi_ml.inference import Heatmap, read_predictions, top_k_scores
from napari_wsi_ml.jobs.config import load_job_config
from napari_wsi_ml.jobs.run_context import load_checkpoint_file
from napari_wsi_ml.jobs.runner import run_job
from napari_wsi_ml.slide import open_slide
from napari_wsi_ml.training import loops

REPO = Path(__file__).resolve().parents[2]
HISTORY_KEYS = {
    "epoch",
    "train_loss",
    "lr",
    "val_loss",
    "val_accuracy",
    "val_balanced_accuracy",
    "val_auc_normal",
    "val_auc_tumour",
}


def tiny_config(manifest: Path, **task: object) -> dict:
    """Small patches at a coarse resolution, a few per class and slide: seconds on a CPU."""
    return {
        "job": {"task": "patch_classifier", "seed": 3},
        "data": {
            "cohort": str(manifest),
            "patch_size": 32,
            "target_mpp": 2.0,
            "max_patches_per_class": 12,
            "val_fraction": 0.25,
            "test_fraction": 0.25,
        },
        "patch_classifier": {
            "backbone": "resnet18",
            "epochs": 2,
            "batch_size": 8,
            "patience": 0,
            **task,
        },
    }


def test_end_to_end_run_writes_metrics_and_georeferenced_heatmaps(synthetic_cohort, tmp_path):
    outcome = run_job(tiny_config(synthetic_cohort.manifest, epochs=1), run_root=tmp_path)
    assert outcome.status == "finished"
    run = outcome.run_dir
    for name in ("config.yaml", "env.json", "data.json", "events.jsonl", "metrics.json"):
        assert (run / name).is_file(), name
    assert (run / "checkpoints" / "last.pt").is_file() and (run / "checkpoints/best.pt").is_file()
    metrics = json.loads((run / "metrics.json").read_text())
    assert [row["epoch"] for row in metrics["history"]] == [0]
    assert set(metrics["history"][0]) == HISTORY_KEYS
    assert metrics["history"][0]["train_loss"] > 0
    summary = metrics["summary"]
    assert summary["evaluated_split"] in ("test", "val")
    assert set(summary["patch"]) >= {"accuracy", "balanced_accuracy", "auc", "auc_ci", "per_site"}
    data = json.loads((run / "data.json").read_text())
    assert data["split_by"] == "patient" and len(data["annotation_hash"]) == 64
    evaluated = [s for s in data["slides"] if summary["evaluated_split"] in s["patches"]]
    assert evaluated
    for entry in evaluated:
        heatmap = Heatmap.load(run / "heatmaps" / f"{entry['slide']}.heatmap.npz")
        with open_slide(entry["path"]) as slide:
            assert heatmap.slide_fingerprint == slide.fingerprint == entry["fingerprint"]
            plan = plan_patch_read(slide, patch_size=32, target_mpp=2.0)
            tissue = grid_patches(slide, plan)
            width, height = slide.level_dimensions[0]
        ex, ey = plan.extent
        sx, sy = plan.level0_stride(None)  # the grid's step: the patch, on the read level
        assert heatmap.origin == (0.0, 0.0)
        assert heatmap.stride == (float(sx), float(sy))
        assert heatmap.patch_size == (float(ex), float(ey))
        assert heatmap.grid_shape == ((height - ey) // sy + 1, (width - ex) // sx + 1)
        assert heatmap.class_names == ("normal", "tumour") and heatmap.run_id == run.name
        scored = ~np.isnan(heatmap.values[:, :, 0])
        assert scored.sum() == len(tissue)  # every tissue patch scored, nothing else
        assert scored[tissue.xy[:, 1] // sy, tissue.xy[:, 0] // sx].all()
        probs = heatmap.values[scored]
        np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    # the run's slide predictions, as `infer` writes them: one row per evaluated slide
    predictions = {p.slide: p for p in read_predictions(run / "predictions.csv")}
    assert set(predictions) == {entry["slide"] for entry in evaluated}
    for entry in evaluated:
        row = predictions[entry["slide"]]
        assert row.path == Path(entry["path"]) and row.fingerprint == entry["fingerprint"]
        assert row.label == entry["label"]
        heatmap = Heatmap.load(run / "heatmaps" / f"{entry['slide']}.heatmap.npz")
        for name, score in top_k_scores(heatmap, k=5).items():  # the task's top_k default
            assert row.scores[name] == pytest.approx(score, abs=1e-6)
        assert row.heatmap == run / "heatmaps" / f"{entry['slide']}.heatmap.npz"


def test_resume_after_cancel_gives_the_same_metrics(synthetic_cohort, tmp_path):
    config = tiny_config(synthetic_cohort.manifest, heatmaps=False)
    config["data"]["max_patches_per_class"] = 8
    straight = run_job(config, run_root=tmp_path / "straight")
    root = tmp_path / "cancelled"

    def cancel_after_first_step(event) -> None:
        if event.kind == "progress" and event.fields["step"] >= 1:
            next(root.iterdir()).joinpath("cancel.request").touch()

    cancelled = run_job(config, run_root=root, on_event=cancel_after_first_step)
    assert cancelled.status == "cancelled"
    resumed = run_job(resume_dir=cancelled.run_dir)
    assert resumed.status == "finished"
    events = (cancelled.run_dir / "events.jsonl").read_text()
    assert '"resumed_from": {"epoch": 0, "step": 1}' in events
    one = json.loads((straight.run_dir / "metrics.json").read_text())
    two = json.loads((resumed.run_dir / "metrics.json").read_text())
    assert len(one["history"]) == len(two["history"]) == 2
    for row_a, row_b in zip(one["history"], two["history"], strict=True):
        for key in HISTORY_KEYS:
            assert row_a[key] == pytest.approx(row_b[key], abs=1e-6, nan_ok=True), key
    assert one["summary"]["patch"]["auc"] == pytest.approx(two["summary"]["patch"]["auc"])


def test_mixed_precision_run_on_the_cpu(synthetic_cohort, tmp_path, monkeypatch):
    """``amp: true`` on CUDA (autocast + loss scaling + scaler state in checkpoints), run here
    with bfloat16 on the CPU; by default the CPU trains in float32 with no scaler state."""
    config = tiny_config(synthetic_cohort.manifest, epochs=1, heatmaps=False)
    config["data"]["max_patches_per_class"] = 6
    plain = run_job(config, run_root=tmp_path / "plain")
    assert load_checkpoint_file(plain.run_dir / "checkpoints" / "last.pt")["scaler"] == {}
    monkeypatch.setattr(loops, "AMP_DEVICE_TYPES", ("cuda", "cpu"))
    mixed = run_job(config, run_root=tmp_path / "mixed")
    assert mixed.status == "finished"
    state = load_checkpoint_file(mixed.run_dir / "checkpoints" / "last.pt")
    assert state["scaler"]["scale"] == 2.0**16  # scaling on, no overflow in this short run
    one = json.loads((plain.run_dir / "metrics.json").read_text())["history"][0]
    two = json.loads((mixed.run_dir / "metrics.json").read_text())["history"][0]
    assert two["train_loss"] == pytest.approx(one["train_loss"], rel=0.1)  # bfloat16 rounding
    assert two["train_loss"] != one["train_loss"]


def test_linear_probe_on_one_slides_annotations(synthetic_cohort, tmp_path):
    """The Train panel's case: one slide and its annotation file; patches split by blocks."""
    slide = synthetic_cohort.slides[0]
    config = tiny_config(synthetic_cohort.manifest, mode="linear_probe", epochs=1)
    config["data"].pop("cohort")
    config["data"].update(slides=[str(slide.path)], annotations=[str(slide.truth_xml)])
    config["data"]["max_patches_per_class"] = None
    outcome = run_job(config, run_root=tmp_path)
    assert outcome.status == "finished"
    data = json.loads((outcome.run_dir / "data.json").read_text())
    assert data["split_by"] == "block" and data["split"] is None
    counts = data["slides"][0]["patches"]
    assert set(counts) == {"train", "val", "test"} and counts["train"]["tumour"] > 0
    metrics = json.loads((outcome.run_dir / "metrics.json").read_text())
    assert metrics["history"][0]["val_loss"] > 0
    assert metrics["summary"]["slide"] is None  # one slide: no slide-level AUC
    assert (outcome.run_dir / "heatmaps" / f"{slide.path.stem}.heatmap.npz").is_file()


def test_config_problems_are_reported_before_running(synthetic_cohort):
    config = tiny_config(synthetic_cohort.manifest, lerning_rate=0.1, backbone="resnet181")
    config["data"]["annotations"] = ["a.xml"]
    with pytest.raises(ConfigError) as info:
        load_job_config(config)
    text = str(info.value)
    assert "unknown key 'lerning_rate' — did you mean 'learning_rate'?" in text
    config["patch_classifier"].pop("lerning_rate")
    with pytest.raises(ConfigError) as info:
        load_job_config(config)
    text = str(info.value)
    assert "unknown timm model 'resnet181'" in text and "'resnet18'" in text
    assert "data.annotations: goes with slides" in text


def test_shipped_configs_load():
    for path in sorted((REPO / "configs").glob("patch_classifier*.yaml")):
        config = load_job_config(path)
        assert config.job.task == "patch_classifier"
        assert config.data.cohort == REPO / "sample_cohort" / "manifest.csv"
        assert config.task.backbone == "resnet18"
