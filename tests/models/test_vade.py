"""VaDE (Jiang et al. 2017): the responsibilities, the ELBO's terms, the initialisation
from the pretrained autoencoder, learning on separated clusters, and option errors."""

import math
from dataclasses import asdict

import numpy as np
import pytest
import torch

from tests.models.conftest import BLOB_SPEC
from vaemix.errors import DataError, ParamError
from vaemix.metrics import cluster_accuracy
from vaemix.models import MODELS, ModelSpec, build_model
from vaemix.models.vade import VaDE
from vaemix.training import TrainConfig, batched, fit, seed_everything


def small_spec(**options) -> ModelSpec:
    return ModelSpec(input_shape=(5,), latent_dim=2, n_clusters=3, hidden=(16,),
                     likelihood="gaussian", options=options)


def set_prior(model: VaDE, pi, mu, var) -> None:
    with torch.no_grad():
        model.pi_logits.copy_(torch.tensor(pi).log())
        model.mu_c.copy_(torch.tensor(mu))
        model.logvar_c_raw.copy_(torch.tensor(var).log())


PI = [0.2, 0.3, 0.5]
MU = [[0.0, 0.0], [2.0, -1.0], [-1.5, 3.0]]
VAR = [[1.0, 0.5], [0.3, 2.0], [1.5, 1.5]]


def bayes_posterior(z: np.ndarray) -> np.ndarray:
    """p(c|z) = pi_c N(z; mu_c, var_c) / sum_c' (...), written out with numpy."""
    pi, mu, var = np.array(PI), np.array(MU), np.array(VAR)
    dens = np.empty((len(z), len(pi)))
    for i, zi in enumerate(z):
        for c in range(len(pi)):
            norm = np.prod(1.0 / np.sqrt(2 * math.pi * var[c]))
            dens[i, c] = pi[c] * norm * np.exp(-0.5 * np.sum((zi - mu[c]) ** 2 / var[c]))
    return dens / dens.sum(1, keepdims=True)


def test_registered():
    assert MODELS["vade"] is VaDE and VaDE.clusters


def test_gamma_is_bayes_rule_and_normalised():
    model = VaDE(small_spec())
    set_prior(model, PI, MU, VAR)
    z = np.array([[0.1, -0.2], [1.5, -0.5], [-1.0, 2.0], [0.5, 1.0]], dtype=np.float32)
    gamma = model.log_gamma(torch.as_tensor(z)).exp().detach().numpy()
    assert np.allclose(gamma.sum(1), 1.0, atol=1e-6)
    assert np.allclose(gamma, bayes_posterior(z.astype(np.float64)), atol=1e-5)
    # far from every component the densities underflow in float32; log space does not
    far = model.log_gamma(torch.tensor([[300.0, -400.0]])).exp()
    assert torch.isfinite(far).all() and far.sum().item() == pytest.approx(1.0, abs=1e-6)


def test_pi_is_normalised_and_variances_stay_positive():
    model = VaDE(small_spec())
    with torch.no_grad():
        model.pi_logits.copy_(torch.tensor([5.0, -3.0, 1.0]))
        model.logvar_c_raw.fill_(-1e4)
    assert model.log_pi().exp().sum().item() == pytest.approx(1.0)
    assert (model.logvar_c().exp() > 0).all()
    assert torch.isfinite(model.log_gamma(torch.randn(4, 2))).all()


def test_expected_kl_matches_monte_carlo():
    torch.manual_seed(0)
    model = VaDE(small_spec())
    set_prior(model, PI, MU, VAR)
    mean = torch.tensor([[0.3, -0.4], [1.0, 1.0]])
    logvar = torch.tensor([[-0.5, 0.2], [0.0, -1.0]])
    log_gamma = torch.log(torch.tensor([[0.1, 0.6, 0.3], [0.5, 0.25, 0.25]]))
    closed = model.expected_kl_z(mean, logvar, log_gamma).detach()
    # E_{q(c|x)} E_{q(z|x)}[ln q(z|x) - ln p(z|c)] by Monte Carlo
    n = 200_000
    std = torch.exp(0.5 * logvar)
    z = mean + std * torch.randn(n, *mean.shape)  # [n, B, d]
    log_q = torch.distributions.Normal(mean, std).log_prob(z).sum(-1)  # [n, B]
    p = torch.distributions.Normal(torch.tensor(MU), torch.tensor(VAR).sqrt())
    log_p = p.log_prob(z.unsqueeze(-2)).sum(-1)  # [n, B, K]
    mc = (log_gamma.exp() * (log_q.unsqueeze(-1) - log_p)).sum(-1).mean(0)
    assert torch.allclose(closed, mc, atol=0.03), (closed, mc)


def test_elbo_is_jiang_eq_11():
    """evaluate's ELBO against the paper's closed form, written out with gamma by Bayes."""
    torch.manual_seed(1)
    model = VaDE(small_spec())
    set_prior(model, PI, MU, VAR)
    x = torch.randn(6, 5)
    torch.manual_seed(7)
    ev = model.evaluate(x)
    # the same reparameterised draw by hand
    torch.manual_seed(7)
    with torch.no_grad():
        m, lv = model.posterior(model.trunk(x))
        z = m + torch.exp(0.5 * lv) * torch.randn(m.shape)
        recon = model.likelihood.log_prob(x, model.decoder(z))
    m, s2, recon = m.numpy().astype(np.float64), np.exp(lv.numpy()), recon.numpy()
    gamma = bayes_posterior(z.numpy().astype(np.float64))
    mu, var, pi = np.array(MU), np.array(VAR), np.array(PI)
    quad = (np.log(var)[None] + s2[:, None] / var[None] + (m[:, None] - mu[None]) ** 2 / var[None])
    eq11 = (recon - 0.5 * (gamma * quad.sum(-1)).sum(-1)
            + (gamma * np.log(pi / gamma)).sum(-1) + 0.5 * (1 + np.log(s2)).sum(-1))
    assert ev["elbo"].shape == (6,) and torch.isfinite(ev["elbo"]).all()
    assert np.allclose(ev["test_recon_ll"].detach().numpy(), recon, atol=1e-5)
    assert np.allclose(ev["elbo"].detach().numpy(), eq11, rtol=1e-5, atol=1e-4)


def test_loss_terms_add_up():
    torch.manual_seed(2)
    model = VaDE(small_spec())
    terms = model.loss(torch.randn(8, 5))
    assert set(terms) == {"loss", "recon_nll", "kl_z", "kl_c"}
    assert all(t.dim() == 0 and torch.isfinite(t) for t in terms.values())
    total = terms["recon_nll"] + terms["kl_z"] + terms["kl_c"]
    assert terms["loss"].item() == pytest.approx(total.item(), rel=1e-5)
    assert terms["kl_z"].item() >= 0 and terms["kl_c"].item() >= -1e-6


def test_predict_modes_and_samples_shapes():
    torch.manual_seed(3)
    x = torch.randn(10, 5)
    mean_mode = VaDE(small_spec(predict="mean"))
    samples_mode = VaDE(small_spec(predict="samples", predict_samples=7))
    samples_mode.load_state_dict(mean_mode.state_dict())
    with torch.no_grad():  # a nearly deterministic q(z|x): both rules must agree
        for m in (mean_mode, samples_mode):
            m.posterior.logvar.weight.zero_()
            m.posterior.logvar.bias.fill_(-8.0)
    a, b = mean_mode.predict_clusters(x), samples_mode.predict_clusters(x)
    assert a.shape == (10,) and a.dtype == torch.int64 and torch.equal(a, b)
    assert torch.equal(b, samples_mode.predict_clusters(x))  # fixed-seed draws
    gen = torch.Generator().manual_seed(0)
    assert mean_mode.sample_per_cluster(4, generator=gen).shape == (3, 4, 5)
    conv = VaDE(ModelSpec(input_shape=(1, 28, 28), latent_dim=2, n_clusters=3, net="conv",
                          hidden=(32,)))
    assert conv.sample_per_cluster(2).shape == (3, 2, 1, 28, 28)
    assert conv.reconstruct(torch.rand(2, 1, 28, 28)).shape == (2, 1, 28, 28)


# --- learning on separated clusters -----------------------------------------------------

def test_initialise_from_autoencoder(blob_data):
    x, _, _, _, ae, path = blob_data
    model = VaDE(ModelSpec(**BLOB_SPEC, options={"init": "ae", "init_posterior_var": 0.01}))
    model.initialise(x, seed=0, ae_checkpoint=path)
    assert torch.allclose(model.encode(x), ae.encode(x), atol=1e-5)
    z = ae.encode(x).detach()
    pi = model.log_pi().exp().detach()
    assert pi.sum().item() == pytest.approx(1.0) and (pi > 0.1).all()  # five equal blobs
    # the component variances are those of the latents' clusters, and q(z|x) starts narrow
    var_c = model.logvar_c().exp().detach()
    assert var_c.mean().item() < z.var(0).mean().item()
    _, logvar = model.posterior(model.trunk(x))
    assert torch.allclose(logvar.exp().mean(0), 0.01 * var_c.mean(0), rtol=1e-3)


def test_learns_separated_clusters_from_the_autoencoder(blob_data):
    x, _, x_test, y_test, _, path = blob_data
    seed_everything(0)
    model = VaDE(ModelSpec(**BLOB_SPEC, options={"init": "ae"}))
    model.initialise(x, seed=0, ae_checkpoint=path)
    result = fit(model, x, TrainConfig(epochs=20, batch_size=64, lr=2e-3, seed=0))
    assert result.history[-1]["train/loss"] < result.history[0]["train/loss"]
    pred = batched(model.predict_clusters, x_test).numpy()
    assert cluster_accuracy(y_test, pred) >= 0.9
    assert len(np.unique(pred)) == 5
    assert torch.isfinite(batched(model.evaluate, x_test)["elbo"]).all()


def test_spectral_start_learns_separated_clusters(blob_data):
    x, _, x_test, y_test, _, path = blob_data
    seed_everything(0)
    model = VaDE(ModelSpec(**BLOB_SPEC, options={"init": "ae", "init_clusters": "spectral"}))
    model.initialise(x, seed=0, ae_checkpoint=path)
    fit(model, x, TrainConfig(epochs=10, batch_size=64, lr=2e-3, seed=0))
    pred = batched(model.predict_clusters, x_test).numpy()
    assert cluster_accuracy(y_test, pred) >= 0.9 and len(np.unique(pred)) == 5


def test_random_init_trains(blob_data):
    """Without pretraining VaDE is known to be weak (Jiang et al. 2017, sec. 3.3), so only
    check that it trains: the ELBO rises a lot and the predictions are valid clusters."""
    x, _, x_test, _, _, _ = blob_data
    seed_everything(0)
    model = VaDE(ModelSpec(**BLOB_SPEC, options={"init": "none"}))
    model.initialise(x, seed=0, ae_checkpoint="/nonexistent/ae.pt")  # not read
    result = fit(model, x, TrainConfig(epochs=10, batch_size=64, lr=2e-3, seed=0))
    assert result.history[-1]["train/loss"] < 0.5 * result.history[0]["train/loss"]
    pred = batched(model.predict_clusters, x_test).numpy()
    assert pred.min() >= 0 and pred.max() < 5 and len(np.unique(pred)) >= 2


# --- errors -----------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("options", "key"),
    [
        ({"init": "kmeans"}, "init"),
        ({"init_clusters": "dbscan"}, "init_clusters"),
        ({"predict": "mode"}, "predict"),
        ({"predict_samples": 0}, "predict_samples"),
        ({"predict_samples": -3}, "predict_samples"),
        ({"predict_samples": 2.5}, "predict_samples"),
        ({"init_posterior_var": 0}, "init_posterior_var"),
    ],
)
def test_bad_options_name_the_key(options, key):
    with pytest.raises(ParamError, match=rf"train\.vade\.{key}") as err:
        VaDE(small_spec(**options))
    assert "\n" not in str(err.value)


def test_missing_checkpoint_names_the_file(tmp_path):
    model = VaDE(small_spec(init="ae"))
    missing = tmp_path / "artifacts" / "ae" / "model.pt"
    with pytest.raises(DataError, match=str(missing)):
        model.initialise(torch.randn(10, 5), seed=0, ae_checkpoint=missing)


def test_mismatched_checkpoint_is_a_data_error(tmp_path):
    ae = build_model("ae", ModelSpec(input_shape=(5,), latent_dim=2, n_clusters=3, hidden=(8,)))
    path = tmp_path / "ae.pt"
    torch.save({"state_dict": ae.state_dict(), "spec": asdict(ae.spec), "method": "ae"}, path)
    with pytest.raises(DataError, match="ae.pt"):
        VaDE(small_spec()).initialise(torch.randn(10, 5), seed=0, ae_checkpoint=path)
