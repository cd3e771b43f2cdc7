"""The metric comparison behind CI's regression gate and `python -m vaemix.regress`."""

import json
from pathlib import Path

import numpy as np
import pytest

from vaemix.regress import (
    FAIL_REGRESSION,
    FAIL_STRICT,
    Tolerance,
    Tolerances,
    compare,
    load_reference,
    load_tolerances,
    main,
    markdown,
    report,
    spread,
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
    # nor can a gated ACC's spread allow it: k * the largest std not counted as noise
    assert tol.spread_k * tol.of("acc").noise_abs < 0.5
    reference, made_on = load_reference(ROOT / "tests/reference/tiny_metrics.json")
    assert reference and all(not (set(m) & tol.ignore) for m in reference.values())
    assert made_on["cpu"] and made_on["threads"]["OMP_NUM_THREADS"] == "1"


def test_spread_is_the_sample_std_over_the_runs_that_hold_a_metric():
    runs = {"a": {"f.json": {"acc": 0.90, "elbo": -100.0}},
            "b": {"f.json": {"acc": 0.94, "elbo": float("nan")}},
            "c": {"f.json": {"acc": 0.95}, "g.json": {"acc": 0.5}}}
    std = spread(runs)
    assert std["f.json"]["acc"] == pytest.approx(np.std([0.90, 0.94, 0.95], ddof=1))
    assert "elbo" not in std["f.json"] and "g.json" not in std  # fewer than two values


def test_measured_spread_widens_the_floor_or_marks_noise():
    tol = Tolerances(default=Tolerance(abs=0.01),
                     per_metric={"acc": Tolerance(abs=0.02, better="higher", noise_abs=0.08)},
                     ignore=frozenset(), spread_k=4.0)
    old, noise = {"f.json": {"acc": 0.9}}, {"f.json": {"acc": 0.01}}

    def row(new, std=None):
        (r,) = compare(old, {"f.json": {"acc": new}},
                       tol, None if std is None else {"f.json": {"acc": std}})
        return r

    assert row(0.87).status == "worse"                       # floor 0.02, no spread known
    assert row(0.87, 0.01).status == "ok" and row(0.87, 0.01).allowed == pytest.approx(0.04)
    assert row(0.85, 0.01).status == "worse"                 # past 4 std
    assert row(0.89, 0.001).allowed == 0.02                  # a tiny spread keeps the floor
    assert row(0.2, 0.09).status == "noise" and row(0.2, 0.09).allowed is None
    rows = compare(old, {"f.json": {"acc": 0.1}}, tol, {"f.json": {"acc": 0.09}})
    assert "1 not gated: noise" in report(rows, FAIL_STRICT, "a", "b")
    assert compare(old, old, tol, noise)[0].status == "ok"


def test_noise_bounds_are_read_and_checked(tmp_path):
    path = tmp_path / "tol.yaml"
    path.write_text("spread: {k: 3}\nmetrics:\n  elbo: {abs: 0.5, noise: {rel: 0.1}}\n")
    tol = load_tolerances(path)
    assert tol.spread_k == 3 and tol.of("elbo").is_noise(-100.0, 10.5)
    assert not tol.of("elbo").is_noise(-100.0, 9.5) and not tol.of("acc").is_noise(0.5, 9.0)
    path.write_text("metrics:\n  acc: {noise: {abs: -1}}\n")
    with pytest.raises(ValueError, match="metrics.acc.noise.abs"):
        load_tolerances(path)


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
    assert json.loads(ref.read_text())["metrics"] == {"spiral/vade.json": {"acc": 0.9}}
    assert main(["check", *args]) == 0
    (metrics / "spiral/vade.json").write_text(json.dumps({"acc": 0.97, "train_seconds": 5.0}))
    (metrics / "spiral/new.json").write_text(json.dumps({"acc": 0.5}))
    capsys.readouterr()
    assert main(["check", *args]) == 1  # the gate fails on an improvement too
    out = capsys.readouterr().out
    assert "| spiral/vade.json | acc | 0.9 | 0.97 | +0.07 | ±0.02 | better |" in out
    assert "| spiral/new.json | acc | - | 0.5 | - | - | new |" in out
    spread_file = tmp_path / "spread.json"  # two runs 0.05 apart: std 0.035, 4 std 0.14
    spread_file.write_text(json.dumps({"runs": {
        "a": {"spiral/vade.json": {"acc": 0.90}}, "b": {"spiral/vade.json": {"acc": 0.95}}}}))
    assert main(["check", *args, "--spread", str(spread_file)]) == 0


def test_another_cpus_runs_join_the_spread_and_leave_the_reference(tmp_path, monkeypatch):
    """scripts/gate_reference.py --add: this CPU's runs are added under a vendor-tagged
    label, the runs already there kept, the machine that made them recorded."""
    import runpy

    script = runpy.run_path(str(Path(__file__).resolve().parents[1]
                                / "scripts/gate_reference.py"), run_name="gate_reference")
    spread_file = tmp_path / "tiny_spread.json"
    spread_file.write_text(json.dumps({"made_on": {"vendor": "AuthenticAMD"}, "command": "c",
                                       "runs": {"seed0-portable": {"a.json": {"acc": 1.0}}}}))
    monkeypatch.setitem(script["add_runs"].__globals__, "SPREAD", spread_file)
    intel = {"vendor": "GenuineIntel", "cpu": "Xeon"}
    tag = script["vendor_tag"](intel)
    assert tag == "intel" and script["vendor_tag"]({"vendor": "AuthenticAMD"}) == "amd"
    script["add_runs"]({f"seed0-portable-{tag}": {"a.json": {"acc": 0.9}}}, intel, "cmd --add")
    data = json.loads(spread_file.read_text())
    assert data["runs"] == {"seed0-portable": {"a.json": {"acc": 1.0}},
                            "seed0-portable-intel": {"a.json": {"acc": 0.9}}}
    assert data["added"] == [{"runs": ["seed0-portable-intel"], "made_on": intel,
                              "command": "cmd --add"}]
    assert data["made_on"] == {"vendor": "AuthenticAMD"}  # the reference's machine
    assert spread(data["runs"])["a.json"]["acc"] == pytest.approx(0.1 / 2 ** 0.5)


def test_a_refresh_replaces_only_the_named_files(tmp_path, monkeypatch):
    """scripts/gate_reference.py --refresh: the remade files replace the old ones in the
    reference and in every spread run of the same seed and kernel kind (whatever CPU tag
    it carries), are dropped from runs of a seed not remade, and the rest is untouched."""
    import runpy

    script = runpy.run_path(str(Path(__file__).resolve().parents[1]
                                / "scripts/gate_reference.py"), run_name="gate_reference")
    old = {"a.json": {"acc": 1.0}, "b.json": {"acc": 0.5}}
    ref_file, spread_file = tmp_path / "tiny_metrics.json", tmp_path / "tiny_spread.json"
    ref_file.write_text(json.dumps({"made_on": {}, "command": "c", "metrics": old}))
    spread_file.write_text(json.dumps({"made_on": {}, "command": "c", "runs": {
        label: old for label in ("seed0-portable", "seed0-portable-intel", "seed1-native",
                                 "seed2-portable")}}))
    globals_ = script["refresh_files"].__globals__
    monkeypatch.setitem(globals_, "REFERENCE", ref_file)
    monkeypatch.setitem(globals_, "SPREAD", spread_file)
    remade = {"seed0-portable": {"b.json": {"acc": 0.9}}, "seed1-native": {"b.json": {"acc": 0.8}}}
    script["refresh_files"](remade, ["b.json"], {"vendor": "GenuineIntel"}, "cmd --refresh")
    ref = json.loads(ref_file.read_text())
    assert ref["metrics"] == {"a.json": {"acc": 1.0}, "b.json": {"acc": 0.9}}
    runs = json.loads(spread_file.read_text())
    assert runs["runs"]["seed0-portable-intel"] == ref["metrics"]
    assert runs["runs"]["seed1-native"] == {"a.json": {"acc": 1.0}, "b.json": {"acc": 0.8}}
    assert runs["runs"]["seed2-portable"] == {"a.json": {"acc": 1.0}}
    assert runs["refreshed"][0]["runs_dropped"] == ["seed2-portable"]
    assert ref["refreshed"][0]["files"] == ["b.json"]
