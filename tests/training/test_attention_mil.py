"""Gated attention pooling, and the attention-MIL job end to end on small synthetic slides."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from slide_cohorts import small_slide_cohort

from napari_wsi_ml.errors import ConfigError
from napari_wsi_ml.inference import Heatmap
from napari_wsi_ml.jobs.config import load_job_config
from napari_wsi_ml.jobs.runner import run_job
from napari_wsi_ml.models.attention import AttentionMil, GatedAttention
from napari_wsi_ml.slide import open_slide
from napari_wsi_ml.training.attention_mil_model import load_attention_mil

REPO = Path(__file__).resolve().parents[2]

# --- GatedAttention / AttentionMil ------------------------------------------------------------


@pytest.fixture
def pooling() -> GatedAttention:
    torch.manual_seed(0)
    return GatedAttention(8, hidden=16).eval()


def test_attention_sums_to_one_over_real_patches_and_is_zero_on_padding(pooling) -> None:
    torch.manual_seed(1)
    bags = torch.randn(3, 6, 8)
    mask = torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 1, 0, 0, 0], [1, 0, 0, 0, 0, 0]]).bool()
    bags[~mask] = 1e6  # padding content must not leak into anything
    pooled, weights = pooling(bags, mask)
    assert pooled.shape == (3, 8) and weights.shape == (3, 6)
    torch.testing.assert_close(weights.sum(dim=1), torch.ones(3))
    assert torch.all(weights[~mask] == 0) and torch.all(weights[mask] > 0)
    assert weights[2, 0] == 1  # a bag of one patch gives it all the attention
    for b in range(3):  # a padded bag pools exactly as the bag alone
        alone, alone_weights = pooling(bags[b][mask[b]])
        torch.testing.assert_close(pooled[b], alone)
        torch.testing.assert_close(weights[b][mask[b]], alone_weights)
        torch.testing.assert_close(alone, (alone_weights[:, None] * bags[b][mask[b]]).sum(0))


def test_pooling_is_invariant_to_the_order_of_patches(pooling) -> None:
    torch.manual_seed(2)
    bag = torch.randn(10, 8)
    order = torch.randperm(10)
    pooled, weights = pooling(bag)
    shuffled, shuffled_weights = pooling(bag[order])
    torch.testing.assert_close(shuffled, pooled)
    torch.testing.assert_close(shuffled_weights, weights[order])
    assert weights.std() > 0  # not a plain mean


def test_an_empty_bag_pools_to_zeros(pooling) -> None:
    pooled, weights = pooling(
        torch.randn(2, 4, 8), torch.tensor([[1, 1, 0, 0], [0, 0, 0, 0]]).bool()
    )
    assert torch.isfinite(pooled).all() and torch.isfinite(weights).all()
    assert torch.all(pooled[1] == 0) and torch.all(weights[1] == 0)


def test_slide_logits_are_the_attention_weighted_patch_logits() -> None:
    torch.manual_seed(3)
    model = AttentionMil(12, 3, embed_dim=16, attention_dim=8).eval()
    bag = torch.randn(7, 12)
    logits, attention = model(bag)
    assert logits.shape == (3,) and attention.shape == (7,)
    torch.testing.assert_close(logits, attention @ model.instance_logits(bag))
    with pytest.raises(ValueError, match=r"\(N, D\) or \(B, N, D\)"):
        model(torch.randn(12))


# --- the job -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def manifest(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Eight small synthetic slides (about 1 mm at 1 µm/px, 2 sites)."""
    return small_slide_cohort(tmp_path_factory) / "manifest.csv"


def tiny_config(manifest: Path, cache: Path, **task: object) -> dict:
    """32 px patches at 4 µm/px (a few dozen per slide), timm's tiny test ResNet, in-process
    extraction, three epochs of a few slides: seconds on a CPU."""
    return {
        "job": {"task": "attention_mil", "seed": 1},
        "data": {"cohort": str(manifest), "patch_size": 32, "target_mpp": 4.0},
        "attention_mil": {
            "backbone": "test_resnet",
            "feature_cache": str(cache),
            "workers": 1,
            "epochs": 3,
            "patience": 0,
            "embed_dim": 16,
            "attention_dim": 8,
            "instance_keep": 0.8,
            **task,
        },
    }


HISTORY_KEYS = {"epoch", "train_loss", "lr", "val_loss", "val_accuracy", "val_balanced_accuracy",
                "val_auc_macro", "val_auc_normal", "val_auc_tumour"}  # fmt: skip


def _feature_logs(run: Path) -> list[str]:
    events = [json.loads(line) for line in (run / "events.jsonl").read_text().splitlines()]
    return [e["message"] for e in events if e["kind"] == "log" and "features " in e["message"]]


@pytest.fixture(scope="module")
def straight(manifest: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One finished run (its features extracted into a fresh cache)."""
    root = tmp_path_factory.mktemp("attention_mil")
    outcome = run_job(tiny_config(manifest, root / "cache"), run_root=root / "runs")
    assert outcome.status == "finished"
    return outcome.run_dir


def test_job_writes_metrics_report_and_georeferenced_attention_maps(straight: Path) -> None:
    run = straight
    assert (run / "checkpoints/last.pt").is_file() and (run / "checkpoints/best.pt").is_file()
    metrics = json.loads((run / "metrics.json").read_text())
    assert [row["epoch"] for row in metrics["history"]] == [0, 1, 2]
    assert set(metrics["history"][0]) == HISTORY_KEYS
    assert all(row["train_loss"] > 0 and row["val_loss"] > 0 for row in metrics["history"])
    summary = metrics["summary"]
    report = summary["test"]
    assert summary["evaluated_split"] == "test" and report["classes"] == ["normal", "tumour"]
    assert set(report["strata"]) == {"site", "lesion_size"}
    assert report["n"] == len(report["slides"]) > 0 and summary["val"]["n"] > 0
    assert summary["test_auc_tumour"] == (report["auc"]["tumour"] or {}).get("auc")
    for name in ("val_slide_roc", "val_slide_confusion", "test_slide_roc", "test_slide_confusion"):
        assert (run / "plots" / f"{name}.png").is_file(), name
    data = json.loads((run / "data.json").read_text())
    assert set(data["features"]["files"]) == {s["slide"] for s in data["slides"]}
    assert all(Path(f).is_file() for f in data["features"]["files"].values())
    evaluated = [s for s in data["slides"] if s["part"] in ("val", "test")]
    reported = {s["slide"]: s for s in report["slides"] + summary["val"]["slides"]}
    assert summary["heatmaps"] == len(evaluated) > 0
    for entry in evaluated:
        heatmap = Heatmap.load(run / "heatmaps" / f"{entry['slide']}.heatmap.npz")
        plan = entry["read_plan"]
        ex, ey = plan["extent"]
        with open_slide(entry["path"]) as slide:
            assert heatmap.slide_fingerprint == slide.fingerprint == entry["fingerprint"]
            width, height = slide.level_dimensions[0]
        assert heatmap.origin == (0.0, 0.0) and heatmap.patch_size == (ex, ey)
        sx, sy = heatmap.stride
        assert heatmap.stride == (ex, ey)  # stride: the patch (no overlap), level-0 pixels
        assert heatmap.grid_shape == ((height - ey) // sy + 1, (width - ex) // sx + 1)
        assert heatmap.class_names == ("attention", "normal", "tumour")
        assert heatmap.run_id == run.name
        attention = heatmap.channel("attention")
        assert np.isfinite(attention).sum() == entry["patches"]  # every patch, nothing else
        assert np.nanmax(attention) == pytest.approx(1.0) and np.nanmin(attention) > 0
        probs = heatmap.values[np.isfinite(attention)][:, 1:]
        np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
        slide_probs = list(heatmap.extra["slide_probs"].values())
        assert reported[entry["slide"]]["probs"] == pytest.approx(slide_probs, abs=1e-6)


def test_a_finished_run_loads_back_and_predicts_as_it_did(straight: Path) -> None:
    trained = load_attention_mil(straight)
    assert trained.classes == ("normal", "tumour") and trained.checkpoint.name == "best.pt"
    data = json.loads((straight / "data.json").read_text())
    for entry in data["slides"]:
        if entry["part"] != "test":
            continue
        saved = Heatmap.load(straight / "heatmaps" / f"{entry['slide']}.heatmap.npz")
        features = np.load(data["features"]["files"][entry["slide"]], allow_pickle=False)
        prediction = trained.model.predict(features["features"])
        expected = list(saved.extra["slide_probs"].values())
        assert prediction.slide_probs.tolist() == pytest.approx(expected, abs=1e-6)
        assert prediction.attention.sum() == pytest.approx(1.0, abs=1e-5)


def test_second_run_reads_every_feature_from_the_cache(straight: Path, tmp_path: Path) -> None:
    config = load_job_config(straight / "config.yaml")
    first = _feature_logs(straight)
    assert len(first) == 8 and all("extracted" in line for line in first)
    again = run_job(
        tiny_config(config.data.cohort, config.task.feature_cache, epochs=1, heatmaps=False),
        run_root=tmp_path,
    )
    assert again.status == "finished"
    logs = _feature_logs(again.run_dir)
    assert len(logs) == 8 and all("cached" in line for line in logs)


def test_resume_after_cancel_gives_the_same_metrics(straight: Path, tmp_path: Path) -> None:
    config = load_job_config(straight / "config.yaml")
    root = tmp_path / "cancelled"

    def cancel_after_two_steps(event) -> None:
        if event.kind == "progress" and event.fields["step"] >= 2:
            next(root.iterdir()).joinpath("cancel.request").touch()

    raw = tiny_config(config.data.cohort, config.task.feature_cache)
    cancelled = run_job(raw, run_root=root, on_event=cancel_after_two_steps)
    assert cancelled.status == "cancelled"
    events = (cancelled.run_dir / "events.jsonl").read_text()
    assert re.search(r"cancelled at epoch \d, slide \d; checkpoint saved", events)  # mid-epoch
    resumed = run_job(resume_dir=cancelled.run_dir)
    assert resumed.status == "finished"
    one = json.loads((straight / "metrics.json").read_text())
    two = json.loads((resumed.run_dir / "metrics.json").read_text())
    assert len(two["history"]) == 3
    for row_a, row_b in zip(one["history"], two["history"], strict=True):
        for key in HISTORY_KEYS:
            assert row_a[key] == pytest.approx(row_b[key], abs=1e-6, nan_ok=True), key
    assert one["summary"]["test"]["slides"] == two["summary"]["test"]["slides"]


def test_config_problems_are_reported_before_running(manifest: Path, tmp_path: Path) -> None:
    config = tiny_config(manifest, tmp_path, backbone="resnet181", instance_kep=0.5)
    config["attention_mil"]["weights"] = str(tmp_path / "missing.safetensors")
    config["data"]["val_fraction"] = 0.6
    config["data"]["test_fraction"] = 0.5
    with pytest.raises(ConfigError) as info:
        load_job_config(config)
    assert "unknown key 'instance_kep' — did you mean 'instance_keep'?" in str(info.value)
    config["attention_mil"].pop("instance_kep")
    with pytest.raises(ConfigError) as info:
        load_job_config(config)
    text = str(info.value)
    assert "unknown timm model 'resnet181'" in text
    assert "missing.safetensors' does not exist" in text
    assert "val_fraction + test_fraction must be under 1" in text


def test_shipped_config_loads() -> None:
    config = load_job_config(REPO / "configs" / "attention_mil_synthetic.yaml")
    assert config.job.task == "attention_mil"
    assert config.task.backbone == "resnet18" and not config.task.pretrained
