"""DVC stages moe@<dataset>-<gate>-<latent_dim> and moe_plain@<dataset>-<gate>: fit one
mixture-of-experts gate on the prepared regression targets and export its predictions,
metrics (reports/metrics/<dataset>/moe_<gate>_z<d>.json) and curves. Gates without a
latent space run with latent dim 0. The gradient-trained gates with init: start (the
default) start from artifacts/<dataset>/ae/model.pt and the partition pred_train of
artifacts/<dataset>/ae+umap_gmm/pred.npz, each seed's own (vaemix.moe.run).

Usage: python stages/moe.py <dataset> <gate> <latent_dim>
"""

from __future__ import annotations

from vaemix.cli import run_stage


def main(argv: list[str]) -> None:
    from vaemix.config import LATENT_GATES, load_params, require_listed
    from vaemix.errors import ParamError

    if len(argv) != 3 or not argv[2].isdigit():
        raise ParamError("usage: python stages/moe.py <dataset> <gate> <latent_dim>")
    dataset, gate, latent_dim = argv[0], argv[1], int(argv[2])
    params = load_params()
    require_listed(params, "datasets", dataset)
    if gate in LATENT_GATES:
        require_listed(params, "moe.gates", gate)
        if latent_dim not in params["moe"]["latent_dims"]:
            raise ParamError(f"params.yaml: 'moe.latent_dims' does not list {latent_dim} "
                             f"(it has {params['moe']['latent_dims']})")
    else:
        require_listed(params, "moe.plain_gates", gate)
        if latent_dim != 0:
            raise ParamError(f"gate {gate!r} has no latent space: run it with latent dim 0")
    from vaemix.data import load_prepared
    from vaemix.moe.run import run_moe  # torch: imported once the arguments are checked

    metrics = run_moe(dataset, gate, latent_dim, load_prepared(dataset), params)
    print(f"moe {dataset}/{gate}/z{latent_dim}: test_mse {metrics['test_mse']:.4f}, "
          f"gate acc {metrics.get('acc', float('nan')):.3f}")


if __name__ == "__main__":
    run_stage(main)
