"""An end-to-end step over 2 gloo processes has the single-process step's gradients.

This file is also the worker script: started as rank r of 2 (torchrun's environment
variables), ``python test_end_to_end_distributed.py OUT`` runs :func:`worker`, which encodes
its block of the step's tiles, lets rank 0 aggregate, and saves the gradients it ends with.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

GROUP_SIZES = (5, 2)  # tiles of slide 0 and slide 1: rank 0 gets 4 of slide 0, rank 1 the rest
LABELS = (2, 0)
CLASS_WEIGHTS = (1.0, 0.5, 2.0)


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Tiny models on 32 px tiles: one thread is as fast, and never oversubscribes the CPU."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def make_model(backbone: str = "resnet18", **options: object):
    from napari_wsi_ml.models.end_to_end import create_end_to_end_model

    torch.manual_seed(0)
    return create_end_to_end_model(
        backbone, num_classes=3, embed_dim=32, attention_dim=16, dropout=0.0,
        batchnorm="frozen", **options,
    )  # fmt: skip


def step_inputs() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The step's tiles ``(7, 3, 32, 32)`` uint8, their slide (group) and the slide labels."""
    rng = np.random.default_rng(1)
    images = torch.from_numpy(rng.integers(0, 256, (sum(GROUP_SIZES), 3, 32, 32), dtype=np.uint8))
    groups = torch.repeat_interleave(torch.arange(2), torch.tensor(GROUP_SIZES))
    return images, groups, torch.tensor(LABELS)


def loss_fn() -> nn.Module:
    return nn.CrossEntropyLoss(weight=torch.tensor(CLASS_WEIGHTS))


def gradients(model: nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def worker(out: Path) -> None:
    import torch.distributed as dist

    from napari_wsi_ml.training.end_to_end_data import Step
    from napari_wsi_ml.training.end_to_end_step import forward_backward

    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    model = make_model()
    images, groups, labels = step_inputs()
    step = Step(np.arange(2), np.arange(len(groups)), groups.numpy())
    mine, my_groups = step.share(rank, world)
    loss = forward_backward(
        model, images[torch.from_numpy(mine)], torch.from_numpy(my_groups), labels, loss_fn()
    )
    torch.save(
        {"loss": torch.tensor(loss), "n_tiles": torch.tensor(len(mine)), **gradients(model)},
        out / f"rank{rank}.pt",
    )
    dist.destroy_process_group()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def launch_ranks(script: Path, out: Path, n: int = 2) -> list[subprocess.CompletedProcess]:
    """Run ``script OUT`` as ``n`` gloo ranks with torchrun's environment (env:// rendezvous)."""
    common = {
        "WORLD_SIZE": str(n),
        "LOCAL_WORLD_SIZE": str(n),
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": str(free_port()),
        "GLOO_SOCKET_IFNAME": "lo",
        "OMP_NUM_THREADS": "1",
    }
    procs = []
    for rank in range(n):
        env = {**os.environ, **common, "RANK": str(rank), "LOCAL_RANK": str(rank)}
        procs.append(
            subprocess.Popen(
                [sys.executable, str(script), str(out)],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=env,
            )
        )
    results = []
    for proc in procs:
        stdout, stderr = proc.communicate(timeout=180)
        results.append(subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr))
    return results


def single_process_gradients(**options: object) -> tuple[float, dict[str, torch.Tensor]]:
    from napari_wsi_ml.training.end_to_end_step import forward_backward

    model = make_model(**options)  # type: ignore[arg-type]
    images, groups, labels = step_inputs()
    loss = forward_backward(model, images, groups, labels, loss_fn())
    return loss, gradients(model)


def test_two_process_step_has_the_single_process_gradients(tmp_path: Path) -> None:
    for result in launch_ranks(Path(__file__), tmp_path):
        assert result.returncode == 0, result.stderr[-3000:]
    loss, expected = single_process_gradients()
    assert set(expected) == {n for n, _ in make_model().named_parameters()}  # all have one
    for rank in (0, 1):
        saved = torch.load(tmp_path / f"rank{rank}.pt", weights_only=True)
        assert int(saved.pop("n_tiles")) == (4, 3)[rank]  # each rank encoded its own block
        assert abs(float(saved.pop("loss")) - loss) < 1e-6  # rank 0's loss, on every rank
        assert set(saved) == set(expected)
        for name, grad in expected.items():
            torch.testing.assert_close(saved[name], grad, rtol=0, atol=1e-5, msg=name)
    # the comparison is not between zeros: both kinds of parameter got real gradients
    assert expected["backbone.conv1.weight"].abs().max() > 1e-4
    assert expected["aggregator.classifier.weight"].abs().max() > 1e-4


def test_activation_checkpointing_keeps_the_gradients() -> None:
    loss, plain = single_process_gradients(backbone="test_resnet")
    loss_ckpt, checkpointed = single_process_gradients(backbone="test_resnet", checkpointing=True)
    assert loss_ckpt == loss
    for name, grad in plain.items():
        torch.testing.assert_close(checkpointed[name], grad, rtol=0, atol=1e-6, msg=name)


if __name__ == "__main__":
    worker(Path(sys.argv[1]))
