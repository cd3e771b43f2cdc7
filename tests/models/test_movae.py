"""Mixture of VAEs with a manager (Zeldes 2018): batched experts, balance term, learning."""

import math

import numpy as np
import pytest
import torch
from torch import nn

from tests.conftest import blobs
from vaemix.errors import ParamError
from vaemix.metrics import cluster_accuracy
from vaemix.models import MODELS, ModelSpec
from vaemix.models.movae import MoVAE, balance_cv2, balance_kl
from vaemix.networks import BatchedLinear
from vaemix.training import TrainConfig, fit, seed_everything


def members(seq: nn.Sequential, k: int) -> nn.Sequential:
    """The k-th expert of a batched MLP as an ordinary nn.Sequential of nn.Linear."""
    return nn.Sequential(*(m.member(k) if isinstance(m, BatchedLinear) else m for m in seq))


def test_registered():
    assert MODELS["movae"] is MoVAE and MoVAE.clusters


def test_mlp_experts_batched_equal_a_loop_over_experts():
    torch.manual_seed(0)
    spec = ModelSpec((2, 3, 4), latent_dim=3, n_clusters=4, likelihood="gaussian",
                     options={"expert_hidden": [16, 8], "manager_hidden": [8]})
    model = MoVAE(spec)
    x = torch.randn(5, 2, 3, 4)
    mean, logvar = model.expert_posteriors(x)
    z = torch.randn(4, 5, 3)
    out = model.expert_decode(z)
    assert mean.shape == logvar.shape == (4, 5, 3) and out.shape == (4, 5, 2, 3, 4)
    enc = [nn.Sequential(members(model.encoders[0], k), model.encoders[1].member(k))
           for k in range(4)]
    for k in range(4):
        m_k, lv_k = enc[k](x.flatten(1)).chunk(2, dim=-1)
        torch.testing.assert_close(mean[k], m_k, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(logvar[k], lv_k.clamp(-9.0, 4.0), rtol=1e-5, atol=1e-5)
        dec_k = members(model.decoders, k)(z[k]).view(5, 2, 3, 4)
        torch.testing.assert_close(out[k], dec_k, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(mean[0], mean[1])  # independent weights per expert


def test_conv_experts_batched_equal_a_loop_over_experts():
    torch.manual_seed(0)
    spec = ModelSpec((1, 28, 28), latent_dim=2, n_clusters=3, net="conv", hidden=(8,),
                     options={"expert_hidden": [8], "manager_hidden": [8]})
    model = MoVAE(spec)
    x = torch.rand(4, 1, 28, 28)
    mean, logvar = model.expert_posteriors(x)
    z = torch.randn(3, 4, 2)
    out = model.expert_decode(z)
    assert mean.shape == (3, 4, 2) and out.shape == (3, 4, 1, 28, 28)
    for k in range(3):
        m_k, lv_k = model.encoders.member(k)(x)
        torch.testing.assert_close(mean[k], m_k, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(logvar[k], lv_k, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(out[k], model.decoders.member(k)(z[k]), rtol=1e-5, atol=1e-5)
    assert not torch.allclose(out[0], out[1])


def test_conv_state_dict_round_trip():
    spec = ModelSpec((3, 32, 32), latent_dim=2, n_clusters=2, net="conv", hidden=(8,),
                     likelihood="gaussian", options={"expert_hidden": [8], "manager_hidden": [8]})
    torch.manual_seed(0)
    a = MoVAE(spec)
    torch.manual_seed(1)
    b = MoVAE(spec)
    b.load_state_dict(a.state_dict())
    x = torch.rand(3, 3, 32, 32)
    torch.testing.assert_close(a.reconstruct(x), b.reconstruct(x))
    assert a.likelihood.logvar.shape == (2, 1, 3, 32, 32)  # one variance per expert


@pytest.mark.parametrize("term", [balance_cv2, lambda p: balance_kl(p.clamp_min(1e-30).log())])
def test_balance_is_zero_at_a_uniform_batch_average_and_positive_otherwise(term):
    k = 4
    assert float(term(torch.full((6, k), 1 / k))) == pytest.approx(0.0, abs=1e-6)
    # each example sent to one expert, but the batch uses all experts equally
    assert float(term(torch.eye(k).repeat(2, 1))) == pytest.approx(0.0, abs=1e-6)
    skewed = torch.softmax(torch.tensor([[2.0, 0.0, 0.0, 0.0]]).repeat(5, 1), -1)
    collapsed = torch.eye(k)[[0, 0, 0, 0, 0]]
    assert 0 < float(term(skewed)) < float(term(collapsed))
    # the maxima: CV^2 = K - 1 and KL = ln K when every example goes to one expert
    assert float(term(collapsed)) == pytest.approx(k - 1 if term is balance_cv2 else math.log(k))


def test_manager_learns_from_the_weighted_elbo_alone():
    spec = ModelSpec((6,), latent_dim=2, n_clusters=3, likelihood="gaussian",
                     options={"expert_hidden": [8], "manager_hidden": [8], "balance_weight": 0.0})
    model = MoVAE(spec)
    terms = model.loss(torch.randn(10, 6))
    assert set(terms) == {"loss", "weighted_nelbo", "balance", "recon_nll", "kl"}
    torch.testing.assert_close(terms["loss"], terms["weighted_nelbo"])
    torch.testing.assert_close(terms["weighted_nelbo"], terms["recon_nll"] + terms["kl"])
    terms["loss"].backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.manager.parameters())


def test_interface_shapes_and_mixture_bound():
    torch.manual_seed(0)
    spec = ModelSpec((1, 8, 8), latent_dim=2, n_clusters=3,
                     options={"expert_hidden": [16], "manager_hidden": [16]})
    model = MoVAE(spec)
    x = torch.rand(7, 1, 8, 8)
    ev = model.evaluate(x)
    assert ev["elbo"].shape == ev["test_recon_ll"].shape == (7,)
    # elbo = E_q(k|x)[ELBO_k] - KL(q(k|x) || uniform) <= E_q(k|x) E_q[ln p_k(x|z)]
    assert (ev["elbo"] <= ev["test_recon_ll"] + 1e-5).all()
    k = model.predict_clusters(x)
    assert k.shape == (7,) and 0 <= int(k.min()) and int(k.max()) < 3
    means = model.expert_posteriors(x)[0]
    torch.testing.assert_close(model.encode(x), means[k, torch.arange(7)])
    recon = model.reconstruct(x)
    assert recon.shape == x.shape and ((recon >= 0) & (recon <= 1)).all()
    s1 = model.sample_per_cluster(5, torch.Generator().manual_seed(3))
    s2 = model.sample_per_cluster(5, torch.Generator().manual_seed(3))
    assert s1.shape == (3, 5, 1, 8, 8) and torch.equal(s1, s2)


def test_learns_separated_clusters_without_collapse():
    seed_everything(0)
    x, y = blobs(250, 4, 10, seed=0)
    x = torch.as_tensor(x)
    spec = ModelSpec((10,), latent_dim=2, n_clusters=4, likelihood="gaussian",
                     options={"expert_hidden": [32], "manager_hidden": [32], "balance": "cv2",
                              "balance_weight": 100.0})
    model = MoVAE(spec)
    fit(model, x[:800], TrainConfig(epochs=20, batch_size=64, lr=3e-3))
    pred = model.predict_clusters(x[800:]).numpy()
    assert cluster_accuracy(y[800:], pred) >= 0.9
    assert np.bincount(pred, minlength=4).min() > 0  # every expert is used


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("balance_weight", -1.0),
        ("balance_weight", "high"),
        ("balance", "entropy"),
        ("expert_hidden", []),
        ("expert_hidden", [16, 0]),
        ("manager_hidden", "64"),
    ],
)
def test_bad_options_name_the_key(key, value):
    spec = ModelSpec((4,), latent_dim=2, n_clusters=2, options={key: value})
    with pytest.raises(ParamError, match=f"train.movae.{key}"):
        MoVAE(spec)


def test_the_variance_balance_is_zeldes_term_and_a_scaled_cv2():
    """Zeldes's notebook penalises the population variance of the batch importance
    sum_x p(x); with rows that sum to one it is (B/K)^2 times the CV^2 term."""
    from vaemix.models.movae import balance_cv2, balance_variance

    p = torch.softmax(torch.randn(12, 4, generator=torch.Generator().manual_seed(0)), dim=1)
    importance = p.sum(0).numpy()
    assert float(balance_variance(p)) == pytest.approx(float(np.var(importance)), rel=1e-5)
    assert float(balance_variance(p)) == pytest.approx((12 / 4) ** 2 * float(balance_cv2(p)),
                                                       rel=1e-5)
