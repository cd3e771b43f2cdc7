"""The Gaussian-mixture gate of Xu, Jordan & Hinton (1995), fitted by EM in log space.

Xu, Jordan & Hinton, "An Alternative Model for Mixtures of Experts" (NIPS 1995) replace
the softmax gate by Bayes' rule on a joint model of the input:

    p(x, t) = sum_k a_k N(x; m_k, S_k) N(t; W_k x + b_k, diag Gamma_k),
    g_k(x)  = a_k N(x; m_k, S_k) / sum_j a_j N(x; m_j, S_j),

so every M-step is in closed form (a single EM loop; the softmax gate needs an inner
IRLS loop). Singh et al. 2018 (sec. 8.2) tried it and found it "extremely unstable ...
since the probabilities quickly became 0 for higher dimensional spaces": densities in
784 dimensions underflow when exponentiated. Here every density stays a log-density
(responsibilities by log-softmax), the covariances get ``reg_covar`` on the diagonal,
and x is first projected on its top ``pca_dim`` principal components (fitted on the
training inputs), where both the gate Gaussians and the affine experts live. The EM
objective is the log-likelihood of the training pairs, ln p(x, t), in the PCA space;
with ``reg_covar = 0`` and ``ridge = 0`` each iteration cannot decrease it (Dempster,
Laird & Rubin 1977), which the tests check.

Start: K-means on the projected inputs gives hard responsibilities for the first M-step.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.special import logsumexp
from sklearn.cluster import KMeans
from sklearn.decomposition import PCA

LOG_2PI = float(np.log(2 * np.pi))
MIN_VAR = float(np.exp(-9.0))  # floor of the experts' variances, as vaemix.networks.MIN_LOGVAR


@dataclass
class GMMGate:
    """The fitted joint model in the PCA space (``pca`` None: the raw inputs)."""

    log_weights: np.ndarray  # [K]
    means: np.ndarray  # [K, p]
    covs: np.ndarray  # [K, p, p]
    expert_weights: np.ndarray  # [K, p+1, M], last row the bias
    expert_vars: np.ndarray  # [K, M]
    pca: PCA | None = None
    history: list[float] = field(default_factory=list)  # mean ln p(x, t) per iteration
    converged: bool = False

    def project(self, x: np.ndarray) -> np.ndarray:
        flat = x.reshape(len(x), -1).astype(np.float64)
        return self.pca.transform(flat) if self.pca is not None else flat

    def log_gate(self, x: np.ndarray) -> np.ndarray:
        """ln g_k(x) [N, K] by Bayes' rule in log space."""
        joint = self.log_weights + log_gaussians(self.project(x), self.means, self.covs)
        return joint - logsumexp(joint, axis=1, keepdims=True)

    def expert_means(self, x: np.ndarray) -> np.ndarray:
        """[N, K, M]."""
        return np.einsum("nd,kdm->nkm", with_bias(self.project(x)), self.expert_weights)

    def log_expert(self, t: np.ndarray, means: np.ndarray) -> np.ndarray:
        """ln N(t; mean_k, Gamma_k) [N, K]."""
        var = self.expert_vars[None]
        return (-0.5 * (LOG_2PI + np.log(var) + (t[:, None, :] - means) ** 2 / var)).sum(-1)

    def predict(self, x: np.ndarray, t: np.ndarray) -> dict[str, np.ndarray]:
        """Gate g [N, K], expert means [N, K, M], t_hat [N, M] and ln p(t|x) [N]."""
        log_g = self.log_gate(x)
        means = self.expert_means(x)
        t = t.reshape(len(t), -1)
        g = np.exp(log_g)
        return {"gate": g, "means": means, "t_hat": (g[..., None] * means).sum(1),
                "log_lik": logsumexp(log_g + self.log_expert(t, means), axis=1)}


def with_bias(z: np.ndarray) -> np.ndarray:
    return np.concatenate([z, np.ones((len(z), 1))], axis=1)


def log_gaussians(z: np.ndarray, means: np.ndarray, covs: np.ndarray) -> np.ndarray:
    """ln N(z_n; m_k, S_k) [N, K] for full covariances, through their Cholesky factors."""
    chol = np.linalg.cholesky(covs)  # [K, p, p]
    chol_inv = np.linalg.inv(chol)
    diff = z[:, None, :] - means[None]  # [N, K, p]
    white = np.einsum("kij,nkj->nki", chol_inv, diff)
    log_det = 2.0 * np.log(np.diagonal(chol, axis1=1, axis2=2)).sum(-1)  # [K]
    p = z.shape[1]
    return -0.5 * (p * LOG_2PI + log_det[None] + (white**2).sum(-1))


def _log_joint(gate: GMMGate, z: np.ndarray, t: np.ndarray) -> np.ndarray:
    """ln a_k + ln N(z; m_k, S_k) + ln N(t; W_k z + b_k, Gamma_k) [N, K]."""
    means = np.einsum("nd,kdm->nkm", with_bias(z), gate.expert_weights)
    return (gate.log_weights + log_gaussians(z, gate.means, gate.covs)
            + gate.log_expert(t, means))


def m_step(
    z: np.ndarray, t: np.ndarray, resp: np.ndarray, reg_covar: float, ridge: float
) -> tuple[np.ndarray, ...]:
    """Closed-form maximisers given responsibilities resp [N, K] (Xu et al. 1995, sec. 3):
    weights, means, covariances of the gate Gaussians; weighted least squares for the
    experts and their residual variances. Vectorised over the K components."""
    n, p = z.shape
    nk = resp.sum(0) + 1e-12  # [K]
    log_weights = np.log(nk / n)
    means = resp.T @ z / nk[:, None]
    diff = z[:, None, :] - means[None]
    covs = np.einsum("nk,nki,nkj->kij", resp, diff, diff) / nk[:, None, None]
    covs += reg_covar * np.eye(p)[None]
    z1 = with_bias(z)
    gram = np.einsum("nk,ni,nj->kij", resp, z1, z1) + ridge * np.eye(p + 1)[None]
    rhs = np.einsum("nk,ni,nm->kim", resp, z1, t)
    expert_weights = np.linalg.solve(gram, rhs)  # [K, p+1, M]
    resid = t[:, None, :] - np.einsum("nd,kdm->nkm", z1, expert_weights)
    expert_vars = np.maximum(np.einsum("nk,nkm->km", resp, resid**2) / nk[:, None], MIN_VAR)
    return log_weights, means, covs, expert_weights, expert_vars


def fit_gmm_gate(
    x: np.ndarray,
    t: np.ndarray,
    n_experts: int,
    *,
    pca_dim: int | None = 10,
    max_iter: int = 200,
    tol: float = 1e-6,
    reg_covar: float = 1e-6,
    ridge: float = 1e-6,
    seed: int = 0,
) -> GMMGate:
    """EM on the training pairs (x, t); stops when the mean ln p(x, t) gains less than
    ``tol`` (nats per example) or after ``max_iter`` iterations."""
    flat = x.reshape(len(x), -1).astype(np.float64)
    t = t.reshape(len(t), -1).astype(np.float64)
    pca = None
    if pca_dim is not None and pca_dim < flat.shape[1]:
        pca = PCA(n_components=pca_dim, random_state=seed).fit(flat)
        z = pca.transform(flat)
    else:
        z = flat
    labels = KMeans(n_clusters=n_experts, n_init=3, random_state=seed).fit_predict(z)
    resp = np.eye(n_experts)[labels]
    gate = GMMGate(*m_step(z, t, resp, reg_covar, ridge), pca=pca)
    for _ in range(max_iter):
        joint = _log_joint(gate, z, t)
        log_norm = logsumexp(joint, axis=1, keepdims=True)
        gate.history.append(float(log_norm.mean()))
        if len(gate.history) > 1 and gate.history[-1] - gate.history[-2] < tol:
            gate.converged = True
            break
        resp = np.exp(joint - log_norm)  # E-step, normalised in log space
        (gate.log_weights, gate.means, gate.covs, gate.expert_weights,
         gate.expert_vars) = m_step(z, t, resp, reg_covar, ridge)
    return gate
