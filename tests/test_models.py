"""The autoencoders and the shared training loop."""

import pytest
import torch

from tests.conftest import blobs
from vaemix.errors import NumericalError, ParamError
from vaemix.models import MODELS, ModelSpec, build_model
from vaemix.models.base import Model
from vaemix.training import TrainConfig, batched, fit, seed_everything


@pytest.mark.parametrize("name", sorted(MODELS))
def test_model_interface(name):
    spec = ModelSpec(input_shape=(1, 28, 28), latent_dim=3, n_clusters=4, hidden=(32, 16))
    model = build_model(name, spec)
    x = torch.rand(6, 1, 28, 28)
    if model.indexed_loss:   # per-example state (DEC's target), set before the first step
        model.before_step(0, x)
        terms = model.loss(x, torch.arange(6))
    else:
        terms = model.loss(x)
    assert terms["loss"].dim() == 0 and torch.isfinite(terms["loss"])
    ev = model.evaluate(x)
    assert all(v.shape == (6,) for v in ev.values()) and ev
    assert model.encode(x).shape == (6, 3)
    if model.reconstructs:
        assert ev["test_recon_ll"].shape == (6,) and (ev["test_recon_ll"] < 0).all()
        assert model.reconstruct(x).shape == x.shape
        assert ((model.reconstruct(x) >= 0) & (model.reconstruct(x) <= 1)).all()


def test_vae_elbo_below_reconstruction_term():
    spec = ModelSpec(input_shape=(5,), latent_dim=2, n_clusters=2, hidden=(8,), likelihood="gaussian")
    model = build_model("vae", spec)
    torch.manual_seed(0)
    ev = model.evaluate(torch.randn(20, 5))
    assert (ev["elbo"] <= ev["test_recon_ll"] + 1e-6).all()  # the KL is non-negative


@pytest.mark.parametrize("name", ["ae", "vae"])
def test_training_improves_the_objective(name):
    seed_everything(0)
    x, _ = blobs(100, 3, 6, seed=0)
    spec = ModelSpec(input_shape=(6,), latent_dim=2, n_clusters=3, hidden=(32, 32), likelihood="gaussian")
    model = build_model(name, spec)
    result = fit(model, torch.as_tensor(x), TrainConfig(epochs=15, batch_size=32, lr=3e-3))
    losses = [h["train/loss"] for h in result.history]
    assert losses[-1] < losses[0] - 1.0
    assert result.samples_per_second > 0 and result.epochs == 15


def test_training_is_deterministic_given_the_seed():
    x, _ = blobs(50, 2, 4, seed=1)
    spec = ModelSpec(input_shape=(4,), latent_dim=2, n_clusters=2, hidden=(16,), likelihood="gaussian")
    outs = []
    for _ in range(2):
        seed_everything(3)
        model = build_model("vae", spec)
        fit(model, torch.as_tensor(x), TrainConfig(epochs=3, batch_size=16, lr=1e-3, seed=3))
        outs.append(batched(model.encode, torch.as_tensor(x)))
    assert torch.equal(outs[0], outs[1])


def test_seed_everything_turns_on_deterministic_kernels_in_warn_only_mode():
    torch.use_deterministic_algorithms(False)
    try:
        seed_everything(0)
        assert torch.are_deterministic_algorithms_enabled()
        assert torch.is_deterministic_algorithms_warn_only_enabled()
        a = torch.rand(3)
        seed_everything(0)
        assert torch.equal(a, torch.rand(3))
    finally:
        torch.use_deterministic_algorithms(True, warn_only=True)


class _Exploding(Model):
    def __init__(self):
        super().__init__(ModelSpec(input_shape=(2,), latent_dim=1, n_clusters=1))
        self.w = torch.nn.Parameter(torch.ones(1))

    def loss(self, x):
        value = self.w.sum() * (float("nan") if self.w.grad is not None else 1.0)
        return {"loss": value, "recon_nll": value}


def test_nan_loss_stops_training_and_names_epoch_batch_term():
    with pytest.raises(NumericalError, match=r"'loss' is nan at epoch 1, batch 2"):
        fit(_Exploding(), torch.zeros(8, 2), TrainConfig(epochs=2, batch_size=4, lr=0.1))


def test_ae_then_gmm_separates_well_separated_clusters():
    """The learning test of the spine: ae + gmm on latents reaches ACC >= 0.9."""
    from vaemix.baselines import fit_baseline
    from vaemix.metrics import cluster_accuracy

    seed_everything(0)
    x, y = blobs(150, 4, 10, seed=2)
    x_tr, y_tr, x_te, y_te = x[:450], y[:450], x[450:], y[450:]
    spec = ModelSpec(input_shape=(10,), latent_dim=2, n_clusters=4, hidden=(64, 64), likelihood="gaussian")
    model = build_model("ae", spec)
    fit(model, torch.as_tensor(x_tr), TrainConfig(epochs=40, batch_size=32, lr=2e-3))
    z_tr = batched(model.encode, torch.as_tensor(x_tr)).numpy()
    z_te = batched(model.encode, torch.as_tensor(x_te)).numpy()
    gmm = fit_baseline("gmm", z_tr, 4, {"covariance_type": "diag", "n_init": 3, "max_iter": 200}, seed=0)
    assert cluster_accuracy(y_tr, gmm.predict(z_tr)) >= 0.9
    assert cluster_accuracy(y_te, gmm.predict(z_te)) >= 0.9


def test_denoising_ae_masks_the_input_but_scores_the_clean_one():
    spec = ModelSpec(input_shape=(12,), latent_dim=2, n_clusters=2, hidden=(8,),
                     likelihood="bernoulli", options={"input_dropout": 0.5})
    ae = build_model("ae", spec)
    x = torch.rand(9, 12)
    torch.manual_seed(4)
    got = ae.loss(x)["loss"]
    torch.manual_seed(4)
    mask = torch.rand_like(x) >= 0.5
    want = -ae.likelihood.log_prob(x, ae.decoder(ae.encode(x * mask))).mean()
    torch.testing.assert_close(got, want)
    assert not torch.allclose(got, -ae.evaluate(x)["test_recon_ll"].mean())


@pytest.mark.parametrize("value", [-0.1, 1.0, "lots", True])
def test_denoising_ae_rejects_a_bad_dropout(value):
    spec = ModelSpec(input_shape=(4,), latent_dim=2, n_clusters=2, hidden=(8,),
                     options={"input_dropout": value})
    with pytest.raises(ParamError, match=r"'pretrain\.ae\.input_dropout'"):
        build_model("ae", spec)


class _InfiniteGradient(Model):
    """A finite loss, sqrt(w) at w = 0, whose gradient is infinite."""

    def __init__(self):
        super().__init__(ModelSpec(input_shape=(2,), latent_dim=1, n_clusters=1))
        self.w = torch.nn.Parameter(torch.zeros(1))

    def loss(self, x):
        return {"loss": self.w.sqrt().sum() + 0.0 * x.sum()}


def test_infinite_gradient_stops_training_before_the_step():
    model = _InfiniteGradient()
    with pytest.raises(NumericalError, match=r"gradient of loss term 'loss' is inf at epoch 1, batch 1"):
        fit(model, torch.zeros(8, 2), TrainConfig(epochs=2, batch_size=4, lr=0.1))
    assert torch.equal(model.w.detach(), torch.zeros(1))  # no step was taken


def test_loss_blowing_up_while_finite_stops_training():
    class Growing(_InfiniteGradient):
        def loss(self, x):
            self.calls = getattr(self, "calls", 0) + 1
            return {"loss": (self.w + 1.0).sum() * 10.0 ** (5 * self.calls) + 0.0 * x.sum()}

    with pytest.raises(NumericalError, match=r"'loss' is 1e\+10 at epoch 1, batch 2, more than "
                                             r"10000 times its first value 1e\+05"):
        fit(Growing(), torch.zeros(8, 2), TrainConfig(epochs=2, batch_size=4, lr=0.0))


class _StopsAtStep5(Model):
    """A model whose stopping rule fires before step 5 (as DEC's tolerance does)."""

    def __init__(self) -> None:
        super().__init__(ModelSpec(input_shape=(4,), latent_dim=2, n_clusters=2))
        self.lin = torch.nn.Linear(4, 2)
        self.steps: list[int] = []

    def before_step(self, step: int, x_train: torch.Tensor) -> bool:
        self.steps.append(step)
        return step == 5

    def loss(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        loss = self.lin(x).pow(2).mean()
        return {"loss": loss}


def test_the_loop_stops_where_the_model_says_and_records_the_epochs_run():
    x = torch.randn(8, 4)   # batch 2: four steps an epoch, the stop before the 6th step
    model = _StopsAtStep5()
    result = fit(model, x, TrainConfig(epochs=10, batch_size=2, lr=1e-2, seed=0))
    assert model.steps == [0, 1, 2, 3, 4, 5]   # counted over the whole run
    assert result.epochs == 2 and len(result.history) == 2   # the second epoch, cut short
    model = _StopsAtStep5()
    result = fit(model, x, TrainConfig(epochs=10, batch_size=8, lr=1e-2, seed=0))
    assert result.epochs == 5 and len(result.history) == 5   # step 5 opens epoch 6: not run


def test_the_registry_finds_methods_by_their_declaration_and_imports_them_by_name():
    import sys

    from vaemix.models import model_class
    from vaemix.registry import method_names

    names = method_names()
    assert {"vade", "dmvae", "dec", "idec"} <= set(names)
    assert not {"base", "init", "ae"} & set(names)   # shared code, not methods
    assert list(MODELS)[:3] == ["ae", "ae_da", "vae"] and set(names) <= set(MODELS)
    with pytest.raises(KeyError, match="unknown method 'foo'"):
        model_class("foo")
    assert model_class("vade").__name__ == "VaDE" and "vaemix.models.vade" in sys.modules
