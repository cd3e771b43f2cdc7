"""DVC stage pretrain@<dataset>-<encoder>: train the autoencoder `ae` or the VAE `vae`
on a prepared dataset and export its checkpoint, latents, metrics and curves.

Usage: python stages/pretrain.py <dataset> <encoder>
(data-parallel under torchrun like stages/train.py, see vaemix.distributed)
"""

from __future__ import annotations

from vaemix.cli import run_stage


def main(argv: list[str]) -> None:
    from vaemix.config import load_params, require_listed
    from vaemix.data import load_prepared
    from vaemix.distributed import relaunch
    from vaemix.models import check_model_sections
    from vaemix.runs import train_and_export

    dataset, encoder = argv
    params = load_params()
    require_listed(params, "datasets", dataset)
    require_listed(params, "encoders", encoder)
    check_model_sections(params, only=encoder)  # its options, before any work
    relaunch(params, __file__, argv)  # distributed.nproc_per_node > 1: under torchrun
    train_and_export(encoder, dataset, load_prepared(dataset), params, "pretrain")


if __name__ == "__main__":
    run_stage(main)
