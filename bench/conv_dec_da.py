"""ConvDEC-DA (Guo, Zhu, Liu & Yin 2018) on the MNIST dev split: does DEC-DA on the authors'
convolutional autoencoder lift vaemix's start past the MLP's 0.973 transductive ACC, towards
its published 0.983 on MNIST-test?

ConvDEC-DA, as its authors' code sets it (github.com/XifengGuo/DEC-DA, ConvDEC.py, main.py,
run_exp.py):
- the autoencoder (their ``CAE``; vaemix's ``net: cae``, vaemix.networks, where it is
  described);
- pretraining: Adam (Keras' default lr 0.001), squared error of the clean image from a moved
  copy (shifts of up to 10 % of the side, rotations of up to 10 degrees), batch 256, 500
  epochs;
- clustering: K-means (20 restarts) on the codes, then DEC's KL(P || Q) with Q of a moved
  copy and P of the clean images, P every 30 batches (their MNIST-test setting), Adam
  (0.001), batch 256, stop below 0.1 % changed labels, at most 20,000 batches.

vaemix's differences: trained on the 8000 training images only (the test images scored by
their nearest centre), and ``--start n2d`` replaces K-means by the N2D partition of the same
codes (UMAP + GMM, McConville et al. 2020), as vaemix's start does for the MLP, and ``--start
pipeline`` runs vaemix's own start@ phase (vaemix.models.dec, params.yaml's ``start.dec``) on
the same CAE, which must reproduce the ``kmeans`` row (``--start guarded``: with the guard of
start@, the phase from K-means and from N2D and the end of the smaller cut). ``--then``
warms mixture models of vaemix's protocol up on each phase's end partition (its file
``conv_dec_da_<start>_s<seed>.npz`` in ``--work``), on this CAE (their net ``cae``) or on the
autoencoder ``--then-checkpoint`` names (e.g. the pipeline's MLP ae_da).

    OMP_NUM_THREADS=2 python bench/conv_dec_da.py --raw /tmp/raw --work /tmp/convdec \
        --start n2d kmeans --name conv_dec_da_s0
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from aspc_da import (
    aspc_pretrain,
    bench_params,
    dec_da_phase,
    nearest,
    parse_common,
    record_phase,
)
from quality import parse_overrides
from sklearn.cluster import KMeans

from vaemix.baselines import fit_baseline
from vaemix.data import load_prepared, prepare_dataset
from vaemix.metrics import clustering_metrics, transductive_metrics
from vaemix.models import spec_from_params
from vaemix.models.ae import AutoEncoder
from vaemix.models.base import ModelSpec
from vaemix.models.init import load_ae_state
from vaemix.training import batched


def cae_spec(params: dict, data) -> ModelSpec:
    """MNIST's spec with the network ``cae`` (vaemix.networks: Guo et al.'s CAE) and their
    squared error of a linear output."""
    return spec_from_params(params, "mnist", data.input_shape, net="cae", recon="squared_error")


def pretrained(params: dict, data, epochs: int, seed: int, path: Path
               ) -> tuple[AutoEncoder, float]:
    """ConvDEC-DA's pretraining (reused if ``path`` exists, a checkpoint in the pipeline's
    format that ``--then`` models copy); the CAE and its seconds."""
    torch.manual_seed(seed)
    spec = cae_spec(params, data)
    cae = AutoEncoder(spec)
    if path.is_file():
        cae.load_state_dict(load_ae_state(path))
        return cae.eval(), 0.0
    start = time.perf_counter()
    aspc_pretrain(cae, torch.as_tensor(data.x_train), epochs, seed, optimizer="adam", lr=0.001)
    torch.save({"state_dict": cae.state_dict(), "spec": asdict(spec), "method": "ae_da"}, path)
    return cae.eval(), time.perf_counter() - start


def phase(kind: str, labels: np.ndarray, cae0: AutoEncoder, data, seed: int
          ) -> tuple[dict, np.ndarray]:
    """ConvDEC-DA's clustering phase from the partition ``labels``; its scores and its
    partition of the training images."""
    cae = copy.deepcopy(cae0)
    x_tr, x_te = torch.as_tensor(data.x_train), torch.as_tensor(data.x_test)
    with torch.no_grad():
        z = batched(cae.encode, x_tr)
    centres = torch.stack([z[torch.as_tensor(labels == j)].mean(0) for j in range(10)])
    t = time.perf_counter()
    torch.manual_seed(seed)
    pred, history, centres = dec_da_phase(cae, x_tr, labels, centres, seed, optimizer="adam",
                                          lr=0.001)
    with torch.no_grad():
        test_pred, _ = nearest(batched(cae.encode, x_te), centres)
    return {"phase": "conv_dec_da", "start": kind,
            "start_train_acc": transductive_metrics(data.y_train, labels)["train_acc"],
            "checks": len(history), "seconds": time.perf_counter() - t,
            **transductive_metrics(data.y_train, pred),
            **{key: clustering_metrics(data.y_test, test_pred)[key] for key in ("acc", "nmi")},
            "train_sizes": np.bincount(pred, minlength=10).tolist(), "history": history}, pred


def pipeline_phase(params: dict, data, cae_path: Path, name: str = "start_cae"
                   ) -> tuple[dict, np.ndarray]:
    """vaemix's own start@ phase on this CAE: vaemix.models.dec with params.yaml's
    ``start.dec`` for MNIST (ConvDEC-DA's settings, K-means start); its scores and partition."""
    from vaemix.runs import train_and_export

    init = {"ae_checkpoint": cae_path, "start": {"umap": params["baseline"]["umap_gmm"]}}
    params = copy.deepcopy(params)   # its own budget whatever --epoch-scale (as the profiles)
    params["start"]["dec"]["epochs"] = round(params["start"]["dec"]["epochs"]
                                             / params["budget"]["epoch_scale"])
    t = time.perf_counter()
    m = train_and_export("dec", "mnist", data, params, "start", init=init, name=name,
                         overrides={"net": "cae"})
    with np.load(Path(f"artifacts/mnist/{name}/pred.npz")) as f:
        pred = f["pred_train"]
    return {"phase": "vaemix.models.dec", "start": "pipeline", "seconds": time.perf_counter() - t,
            **{k: m[k] for k in ("train_acc", "train_nmi", "acc", "nmi")},
            "train_sizes": np.bincount(pred, minlength=10).tolist()}, pred


def guarded_phase(params: dict, data, cae_path: Path, z: np.ndarray
                  ) -> tuple[dict, np.ndarray]:
    """vaemix's start@ with its guard (start.guard_from) on this CAE: the pipeline's phase from
    K-means (run ``start_cae``) and from N2D (``start_cae_n2d``, as bench/start_guard_probe.py
    names it), each reused when the work folder has it, and the end vaemix.start.guard_choice
    keeps by the normalised cut of UMAP's graph of the CAE's codes."""
    from vaemix.io import read_json
    from vaemix.start import guard_choice

    ends, scores = {}, {}
    for source, name in (("kmeans", "start_cae"), ("umap", "start_cae_n2d")):
        if Path(f"artifacts/mnist/{name}/pred.npz").is_file():
            print(f"{name}: reusing the phase's end in {os.getcwd()}", flush=True)
        else:
            run = copy.deepcopy(params)
            run["start"]["dec"]["per_dataset"]["mnist"]["init_clusters"] = source
            pipeline_phase(run, data, cae_path, name=name)
        with np.load(Path(f"artifacts/mnist/{name}/pred.npz")) as f:
            ends[source] = f["pred_train"]
        m = read_json(Path(f"reports/metrics/mnist/{name}.json"))
        scores[source] = {k: m[k] for k in ("train_acc", "train_nmi", "acc", "nmi")}
    kept, cuts = guard_choice(params, z, ends, params["seed"])
    return {"phase": "vaemix.start guard", "start": "guarded", "kept": kept, "cuts": cuts,
            "ends": scores, **scores[kept],
            "train_sizes": np.bincount(ends[kept], minlength=10).tolist()}, ends[kept]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ae-epochs", type=int, default=500)
    ap.add_argument("--start", nargs="+", default=["kmeans"],
                    choices=["kmeans", "n2d", "pipeline", "guarded"],
                    help="pipeline: vaemix's start@ phase (params.yaml's start.dec) instead; "
                         "guarded: that phase from K-means and from N2D, the guard's choice")
    ap.add_argument("--then-checkpoint", type=Path,
                    help="the autoencoder the --then models copy (e.g. the pipeline's MLP "
                         "ae_da); default: this CAE, the models then with the net 'cae'")
    ap.add_argument("--then-set", nargs="*", default=[], metavar="KEY=VALUE",
                    help="a setting of the --then models' train.<method> sections, e.g. "
                         "anchor_weight=30 (read as YAML)")
    args, out = parse_common(ap, "conv_dec_da")
    params = bench_params(args.raw, args.seed, args.ae_epochs, args.epoch_scale)
    cae_path = (args.work / f"cae{args.ae_epochs}_s{args.seed}.pt").resolve()
    ckpt = (args.then_checkpoint or cae_path).resolve() if args.then else None
    if args.then and args.then_checkpoint is None:   # the models copy this CAE
        for method in args.then:
            params["train"][method]["net"] = "cae"
    if any("=" not in setting for setting in args.then_set):
        ap.error(f"--then-set {' '.join(args.then_set)}: expected KEY=VALUE items")
    for key, value in parse_overrides(args.then_set).items():
        for method in args.then:
            params["train"][method][key] = value
    os.chdir(args.work)
    prepare_dataset("mnist", params, Path("data/prepared/mnist"))
    data = load_prepared("mnist")
    x_tr = torch.as_tensor(data.x_train)
    cae, seconds = pretrained(params, data, args.ae_epochs, args.seed, cae_path)
    with torch.no_grad():
        z, z_te = batched(cae.encode, x_tr).numpy(), batched(cae.encode, torch.as_tensor(
            data.x_test)).numpy()
    n2d = fit_baseline("umap_gmm", z, 10, params["baseline"]["umap_gmm"], args.seed)
    kmeans = KMeans(10, n_init=20, random_state=args.seed).fit(z)
    result = {"args": {k: str(v) for k, v in vars(args).items()}, "cpu": os.uname().machine,
              "ae_seconds": seconds, "rows": [], "then": [],
              "cae+kmeans": {**transductive_metrics(data.y_train, kmeans.labels_),
                             "acc": clustering_metrics(data.y_test, kmeans.predict(z_te))["acc"]},
              "cae+umap_gmm": {**transductive_metrics(data.y_train, n2d.train_labels(z)),
                               "acc": clustering_metrics(data.y_test, n2d.predict(z_te))["acc"]}}
    print(json.dumps({k: result[k] for k in ("cae+kmeans", "cae+umap_gmm")}), flush=True)
    starts = {"kmeans": kmeans.labels_, "n2d": n2d.train_labels(z)}
    for kind in args.start:
        if kind == "pipeline":
            row, pred = pipeline_phase(params, data, cae_path)
        elif kind == "guarded":
            row, pred = guarded_phase(params, data, cae_path, z)
        else:
            row, pred = phase(kind, starts[kind], cae, data, args.seed)
        np.savez(f"conv_dec_da_{kind}_s{args.seed}.npz", pred_train=pred)
        record_phase(result, out, row, pred, ckpt, args.then, data, params,
                     args.then_augment)


if __name__ == "__main__":
    main()
