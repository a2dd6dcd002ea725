"""Torch patch datasets: items, determinism across workers and ranks, per-process slide handles,
unreadable patches skipped and counted."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from napari_wsi_ml.data import (
    RandomPatchSampler,
    grid_patches,
    plan_patch_read,
    read_patch,
    tissue_index,
)
from napari_wsi_ml.data.augment import Augmenter
from napari_wsi_ml.data.dataset import (
    OnlinePatchDataset,
    PatchDataset,
    collate_patches,
    make_loader,
)
from napari_wsi_ml.errors import ConfigError
from napari_wsi_ml.slide import open_slide

torch.set_num_threads(1)
NAMES = ("normal", "tumour")


@pytest.fixture(scope="module")
def plan_and_grid(pipeline_slide):
    with open_slide(pipeline_slide.path) as slide:
        plan = plan_patch_read(slide, patch_size=64, target_mpp=0.5)
        grid = grid_patches(slide, plan, label="tumour", label_names=NAMES)
    return plan, grid


@pytest.fixture(scope="module")
def sampler(pipeline_slide, plan_and_grid) -> RandomPatchSampler:
    plan, _ = plan_and_grid
    with open_slide(pipeline_slide.path) as slide:
        return RandomPatchSampler(slide, plan, seed=4, label="normal", label_names=NAMES)


def _keys(items) -> list[tuple]:
    return [
        (item["slide_index"], *item["xy"].tolist(), item["label"], item["image"].sum().item())
        for item in items
    ]


def test_patch_dataset_items_are_the_slide_pixels(pipeline_slide, plan_and_grid) -> None:
    plan, grid = plan_and_grid
    dataset = PatchDataset([grid, grid.subset([0, 1])])
    assert len(dataset) == len(grid) + 2 and dataset.label_names == NAMES
    item = dataset[len(grid) + 1]
    assert item["image"].shape == (3, 64, 64) and item["image"].dtype == torch.uint8
    assert item["slide"] == grid.slide_name and item["slide_index"] == 1
    assert item["xy"].tolist() == grid.xy[1].tolist() and item["label"] == 1
    with open_slide(pipeline_slide.path) as slide:
        expected = read_patch(slide, grid.xy[1], plan)
    assert np.array_equal(item["image"].permute(1, 2, 0).numpy(), expected)
    as_float = PatchDataset([grid], dtype=torch.float32)[1]["image"]
    assert torch.allclose(as_float * 255, item["image"].float(), atol=1e-3)
    with pytest.raises(IndexError):
        dataset[len(dataset)]


def test_patch_dataset_augmentations_follow_seed_epoch_and_index(plan_and_grid) -> None:
    _, grid = plan_and_grid
    dataset = PatchDataset([grid], transform=Augmenter(), seed=7)
    first = [dataset[i]["image"] for i in range(3)]
    assert all(torch.equal(a, dataset[i]["image"]) for i, a in enumerate(first))
    dataset.set_epoch(1)
    assert not torch.equal(first[0], dataset[0]["image"])
    other = PatchDataset([grid], transform=Augmenter(), seed=8)
    assert not torch.equal(first[0], other[0]["image"])


def test_handles_are_opened_lazily_and_never_pickled(plan_and_grid) -> None:
    _, grid = plan_and_grid
    dataset = PatchDataset([grid])
    assert len(dataset._pool) == 0
    dataset[0]
    assert len(dataset._pool) == 1
    copy = pickle.loads(pickle.dumps(dataset))
    assert len(copy._pool) == 0 and torch.equal(copy[0]["image"], dataset[0]["image"])
    dataset.close()
    assert len(dataset._pool) == 0
    with pytest.raises(ConfigError, match="slide file"):
        PatchDataset([grid.__class__(grid.xy, grid.labels, NAMES, grid.plan, "x")])


def test_online_patches_meet_tissue_and_change_every_epoch(pipeline_slide, sampler) -> None:
    dataset = OnlinePatchDataset([sampler], patches_per_slide=20, shard_size=8, seed=3)
    epoch0 = _keys(dataset)
    assert len(epoch0) == 20 and len(set(epoch0)) == 20
    assert _keys(dataset) == epoch0  # same seed and epoch: same patches
    dataset.set_epoch(1)
    epoch1 = _keys(dataset)
    assert {k[1:3] for k in epoch1}.isdisjoint({k[1:3] for k in epoch0})
    with open_slide(pipeline_slide.path) as slide:
        index = tissue_index(slide, sampler.plan)
    xy = np.array([k[1:3] for k in epoch0 + epoch1])
    assert (index.exact(xy, sampler.plan.extent) >= 0.4 - 1e-9).all()


def test_online_items_do_not_depend_on_how_work_is_split(sampler) -> None:
    options = {"patches_per_slide": 24, "shard_size": 5, "seed": 9, "transform": Augmenter()}
    whole = _keys(OnlinePatchDataset([sampler, sampler], **options))
    parts = [
        _keys(OnlinePatchDataset([sampler, sampler], rank=r, world_size=3, **options))
        for r in range(3)
    ]
    assert all(parts) and sorted(k for part in parts for k in part) == sorted(whole)
    assert len(whole) == 48


def test_loader_with_worker_processes_reproduces_the_single_process_items(sampler) -> None:
    online = OnlinePatchDataset(
        [sampler], patches_per_slide=12, shard_size=4, seed=1, transform=Augmenter()
    )

    def items(loader) -> list[tuple]:
        return sorted(key for batch in loader for key in _keys(_unbatch(batch)))

    single = items(make_loader(online, batch_size=4))
    loader = make_loader(online, batch_size=4, num_workers=2)
    assert items(loader) == single  # same patches and augmentations, each worker its own slide
    online.set_epoch(1)  # reaches the persistent workers
    assert items(loader) != single


def _unbatch(batch: dict) -> list[dict]:
    return [
        {
            "slide_index": int(batch["slide_index"][i]),
            "xy": batch["xy"][i],
            "label": int(batch["label"][i]),
            "image": batch["image"][i],
        }
        for i in range(len(batch["label"]))
    ]


def test_unreadable_patches_are_skipped_and_counted(pipeline_slide, tmp_path: Path) -> None:
    copy = tmp_path / "damaged.svs"
    copy.write_bytes(pipeline_slide.path.read_bytes())
    with open_slide(copy, cache_bytes=0) as slide:
        plan = plan_patch_read(slide, patch_size=64, target_mpp=0.25)
        page = slide._tiff._tiff_levels[0]  # damage level-0 tile (col 4, row 3)
        index = 3 * slide.geometries[0].tiles_across + 4
        offset, count = int(page.offsets[index]), int(page.bytecounts[index])
        grid = grid_patches(slide, plan, min_tissue=0.0).subset(np.arange(0, 40))
    with copy.open("r+b") as handle:
        handle.seek(offset)
        handle.write(b"\x00" * count)
    bad = np.array([[4 * 256 + 10, 3 * 256 + 10], [4 * 256 + 100, 3 * 256 + 60]])
    patches = grid.__class__(
        np.concatenate([grid.xy[:3], bad, grid.xy[3:6]]),
        np.zeros(8, dtype=np.int64),
        NAMES,
        plan,
        grid.slide_name,
        str(copy),
    )
    dataset = PatchDataset([patches], cache_bytes=0)
    assert dataset[3] is None and dataset[0] is not None
    batches = list(make_loader(dataset, batch_size=4, shuffle=False))
    assert [b["skipped"] for b in batches] == [1, 1]
    assert [len(b["label"]) for b in batches] == [3, 3]
    assert batches[0]["image"].shape == (3, 3, 64, 64)
    empty = collate_patches([None, None])
    assert empty["skipped"] == 2 and len(empty["label"]) == 0


def test_shuffle_order_depends_on_seed_and_epoch_and_splits_over_ranks(plan_and_grid) -> None:
    from napari_wsi_ml.data._torch_loader import EpochShuffleSampler

    _, grid = plan_and_grid
    dataset = PatchDataset([grid])
    order = list(EpochShuffleSampler(dataset, seed=1))
    assert sorted(order) == list(range(len(dataset))) and order != sorted(order)
    assert list(EpochShuffleSampler(dataset, seed=1)) == order
    ranks = [list(EpochShuffleSampler(dataset, seed=1, rank=r, world_size=3)) for r in range(3)]
    assert sorted(i for part in ranks for i in part) == sorted(order)
    assert [len(EpochShuffleSampler(dataset, 1, rank=r, world_size=3)) for r in range(3)] == [
        len(part) for part in ranks
    ]
    dataset.set_epoch(2)
    assert list(EpochShuffleSampler(dataset, seed=1)) != order
