"""Mixture of VAEs with a manager network (Zeldes 2018).

K independent expert VAEs, each with q_k(z|x), p_k(x|z) and the prior N(0, I), and a
manager that maps x to a soft choice p(x) = softmax(manager(x)) over the experts. As in a
mixture of experts (Jacobs et al. 1991), the training loss is the manager-weighted sum of
the experts' losses, here their negative ELBOs,

    loss = mean_x  sum_k p_k(x) (-ELBO_k(x))  +  balance_weight * balance(batch),

so (Zeldes 2018) the manager decides which experts learn from x, and the gradient
dloss/dlogit_k = p_k (-ELBO_k - sum_j p_j (-ELBO_j)) moves the manager towards the expert
that explains x best. Nothing is detached: the manager is trained through p_k * ELBO_k.

Collapse. Zeldes 2018 warns that the manager may degenerate into a constant output, one
expert modelling every digit and the others nothing, and, citing the MoE paper, adds a term
that keeps the manager's outputs summed over a batch near uniform. That paper (Shazeer
et al. 2017, eq. 6) uses the squared coefficient of variation of the batch "importance"
sum_x p(x); ``balance: cv2`` is that term, ``balance: kl`` is KL(mean_x p(x) || uniform).
Both are zero exactly at a uniform batch average and positive otherwise.

Evaluation treats the model as a mixture with p(k) = 1/K and the manager as q(k|x):

    ln p(x) >= E_{q(k|x)}[ELBO_k(x)] - KL(q(k|x) || p(k))          (``elbo``)

and ``test_recon_ll`` = E_{q(k|x)} E_{q_k(z|x)}[ln p_k(x|z)]. (The training loss drops
the entropy part of that KL, as Zeldes 2018 does; the balance term replaces it, acting
on the batch average instead of on each example.)

All K experts run as one batched computation: stacked weights [K, in, out] and batched
matmuls for MLP experts (``networks.BatchedLinear``), and ``torch.func`` (stacked
parameters, ``functional_call`` under ``vmap``) for convolutional experts. The experts and
the manager are MLPs for every other net: ``net: cae`` (vaemix's start on MNIST, Guo et al.
2018's autoencoder) gives the codes of the start's autoencoder only, since MoVAE copies no
weights from it and K such experts would cost K autoencoders a step.

Options (``train.movae`` in params.yaml):
    balance_weight  weight of the batch-balance term (>= 0)
    balance         cv2 | kl | variance (Zeldes's notebook: the importance's variance), the
                    balance term (see above)
    expert_hidden   hidden sizes of each expert's encoder (decoder mirrored); for conv
                    datasets the last entry is the width of the fully-connected layer
    manager_hidden  hidden sizes of the manager MLP; for conv datasets the manager is a
                    conv trunk whose fully-connected width is the last entry
    init            none: random networks (Zeldes 2018) | ae: the whole model is first
                    warmed up (``self_train_epochs`` epochs, ``self_train_weight``) on the
                    partition of the pretrained autoencoder's codes found by
                    ``init_clusters`` (umap, gmm, spectral, ...; vaemix.models.init), so the
                    manager starts from the label-free clustering the other models start from

The paper's and vaemix's. The model and its loss are Zeldes's; :data:`PAPER` is the recipe of
his notebook (yoel-zeldes.github.io, content/vae-moe/vae-moe.ipynb, ``params``; the
``movae_paper`` runs): random networks, 100 epochs, batch 100, Adam 1e-3, one hidden layer of
128 units in every network, and 0.1 times the variance of the batch importance (``balance:
variance``). Where we differ: our networks use ReLU and the dataset's likelihood
(model.<dataset>; his use sigmoid units and a Gaussian of std 0.5 on MNIST), and he trains on
TensorFlow's 55,000-image MNIST split. vaemix's protocol (``train.movae``) warms the manager up
on vaemix's start partition (vaemix.start) and keeps the anchor, with wider networks and a CV^2
balance term.
"""

from __future__ import annotations

import copy
import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call, stack_module_state, vmap

from vaemix.distributions import kl_categorical, kl_normal_std, reparameterize
from vaemix.errors import ParamError
from vaemix.models.base import Model, ModelSpec
from vaemix.models.init import INIT_CLUSTERS, ae_codes, fit_mixture, self_train
from vaemix.networks import (
    MAX_LOGVAR,
    MIN_LOGVAR,
    BatchedLinear,
    ConvDecoder,
    ConvTrunk,
    GaussianHead,
    Likelihood,
    batched_mlp,
    mlp,
)
from vaemix.protocols import Cited, Recipe
from vaemix.schema import Int, IntList, Key, Number, OneOf

BALANCES = ("cv2", "kl", "variance")

_NOTEBOOK = "Zeldes 2018, his notebook (yoel-zeldes.github.io, content/vae-moe/vae-moe.ipynb"
# Zeldes 2018 as he trains the mixture of VAEs (vaemix.protocols: the runs movae_paper)
PAPER = Recipe({
    "init": Cited("none", f"{_NOTEBOOK}: global_variables_initializer, no pretraining)"),
    "epochs": Cited(100, f"{_NOTEBOOK}: params['epochs'])"),
    "batch_size": Cited(100, f"{_NOTEBOOK}: params['batch_size'])"),
    "lr": Cited(0.001, f"{_NOTEBOOK}: params['learning_rate'], AdamOptimizer)"),
    "balance": Cited("variance", f"{_NOTEBOOK}: Manager._calculate_loss, the variance of the "
                                 "batch importance by tf.nn.moments)"),
    "balance_weight": Cited(0.1, f"{_NOTEBOOK}: params['balancing_weight'])"),
    "expert_hidden": Cited([128], f"{_NOTEBOOK}: params['encoder_layers'], "
                                  "params['decoder_layers'])"),
    "manager_hidden": Cited([128], f"{_NOTEBOOK}: params['manager_layers'])"),
    "self_train_epochs": Cited(0, "Zeldes 2018: no warm-up (vaemix's only)"),
    "anchor_weight": Cited(0.0, "Zeldes 2018: no anchor (vaemix's only)"),
})


def balance_cv2(p: Tensor) -> Tensor:
    """CV^2 of the batch importance sum_x p(x) [K] (Shazeer et al. 2017, eq. 6); p: [B, K]."""
    importance = p.sum(0)
    return importance.var(unbiased=False) / importance.mean().pow(2)


def balance_variance(p: Tensor) -> Tensor:
    """The (population) variance of the batch importance sum_x p(x) [K], the term of
    Zeldes's own notebook (tf.nn.moments); = (B/K)^2 CV^2 for a batch of B."""
    return p.sum(0).var(unbiased=False)


def balance_kl(log_p: Tensor) -> Tensor:
    """KL(mean_x p(x) || uniform) from the manager's log-probabilities [B, K]."""
    b, k = log_p.shape
    log_mean = torch.logsumexp(log_p, 0) - math.log(b)
    return kl_categorical(log_mean, torch.full_like(log_mean, -math.log(k)))


class StackedModules(nn.Module):
    """K modules of one architecture with independent weights, evaluated as one vmapped
    call (torch.func model ensembling). The weights live here as parameters [K, ...];
    the architecture is kept as a parameter-free "meta" template.
    """

    def __init__(self, modules: list[nn.Module]) -> None:
        super().__init__()
        params, buffers = stack_module_state(modules)
        if buffers:
            raise ValueError("StackedModules does not support buffers")
        self.names = list(params)
        self.stacked = nn.ParameterDict(
            {n.replace(".", "__"): nn.Parameter(p.detach().clone()) for n, p in params.items()}
        )
        self._template = [copy.deepcopy(modules[0]).to("meta")]  # a list: not a submodule

    def _params(self) -> dict[str, Tensor]:
        return {n: self.stacked[n.replace(".", "__")] for n in self.names}

    def forward(self, x: Tensor, shared: bool = True) -> Any:
        """x [B, ...] given to every member (``shared``) or [K, B, ...]; outputs [K, B, ...]."""
        template = self._template[0]

        def call(params: dict[str, Tensor], inp: Tensor) -> Any:
            return functional_call(template, params, (inp,))

        return vmap(call, in_dims=(0, None if shared else 0))(self._params(), x)

    def member(self, k: int) -> nn.Module:
        """The k-th member as a stand-alone module (a copy, for checks and export)."""
        device = next(iter(self.stacked.values())).device
        module = copy.deepcopy(self._template[0]).to_empty(device=device)
        module.load_state_dict({n: p[k].detach() for n, p in self._params().items()})
        return module


class _ConvEncoder(nn.Module):
    def __init__(self, input_shape: tuple[int, ...], latent_dim: int, hidden: int) -> None:
        super().__init__()
        self.trunk = ConvTrunk(input_shape, hidden)
        self.head = GaussianHead(hidden, latent_dim)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return self.head(self.trunk(x))


class MoVAE(Model):
    """Manager + K expert VAEs (Zeldes 2018); cluster of x = argmax_k p_k(x)."""

    clusters = True
    section = "train.movae"
    defaults = {"epochs": 100, "batch_size": 256, "lr": 0.001}  # as params.yaml
    options = {
        "balance_weight": Key(Number(strict=False), 0.1),
        "balance": Key(OneOf(BALANCES), "variance"),
        "expert_hidden": Key(IntList(), [128]),
        "manager_hidden": Key(IntList(), [128]),
        "init": Key(OneOf(("none", "ae")), "none"),
        "init_clusters": Key(OneOf(INIT_CLUSTERS), "gmm"),
        "self_train_epochs": Key(Int(0), 0),
        "self_train_weight": Key(Number(), 10.0),
    }
    paper = PAPER

    def __init__(self, spec: ModelSpec) -> None:
        super().__init__(spec)
        opts = self.parse_options(spec.options)
        self.opts = opts
        self.balance_weight: float = opts["balance_weight"]
        self.balance: str = opts["balance"]
        k, d, shape = spec.n_clusters, spec.latent_dim, tuple(spec.input_shape)
        n_in = math.prod(shape)
        eh, mh = opts["expert_hidden"], opts["manager_hidden"]
        self.conv = spec.net == "conv"
        if self.conv:
            if len(shape) != 3:
                raise ValueError(f"net 'conv' needs image input [C, H, W], got {shape}")
            self.manager = nn.Sequential(ConvTrunk(shape, mh[-1]), nn.Linear(mh[-1], k))
            self.encoders = StackedModules([_ConvEncoder(shape, d, eh[-1]) for _ in range(k)])
            self.decoders = StackedModules([ConvDecoder(shape, d, eh[-1]) for _ in range(k)])
        else:
            self.manager = nn.Sequential(nn.Flatten(), mlp([n_in, *mh, k]))
            self.encoders = nn.Sequential(
                batched_mlp(k, [n_in, *eh], final_activation=True), BatchedLinear(k, eh[-1], 2 * d)
            )
            self.decoders = batched_mlp(k, [d, *reversed(eh), n_in])
        # one observation model per expert: for the Gaussian likelihood each expert learns
        # its own per-dimension variance, [K, 1, *shape], broadcast against outputs [K, B, ...]
        self.likelihood = Likelihood(spec.likelihood, shape)
        if spec.likelihood == "gaussian":
            self.likelihood.logvar = nn.Parameter(torch.full((k, 1, *shape), -2.0))

    # --- the K experts, batched ---------------------------------------------------------

    def expert_posteriors(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Every expert's q_k(z|x): mean and log-variance, each [K, B, d]."""
        if self.conv:
            mean, logvar = self.encoders(x)
        else:
            mean, logvar = self.encoders(x.flatten(1)).chunk(2, dim=-1)
        return mean, logvar.clamp(MIN_LOGVAR, MAX_LOGVAR)

    def expert_decode(self, z: Tensor) -> Tensor:
        """Decoder outputs of p_k(x|z_k) for z [K, B, d]: [K, B, *input_shape]."""
        if self.conv:
            return self.decoders(z, shared=False)
        return self.decoders(z).view(*z.shape[:2], *self.spec.input_shape)

    def _terms(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Manager log-probabilities, E_q ln p_k(x|z) (one sample) and KL_k, each [B, K]."""
        log_p = F.log_softmax(self.manager(x), dim=-1)
        mean, logvar = self.expert_posteriors(x)
        recon_ll = self.likelihood.log_prob(x, self.expert_decode(reparameterize(mean, logvar)))
        return log_p, recon_ll.T, kl_normal_std(mean, logvar).T

    # --- the Model interface ------------------------------------------------------------

    def loss(self, x: Tensor) -> dict[str, Tensor]:
        log_p, recon_ll, kl = self._terms(x)
        p = log_p.exp()
        weighted_nelbo = (p * (kl - recon_ll)).sum(-1).mean()
        balance = {"cv2": balance_cv2, "variance": balance_variance}.get(
            self.balance, lambda _: balance_kl(log_p))(p)
        return {
            "loss": weighted_nelbo + self.balance_weight * balance,
            "weighted_nelbo": weighted_nelbo,
            "balance": balance,
            "recon_nll": -(p * recon_ll).sum(-1).mean(),
            "kl": (p * kl).sum(-1).mean(),
        }

    def evaluate(self, x: Tensor) -> dict[str, Tensor]:
        log_p, recon_ll, kl = self._terms(x)
        p = log_p.exp()
        k = log_p.shape[-1]
        kl_k = kl_categorical(log_p, torch.full_like(log_p, -math.log(k)))
        return {
            "test_recon_ll": (p * recon_ll).sum(-1),
            "elbo": (p * (recon_ll - kl)).sum(-1) - kl_k,
        }

    def predict_clusters(self, x: Tensor) -> Tensor:
        return self.manager(x).argmax(-1)

    def log_q_c(self, x: Tensor) -> Tensor:
        """The manager's log p_k(x) [B, K]."""
        return F.log_softmax(self.manager(x), dim=-1)

    def initialise(self, x_train: Tensor, seed: int = 0, ae_checkpoint: Any = None,
                   start: Any = None, **_: Any) -> None:
        """``init: ae``: warm the model up on the partition of the autoencoder's codes (see
        the module docstring); ``none``: keep the random start."""
        if self.opts["init"] == "none":
            return
        if ae_checkpoint is None:
            raise ParamError("params.yaml: 'train.movae.init' is 'ae' but no pretrained "
                             "autoencoder was given")
        z = ae_codes(ae_checkpoint, self.spec, x_train)
        mix = fit_mixture(z, self.spec.n_clusters, seed, self.opts["init_clusters"],
                          start)
        if mix.labels is None:
            raise ParamError("params.yaml: 'train.movae.init_clusters' must partition every "
                             f"training point; {self.opts['init_clusters']!r} clustered a subset")
        self_train(self, x_train,
                   mix.labels, self.opts["self_train_epochs"], seed,
                   self.opts["self_train_weight"])

    def _chosen(self, t: Tensor, x: Tensor) -> Tensor:
        """Pick, for each example, the slice [K, B, ...] -> [B, ...] of its chosen expert."""
        return t[self.predict_clusters(x), torch.arange(t.shape[1], device=t.device)]

    def encode(self, x: Tensor) -> Tensor:
        """Posterior mean of the manager's chosen expert. Each expert has its own latent
        space, so codes of examples routed to different experts are not comparable."""
        return self._chosen(self.expert_posteriors(x)[0], x)

    def reconstruct(self, x: Tensor) -> Tensor:
        """Mean of p_k(x|z = mean_k(x)) for the manager's chosen expert k."""
        out = self.expert_decode(self.expert_posteriors(x)[0])
        return self.likelihood.mean(self._chosen(out, x))

    @torch.no_grad()
    def sample_per_cluster(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """z ~ N(0, I) through each expert's decoder: [K, n, *input_shape]."""
        device = next(self.manager.parameters()).device
        z = torch.randn(self.spec.n_clusters, n, self.spec.latent_dim, device=device,
                        generator=generator)
        return self.likelihood.mean(self.expert_decode(z))


METHOD = MoVAE
