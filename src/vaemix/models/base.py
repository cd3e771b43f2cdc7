"""What every model offers the training loop, the stages and the evaluation."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from vaemix.augment import Augment
from vaemix.protocols import Recipe
from vaemix.schema import Section, parse_section


@dataclass(frozen=True)
class ModelSpec:
    """The shape of a model on one dataset (the ``model.<dataset>`` params section)."""

    input_shape: tuple[int, ...]
    latent_dim: int
    n_clusters: int
    net: str = "mlp"
    hidden: tuple[int, ...] = (500, 500, 2000)
    likelihood: str = "bernoulli"
    options: dict = field(default_factory=dict)  # method-specific settings


class Model(nn.Module):
    """Base class. Subclasses implement ``loss``, ``evaluate`` and ``encode``; clustering
    models also ``predict_clusters`` and ``log_q_c`` (and set ``clusters = True``) and
    generative mixture models ``sample_per_cluster``. A method's module sets ``METHOD`` to
    its class (vaemix.registry); the class declares the rest below.
    """

    clusters: bool = False
    section: str = ""   # its params section, e.g. "train.vade"
    # the method's own options in that section, each declared once with its type and
    # default, beside the training loop's (vaemix.config.TRAINING); any other key is refused
    options: Section = {}
    # defaults of the training loop's keys that have none there (epochs, batch_size, lr):
    # with these the method runs with no params section at all (vaemix.models.method_settings)
    defaults: ClassVar[dict[str, Any]] = {}
    # what the run exports beside its clusters: reconstructions (recon.npz) and, for a
    # generative mixture, samples per cluster (samples.npz); DEC has neither
    reconstructs: ClassVar[bool] = True
    generates: ClassVar[bool] = True
    # whether the clustering learns its number of clusters (a Dirichlet process): the
    # summary then shows its effective K instead of judging it against the dataset's K
    learns_k: ClassVar[bool] = False
    # whether ``loss`` takes the batch's row indices in the training data (``idx``), for a
    # method that keeps per-example state, e.g. DEC's target distribution
    indexed_loss: ClassVar[bool] = False
    # the start's partition of the training points [N] when ``initialise`` warmed the
    # model up on one: the training loop keeps it as the anchor (vaemix.training.Anchor)
    start_labels: Tensor | None = None
    # vaemix's protocol's augmentation of the training images (set by the train stage from
    # the section's augment_shift / augment_rotate; vaemix.augment): the warm-up on the start
    # sees moved copies, and so does a model's own loss where the model says so (DEC-DA)
    augment: Augment = Augment()
    # the method as its paper trains it, every setting cited (vaemix.protocols): the runs
    # <method>_paper; None for the encoders, which have no paper protocol
    paper: ClassVar[Recipe | None] = None

    def __init__(self, spec: ModelSpec) -> None:
        super().__init__()
        self.spec = spec

    @classmethod
    def parse_options(cls, given: Mapping[str, Any], where: str | None = None) -> dict[str, Any]:
        """The method's own options among ``given`` (its merged params section), checked
        against :attr:`options` with defaults filled in; a bad one raises ParamError naming
        ``<where>.<key>`` (default: its section). Subclasses add the rules between keys."""
        return parse_section(where or cls.section,
                             {k: v for k, v in given.items() if k in cls.options}, cls.options)

    def loss(self, x: Tensor) -> dict[str, Tensor]:
        """Scalar training terms for a batch; ``"loss"`` is minimised, the rest are logged."""
        raise NotImplementedError

    def evaluate(self, x: Tensor) -> dict[str, Tensor]:
        """Per-example test quantities (e.g. ``test_recon_ll``, ``elbo``), each of shape [B]."""
        raise NotImplementedError

    def encode(self, x: Tensor) -> Tensor:
        """Deterministic latent code (posterior mean) [B, d], used by the baselines."""
        raise NotImplementedError

    def reconstruct(self, x: Tensor) -> Tensor:
        """Mean of p(x|z) at the encoder's code, in the input's shape."""
        raise NotImplementedError

    def predict_clusters(self, x: Tensor) -> Tensor:
        """Cluster index [B] of each example (clustering models only)."""
        raise TypeError(f"{type(self).__name__} does not cluster")

    def log_q_c(self, x: Tensor) -> Tensor:
        """ln q(c|x) [B, K], differentiable: the cluster posterior whose argmax is
        ``predict_clusters`` (clustering models only; the warm-up on a start's partition
        trains it)."""
        raise TypeError(f"{type(self).__name__} does not cluster")

    def initialise(self, x_train: Tensor, *, seed: int, **init: Any) -> None:
        """The start, before training: ``init`` holds what the train stage offers (the
        pretrained autoencoder's checkpoint ``ae_checkpoint``, vaemix's ``start``
        partition). The default keeps the random networks; a model that starts from a
        clustering sets :attr:`start_labels` when it warmed up on one."""

    def start_epoch(self, epoch: int, n_epochs: int) -> None:
        """Hook called before each training epoch (temperature schedules, prior refits)."""

    def before_step(self, step: int, x_train: Tensor) -> bool:
        """Hook called before each optimiser step ``step`` (counted from 0 over the whole
        run) with the whole training set; True stops training there (a convergence test,
        e.g. DEC's tolerance on changed labels). The default does nothing."""
        return False

    def summary_metrics(self) -> dict[str, Any]:
        """Model-specific numbers for the metrics file (e.g. a DP-GMM's effective K)."""
        return {}

    @torch.no_grad()
    def sample_per_cluster(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """Means of p(x|z) for n draws of z from each cluster: [K, n, *input_shape]."""
        raise TypeError(f"{type(self).__name__} does not generate per cluster")

    def decode_draws(self, z: Tensor) -> Tensor:
        """Means of p(x|z) [K, n, *input_shape] for draws z [K, n, d], through the model's
        ``decoder`` and ``likelihood`` (what ``sample_per_cluster`` shows)."""
        k, n, d = z.shape
        out = self.likelihood.mean(self.decoder(z.reshape(k * n, d)))
        return out.reshape(k, n, *self.spec.input_shape)
