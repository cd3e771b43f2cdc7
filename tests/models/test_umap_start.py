"""The N2D start (init_clusters: umap) and the warm-up on its partition: every mixture model
begins from the UMAP + GMM clustering of the autoencoder's codes and keeps it."""

import numpy as np
import pytest
import torch

from tests.conftest import blobs
from tests.models.conftest import BLOB_SPEC
from vaemix.errors import DataError
from vaemix.io import save_npz
from vaemix.metrics import cluster_accuracy
from vaemix.models import ModelSpec, build_model
from vaemix.models.init import umap_mixture
from vaemix.training import Anchor, TrainConfig, batched, fit, seed_everything

UMAP = {"n_neighbors": 15, "n_components": None, "min_dist": 0.0, "covariance_type": "full",
        "n_init": 2, "max_points": None}
HEADS = {"head_hidden": [32], "q_init_epochs": 2}
OPTIONS = {
    "vade": {"init": "ae"},
    "dmvae": {"init": "ae"},
    "gmvae": {"init": "ae", **HEADS},
    "concrete_gmvae": {"init": "ae", "kl_anneal_steps": 50, **HEADS},
    "movae": {"init": "ae", "expert_hidden": [32], "manager_hidden": [32]},
}


def model_from_start(method: str, path, x, start: dict, epochs: int = 3):
    seed_everything(0)
    options = {**OPTIONS[method], "init_clusters": "umap", "self_train_epochs": epochs}
    model = build_model(method, ModelSpec(**BLOB_SPEC, options=options))
    model.initialise(x, seed=0, ae_checkpoint=path, start=start)
    return model


@pytest.mark.parametrize("method", sorted(OPTIONS))
def test_every_model_starts_from_the_umap_clustering_and_keeps_it(method, blob_data):
    x, _, x_test, y_test, _, path = blob_data
    # MoVAE's manager starts random (nothing of the AE is copied): it needs more steps; so
    # do the GMVAEs' q(y|x) heads (3 epochs left two blobs merged on one CPU, 0.80)
    epochs = {"movae": 30, "gmvae": 10, "concrete_gmvae": 10}.get(method, 3)
    model = model_from_start(method, path, x, {"umap": UMAP}, epochs)
    start = batched(model.predict_clusters, x_test).numpy()
    assert cluster_accuracy(y_test, start) >= 0.95
    fit(model, x, TrainConfig(epochs=5, batch_size=64, lr=1e-3, seed=0))
    end = batched(model.predict_clusters, x_test).numpy()
    assert cluster_accuracy(y_test, end) >= 0.95 and len(np.unique(end)) == 5


@pytest.mark.parametrize("method", ["vade", "gmvae"])
def test_the_warm_up_follows_the_start_file_it_is_given(method, blob_data, tmp_path):
    """A planted partition in the baseline's pred.npz (the true blobs under shuffled
    names) is read, not refitted, and the warm-up makes the model's clusters its clusters,
    index for index."""
    x, y, _, _, _, path = blob_data
    planted = np.array([3, 0, 4, 1, 2])[np.asarray(y)]
    save_npz(tmp_path / "pred.npz", pred_train=planted, pred_test=np.zeros(3, np.int64))
    model = model_from_start(method, path, x, {"umap": UMAP, "file": tmp_path / "pred.npz"})
    pred = batched(model.predict_clusters, x).numpy()
    assert np.mean(pred == planted) >= 0.98


def test_a_start_file_of_another_split_is_refused(tmp_path):
    z = np.random.default_rng(0).normal(size=(40, 2))
    save_npz(tmp_path / "pred.npz", pred_train=np.zeros(39, np.int64))
    with pytest.raises(DataError, match="pred.npz"):
        umap_mixture(z, 3, seed=0, start={"file": tmp_path / "pred.npz"})


def test_umap_start_is_deterministic_given_the_seed():
    rng = np.random.default_rng(1)
    z = np.concatenate([rng.normal(loc=6 * k, size=(60, 3)) for k in range(3)])
    a = umap_mixture(z, 3, seed=4, start={"umap": UMAP})
    b = umap_mixture(z, 3, seed=4, start={"umap": UMAP})
    np.testing.assert_array_equal(a.labels, b.labels)
    assert cluster_accuracy(np.repeat(np.arange(3), 60), a.labels) == 1.0


def test_movae_start_needs_the_autoencoder(blob_data):
    x, *_ = blob_data
    model = build_model("movae", ModelSpec(**BLOB_SPEC, options=OPTIONS["movae"]))
    with pytest.raises(Exception, match="train.movae.init"):
        model.initialise(x, seed=0, ae_checkpoint=None)


def test_the_anchor_holds_the_model_to_its_start(blob_data, tmp_path):
    """A start DMVAE's own ELBO disagrees with (two blobs merged, one blob cut in half) is
    kept through training when the start's partition stays a term of the loss; released,
    the model moves off it."""
    x, y, _, _, _, path = blob_data
    y = np.asarray(y)
    planted = np.array([0, 0, 1, 3, 4])[y]
    blob2 = y == 2
    cut = np.asarray(x[:, 0]) > np.median(np.asarray(x[blob2, 0]))
    planted[blob2 & cut] = 2
    save_npz(tmp_path / "pred.npz", pred_train=planted, pred_test=np.zeros(3, np.int64))
    agreement = {}
    for weight in (0.0, 1.0):
        model = model_from_start("dmvae", path, x,
                                 {"umap": UMAP, "file": tmp_path / "pred.npz"}, epochs=20)
        np.testing.assert_array_equal(model.start_labels.numpy(), planted)
        anchor = Anchor(model.start_labels, weight) if weight else None
        fit(model, x, TrainConfig(epochs=40, batch_size=64, lr=1e-3, seed=0), anchor=anchor)
        agreement[weight] = np.mean(batched(model.predict_clusters, x).numpy() == planted)
    assert agreement[1.0] >= 0.95 and agreement[1.0] > agreement[0.0] + 0.03


def test_gmvae_dpgmm_starts_its_first_dp_fit_from_the_partition(blob_data, tmp_path):
    """With init_clusters: umap the DP-GMM's first fit starts from the start's partition
    (component k = cluster k of the partition, the T - K others empty) instead of k-means,
    and the model is warmed up on the partition and held to it like the other mixture
    models: its DP components stay the partition's clusters through the refits."""
    x, y, _, _, _, path = blob_data
    planted = np.array([3, 0, 4, 1, 2])[np.asarray(y)]
    save_npz(tmp_path / "pred.npz", pred_train=planted, pred_test=np.zeros(3, np.int64))
    seed_everything(0)
    options = {"init": "ae", "init_clusters": "umap", "self_train_epochs": 40,
               "truncation_factor": 2, "kl_anneal_steps": 50, "refit_on": "mean",
               "dp_warm_start": True, **HEADS}   # warm refits: vaemix's protocol
    model = build_model("gmvae_dpgmm", ModelSpec(**BLOB_SPEC, options=options))
    model.initialise(x, seed=0, ae_checkpoint=path,
                     start={"umap": UMAP, "file": tmp_path / "pred.npz"})
    np.testing.assert_array_equal(model.start_labels.numpy(), planted)
    weights = model.prior_log_weights.exp().numpy()
    assert weights[:5].sum() > 0.95 and model.n_effective() == 5
    fit(model, x, TrainConfig(epochs=5, batch_size=64, lr=1e-3, seed=0),
        anchor=Anchor(model.start_labels, weight=10.0))  # five DP-GMM refits
    pred = batched(model.predict_clusters, x).numpy()
    assert np.mean(pred == planted) >= 0.95 and model.n_effective() == 5



@pytest.mark.parametrize("method", ["vade", "dmvae"])
def test_umap_or_spectral_start_is_warmed_up_as_umap_is(method, blob_data):
    """init_clusters: umap_or_spectral hands its chosen partition to the warm-up, as umap
    does: the started model's clusters are the blobs."""
    x, _, x_test, y_test, _, path = blob_data
    seed_everything(0)
    options = {"init": "ae", "init_clusters": "umap_or_spectral", "self_train_epochs": 3}
    model = build_model(method, ModelSpec(**BLOB_SPEC, options=options))
    model.initialise(x, seed=0, ae_checkpoint=path, start={"umap": UMAP})
    start = batched(model.predict_clusters, x_test).numpy()
    assert cluster_accuracy(y_test, start) >= 0.95 and len(np.unique(start)) == 5


def test_dpgmm_starts_its_first_fit_from_the_umap_or_spectral_partition(blob_data):
    """GMVAE + DP-GMM: the chosen partition is the first DP fit's start and is returned
    as the warm-up's labels."""
    x, y, _, _, ae, _ = blob_data
    with torch.no_grad():
        z = ae.encode(x).numpy()
    options = {"init": "ae", **HEADS, "init_clusters": "umap_or_spectral"}
    model = build_model("gmvae_dpgmm", ModelSpec(**BLOB_SPEC, options=options))
    mix = model.prior_from_codes(z, seed=0, start={"umap": UMAP})
    assert cluster_accuracy(np.asarray(y), mix.labels) >= 0.95


def test_a_tie_of_the_two_cuts_keeps_umap(monkeypatch):
    """Both cuts 0 up to rounding (blobs far apart: UMAP's graph falls apart into them): the
    choice must not hang on the last bits of the two sums, which differ between CPUs."""
    from vaemix.models import init

    z, _ = blobs(40, 3, 4, seed=0, spread=50.0)
    cuts = iter([3e-17, 1e-17])   # umap's, then spectral's: spectral smaller by rounding only
    monkeypatch.setattr(init, "normalized_cut", lambda graph, labels: next(cuts))
    assert init.choose_by_cut(z.astype(np.float64), 3, seed=0).chosen == "umap"
    cuts = iter([0.5, 0.1])       # a real difference still chooses spectral
    assert init.choose_by_cut(z.astype(np.float64), 3, seed=0).chosen == "spectral"


def test_spectral_replaces_umap_only_by_more_than_the_margin(monkeypatch):
    """With vaemix.start's margin (start.guard_margin, 10 %), a spectral partition that cuts
    UMAP's graph a hair less keeps the N2D one (digits' cuts, 0.3900 against 0.3884, where
    spectral was 9 points worse); one that cuts it by more than the margin replaces it (the
    spiral whose arms do not touch: 0.0117 against 0.0056). Without a margin, any smaller
    cut wins."""
    from pathlib import Path

    from vaemix.config import load_params
    from vaemix.models import init
    from vaemix.start import start_init

    params = load_params(Path(__file__).resolve().parents[2] / "params.yaml")
    start = start_init(params, "npz", (64,))["start"]
    assert start["margin"] == params["start"]["guard_margin"] == 0.1
    z, y = blobs(40, 3, 4, seed=0, spread=5.0)
    z = z.astype(np.float64)
    monkeypatch.setattr(init, "umap_mixture", lambda z, k, seed, start: Labelled(y))
    monkeypatch.setattr(init, "spectral_labels", lambda z, k, seed, nn, cap: (z, 2 - y))
    cases = [(0.3900, 0.3884, start, "umap"), (0.3900, 0.3550, start, "umap"),
             (0.3900, 0.3480, start, "spectral"), (0.0117, 0.0056, start, "spectral"),
             (0.3900, 0.3884, None, "spectral")]
    for umap_cut, spectral_cut, given, chosen in cases:
        cuts = iter([umap_cut, spectral_cut])
        monkeypatch.setattr(init, "normalized_cut", lambda graph, labels, c=cuts: next(c))
        got = init.choose_by_cut(z, 3, seed=0, start=given)
        assert got.chosen == chosen, (umap_cut, spectral_cut, given)
        np.testing.assert_array_equal(got.partitions[chosen], y if chosen == "umap" else 2 - y)


class Labelled:
    """A stand-in for umap_mixture's result: only its labels are read."""

    def __init__(self, labels: np.ndarray) -> None:
        self.labels = np.asarray(labels, dtype=np.int64)
