"""The whole_slide_cnn job end to end, and its class activation maps on a known tumour."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from shapely.geometry import Point
from whole_slide_helpers import purple_detector

from napari_wsi_ml.errors import ConfigError
from napari_wsi_ml.inference import Heatmap
from napari_wsi_ml.jobs.config import load_job_config
from napari_wsi_ml.jobs.runner import run_job
from napari_wsi_ml.slide import open_slide
from napari_wsi_ml.training.whole_slide_cam import cam_heatmap
from napari_wsi_ml.training.whole_slide_data import SlideImageCache, SlideImageSpec, output_size
from napari_wsi_ml.training.whole_slide_loop import SlideImage, predict_slides
from napari_wsi_ml.training.whole_slide_options import WholeSlideOptions

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


@pytest.fixture(scope="module")
def cohort(tmp_path_factory) -> Path:
    """Eight small slides (1–1.5 k px at 1 µm/px, two sites): the manifest path."""
    from napari_wsi_ml.synthetic import generate_cohort

    folder = tmp_path_factory.mktemp("whole_slide_cohort")
    generate_cohort(folder, n_slides=8, seed=5, size=(1024, 1536), n_sites=2, n_raters=0, mpp=1.0)
    return folder / "manifest.csv"


def tiny_config(manifest: Path, cache: Path, **task: object) -> dict:
    """16 µm/px images (64–96 px) on a 96 px canvas: seconds on a CPU."""
    return {
        "job": {"task": "whole_slide_cnn", "seed": 2},
        "data": {"cohort": str(manifest), "target_mpp": 4.0, "patch_size": 32},
        "whole_slide_cnn": {
            "target_mpp": 16.0,
            "canvas": 96,
            "epochs": 2,
            "batch_size": 2,
            "patience": 0,
            "cache_dir": str(cache),
            **task,
        },
    }


def test_end_to_end_run_writes_report_checkpoints_and_georeferenced_cams(cohort, tmp_path):
    outcome = run_job(tiny_config(cohort, tmp_path / "cache"), run_root=tmp_path / "runs")
    assert outcome.status == "finished"
    run = outcome.run_dir
    assert (run / "checkpoints/last.pt").is_file() and (run / "checkpoints/best.pt").is_file()
    assert (run / "plots/slide_confusion.png").is_file() and (run / "plots/slide_roc.png").is_file()
    metrics = json.loads((run / "metrics.json").read_text())
    assert [row["epoch"] for row in metrics["history"]] == [0, 1]
    assert set(metrics["history"][0]) == HISTORY_KEYS
    assert all(row["train_loss"] > 0 for row in metrics["history"])
    summary = metrics["summary"]
    assert summary["evaluated_split"] == "test" and summary["best_epoch"] in (0, 1)
    report = summary["slide"]
    assert set(report["strata"]) == {"site", "lesion_size"}
    data = json.loads((run / "data.json").read_text())
    images = {entry["slide"]: entry for entry in data["whole_slide"]["images"]}
    assert set(images) == {s["slide"] for s in data["slides"]}
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == sorted(
        e["cache_file"] for e in images.values()
    )
    assert data["whole_slide"]["mask_ink"] is True  # the default: ink masked, its own cache files
    assert all(e["cache_file"].endswith("-i-v1.npy") for e in images.values())
    tested = [s for s in data["slides"] if s["part"] == "test"]
    assert {s["slide"] for s in report["slides"]} == {s["slide"] for s in tested} != set()
    for entry in tested:
        heatmap = Heatmap.load(run / "heatmaps" / f"{entry['slide']}.heatmap.npz")
        (width, height), (sx, sy) = images[entry["slide"]]["size"], images[entry["slide"]]["scale"]
        with open_slide(entry["path"]) as slide:
            assert heatmap.slide_fingerprint == slide.fingerprint == entry["fingerprint"]
            assert (sx, sy) == pytest.approx(
                (slide.level_dimensions[0][0] / width, slide.level_dimensions[0][1] / height)
            )
        assert heatmap.stride == heatmap.patch_size == pytest.approx((32 * sx, 32 * sy))
        assert heatmap.origin == pytest.approx((-15.5 * sx, -15.5 * sy))
        assert heatmap.grid_shape == (math.ceil((height - 0.5) / 32), math.ceil((width - 0.5) / 32))
        assert heatmap.class_names == ("normal", "tumour") and heatmap.run_id == run.name
        np.testing.assert_allclose(heatmap.values.sum(axis=2), 1.0, atol=1e-5)
        centres = heatmap.cell_centres_xy()  # every cell centre lies on the slide
        assert (centres > 0).all() and (centres[..., 0] < width * sx).all()
        assert (centres[..., 1] < height * sy).all()


def test_resume_after_cancel_gives_the_same_run(cohort, tmp_path):
    config = tiny_config(cohort, tmp_path / "cache", heatmaps=False)
    straight = run_job(config, run_root=tmp_path / "straight")
    cached = {p: p.stat().st_mtime_ns for p in (tmp_path / "cache").iterdir()}
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
    probs = [[s["probs"] for s in m["summary"]["slide"]["slides"]] for m in (one, two)]
    np.testing.assert_allclose(probs[0], probs[1], atol=1e-6)
    # the later runs read the downscaled slides from the cache
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "cache").iterdir()} == cached


def test_cam_peak_lies_inside_the_known_tumour(tmp_path):
    """One small lesion; the hand-set purple detector's CAM peak must fall inside it.

    (The sub-cell alignment is pinned by test_cam_peak_cell_is_centred_on_what_it_sees.)
    """
    from napari_wsi_ml.synthetic import generate_slide

    truth = generate_slide(
        tmp_path / "lesion.svs", width=2400, height=1700, seed=21, mpp=1.0, tumour="small",
        n_small_lesions=1, dust=False, pen=None,
    )  # fmt: skip
    (lesion,) = truth.lesions
    with open_slide(truth.path) as slide:
        spec = SlideImageSpec(
            slide.fingerprint,
            slide.level_dimensions[0],
            output_size(slide.level_dimensions[0], mpp=slide.mpp, target_mpp=2.0),
        )
    opts = WholeSlideOptions(target_mpp=2.0, canvas=None)
    image = SlideImage(None, spec, SlideImageCache(tmp_path / "cache").get(spec, truth.path))  # type: ignore[arg-type]
    model = purple_detector()
    _, (cam,) = predict_slides(model, [image], opts, model.head.weight.device, with_cams=True)
    heatmap = cam_heatmap(
        cam, spec, model.geometry, class_names=("normal", "tumour"), run_id="test",
        slide="lesion", pooling="gmp",
    )  # fmt: skip
    heatmap = Heatmap.load(heatmap.save(tmp_path / "lesion.heatmap.npz"))
    activation = cam[1] - cam[0]  # the peak of the class activation (softmax saturates)
    row, col = np.unravel_index(np.argmax(activation), activation.shape)
    assert np.count_nonzero(activation == activation.max()) == 1
    assert heatmap.channel("tumour")[row, col] == heatmap.channel("tumour").max()
    x, y = heatmap.cell_centres_xy()[row, col]
    assert lesion.polygon.contains(Point(x, y)), (x, y, lesion.polygon.bounds)
    # the cell is smaller than the lesion: the test can tell half a cell of error
    assert heatmap.stride == (64.0, 64.0)  # 2 µm/px · 32: finer than the ~115 px lesion


def test_bad_whole_slide_settings_are_listed_together(cohort, tmp_path):
    config = tiny_config(cohort, tmp_path, max_size=128, backbone="efficientnet_b0",
                         pretrained=True, weights=str(tmp_path / "w.safetensors"))  # fmt: skip
    with pytest.raises(ConfigError) as info:
        load_job_config(config)
    text = str(info.value)
    assert "give exactly one of target_mpp (µm/px) and max_size" in text
    assert "max_size: 128 px does not fit the 96 px canvas" in text
    assert "'efficientnet_b0' is a EfficientNet, not a ResNet" in text
    assert "give pretrained: true or weights, not both" in text


def test_shipped_config_loads():
    config = load_job_config(REPO / "configs" / "whole_slide_synthetic.yaml")
    assert config.job.task == "whole_slide_cnn"
    assert config.data.cohort == REPO / "wsl36" / "manifest.csv"
    assert config.task.pooling == "gmp" and config.task.backbone == "resnet18"
