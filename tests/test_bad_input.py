"""Bad params at the stage level: one line naming the key, exit status 2, nothing written."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.tiny import edit_params, make_project, run_inprocess, run_subprocess
from vaemix.errors import ParamError


@pytest.fixture(scope="module")
def spiral(tmp_path_factory) -> Path:
    folder = make_project(tmp_path_factory.mktemp("bad"), ("spiral",))
    run_inprocess(folder, "prepare", "spiral")
    return folder


def _written(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for root in ("reports", "artifacts",
                  "checkpoints") for p in (folder / root).rglob("*") if p.is_file())


@pytest.mark.parametrize(
    "changes,stage,args,needle",
    [
        ({"device": "cuda"}, "pretrain", ("spiral", "ae"),
         "'device' is 'cuda' but no CUDA device is available"),
        ({"device": "cuda:1"}, "train", ("spiral", "vade"),
         "'device' is 'cuda:1' but no CUDA device is available"),
        # K above the prepared training split (400 points) with no budget cap to catch it early
        ({"model.spiral.n_clusters": 500, "budget.max_train": None}, "pretrain", ("spiral", "vae"),
         "'model.spiral.n_clusters' is 500, more than the 400 training points "
         "(data/prepared/spiral)"),
        ({}, "train", ("spiral", "nope"), "'methods' does not list 'nope'"),
        ({}, "pretrain", ("imagenet", "ae"), "'datasets' does not list 'imagenet'"),
        # the sweep pretrains no autoencoder for its runs (Nagpal et al.'s start at random)
        ({"latent_sweep.latent_dims": [4], "latent_sweep.runs": ["vade"],
          "latent_sweep.from_gmvae": [], "latent_sweep.baseline_encoders": ["vae"]},
         "sweep", ("train", "spiral", "vade", "4"),
         "'latent_sweep.runs' has 'vade', whose paper recipe starts from a pretrained "
         "autoencoder"),
    ],
)
def test_bad_params_stop_before_anything_is_written(spiral, monkeypatch, changes, stage, args,
                                                   needle):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # CPU-only, also on a GPU box
    original = (spiral / "params.yaml").read_text()
    edit_params(spiral, changes)
    try:
        with pytest.raises(ParamError) as err:
            run_inprocess(spiral, stage, *args)
        assert needle in str(err.value) and "\n" not in str(err.value)
        assert _written(spiral) == []
    finally:
        (spiral / "params.yaml").write_text(original)


def test_stage_reports_one_line_and_exit_status_2(spiral):
    original = (spiral / "params.yaml").read_text()
    edit_params(spiral, {"train.dmvae.tau_start": 0})
    try:
        proc = run_subprocess(spiral, "train", "spiral", "dmvae")
    finally:
        (spiral / "params.yaml").write_text(original)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "error: params.yaml: 'train.dmvae.tau_start' must be a positive number, got 0"
    ]
    assert _written(spiral) == []


def test_corrupted_prepared_data_is_refused_by_checksum(spiral):
    from vaemix.data import load_prepared
    from vaemix.errors import DataError

    path = spiral / "data/prepared/spiral/data.npz"
    good = path.read_bytes()
    bad = bytearray(good)
    bad[len(bad) // 2] ^= 0xFF  # one flipped byte in the arrays
    path.write_bytes(bytes(bad))
    try:
        with pytest.raises(DataError, match=r"data/prepared/spiral/data.npz: checksum mismatch"):
            load_prepared("spiral", spiral / "data/prepared")
    finally:
        path.write_bytes(good)


def test_a_misspelled_option_stops_the_train_stage_before_any_work(tmp_path):
    """The model's options are checked before the data is even read: one line naming the
    key and the closest known one, exit status 2, nothing written."""
    from tests.tiny import make_project, run_subprocess

    folder = make_project(tmp_path / "p", ("spiral",), {"train.vade.lrr": 0.01})
    proc = run_subprocess(folder, "train", "spiral", "vade")
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert proc.stderr.strip().splitlines() == [
        "error: params.yaml: 'train.vade.lrr': unknown key; did you mean 'lr'?"]
    assert not (folder / "reports").exists() and not (folder / "artifacts").exists()
