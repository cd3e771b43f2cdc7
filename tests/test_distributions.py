"""The shared probability math against independent computations."""

import math

import pytest
import torch
from torch.distributions import Bernoulli, Categorical, Independent, Normal, kl_divergence

from vaemix.distributions import (
    gumbel_softmax,
    kl_categorical,
    kl_gaussians,
    kl_normal_std,
    log_bernoulli,
    log_mean_posterior_mc,
    log_mixture_normal_diag,
    log_mixture_posterior,
    log_normal_diag,
    log_standard_normal,
    reparameterize,
    sample_per_component,
)

torch.manual_seed(0)


def _diag(mean, logvar):
    return Independent(Normal(mean, torch.exp(0.5 * logvar)), 1)


def test_log_normal_diag_matches_torch():
    x, m, lv = torch.randn(7, 3), torch.randn(7, 3), torch.randn(7, 3)
    assert torch.allclose(log_normal_diag(x, m, lv), _diag(m, lv).log_prob(x), atol=1e-5)
    assert torch.allclose(log_standard_normal(x), _diag(0 * x, 0 * x).log_prob(x), atol=1e-5)


def test_log_normal_diag_hand_case():
    # ln N(1; 0, 1) = -0.5 ln(2 pi) - 0.5, two dims
    x = torch.ones(1, 2)
    expected = 2 * (-0.5 * math.log(2 * math.pi) - 0.5)
    assert log_normal_diag(x, torch.zeros(1, 2), torch.zeros(1, 2)).item() == pytest.approx(expected)


def test_log_bernoulli_matches_torch_and_event_dims():
    x = torch.rand(4, 1, 5, 5).round()
    logits = torch.randn(4, 1, 5, 5) * 3
    ref = Independent(Bernoulli(logits=logits), 3).log_prob(x)
    assert torch.allclose(log_bernoulli(x, logits, event_dims=3), ref, atol=1e-4)


def test_kl_normal_std_closed_form_and_monte_carlo():
    m, lv = torch.tensor([[0.5, -1.0, 2.0]]), torch.tensor([[0.3, -0.7, 0.1]])
    closed = kl_normal_std(m, lv)
    ref = kl_divergence(_diag(m, lv), _diag(torch.zeros_like(m), torch.zeros_like(lv)))
    assert torch.allclose(closed, ref, atol=1e-5)
    z = reparameterize(m.expand(200_000, 3), lv.expand(200_000, 3))
    mc = (log_normal_diag(z, m, lv) - log_standard_normal(z)).mean()
    assert mc.item() == pytest.approx(closed.item(), abs=0.02)


def test_kl_gaussians_monte_carlo_and_broadcast():
    mq, lq = torch.tensor([0.2, -0.4]), torch.tensor([-0.5, 0.4])
    mp, lp = torch.tensor([1.0, 0.5]), torch.tensor([0.3, -0.2])
    closed = kl_gaussians(mq, lq, mp, lp)
    z = reparameterize(mq.expand(400_000, 2), lq.expand(400_000, 2))
    mc = (log_normal_diag(z, mq, lq) - log_normal_diag(z, mp, lp)).mean()
    assert mc.item() == pytest.approx(closed.item(), abs=0.01)
    # q [B, 1, d] against p [K, d] gives every pair [B, K]
    q_m, q_l, p_m, p_l = torch.randn(5, 1, 3), torch.randn(5, 1, 3), torch.randn(4, 3), torch.randn(4, 3)
    pairs = kl_gaussians(q_m, q_l, p_m, p_l)
    assert pairs.shape == (5, 4)
    assert torch.allclose(pairs[2, 3], kl_gaussians(q_m[2, 0], q_l[2, 0], p_m[3], p_l[3]))
    assert kl_gaussians(mq, lq, mq, lq).item() == pytest.approx(0.0, abs=1e-6)


def test_log_mixture_matches_explicit_sum():
    z = torch.randn(6, 2)
    w = torch.log_softmax(torch.randn(3), 0)
    means, logvars = torch.randn(3, 2), torch.randn(3, 2) * 0.3
    explicit = torch.log(sum(
        torch.exp(w[k] + _diag(means[k], logvars[k]).log_prob(z)) for k in range(3)
    ))
    assert torch.allclose(log_mixture_normal_diag(z, w, means, logvars), explicit, atol=1e-5)


def test_log_mixture_is_stable_far_from_every_component():
    z = torch.full((1, 2), 1e3)
    out = log_mixture_normal_diag(z, torch.log(torch.ones(2) / 2), torch.zeros(2, 2), torch.zeros(2, 2))
    assert torch.isfinite(out).all()


def test_kl_categorical_matches_torch():
    lq, lp = torch.log_softmax(torch.randn(4, 5), -1), torch.log_softmax(torch.randn(4, 5), -1)
    ref = kl_divergence(Categorical(logits=lq), Categorical(logits=lp))
    assert torch.allclose(kl_categorical(lq, lp), ref, atol=1e-6)


def test_gumbel_softmax_tends_to_categorical_frequencies():
    probs = torch.tensor([0.6, 0.3, 0.1])
    logits = probs.log().expand(100_000, 3)
    gen = torch.Generator().manual_seed(1)
    y = gumbel_softmax(logits, tau=0.05, generator=gen)
    assert torch.allclose(y.sum(-1), torch.ones(100_000), atol=1e-5)
    assert y.max(-1).values.mean() > 0.98  # nearly one-hot at low temperature
    freq = torch.bincount(y.argmax(-1), minlength=3).float() / len(y)
    assert torch.allclose(freq, probs, atol=0.01)
    hot = gumbel_softmax(logits[:10], tau=5.0, generator=gen)
    assert hot.max(-1).values.mean() < 0.6  # and smooth at high temperature


def test_gumbel_softmax_straight_through():
    logits = torch.randn(8, 4, requires_grad=True)
    y = gumbel_softmax(logits, tau=0.5, hard=True)
    assert set(y.detach().unique().tolist()) <= {0.0, 1.0}
    assert torch.equal(y.detach().sum(-1), torch.ones(8))
    (y * torch.arange(4.0)).sum().backward()
    assert logits.grad is not None and logits.grad.abs().sum() > 0
    with pytest.raises(ValueError):
        gumbel_softmax(logits, tau=0.0)


def test_log_mixture_posterior_is_bayes_rule_and_stable():
    k, d = 4, 3
    z = torch.randn(6, d, dtype=torch.float64)
    means, logvars = torch.randn(k, d, dtype=torch.float64), torch.randn(k, d, dtype=torch.float64)
    w = torch.tensor([0.1, 0.2, 0.3, 0.4], dtype=torch.float64)
    # independent: joint densities from torch.distributions, normalised by hand
    joint = torch.stack([w[c] * _diag(means[c], logvars[c]).log_prob(z).exp() for c in range(k)], 1)
    expected = joint / joint.sum(1, keepdim=True)
    got = log_mixture_posterior(z, w.log(), means, logvars).exp()
    assert torch.allclose(got, expected, atol=1e-10)
    # batch dims in front ([S, B, d]) and a point far from every component stay finite
    far = log_mixture_posterior(torch.full((2, 1, d), 1e3, dtype=torch.float64), w.log(),
                                means, logvars)
    assert far.shape == (2, 1, k) and torch.isfinite(far).all()
    assert torch.allclose(far.exp().sum(-1), torch.ones(2, 1, dtype=torch.float64))


def test_log_mean_posterior_mc_averages_the_draws_in_probability_space():
    mean, logvar = torch.randn(5, 2), torch.randn(5, 2)
    means, logvars, log_w = torch.randn(3, 2), torch.zeros(3, 2), torch.zeros(3)
    post = lambda z: log_mixture_posterior(z, log_w, means, logvars)  # noqa: E731
    got = log_mean_posterior_mc(mean, logvar, post, samples=64, seed=3)
    gen = torch.Generator().manual_seed(3)
    eps = torch.randn((64, 5, 2), generator=gen)
    expected = post(mean + (0.5 * logvar).exp() * eps).exp().mean(0).log()
    assert torch.allclose(got, expected, atol=1e-5)
    assert torch.equal(got, log_mean_posterior_mc(mean, logvar, post, samples=64, seed=3))


def test_sample_per_component_moments():
    means = torch.tensor([[0.0, 5.0], [-3.0, 1.0]])
    logvars = torch.tensor([[0.0, math.log(4.0)], [math.log(0.25), 0.0]])
    z = sample_per_component(means, logvars, 20000, torch.Generator().manual_seed(0))
    assert z.shape == (2, 20000, 2)
    assert torch.allclose(z.mean(1), means, atol=0.05)
    assert torch.allclose(z.var(1), logvars.exp(), rtol=0.05)
