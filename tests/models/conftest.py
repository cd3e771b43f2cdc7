"""Shared data for the mixture-model tests: well-separated Gaussian blobs, and a briefly
pretrained autoencoder checkpoint on them (the start of VaDE's and DMVAE's `init: ae`)."""

from dataclasses import asdict

import pytest
import torch

from tests.conftest import blobs
from vaemix.models import ModelSpec, build_model
from vaemix.training import TrainConfig, fit, seed_everything

BLOB_SPEC = dict(input_shape=(10,), latent_dim=2, n_clusters=5, hidden=(64, 64),
                 likelihood="gaussian")


@pytest.fixture(scope="module")
def blob_data(tmp_path_factory):
    """300 points per blob (200 train, 100 test) and a briefly pretrained AE checkpoint."""
    seed_everything(0)
    x, y = blobs(300, 5, 10, seed=0)
    x = torch.as_tensor(x)
    ae = build_model("ae", ModelSpec(**BLOB_SPEC))
    fit(ae, x[:1000], TrainConfig(epochs=20, batch_size=64, lr=3e-3, seed=0))
    path = tmp_path_factory.mktemp("ae") / "ae.pt"
    torch.save({"state_dict": ae.state_dict(), "spec": asdict(ae.spec), "method": "ae"}, path)
    return x[:1000], y[:1000], x[1000:], y[1000:], ae, path
