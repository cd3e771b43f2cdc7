"""GMVAE + DP-GMM, the alternating network of Nagpal et al. 2019 (sec. 3, Algorithm 1).

Algorithm 1 alternates two maximisations: fit a Dirichlet-process GMM on the encoder's
latents, then train the GMVAE against the prior that DP-GMM gives. The report leaves most
details open; our reading, with each choice a param of ``train.gmvae_dpgmm``:

- Networks as the GMVAE (:mod:`vaemix.models.gmvae`), with q(y|x) over the DP truncation
  T = ``truncation_factor`` x K components (above K, the DP chooses how many to use; the
  paper gives it K).
- Every ``refit_every`` epochs (Algorithm 1: every epoch) the latents of up to
  ``refit_max_points`` training points are fitted by scikit-learn's
  ``BayesianGaussianMixture`` (Dirichlet-process weights, diagonal covariances); its
  weights, means and variances become p(y) and p(z|y). They are buffers, copied in place:
  no parameter of the optimiser changes shape or identity. Refits warm-start from the
  previous fit (``dp_warm_start``, vaemix's), so component k stays component k and q(y|x)'s
  outputs keep their meaning. Or each refit is a new fit (the paper's Algorithm 1), whose
  components are then put in the slots of the previous prior's nearest ones
  (:func:`match_components`, vaemix's: a relabelling, the fit unchanged). From a random
  start the warm start is a ratchet: a component whose weight falls to ~0 never gets
  points back, and both 100-epoch MNIST runs so ended with one.
- The latents are draws z ~ q(z|x, y_hat) (``refit_on: sample``, default) or the means
  (``mean``). Fitting the means alone gives components narrower than the posteriors, so
  KL(q(z|x,y) || p(z|y)) explodes (at the random start by a factor ~1/variance); the draws
  follow the aggregate posterior, which is what a prior should match.
- Between refits the GMVAE is trained with y drawn from Gumbel-softmax (``hard`` false:
  the paper's "soft Gumbel"; true: straight-through "hard Gumbel") exactly as the Concrete
  GMVAE (eq. 7-8 of Collier & Urdiales 2019, with its KL annealing options).
- The cluster of x is the DP-GMM component with the highest posterior p(y|mu(x)) under the
  current prior (DESIGN: "DP-GMM component"); components above ``min_weight`` count as
  effective, logged each epoch (the ``n_components_effective`` curve) and in the metrics.
- No label enters the loop. The DP-GMM is refit on the training split only.
- Its priors are scikit-learn's unless set: the DP concentration ``weight_concentration_prior``
  (1/T) and the Wishart pseudo-count ``degrees_of_freedom_prior`` (the latent dim). The
  second, not the first, decides how many components keep weight on real latents
  (``bench/dpgmm_prior.py``): the concentration's log-prior per component is a few nats
  against thousands of nats of fit, while the pseudo-count holds every component's
  variance near the codes' own.

Nagpal et al. report the alternation as unstable (sec. 5); we implement it as described
and let the benchmark show how it behaves.

The paper's and vaemix's. :data:`PAPER` is Nagpal et al.'s recipe as far as they give it (the
``gmvae_dpgmm_paper`` runs and the latent sweep): random networks, 100 epochs (sec. 4.4), a new
DP-GMM fitted every epoch on the encoder's latent draws (Algorithm 1; sec. 6 sees no component
weight fall to 0), 10 DP components on MNIST (sec. 6: T = K), soft Gumbel. Their code is not
public; what they leave open (batch size, optimiser, temperature, annealing, heads) is the
Concrete GMVAE's recipe (:mod:`vaemix.models.concrete_gmvae`), and the DP-GMM's priors are
scikit-learn's. vaemix's protocol (``train.gmvae_dpgmm``) starts the first DP-GMM from vaemix's
start partition of the pretrained autoencoder's codes (vaemix.start), on T = 3K components and
posterior draws, with a warm-up and the anchor.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import BayesianGaussianMixture
from torch import Tensor

from vaemix.distributions import reparameterize
from vaemix.errors import DataError, ParamError
from vaemix.models.base import ModelSpec
from vaemix.models.concrete_gmvae import PAPER as CONCRETE_PAPER
from vaemix.models.concrete_gmvae import ConcreteGMVAE
from vaemix.models.gmvae import GMVAE
from vaemix.models.init import MIN_VARIANCE, PARTITION_STARTS, MixtureInit, fit_mixture
from vaemix.protocols import Cited, Recipe
from vaemix.schema import Bool, Int, Key, Number, OneOf
from vaemix.training import batched

DP_OPTIONS = {
    "truncation_factor": Key(Number(low=1.0, strict=False), 1),   # T = factor * K, >= K
    "weight_concentration_prior": Key(Number(nullable=True), None),   # None: 1 / T
    "degrees_of_freedom_prior": Key(Number(nullable=True), None),     # None: the latent dim
    "refit_every": Key(Int(), 1),
    "refit_max_points": Key(Int(), 10000),
    "dp_max_iter": Key(Int(), 200),
    "min_weight": Key(Number(high=1.0), 0.01),
    "refit_on": Key(OneOf(("sample", "mean")), "sample"),
    "dp_warm_start": Key(Bool(), False),   # false: a new DP-GMM each refit, relabelled
}
_NAGPAL = "Nagpal et al. 2019"
_SILENT = f"silent in {_NAGPAL}; the Concrete GMVAE's (Collier & Urdiales 2019)"
# Nagpal et al. 2019 as they train the alternating network (the runs gmvae_dpgmm_paper)
PAPER = Recipe({
    **{k: Cited(c.value, f"{_SILENT}: {c.source}") for k, c in CONCRETE_PAPER.settings.items()
       if k not in ("init", "epochs", "self_train_epochs", "anchor_weight")},
    "init": Cited("none", f"{_NAGPAL}, sec. 4.4 (no pretraining in the first two experiments)"),
    "epochs": Cited(100, f"{_NAGPAL}, sec. 4.4 (trained for 100 epochs)"),
    "hard": Cited(False, f"{_NAGPAL}, sec. 4.4 (soft Gumbel; hard is their second run)"),
    "truncation_factor": Cited(1, f"{_NAGPAL}, sec. 6 (10 components given to the DP-GMM "
                                  "on MNIST, T = K)"),
    "refit_every": Cited(1, f"{_NAGPAL}, Algorithm 1 (a DP-GMM fit every epoch)"),
    # Algorithm 1's X_latent = Encoder(X) read as the encoder's latent draw, the z the
    # decoder sees: its means alone spread ~1e-3 at a random start, the DP's variances
    # follow (~1e-4) and the KL to that prior holds the latents there (both full-budget
    # runs on the means collapsed to one cluster: reports/benchmarks/
    # paper_full_gmvae_dpgmm_collapse.md)
    "refit_on": Cited("sample", f"{_NAGPAL}, Algorithm 1 (X_latent = Encoder(X), the "
                                "encoder's draw z)"),
    # "mean, var <- DPGMM(X_latent)" each epoch: a new fit, and sec. 6 sees no component
    # weight fall to 0, which warm-started refits from a random start do (measured)
    "dp_warm_start": Cited(False, f"{_NAGPAL}, Algorithm 1 (a DP-GMM fitted each epoch) "
                                  "and sec. 6 (no component's weight falls to 0)"),
    "weight_concentration_prior": Cited(None, f"silent in {_NAGPAL}; scikit-learn's 1/T"),
    "degrees_of_freedom_prior": Cited(None, f"silent in {_NAGPAL}; scikit-learn's, the "
                                            "latent dim"),
    "self_train_epochs": Cited(0, f"{_NAGPAL}: no warm-up (vaemix's only)"),
    "anchor_weight": Cited(0.0, f"{_NAGPAL}: no anchor (vaemix's only)"),
})
MIN_WEIGHT_FLOOR = 1e-10  # floor on DP weights before taking logs
# The fitted attributes of BayesianGaussianMixture that its warm start reads.
DP_STATE = (
    "weight_concentration_", "mean_precision_", "means_", "degrees_of_freedom_",
    "covariances_", "precisions_cholesky_", "precisions_", "weights_", "lower_bound_",
    "n_iter_", "converged_", "n_features_in_",
)


def match_components(old_means: np.ndarray, new_means: np.ndarray) -> np.ndarray:
    """The order of the new components that puts each in the slot of the old component
    nearest to it (the assignment of least total squared distance between means, Kuhn
    1955): ``new[order][k]`` takes over old component k, so q(y|x)'s k-th output keeps
    naming the same region of the latent space across fresh DP-GMM fits."""
    cost = ((old_means[:, None, :] - new_means[None, :, :]) ** 2).sum(-1)
    rows, cols = linear_sum_assignment(cost)
    return cols[np.argsort(rows)]


def load_gmvae(path: str | Path, spec: ModelSpec) -> GMVAE:
    """The ``gmvae`` of a checkpoint (``model.pt`` of a train stage), checked against the
    network shape of ``spec``; a missing or mismatched file names itself."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: trained GMVAE not found; run its train stage first")
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    if ckpt.get("method") != "gmvae":
        raise DataError(f"{path}: expected a 'gmvae' checkpoint, found {ckpt.get('method')!r}")
    theirs = ModelSpec(**{**ckpt["spec"], "input_shape": tuple(ckpt["spec"]["input_shape"]),
                          "hidden": tuple(ckpt["spec"]["hidden"])})
    same = ("input_shape", "latent_dim", "net", "hidden", "likelihood")
    if any(getattr(theirs, k) != getattr(spec, k) for k in same):
        shape = ", ".join(f"{k}={getattr(theirs, k)}" for k in same)
        raise DataError(f"{path}: its networks ({shape}) do not match this model's; "
                        "retrain it with the same model.<dataset> params")
    model = GMVAE(theirs)
    model.load_state_dict(ckpt["state_dict"])
    return model


class GMVAEDPGMM(ConcreteGMVAE):
    """Concrete-trained GMVAE whose prior p(y), p(z|y) is refit by a DP-GMM (Algorithm 1)."""

    section = "train.gmvae_dpgmm"
    defaults = {"epochs": 100, "batch_size": 256, "lr": 0.001}  # as params.yaml
    learns_k = True   # the DP-GMM prior keeps the components its data need
    options = {**ConcreteGMVAE.options, **DP_OPTIONS,
               "init": Key(OneOf(("ae", "none", "gmvae")), "none")}   # gmvae: the sweep's
    paper = PAPER

    def __init__(self, spec: ModelSpec) -> None:
        super().__init__(spec)
        self._refit_data: Tensor | None = None
        self._seed = 0
        self._dpgmm: BayesianGaussianMixture | None = None
        self.refits: list[dict[str, int]] = []

    @property
    def n_components(self) -> int:
        return int(math.ceil(self.opts["truncation_factor"] * self.spec.n_clusters))

    def init_prior(self, k: int, d: int) -> None:
        """Buffers, set by each DP-GMM refit (before the first: N(0, I) mixed uniformly)."""
        self.register_buffer("prior_mean", torch.randn(k, d) * self.opts["prior_init_scale"])
        self.register_buffer("prior_logvar", torch.zeros(k, d))
        self.register_buffer("prior_log_weights", torch.full((k,), -math.log(k)))

    def prior_params(self) -> tuple[Tensor, Tensor]:
        return self.prior_mean, self.prior_logvar

    # --- Algorithm 1 --------------------------------------------------------------------

    def initialise(self, x_train: Tensor, seed: int = 0,
                   gmvae_checkpoint: str | Path | None = None, **kwargs: Any) -> None:
        """Keep (a seeded subset of) the training inputs for the DP-GMM refits, then start
        as the GMVAE does (with init ae, the first DP-GMM is fitted on the AE's codes).

        ``init: gmvae`` is the third experiment of Nagpal et al. 2019 (sec. 4): the
        alternating network started from a GMVAE trained alone. Its trunk, decoder and
        likelihood are copied; q(y|x) and q(z|x,y) cannot be, since they cover K values of
        y and ours covers the truncation T > K, so the first DP-GMM is fitted on the
        GMVAE's latents (the means of q(z|x, y_hat)) and our heads are fitted to them, as
        with the autoencoder's codes for init ae.
        """
        n = min(len(x_train), self.opts["refit_max_points"])
        gen = torch.Generator().manual_seed(seed)
        idx = torch.randperm(len(x_train), generator=gen)[:n].sort().values
        self._refit_data = x_train[idx.to(x_train.device)]
        self._seed = seed
        if self.opts["init"] != "gmvae":
            super().initialise(x_train, seed=seed, **kwargs)
            return
        if gmvae_checkpoint is None:
            raise ParamError(f"params.yaml: '{self.section}.init' is 'gmvae', which only the "
                             "latent sweep's from_gmvae_z@ stages use (latent_sweep.from_gmvae); "
                             "train@ starts from 'ae' or 'none'")
        source = load_gmvae(gmvae_checkpoint, self.spec).to(x_train.device).eval()
        for mine, theirs in ((self.trunk, source.trunk), (self.decoder, source.decoder),
                             (self.likelihood, source.likelihood)):
            mine.load_state_dict(theirs.state_dict())
        self.fit_heads_to_codes(source.encode, x_train, seed)

    def start_epoch(self, epoch: int, n_epochs: int) -> None:
        if epoch % self.opts["refit_every"] == 0:
            self.refit()

    @torch.no_grad()
    def refit(self) -> int:
        """Fit the DP-GMM on the current latents and copy it into the prior, in place.
        Returns the effective number of components."""
        if self._refit_data is None:
            raise RuntimeError("GMVAEDPGMM.initialise(x_train) must be called before training")
        was_training = self.training
        self.eval()
        encode = self.encode if self.opts["refit_on"] == "mean" else self.sample_latent
        z = batched(encode, self._refit_data).numpy().astype(np.float64)
        self.train(was_training)
        self._fit_dp(z)
        n_eff = self.n_effective()
        self.refits.append({"refit": len(self.refits) + 1, "n_components_effective": n_eff})
        return n_eff

    def sample_latent(self, x: Tensor) -> Tensor:
        """z ~ q(z|x, y_hat): a draw, so the DP-GMM's variances include the posterior's."""
        h = self.trunk(x)
        y_hat = F.one_hot(self.q_y_logits(h).argmax(-1), self.n_components).to(h.dtype)
        return reparameterize(*self.q_z(h, y_hat))

    @torch.no_grad()
    def prior_from_codes(self, z: np.ndarray, seed: int,
                         start: Mapping[str, Any] | None = None) -> MixtureInit:
        """init ae: the first DP-GMM fit is on the autoencoder's codes (Algorithm 1).

        With ``init_clusters: umap`` that fit's variational posterior starts from the N2D
        partition of the codes (McConville et al. 2020; :func:`umap_mixture`; or the
        partition ``umap_or_spectral`` chooses, :func:`umap_or_spectral_mixture`), one-hot
        responsibilities on the first K of the T components, instead of scikit-learn's
        k-means start; the partition is returned as ``labels``, so the model is warmed up
        on it and held to it as the other mixture models are. The other starts do not
        apply: without these the DP-GMM starts as scikit-learn's does."""
        self._seed = seed
        labels = None
        if self.opts["init_clusters"] in PARTITION_STARTS:
            labels = fit_mixture(z, self.spec.n_clusters, seed, self.opts["init_clusters"],
                                 start).labels
            self._dpgmm = self._new_dpgmm()
            resp = np.zeros((len(z), self.n_components))
            resp[np.arange(len(z)), labels] = 1.0
            # scikit-learn (pinned) has no public start from responsibilities: its own
            # initialisation step with ours, then fit() continues from it (warm_start)
            self._dpgmm._check_parameters(z)
            self._dpgmm._initialize(z, resp)
            self._dpgmm.converged_, self._dpgmm.lower_bound_ = False, -np.inf
        self._fit_dp(z)
        return MixtureInit(weights=self.prior_log_weights.exp().cpu().numpy(),
                           means=self.prior_mean.cpu().numpy(),
                           variances=self.prior_logvar.exp().cpu().numpy(), labels=labels)

    def _new_dpgmm(self) -> BayesianGaussianMixture:
        return BayesianGaussianMixture(
            n_components=self.n_components,
            covariance_type="diag",
            weight_concentration_prior_type="dirichlet_process",
            weight_concentration_prior=self.opts["weight_concentration_prior"],
            degrees_of_freedom_prior=self.opts["degrees_of_freedom_prior"],
            max_iter=self.opts["dp_max_iter"],
            reg_covar=1e-6,
            random_state=self._seed,
            # warm: later fits start from this one, so components keep their index
            warm_start=self.opts["dp_warm_start"],
        )

    def _fit_dp(self, z: np.ndarray) -> None:
        """Fit the DP-GMM on ``z`` and copy it into the prior. A fresh fit (``dp_warm_start``
        false) is relabelled to the previous prior's components (:func:`match_components`);
        a DP-GMM that ``prior_from_codes`` initialised but has not fitted (no ``n_iter_``)
        is fitted from that initialisation either way."""
        fresh = not self.opts["dp_warm_start"]
        if self._dpgmm is None or (fresh and hasattr(self._dpgmm, "n_iter_")):
            self._dpgmm = self._new_dpgmm()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            self._dpgmm.fit(z)
        means = self._dpgmm.means_
        weights = np.maximum(self._dpgmm.weights_, MIN_WEIGHT_FLOOR)
        variances = np.maximum(self._dpgmm.covariances_, MIN_VARIANCE)
        if fresh:
            order = match_components(self.prior_mean.cpu().numpy().astype(np.float64), means)
            means, weights, variances = means[order], weights[order], variances[order]
        dev = self.prior_mean.device
        self.prior_mean.copy_(torch.as_tensor(means, dtype=torch.float32).to(dev))
        self.prior_logvar.copy_(torch.as_tensor(np.log(variances), dtype=torch.float32).to(dev))
        self.prior_log_weights.copy_(
            torch.as_tensor(np.log(weights / weights.sum()), dtype=torch.float32).to(dev)
        )

    # --- the DP-GMM travels with the model's state dict (checkpoints, resume) ----------

    def get_extra_state(self) -> dict[str, Any]:
        """The fitted DP-GMM (what its warm start continues from) and the refit history, as
        tensors and numbers, so a model restored from a checkpoint refits exactly as the
        uninterrupted one would."""
        dp = None
        if self._dpgmm is not None and hasattr(self._dpgmm, "converged_"):
            dp = {}
            for name in DP_STATE:
                value = getattr(self._dpgmm, name)
                if isinstance(value, tuple):
                    dp[name] = tuple(torch.as_tensor(v) for v in value)
                elif isinstance(value, np.ndarray):
                    dp[name] = torch.as_tensor(value)
                else:
                    dp[name] = value.item() if hasattr(value, "item") else value
        return {"seed": self._seed, "refits": [r["n_components_effective"] for r in self.refits],
                "dpgmm": dp}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        self._seed = int(state["seed"])
        self.refits = [{"refit": i + 1, "n_components_effective": int(n)}
                       for i, n in enumerate(state["refits"])]
        self._dpgmm = None
        if state["dpgmm"] is not None:
            self._dpgmm = self._new_dpgmm()
            for name, value in state["dpgmm"].items():
                if isinstance(value, tuple):
                    value = tuple(v.numpy() for v in value)
                elif isinstance(value, Tensor):
                    value = value.numpy()
                setattr(self._dpgmm, name, value)

    def n_effective(self) -> int:
        return int((self.prior_log_weights.exp() > self.opts["min_weight"]).sum())

    def loss(self, x: Tensor) -> dict[str, Tensor]:
        terms = super().loss(x)
        terms["n_components_effective"] = torch.tensor(float(self.n_effective()))
        return terms

    def summary_metrics(self) -> dict[str, Any]:
        return {"n_components_effective": self.n_effective(), "n_refits": len(self.refits)}

    # --- test time: the DP-GMM component ------------------------------------------------

    def predict_clusters(self, x: Tensor) -> Tensor:
        return self.log_prior_posterior(self.encode(x)).argmax(-1)

    def log_q_c(self, x: Tensor) -> Tensor:
        """ln p(y | z = encode(x)) [B, T] under the DP-GMM prior, differentiable in the
        encoder: the posterior ``predict_clusters`` takes the argmax of, so the warm-up and
        the anchor train the latents into the DP components of the start's partition."""
        return self.log_prior_posterior(self.encode(x))

    def sample_components(self) -> Tensor:
        """The effective components, heaviest first."""
        w = self.prior_log_weights.exp()
        order = torch.argsort(w, descending=True)
        return order[w[order] > self.opts["min_weight"]]


METHOD = GMVAEDPGMM
