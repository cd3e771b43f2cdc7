"""Starting a mixture model from the pretrained autoencoder (VaDE's initialisation,
Jiang et al. 2017, sec. 3.3): copy the encoder body, the latent head and the decoder of
``artifacts/<dataset>/ae/model.pt``, then fit a diagonal GMM on the autoencoder's latents
to set the mixture prior.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from sklearn.mixture import GaussianMixture
from torch import Tensor, nn

from vaemix.errors import DataError

# Floor on the GMM's variances (in latent units squared), so log-variances stay finite.
MIN_VARIANCE = 1e-4


@dataclass
class MixtureInit:
    """A diagonal Gaussian mixture: weights [K], means [K, d], variances [K, d]."""

    weights: np.ndarray
    means: np.ndarray
    variances: np.ndarray


def load_ae_state(path: str | Path) -> dict[str, Tensor]:
    """The state dict of a pretrained ``ae`` checkpoint; a missing file names itself."""
    path = Path(path)
    if not path.is_file():
        raise DataError(
            f"{path}: pretrained autoencoder not found; run the pretrain@<dataset>-ae stage "
            "first (it is a dependency of every train@ stage)"
        )
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    if ckpt.get("method") != "ae":
        raise DataError(f"{path}: expected an 'ae' checkpoint, found {ckpt.get('method')!r}")
    return ckpt["state_dict"]


def copy_autoencoder(
    state: dict[str, Tensor],
    trunk: nn.Module,
    latent_mean: nn.Linear,
    decoder: nn.Module,
    likelihood: nn.Module | None = None,
    source: str = "ae checkpoint",
) -> None:
    """Copy the AE's trunk, latent layer (into the posterior mean) and decoder weights."""

    def part(prefix: str) -> dict[str, Tensor]:
        return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}

    try:
        trunk.load_state_dict(part("trunk."))
        latent_mean.load_state_dict(part("to_z."))
        decoder.load_state_dict(part("decoder."))
        if likelihood is not None:
            likelihood.load_state_dict(part("likelihood."))
    except RuntimeError as err:
        first = str(err).splitlines()[0]
        raise DataError(
            f"{source}: its networks do not match this model's ({first}); "
            "retrain the autoencoder with the same model.<dataset> params"
        ) from None


def fit_diag_gmm(z: np.ndarray, n_clusters: int, seed: int, n_init: int = 3) -> MixtureInit:
    """A diagonal GMM on latents (scikit-learn EM), variances floored at MIN_VARIANCE."""
    gmm = GaussianMixture(
        n_components=n_clusters, covariance_type="diag", n_init=n_init, random_state=seed,
        reg_covar=1e-6, max_iter=300,
    ).fit(z)
    return MixtureInit(
        weights=gmm.weights_.astype(np.float32),
        means=gmm.means_.astype(np.float32),
        variances=np.maximum(gmm.covariances_, MIN_VARIANCE).astype(np.float32),
    )


def gmm_on_encoder(
    encode: nn.Module | object, x_train: Tensor, n_clusters: int, seed: int
) -> MixtureInit:
    """Fit the diagonal GMM on ``encode(x_train)`` (the AE latents once copied in)."""
    # imported here: vaemix.training imports vaemix.models, which imports this module
    from vaemix.training import batched

    z = batched(encode, x_train).numpy().astype(np.float64)
    return fit_diag_gmm(z, n_clusters, seed)


def fit_to_targets(
    module: nn.Module,
    parameters: list[nn.Parameter],
    batch_loss: Callable[[Tensor], Tensor],
    x_train: Tensor,
    epochs: int,
    seed: int,
    batch_size: int = 256,
    lr: float = 1e-3,
) -> None:
    """A few epochs of Adam on ``parameters`` only, minimising ``batch_loss(x_batch)``.

    Used to start networks that the autoencoder has no counterpart for (a cluster encoder
    q(c|x), GMVAE's q(z|x,y)) at targets computed from the autoencoder and its GMM: no
    label is involved. ``module`` is put in training mode for it and restored after.
    """
    if epochs == 0:
        return
    opt = torch.optim.Adam(parameters, lr=lr)
    gen = torch.Generator().manual_seed(seed)
    was_training = module.training
    module.train()
    for _ in range(epochs):
        order = torch.randperm(len(x_train), generator=gen).to(x_train.device)
        for i in range(0, len(x_train), batch_size):
            loss = batch_loss(x_train[order[i : i + batch_size]])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    module.train(was_training)
