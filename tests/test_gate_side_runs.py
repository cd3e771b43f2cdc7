"""The regression gate's side runs: the runs of the gate's reference DAG that CI's `dvc repro`
(tests/test_pipeline_e2e.py) leaves out, run stage by stage in this process and gated against
the same committed reference.

They are the latent-dimension sweep (Nagpal et al. 2019, Tables 1-2: ``<run>_z8``), the
baselines on the latents of the VAE and of the paper-protocol GMVAE (their Table 1), the
plain MoE gates beside DeepMoE and the oracle (GMM gate, one linear map) and VaDE's and
DMVAE's paper recipes from the other start (Singh et al. 2018, sec. 8.1). Their stage
templates are the DAG's at another latent dim, on another encoder's latents, with another
gate or start; as processes of their own under DVC they took most of CI's time (every stage
pays ~6 s of imports and a rewrite of the whole dvc.lock). Here they read the same params
and the same files as in the reference DAG (``gate_params``), so their metrics are the
reference's. What they read from the DAG (the AE, VAE and GMVAE, the AE's N2D partition) is
made here too, stage by stage.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from tests.data.fakes import write_mnist_raw
from tests.test_pipeline_e2e import (
    BASELINE_ENCODERS,
    BASELINES,
    CI_BASELINE_ENCODERS,
    CI_MOE_RUNS,
    CLUSTER_KEYS,
    DATASETS,
    ENCODERS,
    GATE_MNIST_SHIFT,
    MOE_RUNS,
    PAPER_STARTS,
    SWEEP_DIMS,
    SWEEP_ENCODERS,
    SWEEP_RUNS,
    SWEEP_TRAINED,
    check_baselines,
    check_moe_run,
    epochs_run,
    gate,
    gate_params,
    paper_epochs_run,
    side_paths,
)
from tests.tiny import run_inprocess

pytestmark = pytest.mark.slow
SWEEP_BASELINE_ENCODERS = ["vae", "gmvae"]


def run_side_stages(folder: Path, dataset: str) -> None:
    """Every side run of ``dataset``, in the order of the DAG's edges."""
    run_inprocess(folder, "prepare", dataset)
    for d in map(str, SWEEP_DIMS):
        for encoder in SWEEP_ENCODERS:
            run_inprocess(folder, "sweep", "pretrain", dataset, encoder, d)
        for run in SWEEP_TRAINED:
            run_inprocess(folder, "sweep", "train", dataset, run, d)
        run_inprocess(folder, "sweep", "from_gmvae", dataset, "gmvae_dpgmm", d)
        for encoder in SWEEP_BASELINE_ENCODERS:
            for baseline in BASELINES:
                run_inprocess(folder, "sweep", "baselines", dataset, encoder, baseline, d)
    for encoder in ENCODERS:
        run_inprocess(folder, "pretrain", dataset, encoder)
    run_inprocess(folder, "train", dataset, "gmvae", "paper")
    for encoder in BASELINE_ENCODERS:
        for baseline in BASELINES:
            if encoder not in CI_BASELINE_ENCODERS or baseline == "umap_gmm":  # the start
                run_inprocess(folder, "baselines", dataset, encoder, baseline)
    for run_id in MOE_RUNS:
        if run_id not in CI_MOE_RUNS:
            run_inprocess(folder, "moe", dataset, run_id[len("moe_"):-len("_z0")], "0")
    for method in PAPER_STARTS:
        run_inprocess(folder, "train", dataset, method, "paper_other_start")


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("side")
    params = gate_params()
    assert params["latent_sweep"]["baseline_encoders"] == SWEEP_BASELINE_ENCODERS
    (folder / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    write_mnist_raw(folder / "data" / "raw", n_train=500, n_test=200, seed=0,
                    max_shift=GATE_MNIST_SHIFT)
    for dataset in DATASETS:
        run_side_stages(folder, dataset)
    return folder


def test_side_runs_match_the_committed_reference(folder):
    from vaemix.regress import collect, load_tolerances

    current = collect(folder / "reports/metrics", load_tolerances(
        Path(__file__).resolve().parents[1] / "tolerances.yaml").ignore)
    failed, table = gate(current, side_paths())
    print(table)
    assert not failed, table


def test_latent_sweep_runs_at_its_latent_dims(folder):
    """Every run of the latent sweep is trained at its own latent dim for its paper's
    epochs (the sweep runs the paper protocol)."""
    for ds in DATASETS:
        for run_id in SWEEP_RUNS:
            m = json.loads((folder / f"reports/metrics/{ds}/{run_id}.json").read_text())
            assert m["seeds"] == [0], (ds, run_id)
            if "+" in run_id:
                assert CLUSTER_KEYS <= m.keys(), (ds, run_id)
                continue
            z = np.load(folder / f"artifacts/{ds}/{run_id}/latents.npz")["z_test"]
            assert z.shape[1] == int(run_id.rsplit("_z", 1)[1]), (ds, run_id)
            base = run_id.split("_z")[0].replace("_hard", "").replace("_from_gmvae", "")
            expected = (paper_epochs_run(base, ds) if run_id.startswith("gmvae")
                        else epochs_run("pretrain", base, ds))
            assert m["epochs"] == expected, (ds, run_id)


def test_side_runs_write_their_contract_files(folder):
    for ds in DATASETS:
        for encoder in BASELINE_ENCODERS:
            if encoder not in CI_BASELINE_ENCODERS:
                check_baselines(folder, ds, encoder)
        for run_id in MOE_RUNS:
            if run_id not in CI_MOE_RUNS:
                check_moe_run(folder, ds, run_id)
        for method in PAPER_STARTS:
            other = f"reports/metrics/{ds}/{method}_paper_other_start.json"
            assert CLUSTER_KEYS <= json.loads((folder / other).read_text()).keys()
