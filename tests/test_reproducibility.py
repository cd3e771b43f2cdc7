"""Trustworthy runs on the tiny profile: identical results from two separate runs,
a training stage killed (SIGKILL) and re-run ends where an uninterrupted run ends, and a
learning rate of 10 stops every method with one line and no metrics.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from tests.conftest import blobs
from tests.tiny import STAGES, edit_params, make_project, run_inprocess, run_subprocess
from vaemix.config import BASELINES, ENCODERS, METHODS
from vaemix.errors import NumericalError
from vaemix.io import write_json
from vaemix.models import MODELS, ModelSpec, build_model
from vaemix.regress import load_tolerances
from vaemix.training import TrainConfig, clear_checkpoint, fit, seed_everything

ROOT = Path(__file__).resolve().parents[1]
TIMING = ("train_seconds", "samples_per_second", "seconds_per_epoch", "init_seconds")


def _drop_timing(obj):
    if isinstance(obj, dict):
        return {k: _drop_timing(v) for k, v in obj.items() if k not in TIMING}
    return obj


def without_timing(path: Path) -> bytes:
    """The metrics file's bytes as the writer would produce them without the timing keys
    (at the top, in ``std`` and in each seed's entry of ``per_seed``)."""
    metrics = json.loads(path.read_text())
    assert set(TIMING) & metrics.keys() or "+" in path.name, path  # trained models time
    out = path.with_suffix(".notiming")
    write_json(out, _drop_timing(metrics))
    data = out.read_bytes()
    out.unlink()
    return data


def test_timing_keys_are_the_only_ignored_ones():
    assert set(TIMING) <= load_tolerances(ROOT / "tolerances.yaml").ignore


# --- determinism: two separate processes -------------------------------------------------

DRIVER = """
import runpy, sys
for line in sys.argv[1:]:
    stage, *args = line.split()
    runpy.run_path(f"{STAGES}/{stage}.py", run_name="vaemix_run")["main"](args)
"""


def _all_stages(dataset: str) -> list[str]:
    steps = [f"prepare {dataset}"]
    steps += [f"pretrain {dataset} {enc}" for enc in ENCODERS]
    steps += [f"train {dataset} {m}" for m in METHODS]
    steps += [f"baselines {dataset} {enc} {b}" for enc in ENCODERS for b in BASELINES]
    return steps


def test_two_runs_give_identical_outputs(tmp_path):
    """Every stage of every method and baseline on the tiny spiral, run twice in two fresh
    processes (different hash seeds): metrics files identical byte for byte once the two
    timing keys are removed, and every data, latent, prediction and sample file identical."""
    runs = []
    for name, hash_seed in (("a", "1"), ("b", "2")):
        folder = make_project(tmp_path / name, ("spiral",))
        env = {**os.environ, "PYTHONHASHSEED": hash_seed, "DVC_NO_ANALYTICS": "1"}
        proc = subprocess.run(
            [sys.executable, "-c", DRIVER.replace("{STAGES}", str(STAGES)),
             *_all_stages("spiral")],
            cwd=folder, env=env, capture_output=True, text=True,
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        runs.append(folder)
    a, b = runs
    metrics = sorted(p.relative_to(a) for p in (a / "reports/metrics").rglob("*.json"))
    assert len(metrics) == len(ENCODERS) * (1 + len(BASELINES)) + len(METHODS)
    for rel in metrics:
        assert without_timing(a / rel) == without_timing(b / rel), rel
    binaries = sorted(p.relative_to(a) for p in [*(a / "artifacts").rglob("*.npz"),
                                                 *(a / "data/prepared").rglob("*.npz")])
    assert len(binaries) >= 2 + len(ENCODERS) * 2 + len(METHODS) * 4
    for rel in binaries:
        assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel


# --- interruption and resume -------------------------------------------------------------

@pytest.fixture(scope="module")
def spiral_with_ae(tmp_path_factory) -> Path:
    """The tiny spiral prepared, with its pretrained autoencoders of seeds 0 and 1 (dmvae
    starts from them)."""
    folder = make_project(tmp_path_factory.mktemp("resume"), ("spiral",), {"seeds": [0, 1]})
    run_inprocess(folder, "prepare", "spiral")
    run_inprocess(folder, "pretrain", "spiral", "ae")
    return folder


def _curve_values(folder: Path) -> dict[str, list[str]]:
    """Every curve file's step and value columns (dvclive adds a wall-clock timestamp)."""
    root = folder / "reports/curves/spiral/dmvae"
    out = {}
    for tsv in sorted(root.rglob("*.tsv")):
        rows = [line.split("\t") for line in tsv.read_text().splitlines()]
        keep = [i for i, h in enumerate(rows[0]) if h != "timestamp"]
        out[tsv.relative_to(root).as_posix()] = ["\t".join(r[i] for i in keep) for r in rows]
    return out


def test_killed_training_resumes_to_the_same_result(spiral_with_ae):
    folder = spiral_with_ae
    # 20 epochs (500 * epoch_scale 0.04) with a checkpoint after each, lr decay in play;
    # two seeds, killed during the second: the first is reused, the second resumed
    edit_params(folder, {"train.dmvae.epochs": 500, "train.dmvae.checkpoint_every": 1,
                         "train.dmvae.eval_every": 5, "seeds": [0, 1],
                         "train.dmvae.lr_decay": 0.9, "train.dmvae.lr_decay_every": 3})
    metrics = folder / "reports/metrics/spiral/dmvae.json"
    checkpoint = folder / "checkpoints/spiral/dmvae/seed1/checkpoint/checkpoint.pt"
    artifacts = folder / "artifacts/spiral/dmvae"

    proc = subprocess.Popen([sys.executable, str(STAGES / "train.py"), "spiral", "dmvae"],
                            cwd=folder, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 300
        while not checkpoint.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, "training ended before it could be killed"
    assert checkpoint.is_file() and not metrics.exists() and not artifacts.exists()

    resumed = run_subprocess(folder, "train", "spiral", "dmvae")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resuming from the checkpoint after epoch" in resumed.stderr
    assert "seed 0 finished in an earlier run" in resumed.stdout
    assert not (folder / "checkpoints/spiral/dmvae").exists()  # deleted once published
    after_resume = (without_timing(metrics), (artifacts / "latents.npz").read_bytes(),
                    (artifacts / "pred.npz").read_bytes(), _curve_values(folder))
    assert json.loads(metrics.read_text())["epochs"] == 20

    straight = run_subprocess(folder, "train", "spiral", "dmvae")
    assert straight.returncode == 0, straight.stderr[-3000:]
    assert "resuming" not in straight.stderr
    uninterrupted = (without_timing(metrics), (artifacts / "latents.npz").read_bytes(),
                     (artifacts / "pred.npz").read_bytes(), _curve_values(folder))
    assert after_resume == uninterrupted


def test_checkpoint_of_other_params_is_not_resumed(spiral_with_ae, tmp_path):
    folder = spiral_with_ae
    edit_params(folder, {"train.vade.epochs": 75, "train.vade.checkpoint_every": 1})
    checkpoint = folder / "checkpoints/spiral/vade/seed0/checkpoint/checkpoint.pt"

    class Stop(Exception):
        pass

    import vaemix.training as training

    real = training._Run._save

    def save_then_stop(self, next_epoch):
        real(self, next_epoch)
        if next_epoch == 2:
            raise Stop  # an interruption right after the second checkpoint

    training._Run._save = save_then_stop
    try:
        with pytest.raises(Stop):
            run_inprocess(folder, "train", "spiral", "vade")
    finally:
        training._Run._save = real
    assert checkpoint.is_file()
    edit_params(folder, {"train.vade.lr": 0.001})  # another learning rate: another run
    proc = run_subprocess(folder, "train", "spiral", "vade")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "resuming" not in proc.stderr and not checkpoint.exists()


# --- numerical failure --------------------------------------------------------------------

# DEC's loss is the KL from a fixed target to Student's t assignments, normalised and with
# bounded gradients in the codes and the centres: no learning rate makes it overflow. IDEC
# adds the squared error of a reconstruction, bounded too where it is a sigmoid (MNIST).
# ae_da: a mean squared error over pixels in [0, 1], whose gradients are small; the tiny
# profile's steps at lr 10 need not blow it up (DEC-DA's SGD on the MLP), or may (ConvDEC-DA's
# Adam on MNIST).
BOUNDED = ("dec", "idec", "ae_da")
GOOD_STARTS = ("ae", "ae_da")   # pretrained at params.yaml's rates before the test's lr 10


@pytest.mark.parametrize("dataset", ["spiral", "mnist"])
def test_learning_rate_10_stops_every_method_without_metrics(tmp_path, dataset):
    folder = make_project(tmp_path, (dataset,))
    run_inprocess(folder, "prepare", dataset)
    for encoder in GOOD_STARTS:   # the good starts of the models (ae_da: vaemix's on images)
        run_inprocess(folder, "pretrain", dataset, encoder)
    ae_metrics = (folder / f"reports/metrics/{dataset}/ae.json").read_bytes()
    sections = {**{e: "pretrain" for e in ENCODERS}, **{m: "train" for m in METHODS}}
    edit_params(folder, {f"{sec}.{m}.lr": 10 for m, sec in sections.items()})
    params = yaml.safe_load((folder / "params.yaml").read_text())   # and where a per-dataset
    edit_params(folder, {f"{sec}.{m}.per_dataset.{dataset}.lr": 10    # lr overrides it (ae_da)
                         for m, sec in sections.items()
                         if "lr" in (params[sec][m].get("per_dataset") or {}).get(dataset, {})})
    for method, section in sections.items():
        stage = "pretrain" if section == "pretrain" else "train"
        if method in BOUNDED:   # it may end, with finite metrics, or stop as the others
            try:
                run_inprocess(folder, stage, dataset, method)
            except NumericalError:   # a good start trained before stays as it was
                exists = (folder / f"reports/metrics/{dataset}/{method}.json").exists()
                assert exists == (method in GOOD_STARTS), method
                continue
            m = json.loads((folder / f"reports/metrics/{dataset}/{method}.json").read_text())
            assert all(math.isfinite(v) for v in m.values() if isinstance(v, float)), m
            continue
        with pytest.raises(NumericalError, match=r"training diverged: .*at epoch \d+, batch \d+"):
            run_inprocess(folder, stage, dataset, method)
        if method != "ae":
            assert not (folder / f"reports/metrics/{dataset}/{method}.json").exists(), method
            assert not (folder / f"artifacts/{dataset}/{method}").exists(), method
    assert (folder / f"reports/metrics/{dataset}/ae.json").read_bytes() == ae_metrics
    # the stage itself: exit status 2 and one error line (after the progress bar) naming
    # the epoch, batch and term
    proc = run_subprocess(folder, "train", dataset, METHODS[0])
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert proc.returncode == 2 and len(errors) == 1, proc.stderr[-2000:]
    assert proc.stderr.strip().splitlines()[-1] == errors[0]
    assert errors[0].startswith("error: training diverged: loss term 'loss' is ")
    assert not list((folder / "reports").rglob(".*.tmp"))


# --- the loop's checkpoints, for every registered model ------------------------------------

def same_state(a, b) -> bool:
    """Equality of state-dict entries: tensors, or a module's extra state (nested
    dicts/lists/tuples of tensors and numbers)."""
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and torch.equal(a, b)
    if isinstance(a, dict):
        return (isinstance(b, dict) and a.keys() == b.keys()
                and all(same_state(a[k], b[k]) for k in a))
    if isinstance(a, list | tuple):
        return (type(a) is type(b) and len(a) == len(b)
                and all(same_state(u, v) for u, v in zip(a, b, strict=True)))
    return a == b


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_model_resumes_bit_identical_in_the_loop(name, tmp_path):
    """An interruption after the second of four epochs, then a resume: the same parameters
    and curves as four epochs in one go (model state must live in the state dict or be
    recomputed by start_epoch)."""
    x = torch.as_tensor(blobs(40, 3, 6, seed=0)[0])
    spec = ModelSpec(input_shape=(6,), latent_dim=2, n_clusters=3, hidden=(16,),
                     likelihood="gaussian",  # the mixture models' random start
                     options={} if name in ("ae", "ae_da", "vae") else {"init": "none"})
    config = TrainConfig(epochs=4, batch_size=32, lr=3e-3, seed=5, eval_every=1,
                         lr_decay=0.5, lr_decay_every=1, checkpoint_every=1)

    class Interrupted(Exception):
        pass

    def run(stop_at: int | None, key: str = "k"):
        seed_everything(5)
        model = build_model(name, spec)
        if hasattr(model, "initialise"):  # e.g. GMVAE + DP-GMM keeps x for its refits
            model.initialise(x, seed=5)

        def evaluate(m):
            if stop_at is not None and len(calls) == stop_at:
                raise Interrupted
            calls.append(1)
            return {"probe": float(sum(p.detach().sum() for p in m.parameters()))}

        calls: list[int] = []
        result = fit(model, x, config, evaluate=evaluate, checkpoint_dir=tmp_path / name,
                     resume_key=key)
        return model, result

    straight, want = run(None, key="other")  # uninterrupted
    clear_checkpoint(tmp_path / name)
    with pytest.raises(Interrupted):
        run(stop_at=2)
    assert (tmp_path / name / "checkpoint.pt").is_file()
    resumed, got = run(None)
    assert got.resumed_from == 2 and want.resumed_from == 0
    assert got.history == want.history
    for (k, a), (_, b) in zip(straight.state_dict().items(), resumed.state_dict().items(),
                              strict=True):
        assert same_state(a, b), (name, k)
