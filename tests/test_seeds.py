"""Runs over the ``seeds`` list: the aggregate, the published layout, reuse after a crash,
and a real training stage over two seeds."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from tests.tiny import inside, make_project, run_inprocess
from vaemix.io import read_json
from vaemix.seeds import aggregate, run_over_seeds, seed_path, seeds_of


def test_aggregate_by_hand():
    per_seed = {
        3: {"acc": 0.8, "n_clusters_used": 10, "converged": True, "kind": "x", "seed": 3},
        1: {"acc": 0.6, "n_clusters_used": 9, "converged": False, "kind": "y", "seed": 1},
        2: {"acc": 0.7, "n_clusters_used": 8, "converged": True, "kind": "z", "seed": 2},
    }
    out = aggregate(per_seed)
    assert out["acc"] == pytest.approx(0.7)
    # sample std (ddof = 1) of 0.8, 0.6, 0.7: sqrt((0.01 + 0.01 + 0) / 2) = 0.1
    assert out["std"]["acc"] == pytest.approx(0.1)
    assert out["n_clusters_used"] == pytest.approx(9.0) and out["std"]["n_clusters_used"] == 1
    assert out["converged"] is False and out["kind"] == "x"
    assert out["seed"] == 3 and out["seeds"] == [3, 1, 2] and out["n_seeds"] == 3
    assert out["per_seed"]["1"]["acc"] == 0.6 and set(out["per_seed"]) == {"3", "1", "2"}
    single = aggregate({0: {"acc": 0.5}})
    assert single["acc"] == 0.5 and "std" not in single and single["n_seeds"] == 1


def test_seeds_of_and_paths():
    assert seeds_of({"seed": 4}) == [4] and seeds_of({"seed": 4, "seeds": None}) == [4]
    assert seeds_of({"seed": 4, "seeds": [2, 7]}) == [2, 7]
    assert seed_path("artifacts/x/ae", 2, [2, 7]) == Path("artifacts/x/ae")
    assert seed_path("artifacts/x/ae", 7, [2, 7]) == Path("artifacts/x/ae/seed7")


class Boom(RuntimeError):
    pass


def _fake(calls: list[int], fail_on: int | None = None):
    def fit_seed(seed: int, artifacts: Path, curves: Path, checkpoint: Path) -> dict:
        calls.append(seed)
        if seed == fail_on:
            raise Boom(f"seed {seed}")
        artifacts.mkdir(parents=True)
        (artifacts / "model.txt").write_text(f"model of seed {seed}")
        curves.mkdir(parents=True)
        (curves / "curve.tsv").write_text(f"{seed}\n")
        return {"acc": 0.5 + 0.1 * seed, "train_seconds": 1.0, "seed": seed}
    return fit_seed


def test_run_over_seeds_publishes_and_resumes(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    params = {"seed": 0, "seeds": [0, 1, 2]}
    calls: list[int] = []
    with pytest.raises(Boom):  # seed 2 crashes: nothing is published
        run_over_seeds(params, "ds", "m", _fake(calls, fail_on=2), key_of=lambda s: "k")
    assert calls == [0, 1, 2]
    assert not Path("artifacts").exists() and not Path("reports").exists()

    calls.clear()  # the re-run reuses seeds 0 and 1 and trains only seed 2
    metrics = run_over_seeds(params, "ds", "m", _fake(calls), key_of=lambda s: "k")
    assert calls == [2]
    assert metrics["acc"] == pytest.approx(0.6) and metrics["std"]["acc"] == pytest.approx(0.1)
    assert read_json("reports/metrics/ds/m.json") == json.loads(json.dumps(metrics))
    assert Path("artifacts/ds/m/model.txt").read_text() == "model of seed 0"
    assert Path("artifacts/ds/m/seed1/model.txt").read_text() == "model of seed 1"
    assert Path("artifacts/ds/m/seed2/model.txt").read_text() == "model of seed 2"
    assert Path("reports/curves/ds/m/seed2/curve.tsv").read_text() == "2\n"
    assert not Path("checkpoints/ds/m").exists()

    calls.clear()  # a finished seed made under another key is not reused
    with pytest.raises(Boom):
        run_over_seeds(params, "ds", "m", _fake(calls, fail_on=1), key_of=lambda s: "k")
    calls.clear()
    run_over_seeds(params, "ds", "m", _fake(calls), key_of=lambda s: "other")
    assert calls == [0, 1, 2]


def test_train_stage_over_two_seeds(tmp_path):
    """The real train@spiral-vade stage with seeds [0, 1]: each seed starts from the AE of
    the same seed, the seeds differ, and seed 0's entry is the single-seed run's result."""
    one = make_project(tmp_path / "one", changes={"seeds": [0]})
    two = make_project(tmp_path / "two", changes={"seeds": [0, 1]})
    for folder in (one, two):
        for stage, args in (("prepare", ["spiral"]), ("pretrain", ["spiral", "ae"]),
                            ("train", ["spiral", "vade"])):
            run_inprocess(folder, stage, *args)
    m1 = read_json(one / "reports/metrics/spiral/vade.json")
    m2 = read_json(two / "reports/metrics/spiral/vade.json")
    assert m2["seeds"] == [0, 1] and m2["n_seeds"] == 2
    s0, s1 = m2["per_seed"]["0"], m2["per_seed"]["1"]
    assert s0["seed"] == 0 and s1["seed"] == 1 and s0["elbo"] != s1["elbo"]
    assert m2["elbo"] == pytest.approx((s0["elbo"] + s1["elbo"]) / 2)
    assert m2["std"]["elbo"] == pytest.approx(abs(s0["elbo"] - s1["elbo"]) / math.sqrt(2))
    assert s0["elbo"] == m1["per_seed"]["0"]["elbo"] == m1["elbo"]
    with inside(two):
        for run in ("ae", "vade"):
            assert Path(f"artifacts/spiral/{run}/model.pt").is_file()
            assert Path(f"artifacts/spiral/{run}/seed1/model.pt").is_file()
            assert Path(f"reports/curves/spiral/{run}/seed1").is_dir()
        assert not Path("checkpoints/spiral/vade").exists()


BASELINE_WITHOUT_TORCH = """
import sys
import numpy as np
from vaemix.baselines import evaluate_baseline
from vaemix.seeds import run_over_seeds

def fit(seed, artifacts, curves, checkpoint):
    rng = np.random.default_rng(seed)
    z = np.concatenate([rng.normal(0, 0.1, (20, 2)), rng.normal(5, 0.1, (20, 2))])
    y = np.repeat([0, 1], 20)
    latents = {"z_train": z, "y_train": y, "z_test": z, "y_test": y}
    metrics, _ = evaluate_baseline("kmeans", latents, 2, {"n_init": 2}, seed)
    return metrics

out = run_over_seeds({"seeds": [0, 1]}, "toy", "ae+kmeans", fit, curves=False)
assert out["acc"] == 1.0, out
print("torch" in sys.modules)
"""


def test_a_baselines_run_over_seeds_never_imports_torch(tmp_path):
    """The baselines stages skip torch's import (seconds per stage); a process group,
    which would need it, cannot exist in a process that never loaded torch."""
    proc = subprocess.run([sys.executable, "-c", BASELINE_WITHOUT_TORCH], cwd=tmp_path,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "False"
    assert read_json(tmp_path / "reports/metrics/toy/ae+kmeans.json")["n_seeds"] == 2
