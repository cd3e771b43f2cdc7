"""Run names: built and read in one place (vaemix.run_ids)."""

import pytest
import yaml

from tests.test_params_yaml import ROOT
from vaemix.report.summary import expected_runs, method_kind
from vaemix.run_ids import RunId, run_name


@pytest.mark.parametrize(("name", "parts"), [
    ("vade", ("vade", None, None)),
    ("ae+umap_gmm", ("ae", None, "umap_gmm")),
    ("vae_z5+gmm", ("vae", 5, "gmm")),
    ("gmvae_dpgmm_hard_z10", ("gmvae_dpgmm_hard", 10, None)),
    ("gmvae_dpgmm_from_gmvae_z8", ("gmvae_dpgmm_from_gmvae", 8, None)),
    ("moe_deepmoe_z0", ("moe_deepmoe", 0, None)),
])
def test_parse_and_name_are_inverse(name, parts):
    run = RunId.parse(name)
    assert (run.base, run.latent_dim, run.baseline) == parts
    assert run.name == name == run_name(*parts)


def test_moe_runs_and_sources():
    run = RunId.moe("dvmoe", 2)
    assert run.name == "moe_dvmoe_z2" and run.is_moe and run.gate == "dvmoe"
    assert RunId.parse("gmvae_z5+dpgmm").source.name == "gmvae_z5"
    assert RunId.parse("ae").with_baseline("kmeans").name == "ae+kmeans"
    with pytest.raises(ValueError, match="not a mixture-of-experts run"):
        _ = RunId.parse("vade").gate


@pytest.mark.parametrize("bad", ["", "a+b+c", "vae z5", "+gmm"])
def test_names_outside_the_convention_are_refused(bad):
    with pytest.raises(ValueError, match="not a run"):
        RunId.parse(bad)


def test_a_base_cannot_smuggle_a_latent_dim_or_baseline():
    with pytest.raises(ValueError, match="base name"):
        RunId("vae_z5")
    with pytest.raises(ValueError, match="base name"):
        RunId("ae+gmm")


def test_every_run_the_committed_params_ask_for_round_trips_and_has_a_kind():
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    names = [m for _, m in expected_runs(params)]
    assert {"ae+umap_gmm", "moe_dvmoe_z2", "vae_z8+gmm", "gmvae_dpgmm_soft_z8"} <= set(names)
    assert "vae_z8" in names and "ae_z8" not in names   # the sweep's encoders only
    for name in names:
        assert RunId.parse(name).name == name
    kinds = {m: method_kind(m, params) for m in names}
    assert kinds["ae"] == kinds["vae_z8"] == "encoder"
    assert kinds["ae+umap_gmm"] == kinds["vae_z8+gmm"] == "baseline"
    assert kinds["moe_dvmoe_z2"] == "moe" and kinds["gmvae_dpgmm_soft_z8"] == "mixture"

