"""Trained runs as score functions: the loader registry and the patch-classifier loader."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from run_factory import (
    CLASSES,
    EVAL_STRIDE,
    MPP,
    PATCH,
    TOP_K,
    make_patch_classifier_run,
    make_topk_mil_run,
)

from napari_wsi_ml.data.reading import read_patch
from napari_wsi_ml.errors import RunError
from napari_wsi_ml.inference import RUN_LOADERS, load_run, score_slide
from napari_wsi_ml.inference.grid import scoring_plan
from napari_wsi_ml.jobs.run_context import load_checkpoint_file
from napari_wsi_ml.models import create_classifier
from napari_wsi_ml.slide import open_slide


@pytest.fixture(scope="module")
def loaded(run_dir: Path):
    """The run, loaded once for the tests that only use it."""
    return load_run(run_dir, device="cpu")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, synthetic_slide) -> Path:
    root = tmp_path_factory.mktemp("runs")
    return make_patch_classifier_run(
        root, synthetic_slide.path, synthetic_slide.truth_xml, checkpoints=("best",)
    )


def test_a_patch_classifier_run_loads_with_its_settings(run_dir: Path, loaded) -> None:
    model = loaded
    assert model.task == "patch_classifier" and model.run_id == run_dir.name
    assert model.class_names == CLASSES and model.background == "normal"
    assert (model.patch_size, model.target_mpp, model.stride) == (PATCH, MPP, EVAL_STRIDE)
    assert model.min_tissue == 0.4 and model.checkpoint == run_dir / "checkpoints" / "best.pt"
    assert model.value_range == (0.0, 1.0)


def test_scores_are_the_trained_model_on_the_patches(run_dir, loaded, synthetic_slide) -> None:
    model = loaded
    with open_slide(synthetic_slide.path) as slide:
        plan = scoring_plan(slide, PATCH, MPP)
        xy = np.array([[512, 512], [1536, 1024], [2048, 256], [256, 1536]])
        patches = np.stack([read_patch(slide, corner, plan) for corner in xy])
    scores = model(patches, xy)
    reference = create_classifier("resnet18", num_classes=2)
    reference.load_state_dict(load_checkpoint_file(run_dir / "checkpoints" / "best.pt")["model"])
    reference.eval()
    with torch.no_grad():
        logits = reference(torch.from_numpy(patches).permute(0, 3, 1, 2))
    np.testing.assert_allclose(scores, torch.softmax(logits, 1).numpy(), rtol=1e-4, atol=1e-5)
    assert scores.shape == (4, 2) and np.allclose(scores.sum(axis=1), 1.0)


def test_other_weights_give_other_scores(loaded, synthetic_slide, tmp_path) -> None:
    other = make_patch_classifier_run(
        tmp_path, synthetic_slide.path, synthetic_slide.truth_xml, seed=5, checkpoints=("last",)
    )
    other_model = load_run(other, device="cpu")
    assert other_model.checkpoint == other / "checkpoints" / "last.pt"  # no best.pt: the last
    patches = np.random.default_rng(0).integers(0, 255, (3, PATCH, PATCH, 3), dtype=np.uint8)
    xy = np.zeros((3, 2), np.int64)
    assert not np.allclose(other_model(patches, xy), loaded(patches, xy))


def test_score_slide_uses_the_run_settings(run_dir: Path, loaded, synthetic_slide) -> None:
    model = loaded
    with open_slide(synthetic_slide.path) as slide:
        result = score_slide(slide, model, batch_size=16)
        plan = scoring_plan(slide, PATCH, MPP)
        fingerprint = slide.fingerprint
    assert result.patch_size == plan.extent == (256, 256)  # 32 px at 2 µm/px on 0.25 µm/px
    assert result.stride == (128.0, 128.0)  # eval_stride 16 px
    assert result.class_names == CLASSES and result.run_id == run_dir.name
    assert result.slide_fingerprint == fingerprint
    scored = result.values[np.isfinite(result.values[..., 0])]
    assert len(scored) > 50 and np.allclose(scored.sum(axis=1), 1.0, atol=1e-5)
    assert model.aggregate(result)["tumour"] == pytest.approx(
        float(np.sort(scored[:, 1])[-TOP_K:].mean()), rel=1e-6
    )


def test_unusable_runs_are_clear_errors(run_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(RunError, match="not a run directory"):
        load_run(tmp_path)
    smoke = tmp_path / "smoke-run"
    (smoke / "checkpoints").mkdir(parents=True)
    (smoke / "config.yaml").write_text("job: {task: smoke}\n")
    with pytest.raises(
        RunError, match=r"'smoke' run; inference can load runs of: patch_classifier"
    ):
        load_run(smoke)
    empty = tmp_path / "empty-run"
    (empty / "checkpoints").mkdir(parents=True)
    (empty / "config.yaml").write_text((run_dir / "config.yaml").read_text())
    with pytest.raises(RunError, match="has no checkpoint"):
        load_run(empty, device="cpu")


class NotWeights:
    """An arbitrary object: a checkpoint holding it must not be unpickled."""

    def __reduce__(self):
        return (print, ("unpickled!",))


def test_a_checkpoint_with_code_is_refused(run_dir: Path, tmp_path: Path, capsys) -> None:
    bad = tmp_path / "bad-run"
    (bad / "checkpoints").mkdir(parents=True)
    (bad / "config.yaml").write_text((run_dir / "config.yaml").read_text())
    torch.save({"model": NotWeights()}, bad / "checkpoints" / "best.pt")
    with pytest.raises(RunError, match=r"cannot read best\.pt as a weights-only checkpoint"):
        load_run(bad, device="cpu")
    assert "unpickled!" not in capsys.readouterr().out


def test_the_registry_names_loaders_by_task() -> None:
    assert RUN_LOADERS["patch_classifier"].endswith(":load_patch_classifier")
    assert RUN_LOADERS["topk_mil"].endswith(":load_topk_mil")


def test_a_topk_mil_run_scores_patches_and_aggregates_like_its_training(
    loaded, synthetic_slide, tmp_path: Path
) -> None:
    from napari_wsi_ml.training.topk_selection import slide_probabilities

    cohort = tmp_path / "cohort.csv"
    cohort.write_text(f"path,label,patient\n{synthetic_slide.path},tumour,p1\n")
    run = make_topk_mil_run(tmp_path, cohort)
    mil = load_run(run, device="cpu")
    patch = loaded  # same seed, same architecture: same weights
    assert (mil.task, mil.background, mil.slide_distribution) == ("topk_mil", "normal", True)
    assert (mil.patch_size, mil.target_mpp, mil.stride) == (PATCH, MPP, None)
    patches = np.random.default_rng(1).integers(0, 255, (5, PATCH, PATCH, 3), dtype=np.uint8)
    xy = np.zeros((5, 2), np.int64)
    np.testing.assert_allclose(mil(patches, xy), patch(patches, xy), rtol=1e-6)
    with open_slide(synthetic_slide.path) as slide:
        result = score_slide(slide, mil, stride=PATCH)
    scored = result.values[np.isfinite(result.values[..., 0])]
    expected = slide_probabilities(scored, "top_k_mean", 2)  # the training's own aggregation
    scores = mil.aggregate(result)
    assert list(scores) == list(CLASSES)
    np.testing.assert_allclose(list(scores.values()), expected)
    assert sum(scores.values()) == pytest.approx(1.0)
