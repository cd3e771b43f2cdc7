"""params.yaml validation: the committed file is valid, and each bad value is named."""

import copy
from pathlib import Path

import pytest
import yaml

from vaemix.config import (
    load_params,
    require_listed,
    resolve_device,
    scaled_epochs,
    training_settings,
    validate,
)
from vaemix.errors import ParamError

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture()
def params():
    return yaml.safe_load((ROOT / "params.yaml").read_text())


def test_committed_params_are_valid(params):
    assert validate(params) is params
    assert load_params(ROOT / "params.yaml")["seed"] == params["seed"]


def _set(params, key, value):
    p = copy.deepcopy(params)
    node = p
    *parents, last = key.split(".")
    for part in parents:
        node = node[part]
    if value is _DELETE:
        del node[last]
    else:
        node[last] = value
    return p


_DELETE = object()


@pytest.mark.parametrize(
    "key,value,needle",
    [
        ("datasets", ["mnist", "imagenet"], "'datasets' has unknown entry 'imagenet'"),
        ("encoders", ["ae", "pca"], "'encoders' has unknown entry 'pca'"),
        ("methods", ["nope"], "'methods' has unknown entry 'nope'"),
        ("baselines", ["kmeans", "spectral"], "'baselines' has unknown entry 'spectral'"),
        ("seed", -1, "'seed' must be a non-negative integer"),
        ("seed", "zero", "'seed' must be a non-negative integer"),
        ("seeds", [], "'seeds' must be a non-empty list of distinct non-negative integers"),
        ("seeds", [0, 0], "'seeds' must be a non-empty list of distinct non-negative"),
        ("seeds", [1, -2], "'seeds' must be a non-empty list of distinct non-negative"),
        ("latent_sweep.datasets", ["mnist"],
         "'latent_sweep.datasets' is retired: the sweep runs on every dataset of 'datasets'"),
        ("latent_sweep.latent_dims", [8, 0], "'latent_sweep.latent_dims' must be a list of"),
        ("latent_sweep.runs", ["gmvae_dpgmm_medium"],
         "'latent_sweep.runs' has unknown entry 'gmvae_dpgmm_medium'"),
        ("latent_sweep.from_gmvae", ["mnist"],
         "'latent_sweep.from_gmvae' lists methods, [gmvae_dpgmm] or [], not datasets"),
        ("latent_sweep.from_gmvae", ["vade"],
         "'latent_sweep.from_gmvae' has unknown entry 'vade' (known: gmvae_dpgmm)"),
        ("latent_sweep.baseline_encoders", ["vade"],
         "'latent_sweep.baseline_encoders' has 'vade', which is neither in "
         "'latent_sweep.encoders' nor"),
        ("latent_sweep.baseline_encoders", ["ae"],   # ae is an encoder, not pretrained at d
         "'latent_sweep.baseline_encoders' has 'ae', which is neither in "
         "'latent_sweep.encoders' nor"),
        ("latent_sweep.encoders", ["vade"],
         "'latent_sweep.encoders' has unknown entry 'vade' (known: ae, ae_da, vae)"),
        ("latent_sweep.encoders", _DELETE, "missing key 'latent_sweep.encoders'"),
        ("latent_sweep.runs", ["gmvae_dpgmm_hard"],
         "'latent_sweep.from_gmvae' needs 'gmvae' in 'latent_sweep.runs'"),
        ("device", "tpu", "'device' must be auto, cpu, cuda or cuda:N"),
        ("precision", "fp8", "'precision' must be one of fp32, bf16"),
        ("distributed.nproc_per_node", 0, "'distributed.nproc_per_node' must be a positive"),
        ("distributed.backend", "mpi", "'distributed.backend' must be one of auto, gloo, nccl"),
        ("budget.epoch_scale", 0, "'budget.epoch_scale' must be a positive number"),
        ("budget.max_train", -5, "'budget.max_train' must be a positive integer or null"),
        ("budget.max_test", 1.5, "'budget.max_test' must be a positive integer or null"),
        ("model.mnist.latent_dim", 0, "'model.mnist.latent_dim' must be a positive integer"),
        ("model.mnist.hidden", [500, -1], "'model.mnist.hidden' must be a non-empty list"),
        ("model.spiral.likelihood", "poisson", "'model.spiral.likelihood' must be one of"),
        ("pretrain.vae.lr", -0.1, "'pretrain.vae.lr' must be a positive number"),
        ("pretrain.ae.batch_size", "big", "'pretrain.ae.batch_size' must be a positive integer"),
        ("data.spiral.test_fraction", 1.0, "'data.spiral.test_fraction' must be a number strictly"),
        ("data.mnist.download", "yes", "'data.mnist.download' must be true or false"),
        ("baseline.dpgmm.truncation_factor", 1, "'baseline.dpgmm.truncation_factor' must be a number above 1"),
        ("baseline.dpgmm.degrees_of_freedom_prior", 0, "'baseline.dpgmm.degrees_of_freedom_prior' must be a positive number or null"),
        ("regression.mode", "quadratic", "'regression.mode' must be one of"),
        ("pretrain.vae.epochs", _DELETE, "missing key 'pretrain.vae.epochs'"),
        ("train.vade.lr", 0, "'train.vade.lr' must be a positive number"),
        ("train.vade.lr_decay", -0.9, "'train.vade.lr_decay' must be a positive number"),
        ("train.movae.epochs", 2.5, "'train.movae.epochs' must be a positive integer"),
        ("train.dmvae", [1], "'train.dmvae' must be a mapping"),
        ("train.dmvae.tau_start", 0, "'train.dmvae.tau_start' must be a positive number"),
        ("train.dmvae.tau_end", -0.1, "'train.dmvae.tau_end' must be a positive number"),
        # every temperature of every method (the models declare their own options)
        ("train.concrete_gmvae.tau", 0.0, "'train.concrete_gmvae.tau' must be a positive number"),
        ("train.gmvae_dpgmm.tau", "hot", "'train.gmvae_dpgmm.tau' must be a positive number"),
        ("train.dmvae.tau_end", 0.5, "'train.dmvae.tau_end' must be at most tau_start (0.1)"),
        ("train.movae.tau", 0.0, "'train.movae.tau': unknown key; known: "),  # none of its own
        ("pretrain.ae.input_dropout", 1.0, "'pretrain.ae.input_dropout' must be a number in [0, 1)"),
        ("train.vade.checkpoint_every", -1, "'train.vade.checkpoint_every' must be a non-negative"),
        ("pretrain.ae.max_loss_growth", 0, "'pretrain.ae.max_loss_growth' must be a positive"),
        ("budget.max_train", 7, "'model.mnist.n_clusters' is 10, more than the 7 training points"),
    ],
)
def test_bad_values_are_named(params, key, value, needle):
    """validate (every stage, first) or, for a model's own options, check_model_sections
    (pretrain and train stages, before any work)."""
    from vaemix.models import check_model_sections

    with pytest.raises(ParamError) as err:
        check_model_sections(validate(_set(params, key, value)))
    assert needle in str(err.value)
    assert "\n" not in str(err.value)


def test_per_dataset_override_is_checked_and_applied(params):
    bad = _set(params, "pretrain.ae.per_dataset", {"spiral": {"epochs": 0}})
    with pytest.raises(ParamError, match=r"'pretrain.ae.per_dataset.spiral.epochs'"):
        validate(bad)
    p = _set(params, "pretrain.ae.per_dataset", {"spiral": {"epochs": 7}})
    assert training_settings(p, "pretrain", "ae", "spiral")["epochs"] == 7
    assert training_settings(p, "pretrain", "ae", "mnist")["epochs"] == params["pretrain"]["ae"]["epochs"]


def test_baseline_encoder_must_be_pretrained(params):
    p = _set(params, "encoders", ["ae", "ae_da"])
    with pytest.raises(ParamError, match="'baseline_encoders' has 'vae'"):
        validate(p)


def test_the_start_needs_ae_da_and_a_known_kind(params):
    """start@ (vaemix.start) reads ae_da and its N2D partition whenever models train."""
    p = _set(params, "encoders", ["ae", "vae"])
    p["baseline_encoders"] = ["ae", "vae"]
    with pytest.raises(ParamError, match="'encoders' must include 'ae' and 'ae_da'"):
        validate(p)
    p = _set(params, "baseline_encoders", ["ae", "vae"])
    with pytest.raises(ParamError, match="'baseline_encoders' must include 'ae_da'"):
        validate(p)
    with pytest.raises(ParamError, match="'start.dec_da_on' has unknown entry 'usps'"):
        validate(_set(params, "start.dec_da_on", ["usps"]))
    with pytest.raises(ParamError, match="'start.dec.lr' must be a positive"):
        validate(_set(params, "start.dec.lr", -1))
    from vaemix.models import check_options, method_settings  # what stages/start.py checks
    p = _set(params, "start.dec.lrr", 0.1)
    with pytest.raises(ParamError, match="'start.dec.lrr': unknown key; did you mean 'lr'"):
        check_options("dec", method_settings(validate(p), "start", "dec", None), "start.dec")


def test_baseline_encoder_method_must_be_trained(params):
    params["methods"], params["paper_starts"] = ["vade"], []
    for enc in ("gmvae", "gmvae_paper"):   # vaemix's run and the paper's both need the method
        params["baseline_encoders"] = ["ae", enc]
        with pytest.raises(ParamError, match=f"'baseline_encoders' has '{enc}', and 'gmvae' "
                                             "is not in 'methods'"):
            validate(params)


def test_epoch_scale(params):
    p = _set(params, "budget.epoch_scale", 0.1)
    assert scaled_epochs(p, 50) == 5
    assert scaled_epochs(p, 2) == 1


def test_require_listed_and_device(params):
    with pytest.raises(ParamError, match="'datasets' does not list 'npz'"):
        require_listed(params, "datasets", "npz")
    assert resolve_device("cpu").type == "cpu"
    import torch

    if not torch.cuda.is_available():
        with pytest.raises(ParamError, match="no CUDA device"):
            resolve_device("cuda:0")


def test_unreadable_params_file(tmp_path):
    with pytest.raises(ParamError, match="params file not found"):
        load_params(tmp_path / "missing.yaml")
    bad = tmp_path / "params.yaml"
    bad.write_text("seed: [1,\n")
    with pytest.raises(ParamError, match="not valid YAML"):
        load_params(bad)


def test_temperature_in_a_per_dataset_override_is_checked(params):
    from vaemix.models import check_model_sections

    bad = _set(params, "train.dmvae.per_dataset", {"spiral": {"tau_end": 0}})
    with pytest.raises(ParamError, match=r"'train.dmvae.per_dataset.spiral.tau_end' must be a pos"):
        check_model_sections(validate(bad))
    bad = _set(params, "train.vade.per_dataset", {"spiral": {"predcit": "mean"}})
    with pytest.raises(ParamError, match=r"'train.vade.per_dataset.spiral.predcit': unknown key; "
                                         "did you mean 'predict'"):
        check_model_sections(validate(bad))


def test_schedules_scale_with_the_budget():
    from vaemix.config import scale_schedules

    params = {"budget": {"epoch_scale": 0.1}}
    settings = {"epochs": 100, "kl_anneal_steps": 2000, "tau_anneal_epochs": 50,
                "q_init_epochs": 0, "self_train_epochs": 3, "lr_decay_every": 10, "lr": 0.002}
    out = scale_schedules(params, settings)
    assert out["kl_anneal_steps"] == 200 and out["tau_anneal_epochs"] == 5
    assert out["q_init_epochs"] == 0          # a phase that is off stays off
    assert out["self_train_epochs"] == 1      # rounds to 0.3, kept at one
    assert out["lr_decay_every"] == 1 and out["lr"] == 0.002 and out["epochs"] == 100
    assert settings["kl_anneal_steps"] == 2000   # the input is not changed


@pytest.mark.parametrize("change", [
    {"baselines": ["kmeans", "gmm"]},                       # the N2D start is not fitted
    {"baseline_encoders": ["vae"]},                          # nor on the AE's codes
    {"methods": [], "paper_starts": [], "baselines": ["kmeans"]},   # the MoE gates start from it
])
def test_the_start_the_models_need_is_required(params, change):
    bad = copy.deepcopy(params)
    bad["latent_sweep"] = None                               # (the sweep's own checks aside)
    bad["baseline_encoders"] = ["ae", "vae"]
    bad.update(change)
    with pytest.raises(ParamError, match="umap_gmm"):
        validate(bad)
    bad["moe"].update(gates=[], plain_gates=[])
    bad["methods"], bad["paper_starts"] = [], []
    validate(bad)        # nothing starts from it: no need


@pytest.mark.parametrize("key, message", [
    ("budget.epoch_scael", "'budget.epoch_scael': unknown key; did you mean 'epoch_scale'?"),
    ("datasetz", "'datasetz': unknown key; did you mean 'datasets'?"),
    ("baseline.umap_gmm.n_neighbor",
     "'baseline.umap_gmm.n_neighbor': unknown key; did you mean 'n_neighbors'?"),
    ("data.spiral.noize", "'data.spiral.noize': unknown key; did you mean 'noise'?"),
    ("moe.dvmoe.tau_strat", "'moe.dvmoe.tau_strat': unknown key; did you mean 'tau_start'?"),
    ("moe.deepmoe.per_dataset.spiral.lrr",
     "'moe.deepmoe.per_dataset.spiral.lrr': unknown key; did you mean 'lr'?"),
    ("train.vaed", "'train.vaed': unknown key; did you mean 'vade'?"),
])
def test_a_misspelled_key_is_refused_with_the_closest_one(params, key, message):
    bad = copy.deepcopy(params)
    *parents, last = key.split(".")
    node = bad
    for part in parents:
        node = node.setdefault(part, {})
    node[last] = 1
    with pytest.raises(ParamError) as err:
        validate(bad)
    assert str(err.value) == f"params.yaml: {message}"


@pytest.mark.parametrize("method, key, closest", [
    ("vade", "predcit", "predict"), ("gmvae", "tua", None), ("concrete_gmvae", "tua", "tau"),
    ("dmvae", "lrr", "lr"), ("ae", "input_dropuot", "input_dropout"),
    ("gmvae_dpgmm", "truncation", "truncation_factor"),
])
def test_a_misspelled_model_option_is_refused_before_the_model_is_built(method, key, closest):
    from vaemix.models import check_options

    with pytest.raises(ParamError) as err:
        check_options(method, {"epochs": 3, "lr": 0.001, key: 1})
    section = "pretrain" if method == "ae" else "train"
    assert str(err.value).startswith(f"params.yaml: '{section}.{method}.{key}': unknown key; ")
    if closest:
        assert str(err.value).endswith(f"did you mean '{closest}'?")
    else:  # nothing close (tau is the Concrete GMVAE's, not the GMVAE's): the known keys
        assert "known: " in str(err.value) and "head_hidden" in str(err.value)


def test_every_committed_option_is_known_to_its_model(params):
    """params.yaml's own train.* and pretrain.* sections pass the models' key check."""
    from vaemix.models import check_options

    for section in ("pretrain", "train"):
        for name in params[section]:
            for ds in params["datasets"]:
                check_options(name, training_settings(params, section, name, ds))


def test_a_method_without_a_params_section_runs_on_its_declared_defaults():
    """Naming a method in ``methods`` is enough: with no train.<method> section, the
    model class's ``defaults`` and ``options`` give every setting."""
    from vaemix.models import check_model_sections, method_settings, model_class

    params = load_params(ROOT / "params.yaml")
    del params["train"]["dmvae"]
    validate(params)
    check_model_sections(params, only="dmvae")
    settings = method_settings(params, "train", "dmvae", "mnist")
    assert settings == model_class("dmvae").defaults
    assert {"epochs", "batch_size", "lr"} <= set(settings)
