"""DVC stages train@<dataset>-<method> and train_paper@<dataset>-<method>: train one
mixture model (VaDE, DMVAE, MoVAE, ...) on a prepared dataset and export its checkpoint,
latents, clusters, samples, metrics and curves, under vaemix's protocol (train.<method> of
params.yaml, the run <method>) or as its paper trains it (the model's cited recipe,
vaemix.protocols, the run <method>_paper). Methods that start from the pretrained
autoencoder read artifacts/<dataset>/ae/model.pt; vaemix's protocol starts from the stage
start@<dataset> instead (vaemix.start): on images ae_da's checkpoint and DEC-DA's partition
artifacts/<dataset>/start/pred.npz, elsewhere ae's and its N2D partition.

Usage: python stages/train.py <dataset> <method> [vaemix|paper|paper_other_start]
(paper_other_start: the paper's recipe from the other start, pretrained <-> random, the run
<method>_paper_other_start of train_paper_start@; Singh et al. 2018, sec. 8.1)
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
    from vaemix.models import check_model_sections, model_class
    from vaemix.protocols import PROTOCOLS, other_start, other_start_run
    from vaemix.runs import ARTIFACTS, train_and_export
    from vaemix.start import start_init, start_net

    kinds = (*PROTOCOLS, "paper_other_start")
    if len(argv) not in (2, 3) or (len(argv) == 3 and argv[2] not in kinds):
        raise ParamError("usage: python stages/train.py <dataset> <method> "
                         f"[{'|'.join(kinds)}]")
    dataset, method = argv[:2]
    kind = argv[2] if len(argv) == 3 else "vaemix"
    params = load_params()
    require_listed(params, "datasets", dataset)
    require_listed(params, "methods", method)
    if kind == "paper_other_start":
        require_listed(params, "paper_starts", method)
    check_model_sections(params, only=method)  # its options, before any work
    relaunch(params, __file__, argv)  # distributed.nproc_per_node > 1: under torchrun
    init: dict = {"ae_checkpoint": ARTIFACTS / dataset / "ae" / "model.pt"}
    data = load_prepared(dataset)
    if kind == "vaemix":   # vaemix's start: an autoencoder and a partition (stage start@)
        init = start_init(params, dataset, data.input_shape)
        train_and_export(method, dataset, data, params, "train", init=init,
                         overrides=start_net(params, dataset, data.input_shape))
    elif kind == "paper":
        train_and_export(method, dataset, data, params, "train", init=init, protocol="paper")
    else:
        train_and_export(method, dataset, data, params, "train", init=init, protocol="paper",
                         name=other_start_run(method),
                         overrides=other_start(model_class(method).paper, dataset))


if __name__ == "__main__":
    run_stage(main)
