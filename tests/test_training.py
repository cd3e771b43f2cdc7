"""The training loop: the divergence error names the term that blew up, and the progress
bar stays quiet when stderr is not a terminal."""

import io
import itertools
import sys

import numpy as np
import pytest
import torch
import tqdm.std

from vaemix.errors import NumericalError
from vaemix.models.base import Model, ModelSpec
from vaemix.training import (
    LOG_INTERVAL,
    TTY_INTERVAL,
    Anchor,
    TrainConfig,
    fit,
    progress_interval,
)


class _Terms(Model):
    """A model whose loss is the sum of two terms; ``blow`` says how one of them blows up
    at the second call: 'kl_z' grows by 10^8, or 'recon_nll' turns infinite."""

    def __init__(self, blow: str | None = None):
        super().__init__(ModelSpec(input_shape=(2,), latent_dim=1, n_clusters=1))
        self.w = torch.nn.Parameter(torch.ones(1))
        self.blow, self.calls = blow, 0

    def loss(self, x):
        self.calls += 1
        late = self.calls > 1
        recon = (self.w - 1.0).pow(2).sum() + 1.0 + 0.0 * x.sum()
        kl = self.w.sum() * 2.0
        if late and self.blow == "kl_z":
            kl = kl * 1e8
        if late and self.blow == "recon_nll":
            recon = recon * float("inf")
        return {"loss": recon + kl, "recon_nll": recon, "kl_z": kl}


def test_a_term_that_grows_past_the_limit_is_named():
    with pytest.raises(NumericalError, match=r"loss term 'loss' is 2e\+08 at epoch 1, batch 2, "
                                             r"more than 10000 times its first value 3; "
                                             r"its term 'kl_z' rose most, from 2 to 2e\+08; "
                                             r"lower the learning rate"):
        fit(_Terms("kl_z"), torch.zeros(8, 2), TrainConfig(epochs=2, batch_size=4, lr=0.0))


def test_a_term_that_turns_infinite_is_named():
    with pytest.raises(NumericalError, match=r"loss term 'loss' is inf at epoch 1, batch 2 "
                                             r"\(its term 'recon_nll' is inf\); lower"):
        fit(_Terms("recon_nll"), torch.zeros(8, 2), TrainConfig(epochs=2, batch_size=4, lr=0.0))


def test_a_healthy_run_does_not_stop():
    result = fit(_Terms(), torch.zeros(8, 2), TrainConfig(epochs=3, batch_size=4, lr=0.01))
    assert result.epochs == 3 and set(result.history[0]) == {
        "train/loss", "train/recon_nll", "train/kl_z"}


class _Softmax(_Terms):
    """_Terms with a cluster posterior q(c|x) = softmax(x W) over 3 clusters."""

    def __init__(self):
        super().__init__()
        self.proj = torch.nn.Parameter(torch.tensor([[1.0, -2.0, 0.5], [0.3, 0.0, -1.0]]))

    def log_q_c(self, x):
        return torch.log_softmax(x @ self.proj, dim=1)


def test_the_anchor_adds_its_weighted_cross_entropy_to_the_loss():
    x = torch.tensor([[0.5, 1.0], [-1.0, 2.0], [3.0, -0.5], [0.0, 0.0], [1.5, 1.5]])
    labels = torch.tensor([2, 0, 1, 1, 0])
    model = _Softmax()
    logits = (x @ model.proj).detach().numpy()  # independently: the mean of -ln softmax
    log_q = logits - np.log(np.exp(logits).sum(1, keepdims=True))
    ce = -np.mean(log_q[np.arange(5), labels.numpy()])
    result = fit(model, x, TrainConfig(epochs=1, batch_size=5, lr=0.0),
                 anchor=Anchor(labels, weight=2.5))
    record = result.history[0]
    assert record["train/anchor_ce"] == pytest.approx(ce, rel=1e-6)
    assert record["train/loss"] == pytest.approx(
        record["train/recon_nll"] + record["train/kl_z"] + 2.5 * ce, rel=1e-6)


def test_the_learning_rate_decays_to_its_floor_and_adam_takes_its_epsilon():
    """VaDE's schedule (Jiang et al.'s code): lr x 0.9 every epoch here, never below lr_min,
    the floor reached and held; Adam's epsilon from the settings."""
    model = _Terms()
    lrs = []

    def watch(m):
        lrs.append(optimizer.param_groups[0]["lr"])
        return {}

    optimizer = torch.optim.Adam(model.parameters(), lr=0.002, eps=1e-4)
    config = TrainConfig(epochs=6, batch_size=4, lr=0.002, lr_decay=0.5, lr_decay_every=1,
                         lr_min=0.0003, adam_eps=1e-4, eval_every=1)
    fit(model, torch.zeros(8, 2), config, evaluate=watch, optimizer=optimizer)
    assert lrs == pytest.approx([0.001, 0.0005, 0.0003, 0.0003, 0.0003, 0.0003])
    defaults = TrainConfig.from_settings({"epochs": 1, "batch_size": 4, "lr": 0.1,
                                          "adam_eps": 1e-4}, 1, 0)
    assert defaults.adam_eps == 1e-4 and defaults.lr_min == 0.0


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_progress_interval_depends_on_the_stream():
    assert progress_interval(_Terminal()) == TTY_INTERVAL
    assert progress_interval(io.StringIO()) == LOG_INTERVAL >= 30
    assert progress_interval(object()) == LOG_INTERVAL


def _redraws(monkeypatch, stream, epochs: int) -> list[str]:
    """The progress-bar lines ``fit`` writes to ``stream`` as stderr, with a clock that
    moves one second each time tqdm reads it (so each epoch seems to take seconds)."""
    clock = itertools.count(start=1000.0, step=1.0)
    monkeypatch.setattr(tqdm.std, "time", lambda: next(clock))
    monkeypatch.setattr(tqdm.std.tqdm, "monitor_interval", 0)
    monkeypatch.setattr(sys, "stderr", stream)
    fit(_Terms(), torch.zeros(8, 2), TrainConfig(epochs=epochs, batch_size=4, lr=0.01))
    return [line for line in stream.getvalue().replace("\r", "\n").splitlines() if line.strip()]


def test_progress_bar_writes_few_lines_into_a_log(monkeypatch):
    lines = _redraws(monkeypatch, io.StringIO(), epochs=60)
    assert len(lines) <= 6, lines  # not one per epoch
    assert "60/60" in lines[-1] and "loss=" in lines[-1]


def test_progress_bar_redraws_every_epoch_on_a_terminal(monkeypatch):
    lines = _redraws(monkeypatch, _Terminal(), epochs=60)
    assert len(lines) >= 30
    assert "60/60" in lines[-1]
