"""VaDE, Variational Deep Embedding (Jiang et al. 2017; Singh et al. 2018, sec. 3).

Generative model (Jiang et al. 2017, eq. 1-4):
    c ~ Cat(pi),  z | c ~ N(mu_c, diag sigma^2_c),  x | z ~ p(x | f(z)).
Inference: q(z, c | x) = q(z|x) q(c|x) (mean field), q(z|x) = N(mu(x), diag sigma^2(x))
from the encoder, and q(c|x) := p(c | z) at a sample z of q(z|x) (Jiang et al. 2017,
eq. 16; Singh et al. 2018, sec. 3), the responsibility gamma of the GMM prior.

ELBO (Jiang et al. 2017, eq. 11, one reparameterised sample, L = 1):
    ln p(x|z) - sum_c gamma_c KL(q(z|x) || p(z|c)) - KL(gamma || pi),
which is eq. 11 regrouped: with sum_c gamma_c = 1, its -1/2 sum_c gamma_c sum_j (ln
sigma^2_cj + s^2_j / sigma^2_cj + (m_j - mu_cj)^2 / sigma^2_cj) + 1/2 sum_j (1 + ln s^2_j)
is -sum_c gamma_c KL(N(m, s^2) || N(mu_c, sigma^2_c)) and sum_c gamma_c ln(pi_c / gamma_c)
is -KL(gamma || pi).

Options (the ``train.vade`` params section, declared in :attr:`VaDE.options`):
    init               ae: start from the pretrained autoencoder and a diagonal GMM on its
                       latents (Jiang et al. 2017, sec. 3.3) | none: random networks, mu_c ~ N(0, I)
    init_clusters      with init ae: how the first GMM is found on the AE's latents, gmm (EM,
                       as Jiang et al.) | spectral (a k-NN graph) | spectral_consensus (the
                       k-NN graph size chosen by agreement) | umap (N2D) | umap_or_spectral
                       (the one with the smaller normalised cut; see vaemix.models.init)
    init_posterior_var with init ae: the initial variance of q(z|x), as a fraction of the
                       GMM's mean component variance in each latent dimension; null: the
                       variance head left at its random start (Jiang et al.'s code)
    init_pi            with init ae: pi from the GMM's weights (gmm) or uniform (Jiang et
                       al.'s code copies only the means and variances)
    predict            mean: argmax_c p(c | z = mu(x)) | samples: argmax_c of p(c|z) averaged
                       over ``predict_samples`` draws z ~ q(z|x) (Singh et al. 2018, sec. 5.1)
    predict_samples    number of those draws

The paper's and vaemix's. The model, its ELBO and its start from a pretrained autoencoder and a
GMM on its codes are Jiang et al.'s; :data:`PAPER` is their training recipe (the ``vade_paper``
runs), every value cited, mostly from their code (github.com/slim1017/VaDE, VaDE.py), since the
paper gives few. Where we differ: the autoencoder is vaemix's shared ``ae`` stage (their
stacked-autoencoder pretraining was never released), they fit and score all 70,000 MNIST images
where we fit the training split (``train_acc`` is the transductive score), and spiral and
CIFAR-100, which they did not run, use the MNIST recipe. vaemix's protocol (``train.vade`` in
params.yaml) adds its own start: the start partition (vaemix.start; ``init_clusters:
umap_or_spectral``), a warm-up on it (``self_train_epochs``) and the anchor (``anchor_weight``,
vaemix.training.Anchor), with a gentler learning rate.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vaemix.distributions import (
    kl_categorical,
    kl_gaussians,
    log_mean_posterior_mc,
    log_mixture_posterior,
    reparameterize,
    sample_per_component,
)
from vaemix.errors import ParamError
from vaemix.models.base import Model, ModelSpec
from vaemix.models.init import (
    INIT_CLUSTERS,
    copy_autoencoder,
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
from vaemix.schema import Int, Key, Number, OneOf

# Range of the prior's log-variances ln sigma^2_c. Wider than the encoder's clamp: the
# autoencoder's latents are unnormalised, so its GMM can have large variances.
PRIOR_LOGVAR_MIN = -10.0
PRIOR_LOGVAR_MAX = 10.0
PREDICT_SEED = 0  # the fixed seed of the draws of predict: samples

_CODE = "Jiang et al. 2017, their code (slim1017/VaDE, VaDE.py"
# Jiang et al. 2017 as they train VaDE on MNIST (vaemix.protocols: the runs vade_paper)
PAPER = Recipe({
    "init": Cited("ae", f"{_CODE}: ispretrain, load_pretrain_weights); sec. 3.3"),
    "init_clusters": Cited("gmm", f"{_CODE}: a diagonal GMM on the codes, "
                                  "load_pretrain_weights); sec. 3.3"),
    "init_pi": Cited("uniform", f"{_CODE}: only the means and variances are copied, "
                                "theta stays 1/K)"),
    "init_posterior_var": Cited(None, f"{_CODE}: the z_log_var layer is not pretrained)"),
    "epochs": Cited(500, f"{_CODE}: config_init('mnist'), epoch)"),
    "batch_size": Cited(100, f"{_CODE}: batch_size)"),
    "lr": Cited(0.002, f"{_CODE}: lr_nn and lr_gmm)"),
    "lr_decay": Cited(0.9, f"{_CODE}: decay_nn, decay_gmm)"),
    "lr_decay_every": Cited(10, f"{_CODE}: decay_n)"),
    "lr_min": Cited(0.0002, f"{_CODE}: lr_decay, max(0.9 lr, 0.0002) on MNIST)"),
    "adam_eps": Cited(1e-4, f"{_CODE}: Adam(epsilon=1e-4))"),
    "weight_decay": Cited(0.0, f"{_CODE}: no regulariser)"),
    "predict": Cited("mean", "Jiang et al. 2017, their code (VaDE_test_mnist.py: gamma at "
                             "z_mean, the reported 94.46%)"),
    "self_train_epochs": Cited(0, "Jiang et al. 2017: no warm-up (vaemix's only)"),
    "anchor_weight": Cited(0.0, "Jiang et al. 2017: no anchor (vaemix's only)"),
})


class VaDE(Model):
    """VAE with a learnable GMM prior; q(c|x) is the prior's responsibility p(c|z)."""

    clusters = True
    section = "train.vade"
    defaults = {"epochs": 100, "batch_size": 256, "lr": 0.0005}  # as params.yaml
    options = {
        "init": Key(OneOf(("ae", "none")), "ae"),
        "init_clusters": Key(OneOf(INIT_CLUSTERS), "gmm"),
        "self_train_epochs": Key(Int(0), 0),
        "self_train_weight": Key(Number(), 10.0),
        "init_posterior_var": Key(Number(nullable=True), None),
        "init_pi": Key(OneOf(("gmm", "uniform")), "uniform"),
        "predict": Key(OneOf(("mean", "samples")), "mean"),
        "predict_samples": Key(Int(), 10),
    }
    paper = PAPER

    def __init__(self, spec: ModelSpec) -> None:
        super().__init__(spec)
        self.opts = self.parse_options(spec.options)
        k, d = spec.n_clusters, spec.latent_dim
        self.trunk = build_trunk(spec.input_shape, spec.net, spec.hidden)
        self.posterior = GaussianHead(self.trunk.out_features, d)
        self.decoder = build_decoder(spec.input_shape, d, spec.net, spec.hidden)
        self.likelihood = Likelihood(spec.likelihood, spec.input_shape)
        # GMM prior. pi = softmax(pi_logits), so it stays normalised and positive (the
        # original code trains pi directly, unnormalised). Means spread as N(0, I) so that
        # init "none" does not start with K identical components.
        self.pi_logits = nn.Parameter(torch.zeros(k))
        self.mu_c = nn.Parameter(torch.randn(k, d))
        self.logvar_c_raw = nn.Parameter(torch.zeros(k, d))

    # --- the prior --------------------------------------------------------------------

    def log_pi(self) -> Tensor:
        """ln pi [K], normalised."""
        return F.log_softmax(self.pi_logits, dim=-1)

    def logvar_c(self) -> Tensor:
        """ln sigma^2_c [K, d], clamped so the variances stay positive and finite."""
        return self.logvar_c_raw.clamp(PRIOR_LOGVAR_MIN, PRIOR_LOGVAR_MAX)

    def log_gamma(self, z: Tensor) -> Tensor:
        """ln p(c|z) [..., K] by Bayes' rule in log space (Jiang et al. 2017, eq. 16):
        log_softmax_c(ln pi_c + ln N(z; mu_c, sigma^2_c)), never exp-then-normalise.
        ``z`` is [..., d]; ln pi is one number per component, not per latent dimension.
        """
        return log_mixture_posterior(z, self.log_pi(), self.mu_c, self.logvar_c())

    # --- the ELBO ---------------------------------------------------------------------

    def expected_kl_z(self, mean: Tensor, logvar: Tensor, log_gamma: Tensor) -> Tensor:
        """E_{q(c|x)} KL(q(z|x) || p(z|c)) [B] in closed form: q [B, 1, d] against the K
        components [K, d] gives [B, K], weighted by gamma = exp(log_gamma) [B, K].
        """
        kl = kl_gaussians(mean.unsqueeze(-2), logvar.unsqueeze(-2), self.mu_c, self.logvar_c())
        return (log_gamma.exp() * kl).sum(-1)

    def _terms(self, x: Tensor) -> dict[str, Tensor]:
        """Per-example ELBO terms [B] (Jiang et al. 2017, eq. 11)."""
        mean, logvar = self.posterior(self.trunk(x))
        z = reparameterize(mean, logvar)
        recon = self.likelihood.log_prob(x, self.decoder(z))
        # gamma from the sampled z, as in the paper; not detached: the original code
        # differentiates through gamma (it is part of the same loss graph), so we do too.
        log_gamma = self.log_gamma(z)  # [B, K]
        kl_z = self.expected_kl_z(mean, logvar, log_gamma)
        kl_c = kl_categorical(log_gamma, self.log_pi())  # KL(q(c|x) || p(c))
        return {"recon": recon, "kl_z": kl_z, "kl_c": kl_c, "elbo": recon - kl_z - kl_c,
                "log_gamma": log_gamma}

    def elbo_terms(self, x: Tensor) -> dict[str, Tensor]:
        """Per-example ELBO terms [B] and ln q(c|x) = ln p(c|z^) [B, K] at the same single
        sample z^ ~ q(z|x) (the gate of VaDE as a mixture of experts, Singh et al. 2018,
        sec. 5)."""
        return self._terms(x)

    def loss(self, x: Tensor) -> dict[str, Tensor]:
        t = self._terms(x)
        return {
            "loss": -t["elbo"].mean(),
            "recon_nll": -t["recon"].mean(),
            "kl_z": t["kl_z"].mean(),
            "kl_c": t["kl_c"].mean(),
        }

    def evaluate(self, x: Tensor) -> dict[str, Tensor]:
        t = self._terms(x)
        return {"test_recon_ll": t["recon"], "elbo": t["elbo"]}

    # --- codes, reconstructions, clusters, samples --------------------------------------

    def encode(self, x: Tensor) -> Tensor:
        return self.posterior(self.trunk(x))[0]

    def reconstruct(self, x: Tensor) -> Tensor:
        return self.likelihood.mean(self.decoder(self.encode(x)))

    def log_q_c(self, x: Tensor) -> Tensor:
        """ln p(c | z = mu(x)) [B, K], the posterior ``predict: mean`` takes the argmax of."""
        return self.log_gamma(self.encode(x))

    @torch.no_grad()
    def predict_clusters(self, x: Tensor) -> Tensor:
        mean, logvar = self.posterior(self.trunk(x))
        if self.opts["predict"] == "mean":
            return self.log_gamma(mean).argmax(-1)
        return self.log_gate_mc(mean, logvar, self.opts["predict_samples"],
                                PREDICT_SEED).argmax(-1)

    def log_gate_mc(self, mean: Tensor, logvar: Tensor, samples: int, seed: int) -> Tensor:
        """ln E_{q(z|x)}[p(c|z)] [B, K] by Monte Carlo with fixed-seed draws (Singh et al.
        2018, sec. 5.1): ``predict: samples`` and VaDE's gate in the mixture of experts."""
        return log_mean_posterior_mc(mean, logvar, self.log_gamma, samples, seed)

    @torch.no_grad()
    def sample_per_cluster(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        return self.decode_draws(sample_per_component(self.mu_c, self.logvar_c(), n, generator))

    # --- initialisation -----------------------------------------------------------------

    @torch.no_grad()
    def initialise(
        self,
        x_train: Tensor,
        seed: int = 0,
        ae_checkpoint: str | Path | None = None,
        start: dict[str, Any] | None = None,
        **_: Any,
    ) -> None:
        """Start from the pretrained autoencoder (init "ae", Jiang et al. 2017, sec. 3.3):
        copy its encoder body, latent layer (into the mean of q(z|x)) and decoder, then set
        pi, mu_c, sigma^2_c from a diagonal GMM fitted on its latents. Init "none" keeps the
        random start of the constructor.
        """
        if self.opts["init"] == "none":
            return
        if ae_checkpoint is None:
            raise ParamError(
                "params.yaml: 'train.vade.init' is 'ae' but no pretrained autoencoder was given"
            )
        state = load_ae_state(ae_checkpoint)
        copy_autoencoder(
            state, self.trunk, self.posterior.mean, self.decoder, self.likelihood,
            source=str(ae_checkpoint),
        )
        mix = gmm_on_encoder(self.encode, x_train, self.spec.n_clusters, seed,
                             self.opts["init_clusters"], start)
        dev = self.mu_c.device
        if self.opts["init_pi"] == "gmm":
            self.pi_logits.copy_(torch.as_tensor(mix.weights, device=dev).log())
        self.mu_c.copy_(torch.as_tensor(mix.means, device=dev))
        variances = torch.as_tensor(mix.variances, device=dev)
        self.logvar_c_raw.copy_(variances.log())
        # q(z|x) starts nearly deterministic: a constant variance, a small fraction of the
        # GMM's component variance. Left random (ln s^2 around 0), the noise of z would be
        # of the order of the clusters' own spread in the AE's unnormalised latent space, so
        # the first epochs would train the decoder on blurred codes and gamma on noise and
        # undo the pretrained start; this way VaDE starts as AE + GMM and learns s^2.
        # Kept one nat inside the encoder's clamp, where the clamp would stop its gradient.
        ratio = self.opts["init_posterior_var"]
        if ratio is not None:   # null: the head stays random, as in Jiang et al.'s code
            bias = (variances.mean(0) * ratio).log().clamp(MIN_LOGVAR + 1.0, MAX_LOGVAR - 1.0)
            self.posterior.logvar.weight.zero_()
            self.posterior.logvar.bias.copy_(bias)
        if mix.labels is not None:
            # the start's partition, not a Gaussian per cluster, is what to keep: make the
            # latents agree with it (see vaemix.models.init.self_train)
            self_train(self, x_train, mix.labels,
                       self.opts["self_train_epochs"], seed, self.opts["self_train_weight"])


METHOD = VaDE
