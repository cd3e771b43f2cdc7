"""Mixture-of-experts regression with variational gates (Singh et al. 2018, sec. 4, 5, 7, 8.2).

The model (Singh et al. 2018, sec. 4.1): K affine Gaussian experts

    p(t | x, c=k) = N(t; W_k x + b_k, diag Gamma_k),   k = 1..K,

mixed by a gate g_k(x) = P[c=k | x], so that p(t|x) = sum_k g_k(x) p(t | x, c=k) and the
prediction is the mean t_hat(x) = sum_k g_k(x) (W_k x + b_k) (sec. 4.1, "at test time").
Training minimises -ln p(t|x), the log-likelihood of the mixture evaluated in log space
(``objective: likelihood``, the default), or the MSE of t_hat (``objective: mse``).

Gates (``GATES``):

- ``dvmoe``: a DMVAE (``vaemix.models.dmvae``) on x; g = q(c|x). Trained jointly on the
  relaxed objective of Singh et al. 2018, sec. 7: L~(x, t) = ln p(t|x) + L~_DMVAE(x), where
  ln p(t|x) uses q(c|x) itself as the mixing weights (sec. 7, first equation).
- ``vade_moe``: a VaDE (``vaemix.models.vade``) on x. Training: g = p(c | z^), z^ one
  sample of q(z|x) (sec. 5, "approximated as P[c | z = z^]"), plus the VaDE ELBO; test:
  g = E_q(z|x)[p(c|z)] by Monte Carlo with ``mc_samples`` draws (sec. 5.1).
- ``deepmoe``: an MLP with a softmax output on x, no VAE term (sec. 8.2, "DeepMoE"). Its
  network is the same as DMVAE's q(c|x) encoder (trunk + linear, the same parameter
  count), and it gets the same start (below), so the two gates differ only by the VAE
  term.
- ``gmm_moe``: the Gaussian-mixture gate of Xu, Jordan & Hinton (1995), fitted by EM; see
  ``vaemix.moe.gmm_gate``.
- References: ``linear`` (one affine map) and ``oracle`` (the gate is the one-hot true
  class; one map per class), fitted in closed form by (ridge) least squares: the
  maximum-likelihood fits of the same Gaussian affine experts with no gate and with a
  perfect gate.

The gates with a latent space (``LATENT_GATES``) are run once per latent dim of
``moe.latent_dims``; the others once, with latent dim 0 in their names (``moe_<gate>_z0``).

Start (``init``: ``start``, the default, or ``none``). With ``none`` every gate starts from
random networks, the setting of Singh et al. 2018 (sec. 8.2). With ``start``
(:func:`start_moe`) the gates begin from the pipeline's label-free front end, as every
mixture model of vaemix does (``vaemix.models.init``): (a) the gate's encoder trunk(s)
are copied from the pretrained autoencoder where the shapes match (DMVAE: q(z|x)'s
``trunk`` and q(c|x)'s ``c_trunk``; VaDE: ``trunk``; deepmoe: its trunk). The latent
layers and the decoder are not copied: the swept latent dims (1, 2, 5) differ from the
autoencoder's. (b) Each expert k is the ridge least-squares fit of the training points
that the start's partition (the N2D clustering of the AE's codes, McConville et al.
2020) puts in cluster k: the closed-form fit with that partition as a one-hot gate
(:func:`fit_affine`). (c) The gate alone is warmed up for ``self_train_epochs`` on its
own loss (the VAE term of dvmoe and vade_moe; none for deepmoe) plus ``self_train_weight``
times the cross-entropy of its training-time ln g(x) to the partition (the self-training
step of DEC, Xie et al. 2016, sec. 3.1, with hard targets). Then the joint training of
Singh et al. 2018, sec. 7 runs as with ``none``. deepmoe gets the same start, so that it
and dvmoe differ only by the VAE term.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from scipy.special import logsumexp
from scipy.stats import norm
from torch import Tensor, nn

from vaemix.config import GATES, LATENT_GATES, PLAIN_GATES
from vaemix.distributions import log_normal_diag
from vaemix.models.base import Model, ModelSpec
from vaemix.models.dmvae import DMVAE
from vaemix.models.init import adam_epochs
from vaemix.models.vade import VaDE
from vaemix.networks import MAX_LOGVAR, MIN_LOGVAR, BatchedLinear, build_trunk

GRADIENT_GATES = ("dvmoe", "vade_moe", "deepmoe")
OBJECTIVES = ("likelihood", "mse")
__all__ = ["GATES", "GRADIENT_GATES", "LATENT_GATES", "PLAIN_GATES", "AffineExperts", "AffineFit",
           "GatedMoE", "copy_trunk", "fit_affine", "mixed_prediction",
           "mixture_log_likelihood", "pack", "reference_predict", "start_moe"]
MC_SEED = 0  # fixed seed of vade_moe's test-time Monte Carlo draws


# --- experts and the mixture likelihood --------------------------------------------------

class AffineExperts(nn.Module):
    """K affine Gaussian experts N(t; W_k x + b_k, diag exp(logvar_k)), run as one batched
    matmul (Singh et al. 2018, sec. 4.1)."""

    def __init__(self, n_experts: int, in_dim: int, out_dim: int) -> None:
        super().__init__()
        self.maps = BatchedLinear(n_experts, in_dim, out_dim)
        self.logvar_raw = nn.Parameter(torch.zeros(n_experts, out_dim))

    def logvar(self) -> Tensor:
        return self.logvar_raw.clamp(MIN_LOGVAR, MAX_LOGVAR)

    def forward(self, x: Tensor) -> Tensor:
        """Expert means [B, K, M] of flattened inputs x [B, D]."""
        return self.maps(x).transpose(0, 1)

    def log_prob(self, t: Tensor, means: Tensor) -> Tensor:
        """ln p(t | x, c=k) [B, K] for targets t [B, M] and expert means [B, K, M]."""
        return log_normal_diag(t.unsqueeze(1), means, self.logvar())


def mixture_log_likelihood(log_gate: Tensor, log_expert: Tensor) -> Tensor:
    """ln sum_k g_k p_k(t) [B] from ln g [B, K] and ln p_k(t) [B, K], by logsumexp."""
    return torch.logsumexp(log_gate + log_expert, dim=-1)


def mixed_prediction(gate: Tensor, means: Tensor) -> Tensor:
    """t_hat = sum_k g_k mean_k [B, M] from g [B, K] and means [B, K, M]."""
    return (gate.unsqueeze(-1) * means).sum(1)


# --- packing (x, t, y) into the one tensor the training loop iterates over ---------------

def pack(x: np.ndarray, t: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Rows [x flattened | t | y] as float32: ``vaemix.training.fit`` shuffles and batches
    one tensor, so inputs, targets and the class (read by no trained gate) travel together."""
    n = len(x)
    cols = [x.reshape(n, -1), t.reshape(n, -1), y.reshape(n, 1)]
    return np.concatenate([c.astype(np.float32) for c in cols], axis=1)


@dataclass(frozen=True)
class Layout:
    """Where x, t and y sit in a packed row; x is reshaped to ``input_shape``."""

    input_shape: tuple[int, ...]
    out_dim: int

    @property
    def in_dim(self) -> int:
        return int(np.prod(self.input_shape))

    def unpack(self, rows: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        d, m = self.in_dim, self.out_dim
        return rows[:, :d], rows[:, d : d + m], rows[:, d + m].round().long()

    def shaped(self, x_flat: Tensor) -> Tensor:
        return x_flat.reshape(-1, *self.input_shape)


# --- the gradient-trained gates ------------------------------------------------------------

class GatedMoE(Model):
    """Affine experts with a ``dvmoe``, ``vade_moe`` or ``deepmoe`` gate, trained by
    :func:`vaemix.training.fit` on packed rows (:func:`pack`)."""

    def __init__(
        self,
        gate: str,
        spec: ModelSpec,
        out_dim: int,
        *,
        objective: str = "likelihood",
        vae_weight: float = 1.0,
        mc_samples: int = 10,
    ) -> None:
        super().__init__(spec)
        if gate not in GRADIENT_GATES:
            raise ValueError(f"GatedMoE has no gate {gate!r} (known: {GRADIENT_GATES})")
        if objective not in OBJECTIVES:
            raise ValueError(f"unknown objective {objective!r}")
        self.gate_name, self.objective = gate, objective
        self.vae_weight, self.mc_samples = float(vae_weight), int(mc_samples)
        self.layout = Layout(tuple(spec.input_shape), out_dim)
        k = spec.n_clusters
        self.experts = AffineExperts(k, self.layout.in_dim, out_dim)
        if gate == "dvmoe":
            self.gate: nn.Module = DMVAE(spec)
        elif gate == "vade_moe":
            self.gate = VaDE(spec)
        else:
            trunk = build_trunk(spec.input_shape, spec.net, spec.hidden)
            self.gate = nn.Sequential(trunk, nn.Linear(trunk.out_features, k))

    def start_epoch(self, epoch: int, n_epochs: int) -> None:
        if isinstance(self.gate, Model):
            self.gate.start_epoch(epoch, n_epochs)  # DMVAE's temperature schedule

    # --- the gate --------------------------------------------------------------------------

    def _gate_and_vae_loss(self, x: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """Training-time ln g [B, K] and the gate's own loss terms (batch means)."""
        if isinstance(self.gate, DMVAE):
            terms = self.gate.loss(x)  # -L~ of DMVAE (Singh et al. 2018, sec. 7)
            return F.log_softmax(self.gate.q_c_logits(x), dim=-1), terms
        if isinstance(self.gate, VaDE):
            t = self.gate.elbo_terms(x)  # one z^ ~ q(z|x): gate p(c|z^) (sec. 5)
            terms = {"loss": -t["elbo"].mean(), "recon_nll": -t["recon"].mean(),
                     "kl_z": t["kl_z"].mean(), "kl_c": t["kl_c"].mean()}
            return t["log_gamma"], terms
        return F.log_softmax(self.gate(x), dim=-1), {}

    def log_q_c(self, rows: Tensor) -> Tensor:
        """Training-time ln g(x) [B, K] of packed rows, differentiable: the term the start's
        partition anchors through training (:class:`vaemix.training.Anchor`)."""
        x_flat, _, _ = self.layout.unpack(rows)
        x = self.layout.shaped(x_flat)
        if isinstance(self.gate, DMVAE):
            return F.log_softmax(self.gate.q_c_logits(x), dim=-1)
        if isinstance(self.gate, VaDE):
            return self.gate.log_q_c(x)
        return F.log_softmax(self.gate(x), dim=-1)

    @torch.no_grad()
    def log_gate(self, x: Tensor) -> Tensor:
        """Test-time ln g(x) [B, K]; VaDE: ln E_q(z|x)[p(c|z)] by Monte Carlo (sec. 5.1)."""
        if isinstance(self.gate, DMVAE):
            return F.log_softmax(self.gate.q_c_logits(x), dim=-1)
        if isinstance(self.gate, VaDE):
            mean, logvar = self.gate.posterior(self.gate.trunk(x))
            return self.gate.log_gate_mc(mean, logvar, self.mc_samples, MC_SEED)
        return F.log_softmax(self.gate(x), dim=-1)

    # --- the start (init: start) ----------------------------------------------------------

    def gate_trunks(self) -> list[nn.Module]:
        """The gate's encoder trunks: DMVAE's q(z|x) and q(c|x) trunks, VaDE's, deepmoe's."""
        if isinstance(self.gate, DMVAE):
            return [self.gate.trunk, self.gate.c_trunk]
        if isinstance(self.gate, VaDE):
            return [self.gate.trunk]
        return [self.gate[0]]

    @torch.no_grad()
    def set_experts(self, fit: AffineFit) -> None:
        """Experts from a closed-form fit: W_k, b_k and Gamma_k (the residual variances)."""
        maps, d = self.experts.maps, self.layout.in_dim
        weights = torch.as_tensor(fit.weights, dtype=maps.weight.dtype, device=maps.weight.device)
        maps.weight.copy_(weights[:, :d])
        maps.bias.copy_(weights[:, d:])  # the last row: the bias [K, 1, M]
        variances = torch.as_tensor(fit.variances, dtype=maps.weight.dtype,
                                    device=maps.weight.device)
        self.experts.logvar_raw.copy_(variances.log().clamp(MIN_LOGVAR, MAX_LOGVAR))

    def warm_up_gate(
        self, x_train: Tensor, labels: Tensor, epochs: int, weight: float, seed: int,
        batch_size: int = 256, lr: float = 1e-3,
    ) -> None:
        """``epochs`` epochs of Adam on the gate's parameters alone, minimising its own loss
        (``vae_weight`` x the VAE term; nothing for deepmoe) plus ``weight`` x the
        cross-entropy of its training-time ln g(x) to ``labels`` [N] (a partition of the
        training points found without labels). The experts are left as they are."""
        def loss(idx: Tensor) -> Tensor:
            log_g, terms = self._gate_and_vae_loss(x_train[idx])
            out = weight * F.nll_loss(log_g, labels[idx])
            return out + self.vae_weight * terms["loss"] if terms else out

        adam_epochs(self, self.gate.parameters(), loss, len(x_train), epochs, seed, batch_size,
                    lr, desc=f"warm-up of the {self.gate_name} gate on the start's partition")

    # --- objective and evaluation ----------------------------------------------------------

    def loss(self, rows: Tensor) -> dict[str, Tensor]:
        x_flat, t, _ = self.layout.unpack(rows)
        log_g, vae_terms = self._gate_and_vae_loss(self.layout.shaped(x_flat))
        means = self.experts(x_flat)
        nll = -mixture_log_likelihood(log_g, self.experts.log_prob(t, means)).mean()
        mse = (mixed_prediction(log_g.exp(), means) - t).pow(2).mean()
        moe_loss = nll if self.objective == "likelihood" else mse
        out = {"moe_nll": nll, "moe_mse": mse}
        if vae_terms:
            out.update({f"gate_{k}": v for k, v in vae_terms.items() if k != "loss"})
            out["gate_loss"] = vae_terms["loss"]
            moe_loss = moe_loss + self.vae_weight * vae_terms["loss"]
        return {"loss": moe_loss, **out}

    @torch.no_grad()
    def predict(self, rows: Tensor) -> dict[str, Tensor]:
        """Test-time gate g [B, K], expert means [B, K, M], t_hat [B, M], ln p(t|x) [B]."""
        x_flat, t, _ = self.layout.unpack(rows)
        log_g = self.log_gate(self.layout.shaped(x_flat))
        means = self.experts(x_flat)
        ll = mixture_log_likelihood(log_g, self.experts.log_prob(t, means))
        return {"gate": log_g.exp(), "means": means,
                "t_hat": mixed_prediction(log_g.exp(), means), "log_lik": ll}


# --- closed-form references ------------------------------------------------------------------

@dataclass
class AffineFit:
    """Affine experts fitted in closed form: W [K, D+1, M] (last row the bias) and the
    residual variances [K, M] (the maximum-likelihood Gamma_k, floored at exp(MIN_LOGVAR))."""

    weights: np.ndarray
    variances: np.ndarray

    def means(self, x: np.ndarray) -> np.ndarray:
        """[N, K, M]."""
        x1 = _with_bias(x)
        return np.einsum("nd,kdm->nkm", x1, self.weights)

    def log_prob(self, t: np.ndarray, means: np.ndarray) -> np.ndarray:
        """ln N(t; mean_k, Gamma_k) [N, K]."""
        return norm.logpdf(t[:, None, :], means, np.sqrt(self.variances[None])).sum(-1)


def _with_bias(x: np.ndarray) -> np.ndarray:
    x = x.reshape(len(x), -1).astype(np.float64)
    return np.concatenate([x, np.ones((len(x), 1))], axis=1)


def fit_affine(
    x: np.ndarray, t: np.ndarray, groups: np.ndarray, n_groups: int, ridge: float = 0.0
) -> AffineFit:
    """Least squares per group of rows: with ``ridge`` 0 the minimum-norm solution (exact on
    noiseless data, even with fewer rows than inputs); else ridge regression with penalty
    ``ridge * n_k * ||W_k||^2`` (the bias is not penalised). Without it a single map on MNIST
    puts huge weights on pixels that are almost never on in training (test MSE in the
    hundreds on the dev split).

    A loop over the groups: every row is in exactly one group, so the per-group solves
    together cost one solve on all rows, where a vectorised weighted form would cost K
    times more (each group's normal equations over all N rows).
    """
    x1, t = _with_bias(x), t.reshape(len(t), -1).astype(np.float64)
    weights = np.zeros((n_groups, x1.shape[1], t.shape[1]))
    variances = np.ones((n_groups, t.shape[1]))
    floor = float(np.exp(MIN_LOGVAR))
    penalty = np.eye(x1.shape[1])
    penalty[-1, -1] = 0.0
    for k in range(n_groups):
        rows = groups == k
        if not rows.any():
            continue
        xk, tk = x1[rows], t[rows]
        if ridge > 0:
            weights[k] = np.linalg.solve(xk.T @ xk + ridge * len(xk) * penalty, xk.T @ tk)
        else:
            weights[k] = np.linalg.lstsq(xk, tk, rcond=None)[0]
        resid = tk - xk @ weights[k]
        variances[k] = np.maximum((resid**2).mean(0), floor)
    return AffineFit(weights, variances)


def copy_trunk(state: dict[str, Tensor], trunk: nn.Module, prefix: str = "trunk.") -> bool:
    """Copy the autoencoder's encoder trunk (the ``prefix`` entries of its state dict) into
    ``trunk`` when every tensor's name and shape match; False (nothing copied) otherwise."""
    part = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    own = trunk.state_dict()
    if part.keys() != own.keys() or any(part[k].shape != own[k].shape for k in own):
        return False
    trunk.load_state_dict(part)
    return True


def start_moe(
    model: GatedMoE, x_train: np.ndarray, t_train: np.ndarray, labels: np.ndarray,
    ae_state: dict[str, Tensor], *, epochs: int, weight: float, ridge: float, seed: int,
    batch_size: int = 256, lr: float = 1e-3,
) -> dict[str, bool]:
    """The start of a gradient-trained MoE from the front end (module docstring, (a)-(c)):
    copy the AE's trunk into the gate's trunks where the shapes match, fit each expert by
    ridge least squares on its cluster of the partition ``labels`` [N] (values < K), then
    warm the gate up on the partition. Returns ``{"start_trunk_copied": ...}`` (False when
    the gate's hidden sizes differ from the AE's, e.g. ``moe.<gate>.hidden`` set)."""
    copied = [copy_trunk(ae_state, trunk) for trunk in model.gate_trunks()]
    k = model.experts.maps.weight.shape[0]
    model.set_experts(fit_affine(x_train, t_train, labels, k, ridge=ridge))
    device = model.experts.maps.weight.device
    x = torch.as_tensor(np.asarray(x_train, dtype=np.float32), device=device)
    y = torch.as_tensor(np.asarray(labels, dtype=np.int64), device=device)
    model.warm_up_gate(x.reshape(-1, *model.layout.input_shape), y, epochs, weight, seed,
                       batch_size=batch_size, lr=lr)
    return {"start_trunk_copied": all(copied)}


def reference_predict(
    fit: AffineFit, x: np.ndarray, t: np.ndarray, gate: np.ndarray
) -> dict[str, np.ndarray]:
    """Gate g [N, K] (fixed), expert means, t_hat and ln p(t|x) of a closed-form fit."""
    t = t.reshape(len(t), -1).astype(np.float64)
    means = fit.means(x)
    with np.errstate(divide="ignore"):
        log_g = np.log(gate)
    log_lik = logsumexp(log_g + fit.log_prob(t, means), axis=-1)
    return {"gate": gate, "means": means, "t_hat": (gate[..., None] * means).sum(1),
            "log_lik": log_lik}


def one_hot(y: np.ndarray, k: int) -> np.ndarray:
    out = np.zeros((len(y), k))
    out[np.arange(len(y)), y] = 1.0
    return out

