"""The metric comparison behind CI's regression gate and `python -m vaemix.regress`."""

import json
from pathlib import Path

import pytest

from vaemix.regress import (
    FAIL_REGRESSION,
    FAIL_STRICT,
    Tolerance,
    Tolerances,
    compare,
    load_tolerances,
    main,
    markdown,
)

ROOT = Path(__file__).resolve().parents[1]
TOL = Tolerances(
    default=Tolerance(abs=0.01, rel=0.0),
    per_metric={"acc": Tolerance(abs=0.05, better="higher"),
                "elbo": Tolerance(abs=0.5, rel=0.03, better="higher"),
                "mse": Tolerance(abs=0.0, rel=0.1, better="lower")},
    ignore=frozenset({"train_seconds"}),
)


def _status(old, new, metric="acc"):
    (row,) = compare({"f.json": {metric: old}}, {"f.json": {metric: new}}, TOL)
    return row.status


def test_moves_are_judged_by_abs_plus_rel_tolerance_and_direction():
    assert _status(0.80, 0.84) == "ok"
    assert _status(0.80, 0.70) == "worse"  # ACC down by 0.1: a regression
    assert _status(0.80, 0.90) == "better"
    # elbo: allowed 0.5 + 0.03 * |-100| = 3.5 nats
    assert _status(-100.0, -103.4, "elbo") == "ok"
    assert _status(-100.0, -103.6, "elbo") == "worse"
    assert _status(1.0, 1.2, "mse") == "worse" and _status(1.0, 0.8, "mse") == "better"
    assert _status(3.0, 3.02, "other") == "moved"  # default tolerance, no direction
    assert _status(0.5, float("nan")) == "worse"


def test_new_and_missing_files_and_metrics():
    old = {"a.json": {"acc": 0.5, "train_seconds": 3.0}, "gone.json": {"acc": 0.1}}
    new = {"a.json": {"acc": 0.5, "nmi": 0.2, "train_seconds": 9.0}, "added.json": {"acc": 0.3}}
    rows = {(r.path, r.metric): r.status for r in compare(old, new, TOL)}
    assert rows == {("a.json", "acc"): "ok", ("a.json", "nmi"): "new",
                    ("added.json", "acc"): "new", ("gone.json", "acc"): "missing"}
    assert "new" not in FAIL_STRICT and "missing" in FAIL_STRICT and "missing" in FAIL_REGRESSION
    assert "better" in FAIL_STRICT and "better" not in FAIL_REGRESSION


def test_markdown_table_like_dvc_metrics_diff():
    rows = compare({"x/m.json": {"acc": 0.8}}, {"x/m.json": {"acc": 0.6}}, TOL)
    table = markdown(rows, "reference", "run").splitlines()
    assert table[0] == "| Path | Metric | reference | run | Change | Allowed | Status |"
    assert table[2] == "| x/m.json | acc | 0.8 | 0.6 | -0.2 | ±0.05 | worse |"


def test_committed_tolerances_and_reference_are_well_formed():
    tol = load_tolerances(ROOT / "tolerances.yaml")
    assert {"train_seconds", "samples_per_second"} <= tol.ignore
    assert tol.of("acc").allowed(0.9) < 0.1  # an ACC drop of 0.1 always fails the gate
    reference = json.loads((ROOT / "tests/reference/tiny_metrics.json").read_text())
    assert reference and all(not (set(m) & tol.ignore) for m in reference.values())


def test_bad_tolerance_file_is_named(tmp_path):
    path = tmp_path / "tol.yaml"
    path.write_text("metrics:\n  acc: {abs: -1}\n")
    with pytest.raises(ValueError, match="metrics.acc.abs"):
        load_tolerances(path)


def test_check_and_update_commands(tmp_path, capsys):
    metrics = tmp_path / "metrics"
    (metrics / "spiral").mkdir(parents=True)
    (metrics / "spiral/vade.json").write_text(json.dumps({"acc": 0.9, "train_seconds": 1.0}))
    ref = tmp_path / "ref.json"
    args = ["--tolerances", str(ROOT / "tolerances.yaml"), "--reference", str(ref),
            "--metrics", str(metrics)]
    assert main(["update", *args]) == 0
    assert json.loads(ref.read_text()) == {"spiral/vade.json": {"acc": 0.9}}
    assert main(["check", *args]) == 0
    (metrics / "spiral/vade.json").write_text(json.dumps({"acc": 0.97, "train_seconds": 5.0}))
    (metrics / "spiral/new.json").write_text(json.dumps({"acc": 0.5}))
    capsys.readouterr()
    assert main(["check", *args]) == 1  # the gate fails on an improvement too
    out = capsys.readouterr().out
    assert "| spiral/vade.json | acc | 0.9 | 0.97 | +0.07 | ±0.05 | better |" in out
    assert "| spiral/new.json | acc | - | 0.5 | - | - | new |" in out
