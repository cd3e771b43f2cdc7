"""Toy, the worked example of README's "Add a method": an autoencoder whose codes are pulled
towards K learned centres, the clusters being the nearest centre (k-means in a learned
latent space). Copy it to ``src/vaemix/models/toy.py`` and add ``toy`` to ``methods``.

It is vaemix's example, no paper's: without a cited ``paper`` recipe its ``toy_paper``
runs train on ``defaults`` with none of vaemix's start. ``initialise`` is the base class's
(random networks); see vaemix.models.dec for a method that starts from the pretrained
autoencoder and the N2D partition.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from vaemix.models.base import Model, ModelSpec
from vaemix.networks import Likelihood, build_decoder, build_trunk
from vaemix.schema import Key, Number


class Toy(Model):
    clusters, generates = True, False          # clusters; no samples per cluster
    section = "train.toy"                      # its params section, optional in params.yaml
    defaults = {"epochs": 50, "batch_size": 128, "lr": 1e-3}   # the training loop's keys
    options = {"pull": Key(Number(), 1.0)}     # its own keys, typed, with defaults

    def __init__(self, spec: ModelSpec) -> None:
        super().__init__(spec)
        self.pull = self.parse_options(spec.options)["pull"]
        self.trunk = build_trunk(spec.input_shape, spec.net, spec.hidden)
        self.to_z = nn.Linear(self.trunk.out_features, spec.latent_dim)
        self.decoder = build_decoder(spec.input_shape, spec.latent_dim, spec.net, spec.hidden)
        self.likelihood = Likelihood(spec.likelihood, spec.input_shape)
        self.centres = nn.Parameter(torch.randn(spec.n_clusters, spec.latent_dim))

    def encode(self, x: Tensor) -> Tensor:
        return self.to_z(self.trunk(x))

    def log_q_c(self, x: Tensor) -> Tensor:   # the cluster posterior: nearest centre
        return torch.log_softmax(-torch.cdist(self.encode(x), self.centres) ** 2, dim=1)

    def predict_clusters(self, x: Tensor) -> Tensor:
        return self.log_q_c(x).argmax(1)

    def reconstruct(self, x: Tensor) -> Tensor:
        return self.likelihood.mean(self.decoder(self.encode(x)))

    def evaluate(self, x: Tensor) -> dict[str, Tensor]:   # per-example test quantities
        return {"test_recon_ll": self.likelihood.log_prob(x, self.decoder(self.encode(x)))}

    def loss(self, x: Tensor) -> dict[str, Tensor]:   # "loss" is minimised, the rest logged
        z = self.encode(x)
        recon_nll = -self.likelihood.log_prob(x, self.decoder(z)).mean()
        pull = torch.cdist(z, self.centres).min(1).values.pow(2).mean()
        return {"loss": recon_nll + self.pull * pull, "recon_nll": recon_nll, "pull": pull}


METHOD = Toy
