"""The one training loop every model uses.

Seeded, device-aware, data held on the device as tensors (no DataLoader per batch), a
tqdm progress bar, per-epoch curves through dvclive written to a temporary directory that
replaces the final one only when training ends, and a hard stop naming the epoch, batch
and term when a loss turns NaN or infinite.
"""

from __future__ import annotations

import math
import os
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm

from vaemix.errors import NumericalError
from vaemix.io import atomic_dir
from vaemix.models.base import Model

os.environ.setdefault("DVC_NO_ANALYTICS", "1")

EvalFn = Callable[[Model], Mapping[str, float]]


@dataclass
class TrainConfig:
    epochs: int
    batch_size: int
    lr: float
    weight_decay: float = 0.0
    eval_every: int = 5
    seed: int = 0
    lr_decay: float = 1.0  # multiply the learning rate by this ...
    lr_decay_every: int = 10  # ... every this many epochs (VaDE: 0.9 every 10)
    grad_clip: float | None = None  # max gradient norm; None = no clipping

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any], epochs: int, seed: int) -> TrainConfig:
        return cls(
            epochs=epochs,
            batch_size=int(settings["batch_size"]),
            lr=float(settings["lr"]),
            weight_decay=float(settings.get("weight_decay", 0.0)),
            eval_every=int(settings.get("eval_every", 5)),
            seed=seed,
            lr_decay=float(settings.get("lr_decay", 1.0)),
            lr_decay_every=int(settings.get("lr_decay_every", 10)),
            grad_clip=None if settings.get("grad_clip") is None else float(settings["grad_clip"]),
        )


@dataclass
class TrainResult:
    epochs: int
    train_seconds: float
    samples_per_second: float
    history: list[dict[str, float]] = field(default_factory=list)


def seed_everything(seed: int) -> None:
    """Seed torch, numpy and random, and ask torch for deterministic kernels on CPU."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)


def to_tensor(x: np.ndarray, device: torch.device) -> Tensor:
    return torch.as_tensor(np.ascontiguousarray(x), dtype=torch.float32, device=device)


@torch.no_grad()
def batched(
    fn: Callable[[Tensor], Tensor | Mapping[str, Tensor]], x: Tensor, batch_size: int = 1024
) -> Any:
    """Apply ``fn`` to ``x`` in batches and concatenate (tensors or dicts of tensors), on CPU."""
    outs = [fn(x[i : i + batch_size]) for i in range(0, len(x), batch_size)]
    if isinstance(outs[0], Mapping):
        return {k: torch.cat([o[k].detach().cpu() for o in outs]) for k in outs[0]}
    return torch.cat([o.detach().cpu() for o in outs])


def _check_finite(terms: Mapping[str, Tensor], epoch: int, batch: int) -> None:
    for name, value in terms.items():
        v = float(value.detach())
        if not math.isfinite(v):
            raise NumericalError(
                f"training diverged: loss term '{name}' is {v} at epoch {epoch + 1}, "
                f"batch {batch + 1}; lower the learning rate or check the data"
            )


def fit(
    model: Model,
    x_train: Tensor,
    config: TrainConfig,
    *,
    evaluate: EvalFn | None = None,
    curves_dir: str | os.PathLike | None = None,
    desc: str = "train",
    optimizer: torch.optim.Optimizer | None = None,
) -> TrainResult:
    """Train ``model`` on ``x_train`` (already on the model's device) with Adam.

    ``evaluate`` is called every ``config.eval_every`` epochs and after the last one; its
    numbers go to the curves as ``test/<name>``. Training terms go as ``train/<name>``.
    """
    if curves_dir is None:
        return _fit(model, x_train, config, evaluate, None, desc, optimizer)
    from dvclive import Live

    with atomic_dir(curves_dir) as tmp:
        with Live(dir=str(tmp), save_dvc_exp=False, dvcyaml=None, report=None) as live:
            result = _fit(model, x_train, config, evaluate, live, desc, optimizer)
        return result


def _fit(
    model: Model,
    x_train: Tensor,
    config: TrainConfig,
    evaluate: EvalFn | None,
    live: Any,
    desc: str,
    optimizer: torch.optim.Optimizer | None,
) -> TrainResult:
    if optimizer is None:
        optimizer = torch.optim.Adam(
            model.parameters(), lr=config.lr, weight_decay=config.weight_decay
        )
    scheduler = torch.optim.lr_scheduler.StepLR(
        optimizer, step_size=config.lr_decay_every, gamma=config.lr_decay
    )
    gen = torch.Generator(device="cpu").manual_seed(config.seed)
    n = len(x_train)
    n_batches = math.ceil(n / config.batch_size)
    history: list[dict[str, float]] = []
    train_seconds = 0.0
    bar = tqdm(range(config.epochs), desc=desc, unit="epoch", dynamic_ncols=True, mininterval=1.0)
    for epoch in bar:
        model.train()
        start = time.perf_counter()  # epoch hooks (e.g. DP-GMM refits) count as training time
        model.start_epoch(epoch, config.epochs)
        order = torch.randperm(n, generator=gen).to(x_train.device)
        sums: dict[str, float] = {}
        for b in range(n_batches):
            idx = order[b * config.batch_size : (b + 1) * config.batch_size]
            terms = model.loss(x_train[idx])
            _check_finite(terms, epoch, b)
            optimizer.zero_grad(set_to_none=True)
            terms["loss"].backward()
            if config.grad_clip is not None:
                torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            optimizer.step()
            for k, v in terms.items():
                sums[k] = sums.get(k, 0.0) + float(v.detach()) * len(idx)
        scheduler.step()
        if x_train.device.type == "cuda":
            torch.cuda.synchronize(x_train.device)
        train_seconds += time.perf_counter() - start
        record = {f"train/{k}": v / n for k, v in sums.items()}
        last = epoch + 1 == config.epochs
        if evaluate is not None and ((epoch + 1) % config.eval_every == 0 or last):
            model.eval()
            record.update({f"test/{k}": float(v) for k, v in evaluate(model).items()})
        history.append(record)
        bar.set_postfix(loss=f"{record['train/loss']:.3f}")
        if live is not None:
            for k, v in record.items():
                live.log_metric(k, v, plot=True)
            live.next_step()
    model.eval()
    seen = n * config.epochs
    return TrainResult(
        epochs=config.epochs,
        train_seconds=train_seconds,
        samples_per_second=seen / train_seconds if train_seconds > 0 else 0.0,
        history=history,
    )
