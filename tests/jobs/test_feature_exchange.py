"""Differentiable gather / scatter between 2 gloo processes on CPU.

This file is also the worker script: started as rank r of 2 (torchrun's environment
variables), ``python test_feature_exchange.py OUT`` runs
:func:`worker` on every rank, which saves its tensors to ``OUT/rank<r>.pt``; the test compares
them with what the chain rule gives by hand.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import torch

COUNTS = [3, 2]  # rows per rank: unequal on purpose (padding inside the collectives)
DIM = 4


def weights() -> torch.Tensor:
    """The fixed ``(5, 4)`` weights of the loss ``sum(gathered * W)`` on rank 0."""
    return torch.arange(sum(COUNTS) * DIM, dtype=torch.float32).reshape(-1, DIM) / 7 - 1


def rows_of(rank: int) -> torch.Tensor:
    return torch.full((COUNTS[rank], DIM), float(rank + 1)) + torch.arange(DIM)


def worker(out: Path) -> None:
    import torch.distributed as dist

    from napari_wsi_ml.jobs.feature_exchange import (
        backward_at,
        broadcast_value,
        gather_rows,
        reduce_gradients,
        scatter_rows,
    )

    dist.init_process_group("gloo")
    rank = dist.get_rank()
    saved: dict[str, torch.Tensor] = {}

    # gather → loss on rank 0 → gradients scattered back
    local = rows_of(rank).requires_grad_(True)
    gathered = gather_rows(local)  # counts exchanged inside
    saved["gathered"] = gathered.detach().clone()
    loss = (gathered * weights()).sum() if rank == 0 else None
    backward_at(loss, gathered)
    saved["local_grad"] = local.grad.clone()

    # scatter from rank 0 → a loss on every rank → gradients gathered to rank 0
    full = (weights() if rank == 0 else torch.zeros(0, DIM)).requires_grad_(True)
    block = scatter_rows(full, COUNTS)
    saved["block"] = block.detach().clone()
    (block * (rank + 2)).sum().backward()
    saved["full_grad"] = full.grad.clone()

    # encoder-like parameters summed, aggregator-like ones taken from rank 0
    encoder = torch.nn.Parameter(torch.zeros(3))
    encoder.grad = torch.full((3,), float(rank + 1))
    head = torch.nn.Parameter(torch.zeros(2))
    head.grad = torch.full((2,), 10.0 * (rank + 1))
    unused = torch.nn.Parameter(torch.zeros(2))  # no gradient on any rank → zeros
    reduce_gradients([encoder, unused], [head])
    saved.update(encoder=encoder.grad, head=head.grad, unused=unused.grad)
    saved["loss"] = torch.tensor(broadcast_value(3.5 if rank == 0 else None))
    torch.save(saved, out / f"rank{rank}.pt")
    dist.destroy_process_group()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def launch_ranks(script: Path, out: Path, n: int = 2) -> list[subprocess.CompletedProcess]:
    """Run ``script OUT`` as ``n`` gloo ranks with torchrun's environment (env:// rendezvous).

    The processes are started directly, as torchrun would start them, without torchrun's own
    supervising process (one interpreter fewer to start on a busy machine).
    """
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
        stdout, stderr = proc.communicate(timeout=120)
        results.append(subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr))
    return results


def test_gather_and_scatter_backpropagate_between_two_gloo_processes(tmp_path: Path) -> None:
    for result in launch_ranks(Path(__file__), tmp_path):
        assert result.returncode == 0, result.stderr[-3000:]
    zero, one = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    w = weights()
    # forward: rank 0 holds both ranks' rows in rank order, rank 1 an empty block
    torch.testing.assert_close(zero["gathered"], torch.cat([rows_of(0), rows_of(1)]))
    assert one["gathered"].shape == (0, DIM)
    # backward: d sum(G * W) / d local_r = the rows of W that came from rank r
    torch.testing.assert_close(zero["local_grad"], w[:3], rtol=0, atol=1e-6)
    torch.testing.assert_close(one["local_grad"], w[3:], rtol=0, atol=1e-6)
    # scatter: rank r gets its rows; rank 0's gradient is each block's factor (r + 2)
    torch.testing.assert_close(zero["block"], w[:3])
    torch.testing.assert_close(one["block"], w[3:])
    expected = torch.cat([torch.full((3, DIM), 2.0), torch.full((2, DIM), 3.0)])
    torch.testing.assert_close(zero["full_grad"], expected)
    assert one["full_grad"].shape == (0, DIM)
    for saved in (zero, one):
        torch.testing.assert_close(saved["encoder"], torch.full((3,), 3.0))  # 1 + 2
        torch.testing.assert_close(saved["head"], torch.full((2,), 10.0))  # rank 0's
        torch.testing.assert_close(saved["unused"], torch.zeros(2))
        assert float(saved["loss"]) == 3.5


def test_single_process_is_the_identity() -> None:
    from napari_wsi_ml.jobs.feature_exchange import gather_rows, row_counts, scatter_rows

    x = torch.randn(4, 3, requires_grad=True)
    assert gather_rows(x) is x and scatter_rows(x, [4]) is x
    assert row_counts(4, torch.device("cpu")) == [4]


if __name__ == "__main__":
    worker(Path(sys.argv[1]))
