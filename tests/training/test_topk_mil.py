"""Top-k MIL: instance selection, slide aggregation, and the job end to end on tiny slides."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from slide_cohorts import small_slide_cohort

from napari_wsi_ml.data import read_patch
from napari_wsi_ml.errors import ConfigError
from napari_wsi_ml.inference import Heatmap
from napari_wsi_ml.jobs.config import load_job_config
from napari_wsi_ml.jobs.runner import run_job
from napari_wsi_ml.slide import open_slide
from napari_wsi_ml.training.mil_common import PatchPixels
from napari_wsi_ml.training.slide_data import SlideDataOptions, load_slide_cohort
from napari_wsi_ml.training.topk_selection import (
    select_training_patches,
    slide_probabilities,
    top_k_indices,
)

REPO = Path(__file__).resolve().parents[2]
PROBS = np.array(
    [  # normal, tumour_a, tumour_b
        [0.90, 0.05, 0.05],  # 0: suspicion 0.10
        [0.20, 0.10, 0.70],  # 1: 0.80
        [0.40, 0.50, 0.10],  # 2: 0.60
        [0.15, 0.80, 0.05],  # 3: 0.85
        [0.20, 0.45, 0.35],  # 4: 0.80 (ties with 1; the lower index first)
    ]
)


@pytest.fixture(autouse=True)
def one_torch_thread():
    """One torch thread: tiny models on a shared CPU run several times faster than with two."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_top_k_indices_order_and_ties() -> None:
    assert top_k_indices([0.1, 0.8, 0.6, 0.85, 0.8], 3).tolist() == [3, 1, 4]
    assert top_k_indices([0.3, 0.2], 5).tolist() == [0, 1]  # fewer patches than k
    with pytest.raises(ValueError, match="k must be at least 1"):
        top_k_indices([0.5], 0)


def test_training_selection_rules() -> None:
    # not_normal: the most suspicious patches, whatever the slide's label (hard negatives too)
    assert select_training_patches(PROBS, 0, 2, "not_normal").tolist() == [3, 1]
    assert select_training_patches(PROBS, 2, 3, "not_normal").tolist() == [3, 1, 4]
    # own_class: the patches most probable for the slide's own class
    assert select_training_patches(PROBS, 2, 2, "own_class").tolist() == [1, 4]
    assert select_training_patches(PROBS, 0, 1, "own_class").tolist() == [0]
    with pytest.raises(ValueError, match="unknown selection rule"):
        select_training_patches(PROBS, 0, 1, "random")


def test_slide_aggregation() -> None:
    np.testing.assert_allclose(slide_probabilities(PROBS, "max"), PROBS[3])
    np.testing.assert_allclose(
        slide_probabilities(PROBS, "top_k_mean", 3), PROBS[[3, 1, 4]].mean(axis=0)
    )
    binary = np.array([[0.7, 0.3], [0.1, 0.9], [0.4, 0.6]])
    assert slide_probabilities(binary, "max")[1] == pytest.approx(0.9)  # Campanella: max p(tumour)
    assert slide_probabilities(binary, "top_k_mean", 2)[1] == pytest.approx(0.75)
    with pytest.raises(ValueError, match="no prediction"):
        slide_probabilities(np.zeros((0, 2)), "max")


@pytest.fixture(scope="module")
def cohort_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Eight small synthetic slides (about 1 mm at 1 µm/px, 2 sites)."""
    return small_slide_cohort(tmp_path_factory)


def tiny_config(manifest: Path, **task: object) -> dict:
    """32 px patches at 4 µm/px (a few dozen per slide), timm's tiny test ResNet, two short
    epochs: seconds on a CPU."""
    return {
        "job": {"task": "topk_mil", "seed": 1},
        "data": {"cohort": str(manifest), "patch_size": 32, "target_mpp": 4.0},
        "topk_mil": {
            "backbone": "test_resnet",
            "k": 2,
            "epochs": 2,
            "batch_size": 4,
            "eval_batch_size": 64,
            "patience": 0,
            "augment": True,
            **task,
        },
    }


HISTORY_KEYS = {"epoch", "train_loss", "lr", "val_loss", "val_accuracy", "val_balanced_accuracy",
                "val_auc_macro", "val_auc_normal", "val_auc_tumour"}  # fmt: skip


def test_job_writes_reports_checkpoints_and_georeferenced_heatmaps(
    cohort_dir: Path, tmp_path: Path
) -> None:
    outcome = run_job(tiny_config(cohort_dir / "manifest.csv"), run_root=tmp_path)
    assert outcome.status == "finished"
    run = outcome.run_dir
    assert (run / "checkpoints/last.pt").is_file() and (run / "checkpoints/best.pt").is_file()
    metrics = json.loads((run / "metrics.json").read_text())
    assert [row["epoch"] for row in metrics["history"]] == [0, 1]
    assert set(metrics["history"][0]) == HISTORY_KEYS
    assert all(row["train_loss"] > 0 and row["val_loss"] > 0 for row in metrics["history"])
    summary = metrics["summary"]
    assert summary["k"] == 2 and summary["evaluated_split"] == "test"
    data = json.loads((run / "data.json").read_text())
    slides = {s["slide"]: s for s in data["slides"]}
    for part in ("val", "test"):
        report = summary[part]
        names = [s for s, entry in slides.items() if entry["part"] == part]
        assert [row["slide"] for row in report["slides"]] == names
        assert set(report["strata"]) == {"site", "lesion_size"}
        for row in report["slides"]:
            entry = slides[row["slide"]]
            assert row["label"] == entry["label"] and row["site"] == entry["site"]
            assert sum(row["probs"]) == pytest.approx(1.0, abs=1e-5)
        assert (run / "plots" / f"{part}_slide_roc.png").is_file()
    cohort = load_slide_cohort(
        SlideDataOptions(cohort=cohort_dir / "manifest.csv", patch_size=32, target_mpp=4.0),
        seed=1,
    )
    for item in cohort.part("val") + cohort.part("test"):
        heatmap = Heatmap.load(run / "heatmaps" / f"{item.slide}.heatmap.npz")
        with open_slide(item.path) as slide:
            assert heatmap.slide_fingerprint == slide.fingerprint
            width, height = slide.level_dimensions[0]
        assert heatmap.origin == (0.0, 0.0) and heatmap.patch_size == (128.0, 128.0)
        assert heatmap.stride == (128.0, 128.0)
        assert heatmap.grid_shape == ((height - 128) // 128 + 1, (width - 128) // 128 + 1)
        scored = ~np.isnan(heatmap.values[:, :, 0])
        assert scored.sum() == len(item.patches)
        assert scored[item.patches.xy[:, 1] // 128, item.patches.xy[:, 0] // 128].all()
        np.testing.assert_allclose(heatmap.values[scored].sum(axis=1), 1.0, atol=1e-5)
        # the slide's "max" prediction is the heatmap's most suspicious patch
        row = next(r for r in summary[item.part]["slides"] if r["slide"] == item.slide)
        cells = heatmap.values[scored]
        np.testing.assert_allclose(cells[np.argmin(cells[:, 0])], row["probs"], atol=1e-5)


def test_patch_pixels_cached_and_read_on_demand_agree(cohort_dir: Path) -> None:
    options = SlideDataOptions(cohort=cohort_dir / "manifest.csv", patch_size=32, target_mpp=4.0)
    items = load_slide_cohort(options, seed=1).items[:2]
    cached, lazy = PatchPixels(items, cache_bytes=1 << 30), PatchPixels(items, cache_bytes=0)
    assert cached.cached and not lazy.cached and lazy.nbytes == 0
    assert cached.nbytes == sum(len(i.patches) for i in items) * 32 * 32 * 3
    which = np.array([2, 0])
    np.testing.assert_array_equal(cached.get(1, which), lazy.get(1, which))
    with open_slide(items[1].path) as slide:
        expected = read_patch(slide, items[1].patches.xy[2], items[1].plan)
    np.testing.assert_array_equal(lazy.get(1, which)[0], expected)


def test_resume_mid_epoch_gives_the_same_run(cohort_dir: Path, tmp_path: Path) -> None:
    # patches read from the slides at every request (cache_mb 0): the other pixel path
    config = tiny_config(cohort_dir / "manifest.csv", heatmaps=False, cache_mb=0, epochs=1)
    straight = run_job(config, run_root=tmp_path / "straight")
    root = tmp_path / "cancelled"

    def cancel_after_first_step(event) -> None:
        if event.kind == "progress" and event.fields["step"] >= 1:
            next(root.iterdir()).joinpath("cancel.request").touch()

    cancelled = run_job(config, run_root=root, on_event=cancel_after_first_step)
    assert cancelled.status == "cancelled"
    events = (cancelled.run_dir / "events.jsonl").read_text()
    assert "cancelled at epoch 0, batch 1" in events
    resumed = run_job(resume_dir=cancelled.run_dir)
    assert resumed.status == "finished"
    assert "resumed at epoch 0, batch 1" in (cancelled.run_dir / "events.jsonl").read_text()
    one = json.loads((straight.run_dir / "metrics.json").read_text())
    two = json.loads((resumed.run_dir / "metrics.json").read_text())
    for row_a, row_b in zip(one["history"], two["history"], strict=True):
        for key in HISTORY_KEYS - {"epoch"}:
            assert row_a[key] == pytest.approx(row_b[key], abs=1e-5, nan_ok=True), key
    for row_a, row_b in zip(one["summary"]["test"]["slides"], two["summary"]["test"]["slides"],
                            strict=True):  # fmt: skip
        assert row_a["slide"] == row_b["slide"]
        assert row_a["probs"] == pytest.approx(row_b["probs"], abs=1e-5)


def test_config_problems_are_reported_before_running(cohort_dir: Path) -> None:
    config = tiny_config(cohort_dir / "manifest.csv", aggregation="mean", backbone="resnet181")
    config["data"].update(classes=["normal", "tumour"], label_map={"tumor": "cancer"})
    with pytest.raises(ConfigError) as info:
        load_job_config(config)
    text = str(info.value)
    assert "topk_mil.aggregation: must be one of max, top_k_mean, got 'mean'" in text
    config["topk_mil"]["aggregation"] = "max"
    with pytest.raises(ConfigError) as info:
        load_job_config(config)
    text = str(info.value)
    assert "unknown timm model 'resnet181'" in text
    assert "data.label_map: maps to ['cancer'], which are not in data.classes" in text


def test_shipped_config_loads() -> None:
    config = load_job_config(REPO / "configs" / "topk_mil_synthetic.yaml")
    assert config.job.task == "topk_mil"
    assert config.data.cohort == REPO / "cohorts" / "wsl36" / "manifest.csv"
    assert config.task.k == 1 and config.task.backbone == "resnet18"
