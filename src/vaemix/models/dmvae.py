"""Discrete Mixture VAE (DMVAE), Singh et al. 2018, sec. 6-7.

Generative story (Singh et al. 2018, Algorithm 1): c ~ Cat(pi), z | c ~ N(mu_c, diag
sigma_c^2), x | z ~ p(x|z) from the decoder. Unlike VaDE, the cluster posterior has its own
encoder: the mean-field posterior is q(z, c|x) = q(z|x) q(c|x) (sec. 6), with
q(z|x) = N(mu(x), diag sigma^2(x)) and q(c|x) = Cat(softmax(g(x))) from a separate network.

Training maximises the relaxed objective of sec. 7 (the x-part of L~):

    L~(x) = E_q(z|x)[ln p(x|z)] - E_{zeta}[KL(q(z|x) || p(z|zeta))] - KL(q(c|x) || p(c))

- zeta ~ Concrete / Gumbel-softmax(q(c|x), tau) (Maddison et al. 2017; Jang et al. 2017,
  eq. 1), one sample per example; with ``hard`` the forward value is one-hot and the
  gradient is the relaxed sample's (straight-through, Jang et al. 2017, sec. 2.2).
- The relaxed prior p(z|zeta) must tend to p(z|c) as tau -> 0 (sec. 7, "Note"); the seed
  does not say how. We use the linear interpolation of the component parameters,
  p(z|zeta) = N(sum_k zeta_k mu_k, diag sum_k zeta_k sigma_k^2)
  (``vaemix.distributions.relaxed_gaussian_prior``): it is a Gaussian for every zeta in the
  simplex, so the KL given zeta stays in closed form (as for VaDE's p(z|c)); it equals
  N(mu_c, sigma_c^2) exactly at one-hot zeta (so ``hard`` trains on the true p(z|c) in the
  forward pass); and it is linear in zeta, so its gradient reaches q(c|x) simply. The
  alternatives are the product of experts prod_k N(mu_k, sigma_k^2)^zeta_k (precision
  weighted, also exact at one-hot, but a component with a tiny variance dominates any soft
  zeta) and the mixture sum_k zeta_k N(mu_k, sigma_k^2) (exact at one-hot but its KL needs
  Monte Carlo).
- KL(q(c|x) || p(c)) is the KL between the discrete distributions, as written in the
  seed's L~ and as used by Jang et al. 2017 (sec. 3.1) for their VAEs. Maddison et al.
  2017 (App. C) instead use a KL between the Concrete densities, estimated by Monte Carlo;
  we do not. p(c) is uniform (sec. 6.1) or, with ``prior: learned``, softmax(theta).
- tau is annealed exponentially from ``tau_start`` to ``tau_end`` over
  ``tau_anneal_epochs`` epochs (one value per epoch, set in ``start_epoch``) and held
  after (Jang et al. 2017 anneal exponentially, per step). The anneal length is capped at
  the run's last epoch, so a run shortened by ``budget.epoch_scale`` still ends at tau_end.

At test time c is discrete: ``predict_clusters`` is argmax q(c|x), and ``evaluate``'s
``elbo`` is the bound of the unrelaxed model (sec. 7, L before relaxation), with the
expectation over c taken exactly: ln p(x|z) - sum_c q(c|x) KL(q(z|x)||p(z|c)) - KL(q(c|x)||p(c)).
That is the tau -> 0 limit of L~ and a true lower bound on ln p(x), comparable with the
other models' ``elbo`` (plugging in the one-hot argmax of q(c|x) instead would not be a bound).

Options (``train.dmvae`` in params.yaml), with defaults (the paper's, :data:`PAPER`):
``tau_start`` 1.0, ``tau_end`` 0.5, ``tau_anneal_epochs`` 12, ``hard`` false, ``prior``
uniform | learned, ``init`` none (random networks) | ae (the pretrained autoencoder and a
mixture on its codes, as VaDE), ``init_clusters`` gmm | spectral | ... (init ae: how the
first mixture is found on the AE's latents, see :mod:`vaemix.models.init`),
``mu_init_scale`` 1.0 (init none: mu_k ~ N(0, scale^2 I)), ``q_init_epochs`` (init ae:
epochs fitting q(c|x) to the GMM responsibilities).

The paper's and vaemix's. The model and its objective are Singh et al.'s. Their training recipe
(:data:`PAPER`, the ``dmvae_paper`` runs) is mostly unwritten: they give the random start (sec.
8.1.2: "more robust to initialization" than VaDE, which needs pretraining), the epochs (200-300,
sec. 8.1.2), the uniform prior (sec. 6.1) and "the other details from the Concrete paper" (sec.
6.1), whose temperature schedule we take (Jang et al. 2017, sec. 4.1: tau = max(0.5, exp(-r t)),
r = 1e-4 a step, 0.5 after about 12 MNIST epochs at batch 100). Their code is not public; batch
size and optimiser are the VaDE code's they re-implemented (sec. 3), and the relaxed prior is
ours (above). vaemix's protocol (``train.dmvae``) starts from vaemix's start (vaemix.start: an
autoencoder and a partition), with a warm-up and the anchor, and a cold temperature (0.1).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vaemix.distributions import (
    gumbel_softmax,
    kl_categorical,
    kl_gaussians,
    log_mixture_posterior,
    relaxed_gaussian_prior,
    reparameterize,
    sample_per_component,
)
from vaemix.errors import ParamError
from vaemix.models.base import Model, ModelSpec
from vaemix.models.init import (
    INIT_CLUSTERS,
    copy_autoencoder,
    fit_to_targets,
    gmm_on_encoder,
    load_ae_state,
    self_train,
)
from vaemix.networks import (
    MAX_LOGVAR,
    MIN_LOGVAR,
    GaussianHead,
    Likelihood,
    build_decoder,
    build_trunk,
)
from vaemix.protocols import Cited, Recipe
from vaemix.schema import Bool, Int, Key, Number, OneOf


def tau_at(epoch: int, n_epochs: int, tau_start: float, tau_end: float, anneal: int) -> float:
    """Exponential schedule tau_start * (tau_end / tau_start)^(e / E), held at tau_end for
    e >= E, where E = min(anneal, n_epochs - 1) (0 = constant tau_end)."""
    span = min(anneal, n_epochs - 1)
    if span <= 0:
        return float(tau_end)
    frac = min(epoch, span) / span
    return float(tau_start * (tau_end / tau_start) ** frac)

_SINGH = "Singh et al. 2018"
_VADE = "silent in Singh et al. 2018; the VaDE code they re-implemented (sec. 3; slim1017/VaDE"
# Singh et al. 2018 as they train DMVAE (vaemix.protocols: the runs dmvae_paper)
PAPER = Recipe({
    "init": Cited("none", f"{_SINGH}, sec. 8.1.2 (robust to initialisation, no pretraining)"),
    "epochs": Cited(300, f"{_SINGH}, sec. 8.1.2 (comparable results in 200-300 epochs)"),
    "batch_size": Cited(100, f"{_VADE}, batch_size)"),
    "lr": Cited(0.002, f"{_VADE}, lr_nn)"),
    "lr_decay": Cited(0.9, f"{_VADE}, decay_nn)"),
    "lr_decay_every": Cited(10, f"{_VADE}, decay_n)"),
    "lr_min": Cited(0.0002, f"{_VADE}, lr_decay)"),
    "adam_eps": Cited(1e-4, f"{_VADE}, Adam epsilon)"),
    "tau_start": Cited(1.0, f"{_SINGH}, sec. 6.1 (the Concrete paper's details): Jang et al. "
                            "2017, sec. 4.1, tau from 1"),
    "tau_end": Cited(0.5, "Jang et al. 2017, sec. 4.1: tau = max(0.5, exp(-r t))"),
    "tau_anneal_epochs": Cited(12, "Jang et al. 2017, sec. 4.1: r = 1e-4 a step reaches 0.5 "
                                   "after 6931 steps, 12 epochs of 60,000 at batch 100"),
    "hard": Cited(False, f"{_SINGH}, sec. 7 (the relaxed zeta)"),
    "prior": Cited("uniform", f"{_SINGH}, sec. 6.1 (a uniform prior on the categories)"),
    "self_train_epochs": Cited(0, f"{_SINGH}: no warm-up (vaemix's only)"),
    "anchor_weight": Cited(0.0, f"{_SINGH}: no anchor (vaemix's only)"),
})


class DMVAE(Model):
    """q(z|x), q(c|x) from separate encoders; p(z|c) = N(mu_c, sigma_c^2); p(c) uniform or
    learned; trained on the relaxed objective L~ (Singh et al. 2018, sec. 7)."""

    clusters = True
    section = "train.dmvae"
    defaults = {"epochs": 100, "batch_size": 256, "lr": 0.001}  # as params.yaml
    options = {
        "tau_start": Key(Number(), 1.0),   # Gumbel-softmax temperature, annealed ...
        "tau_end": Key(Number(), 0.5),     # ... to this, exponentially ...
        "tau_anneal_epochs": Key(Int(0), 12),   # ... over this many epochs
        "hard": Key(Bool(), False),        # straight-through one-hot samples
        "prior": Key(OneOf(("uniform", "learned")), "uniform"),
        "init": Key(OneOf(("none", "ae")), "none"),
        "init_clusters": Key(OneOf(INIT_CLUSTERS), "gmm"),
        "mu_init_scale": Key(Number(), 1.0),
        "q_init_epochs": Key(Int(0), 5),
        "self_train_epochs": Key(Int(0), 0),
        "self_train_weight": Key(Number(), 10.0),
    }
    paper = PAPER

    @classmethod
    def parse_options(cls, given: Mapping[str, Any], where: str | None = None) -> dict[str, Any]:
        opts = super().parse_options(given, where)
        if opts["tau_end"] > opts["tau_start"]:
            raise ParamError(
                f"params.yaml: '{where or cls.section}.tau_end' must be at most tau_start "
                f"({opts['tau_start']!r}), got {opts['tau_end']!r}"
            )
        return opts

    def __init__(self, spec: ModelSpec) -> None:
        super().__init__(spec)
        self.opts = self.parse_options(spec.options)
        k, d = spec.n_clusters, spec.latent_dim
        # q(z|x): trunk + Gaussian head (as the VAE)
        self.trunk = build_trunk(spec.input_shape, spec.net, spec.hidden)
        self.posterior = GaussianHead(self.trunk.out_features, d)
        # q(c|x): its own encoder (sec. 6, "a separate encoder network for ... c")
        self.c_trunk = build_trunk(spec.input_shape, spec.net, spec.hidden)
        self.c_logits = nn.Linear(self.c_trunk.out_features, k)
        self.decoder = build_decoder(spec.input_shape, d, spec.net, spec.hidden)
        self.likelihood = Likelihood(spec.likelihood, spec.input_shape)
        # p(z|c): means spread at random so the clusters differ from the start (init none)
        self.prior_mean = nn.Parameter(torch.randn(k, d) * self.opts["mu_init_scale"])
        self.prior_logvar = nn.Parameter(torch.zeros(k, d))
        # p(c): uniform (fixed) or softmax(theta) (learned)
        self.prior_logits = nn.Parameter(
            torch.zeros(k), requires_grad=self.opts["prior"] == "learned"
        )
        self.tau = float(self.opts["tau_start"])

    # --- pieces ------------------------------------------------------------------------

    def log_prior_c(self) -> Tensor:
        return F.log_softmax(self.prior_logits, dim=-1)

    def prior_params(self) -> tuple[Tensor, Tensor]:
        return self.prior_mean, self.prior_logvar.clamp(MIN_LOGVAR, MAX_LOGVAR)

    def q_c_logits(self, x: Tensor) -> Tensor:
        return self.c_logits(self.c_trunk(x))

    def log_q_c(self, x: Tensor) -> Tensor:
        return F.log_softmax(self.q_c_logits(x), dim=-1)

    def q_z(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return self.posterior(self.trunk(x))

    def start_epoch(self, epoch: int, n_epochs: int) -> None:
        o = self.opts
        self.tau = tau_at(epoch, n_epochs, o["tau_start"], o["tau_end"], o["tau_anneal_epochs"])

    # --- objective ----------------------------------------------------------------------

    def loss(self, x: Tensor) -> dict[str, Tensor]:
        mean, logvar = self.q_z(x)
        z = reparameterize(mean, logvar)
        recon_ll = self.likelihood.log_prob(x, self.decoder(z))
        logits = self.q_c_logits(x)
        zeta = gumbel_softmax(logits, self.tau, hard=self.opts["hard"])
        # KL(q(z|x) || p(z|zeta)) in closed form given the single zeta sample (sec. 7, L~)
        p_mean, p_logvar = relaxed_gaussian_prior(zeta, *self.prior_params())
        kl_z = kl_gaussians(mean, logvar, p_mean, p_logvar)
        kl_c = kl_categorical(F.log_softmax(logits, dim=-1), self.log_prior_c())
        recon_ll, kl_z, kl_c = recon_ll.mean(), kl_z.mean(), kl_c.mean()
        return {
            "loss": kl_z + kl_c - recon_ll,
            "recon_nll": -recon_ll,
            "kl_z": kl_z,
            "kl_c": kl_c,
            "tau": torch.tensor(self.tau),
        }

    def evaluate(self, x: Tensor) -> dict[str, Tensor]:
        mean, logvar = self.q_z(x)
        recon_ll = self.likelihood.log_prob(x, self.decoder(reparameterize(mean, logvar)))
        log_q_c = F.log_softmax(self.q_c_logits(x), dim=-1)
        p_mean, p_logvar = self.prior_params()
        kl_per_c = kl_gaussians(mean.unsqueeze(-2), logvar.unsqueeze(-2), p_mean, p_logvar)
        kl_z = (log_q_c.exp() * kl_per_c).sum(-1)  # exact E_q(c|x), c discrete (see above)
        kl_c = kl_categorical(log_q_c, self.log_prior_c())
        return {"test_recon_ll": recon_ll, "elbo": recon_ll - kl_z - kl_c}

    # --- test-time use ------------------------------------------------------------------

    def encode(self, x: Tensor) -> Tensor:
        return self.q_z(x)[0]

    def reconstruct(self, x: Tensor) -> Tensor:
        return self.likelihood.mean(self.decoder(self.encode(x)))

    def predict_clusters(self, x: Tensor) -> Tensor:
        return self.q_c_logits(x).argmax(-1)

    @torch.no_grad()
    def sample_per_cluster(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        return self.decode_draws(sample_per_component(*self.prior_params(), n, generator))

    # --- initialisation -----------------------------------------------------------------

    def initialise(
        self, x_train: Tensor, seed: int = 0, ae_checkpoint: str | Path | None = None,
        start: Mapping[str, Any] | None = None, **_: Any
    ) -> None:
        """With ``init: ae``: start from the pretrained autoencoder and a diagonal GMM on
        its latents, as VaDE does (Jiang et al. 2017, sec. 3.3); nothing for ``none``.

        The AE's trunk, latent layer and decoder go into q(z|x) and p(x|z); the GMM's means
        and variances (and weights, for a learned p(c)) into the prior. q(c|x) has no
        counterpart in the AE, so its trunk also starts as a copy of the AE's trunk and it is
        then fitted for ``q_init_epochs`` epochs to the GMM's responsibilities p(c|mu(x))
        (unsupervised; otherwise a random q(c|x) would assign points arbitrarily at first
        and pull every mu_k towards the data mean before the clusters are found). With
        ``init_clusters: umap`` the whole model is then warmed up on the start's partition
        for ``self_train_epochs`` epochs (vaemix.models.init.self_train).
        """
        if self.opts["init"] != "ae":
            return
        if ae_checkpoint is None:
            raise ParamError(f"params.yaml: '{self.section}.init' is 'ae' but no checkpoint "
                             "was given")
        copy_autoencoder(load_ae_state(ae_checkpoint), self.trunk, self.posterior.mean,
                         self.decoder, self.likelihood, source=str(ae_checkpoint))
        self.c_trunk.load_state_dict(self.trunk.state_dict())
        gmm = gmm_on_encoder(self.encode, x_train, self.spec.n_clusters, seed,
                             self.opts["init_clusters"], start)
        with torch.no_grad():
            dev = self.prior_mean.device
            self.prior_mean.copy_(torch.as_tensor(gmm.means, device=dev))
            self.prior_logvar.copy_(torch.as_tensor(gmm.variances, device=dev).log())
            if self.opts["prior"] == "learned":
                self.prior_logits.copy_(torch.as_tensor(gmm.weights, device=dev).log())
        self._fit_q_c_to_gmm(x_train, seed)
        if gmm.labels is not None:
            self_train(self, x_train,
                       gmm.labels, self.opts["self_train_epochs"], seed,
                       self.opts["self_train_weight"])

    def _gmm_log_resp(self, x: Tensor) -> Tensor:
        return log_mixture_posterior(self.encode(x), self.log_prior_c(), *self.prior_params())

    def _fit_q_c_to_gmm(self, x_train: Tensor, seed: int) -> None:
        def cross_entropy(xb: Tensor) -> Tensor:  # to the soft responsibilities
            with torch.no_grad():
                target = self._gmm_log_resp(xb).exp()
            return -(target * F.log_softmax(self.q_c_logits(xb), dim=-1)).sum(-1).mean()

        params = [*self.c_trunk.parameters(), *self.c_logits.parameters()]
        fit_to_targets(self, params, cross_entropy, x_train, self.opts["q_init_epochs"], seed)


METHOD = DMVAE
