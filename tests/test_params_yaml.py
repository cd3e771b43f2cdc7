"""Numbers in scientific notation, as ``dvc exp run -S lr=0.00001`` writes them (``1e-05``),
are read as numbers from params.yaml and from profiles, not as YAML 1.1 strings."""

from pathlib import Path

import pytest
import yaml

from vaemix.config import get, load_params, load_yaml

ROOT = Path(__file__).resolve().parents[1]


def test_scientific_notation_without_a_dot_is_a_float():
    values = load_yaml("a: 1e-05\nb: 1e5\nc: -2E+3\nd: 1.5e-05\ne: 1.0e5\n")
    assert values == {"a": 1e-5, "b": 1e5, "c": -2000.0, "d": 1.5e-5, "e": 1e5}
    assert all(isinstance(v, float) for v in values.values())
    # everything else reads as before
    assert load_yaml("i: 10\nj: 0x1f\nk: 1_000\nl: 0.1\nm: 1e\nn: e5\no: '1e-05'\np: .inf\n") == {
        "i": 10, "j": 31, "k": 1000, "l": 0.1, "m": "1e", "n": "e5", "o": "1e-05",
        "p": float("inf")}


def test_params_with_a_learning_rate_written_by_dvc_load_and_validate(tmp_path):
    params = yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))
    params["train"]["dmvae"]["lr"] = "LR"
    text = yaml.safe_dump(params, sort_keys=False).replace("lr: LR", "lr: 1e-05")
    assert "lr: 1e-05" in text
    (tmp_path / "params.yaml").write_text(text, encoding="utf-8")
    lr = get(load_params(tmp_path / "params.yaml"), "train.dmvae.lr")
    assert lr == 1e-5 and isinstance(lr, float)


def test_profiles_read_scientific_notation_as_numbers(tmp_path):
    profiles = pytest.importorskip("vaemix.profiles")
    (tmp_path / "tiny.yaml").write_text("train:\n  dmvae:\n    lr: 1e-05\n", encoding="utf-8")
    assert profiles.load_profile("tiny", tmp_path) == {"train": {"dmvae": {"lr": 1e-5}}}
