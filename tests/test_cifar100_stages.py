"""CIFAR-100 through the stage scripts: the real on-disk format, the conv networks and the
20 super-classes, from prepare to a trained mixture model and a MoE gate. The end-to-end
`dvc repro` (tests/test_pipeline_e2e.py) runs every stage template on MNIST and spiral; the
templates are the same for every dataset, so CIFAR-100 is run here, stage by stage."""

import json
import math

import torch

from tests.data.fakes import write_cifar100_raw
from tests.tiny import make_project, run_inprocess


def test_cifar100_runs_through_the_stages(tmp_path):
    # DEC-DA's start on the conv nets too (the default lists MNIST alone: start.dec_da_on)
    folder = make_project(tmp_path / "p", ("cifar100",), {"start.dec_da_on": ["cifar100"]})
    write_cifar100_raw(folder / "data" / "raw", n_train=300, n_test=120, seed=0)
    run_inprocess(folder, "prepare", "cifar100")
    for enc in ("ae", "ae_da"):   # ae_da and DEC-DA's start@: the models' start
        run_inprocess(folder, "pretrain", "cifar100", enc)
        run_inprocess(folder, "baselines", "cifar100", enc, "umap_gmm")
    run_inprocess(folder, "start", "cifar100")
    run_inprocess(folder, "train", "cifar100", "vade")
    run_inprocess(folder, "moe", "cifar100", "deepmoe", "0")
    metrics = folder / "reports" / "metrics" / "cifar100"
    ae = json.loads((metrics / "ae.json").read_text())
    assert math.isfinite(ae["test_recon_ll"])
    for run in ("ae+umap_gmm", "vade"):
        m = json.loads((metrics / f"{run}.json").read_text())
        assert m["n_clusters_expected"] == 20 and 0.0 <= m["acc"] <= 1.0, run
    vade = json.loads((metrics / "vade.json").read_text())
    assert math.isfinite(vade["test_recon_ll"]) and "start_acc" in vade
    moe = json.loads((metrics / "moe_deepmoe_z0.json").read_text())
    assert math.isfinite(moe["test_mse"])
    checkpoint = torch.load(folder / "artifacts" / "cifar100" / "vade" / "model.pt",
                            weights_only=True)
    assert checkpoint["spec"]["net"] == "conv"  # the tiny profile keeps the conv networks
