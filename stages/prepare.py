"""prepare@<dataset>: read or generate one dataset into data/prepared/<dataset>/."""

from pathlib import Path

from vaemix.cli import run_stage
from vaemix.config import load_params
from vaemix.data import PREPARED_ROOT, prepare_dataset
from vaemix.errors import ParamError


def main(argv: list[str]) -> None:
    if len(argv) != 1:
        raise ParamError("usage: python stages/prepare.py <dataset>")
    name = argv[0]
    params = load_params()
    if name not in params["datasets"]:
        raise ParamError(f"params.yaml: dataset {name!r} is not in 'datasets' {params['datasets']}")
    prepare_dataset(name, params, Path(PREPARED_ROOT) / name)


if __name__ == "__main__":
    run_stage(main)
