"""The end_to_end task through the job runner on a small synthetic cohort (seconds on a CPU)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from slide_cohorts import small_slide_cohort

from napari_wsi_ml.errors import ConfigError
from napari_wsi_ml.inference import Heatmap
from napari_wsi_ml.jobs.config import load_job_config
from napari_wsi_ml.jobs.runner import run_job
from napari_wsi_ml.slide import open_slide
from napari_wsi_ml.training.end_to_end_data import epoch_steps, eval_tiles

REPO = Path(__file__).resolve().parents[2]
HISTORY_KEYS = {
    "epoch", "train_loss", "lr", "val_loss", "val_accuracy", "val_balanced_accuracy",
    "val_auc_normal", "val_auc_tumour",
}  # fmt: skip


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


def tiny_config(cohort: Path, **task: object) -> dict:
    """32 px tiles at 2 µm/px, a tiny timm ResNet, 4 tiles per slide, 2 slides per step."""
    return {
        "job": {"task": "end_to_end", "seed": 3, "device": "cpu"},
        "data": {
            "cohort": str(cohort), "patch_size": 32, "target_mpp": 2.0,
            "max_patches_per_slide": 30,
        },
        "end_to_end": {
            "backbone": "test_resnet", "tiles_per_slide": 4, "slides_per_step": 2, "epochs": 2,
            "eval_tiles": 20, "embed_dim": 16, "attention_dim": 8, "patience": 0,
            "learning_rate": 1e-3, **task,
        },
    }  # fmt: skip


def test_run_writes_metrics_report_and_georeferenced_attention_maps(cohort_csv, tmp_path):
    outcome = run_job(tiny_config(cohort_csv, checkpointing=True), run_root=tmp_path)
    assert outcome.status == "finished"
    run = outcome.run_dir
    assert (run / "checkpoints/last.pt").is_file() and (run / "checkpoints/best.pt").is_file()
    metrics = json.loads((run / "metrics.json").read_text())
    assert [row["epoch"] for row in metrics["history"]] == [0, 1]
    assert all(set(row) == HISTORY_KEYS for row in metrics["history"])
    assert all(0 < row["train_loss"] < 5 for row in metrics["history"])
    data = json.loads((run / "data.json").read_text())
    slides = {s["slide"]: s for s in data["slides"]}
    summary = metrics["summary"]
    assert summary["evaluated_split"] == "test" and summary["tiles_per_slide"] == 4
    report = summary["slide"]
    tested = [s for s in data["slides"] if s["part"] == "test"]
    assert report["n"] == len(tested) > 0 and report["classes"] == ["normal", "tumour"]
    assert set(report["strata"]) == {"site", "lesion_size"}
    assert {s["slide"] for s in report["slides"]} == {s["slide"] for s in tested}
    for row in report["slides"]:
        assert sum(row["probs"]) == pytest.approx(1.0, abs=1e-5)
    assert (run / "plots/slide_confusion.png").is_file() and (run / "plots/slide_roc.png").is_file()
    for entry in tested:
        heatmap = Heatmap.load(run / "heatmaps" / f"{entry['slide']}.heatmap.npz")
        with open_slide(entry["path"]) as slide:
            assert heatmap.slide_fingerprint == slide.fingerprint
        # 32 px at 2 µm/px on a 1 µm/px slide: 64 level-0 px, grid step = patch
        assert heatmap.origin == (0.0, 0.0)
        assert heatmap.stride == (64.0, 64.0) and heatmap.patch_size == (64.0, 64.0)
        width, height = entry["size"]
        assert heatmap.grid_shape == ((height - 64) // 64 + 1, (width - 64) // 64 + 1)
        attention = heatmap.values[..., 0]
        scored = ~np.isnan(attention)
        assert scored.sum() == min(20, entry["patches"])  # eval_tiles of the slide's patches
        assert np.nansum(attention) == pytest.approx(1.0, abs=1e-5)
        assert heatmap.class_names == ("attention",)
        slide_probs = next(r["probs"] for r in report["slides"] if r["slide"] == entry["slide"])
        assert list(heatmap.extra["slide_scores"].values()) == pytest.approx(slide_probs)
    assert slides  # data.json lists the cohort


def test_resume_after_cancel_gives_the_same_run(cohort_csv, tmp_path):
    config = tiny_config(cohort_csv, heatmaps=False, batchnorm="frozen", eval_tiles=8)
    config["data"]["max_patches_per_slide"] = 12
    straight = run_job(config, run_root=tmp_path / "straight")
    root = tmp_path / "cancelled"

    def cancel_after_first_step(event) -> None:
        if event.kind == "progress" and event.fields["step"] >= 1:
            next(root.iterdir()).joinpath("cancel.request").touch()

    cancelled = run_job(config, run_root=root, on_event=cancel_after_first_step)
    assert cancelled.status == "cancelled"
    resumed = run_job(resume_dir=cancelled.run_dir)
    assert resumed.status == "finished"
    assert (
        '"resumed_from": {"epoch": 0, "step": 1}'
        in (cancelled.run_dir / "events.jsonl").read_text()
    )
    one = json.loads((straight.run_dir / "metrics.json").read_text())
    two = json.loads((resumed.run_dir / "metrics.json").read_text())
    for row_a, row_b in zip(one["history"], two["history"], strict=True):
        for key in HISTORY_KEYS:
            assert row_a[key] == pytest.approx(row_b[key], abs=1e-5, nan_ok=True), key
    probs_a = [s["probs"] for s in one["summary"]["slide"]["slides"]]
    probs_b = [s["probs"] for s in two["summary"]["slide"]["slides"]]
    np.testing.assert_allclose(probs_a, probs_b, atol=1e-5)


def test_tile_plan_is_seeded_and_shared_out_among_ranks() -> None:
    counts = [10, 3, 7, 5, 8]
    steps = epoch_steps(counts, tiles_per_slide=4, slides_per_step=2, seed=1, epoch=0)
    assert len(steps) == 3 and sorted(np.concatenate([s.slides for s in steps])) == [0, 1, 2, 3, 4]
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    for step in steps:
        for group, slide in enumerate(step.slides):
            tiles = step.tiles[step.groups == group]
            assert len(tiles) == min(4, counts[slide]) == len(set(tiles.tolist()))  # no repeats
            assert ((tiles >= starts[slide]) & (tiles < starts[slide] + counts[slide])).all()
        blocks = [step.share(r, 3) for r in range(3)]
        np.testing.assert_array_equal(np.concatenate([b[0] for b in blocks]), step.tiles)
        assert max(len(b[0]) for b in blocks) - min(len(b[0]) for b in blocks) <= 1
    again = epoch_steps(counts, tiles_per_slide=4, slides_per_step=2, seed=1, epoch=0)
    other = epoch_steps(counts, tiles_per_slide=4, slides_per_step=2, seed=1, epoch=1)
    assert all(np.array_equal(a.tiles, b.tiles) for a, b in zip(steps, again, strict=True))
    assert not all(np.array_equal(a.tiles, b.tiles) for a, b in zip(steps, other, strict=False))
    np.testing.assert_array_equal(eval_tiles(5, None, 0, 0), np.arange(5))
    subset = eval_tiles(50, 8, 0, 2)
    assert len(subset) == 8 and np.array_equal(subset, eval_tiles(50, 8, 0, 2))


def test_config_problems_are_reported_before_running(cohort_csv):
    config = tiny_config(cohort_csv, backbone="resnet181", pretrained=True, weights="nowhere.pt")
    config["data"]["val_fraction"] = 0.8
    with pytest.raises(ConfigError) as info:
        load_job_config(config)
    text = str(info.value)
    assert "unknown timm model 'resnet181'" in text
    assert "end_to_end.pretrained: give pretrained: true or weights, not both" in text
    assert "end_to_end.weights: '" in text and "nowhere.pt' does not exist" in text
    assert "val_fraction + test_fraction must be under 1" in text


def test_shipped_config_loads():
    config = load_job_config(REPO / "configs" / "end_to_end_synthetic.yaml")
    assert config.job.task == "end_to_end" and config.task.backbone == "resnet18"
    assert config.data.cohort == REPO / "cohorts" / "wsl36" / "manifest.csv"


def test_mixed_precision_path_runs(cohort_csv, tmp_path, monkeypatch):
    """The autocast + loss-scaling code path, on the CPU (bfloat16) as the tests allow."""
    from napari_wsi_ml.training import loops

    monkeypatch.setattr(loops, "AMP_DEVICE_TYPES", ("cuda", "cpu"))
    config = tiny_config(cohort_csv, amp=True, epochs=1, heatmaps=False, eval_tiles=8)
    outcome = run_job(config, run_root=tmp_path)
    assert outcome.status == "finished"
    metrics = json.loads((outcome.run_dir / "metrics.json").read_text())
    assert 0 < metrics["history"][0]["train_loss"] < 5
    assert np.isfinite(metrics["history"][0]["val_loss"])


def test_bag_batch_packs_tiles_in_order_and_routes_gradients_back() -> None:
    from napari_wsi_ml.training.end_to_end_step import bag_batch

    features = torch.arange(10.0).reshape(5, 2).requires_grad_(True)
    bags, mask = bag_batch(features, torch.tensor([1, 0, 1, 1, 0]), 3)  # bag 2 is empty
    expected = [[[2, 3], [8, 9], [0, 0]], [[0, 1], [4, 5], [6, 7]], [[0, 0], [0, 0], [0, 0]]]
    torch.testing.assert_close(bags.detach(), torch.tensor(expected, dtype=torch.float32))
    assert mask.tolist() == [[True, True, False], [True, True, True], [False, False, False]]
    weights = torch.arange(bags.numel(), dtype=torch.float32).reshape(bags.shape)
    (bags * weights).sum().backward()
    # each tile's gradient is the weight at the slot it was packed into
    torch.testing.assert_close(features.grad, weights[[1, 0, 1, 1, 0], [0, 0, 1, 2, 1]])
