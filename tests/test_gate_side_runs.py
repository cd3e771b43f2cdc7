"""The regression gate's side runs: the runs of the gate's reference DAG that CI's `dvc repro`
(tests/test_pipeline_e2e.py) leaves out, run stage by stage in this process and gated against
the same committed reference.

They are the latent-dimension sweep (Nagpal et al. 2019, Tables 1-2: ``<run>_z8``) and the
baselines on the latents of the paper-protocol GMVAE (their Table 1). Their stage templates
are the main ones at another latent dim or on another encoder's latents; as processes of
their own under DVC they were a third of CI's time (every stage pays ~6 s of imports and a
rewrite of the whole dvc.lock). Here they read the same params and the same prepared data
as in the reference DAG (``gate_params``), so their metrics are the reference's.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from tests.data.fakes import write_mnist_raw
from tests.test_pipeline_e2e import (
    BASELINES,
    CLUSTER_KEYS,
    DATASETS,
    ENCODERS,
    GATE_MNIST_SHIFT,
    SIDE_RUNS,
    SWEEP_DIMS,
    SWEEP_TRAINED,
    TRANSDUCTIVE_KEYS,
    epochs_run,
    gate,
    gate_params,
    paper_epochs_run,
)
from tests.tiny import run_inprocess

pytestmark = pytest.mark.slow
SWEEP_BASELINE_ENCODERS = ["vae", "gmvae"]


def run_side_stages(folder: Path, dataset: str) -> None:
    """Every side run of ``dataset``, in the order of the DAG's edges."""
    run_inprocess(folder, "prepare", dataset)
    for d in map(str, SWEEP_DIMS):
        for encoder in ENCODERS:
            run_inprocess(folder, "sweep", "pretrain", dataset, encoder, d)
        for run in SWEEP_TRAINED:
            run_inprocess(folder, "sweep", "train", dataset, run, d)
        run_inprocess(folder, "sweep", "from_gmvae", dataset, "gmvae_dpgmm", d)
        for encoder in SWEEP_BASELINE_ENCODERS:
            for baseline in BASELINES:
                run_inprocess(folder, "sweep", "baselines", dataset, encoder, baseline, d)
    run_inprocess(folder, "train", dataset, "gmvae", "paper")
    for baseline in BASELINES:
        run_inprocess(folder, "baselines", dataset, "gmvae_paper", baseline)


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
    paths = [f"{ds}/{run_id}.json" for ds in DATASETS for run_id in SIDE_RUNS]
    failed, table = gate(current, paths)
    print(table)
    assert not failed, table


def test_latent_sweep_runs_at_its_latent_dims(folder):
    """Every run of the latent sweep is trained at its own latent dim, from the AE of that
    dim, for its paper's epochs (the sweep runs the paper protocol)."""
    for ds in DATASETS:
        for run_id in SIDE_RUNS:
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
        for bl in BASELINES:  # the GMVAE's latents join the baselines, scored both ways
            b = json.loads((folder / f"reports/metrics/{ds}/gmvae_paper+{bl}.json").read_text())
            assert (CLUSTER_KEYS | TRANSDUCTIVE_KEYS) <= b.keys(), (ds, bl)
