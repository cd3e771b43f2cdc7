"""IDEC, Improved Deep Embedded Clustering with local structure preservation (Guo, Gao,
Liu & Yin 2017).

DEC (vaemix.models.dec: Student's t assignments q, the sharpened target P, K-means start,
target updated every T iterations, stop at a tolerance on changed labels) keeps the
autoencoder's decoder and trains the encoder on both (Guo et al. 2017, eq. 7):
    L = L_r + gamma L_c,   L_c = KL(P || Q) (DEC's eq. 2),   L_r = ||x - g(f(x))||^2,
with gamma = 0.1 (sec. 4.2): the reconstruction keeps the embedded space from distorting,
which DEC's clustering loss alone does. L_r is the mean squared error per input value, as
their code's Keras ``mse`` (the squared norm of eq. 5 divided by the input size); the
decoder output is the mean of the autoencoder's likelihood (a sigmoid for MNIST's
Bernoulli likelihood, where their autoencoder has a linear output). Their code trains MNIST
with Adam (lr 0.001) and the other datasets with SGD (lr 0.1, momentum 0.99).

vaemix's protocol (``train.idec`` in params.yaml) starts from vaemix's start partition
(vaemix.start), warms up on it and keeps it as the anchor, as for every mixture model; the
paper's protocol is :data:`PAPER` (the runs ``idec_paper``).

Options (``train.idec``): DEC's, and
    gamma   the weight of the clustering loss beside the reconstruction (eq. 7)
"""

from __future__ import annotations

from pathlib import Path

from torch import Tensor

from vaemix.distributions import squared_error_per_value
from vaemix.models.base import ModelSpec
from vaemix.models.dec import DEC
from vaemix.models.init import copy_autoencoder
from vaemix.networks import Likelihood, build_decoder
from vaemix.protocols import Cited, Published, Recipe
from vaemix.schema import Key, Number

_PAPER = "Guo et al. 2017"
_CODE = "their code (XifengGuo/IDEC, IDEC.py"
# Guo et al. 2017 as they train IDEC on MNIST (vaemix.protocols: the runs idec_paper)
PAPER = Recipe({
    "init": Cited("ae", f"{_PAPER}, sec. 3.3: the pretrained autoencoder, encoder and decoder"),
    "init_clusters": Cited("kmeans", f"{_PAPER}, sec. 3.3: k-means on the embedded points; "
                                     f"{_CODE}: KMeans(n_init=20))"),
    "alpha": Cited(1.0, f"{_PAPER}, eq. 3, as DEC: alpha = 1"),
    "gamma": Cited(0.1, f"{_PAPER}, sec. 4.2: gamma = 0.1"),
    "optimizer": Cited("adam", f"{_CODE}: optimizer 'adam' for MNIST)"),
    "lr": Cited(0.001, f"{_CODE}: Keras Adam's default learning rate)"),
    "batch_size": Cited(256, f"{_PAPER}, sec. 4.2: batch size 256"),
    "update_interval": Cited(140, f"{_PAPER}, sec. 4.2: T = 140 for MNIST"),
    "tol": Cited(0.001, f"{_PAPER}, sec. 4.2: convergence threshold 0.1 %"),
    "epochs": Cited(73, f"{_CODE}: maxiter 2e4 iterations of 256 = 73 passes over MNIST's "
                        "70,000 images; the tolerance usually stops it first)"),
    "weight_decay": Cited(0.0, f"{_CODE}: no regulariser)"),
    "self_train_epochs": Cited(0, f"{_PAPER}: no warm-up (vaemix's only)"),
    "anchor_weight": Cited(0.0, f"{_PAPER}: no anchor (vaemix's only)"),
}, published={"mnist": Published(0.8806, 0.8672, "MNIST, 70,000", f"{_PAPER}, Table 2")})


class IDEC(DEC):
    """DEC with the autoencoder's decoder kept: clustering loss plus reconstruction."""

    reconstructs = True
    section = "train.idec"
    defaults = {"epochs": 73, "batch_size": 256, "lr": 0.001,
                "optimizer": "adam"}   # the paper's (PAPER)
    options = {**DEC.options, "gamma": Key(Number(strict=False), 0.1)}
    paper = PAPER

    def __init__(self, spec: ModelSpec) -> None:
        super().__init__(spec)
        self.decoder = build_decoder(spec.input_shape, spec.latent_dim, spec.net, spec.hidden)
        self.likelihood = Likelihood(spec.likelihood, spec.input_shape)

    def reconstruct(self, x: Tensor) -> Tensor:
        return self.likelihood.mean(self.decoder(self.encode(x))).reshape(x.shape)

    def squared_error(self, x: Tensor) -> Tensor:
        """L_r per example [B]: the mean squared error over the input values."""
        return squared_error_per_value(x, self.reconstruct(x))

    def loss(self, x: Tensor, idx: Tensor) -> dict[str, Tensor]:
        kl = self.clustering_kl(x, idx).mean()
        mse = self.squared_error(x).mean()
        return {"loss": mse + self.opts["gamma"] * kl, "recon_mse": mse, "kl_p_q": kl}

    def evaluate(self, x: Tensor) -> dict[str, Tensor]:
        z = self.encode(x)
        return {**super().evaluate(x),
                "test_recon_ll": self.likelihood.log_prob(x, self.decoder(z)),
                "recon_mse": self.squared_error(x)}

    def copy_encoder(self, ae_checkpoint: str | Path | None) -> dict[str, Tensor]:
        """The encoder as DEC's, and the decoder and likelihood too (Guo et al. 2017, 3.3)."""
        state = super().copy_encoder(ae_checkpoint)
        copy_autoencoder(state, self.trunk, self.to_z, self.decoder, self.likelihood,
                         source=str(ae_checkpoint))
        return state


METHOD = IDEC
