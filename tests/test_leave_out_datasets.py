"""Leaving datasets out of ``datasets`` (``dvc exp run -S 'datasets=[spiral]'``) just works:
the params validate, and DVC's pipeline built from them is closed — every dependency of every
stage is a file of the repository or an output of another stage — with no stage of a dataset
that is not listed. Lists in other sections never name datasets (the latent sweep runs on
every dataset of ``datasets``), so nothing else has to change with it.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from vaemix.config import DATASETS, validate

ROOT = Path(__file__).resolve().parents[1]


def _covered(path: str, outs: list[str], folder: Path) -> bool:
    """A dependency exists, is (inside) an output, or is a folder holding outputs."""
    if (folder / path).exists():
        return True
    inside = path.rstrip("/") + "/"
    return any(path == o or inside.startswith(o.rstrip("/") + "/") or o.startswith(inside)
               for o in outs)


@pytest.mark.parametrize("datasets", [["spiral"], ["npz"], ["cifar100", "spiral"],
                                      ["mnist", "spiral", "cifar100"]])
def test_leaving_datasets_out_validates_and_builds_a_closed_pipeline(tmp_path, datasets):
    from dvc.repo import Repo

    params = yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))
    params["datasets"] = datasets          # what -S 'datasets=[...]' writes, nothing else
    validate(params)
    shutil.copy(ROOT / "dvc.yaml", tmp_path / "dvc.yaml")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    for folder in ("stages", "src", "pipelines"):
        shutil.copytree(ROOT / folder, tmp_path / folder,
                        ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    Repo.init(str(tmp_path), no_scm=True)
    stages = list(Repo(str(tmp_path)).index.stages)
    outs = [o.def_path for s in stages for o in s.outs]
    missing = [(s.name, d.def_path) for s in stages for d in s.deps
               if not _covered(d.def_path, outs, tmp_path)]
    assert not missing, missing
    names = [s.name for s in stages]
    for ds in DATASETS:
        listed = ds in datasets
        assert any(n.startswith(f"prepare@{ds}") for n in names) == listed, (ds, names)
        assert any(f"@{ds}-" in n for n in names if n.startswith("pretrain_z@")) == listed
    assert "report" in names and "evaluate" in names
