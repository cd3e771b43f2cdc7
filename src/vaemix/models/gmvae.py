"""GMVAE, the Gaussian mixture VAE with y summed out (Collier & Urdiales 2019, eq. 1-6).

We implement the formulation of Collier & Urdiales 2019 (eq. 1-4), which is Rui Shu's
GMVAE ("Gaussian mixture VAE: lessons in variational inference...", 2016, their ref. [1]),
not the broader model of Dilokthanakul et al. 2016 (which adds a second continuous latent
w that parameterises the component means and needs a "z-prior" term):

    p(y) = Cat(1/K),  p(z|y) = N(mu_y, diag sigma^2_y),  p(x|z) from the decoder;
    q(y, z|x) = q(y|x) q(z|x, y).

Networks (Collier & Urdiales 2019, App. A): one shared encoder h(x) (the convolutional
trunk on images, the MLP trunk otherwise); q(y|x) = softmax of two further layers
(``head_hidden``, 512 and 256 in the paper) on h; q(z|x, y) from h concatenated with the
one-hot y through layers of the same sizes; p(z|y) as one learned mean and log-variance per
y (a fully-connected layer on the one-hot y is exactly such a table); the decoder p(x|z).

Objective (eq. 6): the ELBO with the sum over all K values of y taken exactly,

    sum_y q(y|x) [ ln p(x|z_y) - KL(q(z|x,y) || p(z|y)) ] - KL(q(y|x) || p(y)),
    z_y ~ q(z|x, y),

computed as one batched pass of K copies of the batch through q(z|x,y) and the decoder
(cost linear in K, which is the point of the comparison with the Concrete GMVAE). Rui Shu
estimates ln p(z|y) - ln q(z|x,y) from the sample z_y; we use the closed-form Gaussian KL,
its expectation, which has the same value and less variance.

At test time y is fully discretised (Collier & Urdiales 2019, sec. 2, "for all models"):
``test_recon_ll`` is ln p(x|z) with z ~ q(z|x, y_hat), y_hat the one-hot argmax of q(y|x)
(their Table 1 quantity E_q[ln p(x|y,z)]); ``elbo`` is the exact marginal bound above;
clusters are argmax q(y|x). The Concrete variant and GMVAE + DP-GMM reuse this module's
networks and test-time code.

Options (``train.gmvae``, shared by the family): ``head_hidden`` (sizes of the q(y|x) and
q(z|x,y) layers), ``init`` ae | none (see :meth:`GMVAE.initialise`), ``q_init_epochs``,
``init_posterior_var`` and ``init_clusters`` gmm | spectral | spectral_consensus (for init
ae; GMVAE + DP-GMM always starts from its DP-GMM), ``prior_init_scale`` (init none:
mu_y ~ N(0, scale^2 I)).

The paper's and vaemix's. The model is Collier & Urdiales's; :data:`PAPER` is their training
recipe (App. A; the ``gmvae_paper`` runs): random networks, Adam at 1e-3, up to 200 epochs,
heads of 512 and 256 units; the batch size they do not give is Rui Shu's (their ref. [1];
RuiShu/vae-clustering, utils.py: 100). Where we differ: we run the 200 epochs without their
early stopping (patience 10 on a validation split), and on MNIST our network is model.mnist's,
shared by every model, where theirs is the convolutional one of App. A (``net: conv`` in
model.mnist gives it to every model). vaemix's protocol (``train.gmvae``) starts from vaemix's
start, an autoencoder and a partition (vaemix.start; ``init: ae``, ``q_init_epochs`` fitting the
heads to it), with a warm-up and the anchor.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vaemix.distributions import (
    kl_categorical,
    kl_gaussians,
    log_mixture_posterior,
    reparameterize,
    sample_per_component,
)
from vaemix.errors import ParamError
from vaemix.models.base import Model, ModelSpec
from vaemix.models.init import (
    INIT_CLUSTERS,
    MixtureInit,
    copy_autoencoder,
    fit_mixture,
    fit_to_targets,
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
    mlp,
)
from vaemix.protocols import Cited, Recipe
from vaemix.schema import Int, IntList, Key, Number, OneOf
from vaemix.training import batched

# Range of the prior's log-variances: wider than the encoder's clamp, since the
# autoencoder's latents (init "ae") are unnormalised (as in VaDE).
PRIOR_LOGVAR_MIN = -10.0
PRIOR_LOGVAR_MAX = 10.0

_CU = "Collier & Urdiales 2019"
# Collier & Urdiales 2019 as they train the GMVAE (vaemix.protocols: the runs gmvae_paper)
PAPER = Recipe({
    "init": Cited("none", f"{_CU}, App. A (trained from scratch; no pretraining)"),
    "epochs": Cited(200, f"{_CU}, App. A (up to 200 epochs)"),
    "batch_size": Cited(100, f"silent in {_CU}; their ref. [1], Rui Shu's GMVAE "
                             "(RuiShu/vae-clustering, utils.py: next_batch(100))"),
    "lr": Cited(0.001, f"{_CU}, App. A (Adam, initial learning rate 1e-3)"),
    "head_hidden": Cited([512, 256], f"{_CU}, App. A (q(y|x), q(z|x,y): 512 and 256)"),
    "self_train_epochs": Cited(0, f"{_CU}: no warm-up (vaemix's only)"),
    "anchor_weight": Cited(0.0, f"{_CU}: no anchor (vaemix's only)"),
})


class GMVAE(Model):
    """q(y|x), q(z|x,y), p(z|y), p(x|z); the ELBO sums over y exactly (eq. 6)."""

    clusters = True
    section = "train.gmvae"
    defaults = {"epochs": 100, "batch_size": 256, "lr": 0.001}  # as params.yaml
    options = {
        "head_hidden": Key(IntList(), [512, 256]),   # q(y|x), q(z|x,y) on the shared trunk
        "prior_init_scale": Key(Number(), 1.0),
        "init": Key(OneOf(("ae", "none")), "none"),
        "q_init_epochs": Key(Int(0), 10),
        "init_posterior_var": Key(Number(), 0.01),
        "init_clusters": Key(OneOf(INIT_CLUSTERS), "gmm"),
        "self_train_epochs": Key(Int(0), 0),
        "self_train_weight": Key(Number(), 10.0),
    }
    paper = PAPER

    def __init__(self, spec: ModelSpec) -> None:
        super().__init__(spec)
        self.opts = self.parse_options(spec.options)
        k, d = self.n_components, spec.latent_dim
        head = [int(h) for h in self.opts["head_hidden"]]
        self.trunk = build_trunk(spec.input_shape, spec.net, spec.hidden)
        width = self.trunk.out_features
        self.q_y = mlp([width, *head, k])
        self.q_z_body = mlp([width + k, *head], final_activation=True)
        self.q_z_head = GaussianHead(head[-1], d)
        self.decoder = build_decoder(spec.input_shape, d, spec.net, spec.hidden)
        self.likelihood = Likelihood(spec.likelihood, spec.input_shape)
        self.init_prior(k, d)

    # --- pieces the variants override ---------------------------------------------------

    @property
    def n_components(self) -> int:
        return self.spec.n_clusters

    def init_prior(self, k: int, d: int) -> None:
        """p(z|y) learned; p(y) uniform (eq. 2)."""
        self.prior_mean = nn.Parameter(torch.randn(k, d) * self.opts["prior_init_scale"])
        self.prior_logvar = nn.Parameter(torch.zeros(k, d))
        self.register_buffer("prior_log_weights", torch.full((k,), -math.log(k)))

    def prior_params(self) -> tuple[Tensor, Tensor]:
        return self.prior_mean, self.prior_logvar.clamp(PRIOR_LOGVAR_MIN, PRIOR_LOGVAR_MAX)

    @torch.no_grad()
    def prior_from_codes(self, z: np.ndarray, seed: int,
                         start: Mapping[str, Any] | None = None) -> MixtureInit:
        """Set p(z|y) from a diagonal mixture on latents z [N, d] (option init_clusters: EM,
        spectral or UMAP + GMM, see vaemix.models.init); p(y) stays uniform. Returns the
        mixture (with the start's partition when it has one)."""
        mix = fit_mixture(z, self.n_components, seed, self.opts["init_clusters"],
                          start)
        dev = self.prior_mean.device
        self.prior_mean.copy_(torch.as_tensor(mix.means, device=dev))
        self.prior_logvar.copy_(torch.as_tensor(mix.variances, device=dev).log())
        return mix

    def log_prior_y(self) -> Tensor:
        return self.prior_log_weights

    # --- initialisation -----------------------------------------------------------------

    def initialise(
        self, x_train: Tensor, seed: int = 0, ae_checkpoint: str | Path | None = None,
        start: Mapping[str, Any] | None = None, **_: Any
    ) -> None:
        """``init: ae``: start from the pretrained autoencoder, as VaDE does (Jiang et al.
        2017, sec. 3.3); ``none`` keeps the random start (Collier & Urdiales 2019 train from
        scratch, but on our CPU budgets a random start often merges clusters).

        The AE's trunk and decoder are copied into the shared encoder and p(x|z); p(z|y)
        comes from a mixture fitted on the AE's codes (:meth:`prior_from_codes`). q(y|x)
        and q(z|x,y) have no counterpart in the AE, so for ``q_init_epochs`` epochs they
        are fitted, with the trunk fixed, to the mixture's responsibilities p(y|code) and to
        the code itself (at the most responsible y, with a small variance, a fraction
        ``init_posterior_var`` of the components' mean variance). No label is used. With
        ``init_clusters: umap`` the whole model is then warmed up on the start's partition
        for ``self_train_epochs`` epochs (vaemix.models.init.self_train).
        """
        if self.opts["init"] == "none":
            return
        if ae_checkpoint is None:
            raise ParamError(f"params.yaml: '{self.section}.init' is 'ae' but no pretrained "
                             "autoencoder was given")
        to_z = nn.Linear(self.trunk.out_features, self.spec.latent_dim).to(x_train.device)
        copy_autoencoder(load_ae_state(ae_checkpoint), self.trunk, to_z, self.decoder,
                         self.likelihood, source=str(ae_checkpoint))

        def code(xb: Tensor) -> Tensor:
            return to_z(self.trunk(xb))

        mix = self.fit_heads_to_codes(code, x_train, seed, start)
        if mix.labels is not None:
            self_train(self, x_train, mix.labels, self.opts["self_train_epochs"],
                       seed, self.opts["self_train_weight"])

    def log_q_c(self, x: Tensor) -> Tensor:
        """log q(y|x) [B, K]."""
        return F.log_softmax(self.q_y_logits(self.trunk(x)), dim=-1)

    def fit_heads_to_codes(self, code: Callable[[Tensor], Tensor], x_train: Tensor,
                           seed: int, start: Mapping[str, Any] | None = None
                           ) -> MixtureInit:
        """The prior from a mixture on ``code(x_train)``, then q(y|x) and q(z|x,y) fitted to
        its responsibilities and to the codes, with the trunk fixed (see :meth:`initialise`).
        Returns the mixture."""
        mix = self.prior_from_codes(batched(code, x_train).numpy().astype(np.float64), seed,
                                    start)
        variances = self.prior_params()[1].detach().exp().mean(0)
        target_logvar = (variances * self.opts["init_posterior_var"]).log().clamp(
            MIN_LOGVAR + 1.0, MAX_LOGVAR - 1.0)
        k = self.n_components

        def match_codes(xb: Tensor) -> Tensor:
            with torch.no_grad():
                h = self.trunk(xb)
                c = code(xb)
                target_y = self.log_prior_posterior(c).exp()
            ce = -(target_y * F.log_softmax(self.q_y_logits(h), dim=-1)).sum(-1).mean()
            # q(z|x,y) at the most responsible y (one pass, not K)
            mean, logvar = self.q_z(h, F.one_hot(target_y.argmax(-1), k).to(h.dtype))
            sq = (mean - c).pow(2).sum(-1) + (logvar - target_logvar).pow(2).sum(-1)
            return ce + sq.mean()

        heads = [*self.q_y.parameters(), *self.q_z_body.parameters(),
                 *self.q_z_head.parameters()]
        fit_to_targets(self, heads, match_codes, x_train, self.opts["q_init_epochs"], seed,
                       lr=3e-3)
        return mix

    # --- the networks -------------------------------------------------------------------

    def q_y_logits(self, h: Tensor) -> Tensor:
        return self.q_y(h)

    def q_z(self, h: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        """q(z|x, y) from the shared encoding h [..., H] and y [..., K] (one-hot or relaxed)."""
        return self.q_z_head(self.q_z_body(torch.cat([h, y], dim=-1)))

    def decode_log_prob(self, x: Tensor, z: Tensor) -> Tensor:
        """ln p(x|z) for z [..., B, d] (any leading dims), returned as [..., B]."""
        lead = z.shape[:-1]
        out = self.decoder(z.reshape(-1, z.shape[-1])).view(*lead, *self.spec.input_shape)
        return self.likelihood.log_prob(x, out)

    def marginal_terms(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """log q(y|x) [B, K], ln p(x|z_y) [B, K] and KL(q(z|x,y)||p(z|y)) [B, K] for every
        y at once: K copies of the batch through q(z|x,y) and the decoder."""
        h = self.trunk(x)
        log_q_y = F.log_softmax(self.q_y_logits(h), dim=-1)
        k, b = self.n_components, h.shape[0]
        eye = torch.eye(k, dtype=h.dtype, device=h.device)
        mean, logvar = self.q_z(h.unsqueeze(0).expand(k, b, -1), eye.unsqueeze(1).expand(k, b, k))
        recon_ll = self.decode_log_prob(x, reparameterize(mean, logvar))  # [K, B]
        p_mean, p_logvar = self.prior_params()
        kl_z = kl_gaussians(mean, logvar, p_mean.unsqueeze(1), p_logvar.unsqueeze(1))  # [K, B]
        return log_q_y, recon_ll.T, kl_z.T

    def marginal_elbo(self, x: Tensor) -> dict[str, Tensor]:
        """Eq. 6 per example: the expectations over y are exact sums weighted by q(y|x)."""
        log_q_y, recon_ll, kl_z = self.marginal_terms(x)
        q_y = log_q_y.exp()
        recon = (q_y * recon_ll).sum(-1)
        kl_zs = (q_y * kl_z).sum(-1)
        kl_y = kl_categorical(log_q_y, self.log_prior_y())
        return {"elbo": recon - kl_zs - kl_y, "recon_ll": recon, "kl_z": kl_zs, "kl_y": kl_y}

    # --- objective ----------------------------------------------------------------------

    def loss(self, x: Tensor) -> dict[str, Tensor]:
        t = {k: v.mean() for k, v in self.marginal_elbo(x).items()}
        return {"loss": -t["elbo"], "recon_nll": -t["recon_ll"], "kl_z": t["kl_z"],
                "kl_y": t["kl_y"]}

    def evaluate(self, x: Tensor) -> dict[str, Tensor]:
        h = self.trunk(x)
        y_hat = F.one_hot(self.q_y_logits(h).argmax(-1), self.n_components).to(h.dtype)
        recon_ll = self.decode_log_prob(x, reparameterize(*self.q_z(h, y_hat)))
        return {"test_recon_ll": recon_ll, "elbo": self.marginal_elbo(x)["elbo"]}

    # --- test-time use ------------------------------------------------------------------

    def encode(self, x: Tensor) -> Tensor:
        """Mean of q(z|x, y_hat) at the most probable y_hat."""
        h = self.trunk(x)
        y_hat = F.one_hot(self.q_y_logits(h).argmax(-1), self.n_components).to(h.dtype)
        return self.q_z(h, y_hat)[0]

    def reconstruct(self, x: Tensor) -> Tensor:
        return self.likelihood.mean(self.decoder(self.encode(x)))

    def predict_clusters(self, x: Tensor) -> Tensor:
        return self.q_y_logits(self.trunk(x)).argmax(-1)

    def log_prior_posterior(self, z: Tensor) -> Tensor:
        """log p(y|z) under the prior mixture, [B, K] (normalised, in log space)."""
        return log_mixture_posterior(z, self.log_prior_y(), *self.prior_params())

    def sample_components(self) -> Tensor:
        """The components shown by ``sample_per_cluster`` (all of them here)."""
        return torch.arange(self.n_components, device=self.prior_mean.device)

    @torch.no_grad()
    def sample_per_cluster(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        p_mean, p_logvar = self.prior_params()
        comps = self.sample_components()
        return self.decode_draws(sample_per_component(p_mean[comps], p_logvar[comps], n, generator))


METHOD = GMVAE
