"""baselines@<dataset>-<encoder>-<baseline>: cluster an encoder's latents with scikit-learn.

Usage: python stages/baselines.py <dataset> <encoder> <baseline>

For every seed of params.yaml (vaemix.seeds), reads that seed's
artifacts/<dataset>/<encoder>/[seed<s>/]latents.npz, fits on the training latents with that
seed, and writes the test predictions to artifacts/<dataset>/<encoder>+<baseline>/[seed<s>/]
pred.npz; then reports/metrics/<dataset>/<encoder>+<baseline>.json with the mean, the std and
each seed's metrics.
"""

from __future__ import annotations

from vaemix.baselines import run_baseline
from vaemix.cli import run_stage
from vaemix.config import load_params
from vaemix.errors import ParamError


def main(argv: list[str]) -> None:
    if len(argv) != 3:
        raise ParamError("usage: python stages/baselines.py <dataset> <encoder> <baseline>")
    dataset, encoder, baseline = argv
    params = load_params()
    for key, name in (("datasets", dataset), ("baseline_encoders", encoder),
                      ("baselines", baseline)):
        if name not in params[key]:
            raise ParamError(f"params.yaml: {name!r} is not in '{key}' ({params[key]})")

    run_baseline(params, dataset, encoder, baseline)


if __name__ == "__main__":
    run_stage(main)
