"""The pretraining autoencoders: a deterministic autoencoder (VaDE's initialisation,
Jiang et al. 2017, sec. 3.3) and a VAE with an N(0, I) prior (Kingma & Welling 2014).

VaDE pretrains a *stacked denoising* autoencoder (Jiang et al. 2017, sec. 3.3, following
DEC, Xie et al. 2016, who corrupt the input with dropout 0.2). Our ``ae`` trains end to
end; its option ``input_dropout`` (``pretrain.ae`` in params.yaml, default 0) is the
denoising part: each input value is set to 0 with that probability during training and
the loss is the likelihood of the clean input.

Its options ``augment_shift`` and ``augment_rotate`` (default 0) move each training image
by a random affine map before the encoder (a shift of up to that fraction of the image
side, a rotation of up to that many degrees) while the decoder still has to give the
clean image: the codes become invariant to small translations and rotations, which a
digit's class does not depend on (the pretraining of DEC-DA and ASPC-DA, Guo et al. 2018
and 2019; :mod:`vaemix.augment`). No label is used. Inputs that are not images (spiral, a
flat npz) are left as they are.

Its option ``recon`` (default ``likelihood``) chooses the reconstruction loss:
``squared_error`` is DEC-DA's and ASPC-DA's pretraining (Guo et al. 2018 and 2019, their
code's Keras ``mse``): the mean squared error per input value of a linear output, which
they minimise with SGD (lr 1, momentum 0.9; ``optimizer: sgd`` in ``pretrain.ae``). The
decoder's output is then the reconstruction itself, not the likelihood's parameter
(reports/benchmarks/aspc_da.md measures both).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from vaemix.augment import Augment
from vaemix.distributions import kl_normal_std, reparameterize, squared_error_per_value
from vaemix.models.base import Model, ModelSpec
from vaemix.networks import GaussianHead, Likelihood, build_decoder, build_trunk
from vaemix.schema import Key, Number, OneOf


class AutoEncoder(Model):
    """x -> z = f(x) -> p(x|z); trained by maximising ln p(x|f(x))."""

    section = "pretrain.ae"
    options = {
        "input_dropout": Key(Number(strict=False, high=1.0), 0.0),   # denoising mask rate
        "augment_shift": Key(Number(strict=False, high=0.5, high_open=False), 0.0),
        "augment_rotate": Key(Number(strict=False, high=180.0, high_open=False), 0.0),
        "recon": Key(OneOf(("likelihood", "squared_error")), "likelihood"),
    }

    def __init__(self, spec: ModelSpec) -> None:
        super().__init__(spec)
        opts = self.parse_options(spec.options)
        self.squared_error = opts["recon"] == "squared_error"
        self.trunk = build_trunk(spec.input_shape, spec.net, spec.hidden)
        self.to_z = nn.Linear(self.trunk.out_features, spec.latent_dim)
        self.decoder = build_decoder(spec.input_shape, spec.latent_dim, spec.net, spec.hidden)
        self.likelihood = Likelihood(spec.likelihood, spec.input_shape)
        self.input_dropout = opts["input_dropout"]
        self.augment = Augment(opts["augment_shift"], opts["augment_rotate"])

    def encode(self, x: Tensor) -> Tensor:
        return self.to_z(self.trunk(x))

    def loss(self, x: Tensor) -> dict[str, Tensor]:
        x_in = self.augment(x)   # images only; the target stays the clean image
        if self.input_dropout > 0:  # masking noise, no rescaling (a denoising AE)
            x_in = x_in * (torch.rand_like(x_in) >= self.input_dropout)
        out = self.decoder(self.encode(x_in))
        if self.squared_error:
            mse = squared_error_per_value(x, out).mean()
            return {"loss": mse, "recon_mse": mse}
        recon_ll = self.likelihood.log_prob(x, out).mean()
        return {"loss": -recon_ll, "recon_nll": -recon_ll}

    def evaluate(self, x: Tensor) -> dict[str, Tensor]:
        out = self.decoder(self.encode(x))
        if self.squared_error:
            return {"test_recon_mse": squared_error_per_value(x, out)}
        return {"test_recon_ll": self.likelihood.log_prob(x, out)}

    def reconstruct(self, x: Tensor) -> Tensor:
        out = self.decoder(self.encode(x))
        return out if self.squared_error else self.likelihood.mean(out)


class VAE(Model):
    """q(z|x) = N(mu(x), diag sigma^2(x)), p(z) = N(0, I), p(x|z) from the decoder.

    ELBO = E_q[ln p(x|z)] - KL(q(z|x) || p(z)) (Kingma & Welling 2014, eq. 10), the KL in
    closed form and the expectation with one reparameterised sample.
    """

    section = "pretrain.vae"

    def __init__(self, spec: ModelSpec) -> None:
        super().__init__(spec)
        self.trunk = build_trunk(spec.input_shape, spec.net, spec.hidden)
        self.posterior = GaussianHead(self.trunk.out_features, spec.latent_dim)
        self.decoder = build_decoder(spec.input_shape, spec.latent_dim, spec.net, spec.hidden)
        self.likelihood = Likelihood(spec.likelihood, spec.input_shape)

    def _terms(self, x: Tensor) -> tuple[Tensor, Tensor]:
        mean, logvar = self.posterior(self.trunk(x))
        z = reparameterize(mean, logvar)
        return self.likelihood.log_prob(x, self.decoder(z)), kl_normal_std(mean, logvar)

    def loss(self, x: Tensor) -> dict[str, Tensor]:
        recon_ll, kl = self._terms(x)
        recon_ll, kl = recon_ll.mean(), kl.mean()
        return {"loss": kl - recon_ll, "recon_nll": -recon_ll, "kl": kl}

    def evaluate(self, x: Tensor) -> dict[str, Tensor]:
        recon_ll, kl = self._terms(x)
        return {"test_recon_ll": recon_ll, "elbo": recon_ll - kl}

    def encode(self, x: Tensor) -> Tensor:
        return self.posterior(self.trunk(x))[0]

    def reconstruct(self, x: Tensor) -> Tensor:
        return self.likelihood.mean(self.decoder(self.encode(x)))
