"""Data-parallel training (DistributedDataParallel, gloo on CPU, 2 processes).

1. The training loop under 2 processes ends where the single-process loop ends, on a
   deterministic model (the autoencoder), to float tolerance: each rank takes half of every
   global batch and DDP averages the gradients.
2. ``distributed.nproc_per_node: 2`` switches the real training stage to torchrun: a noisy
   model (VaDE) trains under 2 processes and exactly one set of outputs is written.
3. bf16 autocast trains to a finite loss close to the fp32 one.
"""

from __future__ import annotations

import json
import math
import socket
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from tests.tiny import edit_params, make_project, run_subprocess
from vaemix.models import ModelSpec, build_model
from vaemix.training import TrainConfig, fit, seed_everything

EPOCHS, BATCH = 3, 64


def blobs(n: int = 256, d: int = 12, seed: int = 0) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 3, size=(4, d))
    x = centres[rng.integers(0, 4, n)] + rng.normal(0, 0.5, size=(n, d))
    return torch.as_tensor(x, dtype=torch.float32)


def train_ae(x: torch.Tensor, precision: str = "fp32") -> tuple[dict, list]:
    seed_everything(0)
    spec = ModelSpec(input_shape=(x.shape[1],), latent_dim=2, n_clusters=4, hidden=(32, 32),
                     likelihood="gaussian")
    model = build_model("ae", spec)
    config = TrainConfig(epochs=EPOCHS, batch_size=BATCH, lr=1e-3, seed=0, precision=precision)
    result = fit(model, x, config, desc="ae")
    return {k: v.detach().clone() for k, v in model.state_dict().items()}, result.history


def _worker(rank: int, world: int, port: int, out: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                            world_size=world)
    try:
        state, history = train_ae(blobs())
        torch.save({"state": state, "history": history}, Path(out) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_match_one(tmp_path):
    mp.spawn(_worker, args=(2, free_port(), str(tmp_path)), nprocs=2, join=True)
    single, single_history = train_ae(blobs())
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1)]
    for name, value in single.items():
        for r in ranks:  # every rank holds the same model, and it is the single-process one
            torch.testing.assert_close(r["state"][name], value, rtol=1e-4, atol=1e-5)
    # the logged epoch losses cover both ranks' rows: the same curve as one process
    for got, want in zip(ranks[0]["history"], single_history, strict=True):
        assert math.isclose(got["train/loss"], want["train/loss"], rel_tol=1e-4)
    # and training did something: the parameters moved from their start
    seed_everything(0)
    start = build_model("ae", ModelSpec(input_shape=(12,), latent_dim=2, n_clusters=4,
                                        hidden=(32, 32), likelihood="gaussian")).state_dict()
    assert any(not torch.allclose(start[k], single[k]) for k in start)


@pytest.mark.slow
def test_stage_under_torchrun_writes_one_set_of_outputs(tmp_path):
    proj = make_project(tmp_path / "proj")
    for stage, args in (("prepare", ("spiral",)), ("pretrain", ("spiral", "ae"))):
        proc = run_subprocess(proj, stage, *args)
        assert proc.returncode == 0, proc.stderr[-2000:]
    edit_params(proj, {"distributed.nproc_per_node": 2, "train.vade.checkpoint_every": 1})
    proc = run_subprocess(proj, "train", "spiral", "vade", timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "data-parallel training over 2 processes (gloo, cpu)" in proc.stderr
    metrics = json.loads((proj / "reports/metrics/spiral/vade.json").read_text())
    assert 0.0 <= metrics["acc"] <= 1.0
    assert all(math.isfinite(v) for v in metrics.values() if isinstance(v, float))
    # one writer: no temp files left over, one curve per epoch, the checkpoint cleared
    leftovers = [p for p in proj.rglob("*") if ".tmp" in p.name]
    assert not leftovers, leftovers
    loss_tsv = proj / "reports/curves/spiral/vade/plots/metrics/train/loss.tsv"
    assert loss_tsv.read_text().count("\n") == 1 + metrics["epochs"]
    assert not list((proj / "checkpoints").rglob("*.pt"))


def test_bf16_autocast_trains_close_to_fp32():
    x = blobs()
    _, fp32 = train_ae(x)
    _, bf16 = train_ae(x, precision="bf16")
    assert all(math.isfinite(r["train/loss"]) for r in bf16)
    assert bf16[-1]["train/loss"] < bf16[0]["train/loss"]  # it learns
    assert math.isclose(bf16[-1]["train/loss"], fp32[-1]["train/loss"], rel_tol=0.05)
