"""DVC stage start@<dataset>: vaemix's start of every mixture model (vaemix.start).

On the image datasets of ``start.dec_da_on``: DEC-DA's clustering phase (params'
``start.dec``) on the autoencoder ae_da (ConvDEC-DA's CAE on MNIST) from K-means or the N2D
partition of its codes (artifacts/<dataset>/ae_da+umap_gmm); with ``start.guard_from``, from
both, N2D's end kept if its normalised cut is smaller by ``start.guard_margin``
(vaemix.start). Elsewhere: the N2D partition of ae (artifacts/<dataset>/ae+umap_gmm)
unchanged.
Either way it publishes artifacts/<dataset>/start/[seed<s>/]pred.npz, the partition that
train@<dataset>-<method> starts from, and reports/metrics/<dataset>/start.json.

Usage: python stages/start.py <dataset>
"""

from __future__ import annotations

from vaemix.cli import run_stage

BUILDS = ("dec",)   # the one method this stage builds by name (scripts/code_deps.py)


def main(argv: list[str]) -> None:
    from vaemix.config import load_params, require_listed
    from vaemix.data import load_prepared
    from vaemix.errors import ParamError
    from vaemix.models import check_options, method_settings
    from vaemix.start import make_start

    if len(argv) != 1:
        raise ParamError("usage: python stages/start.py <dataset>")
    dataset = argv[0]
    params = load_params()
    require_listed(params, "datasets", dataset)
    check_options("dec", method_settings(params, "start", "dec", dataset), "start.dec")
    make_start(params, dataset, load_prepared(dataset))


if __name__ == "__main__":
    run_stage(main)
