"""Data-parallel training over processes: PyTorch DistributedDataParallel under torchrun.

A training stage runs as ``nproc_per_node`` processes (``distributed.nproc_per_node`` in
params.yaml, or launched directly with ``torchrun``). Every process holds the whole
training set on its device and draws the same global batch order; rank r trains on rows
r, r + W, r + 2W, ... of each global batch (W processes), and DDP averages the gradients,
so with equal shards a step equals the single-process step on the global batch (the loss
is a batch mean). Noise (reparameterisation, Gumbel) is drawn per rank from its own seed.
Rank 0 alone evaluates, logs curves, checkpoints and writes outputs; the others only train.
Epoch hooks run on every rank; state they change in buffers (the prior a DP-GMM refit
writes in ``gmvae_dpgmm``) is rank 0's on every rank, as DDP copies rank 0's buffers before
each forward. State outside buffers (each rank's own fitted DP-GMM, which warm-starts its
next refit) may drift between ranks; only rank 0's is saved.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn

ENV_KEYS = ("WORLD_SIZE", "RANK", "LOCAL_RANK")


@dataclass(frozen=True)
class Group:
    """This process's place in the process group."""

    rank: int
    world: int
    local_rank: int

    @property
    def main(self) -> bool:
        return self.rank == 0


def launched() -> bool:
    """True inside a process started by torchrun with more than one process."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def current() -> Group | None:
    """The process group this process belongs to, or None when training alone."""
    if not (dist.is_available() and dist.is_initialized()):
        return None
    return Group(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)))


def is_main() -> bool:
    group = current()
    return group is None or group.main


def setup(device: torch.device, backend: str = "auto") -> tuple[Group | None, torch.device]:
    """Join the process group torchrun set up (a no-op when not launched by it).

    Returns the group and the device of this process: on CUDA, GPU ``LOCAL_RANK``.
    """
    if not launched():
        return None, device
    if not dist.is_initialized():
        if backend == "auto":
            backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend)
    group = current()
    assert group is not None
    if device.type == "cuda":
        device = torch.device("cuda", group.local_rank)
        torch.cuda.set_device(device)
    if group.main:
        print(f"data-parallel training over {group.world} processes "
              f"({dist.get_backend()}, {device.type})", file=sys.stderr)
    return group, device


def teardown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


class LossModule(nn.Module):
    """``model.loss`` as a forward pass, which is what DistributedDataParallel wraps."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: Tensor, *idx: Tensor) -> dict[str, Tensor]:
        return self.model.loss(x, *idx)   # idx: a model with an indexed loss


def wrap(model: nn.Module, device: torch.device) -> nn.Module:
    """DDP around ``model.loss``; parameters and buffers are broadcast from rank 0, here
    and (buffers) before every forward, so in-place prior updates (e.g. a DP-GMM refit)
    follow rank 0's."""
    ids = [device.index] if device.type == "cuda" else None
    # static_graph: the same parameters take part in every step, and a model may leave
    # some out of its loss altogether (e.g. a learnable prior that is switched off)
    return nn.parallel.DistributedDataParallel(LossModule(model), device_ids=ids,
                                               forward_sync_buffers=True, static_graph=True)


def shard(idx: Tensor, group: Group | None) -> Tensor:
    """This rank's rows of a global batch."""
    return idx if group is None else idx[group.rank :: group.world]


def sum_over_ranks(sums: Mapping[str, float], group: Group | None) -> dict[str, float]:
    """Add per-rank sums of logged terms (the epoch's curves cover every rank's rows)."""
    if group is None:
        return dict(sums)
    keys = sorted(sums)
    t = torch.tensor([sums[k] for k in keys], dtype=torch.float64)
    dist.all_reduce(t)
    return dict(zip(keys, t.tolist(), strict=True))


def relaunch(params: Mapping[str, Any], script: str, argv: list[str]) -> bool:
    """With ``distributed.nproc_per_node`` > 1 and not already under torchrun, run
    ``script argv`` as that many processes through ``torch.distributed.run`` and exit with
    its status. Returns False (nothing done) otherwise."""
    n = int(params["distributed"]["nproc_per_node"])
    if n <= 1 or launched():
        return False
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
           f"--nproc_per_node={n}", script, *argv]
    sys.exit(subprocess.call(cmd))
