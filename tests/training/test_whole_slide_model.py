"""The whole-slide ResNet: pooling, class activation maps, checkpointing, cell geometry."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from whole_slide_helpers import purple_detector

from napari_wsi_ml.errors import ConfigError
from napari_wsi_ml.models.whole_slide import CellGeometry, cell_geometry, create_whole_slide_net
from napari_wsi_ml.training.whole_slide import check_resnet


def _images(n: int, height: int, width: int, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 3, height, width), dtype=torch.uint8, generator=generator)


@pytest.mark.parametrize("pooling", ["gmp", "gap"])
def test_pooling_output_shapes_and_cam_consistency(pooling):
    torch.manual_seed(0)
    model = create_whole_slide_net("resnet18", num_classes=3, pooling=pooling).eval()
    images = _images(2, 100, 161)
    with torch.no_grad():
        logits = model(images)
        features = model.feature_map(images)
        cams = model.class_activation_maps(features)
    assert logits.shape == (2, 3)
    assert features.shape == (2, 512, 4, 6)  # ceil(100 / 32), ceil(161 / 32)
    assert cams.shape == (2, 3, 4, 6)
    weight, bias = model.head.weight, model.head.bias
    if pooling == "gap":  # the mean of a class's map is its logit
        torch.testing.assert_close(cams.mean(dim=(2, 3)), logits, atol=1e-5, rtol=1e-5)
    else:  # GMP: the head on the per-channel maxima, not the maximum of the maps
        expected = features.amax(dim=(2, 3)) @ weight.T + bias
        torch.testing.assert_close(logits, expected, atol=1e-5, rtol=1e-5)
        assert not torch.allclose(cams.mean(dim=(2, 3)), logits, atol=1e-3)


def _step(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor) -> dict:
    model.train()
    loss = torch.nn.functional.cross_entropy(model(images), labels)
    loss.backward()
    grads = {name: p.grad.clone() for name, p in model.named_parameters()}
    buffers = {name: b.clone() for name, b in model.named_buffers()}
    return {"loss": loss.item(), "grads": grads, "buffers": buffers}


@pytest.mark.parametrize("checkpointing", ["stages", "blocks"])
def test_checkpointing_gives_the_same_gradients_and_norm_statistics(checkpointing):
    torch.manual_seed(1)
    plain = create_whole_slide_net("resnet18", num_classes=3)
    checked = copy.deepcopy(plain)
    checked.checkpointing = checkpointing
    images, labels = _images(2, 64, 96, seed=2), torch.tensor([0, 2])
    before = {n: b.clone() for n, b in plain.named_buffers()}
    one, two = _step(plain, images, labels), _step(checked, images, labels)
    assert one["loss"] == pytest.approx(two["loss"], abs=1e-6)
    assert len(one["grads"]) == len(two["grads"]) == 62
    for name, grad in one["grads"].items():
        torch.testing.assert_close(two["grads"][name], grad, atol=1e-5, rtol=0, msg=name)
    moved = 0
    for name, value in one["buffers"].items():  # updated once per step, as without checkpoints
        torch.testing.assert_close(two["buffers"][name], value, atol=1e-7, rtol=0, msg=name)
        moved += not torch.equal(value, before[name])
    assert moved == 60  # every batch norm's mean, variance and counter moved (20 norms)


def _saved_bytes(model: torch.nn.Module, images: torch.Tensor) -> int:
    """Bytes the forward pass keeps for the backward pass."""
    total = 0

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        nonlocal total
        total += tensor.numel() * tensor.element_size()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model(images).sum().backward()
    return total


def test_checkpointing_keeps_only_segment_inputs_for_backward():
    torch.manual_seed(0)
    images = _images(1, 128, 128)
    saved = {}
    for mode in ("off", "stages", "blocks"):
        model = create_whole_slide_net("resnet18", num_classes=2, checkpointing=mode).train()
        saved[mode] = _saved_bytes(model, images)
    assert saved["off"] > 8 * saved["stages"]
    assert saved["stages"] < saved["blocks"] < saved["off"] / 4


def test_cell_geometry_of_timm_resnets():
    for name in ("resnet18", "resnet50"):
        with torch.device("meta"):
            model = create_whole_slide_net(name, num_classes=2)
        assert model.geometry == CellGeometry(stride=32, offset=0.0)
    assert CellGeometry(32, 0.0).centre(3) == 96.5


@pytest.mark.parametrize("dot", [(50, 50), (84, 150), (150, 84), (212, 245), (303, 170)])
def test_cam_peak_cell_is_centred_on_what_it_sees(dot):
    """A purple dot on pink: the CAM peaks at the cell whose stated centre is nearest."""
    model = purple_detector()
    image = np.full((352, 384, 3), (235, 170, 215), dtype=np.uint8)  # eosin pink
    yy, xx = np.mgrid[:352, :384]
    image[(xx + 0.5 - dot[0]) ** 2 + (yy + 0.5 - dot[1]) ** 2 <= 9] = (90, 40, 160)
    batch = torch.from_numpy(image).permute(2, 0, 1)[None]
    with torch.no_grad():
        cam = model.class_activation_maps(model.feature_map(batch))[0, 1].numpy()
    row, col = np.unravel_index(np.argmax(cam), cam.shape)
    geometry = model.geometry
    assert abs(geometry.centre(col) - dot[0]) <= geometry.stride / 2
    assert abs(geometry.centre(row) - dot[1]) <= geometry.stride / 2
    assert cam.max() > 0 and np.count_nonzero(cam == cam.max()) == 1


def test_geometry_refuses_other_backbones():
    assert check_resnet("resnet34") == []
    (problem,) = check_resnet("efficientnet_b0")
    assert "not a ResNet" in problem
    (problem,) = check_resnet("resnet_18")
    assert "unknown timm model" in problem
    with pytest.raises(ConfigError, match="needs a timm ResNet"):
        create_whole_slide_net("efficientnet_b0", num_classes=2)
    with torch.device("meta"):
        resnet = create_whole_slide_net("resnet18", num_classes=2).backbone
    assert cell_geometry(resnet).stride == 32
