"""Network builders and observation models: shapes and likelihood values."""

import math

import pytest
import torch

from vaemix.distributions import log_bernoulli, log_normal_diag
from vaemix.networks import (
    MAX_LOGVAR,
    MIN_LOGVAR,
    GaussianHead,
    Likelihood,
    build_decoder,
    build_trunk,
)


@pytest.mark.parametrize(
    "shape,net,hidden",
    [((2,), "mlp", (16, 8)), ((1, 28, 28), "mlp", (32,)), ((1, 28, 28), "conv", (64,)),
     ((3, 32, 32), "conv", (512,))],
)
def test_trunk_and_decoder_shapes(shape, net, hidden):
    trunk = build_trunk(shape, net, hidden)
    x = torch.rand(5, *shape)
    h = trunk(x)
    assert h.shape == (5, trunk.out_features) and trunk.out_features == hidden[-1]
    dec = build_decoder(shape, 4, net, hidden)
    assert dec(torch.randn(5, 4)).shape == (5, *shape)


def test_mlp_decoder_keeps_extra_leading_dims():
    dec = build_decoder((3,), 2, "mlp", (8,))
    assert dec(torch.randn(4, 6, 2)).shape == (4, 6, 3)


def test_conv_trunk_rejects_flat_input():
    with pytest.raises(ValueError, match="image input"):
        build_trunk((10,), "conv", (8,))


def test_gaussian_head_clamps_logvar():
    head = GaussianHead(3, 2)
    with torch.no_grad():
        head.logvar.bias.fill_(100.0)
    _, logvar = head(torch.zeros(1, 3))
    assert logvar.max().item() == MAX_LOGVAR
    with torch.no_grad():
        head.logvar.bias.fill_(-100.0)
    assert head(torch.zeros(1, 3))[1].min().item() == MIN_LOGVAR


def test_likelihoods_sum_over_event_dims():
    x = torch.rand(4, 1, 3, 3).round()
    out = torch.randn(4, 1, 3, 3)
    bern = Likelihood("bernoulli", (1, 3, 3))
    assert torch.allclose(bern.log_prob(x, out), log_bernoulli(x, out, 3))
    gauss = Likelihood("gaussian", (1, 3, 3))
    expected = log_normal_diag(x, out, gauss.logvar.detach(), 3)
    assert torch.allclose(gauss.log_prob(x, out), expected)
    # hand case: one dim, mean = x, logvar = -2  ->  -0.5 (ln 2pi - 2)
    g1 = Likelihood("gaussian", (1,))
    val = g1.log_prob(torch.zeros(1, 1), torch.zeros(1, 1)).item()
    assert val == pytest.approx(-0.5 * (math.log(2 * math.pi) - 2.0))
    with pytest.raises(ValueError):
        Likelihood("poisson", (1,))
