"""Shared probability math: log-densities, closed-form KL terms, reparameterised sampling.

Everything is written once here and imported by the models. Conventions: Gaussians are
diagonal and given by (mean, log-variance); event dimensions are the trailing ones and
are summed; all mixtures are evaluated in log space with ``logsumexp``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

LOG_2PI = math.log(2.0 * math.pi)


def _sum_event(t: Tensor, event_dims: int) -> Tensor:
    return t.flatten(start_dim=t.dim() - event_dims).sum(-1) if event_dims else t


def log_normal_diag(x: Tensor, mean: Tensor, logvar: Tensor, event_dims: int = 1) -> Tensor:
    """ln N(x; mean, diag(exp(logvar))), summed over the last ``event_dims`` dims."""
    lp = -0.5 * (LOG_2PI + logvar + (x - mean).pow(2) * torch.exp(-logvar))
    return _sum_event(lp, event_dims)


def log_standard_normal(x: Tensor, event_dims: int = 1) -> Tensor:
    """ln N(x; 0, I), summed over the last ``event_dims`` dims."""
    return _sum_event(-0.5 * (LOG_2PI + x.pow(2)), event_dims)


def log_bernoulli(x: Tensor, logits: Tensor, event_dims: int = 1) -> Tensor:
    """ln Bernoulli(x; sigmoid(logits)) for x in [0, 1], computed stably from logits."""
    lp = -F.binary_cross_entropy_with_logits(logits, x, reduction="none")
    return _sum_event(lp, event_dims)


def kl_normal_std(mean: Tensor, logvar: Tensor) -> Tensor:
    """KL( N(mean, diag exp(logvar)) || N(0, I) ), closed form, summed over the last dim.

    Kingma & Welling 2014, Appendix B.
    """
    return 0.5 * (mean.pow(2) + logvar.exp() - 1.0 - logvar).sum(-1)


def kl_gaussians(mean_q: Tensor, logvar_q: Tensor, mean_p: Tensor, logvar_p: Tensor) -> Tensor:
    """KL( N(mean_q, exp logvar_q) || N(mean_p, exp logvar_p) ), diagonal, summed over last dim.

    Broadcasts, so q of shape [B, 1, d] against p of shape [K, d] gives [B, K].
    """
    var_ratio = torch.exp(logvar_q - logvar_p)
    mahalanobis = (mean_q - mean_p).pow(2) * torch.exp(-logvar_p)
    return 0.5 * (var_ratio + mahalanobis - 1.0 - logvar_q + logvar_p).sum(-1)


def reparameterize(
    mean: Tensor, logvar: Tensor, generator: torch.Generator | None = None
) -> Tensor:
    """z = mean + exp(logvar / 2) * eps, eps ~ N(0, I) (Kingma & Welling 2014, eq. 10)."""
    eps = torch.randn(mean.shape, dtype=mean.dtype, device=mean.device, generator=generator)
    return mean + torch.exp(0.5 * logvar) * eps


def log_mixture_normal_diag(
    z: Tensor, log_weights: Tensor, means: Tensor, logvars: Tensor
) -> Tensor:
    """ln sum_k w_k N(z; mu_k, diag sigma_k^2) via logsumexp.

    z: [B, d]; log_weights: [K] (normalised); means, logvars: [K, d]. Returns [B].
    """
    comp = log_normal_diag(z.unsqueeze(-2), means, logvars)  # [B, K]
    return torch.logsumexp(comp + log_weights, dim=-1)


def log_mixture_posterior(
    z: Tensor, log_weights: Tensor, means: Tensor, logvars: Tensor
) -> Tensor:
    """ln p(c|z) [..., K] under the mixture sum_c w_c N(mu_c, diag sigma_c^2), by Bayes' rule
    in log space: log_softmax_c(ln w_c + ln N(z; mu_c, sigma_c^2)), never exp-then-normalise
    (VaDE's gamma, Jiang et al. 2017, eq. 16; the GMM prior's posterior of every model).

    z: [..., d]; log_weights: [K] (one number per component, normalised or not); means,
    logvars: [K, d].
    """
    return F.log_softmax(log_normal_diag(z.unsqueeze(-2), means, logvars) + log_weights, dim=-1)


def log_mean_posterior_mc(
    mean: Tensor, logvar: Tensor, log_posterior: Callable[[Tensor], Tensor], samples: int,
    seed: int,
) -> Tensor:
    """ln E_{q(z|x)}[p(c|z)] [B, K] by Monte Carlo with ``samples`` fixed-seed draws of
    z ~ N(mean, diag exp(logvar)) (Singh et al. 2018, sec. 5.1): the logsumexp over the
    draws of ``log_posterior(z)`` minus ln S, so nothing leaves log space."""
    gen = torch.Generator(device=mean.device).manual_seed(seed)
    shape = (samples, *mean.shape)
    z = reparameterize(mean.expand(shape), logvar.expand(shape), generator=gen)
    return torch.logsumexp(log_posterior(z), dim=0) - math.log(samples)


def sample_per_component(
    means: Tensor, logvars: Tensor, n: int, generator: torch.Generator | None = None
) -> Tensor:
    """n draws from each diagonal Gaussian component: [K, n, d] from means, logvars [K, d]."""
    k, d = means.shape
    return reparameterize(means.unsqueeze(1).expand(k, n, d),
                          logvars.unsqueeze(1).expand(k, n, d), generator=generator)


def squared_error_per_value(x: Tensor, out: Tensor) -> Tensor:
    """The mean over input values of (out - x)^2, per example [N] (Keras' ``mse``, the
    reconstruction loss of IDEC and of DEC-DA's pretraining)."""
    return (out.reshape(len(x), -1) - x.reshape(len(x), -1)).pow(2).mean(1)


def kl_categorical(log_q: Tensor, log_p: Tensor) -> Tensor:
    """KL( q || p ) for categoricals given as normalised log-probabilities, over the last dim."""
    return (log_q.exp() * (log_q - log_p)).sum(-1)


def gumbel_softmax(
    logits: Tensor,
    tau: float,
    hard: bool = False,
    generator: torch.Generator | None = None,
) -> Tensor:
    """A Concrete / Gumbel-softmax sample (Maddison et al. 2017; Jang et al. 2017, eq. 1).

    With ``hard`` the forward value is the one-hot argmax and the gradient is the relaxed
    sample's (straight-through estimator, Jang et al. 2017, sec. 2.2).
    """
    if tau <= 0:
        raise ValueError(f"Gumbel-softmax temperature must be positive, got {tau}")
    u = torch.rand(logits.shape, dtype=logits.dtype, device=logits.device, generator=generator)
    neg_log_u = -torch.log(u.clamp_min(1e-20))
    gumbel = -torch.log(neg_log_u.clamp_min(1e-20))
    y = F.softmax((logits + gumbel) / tau, dim=-1)
    if not hard:
        return y
    one_hot = F.one_hot(y.argmax(-1), logits.shape[-1]).to(y.dtype)
    return one_hot - y.detach() + y


def relaxed_gaussian_prior(zeta: Tensor, means: Tensor, logvars: Tensor) -> tuple[Tensor, Tensor]:
    """The relaxed prior p(z|zeta) = N(sum_k zeta_k mu_k, diag sum_k zeta_k sigma_k^2).

    zeta: [..., K] on the simplex (a Gumbel-softmax sample); means, logvars: [K, d].
    Returns (mean, logvar), each [..., d]. At one-hot zeta = e_c it is exactly
    N(mu_c, sigma_c^2), the relaxation Singh et al. 2018 (sec. 7) ask for as tau -> 0.
    """
    return zeta @ means, torch.log(zeta @ torch.exp(logvars))


def log_student_t_assignments(z: Tensor, centres: Tensor, alpha: float = 1.0) -> Tensor:
    """ln q_ij [N, K], DEC's soft assignment of z_i [N, d] to centre mu_j [K, d] (Xie et
    al. 2016, eq. 1): q_ij proportional to (1 + ||z_i - mu_j||^2 / alpha)^(-(alpha + 1) / 2),
    normalised over j; computed in log space (log1p, logsumexp)."""
    sq = (z.unsqueeze(1) - centres.unsqueeze(0)).pow(2).sum(-1)
    log_kernel = -(alpha + 1.0) / 2.0 * torch.log1p(sq / alpha)
    return log_kernel - torch.logsumexp(log_kernel, dim=1, keepdim=True)


def target_distribution(q: Tensor) -> Tensor:
    """DEC's auxiliary target P [N, K] of soft assignments q [N, K] (Xie et al. 2016,
    eq. 3): p_ij = (q_ij^2 / f_j) / sum_j' (q_ij'^2 / f_j'), f_j = sum_i q_ij the soft
    cluster frequencies. Squaring sharpens the assignments; dividing by f_j keeps large
    clusters from taking over."""
    weight = q.pow(2) / q.sum(0, keepdim=True).clamp_min(torch.finfo(q.dtype).tiny)
    return weight / weight.sum(1, keepdim=True)
