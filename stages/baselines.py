"""baselines@<dataset>-<encoder>-<baseline>: cluster an encoder's latents with scikit-learn.

Usage: python stages/baselines.py <dataset> <encoder> <baseline>

Reads artifacts/<dataset>/<encoder>/latents.npz, fits on the training latents, and writes
reports/metrics/<dataset>/<encoder>+<baseline>.json and the test predictions to
artifacts/<dataset>/<encoder>+<baseline>/pred.npz.
"""

from __future__ import annotations

from vaemix import io
from vaemix.baselines import evaluate_baseline, load_latents
from vaemix.cli import run_stage
from vaemix.config import check_clusters_fit, load_params
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

    latents = load_latents(f"artifacts/{dataset}/{encoder}/latents.npz")
    n_clusters = params["model"][dataset]["n_clusters"]
    check_clusters_fit(params, dataset, len(latents["z_train"]), f"artifacts/{dataset}/{encoder}")

    settings = params["baseline"][baseline]
    metrics, pred = evaluate_baseline(baseline, latents, n_clusters, settings, params["seed"])
    method = f"{encoder}+{baseline}"
    io.save_npz(f"artifacts/{dataset}/{method}/pred.npz", pred_test=pred,
                y_test=latents["y_test"])
    io.write_metrics(dataset, method, metrics)


if __name__ == "__main__":
    run_stage(main)
