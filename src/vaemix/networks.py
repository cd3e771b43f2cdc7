"""Network builders shared by every model: MLP and convolutional encoders/decoders, and
the observation models p(x|z) (Bernoulli or Gaussian).

MLP sizes follow VaDE (Jiang et al. 2017): D-500-500-2000-d and its mirror. The
convolutional networks follow Collier & Urdiales 2019, App. A: 20 then 40 5x5 filters,
stride 1, each followed by 2x2 max-pooling and ReLU, then a 512-unit fully-connected
layer; the decoder mirrors it with transposed convolutions. (The appendix text breaks off
in the middle of the decoder description; the mirror image is our reading of it.)

``cae`` is the convolutional autoencoder of ConvDEC-DA (Guo, Zhu, Liu & Yin 2018, sec. 4.1,
as their code github.com/XifengGuo/DEC-DA builds it, ``CAE``): 5x5 / stride-2 convolutions
with 32 and 64 filters ("same" padding), a 3x3 / stride-2 one with 128 ("valid" unless the
side is a multiple of 8), ReLU after each; the code is a linear map of the flattened
features (the model's head). The decoder mirrors it: a ReLU dense layer to the last feature
map, then transposed convolutions back to the input's size, the last one linear. Weights are
Glorot-uniform and biases zero, Keras' defaults that their code keeps.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from vaemix.distributions import log_bernoulli, log_normal_diag

# Bounds on the learned log-variance of the Gaussian likelihood, so that it can neither
# collapse to a point mass (unbounded likelihood) nor blow up.
MIN_LOGVAR = -9.0
MAX_LOGVAR = 4.0


def mlp(sizes: Sequence[int], final_activation: bool = False) -> nn.Sequential:
    """Linear layers between consecutive ``sizes`` with ReLU in between."""
    layers: list[nn.Module] = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        layers.append(nn.Linear(n_in, n_out))
        if i < len(sizes) - 2 or final_activation:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def _conv_out(size: int) -> int:
    # a 5x5 valid convolution then a 2x2 / stride-2 max-pool
    return (size - 4) // 2


class ConvTrunk(nn.Module):
    """x [B, C, H, W] -> h [B, hidden] (Collier & Urdiales 2019, App. A)."""

    def __init__(self, input_shape: Sequence[int], hidden: int = 512) -> None:
        super().__init__()
        c, h, w = input_shape
        self.features = nn.Sequential(
            nn.Conv2d(c, 20, 5), nn.MaxPool2d(2, 2), nn.ReLU(),
            nn.Conv2d(20, 40, 5), nn.MaxPool2d(2, 2), nn.ReLU(),
            nn.Flatten(),
        )
        self.spatial = (_conv_out(_conv_out(h)), _conv_out(_conv_out(w)))
        if min(self.spatial) < 1:
            raise ValueError(f"input {tuple(input_shape)} is too small for the conv encoder")
        n_flat = 40 * self.spatial[0] * self.spatial[1]
        self.fc = nn.Sequential(nn.Linear(n_flat, hidden), nn.ReLU())
        self.out_features = hidden

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.features(x))


class ConvDecoder(nn.Module):
    """z [B, d] -> x-shaped output, the mirror image of :class:`ConvTrunk`."""

    def __init__(self, input_shape: Sequence[int], latent_dim: int, hidden: int = 512) -> None:
        super().__init__()
        c, h, w = input_shape
        h1, w1 = _conv_out(h), _conv_out(w)
        h2, w2 = _conv_out(h1), _conv_out(w1)
        self.spatial = (h2, w2)
        self.fc = nn.Sequential(
            nn.Linear(latent_dim, hidden), nn.ReLU(), nn.Linear(hidden, 40 * h2 * w2), nn.ReLU()
        )
        # upsample back to the pre-pool sizes, then undo each valid 5x5 convolution
        self.deconv = nn.Sequential(
            nn.Upsample(size=(h1 - 4, w1 - 4)), nn.ConvTranspose2d(40, 20, 5), nn.ReLU(),
            nn.Upsample(size=(h - 4, w - 4)), nn.ConvTranspose2d(20, c, 5),
        )

    def forward(self, z: Tensor) -> Tensor:
        h = self.fc(z).view(z.shape[0], 40, *self.spatial)
        return self.deconv(h)


def _glorot(module: nn.Module) -> None:
    """Keras' default initialisation: Glorot-uniform weights, zero biases."""
    for layer in module.modules():
        if isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.xavier_uniform_(layer.weight)
            nn.init.zeros_(layer.bias)


def _cae_sizes(side: int) -> tuple[int, int, int, int]:
    """The CAE's feature-map sides (s1, s2, s3) for an input side, and the padding of its
    3x3 layer: "same" (1) where the side is a multiple of 8, else "valid" (0)."""
    pad3 = 1 if side % 8 == 0 else 0
    s1 = (side + 1) // 2          # 5x5, stride 2, "same": ceil(side / 2)
    s2 = (s1 + 1) // 2
    s3 = (s2 + 2 * pad3 - 3) // 2 + 1
    return s1, s2, s3, pad3


class CAETrunk(nn.Module):
    """x [B, C, H, W] -> the flattened features [B, 128 * h3 * w3] of Guo et al.'s CAE."""

    def __init__(self, input_shape: Sequence[int]) -> None:
        super().__init__()
        c, h, w = input_shape
        (*_, h3, pad_h), (*_, w3, pad_w) = _cae_sizes(h), _cae_sizes(w)
        if min(h3, w3) < 1:
            raise ValueError(f"input {tuple(input_shape)} is too small for the net 'cae'")
        self.net = nn.Sequential(
            nn.Conv2d(c, 32, 5, stride=2, padding=2), nn.ReLU(),
            nn.Conv2d(32, 64, 5, stride=2, padding=2), nn.ReLU(),
            nn.Conv2d(64, 128, 3, stride=2, padding=(pad_h, pad_w)), nn.ReLU(),
            nn.Flatten())
        self.out_features = 128 * h3 * w3
        _glorot(self)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class CAEDecoder(nn.Module):
    """z [B, d] -> x-shaped output: the mirror image of :class:`CAETrunk`."""

    def __init__(self, input_shape: Sequence[int], latent_dim: int) -> None:
        super().__init__()
        c, h, w = input_shape
        (h1, h2, h3, pad_h), (w1, w2, w3, pad_w) = _cae_sizes(h), _cae_sizes(w)

        def up(c_in: int, c_out: int, k: int, pad: tuple[int, int], size_in: tuple[int, int],
               size_out: tuple[int, int]) -> nn.ConvTranspose2d:
            # the output padding that lands a stride-2 transposed convolution on size_out
            extra = tuple(o - ((i - 1) * 2 - 2 * p + k)
                          for i, o, p in zip(size_in, size_out, pad, strict=True))
            return nn.ConvTranspose2d(c_in, c_out, k, stride=2, padding=pad, output_padding=extra)

        self.net = nn.Sequential(
            nn.Linear(latent_dim, 128 * h3 * w3), nn.ReLU(), nn.Unflatten(1, (128, h3, w3)),
            up(128, 64, 3, (pad_h, pad_w), (h3, w3), (h2, w2)), nn.ReLU(),
            up(64, 32, 5, (2, 2), (h2, w2), (h1, w1)), nn.ReLU(),
            up(32, c, 5, (2, 2), (h1, w1), (h, w)))
        _glorot(self)

    def forward(self, z: Tensor) -> Tensor:
        return self.net(z)


class MLPTrunk(nn.Module):
    """x [B, ...] flattened -> h [B, hidden[-1]]."""

    def __init__(self, input_shape: Sequence[int], hidden: Sequence[int]) -> None:
        super().__init__()
        d_in = math.prod(input_shape)
        self.net = nn.Sequential(nn.Flatten(), mlp([d_in, *hidden], final_activation=True))
        self.out_features = hidden[-1]

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class MLPDecoder(nn.Module):
    """z [B, d] -> x-shaped output through the mirrored hidden sizes."""

    def __init__(self, input_shape: Sequence[int], latent_dim: int, hidden: Sequence[int]) -> None:
        super().__init__()
        self.input_shape = tuple(input_shape)
        self.net = mlp([latent_dim, *reversed(list(hidden)), math.prod(input_shape)])

    def forward(self, z: Tensor) -> Tensor:
        return self.net(z).view(*z.shape[:-1], *self.input_shape)


def build_trunk(input_shape: Sequence[int], net: str, hidden: Sequence[int]) -> nn.Module:
    """The shared encoder body; its ``out_features`` feeds the posterior heads."""
    if net in ("conv", "cae") and len(input_shape) != 3:
        raise ValueError(f"net {net!r} needs image input [C, H, W], got {tuple(input_shape)}")
    if net == "conv":
        return ConvTrunk(input_shape, hidden[-1])
    if net == "cae":
        return CAETrunk(input_shape)
    return MLPTrunk(input_shape, hidden)


def build_decoder(
    input_shape: Sequence[int], latent_dim: int, net: str, hidden: Sequence[int]
) -> nn.Module:
    if net == "conv":
        return ConvDecoder(input_shape, latent_dim, hidden[-1])
    if net == "cae":
        return CAEDecoder(input_shape, latent_dim)
    return MLPDecoder(input_shape, latent_dim, hidden)


class GaussianHead(nn.Module):
    """h -> (mean, logvar) of a diagonal Gaussian; logvar is clamped for stability."""

    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__()
        self.mean = nn.Linear(in_features, out_features)
        self.logvar = nn.Linear(in_features, out_features)

    def forward(self, h: Tensor) -> tuple[Tensor, Tensor]:
        return self.mean(h), self.logvar(h).clamp(MIN_LOGVAR, MAX_LOGVAR)


class Likelihood(nn.Module):
    """The observation model p(x|z) given the decoder's output.

    ``bernoulli``: the decoder outputs logits (MNIST). ``gaussian``: the decoder outputs
    the mean; one learned log-variance per input dimension, clamped to
    [MIN_LOGVAR, MAX_LOGVAR] (spiral, CIFAR-100).
    """

    def __init__(self, kind: str, input_shape: Sequence[int]) -> None:
        super().__init__()
        if kind not in ("bernoulli", "gaussian"):
            raise ValueError(f"unknown likelihood {kind!r}")
        self.kind = kind
        self.event_dims = len(input_shape)
        if kind == "gaussian":
            self.logvar = nn.Parameter(torch.full(tuple(input_shape), -2.0))

    def log_prob(self, x: Tensor, out: Tensor) -> Tensor:
        """ln p(x|z), summed over the event dims; ``out`` may carry extra leading dims."""
        if self.kind == "bernoulli":
            return log_bernoulli(x.expand_as(out), out, self.event_dims)
        logvar = self.logvar.clamp(MIN_LOGVAR, MAX_LOGVAR)
        return log_normal_diag(x, out, logvar, self.event_dims)

    def mean(self, out: Tensor) -> Tensor:
        return torch.sigmoid(out) if self.kind == "bernoulli" else out

    def sample(self, out: Tensor, generator: torch.Generator | None = None) -> Tensor:
        if self.kind == "bernoulli":
            return torch.bernoulli(torch.sigmoid(out), generator=generator)
        std = torch.exp(0.5 * self.logvar.clamp(MIN_LOGVAR, MAX_LOGVAR))
        noise = torch.randn(out.shape, dtype=out.dtype, device=out.device, generator=generator)
        return out + std * noise


# --- ensembles: n networks of one shape, evaluated in one batched call ------------------

class BatchedLinear(nn.Module):
    """``n`` independent linear layers run as one batched matmul; weight [n, in, out].

    Input [n, B, in] (one input per member) or [B, in] (shared by every member); output
    [n, B, out]. Each member is initialised like ``nn.Linear``: U(-1/sqrt(in), 1/sqrt(in)).
    """

    def __init__(self, n: int, in_features: int, out_features: int) -> None:
        super().__init__()
        bound = 1.0 / math.sqrt(in_features)
        weight = torch.empty(n, in_features, out_features).uniform_(-bound, bound)
        self.weight = nn.Parameter(weight)
        self.bias = nn.Parameter(torch.empty(n, 1, out_features).uniform_(-bound, bound))

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() == 2:
            return torch.einsum("bi,nio->nbo", x, self.weight) + self.bias
        return torch.baddbmm(self.bias, x, self.weight)

    def member(self, k: int) -> nn.Linear:
        """The k-th layer as a stand-alone ``nn.Linear`` (a copy, for checks and export)."""
        n_in, n_out = self.weight.shape[1:]
        layer = nn.Linear(n_in, n_out).to(self.weight.device)
        with torch.no_grad():
            layer.weight.copy_(self.weight[k].T)
            layer.bias.copy_(self.bias[k, 0])
        return layer


def batched_mlp(n: int, sizes: Sequence[int], final_activation: bool = False) -> nn.Sequential:
    """``n`` independent copies of :func:`mlp` (same sizes) as one batched network."""
    layers: list[nn.Module] = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        layers.append(BatchedLinear(n, n_in, n_out))
        if i < len(sizes) - 2 or final_activation:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)
