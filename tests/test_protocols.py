"""The two protocols (vaemix.protocols) and the transductive scores.

- Each method's ``paper`` recipe holds the values its paper (or its authors' code) gives,
  by a table written here from the sources, independently of the modules.
- A ``<method>_paper`` run has no anchor, no warm-up on a start's partition and no N2D start:
  checked on real runs of the train stage, with the training loop watched.
- ``train_acc`` / ``train_nmi`` equal an independent computation on a toy labelling.
"""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest

from tests.tiny import make_project, run_inprocess
from vaemix.config import METHODS
from vaemix.metrics import transductive_metrics
from vaemix.models import MODELS
from vaemix.protocols import Cited, Recipe, paper_run, paper_settings, split_run

# (method, key, value, a word its source must name): the papers' settings, copied from
# the papers and their authors' code (see each module's docstring for the full citation).
CITED = [
    ("vade", "init", "ae", "Jiang"),
    ("vade", "init_clusters", "gmm", "Jiang"),
    ("vade", "lr", 0.002, "Jiang"),
    ("vade", "lr_decay", 0.9, "Jiang"),
    ("vade", "lr_decay_every", 10, "Jiang"),
    ("vade", "batch_size", 100, "Jiang"),
    ("vade", "lr_min", 0.0002, "Jiang"),
    ("vade", "adam_eps", 1e-4, "Jiang"),
    ("vade", "epochs", 500, "Jiang"),
    ("dmvae", "init", "none", "Singh"),
    ("dmvae", "epochs", 300, "Singh"),
    ("dmvae", "prior", "uniform", "Singh"),
    ("dmvae", "tau_start", 1.0, "Jang"),
    ("dmvae", "tau_end", 0.5, "Jang"),
    ("movae", "init", "none", "Zeldes"),
    ("movae", "epochs", 100, "Zeldes"),
    ("movae", "batch_size", 100, "Zeldes"),
    ("movae", "balance", "variance", "Zeldes"),
    ("movae", "balance_weight", 0.1, "Zeldes"),
    ("movae", "manager_hidden", [128], "Zeldes"),
    ("gmvae", "init", "none", "Collier"),
    ("gmvae", "lr", 0.001, "Collier"),
    ("gmvae", "epochs", 200, "Collier"),
    ("gmvae", "head_hidden", [512, 256], "Collier"),
    ("concrete_gmvae", "init", "none", "Collier"),
    ("concrete_gmvae", "tau", 0.3, "Collier"),
    ("concrete_gmvae", "kl_anneal_steps", 2000, "Collier"),
    ("concrete_gmvae", "kl_anneal", "exp_printed", "Collier"),
    ("gmvae_dpgmm", "init", "none", "Nagpal"),
    ("gmvae_dpgmm", "epochs", 100, "Nagpal"),
    ("gmvae_dpgmm", "truncation_factor", 1, "Nagpal"),
    ("gmvae_dpgmm", "refit_every", 1, "Nagpal"),
    ("gmvae_dpgmm", "refit_on", "sample", "Nagpal"),
    ("gmvae_dpgmm", "dp_warm_start", False, "Nagpal"),
]


@pytest.mark.parametrize(("method", "key", "value", "author"), CITED)
def test_paper_recipes_equal_the_cited_values(method, key, value, author):
    cited = MODELS[method].paper.cited("mnist")[key]
    assert cited.value == value
    assert author in cited.source


@pytest.mark.parametrize("method", METHODS)
def test_every_paper_setting_is_cited_and_checks(method):
    recipe = MODELS[method].paper
    for ds in (None, "mnist", "spiral"):
        for key, cited in recipe.cited(ds).items():
            assert isinstance(cited, Cited) and len(cited.source) > 10, (method, key)
        settings = paper_settings(method, recipe, ds)
        assert settings["anchor_weight"] == 0 and settings["self_train_epochs"] == 0
        # no augmentation either (vaemix.augment is vaemix's protocol only)
        assert settings["augment_shift"] == settings["augment_rotate"] == 0
        assert settings["self_paced"] is False and settings["relabel"] is False
        assert {"epochs", "batch_size", "lr"} <= settings.keys()


@pytest.mark.parametrize("method", METHODS)
def test_the_module_defaults_are_the_papers(method):
    """params.yaml states vaemix's start; a method option it leaves out is the paper's."""
    model = MODELS[method]
    for key, cited in model.paper.cited(None).items():
        if key in model.options:
            assert model.options[key].default == cited.value, (method, key)


def test_a_recipe_with_vaemix_start_is_refused():
    anchored = Recipe({"anchor_weight": Cited(10.0, "vaemix"), "lr": Cited(1e-3, "x")})
    with pytest.raises(ValueError, match="anchor_weight"):
        paper_settings("vade", anchored, None)
    augmented = Recipe({"augment_rotate": Cited(10.0, "Guo et al. 2019")})
    with pytest.raises(ValueError, match="augment_rotate"):
        paper_settings("vade", augmented, None)
    n2d = Recipe({"init_clusters": Cited("umap", "McConville et al. 2020")})
    with pytest.raises(ValueError, match="umap"):
        paper_settings("vade", n2d, None)


def test_run_names():
    assert paper_run("vade") == "vade_paper"
    assert split_run("vade_paper") == ("vade", "paper")
    assert split_run("gmvae_dpgmm") == ("gmvae_dpgmm", "vaemix")


@pytest.fixture(scope="module")
def spiral_project(tmp_path_factory):
    proj = make_project(tmp_path_factory.mktemp("paper"), ("spiral",),
                        {"budget.epoch_scale": 0.01})
    run_inprocess(proj, "prepare", "spiral")
    run_inprocess(proj, "pretrain", "spiral", "ae")
    return proj


@pytest.mark.parametrize("method", METHODS)
def test_paper_runs_have_no_anchor_and_no_warm_up(spiral_project, method, monkeypatch,
                                                  one_thread):
    import vaemix.models.init as init
    import vaemix.runs as runs

    seen: dict = {}
    real_fit, real_adam = runs.fit, init.adam_epochs

    def watched_fit(model, *args, anchor=None, **kw):
        seen["anchor"] = anchor
        return real_fit(model, *args, anchor=anchor, **kw)

    def watched_adam(module, parameters, batch_loss, n, epochs, *args, desc=None, **kw):
        if desc and "warm-up" in desc and epochs > 0:
            seen["warm_up"] = epochs
        return real_adam(module, parameters, batch_loss, n, epochs, *args, desc=desc, **kw)

    monkeypatch.setattr(runs, "fit", watched_fit)
    monkeypatch.setattr(init, "adam_epochs", watched_adam)
    run_inprocess(spiral_project, "train", "spiral", method, "paper")
    assert seen["anchor"] is None and "warm_up" not in seen
    metrics = json.loads((spiral_project / "reports/metrics/spiral" /
                          f"{paper_run(method)}.json").read_text())
    assert 0 <= metrics["train_acc"] <= 1 and metrics["train_n_clusters_used"] >= 1


def _acc_by_permutations(y: np.ndarray, pred: np.ndarray) -> float:
    best = 0
    labels = sorted(set(pred))
    for perm in itertools.permutations(range(3), len(labels)):
        mapping = dict(zip(labels, perm, strict=True))
        best = max(best, sum(mapping[p] == t for p, t in zip(pred, y, strict=True)))
    return best / len(y)


def _nmi(y: np.ndarray, pred: np.ndarray) -> float:
    n = len(y)
    joint = np.zeros((y.max() + 1, pred.max() + 1))
    for a, b in zip(y, pred, strict=True):
        joint[a, b] += 1
    joint /= n
    py, pp = joint.sum(1), joint.sum(0)
    mi = sum(joint[i, j] * math.log(joint[i, j] / (py[i] * pp[j]))
             for i in range(joint.shape[0]) for j in range(joint.shape[1]) if joint[i, j] > 0)
    h = [-sum(p * math.log(p) for p in ps if p > 0) for ps in (py, pp)]
    return mi / ((h[0] + h[1]) / 2)


def test_train_scores_equal_an_independent_count():
    y = np.array([0, 0, 0, 1, 1, 1, 2, 2, 2, 2])
    pred = np.array([2, 2, 1, 0, 0, 0, 1, 1, 1, 2])
    scores = transductive_metrics(y, pred)
    assert scores["train_acc"] == pytest.approx(_acc_by_permutations(y, pred)) == 0.8
    assert scores["train_nmi"] == pytest.approx(_nmi(y, pred))
    assert scores["train_n_clusters_used"] == 3
    assert transductive_metrics(np.array([0, -1]), np.array([0, 1])) == {}


def test_the_report_knows_the_papers_gumbel():
    from vaemix.report.paper_tables import NAGPAL_HARD

    assert MODELS["gmvae_dpgmm"].paper.values("mnist")["hard"] is NAGPAL_HARD


def test_paper_budget_replaces_the_epoch_scale_only_when_set():
    """budget.paper_epoch_scale scales the paper runs alone; null leaves epoch_scale."""
    from vaemix.config import scaled_epochs
    from vaemix.protocols import paper_budget

    params = {"budget": {"epoch_scale": 0.2, "paper_epoch_scale": None, "max_train": 8000}}
    assert paper_budget(params) == params
    params["budget"]["paper_epoch_scale"] = 0.02
    paper = paper_budget(params)
    assert paper["budget"] == {"epoch_scale": 0.02, "paper_epoch_scale": 0.02, "max_train": 8000}
    assert params["budget"]["epoch_scale"] == 0.2          # the caller's params untouched
    assert scaled_epochs(paper, 500) == 10 and scaled_epochs(params, 500) == 100
