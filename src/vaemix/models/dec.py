"""DEC, Deep Embedded Clustering (Xie, Girshick & Farhadi 2016).

Model. An encoder f(x) = z (the pretrained autoencoder's) and K centres mu_j in its latent
space. The soft assignment of x_i to cluster j is Student's t kernel (Xie et al. 2016,
eq. 1; alpha = 1, sec. 3.1.1):
    q_ij = (1 + ||z_i - mu_j||^2 / alpha)^(-(alpha+1)/2) / sum_j' (...),
and training minimises KL(P || Q) = sum_i sum_j p_ij ln(p_ij / q_ij) (eq. 2) over the
encoder and the centres, against the auxiliary target distribution (eq. 3)
    p_ij = (q_ij^2 / f_j) / sum_j' (q_ij'^2 / f_j'),   f_j = sum_i q_ij,
computed on the whole training set and held fixed for T iterations (DEC's code; the paper
updates it "every iteration" of its outer loop). Training stops when fewer than ``tol`` of
the points changed cluster between two updates (sec. 4.3, tol = 0.1 %). The clusters are
argmax_j q_ij. The math lives in vaemix.distributions (log_student_t_assignments,
target_distribution), shared with IDEC.

Start. The paper's: the pretrained autoencoder's encoder and K-means on its codes with 20
restarts (sec. 3.2; ``init_clusters: kmeans``). vaemix's ``ae`` stage (784-500-500-2000-10
on MNIST, the architecture of sec. 4.3, trained end to end with Adam) stands in for their
greedy layer-wise stacked denoising autoencoder. vaemix's protocol (``train.dec`` in
params.yaml) starts from vaemix's start partition instead (vaemix.start), warms up on it
and keeps it as the anchor (vaemix.training.Anchor), as every mixture model there does.
That start is on images this model's own DEC-DA run (``start.dec``) from the N2D partition.

Augmentation (vaemix's protocol only; ``augment_shift`` / ``augment_rotate`` of
``train.dec``): DEC-DA's clustering phase (Guo, Zhu, Liu & Yin 2018, sec. 3.2, eq. 6):
Q is that of a randomly moved copy of each image while the target P stays that of the
clean images, so the encoder learns codes that a small shift or rotation does not move
(``model.augment``, vaemix.augment). IDEC inherits it for its clustering term.

DEC is not generative: it has no decoder (no reconstructions, no samples per cluster);
its per-example test quantity is the entropy of q_i.

Options (``train.dec``; :attr:`DEC.options`):
    init               ae: the pretrained autoencoder's encoder (the paper) | none: random
    init_clusters      how the first centres are found on the AE's codes: kmeans (the
                       paper) | any start of vaemix.models.init (umap_or_spectral: N2D's)
    alpha              degrees of freedom of the Student's t kernel (eq. 1)
    update_interval    T, optimiser steps between updates of the target P
    tol                stop when this fraction of points changed cluster between updates
    self_train_epochs  vaemix's warm-up on the start's partition (0: none, the paper's)
    self_train_weight  the weight of its cross-entropy
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from vaemix.distributions import log_student_t_assignments, target_distribution
from vaemix.errors import DataError, ParamError
from vaemix.models.base import Model, ModelSpec
from vaemix.models.init import INIT_CLUSTERS, gmm_on_encoder, load_ae_state, self_train
from vaemix.networks import build_trunk
from vaemix.protocols import Cited, Published, Recipe
from vaemix.schema import Int, Key, Number, OneOf

_PAPER = "Xie et al. 2016"
_CODE = "Guo's Keras DEC (XifengGuo/DEC-keras, DEC.py"
# Xie et al. 2016 as they train DEC on MNIST (vaemix.protocols: the runs dec_paper)
PAPER = Recipe({
    "init": Cited("ae", f"{_PAPER}, sec. 3.2: the pretrained autoencoder's encoder"),
    "init_clusters": Cited("kmeans", f"{_PAPER}, sec. 3.2; {_CODE}: KMeans(n_init=20))"),
    "alpha": Cited(1.0, f"{_PAPER}, sec. 3.1.1: alpha = 1 in all experiments"),
    "optimizer": Cited("sgd", f"{_PAPER}, sec. 4.3; {_CODE}: SGD(0.01, 0.9))"),
    "lr": Cited(0.01, f"{_PAPER}, sec. 4.3: a constant learning rate of 0.01"),
    "momentum": Cited(0.9, f"{_CODE}: SGD(0.01, 0.9))"),
    "batch_size": Cited(256, f"{_PAPER}, sec. 4.3: minibatches of 256"),
    "update_interval": Cited(140, f"{_CODE}: update_interval 140 for MNIST)"),
    "tol": Cited(0.001, f"{_PAPER}, sec. 4.3: convergence threshold tol = 0.1 %"),
    "epochs": Cited(73, f"{_CODE}: maxiter 2e4 iterations of 256 = 73 passes over MNIST's "
                        "70,000 images; the tolerance usually stops it first)"),
    "weight_decay": Cited(0.0, f"{_CODE}: no regulariser)"),
    "self_train_epochs": Cited(0, f"{_PAPER}: no warm-up (vaemix's only)"),
    "anchor_weight": Cited(0.0, f"{_PAPER}: no anchor (vaemix's only)"),
}, published={"mnist": Published(0.843, None, "MNIST, 70,000", f"{_PAPER}, Table 2")})


class DEC(Model):
    """The pretrained encoder and K centres; q is Student's t kernel, P its sharpened self."""

    clusters = True
    reconstructs = False
    generates = False
    indexed_loss = True
    section = "train.dec"
    defaults = {"epochs": 73, "batch_size": 256, "lr": 0.01, "optimizer": "sgd",
                "momentum": 0.9}   # the paper's (PAPER)
    options = {
        "init": Key(OneOf(("ae", "none")), "ae"),   # none: random networks (tests only;
                                                    # DEC always starts from the autoencoder)
        "init_clusters": Key(OneOf(INIT_CLUSTERS), "kmeans"),
        "alpha": Key(Number(), 1.0),
        "update_interval": Key(Int(), 140),
        "tol": Key(Number(strict=False, high=1.0), 0.001),
        "self_train_epochs": Key(Int(0), 0),
        "self_train_weight": Key(Number(), 10.0),
    }
    paper = PAPER

    def __init__(self, spec: ModelSpec) -> None:
        super().__init__(spec)
        self.opts = self.parse_options(spec.options)
        self.trunk = build_trunk(spec.input_shape, spec.net, spec.hidden)
        self.to_z = nn.Linear(self.trunk.out_features, spec.latent_dim)
        self.centres = nn.Parameter(torch.randn(spec.n_clusters, spec.latent_dim))
        # the target P of the training points and their clusters at its last update
        self.target: Tensor | None = None
        self.last_labels: Tensor | None = None

    # --- the model ------------------------------------------------------------------
    def encode(self, x: Tensor) -> Tensor:
        return self.to_z(self.trunk(x))

    def log_q_c(self, x: Tensor) -> Tensor:
        return log_student_t_assignments(self.encode(x), self.centres, self.opts["alpha"])

    def predict_clusters(self, x: Tensor) -> Tensor:
        return self.log_q_c(x).argmax(1)

    def clustering_kl(self, x: Tensor, idx: Tensor) -> Tensor:
        """KL(P || Q) of the batch (eq. 2), per example [B], against the held target."""
        if self.target is None:
            raise RuntimeError("DEC: the target distribution is computed by initialise and "
                               "before_step; train through vaemix.training.fit")
        p = self.target[idx]   # P of the clean images; Q of a moved copy under DEC-DA
        return (torch.special.xlogy(p, p) - p * self.log_q_c(self.augment(x))).sum(1)

    def loss(self, x: Tensor, idx: Tensor) -> dict[str, Tensor]:
        kl = self.clustering_kl(x, idx).mean()
        return {"loss": kl, "kl_p_q": kl}

    def evaluate(self, x: Tensor) -> dict[str, Tensor]:
        log_q = self.log_q_c(x)
        return {"assignment_entropy": -(log_q.exp() * log_q).sum(1)}

    # --- the target distribution and the stopping rule (sec. 3.1.2, 4.3) -------------
    @torch.no_grad()
    def update_target(self, x_train: Tensor) -> float:
        """Recompute P on every training point; the fraction whose cluster changed since
        the last update (1.0 at the first)."""
        was_training = self.training
        self.eval()
        q = torch.cat([self.log_q_c(x_train[i : i + 2048]).exp()
                       for i in range(0, len(x_train), 2048)])
        self.train(was_training)
        self.target = target_distribution(q)
        labels = q.argmax(1)
        changed = (1.0 if self.last_labels is None
                   else float((labels != self.last_labels).float().mean()))
        self.last_labels = labels
        return changed

    def before_step(self, step: int, x_train: Tensor) -> bool:
        if step % self.opts["update_interval"] != 0:
            return False
        changed = self.update_target(x_train)
        return step > 0 and changed < self.opts["tol"]

    def get_extra_state(self) -> dict[str, Any]:   # a checkpoint resumes with the same P
        return {"target": self.target, "last_labels": self.last_labels}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        self.target, self.last_labels = state["target"], state["last_labels"]

    # --- the start (sec. 3.2) -------------------------------------------------------
    def copy_encoder(self, ae_checkpoint: str | Path | None) -> dict[str, Tensor]:
        """Load the pretrained autoencoder's trunk and latent layer; its whole state."""
        if ae_checkpoint is None:
            raise ParamError(f"params.yaml: '{self.section}' starts from the pretrained "
                             "autoencoder, but none was given")
        state = load_ae_state(ae_checkpoint)
        try:
            for name, module in (("trunk.", self.trunk), ("to_z.", self.to_z)):
                module.load_state_dict({k[len(name):]: v for k, v in state.items()
                                        if k.startswith(name)})
        except RuntimeError as err:
            raise DataError(f"{ae_checkpoint}: its networks do not match this model's "
                            f"({str(err).splitlines()[0]}); retrain the autoencoder with "
                            "the same model.<dataset> params") from None
        return state

    @torch.no_grad()
    def initialise(self, x_train: Tensor, *, seed: int = 0,
                   ae_checkpoint: str | Path | None = None,
                   start: dict[str, Any] | None = None, **_: Any) -> None:
        """The encoder from the autoencoder (``init: ae``; ``none`` keeps the random one),
        the centres from the first clustering of its codes (K-means for the paper), then the
        first target P; with a partition start (vaemix's), the warm-up on it."""
        if self.opts["init"] == "ae":
            self.copy_encoder(ae_checkpoint)
        mix = gmm_on_encoder(self.encode, x_train, self.spec.n_clusters, seed,
                             self.opts["init_clusters"], start)
        self.centres.copy_(torch.as_tensor(mix.means, device=self.centres.device))
        self.update_target(x_train)
        self.last_labels = None   # the first update in training is not a change
        if mix.labels is not None:
            self_train(self, x_train, mix.labels, self.opts["self_train_epochs"], seed,
                       self.opts["self_train_weight"])


METHOD = DEC
