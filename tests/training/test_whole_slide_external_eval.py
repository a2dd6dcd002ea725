"""Scoring a trained whole_slide_cnn run on another cohort (evaluate_whole_slide_run)."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import balanced_accuracy_score, roc_auc_score
from slide_cohorts import small_slide_cohort

from napari_wsi_ml.errors import RunError
from napari_wsi_ml.inference import Heatmap
from napari_wsi_ml.jobs.runner import run_job
from napari_wsi_ml.training.whole_slide_eval import evaluate_whole_slide_run, read_whole_slide_run


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory) -> tuple[Path, Path]:
    """A two-epoch run on the shared 8-slide cohort: (run folder, its cohort CSV)."""
    manifest = small_slide_cohort(tmp_path_factory) / "manifest.csv"
    root = tmp_path_factory.mktemp("whole_slide_eval")
    config = {
        "job": {"task": "whole_slide_cnn", "seed": 4},
        "data": {"cohort": str(manifest), "target_mpp": 4.0, "patch_size": 32},
        "whole_slide_cnn": {
            "target_mpp": 16.0, "canvas": 96, "epochs": 2, "batch_size": 2, "patience": 0,
            "heatmaps": False, "cache_dir": str(root / "cache"),
        },
    }  # fmt: skip
    outcome = run_job(config, run_root=root / "runs")
    assert outcome.status == "finished"
    return outcome.run_dir, manifest


@pytest.fixture(scope="module")
def other_cohort(tmp_path_factory) -> Path:
    """Six unseen slides (two large tumours, two normal, two tumours under 10 %)."""
    from napari_wsi_ml.synthetic import generate_cohort

    folder = tmp_path_factory.mktemp("whole_slide_other_cohort")
    generate_cohort(folder, n_slides=6, seed=11, size=(900, 1100), n_sites=1, n_raters=0, mpp=1.0)
    return folder / "manifest.csv"


def test_report_on_another_cohort_matches_sklearn(trained_run, other_cohort, tmp_path):
    run_dir, _ = trained_run
    report = evaluate_whole_slide_run(run_dir, other_cohort, heatmaps_dir=tmp_path / "cams")
    rows = list(csv.DictReader(other_cohort.open()))
    assert [s["slide"] for s in report["slides"]] == [r["slide"] for r in rows]
    assert report["n"] == 6 and report["classes"] == ["normal", "tumour"]
    labels = np.array([s["label"] == "tumour" for s in report["slides"]])
    probs = np.array([s["probs"] for s in report["slides"]])
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-6)
    assert report["auc"]["tumour"]["auc"] == pytest.approx(roc_auc_score(labels, probs[:, 1]))
    assert report["balanced_accuracy"] == pytest.approx(
        balanced_accuracy_score(labels, probs.argmax(axis=1))
    )
    sizes = np.array([s["lesion_size"] for s in report["slides"]])
    fractions = np.array([float(r["tumour_fraction"]) for r in rows])
    assert ((sizes == "<10%") == (labels & (fractions < 0.1))).all()
    assert (sizes == "<10%").sum() == 2 and (sizes == "none").sum() == 2
    keep = (sizes == "<10%") | ~labels
    small = report["strata"]["lesion_size"]["<10%"]["auc_vs_all_negatives"]["tumour"]
    assert small["auc"] == pytest.approx(roc_auc_score(labels[keep], probs[keep, 1]))
    assert small["n_positive"] == 2 and small["n_negative"] == 2
    assert report["run"]["pooling"] == "gmp" and report["run"]["checkpoint"].endswith("best.pt")
    for row in rows:
        heatmap = Heatmap.load(tmp_path / "cams" / f"{row['slide']}.heatmap.npz")
        assert heatmap.extra["kind"] == "class_activation_map"
        assert heatmap.values.shape[2] == 2 and 0 <= heatmap.values.min() <= 1


def test_own_cohort_reproduces_the_run_test_predictions(trained_run):
    run_dir, manifest = trained_run
    summary = json.loads((run_dir / "metrics.json").read_text())["summary"]["slide"]
    own = {s["slide"]: s["probs"] for s in summary["slides"]}
    report = evaluate_whole_slide_run(run_dir, manifest)
    found = {s["slide"]: s["probs"] for s in report["slides"]}
    assert len(found) == 8 and set(own) < set(found)
    for slide, probs in own.items():
        np.testing.assert_allclose(found[slide], probs, atol=1e-5)


def test_unusable_runs_are_refused(trained_run, other_cohort, tmp_path):
    with pytest.raises(RunError, match="not a run directory"):
        evaluate_whole_slide_run(tmp_path, other_cohort)
    run_dir, _ = trained_run
    copy = shutil.copytree(run_dir, tmp_path / "copy")
    (copy / "checkpoints" / "best.pt").unlink()
    with pytest.raises(RunError, match=r"no usable checkpoints/best\.pt"):
        evaluate_whole_slide_run(copy, other_cohort)


def test_runs_from_before_the_ink_mask_are_scored_without_it(trained_run, tmp_path):
    run_dir, _ = trained_run
    config, _ = read_whole_slide_run(run_dir)
    assert config.task.mask_ink  # recorded in data.json: scored as trained, with the mask
    copy = shutil.copytree(run_dir, tmp_path / "old")
    data = json.loads((copy / "data.json").read_text())
    del data["whole_slide"]["mask_ink"]  # what a run made before the option wrote
    (copy / "data.json").write_text(json.dumps(data))
    config, _ = read_whole_slide_run(copy)
    assert not config.task.mask_ink
