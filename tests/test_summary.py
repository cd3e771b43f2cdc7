"""The summary table: expected runs, collection from reports/metrics, written outputs."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from vaemix.errors import DataError
from vaemix.io import write_metrics
from vaemix.summary import (
    COLUMNS,
    CONTRACT_KEYS,
    collect,
    expected_runs,
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
    assert expected_runs(params) == [("mnist", "ae"), ("mnist", "vae"), ("mnist", "vade"),
                                     ("mnist", "ae+dpgmm"), ("mnist", "vade+dpgmm")]
    assert [method_kind(m, params) for _, m in expected_runs(params)] == [
        "encoder", "encoder", "mixture", "baseline", "baseline"]
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
    assert "| method | kind | acc | nmi |" in md
    row = next(line for line in md.splitlines() if line.startswith("| vae+gmm |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[:5] == ["vae+gmm", "baseline", "0.812", "0.500", "0.400"]
    assert cells[2 + CONTRACT_KEYS.index("n_clusters_used")] == "5"
    assert cells[2 + CONTRACT_KEYS.index("test_recon_ll")] == ""
    enc = next(line for line in md.splitlines() if line.startswith("| ae |"))
    assert "-123.457" in enc
    back = pd.read_csv(csv_path)
    assert len(back) == 8 and list(back.columns)[:3] == ["dataset", "method", "kind"]

    first = (csv_path.read_bytes(), md_path.read_bytes())
    write_summary(collect(params, root=root), out_dir=out)
    assert (csv_path.read_bytes(), md_path.read_bytes()) == first
