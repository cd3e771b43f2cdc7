"""Profiles (profiles/<name>.yaml): overrides of params.yaml turned into `dvc exp run -S`."""

import shutil
from pathlib import Path

import pytest
import yaml

from vaemix.errors import ParamError
from vaemix.profiles import apply, leaves, set_arguments

ROOT = Path(__file__).resolve().parents[1]


def project(tmp_path: Path, profile: dict) -> Path:
    shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
    (tmp_path / "profiles").mkdir()
    (tmp_path / "profiles" / "p.yaml").write_text(yaml.safe_dump(profile))
    return tmp_path


def test_the_committed_quick_profile_is_valid_and_sets_what_it_says():
    args = set_arguments("quick", ROOT / "params.yaml", ROOT / "profiles")
    pairs = dict(a.split("=", 1) for a in args[1::2])
    assert args[0::2] == ["-S"] * len(pairs)
    assert pairs["profile"] == "quick" and pairs["seeds"] == "[0]"
    assert pairs["datasets"] == "[mnist, spiral]"
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    quick = apply(params, yaml.safe_load((ROOT / "profiles/quick.yaml").read_text()), "quick")
    assert quick["budget"]["epoch_scale"] == float(pairs["budget.epoch_scale"])
    assert quick["train"]["vade"] == params["train"]["vade"]   # untouched keys stay


def test_leaves_are_dotted_and_lists_are_leaves():
    assert list(leaves({"a": {"b": 1, "c": [1, 2]}, "d": None})) == [
        ("a.b", 1), ("a.c", [1, 2]), ("d", None)]


def test_a_misspelled_key_is_refused_naming_it(tmp_path):
    folder = project(tmp_path, {"train": {"vade": {"epoch": 3}}})
    with pytest.raises(ParamError, match="'train.vade.epoch' is not a key"):
        set_arguments("p", folder / "params.yaml", folder / "profiles")


def test_a_bad_value_is_refused_by_the_params_checks(tmp_path):
    folder = project(tmp_path, {"budget": {"epoch_scale": -1}})
    with pytest.raises(ParamError, match="budget.epoch_scale"):
        set_arguments("p", folder / "params.yaml", folder / "profiles")


def test_an_unknown_profile_lists_the_known_ones(tmp_path):
    folder = project(tmp_path, {"seeds": [0]})
    with pytest.raises(ParamError, match=r"no such profile \(known: p\)"):
        set_arguments("nope", folder / "params.yaml", folder / "profiles")
