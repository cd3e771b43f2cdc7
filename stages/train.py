"""DVC stage train@<dataset>-<method>: train one mixture model (VaDE, DMVAE, MoVAE, ...)
on a prepared dataset and export its checkpoint, latents, clusters, samples, metrics
and curves. Methods that start from the pretrained autoencoder read
artifacts/<dataset>/ae/model.pt.

Usage: python stages/train.py <dataset> <method>
       torchrun --standalone --nproc_per_node=N stages/train.py <dataset> <method>
(data-parallel; ``distributed.nproc_per_node: N`` in params.yaml makes the plain command
relaunch itself that way, see vaemix.distributed)
"""

from __future__ import annotations

from vaemix.cli import run_stage


def main(argv: list[str]) -> None:
    from vaemix.config import load_params, require_listed
    from vaemix.data import load_prepared
    from vaemix.distributed import relaunch
    from vaemix.errors import ParamError
    from vaemix.models import check_model_sections
    from vaemix.runs import ARTIFACTS, train_and_export

    if len(argv) != 2:
        raise ParamError("usage: python stages/train.py <dataset> <method>")
    dataset, method = argv
    params = load_params()
    require_listed(params, "datasets", dataset)
    require_listed(params, "methods", method)
    check_model_sections(params)  # every option of every model, before any work
    relaunch(params, __file__, argv)  # distributed.nproc_per_node > 1: under torchrun
    init = {"ae_checkpoint": ARTIFACTS / dataset / "ae" / "model.pt",
            "start": {"umap": params["baseline"].get("umap_gmm"),
                      "file": ARTIFACTS / dataset / "ae+umap_gmm" / "pred.npz"}}
    train_and_export(method, dataset, load_prepared(dataset), params, "train", init=init)


if __name__ == "__main__":
    run_stage(main)
