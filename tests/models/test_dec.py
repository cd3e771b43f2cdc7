"""DEC (Xie et al. 2016) and IDEC (Guo et al. 2017): the soft assignment and the target
distribution against their formulas written out, the stopping rule, the losses, the start
from the pretrained autoencoder, learning on separated clusters, and the paper recipes."""

import numpy as np
import pytest
import torch

from tests.models.conftest import BLOB_SPEC
from vaemix.distributions import log_student_t_assignments, target_distribution
from vaemix.metrics import cluster_accuracy
from vaemix.models import MODELS, ModelSpec, build_model
from vaemix.models.dec import DEC
from vaemix.models.idec import IDEC
from vaemix.protocols import paper_settings
from vaemix.training import TrainConfig, batched, fit, seed_everything


def student_t(z: np.ndarray, mu: np.ndarray, alpha: float) -> np.ndarray:
    """q_ij of Xie et al. 2016, eq. 1, with loops."""
    q = np.empty((len(z), len(mu)))
    for i in range(len(z)):
        for j in range(len(mu)):
            q[i, j] = (1 + np.sum((z[i] - mu[j]) ** 2) / alpha) ** (-(alpha + 1) / 2)
    return q / q.sum(1, keepdims=True)


def sharpened(q: np.ndarray) -> np.ndarray:
    """p_ij of eq. 3, with loops."""
    f = q.sum(0)
    p = np.empty_like(q)
    for i in range(len(q)):
        w = q[i] ** 2 / f
        p[i] = w / w.sum()
    return p


@pytest.mark.parametrize("alpha", [1.0, 0.5, 3.0])
def test_soft_assignment_is_student_t(alpha):
    rng = np.random.default_rng(0)
    z, mu = rng.normal(size=(7, 3)), rng.normal(size=(4, 3)) * 2
    log_q = log_student_t_assignments(torch.as_tensor(z), torch.as_tensor(mu), alpha)
    assert np.allclose(log_q.exp().numpy(), student_t(z, mu, alpha), atol=1e-12)
    far = log_student_t_assignments(torch.tensor([[1e4, -1e4]]), torch.zeros(3, 2))
    assert torch.isfinite(far).all()


def test_target_distribution_sharpens_and_normalises():
    q = torch.softmax(torch.randn(20, 5, dtype=torch.float64), 1)
    p = target_distribution(q)
    assert np.allclose(p.numpy(), sharpened(q.numpy()), atol=1e-12)
    assert torch.allclose(p.sum(1), torch.ones(20, dtype=torch.float64))
    # squaring moves mass to each point's most likely cluster
    assert (p.max(1).values >= q.max(1).values - 1e-12).all()


def spec(**options) -> ModelSpec:
    return ModelSpec(**BLOB_SPEC, options=options)


def test_registered_and_declared():
    assert MODELS["dec"] is DEC and MODELS["idec"] is IDEC
    assert DEC.clusters and not DEC.reconstructs and not DEC.generates and DEC.indexed_loss
    assert IDEC.reconstructs and not IDEC.generates and not DEC.learns_k
    assert {"epochs", "batch_size", "lr"} <= DEC.defaults.keys() <= IDEC.defaults.keys() | {
        "momentum"}


def test_losses_are_kl_of_p_to_q_and_idec_adds_the_reconstruction():
    torch.manual_seed(0)
    x = torch.randn(30, 10)
    idx = torch.arange(10, 20)
    for cls in (DEC, IDEC):
        model = cls(spec())
        model.update_target(x)
        p, log_q = model.target[idx], model.log_q_c(x[idx])
        kl = (p * (p.log() - log_q)).sum(1).mean()
        terms = model.loss(x[idx], idx)
        assert torch.allclose(terms["kl_p_q"], kl, atol=1e-6)
        if cls is IDEC:   # L = L_r + gamma L_c (Guo et al. 2017, eq. 7), L_r the mean MSE
            mse = ((model.reconstruct(x[idx]) - x[idx]) ** 2).mean()
            assert torch.allclose(terms["loss"], mse + 0.1 * kl, atol=1e-6)
        else:
            assert torch.allclose(terms["loss"], kl, atol=1e-6)


def test_the_target_is_held_for_update_interval_steps_and_training_stops_at_tol():
    torch.manual_seed(0)
    x = torch.randn(40, 10)
    model = DEC(spec(update_interval=5, tol=0.01))
    assert model.before_step(0, x) is False          # the first update: never a stop
    target = model.target
    assert model.before_step(3, x) is False and model.target is target   # held between
    # no training between two updates: no label changed, below tol, stop
    assert model.before_step(5, x) is True and model.target is not target
    with torch.no_grad():
        model.centres.add_(torch.randn_like(model.centres) * 5)   # many labels move
    assert model.before_step(10, x) is False


def test_a_checkpoint_keeps_the_target():
    torch.manual_seed(0)
    x = torch.randn(25, 10)
    model = IDEC(spec())
    model.update_target(x)
    fresh = IDEC(spec())
    fresh.load_state_dict(model.state_dict())
    assert torch.equal(fresh.target, model.target)
    assert torch.equal(fresh.last_labels, model.last_labels)


@pytest.mark.parametrize("name", ["dec", "idec"])
def test_separates_well_separated_clusters_from_the_kmeans_start(name, blob_data):
    x_train, y_train, x_test, y_test, ae, ae_path = blob_data
    seed_everything(0)
    model = build_model(name, spec())
    model.initialise(x_train, seed=0, ae_checkpoint=ae_path)
    assert torch.allclose(model.encode(x_train[:5]), ae.encode(x_train[:5]))  # the AE's
    if name == "idec":
        assert torch.allclose(model.reconstruct(x_train[:5]), ae.reconstruct(x_train[:5]))
    start = cluster_accuracy(y_test, batched(model.predict_clusters, x_test).numpy())
    settings = paper_settings(name, model.paper, None)
    config = TrainConfig(epochs=10, batch_size=256, lr=settings["lr"],
                         optimizer=settings["optimizer"], momentum=settings.get("momentum", 0),
                         seed=0)
    fit(model, x_train, config)
    acc = cluster_accuracy(y_test, batched(model.predict_clusters, x_test).numpy())
    assert acc >= 0.95 and acc >= start - 0.02, (start, acc)


def test_the_vaemix_start_warms_up_on_the_partition(blob_data):
    """With a partition start (vaemix's), the model is trained to agree with it and keeps it
    as the anchor's labels."""
    x_train, y_train, *_, ae_path = blob_data
    model = build_model("dec", spec(init_clusters="gmm", self_train_epochs=0))
    model.initialise(x_train, seed=0, ae_checkpoint=ae_path)
    assert model.start_labels is not None   # a GMM's partition of every training point
    assert len(model.start_labels) == len(x_train)


def test_the_paper_recipes_are_cited_and_hold_no_vaemix_start():
    for cls, gamma in ((DEC, None), (IDEC, 0.1)):
        values = paper_settings(cls.__name__.lower(), cls.paper, "mnist")
        assert values["init_clusters"] == "kmeans" and values["update_interval"] == 140
        assert values["tol"] == 0.001 and values["batch_size"] == 256
        assert values.get("gamma") == gamma
        assert all(c.source for c in cls.paper.settings.values())
    assert DEC.paper.values(None)["optimizer"] == "sgd"
    assert IDEC.paper.values(None)["optimizer"] == "adam"
