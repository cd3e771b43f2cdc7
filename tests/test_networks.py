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


@pytest.mark.parametrize(("shape", "maps"), [
    # Keras' sides for Guo et al.'s CAE: "same" 5x5 / stride 2 twice gives ceil(side / 2)
    # twice; the 3x3 / stride 2 is "valid" on 28 (7 -> 3) and "same" on 32 (8 -> 4)
    ((1, 28, 28), [(32, 14, 14), (64, 7, 7), (128, 3, 3)]),
    ((3, 32, 32), [(32, 16, 16), (64, 8, 8), (128, 4, 4)]),
    ((1, 16, 24), [(32, 8, 12), (64, 4, 6), (128, 2, 3)]),
])
def test_cae_feature_maps_and_mirror(shape, maps):
    trunk = build_trunk(shape, "cae", (1,))
    x = torch.rand(3, *shape)
    sides = []
    for layer in trunk.net:
        x = layer(x)
        if isinstance(layer, torch.nn.Conv2d):
            sides.append(tuple(x.shape[1:]))
    assert sides == maps
    assert trunk.out_features == math.prod(maps[-1]) == x.shape[1]
    decoder = build_decoder(shape, 10, "cae", (1,))
    assert decoder(torch.randn(3, 10)).shape == (3, *shape)
    # the decoder's transposed convolutions retrace the trunk's sides in reverse
    h, back = torch.randn(3, 10), []
    for layer in decoder.net:
        h = layer(h)
        if isinstance(layer, torch.nn.ConvTranspose2d):
            back.append(tuple(h.shape[2:]))
    assert back == [m[1:] for m in maps[-2::-1]] + [tuple(shape[1:])]


def test_cae_starts_as_keras_glorot_uniform_with_zero_biases():
    for net in (build_trunk((1, 28, 28), "cae", (1,)), build_decoder((1, 28, 28), 10, "cae", (1,))):
        layers = [m for m in net.modules()
                  if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d, torch.nn.Linear))]
        assert len(layers) in (3, 4)
        for layer in layers:
            w = layer.weight
            receptive = math.prod(w.shape[2:]) if w.dim() > 2 else 1
            fan_in, fan_out = w.shape[1] * receptive, w.shape[0] * receptive
            bound = math.sqrt(6.0 / (fan_in + fan_out))
            assert w.abs().max() <= bound and w.abs().max() > 0.9 * bound
            assert torch.equal(layer.bias, torch.zeros_like(layer.bias))


def test_cae_rejects_flat_and_too_small_input():
    with pytest.raises(ValueError, match="needs image input"):
        build_trunk((784,), "cae", (1,))
    with pytest.raises(ValueError, match="too small for the net 'cae'"):
        build_trunk((1, 7, 7), "cae", (1,))


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
