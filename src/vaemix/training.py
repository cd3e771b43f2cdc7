"""The one training loop every model uses.

Seeded, device-aware, data held on the device as tensors (no DataLoader per batch), a
tqdm progress bar (redrawn at most every 30 s when stderr is not a terminal, so logs stay
short), per-epoch curves through dvclive written to a temporary directory that
replaces the final one only when training ends, and a hard stop naming the epoch, batch
and term when training diverges: a loss term or the gradient turns NaN or infinite, or
the loss rises past ``max_loss_growth`` times its first value (see ``_check_loss``).

Checkpoints. With ``checkpoint_every`` = N > 0 and a ``checkpoint_dir``, the loop saves
everything the rest of the run depends on every N epochs: model, optimizer and scheduler
state, the batch-order generator, the global torch / numpy / random states (the noise of
reparameterisation and Gumbel samples), the epoch, the curve history, the elapsed
training time and the first loss. A later call with the same ``resume_key`` (a digest of
params, data, initialisation and code, made by the caller) continues from it and ends
bit-identical to an uninterrupted run; a checkpoint with another key is ignored and
replaced. Models keep per-epoch state either in their state dict (parameters, buffers,
``get_extra_state``) or recompute it in ``start_epoch`` (e.g. a temperature schedule).
The caller deletes the checkpoint once its outputs are written (:func:`clear_checkpoint`).
"""

from __future__ import annotations

import math
import os
import random
import shutil
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from tqdm.auto import tqdm

from vaemix import distributed
from vaemix.augment import Augment, self_paced_mask
from vaemix.config import TRAINING
from vaemix.errors import NumericalError
from vaemix.io import atomic_dir, save_torch
from vaemix.schema import defaults

if TYPE_CHECKING:  # the models import this loop's helpers; the loop needs Model for types only
    from vaemix.models.base import Model

os.environ.setdefault("DVC_NO_ANALYTICS", "1")

EvalFn = Callable[["Model"], Mapping[str, float]]

# The progress bar redraws at most once a second on a terminal; in a log (CI, ``dvc repro >
# log``), where every redraw is a new line, at most once every 30 seconds.
TTY_INTERVAL, LOG_INTERVAL = 1.0, 30.0


def progress_interval(stream: Any) -> float:
    """Seconds between progress-bar redraws on ``stream`` (a terminal or not)."""
    isatty = getattr(stream, "isatty", None)
    return TTY_INTERVAL if callable(isatty) and isatty() else LOG_INTERVAL


@dataclass
class TrainConfig:
    epochs: int
    batch_size: int
    lr: float
    weight_decay: float = 0.0
    eval_every: int = 5
    seed: int = 0
    lr_decay: float = 1.0  # multiply the learning rate by this ...
    lr_decay_every: int = 10  # ... every this many epochs (VaDE: 0.9 every 10) ...
    lr_min: float = 0.0  # ... never below this (VaDE's code: max(0.9 lr, 0.0002) on MNIST)
    adam_eps: float = 1e-8  # Adam's epsilon (VaDE's code: 1e-4)
    optimizer: str = "adam"  # adam | sgd (with ``momentum``; DEC's, Xie et al. 2016)
    momentum: float = 0.0
    grad_clip: float | None = None  # max gradient norm; None = no clipping
    checkpoint_every: int = 0  # epochs between checkpoints; 0 = none
    # stop when the loss exceeds its first value by this many times max(|first|, 1)
    max_loss_growth: float | None = 1e4
    precision: str = "fp32"  # fp32 | bf16 (the loss's forward pass under torch.autocast)
    # weight of the cross-entropy to the start's partition kept through training (Anchor)
    anchor_weight: float = 0.0
    # the anchor's images augmented (vaemix.augment), its samples chosen self-paced
    augment_shift: float = 0.0
    augment_rotate: float = 0.0
    self_paced: bool = False
    relabel: bool = False   # the anchor's labels become the model's own argmax each epoch

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any], epochs: int, seed: int) -> TrainConfig:
        """From a params section: the training loop's keys (vaemix.config.TRAINING), their
        declared defaults where absent."""
        s = {**defaults(TRAINING), **{k: v for k, v in settings.items() if k in TRAINING}}
        return cls(
            epochs=epochs,
            batch_size=int(s["batch_size"]),
            lr=float(s["lr"]),
            weight_decay=float(s["weight_decay"]),
            eval_every=int(s["eval_every"]),
            seed=seed,
            lr_decay=float(s["lr_decay"]),
            lr_decay_every=int(s["lr_decay_every"]),
            lr_min=float(s["lr_min"]),
            adam_eps=float(s["adam_eps"]),
            optimizer=str(s["optimizer"]),
            momentum=float(s["momentum"]),
            grad_clip=_optional_float(s["grad_clip"]),
            checkpoint_every=int(s["checkpoint_every"] or 0),
            max_loss_growth=_optional_float(s["max_loss_growth"]),
            anchor_weight=float(s["anchor_weight"]),
            augment_shift=float(s["augment_shift"]),
            augment_rotate=float(s["augment_rotate"]),
            self_paced=bool(s["self_paced"]),
            relabel=bool(s["relabel"]),
        )

    @property
    def augment(self) -> Augment:
        """The augmentation of the warm-up's and the anchor's images."""
        return Augment(self.augment_shift, self.augment_rotate)


def _optional_float(value: Any) -> float | None:
    return None if value is None else float(value)


@dataclass
class Anchor:
    """The start's partition of the training points, kept as a term of the loss.

    A model started from a label-free clustering (``init_clusters: umap``) is warmed up on
    it (:func:`vaemix.models.init.self_train`); with an anchor, every training step also
    adds ``weight`` times the cross-entropy of the model's cluster posterior
    ``model.log_q_c(x)`` to ``labels`` (the ``anchor_ce`` curve). This is the pseudo-label
    self-training of DEC (Xie et al. 2016, sec. 3.1) and SCAN's self-labelling step (Van
    Gansbeke et al. 2020, sec. 2.3) with the start's hard labels held fixed: released, the
    models' own ELBOs drift away from the start (reports/benchmarks/n2d_start.md).

    With ``augment`` (images only), the cross-entropy is that of a randomly shifted and
    rotated copy of each image, the model's own loss stays on the clean one; with
    ``self_paced``, only the samples whose clean cross-entropy is below ASPC-DA's λ_t count
    in epoch t (:func:`vaemix.augment.self_paced_mask`, recomputed at each epoch's start).

    With ``relabel``, the labels are dynamic pseudo-labels: at each epoch's start they
    become the model's own most probable cluster of each clean image, argmax_c q(c | x_i),
    so the term trains the network to agree with its current clustering rather than with
    the start's. This is ASPC-DA's label update, which reassigns every sample to its
    nearest centre before each round of training (Guo et al. 2019, Alg. 1), and DynAE's
    dynamic pseudo-labels (Mrabah et al. 2020). The start only chooses where the
    self-training begins. A resumed run recomputes the labels from the restored model, which
    is what the uninterrupted run did at that epoch's start.
    """

    labels: Tensor  # [N] long, on the training data's device
    weight: float
    augment: Augment = field(default_factory=Augment)
    self_paced: bool = False
    relabel: bool = False

    def clean_log_q(self, model: Model, x_train: Tensor) -> Tensor:
        """ln q(c | x_i) [N, K] of the clean images in eval mode, on the labels' device."""
        was_training = model.training
        model.eval()
        log_q = batched(model.log_q_c, x_train).to(self.labels.device)
        model.train(was_training)
        return log_q

    def losses(self, log_q: Tensor) -> Tensor:
        """-ln q(c = label_i | x_i) [N] from ``log_q`` [N, K]."""
        return -log_q.gather(1, self.labels[:, None]).squeeze(1)

    def sample_losses(self, model: Model, x_train: Tensor) -> Tensor:
        """-ln q(c = label_i | x_i) [N] on the clean images, on the data's device."""
        return self.losses(self.clean_log_q(model, x_train))

    def cross_entropy(self, model: Model, xb: Tensor, idx: Tensor,
                      chosen: Tensor | None) -> Tensor:
        """The anchor's term on the batch ``idx``: mean cross-entropy of the (augmented)
        images to their labels over the batch's ``chosen`` [N] samples (all when None)."""
        log_q, labels = model.log_q_c(self.augment(xb)), self.labels[idx]
        if chosen is None:
            return F.nll_loss(log_q, labels)
        ce = F.nll_loss(log_q, labels, reduction="none")
        keep = chosen[idx].to(ce.dtype)
        return (ce * keep).sum() / keep.sum().clamp_min(1.0)


def make_optimizer(model: torch.nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """Adam (the default) or SGD with momentum, as ``config`` says."""
    if config.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum,
                               weight_decay=config.weight_decay)
    return torch.optim.Adam(model.parameters(), lr=config.lr,
                            weight_decay=config.weight_decay, eps=config.adam_eps)


@dataclass
class TrainResult:
    epochs: int
    train_seconds: float
    samples_per_second: float
    history: list[dict[str, float]] = field(default_factory=list)
    resumed_from: int = 0  # epochs restored from a checkpoint (0 = a fresh start)


def seed_everything(seed: int) -> None:
    """Seed torch, numpy and random, and ask torch for deterministic kernels."""
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


def _culprit(terms: Mapping[str, float], first: Mapping[str, float]) -> str | None:
    """The term other than the total ``loss`` that blew up: the first non-finite one, else
    the one that rose most above its first-batch value; None when none rose."""
    parts = {k: v for k, v in terms.items() if k != "loss"}
    for name, v in parts.items():
        if not math.isfinite(v):
            return name
    rises = {k: v - first[k] for k, v in parts.items() if k in first}
    name = max(rises, key=rises.__getitem__, default=None)
    return name if name is not None and rises[name] > 0 else None


def _check_finite(terms: Mapping[str, float], epoch: int, batch: int) -> None:
    for name, v in terms.items():
        if not math.isfinite(v):
            culprit = _culprit(terms, {}) if name == "loss" else None
            cause = f" (its term '{culprit}' is {terms[culprit]})" if culprit else ""
            raise NumericalError(
                f"training diverged: loss term '{name}' is {v} at epoch {epoch + 1}, "
                f"batch {batch + 1}{cause}; lower the learning rate or check the data"
            )


def _check_loss(terms: Mapping[str, float], first: Mapping[str, float], growth: float | None,
                epoch: int, batch: int) -> None:
    """Stop a run whose minimised loss has blown up while staying finite.

    The losses here are negative log-likelihood bounds in nats per example; an optimiser
    that works never drives them up by orders of magnitude. A run that does (e.g. a
    learning rate of 10) produces finite garbage for a few steps before float32 overflows,
    so it is stopped at the first batch whose loss exceeds the first batch's by more than
    ``growth * max(|first|, 1)``. ``terms`` and ``first`` are the batch's and the first
    batch's terms; the error names the term that rose most.
    """
    loss, first_loss = terms["loss"], first["loss"]
    if growth is not None and loss > first_loss + growth * max(abs(first_loss), 1.0):
        culprit = _culprit(terms, first)
        cause = (f"; its term '{culprit}' rose most, from {first[culprit]:.4g} to "
                 f"{terms[culprit]:.4g}" if culprit else "")
        raise NumericalError(
            f"training diverged: loss term 'loss' is {loss:.4g} at epoch {epoch + 1}, "
            f"batch {batch + 1}, more than {growth:g} times its first value "
            f"{first_loss:.4g}{cause}; lower the learning rate or check the data"
        )


def _check_gradient(model: Model, epoch: int, batch: int) -> float:
    """The total gradient norm; NaN or infinite stops training (Adam would turn it into
    NaN parameters or a silent zero step)."""
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    if not grads:
        return 0.0
    norm = float(torch.nn.utils.get_total_norm(grads))
    if not math.isfinite(norm):
        raise NumericalError(
            f"training diverged: the gradient of loss term 'loss' is {norm} at epoch "
            f"{epoch + 1}, batch {batch + 1}; lower the learning rate or check the data"
        )
    return norm


# --- checkpoints ------------------------------------------------------------------------

CHECKPOINT_FILE = "checkpoint.pt"


def _rng_state(gen: torch.Generator, device: torch.device) -> dict[str, Any]:
    state = {
        "batch_order": gen.get_state(),
        "torch": torch.get_rng_state(),
        "numpy": np.random.get_state(),
        "random": random.getstate(),
    }
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _set_rng_state(state: Mapping[str, Any], gen: torch.Generator, device: torch.device) -> None:
    gen.set_state(state["batch_order"])
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["random"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


def load_checkpoint(checkpoint_dir: str | os.PathLike, resume_key: str) -> dict[str, Any] | None:
    """The checkpoint in ``checkpoint_dir`` if it was made with ``resume_key``, else None
    (a checkpoint of other params, data or code is never resumed)."""
    path = Path(checkpoint_dir) / CHECKPOINT_FILE
    if not path.is_file():
        return None
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    except Exception:  # an unreadable checkpoint is as good as none
        return None
    if not isinstance(ckpt, dict) or ckpt.get("resume_key") != resume_key:
        return None
    return ckpt


def clear_checkpoint(checkpoint_dir: str | os.PathLike | None) -> None:
    """Delete a run's checkpoint (after its outputs are written)."""
    if checkpoint_dir is not None:
        shutil.rmtree(checkpoint_dir, ignore_errors=True)


def fit(
    model: Model,
    x_train: Tensor,
    config: TrainConfig,
    *,
    evaluate: EvalFn | None = None,
    curves_dir: str | os.PathLike | None = None,
    desc: str = "train",
    optimizer: torch.optim.Optimizer | None = None,
    checkpoint_dir: str | os.PathLike | None = None,
    resume_key: str = "",
    anchor: Anchor | None = None,
) -> TrainResult:
    """Train ``model`` on ``x_train`` (already on the model's device) with Adam.

    ``evaluate`` is called every ``config.eval_every`` epochs and after the last one; its
    numbers go to the curves as ``test/<name>``. Training terms go as ``train/<name>``.
    With ``checkpoint_dir`` and ``config.checkpoint_every`` > 0, checkpoints are saved there
    and a matching one (same ``resume_key``) is resumed (see the module docstring).
    With ``anchor``, its cross-entropy term is added to every step's loss (:class:`Anchor`).
    """
    run = _Run(model, x_train, config, evaluate, desc, optimizer, checkpoint_dir, resume_key,
               anchor)
    if curves_dir is None:
        return run(None)
    from dvclive import Live

    with atomic_dir(curves_dir) as tmp:
        with Live(dir=str(tmp), save_dvc_exp=False, dvcyaml=None, report=None) as live:
            result = run(live)
        return result


class _Run:
    """One call of :func:`fit`: the loop and the state a checkpoint holds."""

    def __init__(
        self,
        model: Model,
        x_train: Tensor,
        config: TrainConfig,
        evaluate: EvalFn | None,
        desc: str,
        optimizer: torch.optim.Optimizer | None,
        checkpoint_dir: str | os.PathLike | None,
        resume_key: str,
        anchor: Anchor | None = None,
    ) -> None:
        self.model, self.x_train, self.config, self.anchor = model, x_train, config, anchor
        self.evaluate, self.desc = evaluate, desc
        self.optimizer = optimizer or make_optimizer(model, config)
        self.scheduler = torch.optim.lr_scheduler.StepLR(
            self.optimizer, step_size=config.lr_decay_every, gamma=config.lr_decay
        )
        self.gen = torch.Generator(device="cpu").manual_seed(config.seed)
        self.checkpoint_dir = (
            Path(checkpoint_dir) if checkpoint_dir is not None and config.checkpoint_every > 0
            else None
        )
        self.resume_key = resume_key
        self.start = 0
        self.history: list[dict[str, float]] = []
        self.train_seconds = 0.0
        self.first_terms: dict[str, float] | None = None  # the first batch's loss terms
        self.chosen: Tensor | None = None   # the anchor's self-paced samples [N] bool
        # data-parallel under torchrun (vaemix.distributed): DDP around model.loss
        self.group = distributed.current()
        self.step = (distributed.wrap(model, x_train.device) if self.group is not None
                     else model.loss)

    def _save(self, next_epoch: int) -> None:
        assert self.checkpoint_dir is not None
        save_torch(self.checkpoint_dir / CHECKPOINT_FILE, {
            "resume_key": self.resume_key,
            "epoch": next_epoch,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "rng": _rng_state(self.gen, self.x_train.device),
            "history": self.history,
            "train_seconds": self.train_seconds,
            "first_terms": self.first_terms,
        })

    def _resume(self) -> None:
        if self.checkpoint_dir is None:
            return
        ckpt = load_checkpoint(self.checkpoint_dir, self.resume_key)
        if ckpt is not None and not 0 < ckpt["epoch"] < self.config.epochs:
            ckpt = None
        if self.group is not None:  # resume only when every rank can (e.g. multi-node)
            every = torch.tensor([0 if ckpt is None else 1])
            torch.distributed.all_reduce(every, op=torch.distributed.ReduceOp.MIN)
            ckpt = ckpt if int(every) else None
        if ckpt is None:
            if distributed.is_main():
                clear_checkpoint(self.checkpoint_dir)  # another run's, or unreadable
            return
        self.model.load_state_dict(ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.scheduler.load_state_dict(ckpt["scheduler"])
        _set_rng_state(ckpt["rng"], self.gen, self.x_train.device)
        self.start = int(ckpt["epoch"])
        self.history = list(ckpt["history"])
        self.train_seconds = float(ckpt["train_seconds"])
        self.first_terms = ckpt["first_terms"]
        print(f"{self.desc}: resuming from the checkpoint after epoch {self.start} "
              f"in {self.checkpoint_dir}", file=sys.stderr)

    def _terms(self, idx: Tensor) -> dict[str, Tensor]:
        """The model's loss terms on the batch ``idx``, plus the anchor's when there is one."""
        xb = self.x_train[idx]
        terms = self.step(xb, idx) if self.model.indexed_loss else self.step(xb)
        if self.anchor is None:
            return terms
        ce = self.anchor.cross_entropy(self.model, xb, idx, self.chosen)
        return {**terms, "anchor_ce": ce, "loss": terms["loss"] + self.anchor.weight * ce}

    def _choose(self, epoch: int) -> None:
        """The anchor's labels (relabelled, Anchor) and self-paced samples of ``epoch``, from
        one pass over the clean training images; nothing to do for a plain anchor."""
        self.chosen = None
        anchor = self.anchor
        if anchor is None or not (anchor.self_paced or anchor.relabel):
            return
        log_q = anchor.clean_log_q(self.model, self.x_train)
        if anchor.relabel:
            anchor.labels = log_q.argmax(1)
        if anchor.self_paced:
            progress = epoch / max(self.config.epochs - 1, 1)
            self.chosen = self_paced_mask(anchor.losses(log_q), progress)

    def __call__(self, live: Any) -> TrainResult:
        model, x_train, config = self.model, self.x_train, self.config
        self._resume()
        main = self.group is None or self.group.main
        if not main:  # noise of its own for each rank (batch order stays shared)
            torch.manual_seed(config.seed + 7919 * self.group.rank + 104729 * self.start)
        bf16 = config.precision == "bf16"
        if live is not None:  # the curves of the epochs restored from the checkpoint
            for record in self.history:
                for k, v in record.items():
                    live.log_metric(k, v, plot=True)
                live.next_step()
        n = len(x_train)
        n_batches = math.ceil(n / config.batch_size)
        interval = progress_interval(sys.stderr)
        bar = tqdm(range(self.start, config.epochs), desc=self.desc, unit="epoch",
                   dynamic_ncols=True, mininterval=interval, maxinterval=max(interval, 10.0),
                   initial=self.start, total=config.epochs, disable=not main, file=sys.stderr)
        epochs_run = config.epochs
        for epoch in bar:
            model.train()
            start = time.perf_counter()  # epoch hooks (e.g. DP-GMM refits) count as training time
            model.start_epoch(epoch, config.epochs)
            self._choose(epoch)
            sums, rows, stopped = self._epoch(epoch, n_batches, bf16)
            self.scheduler.step()
            for group in self.optimizer.param_groups:   # the floor: StepLR decays from it
                group["lr"] = max(group["lr"], config.lr_min)
            if x_train.device.type == "cuda":
                torch.cuda.synchronize(x_train.device)
            self.train_seconds += time.perf_counter() - start
            if stopped:   # the model's convergence test (before_step) ended the run here
                epochs_run = epoch + (1 if rows else 0)
                print(f"{self.desc}: converged in epoch {epoch + 1} (the model's stopping "
                      "rule)", file=sys.stderr)
            if rows:
                self._log_epoch(epoch, sums, rows, last=stopped or epoch + 1 == config.epochs,
                                live=live, bar=bar)
            if stopped:
                break
        model.eval()
        seen = n * epochs_run
        return TrainResult(
            epochs=epochs_run,
            train_seconds=self.train_seconds,
            samples_per_second=seen / self.train_seconds if self.train_seconds > 0 else 0.0,
            history=self.history,
            resumed_from=self.start,
        )

    def _epoch(self, epoch: int, n_batches: int, bf16: bool) -> tuple[dict[str, float], int, bool]:
        """One pass over the shuffled training set: the summed loss terms, the rows they
        cover, and whether the model's ``before_step`` stopped the run before a batch."""
        model, x_train, config = self.model, self.x_train, self.config
        order = torch.randperm(len(x_train), generator=self.gen).to(x_train.device)
        sums: dict[str, float] = {}
        rows, stopped = 0, False
        for b in range(n_batches):
            if model.before_step(epoch * n_batches + b, x_train):
                stopped = True
                break
            idx = distributed.shard(
                order[b * config.batch_size : (b + 1) * config.batch_size], self.group)
            with torch.autocast(x_train.device.type, torch.bfloat16, enabled=bf16):
                terms = self._terms(idx)
            if bf16:
                terms = {k: v.float() for k, v in terms.items()}
            values = {k: float(v.detach()) for k, v in terms.items()}
            _check_finite(values, epoch, b)
            if self.first_terms is None:
                self.first_terms = values
            _check_loss(values, self.first_terms, config.max_loss_growth, epoch, b)
            self.optimizer.zero_grad(set_to_none=True)
            terms["loss"].backward()
            _check_gradient(model, epoch, b)
            if config.grad_clip is not None:
                torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            self.optimizer.step()
            for k, v in values.items():
                sums[k] = sums.get(k, 0.0) + v * len(idx)
            rows += len(idx)
        rows = int(distributed.sum_over_ranks({"rows": rows}, self.group)["rows"])
        return distributed.sum_over_ranks(sums, self.group), rows, stopped

    def _log_epoch(self, epoch: int, sums: Mapping[str, float], rows: int, *, last: bool,
                   live: Any, bar: Any) -> None:
        """The epoch's curves (train terms averaged over its rows, the test probe every
        ``eval_every`` epochs and at the end) and its checkpoint."""
        config, main = self.config, self.group is None or self.group.main
        record = {f"train/{k}": v / rows for k, v in sums.items()}
        if (self.evaluate is not None and main
                and ((epoch + 1) % config.eval_every == 0 or last)):
            self.model.eval()
            record.update({f"test/{k}": float(v) for k, v in self.evaluate(self.model).items()})
        self.history.append(record)
        bar.set_postfix(loss=f"{record['train/loss']:.3f}", refresh=False)  # drawn next
        if live is not None:
            for k, v in record.items():
                live.log_metric(k, v, plot=True)
            live.next_step()
        if (self.checkpoint_dir is not None and not last and main
                and (epoch + 1) % config.checkpoint_every == 0):
            self._save(epoch + 1)
