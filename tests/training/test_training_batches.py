"""Training batches (loader, per-batch augmentation on the device) and mixed precision on CPU.

CUDA is not needed: the mixed-precision path (autocast, loss scaling, skipped steps, scaler
state in checkpoints) runs on the CPU with bfloat16 by adding ``"cpu"`` to
``loops.AMP_DEVICE_TYPES``, which is exactly what ``amp: true`` does on CUDA with float16.
"""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch
from torch import nn

from napari_wsi_ml.data import grid_patches, plan_patch_read
from napari_wsi_ml.data.augment import Augmenter
from napari_wsi_ml.data.dataset import PatchDataset
from napari_wsi_ml.jobs.distributed import train_step
from napari_wsi_ml.models import create_classifier
from napari_wsi_ml.slide import open_slide
from napari_wsi_ml.training import loops
from napari_wsi_ml.training.trainer import Trainer

CPU = torch.device("cpu")
NAMES = ("normal", "tumour")


@pytest.fixture(scope="module")
def patches(synthetic_cohort):
    """40 grid patches (32 px at 1 µm/px) of one synthetic slide."""
    with open_slide(synthetic_cohort.slides[0].path) as slide:
        plan = plan_patch_read(slide, patch_size=32, target_mpp=1.0)
        grid = grid_patches(slide, plan, label="tumour", label_names=NAMES)
    return grid.subset(np.arange(40))


def _epoch(dataset: PatchDataset, *, workers: int, start: int = 0, augment=None) -> list:
    loader, sampler = loops.patch_loader(
        dataset, batch_size=8, num_workers=workers, seed=5, shuffle=True
    )
    if workers and sys.platform.startswith("linux"):
        assert loader.multiprocessing_context.get_start_method() == "fork"
    dataset.set_epoch(1)
    sampler.start_batch = start
    batches = loops.device_batches(loader, CPU, augment=augment, seed=5, epoch=1, start_batch=start)
    return [
        (position, batch["image"].clone(), batch["label"].clone()) for position, batch in batches
    ]


def test_batches_are_augmented_per_batch_from_seed_epoch_position(patches) -> None:
    dataset = PatchDataset([patches], seed=5)
    plain = _epoch(dataset, workers=0)
    augmented = _epoch(dataset, workers=0, augment=Augmenter())
    assert [p for p, _, _ in augmented] == [0, 1, 2, 3, 4]
    for (_, raw, labels), (position, image, same_labels) in zip(plain, augmented, strict=True):
        assert raw.dtype == torch.uint8 and image.dtype == torch.float32
        assert torch.equal(labels, same_labels)
        expected = Augmenter()(raw.float() / 255, loops.batch_generator(5, 1, position))
        assert torch.equal(image, expected)
        assert (image - raw.float() / 255).abs().mean() > 0.01  # really augmented
    other_epoch = Augmenter()(plain[0][1].float() / 255, loops.batch_generator(5, 2, 0))
    other_rank = Augmenter()(plain[0][1].float() / 255, loops.batch_generator(5, 1, 0, rank=1))
    assert not torch.equal(other_epoch, augmented[0][1])
    assert not torch.equal(other_rank, augmented[0][1])


def test_forked_workers_and_resumed_epochs_give_the_same_batches(patches) -> None:
    dataset = PatchDataset([patches], seed=5)
    alone = _epoch(dataset, workers=0, augment=Augmenter())
    forked = _epoch(dataset, workers=2, augment=Augmenter())
    resumed = _epoch(dataset, workers=1, start=2, augment=Augmenter())
    assert [p for p, _, _ in resumed] == [2, 3, 4]
    for reference, others in ((alone, forked), (alone[2:], resumed)):
        for (p, image, labels), (q, image2, labels2) in zip(reference, others, strict=True):
            assert p == q and torch.equal(image, image2) and torch.equal(labels, labels2)


def test_the_next_batch_is_fetched_before_the_current_one_is_handed_out() -> None:
    pulled = []

    def source():
        for k in range(3):
            pulled.append(k)
            yield {"image": torch.full((2, 3, 4, 4), k, dtype=torch.uint8), "label": torch.ones(2)}

    batches = loops.device_batches(source(), CPU)
    position, batch = next(batches)
    assert position == 0 and pulled == [0, 1]  # batch 1 is on its way while batch 0 trains
    assert int(batch["image"].max()) == 0
    assert [p for p, _ in batches] == [1, 2] and pulled == [0, 1, 2]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_batches_reach_the_gpu_augmented_as_on_the_cpu(patches) -> None:
    dataset = PatchDataset([patches], seed=5)
    dataset.set_epoch(0)
    on_cpu, on_gpu = (
        loops.device_batches(
            loops.patch_loader(dataset, batch_size=8, num_workers=1, seed=5, shuffle=True)[0],
            device,
            augment=Augmenter(),
            seed=5,
        )
        for device in (CPU, torch.device("cuda"))
    )
    for (p, cpu_batch), (q, gpu_batch) in zip(on_cpu, on_gpu, strict=True):
        assert p == q and gpu_batch["image"].device.type == "cuda"
        assert (gpu_batch["image"].cpu() - cpu_batch["image"]).abs().max() < 1e-4


def _model_and_trainer(amp: bool) -> tuple[nn.Module, Trainer]:
    torch.manual_seed(0)
    model = create_classifier("resnet18", num_classes=2)
    trainer = Trainer(model, model, lr=1e-3, weight_decay=0.0, total_steps=4, amp=amp, device=CPU)
    return model, trainer


def _batch() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    images = torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8, generator=generator)
    return images, torch.tensor([0, 1, 0, 1])


def test_amp_stays_off_on_the_cpu_by_default() -> None:
    model, trainer = _model_and_trainer(amp=True)
    assert not trainer.amp and not trainer.scaler.is_enabled()
    with loops.autocast(CPU, True):
        assert model.eval()(_batch()[0]).dtype == torch.float32


def test_mixed_precision_step_scales_skips_and_resumes(monkeypatch) -> None:
    monkeypatch.setattr(loops, "AMP_DEVICE_TYPES", ("cuda", "cpu"))
    model, trainer = _model_and_trainer(amp=True)
    assert trainer.amp and trainer.scaler.is_enabled() and trainer.scaler.get_scale() == 2.0**16
    computed_in = []
    model.backbone.conv1.register_forward_hook(lambda m, i, out: computed_in.append(out.dtype))
    loss_fn = nn.CrossEntropyLoss()
    before = [p.detach().clone() for p in model.parameters()]
    loss = train_step(trainer.net, _batch(), loss_fn, trainer.optimizer, trainer.scaler)
    assert computed_in == [torch.bfloat16] and torch.isfinite(loss)
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))
    assert trainer.scaler.get_scale() == 2.0**16  # no overflow: the scale stays

    def overflowing(logits, targets):
        return loss_fn(logits, targets) * float("inf")

    before = [p.detach().clone() for p in model.parameters()]
    train_step(trainer.net, _batch(), overflowing, trainer.optimizer, trainer.scaler)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))
    assert trainer.scaler.get_scale() == 2.0**15  # step skipped, scale halved

    state = trainer.state_dict()
    assert state["scaler"]["scale"] == 2.0**15
    _, resumed = _model_and_trainer(amp=True)
    resumed.load_state_dict(state)
    assert resumed.scaler.get_scale() == 2.0**15

    images, labels = _batch()
    batch = {"image": images, "label": labels, "xy": torch.zeros(4, 2), "slide_index": labels}
    mixed = loops.predict(model, [batch], CPU, amp=True)
    full = loops.predict(model, [batch], CPU, amp=False)
    assert mixed["probs"].dtype == np.float32
    np.testing.assert_allclose(mixed["probs"].sum(axis=1), 1.0, atol=1e-6)
    assert np.abs(mixed["probs"] - full["probs"]).max() < 0.05  # bfloat16 rounding only
    assert not np.array_equal(mixed["probs"], full["probs"])  # but really in bfloat16
