"""DVC stages moe@<dataset>-<gate>-<latent_dim> and moe_plain@<dataset>-<gate> (and their
paper-protocol twins moe_paper@ / moe_plain_paper@): fit one mixture-of-experts gate on
the prepared regression targets and export its predictions, metrics
(reports/metrics/<dataset>/moe_<gate>_z<d>.json) and curves. Gates without a latent space
run with latent dim 0. The gradient-trained gates with init: start (the
default) start from artifacts/<dataset>/ae/model.pt and the partition pred_train of
artifacts/<dataset>/ae+umap_gmm/pred.npz, each seed's own (vaemix.moe.run). With
``paper`` a gate of moe.paper_gates / moe.paper_plain_gates trains as Singh et al. 2018
do, from random networks: the run moe_<gate>_paper_z<d> (vaemix.protocols).

Usage: python stages/moe.py <dataset> <gate> <latent_dim> [vaemix|paper]
"""

from __future__ import annotations

from vaemix.cli import run_stage


def main(argv: list[str]) -> None:
    from vaemix.config import LATENT_GATES, load_params, require_listed
    from vaemix.errors import ParamError

    if len(argv) not in (3, 4) or not argv[2].isdigit() or argv[3:] not in ([], ["vaemix"],
                                                                              ["paper"]):
        raise ParamError("usage: python stages/moe.py <dataset> <gate> <latent_dim> "
                         "[vaemix|paper]")
    dataset, gate, latent_dim = argv[0], argv[1], int(argv[2])
    protocol = argv[3] if len(argv) == 4 else "vaemix"
    params = load_params()
    require_listed(params, "datasets", dataset)
    paper = "paper_" if protocol == "paper" else ""
    if gate in LATENT_GATES:
        require_listed(params, f"moe.{paper}gates", gate)
        if latent_dim not in params["moe"]["latent_dims"]:
            raise ParamError(f"params.yaml: 'moe.latent_dims' does not list {latent_dim} "
                             f"(it has {params['moe']['latent_dims']})")
    else:
        require_listed(params, f"moe.{paper}plain_gates", gate)
        if latent_dim != 0:
            raise ParamError(f"gate {gate!r} has no latent space: run it with latent dim 0")
    from vaemix.data import load_prepared
    from vaemix.moe.run import run_moe  # torch: imported once the arguments are checked

    metrics = run_moe(dataset, gate, latent_dim, load_prepared(dataset), params, protocol)
    print(f"moe {dataset}/{gate}/z{latent_dim} ({protocol}): test_mse {metrics['test_mse']:.4f}, "
          f"gate acc {metrics.get('acc', float('nan')):.3f}")


if __name__ == "__main__":
    run_stage(main)
