"""The patch-feature cache and its extraction: hits, keys, corrupt files, Dask = serial."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from slide_cohorts import small_slide_cohort

from napari_wsi_ml.data import grid_patches, plan_patch_read
from napari_wsi_ml.data.reading import read_patches
from napari_wsi_ml.errors import ConfigError, SlideError
from napari_wsi_ml.models import create_classifier
from napari_wsi_ml.slide import open_slide
from napari_wsi_ml.training import feature_extraction
from napari_wsi_ml.training.feature_cache import FeatureCache, SlideFeatureJob
from napari_wsi_ml.training.feature_encoder import EncoderSpec, build_encoder, encoder_key
from napari_wsi_ml.training.feature_extraction import slide_features

SPEC = EncoderSpec(backbone="test_resnet", seed=0)


@pytest.fixture(scope="module")
def jobs(tmp_path_factory: pytest.TempPathFactory) -> list[SlideFeatureJob]:
    """The 32 px grid patches at 4 µm/px of three small synthetic slides."""
    folder = small_slide_cohort(tmp_path_factory)
    out = []
    for name in ("slide_000", "slide_001", "slide_002"):
        with open_slide(folder / f"{name}.svs") as slide:
            plan = plan_patch_read(slide, patch_size=32, target_mpp=4.0)
            patches = grid_patches(slide, plan, min_tissue=0.2)
            assert len(patches) >= 4
            out.append(SlideFeatureJob.from_patches(patches, slide.fingerprint))
    return out


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Slides whose features were computed (not read from the cache), in order."""
    computed: list[str] = []
    original = feature_extraction.compute_slide_features

    def counting(spec, key, job, **options):
        computed.append(job.slide)
        return original(spec, key, job, **options)

    monkeypatch.setattr(feature_extraction, "compute_slide_features", counting)
    return computed


def test_features_are_the_encoder_on_the_patches_and_a_hit_is_not_recomputed(
    jobs: list[SlideFeatureJob], tmp_path: Path, counted: list[str]
) -> None:
    cache = FeatureCache(tmp_path)
    first = slide_features(jobs, SPEC, cache, workers=1)
    assert counted == [job.slide for job in jobs]
    assert not any(found.from_cache for found in first.values())
    job = jobs[0]
    with open_slide(job.path) as slide:
        images = read_patches(slide, job.xy, job.plan).images
    expected = build_encoder(SPEC)(torch.from_numpy(images).permute(0, 3, 1, 2))
    np.testing.assert_allclose(first[job.slide].features, expected.numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(first[job.slide].xy, job.xy)

    done: list[tuple[int, int, bool]] = []
    second = slide_features(
        jobs, SPEC, cache, workers=1, progress=lambda d, n, f: done.append((d, n, f.from_cache))
    )
    assert counted == [job.slide for job in jobs]  # nothing computed again
    assert done == [(1, 3, True), (2, 3, True), (3, 3, True)]
    for job in jobs:
        np.testing.assert_array_equal(second[job.slide].features, first[job.slide].features)
        np.testing.assert_array_equal(second[job.slide].xy, first[job.slide].xy)
    assert (cache.folder(second[job.slide].encoder_key) / "encoder.json").is_file()


def test_key_follows_the_weights_input_size_slide_and_grid(
    jobs: list[SlideFeatureJob], tmp_path: Path, counted: list[str]
) -> None:
    cache = FeatureCache(tmp_path / "cache")
    job = jobs[0]
    base = slide_features([job], SPEC, cache, workers=1)[job.slide]
    other_seed = dataclasses.replace(SPEC, seed=1)
    reseeded = slide_features([job], other_seed, cache, workers=1)[job.slide]
    assert counted == [job.slide, job.slide]  # other weights: another key, computed
    assert reseeded.encoder_key != base.encoder_key
    assert not np.allclose(reseeded.features, base.features)

    # the key is the weights' content: the same tensors from a local file hit the cache
    weights = tmp_path / "seed1.safetensors"
    save_file(build_encoder(other_seed).backbone.state_dict(), str(weights))
    from_file = dataclasses.replace(SPEC, weights=weights)
    found = slide_features([job], from_file, cache, workers=1)[job.slide]
    assert found.from_cache and found.encoder_key == reseeded.encoder_key
    assert len(counted) == 2

    resized = build_encoder(dataclasses.replace(SPEC, input_size=48))
    assert encoder_key(SPEC.backbone, resized) != base.encoder_key

    moved = dataclasses.replace(job, fingerprint="0" * 64)  # another slide file
    fewer = dataclasses.replace(job, xy=job.xy[1:])  # another patch grid
    key = base.encoder_key
    for changed in (moved, fewer):
        assert cache.path(key, changed) != cache.path(key, job)
        assert cache.load(key, changed) is None
    assert cache.load(key, job) is not None


def test_a_patch_classifier_run_folder_gives_its_backbone(tmp_path: Path) -> None:
    torch.manual_seed(5)
    classifier = create_classifier("test_resnet", num_classes=2)
    (tmp_path / "checkpoints").mkdir()
    torch.save({"model": classifier.state_dict(), "epoch": 3}, tmp_path / "checkpoints/best.pt")
    encoder = build_encoder(dataclasses.replace(SPEC, weights=tmp_path))
    for name, tensor in classifier.backbone.state_dict().items():
        torch.testing.assert_close(encoder.backbone.state_dict()[name], tensor)
    images = torch.randint(0, 256, (3, 3, 32, 32), dtype=torch.uint8)
    with torch.no_grad():
        torch.testing.assert_close(encoder(images), classifier.eval().features(images))
    assert encoder_key("test_resnet", encoder) != encoder_key("test_resnet", build_encoder(SPEC))


def _truncate(path: Path, other: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _flip_feature_bytes(path: Path, other: Path) -> None:
    with np.load(path, allow_pickle=False) as archive:
        arrays = {name: archive[name] for name in archive.files}
    arrays["features"] = arrays["features"] + np.float32(1e-3)  # metadata and checksum kept
    with path.open("wb") as handle:
        np.savez(handle, **arrays)


def _another_slides_file(path: Path, other: Path) -> None:
    path.write_bytes(other.read_bytes())


@pytest.mark.parametrize("damage", [_truncate, _flip_feature_bytes, _another_slides_file])
def test_a_corrupt_or_foreign_cache_file_is_recomputed(
    damage, jobs: list[SlideFeatureJob], tmp_path: Path, counted: list[str]
) -> None:
    cache = FeatureCache(tmp_path)
    first = slide_features(jobs[:2], SPEC, cache, workers=1)
    key = first[jobs[0].slide].encoder_key
    path = cache.path(key, jobs[0])
    damage(path, cache.path(key, jobs[1]))
    assert cache.load(key, jobs[0]) is None
    again = slide_features(jobs[:2], SPEC, cache, workers=1)
    assert counted == [jobs[0].slide, jobs[1].slide, jobs[0].slide]  # only the damaged one
    np.testing.assert_array_equal(again[jobs[0].slide].features, first[jobs[0].slide].features)
    repaired = cache.load(key, jobs[0])
    assert repaired is not None and repaired.from_cache
    assert not list(path.parent.glob("*.tmp"))  # atomic writes leave no temporary file


def test_a_failing_slide_is_named_and_the_others_are_cached(
    jobs: list[SlideFeatureJob], tmp_path: Path
) -> None:
    missing = dataclasses.replace(jobs[1], slide="gone", path=tmp_path / "gone.svs")
    cache = FeatureCache(tmp_path / "cache")
    with pytest.raises(SlideError, match=r"failed for 1 slide\(s\)[\s\S]*gone:"):
        slide_features([jobs[0], missing], SPEC, cache, workers=1)
    key = encoder_key(SPEC.backbone, build_encoder(SPEC))
    assert cache.load(key, jobs[0]) is not None


def test_a_dask_cluster_gives_the_serial_features(
    jobs: list[SlideFeatureJob], tmp_path: Path
) -> None:
    """Through a scheduler address, as on a cluster (in-process workers keep the test fast)."""
    from distributed import LocalCluster

    serial = slide_features(jobs, SPEC, FeatureCache(tmp_path / "serial"), workers=1)
    order: list[str] = []
    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None
    ) as cluster:
        parallel = slide_features(
            jobs, SPEC, FeatureCache(tmp_path / "dask"), scheduler=cluster.scheduler_address,
            progress=lambda done, total, found: order.append(found.slide),
        )  # fmt: skip
    assert sorted(order) == sorted(job.slide for job in jobs)
    assert list(parallel) == [job.slide for job in jobs]  # job order, whatever finished first
    for job in jobs:
        assert not parallel[job.slide].from_cache
        np.testing.assert_array_equal(parallel[job.slide].xy, serial[job.slide].xy)
        np.testing.assert_allclose(
            parallel[job.slide].features, serial[job.slide].features, rtol=1e-5, atol=1e-6
        )


def test_an_unreachable_scheduler_is_a_config_error(
    jobs: list[SlideFeatureJob], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(feature_extraction, "SCHEDULER_TIMEOUT", "1s")
    with pytest.raises(
        ConfigError, match=r"cannot reach the Dask scheduler at 'tcp://127\.0\.0\.1:9'"
    ):
        slide_features(jobs, SPEC, FeatureCache(tmp_path), scheduler="tcp://127.0.0.1:9")
