"""Named sets of overrides of params.yaml: ``profiles/<name>.yaml``.

A profile is a nested mapping with the same layout as params.yaml; each leaf replaces the
value of that key (lists are replaced whole). ``bash scripts/repro.sh --profile <name>``
runs the pipeline as a DVC experiment with those values: it turns the profile into
``dvc exp run -S key=value`` arguments (:func:`set_arguments`), so DVC records the
experiment and ``dvc exp show`` / ``dvc metrics diff`` compare it with any other run.

Every key of a profile must already exist in params.yaml: a misspelled key stops the run
with one line naming it, before anything is trained.

    python -m vaemix.profiles quick      # prints the -S arguments, one per line
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

from vaemix.config import load_yaml
from vaemix.errors import ParamError, VaemixError

PROFILES = Path("profiles")


def load_profile(name: str, folder: str | Path = PROFILES) -> dict[str, Any]:
    """The overrides of ``<folder>/<name>.yaml``; a missing or malformed file names itself."""
    path = Path(folder) / f"{name}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in Path(folder).glob("*.yaml"))
        raise ParamError(f"{path}: no such profile (known: {', '.join(known) or 'none'})")
    try:
        profile = load_yaml(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise ParamError(f"{path}: not valid YAML ({str(err).splitlines()[0]})") from None
    if not isinstance(profile, Mapping):
        raise ParamError(f"{path}: a profile must be a mapping of params.yaml keys")
    return dict(profile)


def leaves(overrides: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    """(dotted key, value) for every leaf of a nested mapping; lists are leaves."""
    for key, value in overrides.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            yield from leaves(value, f"{dotted}.")
        else:
            yield dotted, value


def _exists(params: Mapping[str, Any], dotted: str) -> bool:
    node: Any = params
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return False
        node = node[part]
    return True


def apply(params: Mapping[str, Any], overrides: Mapping[str, Any], where: str) -> dict:
    """A copy of ``params`` with every leaf of ``overrides`` set; an unknown key raises
    ParamError naming it (``where`` is the profile file)."""
    out = load_yaml(yaml.safe_dump(dict(params)))
    for dotted, value in leaves(overrides):
        if not _exists(out, dotted):
            raise ParamError(f"{where}: '{dotted}' is not a key of params.yaml")
        *parents, last = dotted.split(".")
        node = out
        for part in parents:
            node = node[part]
        node[last] = value
    return out


def set_arguments(name: str, params_path: str | Path = "params.yaml",
                  folder: str | Path = PROFILES) -> list[str]:
    """``-S key=value`` arguments of ``dvc exp run`` for profile ``name``, checked: every
    key exists and the resulting params pass :func:`vaemix.config.validate`."""
    from vaemix.config import load_params, validate

    params = load_params(params_path)
    profile = load_profile(name, folder)
    where = str(Path(folder) / f"{name}.yaml")
    validate(apply(params, profile, where))
    args = []
    for dotted, value in leaves(profile):
        text = yaml.safe_dump(value, default_flow_style=True, width=10**6).strip()
        text = text.removesuffix("\n...").removesuffix("...").strip()
        args += ["-S", f"{dotted}={text}"]
    return args


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m vaemix.profiles <name>", file=sys.stderr)
        return 2
    try:
        print("\n".join(set_arguments(argv[0])))
    except VaemixError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
