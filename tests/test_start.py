"""vaemix's start (stage start@, vaemix.start): DEC-DA's clustering phase on the augmented
autoencoder ae_da on images, the N2D partition of ae elsewhere, and the train stages reading
whichever it published."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.tiny import inside, make_project, run_inprocess
from vaemix.augment import Augment
from vaemix.errors import ParamError
from vaemix.start import phase_starts, start_encoder, start_init, start_net, uses_dec_da

pytestmark = pytest.mark.slow


@pytest.mark.parametrize(("dataset", "shape", "expected"), [
    ("mnist", (1, 28, 28), "ae_da"),      # in start.dec_da_on
    ("cifar100", (3, 32, 32), "ae_da"),   # listed below too
    ("npz", (8, 8), "ae"),                # images, but not listed: N2D
    ("spiral", (2,), "ae"),               # listed, but not images: N2D
])
def test_the_start_is_dec_da_on_listed_image_datasets_only(dataset, shape, expected):
    params = {"start": {"dec_da_on": ["mnist", "cifar100", "spiral"], "guard_margin": 0.25},
              "baseline": {"umap_gmm": {"n_neighbors": 5}}}
    assert uses_dec_da(params, dataset, shape) == (expected == "ae_da")
    assert start_encoder(params, dataset, shape) == expected
    init = start_init(params, dataset, shape)
    assert init["ae_checkpoint"] == Path("artifacts") / dataset / expected / "model.pt"
    assert init["start"]["file"] == Path(f"artifacts/{dataset}/start/pred.npz")
    assert init["start"]["final"] == (expected == "ae_da")   # DEC-DA's: no cut comparison
    assert init["start"]["margin"] == 0.25   # how much less a spectral partition must cut


def test_runs_that_copy_the_start_take_its_network(tmp_path):
    """start_net: the network of pretrain.ae_da on a DEC-DA dataset (ConvDEC-DA's CAE on
    MNIST by default) becomes the spec of the runs that copy it; elsewhere model.<dataset>'s."""
    from tests.tiny import tiny_params
    from vaemix.models import spec_from_params

    params = tiny_params()
    assert params["pretrain"]["ae_da"]["per_dataset"]["mnist"]["net"] == "cae"
    assert start_net(params, "mnist", (1, 28, 28)) == {"net": "cae"}
    assert start_net(params, "spiral", (2,)) == {}                 # N2D on ae
    assert start_net(params, "npz", (8, 8)) == {}                  # not in dec_da_on
    spec = spec_from_params(params, "mnist", (1, 28, 28), **start_net(params, "mnist",
                                                                      (1, 28, 28)))
    assert spec.net == "cae"
    assert spec_from_params(params, "mnist", (1, 28, 28)).net == "mlp"   # the paper's
    with pytest.raises(ParamError, match=r"'net' of this run's section is 'cae', a network "
                                         r"for images \[C, H, W\], but spiral's inputs have"):
        spec_from_params(params, "spiral", (2,), net="cae")
    params["model"]["spiral"]["net"] = "conv"
    with pytest.raises(ParamError, match=r"'model.spiral.net' is 'conv'"):
        spec_from_params(params, "spiral", (2,))


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """The tiny profile on fake MNIST and the spiral, up to the start stage."""
    folder = make_project(tmp_path_factory.mktemp("start"), ("mnist", "spiral"))
    for ds in ("mnist", "spiral"):
        run_inprocess(folder, "prepare", ds)
        for enc in ("ae", "ae_da"):
            run_inprocess(folder, "pretrain", ds, enc)
            run_inprocess(folder, "baselines", ds, enc, "umap_gmm")
    return folder


def _moved(monkeypatch) -> list[tuple[float, float]]:
    """Record (shift, rotate) of every image batch an active Augment moves."""
    calls: list[tuple[float, float]] = []
    original = Augment.__call__

    def spy(self, x, generator=None):
        if self.active and x.dim() >= 3:
            calls.append((self.shift, self.rotate))
        return original(self, x, generator)

    monkeypatch.setattr(Augment, "__call__", spy)
    return calls


def test_dec_da_runs_on_ae_da_cae_on_moved_copies(project, monkeypatch):
    import torch

    calls = _moved(monkeypatch)
    run_inprocess(project, "start", "mnist")
    assert calls and set(calls) == {(0.1, 10.0)}   # start.dec's DEC-DA augmentation
    for run in ("ae_da", "start"):   # ConvDEC-DA: its CAE pretrained, then clustered
        ckpt = torch.load(project / f"artifacts/mnist/{run}/model.pt", weights_only=True)
        assert ckpt["spec"]["net"] == "cae", run
    with np.load(project / "artifacts/mnist/start/pred.npz") as f:
        labels, y = f["pred_train"], f["y_train"]
    with np.load(project / "artifacts/mnist/ae_da+umap_gmm/pred.npz") as f:
        n2d = f["pred_train"]
    assert labels.shape == n2d.shape == y.shape and labels.max() < 10
    assert (project / "artifacts/mnist/start/model.pt").is_file()   # DEC's trained encoder
    assert (project / "reports/metrics/mnist/start.json").is_file()


def test_the_guard_keeps_kmeans_end_unless_n2d_cuts_clearly_less(project):
    """MNIST's phase starts from K-means and start.guard_from is umap: both phases run, the
    end from N2D is published only if its partition cuts UMAP's graph of ae_da's codes by
    more than start.guard_margin less than K-means' end does, each
    candidate's partition is kept beside it, and the candidates' own runs are removed."""
    import json

    import torch

    from vaemix.config import load_params
    from vaemix.data import load_prepared
    from vaemix.models import spec_from_params
    from vaemix.models.init import ae_codes, normalized_cut
    from vaemix.umap_gmm import umap_graph

    run_inprocess(project, "start", "mnist")
    metrics = json.loads((project / "reports/metrics/mnist/start.json").read_text())
    assert metrics["kept_kmeans"] + metrics["kept_umap"] == 1.0
    kept = "kmeans" if metrics["kept_kmeans"] else "umap"
    margin = 0.1   # params.yaml's start.guard_margin: N2D's end must cut 10 % less
    assert (kept == "umap") == (metrics["cut_umap"]
                                < (1 - margin) * metrics["cut_kmeans"] - 1e-6)
    start = project / "artifacts/mnist/start"
    parts = {}
    for source in ("kmeans", "umap"):
        with np.load(start / f"from_{source}/pred.npz") as f:
            parts[source] = f["pred_train"]
        assert not (project / f"artifacts/mnist/start_from_{source}").exists()
        assert not (project / f"reports/metrics/mnist/start_from_{source}.json").exists()
    with np.load(start / "pred.npz") as f:
        assert np.array_equal(f["pred_train"], parts[kept])
    assert metrics["train_acc"] == metrics[f"{kept}_train_acc"]
    with inside(project):   # the cuts, recomputed from the published partitions
        params = load_params()
        assert params["start"]["guard_margin"] == margin
        data = load_prepared("mnist")
        spec = spec_from_params(params, "mnist", data.input_shape,
                                **start_net(params, "mnist", data.input_shape))
        z = ae_codes("artifacts/mnist/ae_da/model.pt", spec, torch.as_tensor(data.x_train))
        graph = umap_graph(z, params["baseline"]["umap_gmm"]["n_neighbors"], params["seed"])
    for source, labels in parts.items():
        assert normalized_cut(graph, labels) == pytest.approx(metrics[f"cut_{source}"])


@pytest.mark.parametrize(("guard_from", "init_clusters", "expected"), [
    ("umap", "kmeans", ("kmeans", "umap")),
    ("umap", "umap", ("umap",)),       # the same start: one phase
    (None, "kmeans", ("kmeans",)),     # no guard
    ("kmeans", None, ("kmeans",)),     # DEC's own default is K-means (Xie et al. 2016)
])
def test_phase_starts(guard_from, init_clusters, expected):
    dec = {"per_dataset": {"mnist": {"init_clusters": init_clusters}}} if init_clusters else {}
    params = {"start": {"guard_from": guard_from, "dec": dec}}
    assert phase_starts(params, "mnist") == expected


def test_spiral_start_is_ae_n2d_partition_unchanged(project, monkeypatch):
    calls = _moved(monkeypatch)
    run_inprocess(project, "start", "spiral")
    assert not calls   # no DEC-DA, nothing moved
    start = project / "artifacts/spiral/start/pred.npz"
    n2d = project / "artifacts/spiral/ae+umap_gmm/pred.npz"
    with np.load(start) as a, np.load(n2d) as b:
        assert a.files == b.files and all(np.array_equal(a[k], b[k]) for k in a.files)


def test_non_image_start_keeps_the_most_stable_n2d_neighbourhood(project):
    """start.n2d_neighbours on the spiral (not images): N2D fitted n2d_restarts times per
    neighbourhood size; the metrics hold each size's stability, the mean pairwise NMI of its
    restarts' partitions, recomputed here from independent fits; the size kept has the
    highest, and the partition published is its fit that agrees best with the others."""
    import itertools
    import json

    from sklearn.metrics import normalized_mutual_info_score as nmi

    from tests.tiny import edit_params
    from vaemix.umap_gmm import fit_umap_gmm

    neighbours, restarts = [4, 40], 3
    edit_params(project, {"start.n2d_neighbours": neighbours, "start.n2d_restarts": restarts})
    try:
        run_inprocess(project, "start", "spiral")
    finally:
        edit_params(project, {"start.n2d_neighbours": None})
    metrics = json.loads((project / "reports/metrics/spiral/start.json").read_text())["per_seed"]["0"]
    with np.load(project / "artifacts/spiral/ae/latents.npz") as f:
        z = f["z_train"]
    with np.load(project / "artifacts/spiral/start/pred.npz") as f:
        published = f["pred_train"]
    settings = {**yaml_params(project)["baseline"]["umap_gmm"]}
    stability, agreeing = {}, {}
    for k in neighbours:
        parts = [fit_umap_gmm(z, 5, 0 + 1000 * r, {**settings, "n_neighbors": k})[1]
                 for r in range(restarts)]
        pair = {(i, j): nmi(parts[i], parts[j]) for i, j in itertools.combinations(range(3), 2)}
        stability[k] = float(np.mean(list(pair.values())))
        mean_to_others = [np.mean([v for p, v in pair.items() if i in p]) for i in range(3)]
        agreeing[k] = parts[int(np.argmax(mean_to_others))]
        assert metrics[f"stability_nn{k}"] == pytest.approx(stability[k], abs=1e-12)
    kept = max(neighbours, key=lambda k: stability[k])
    assert metrics["n_neighbors"] == kept
    assert np.array_equal(published, agreeing[kept])


def yaml_params(folder: Path) -> dict:
    import yaml

    return yaml.safe_load((folder / "params.yaml").read_text())


def test_stable_n2d_needs_two_restarts_and_a_valid_param():
    from vaemix.config import validate
    from vaemix.start import stable_n2d

    with pytest.raises(ValueError, match="at least 2 restarts"):
        stable_n2d(np.zeros((10, 2)), 2, None, 0, [5], restarts=1)
    params = yaml_params(Path(__file__).resolve().parents[1])
    params["start"]["n2d_restarts"] = 1
    with pytest.raises(ParamError, match="start.n2d_restarts"):
        validate(params)


def test_train_starts_from_the_published_start(project):
    """A model of vaemix's protocol starts from the start's partition: VaDE's warm-up
    targets (kept as ``start_labels``, models/init.py self_train) are the published start."""
    import torch

    from vaemix.config import load_params
    from vaemix.data import load_prepared
    from vaemix.models import build_model, method_settings, spec_from_params
    from vaemix.models.init import read_start_labels

    run_inprocess(project, "start", "mnist")
    with inside(project):
        params = load_params()
        data = load_prepared("mnist")
        init = start_init(params, "mnist", data.input_shape)
        settings = {**method_settings(params, "train", "vade", "mnist"),
                    "init_clusters": "umap", "self_train_epochs": 1,
                    **start_net(params, "mnist", data.input_shape)}   # ae_da's CAE
        spec = spec_from_params(params, "mnist", data.input_shape, **settings)
        model = build_model("vade", spec)
        # a partition no clustering of the codes would give: the model must take it as is
        labels = np.random.default_rng(0).integers(0, 10, len(data.x_train))
        with np.load(init["start"]["file"]) as f:
            arrays = dict(f)
        np.savez(init["start"]["file"], **{**arrays, "pred_train": labels})
        assert np.array_equal(read_start_labels(init["start"]["file"], len(labels), 10, ""),
                              labels)
        model.initialise(torch.as_tensor(data.x_train), seed=0, **init)
    assert init["ae_checkpoint"] == Path("artifacts/mnist/ae_da/model.pt")
    assert np.array_equal(np.asarray(model.start_labels), labels)
    # it copied the CAE (then warmed up): ae_da's network, layer for layer
    ae = torch.load(project / "artifacts/mnist/ae_da/model.pt", weights_only=True)["state_dict"]
    mine = model.state_dict()
    for key, value in ae.items():
        theirs = key.replace("to_z.", "posterior.mean.")
        assert mine[theirs].shape == value.shape, key
    assert any(k.startswith("trunk.net.") for k in ae)   # the CAE's trunk


def test_a_final_start_is_kept_without_the_cut_comparison(tmp_path):
    """On four well-separated blobs a random partition cuts far more of UMAP's graph than a
    spectral one: umap_or_spectral replaces an N2D-like start by spectral, but keeps a final
    start (DEC-DA's) as it is."""
    from tests.conftest import blobs
    from vaemix.models.init import umap_or_spectral_mixture

    z, _ = blobs(400, 4, 3, seed=0)
    labels = np.random.default_rng(1).integers(0, 4, len(z))
    np.savez(tmp_path / "pred.npz", pred_train=labels)
    start = {"umap": {"n_neighbors": 10, "n_init": 1}, "file": tmp_path / "pred.npz"}
    assert not np.array_equal(umap_or_spectral_mixture(z, 4, 0, start).labels, labels)
    kept = umap_or_spectral_mixture(z, 4, 0, {**start, "final": True}).labels
    assert np.array_equal(kept, labels)
