"""The summary table: expected runs, collection from reports/metrics, written outputs."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from vaemix.errors import DataError
from vaemix.io import write_metrics
from vaemix.report.summary import (
    COLUMNS,
    CONTRACT_KEYS,
    cluster_note,
    collect,
    expected_runs,
    fill_collapse,
    learns_k,
    method_kind,
    write_summary,
)


def small_params() -> dict:
    return {"seed": 0, "datasets": ["spiral", "mnist"], "encoders": ["ae", "vae"],
            "methods": [], "baselines": ["kmeans", "gmm"], "baseline_encoders": ["vae"],
            "moe": {"gates": []}}


def fake_metrics(root, params) -> None:
    for ds, m in expected_runs(params):
        if "+" in m:
            metrics = {"acc": 0.81234, "nmi": 0.5, "ari": 0.4, "completeness": 0.45,
                       "n_clusters_used": 5, "train_seconds": 1.25, "seed": 0}
        else:
            metrics = {"test_recon_ll": -123.4567, "train_seconds": 10.0,
                       "samples_per_second": 1000.0, "epochs": 3, "seed": 0}
            if m == "vae":
                metrics["elbo"] = -130.0
        write_metrics(ds, m, metrics, root=root)


def test_expected_runs():
    runs = expected_runs(small_params())
    assert runs == [
        ("spiral", "ae"), ("spiral", "vae"), ("spiral", "vae+kmeans"), ("spiral", "vae+gmm"),
        ("mnist", "ae"), ("mnist", "vae"), ("mnist", "vae+kmeans"), ("mnist", "vae+gmm"),
    ]
    params = small_params() | {"methods": ["vade"], "baseline_encoders": ["ae", "vade"],
                               "baselines": ["dpgmm"], "datasets": ["mnist"]}
    assert expected_runs(params) == [("mnist", "ae"), ("mnist", "vae"), ("mnist", "start"),
                                     ("mnist", "vade"), ("mnist", "vade_paper"),
                                     ("mnist", "ae+dpgmm"), ("mnist", "vade+dpgmm")]
    assert [method_kind(m, params) for _, m in expected_runs(params)] == [
        "encoder", "encoder", "start", "mixture", "mixture", "baseline", "baseline"]
    assert method_kind("moe_deepmoe_z2", params) == "moe"


def test_collect(tmp_path):
    params = small_params()
    root = tmp_path / "reports" / "metrics"
    fake_metrics(root, params)
    df = collect(params, root=root)
    assert list(df.columns) == list(COLUMNS)
    assert len(df) == 8
    row = df[(df.dataset == "spiral") & (df.method == "vae+gmm")].iloc[0]
    assert row["kind"] == "baseline" and row["acc"] == pytest.approx(0.81234)
    assert math.isnan(row["test_recon_ll"]) and math.isnan(row["test_mse"])
    assert row["n_clusters_used"] == 5
    enc = df[(df.dataset == "mnist") & (df.method == "ae")].iloc[0]
    assert enc["kind"] == "encoder" and math.isnan(enc["acc"]) and enc["epochs"] == 3


def test_collect_missing_file_named(tmp_path):
    params = small_params()
    root = tmp_path / "m"
    fake_metrics(root, params)
    (root / "mnist" / "vae+kmeans.json").unlink()
    with pytest.raises(DataError, match=r"mnist/vae\+kmeans\.json"):
        collect(params, root=root)


def test_collect_malformed_file_named(tmp_path):
    params = small_params()
    root = tmp_path / "m"
    fake_metrics(root, params)
    (root / "spiral" / "ae.json").write_text("[1, 2")
    with pytest.raises(DataError, match=r"spiral/ae\.json"):
        collect(params, root=root)


def test_collect_ignores_stale_files(tmp_path):
    params = small_params()
    root = tmp_path / "m"
    fake_metrics(root, params)
    write_metrics("spiral", "ae+dpgmm", {"acc": 0.1}, root=root)  # method no longer asked
    write_metrics("cifar100", "vae", {"acc": 0.1}, root=root)  # dataset no longer asked
    df = collect(params, root=root)
    assert len(df) == 8
    assert "ae+dpgmm" not in set(df.method) and "cifar100" not in set(df.dataset)


def test_write_summary(tmp_path):
    params = small_params()
    root = tmp_path / "m"
    fake_metrics(root, params)
    out = tmp_path / "reports"
    csv_path, md_path = write_summary(collect(params, root=root), out_dir=out)
    md = md_path.read_text()
    assert "## spiral" in md and "## mnist" in md
    assert md.index("## spiral") < md.index("## mnist")
    assert "| method | kind | clusters | start_acc | acc | nmi |" in md
    row = next(line for line in md.splitlines() if line.startswith("| vae+gmm |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    # no K in these params: the count alone, and no judgement of collapse
    assert cells[:7] == ["vae+gmm", "baseline", "5", "", "0.812", "0.500", "0.400"]
    assert cells[4 + CONTRACT_KEYS.index("n_clusters_used")] == "5"
    assert cells[4 + CONTRACT_KEYS.index("test_recon_ll")] == ""
    enc = next(line for line in md.splitlines() if line.startswith("| ae |"))
    assert "-123.457" in enc
    back = pd.read_csv(csv_path)
    assert len(back) == 8 and list(back.columns)[:3] == ["dataset", "method", "kind"]

    first = (csv_path.read_bytes(), md_path.read_bytes())
    write_summary(collect(params, root=root), out_dir=out)
    assert (csv_path.read_bytes(), md_path.read_bytes()) == first


# --- collapse -------------------------------------------------------------------------

def md_row(md: str, method: str) -> list[str]:
    line = next(ln for ln in md.splitlines() if ln.startswith(f"| {method} |"))
    return [c.strip() for c in line.strip("|").split("|")]


def collapse_project(root) -> dict:
    """mnist (K = 10): vae+gmm collapsed to 1 cluster (flagged as mark_collapsed writes
    it), vae+kmeans healthy, ae+gmm an old file without the flag using 2 clusters, and
    two DP-GMMs flagged against K by mark_collapsed, one with 3 and one with 1 cluster."""
    params = {"seed": 0, "datasets": ["mnist"], "encoders": ["ae", "vae"], "methods": [],
              "baselines": ["kmeans", "gmm", "dpgmm"], "baseline_encoders": ["ae", "vae"],
              "moe": {"gates": []}, "collapse_fraction": 0.5,
              "model": {"mnist": {"n_clusters": 10}}}
    scores = {"acc": 0.115, "nmi": 0.0, "ari": 0.0, "completeness": 1.0, "seed": 0}
    for _, m in expected_runs(params):
        metrics: dict = {"test_recon_ll": -100.0, "seed": 0} if "+" not in m else {
            **scores, "acc": 0.8, "nmi": 0.7, "n_clusters_used": 10, "collapsed": False,
            "n_clusters_expected": 10}
        write_metrics("mnist", m, metrics, root=root)
    write_metrics("mnist", "vae+gmm", {**scores, "n_clusters_used": 1, "collapsed": True,
                                       "n_clusters_expected": 10}, root=root)
    write_metrics("mnist", "ae+gmm", {**scores, "acc": 0.3, "n_clusters_used": 2}, root=root)
    write_metrics("mnist", "vae+dpgmm", {**scores, "acc": 0.4, "n_clusters_used": 3,
                                         "learns_k": True,
                                         "n_components_effective": 3, "collapsed": True,
                                         "n_clusters_expected": 10}, root=root)
    write_metrics("mnist", "ae+dpgmm", {**scores, "n_clusters_used": 1, "learns_k": True,
                                        "n_components_effective": 1, "collapsed": True,
                                        "n_clusters_expected": 10}, root=root)
    return params


def test_a_forced_collapse_is_marked_in_summary_md_and_csv(tmp_path):
    params = collapse_project(tmp_path / "m")
    csv_path, md_path = write_summary(collect(params, root=tmp_path / "m"), tmp_path / "r")
    md = md_path.read_text()
    at = {name: i for i, name in enumerate(["method", "kind", "clusters", "start_acc",
                                            *CONTRACT_KEYS])}

    collapsed = md_row(md, "vae+gmm")
    assert collapsed[at["clusters"]] == "**collapsed: 1 of 10 clusters**"
    assert collapsed[at["acc"]] == "~~0.115~~" and collapsed[at["nmi"]] == "~~0.000~~"
    assert collapsed[at["n_clusters_used"]] == "1"
    healthy = md_row(md, "vae+kmeans")
    assert healthy[at["clusters"]] == "10 of 10" and healthy[at["acc"]] == "0.800"
    # an old file without the flag: judged from n_clusters_used against ceil(0.5 * 10)
    assert md_row(md, "ae+gmm")[at["clusters"]] == "**collapsed: 2 of 10 clusters**"
    assert md_row(md, "ae+gmm")[at["acc"]] == "~~0.300~~"
    # a DP-GMM shows its effective K; judged against K it would have been collapsed
    assert md_row(md, "vae+dpgmm")[at["clusters"]] == "effective K 3"
    assert md_row(md, "vae+dpgmm")[at["acc"]] == "0.400"
    assert md_row(md, "ae+dpgmm")[at["clusters"]] == "**collapsed: 1 cluster**"
    assert md_row(md, "ae")[at["clusters"]] == ""  # not a clustering

    back = pd.read_csv(csv_path).set_index("method")
    assert "collapsed" in back.columns
    assert back.loc["vae+gmm", "collapsed"] == True  # noqa: E712 (a CSV's True)
    assert back.loc["vae+kmeans", "collapsed"] == False  # noqa: E712
    assert back.loc["ae+gmm", "collapsed"] == True  # noqa: E712
    assert back.loc["vae+dpgmm", "collapsed"] == False  # noqa: E712
    assert pd.isna(back.loc["ae", "collapsed"])
    assert back.loc["vae+gmm", "n_clusters_expected"] == 10


def test_collapse_over_seeds_is_counted(tmp_path):
    params = collapse_project(tmp_path / "m")
    per_seed = {str(s): {"acc": 0.5, "n_clusters_used": u} for s, u in enumerate([10, 3, 1])}
    # an old aggregated file: no flag, the mean 4.7 clusters hides two collapsed seeds
    write_metrics("mnist", "vae+kmeans", {"acc": 0.5, "n_clusters_used": 14 / 3, "n_seeds": 3,
                                          "per_seed": per_seed}, root=tmp_path / "m")
    df = collect(params, root=tmp_path / "m")
    row = df[df.method == "vae+kmeans"].iloc[0]
    assert bool(row["collapsed"]) and row["n_seeds_collapsed"] == 2
    assert cluster_note(row) == "collapsed in 2 of 3 seeds: 4.7 of 10 clusters"


def test_fill_collapse_of_an_old_summary():
    params = {"model": {"mnist": {"n_clusters": 10}}, "collapse_fraction": 0.5}
    old = pd.DataFrame({"dataset": ["mnist"] * 4,
                        "method": ["gmvae", "vade", "gmvae_dpgmm", "ae"],
                        "learns_k": [False, False, True, False],
                        "n_clusters_used": [1.0, 9.0, 2.0, None]})
    df = fill_collapse(old, params)
    assert list(df["collapsed"].astype(object).where(df["collapsed"].notna(), None)) == [
        True, False, False, None]
    # a summary written before the column: nothing learns K, so 2 of 10 is collapsed
    df = fill_collapse(old.drop(columns="learns_k"), params)
    assert bool(df["collapsed"].iloc[2]) is True


def test_a_run_learns_k_when_its_metrics_say_so():
    """The summary reads it from the metrics file (the model class or the DP-GMM baseline
    declares it, vaemix.models.base.Model.learns_k), never from the run's name."""
    assert learns_k({"learns_k": True}) and learns_k(pd.Series({"learns_k": np.True_}))
    assert not learns_k({"learns_k": False}) and not learns_k({"method": "gmvae_dpgmm"})
