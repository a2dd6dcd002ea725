"""The timm backbone factory: modes, local weights, unknown names."""

from __future__ import annotations

import pytest
import timm
import torch
from safetensors.torch import save_file
from torch import nn

from napari_wsi_ml.errors import ConfigError
from napari_wsi_ml.models import create_classifier, read_state_dict

BACKBONE = "resnet18"


def _step(model: nn.Module) -> None:
    optimizer = torch.optim.SGD(model.trainable_parameters(), lr=0.5)
    images = torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8)
    model.train()
    loss = nn.functional.cross_entropy(model(images), torch.tensor([0, 1, 0, 1]))
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()


def _clone(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def test_linear_probe_trains_only_the_head() -> None:
    torch.manual_seed(0)
    model = create_classifier(BACKBONE, num_classes=2, mode="linear_probe")
    backbone, head = _clone(model.backbone), _clone(model.head)
    _step(model)
    assert not model.backbone.training  # batch norm statistics stay fixed
    after = model.backbone.state_dict()
    assert all(torch.equal(backbone[k], after[k]) for k in backbone)  # running stats too
    assert not torch.equal(head["weight"], model.head.weight)
    assert len(model.trainable_parameters()) == 2  # head weight and bias


def test_finetune_trains_the_backbone() -> None:
    torch.manual_seed(0)
    model = create_classifier(BACKBONE, num_classes=3, mode="finetune")
    before = _clone(model.backbone)
    _step(model)
    assert model.backbone.training
    after = model.backbone.state_dict()
    assert not torch.equal(before["conv1.weight"], after["conv1.weight"])
    assert model.eval()(torch.zeros(1, 3, 32, 32, dtype=torch.uint8)).shape == (1, 3)


def test_uint8_and_float_inputs_agree() -> None:
    model = create_classifier(BACKBONE, num_classes=2).eval()
    images = torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8)
    with torch.no_grad():
        assert torch.allclose(model(images), model(images.float() / 255), atol=1e-5)


@pytest.mark.parametrize("suffix", [".safetensors", ".pth"])
def test_local_weights_load_and_head_keys_are_ignored(tmp_path, suffix: str) -> None:
    torch.manual_seed(123)
    source = timm.create_model(BACKBONE, num_classes=1000)  # a full model with its fc head
    path = tmp_path / f"weights{suffix}"
    if suffix == ".safetensors":
        save_file({k: v.contiguous() for k, v in source.state_dict().items()}, str(path))
    else:
        torch.save({"state_dict": {f"module.{k}": v for k, v in source.state_dict().items()}}, path)
    assert "fc.weight" in read_state_dict(path)
    torch.manual_seed(7)  # another random init, overwritten by the file
    model = create_classifier(BACKBONE, num_classes=2, weights=path)
    expected = source.state_dict()
    for key, value in model.backbone.state_dict().items():
        assert torch.equal(value, expected[key]), key


def test_weights_of_another_model_are_refused(tmp_path) -> None:
    path = tmp_path / "other.pth"
    torch.save(timm.create_model("resnet10t", num_classes=0).state_dict(), path)
    with pytest.raises(ConfigError, match="does not fit this backbone"):
        create_classifier(BACKBONE, num_classes=2, weights=path)
    with pytest.raises(ConfigError, match="does not exist"):
        create_classifier(BACKBONE, num_classes=2, weights=tmp_path / "missing.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a torch file")
    with pytest.raises(ConfigError, match="cannot read"):
        create_classifier(BACKBONE, num_classes=2, weights=tmp_path / "junk.pth")


def test_unknown_backbone_suggests_timm_names() -> None:
    with pytest.raises(ConfigError, match="unknown timm model 'resnet181'") as info:
        create_classifier("resnet181", num_classes=2)
    assert "'resnet18'" in str(info.value)
    with pytest.raises(ConfigError, match="mode"):
        create_classifier(BACKBONE, num_classes=2, mode="probe")
