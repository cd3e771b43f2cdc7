"""DynAE's clustering phase (Mrabah, Khan, Ksantini & Lachiri 2020) on vaemix's augmented
autoencoder ``ae_da``, on the MNIST dev split: does it lift vaemix's start past DEC-DA's
0.973 transductive ACC towards its published 0.987 on MNIST-test?

DynAE, as its authors' code sets it (github.com/nairouz/DynAE, DynAE.py and dynAE.ipynb):
- centres: K-means (10 restarts) on the codes; each centre is the code of the training point
  nearest to a K-means centre, and its image that code decoded (``generate_centers``);
- a point is *unconflicted* (confident) when its largest Student's t assignment (DEC's q,
  alpha 1) exceeds beta1 and its gap to the second largest exceeds beta2; beta1 = kappa / K,
  beta2 = beta1 / 2, kappa = 3 (``generate_beta``);
- each batch of 256 (taken in order) is moved (shifts of up to 10 % of the side, rotations of
  up to 10 degrees) and the autoencoder trained, SGD(0.001, momentum 0.9), on
      mse(f(x~), t_z) + gamma * mse(g(f(x~)), t_x),   gamma = 100,
  where for a confident point t_z, t_x are its centre's code and image ("construction") and
  otherwise the clean point's own code and the clean image ("reconstruction"), both computed
  before the step (``generate_supervisory_signals``, ``loss_dynAE``);
- every 140 batches the conflicted points are counted; when their number stopped falling, the
  centres are recomputed and both thresholds lowered (beta -= 0.3 kappa / K, kappa *= 0.3);
- it stops when fewer than 1 % of the points are conflicted (tol 0.01).

vaemix's differences: the autoencoder is the pipeline's ``ae_da`` (DEC-DA's pretraining, not
DynAE's adversarially constrained interpolation), trained on the 8000 training images only
(the test images are scored by their nearest centre), and ``--start`` may replace the first
K-means by a partition (N2D's, or a pipeline run's pred.npz): the first centres are then the
codes nearest to its cluster means. ``--then`` trains mixture models of vaemix's protocol from
the phase's end (its autoencoder and partition), as bench/aspc_da.py does.

    OMP_NUM_THREADS=2 python bench/dynae.py --raw /tmp/raw --work /tmp/dynae \
        --checkpoint <clone>/artifacts/mnist/ae_da/model.pt --start kmeans n2d --name dynae_s0
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import time
from pathlib import Path

import numpy as np
import torch
from aspc_da import (
    ROTATE,
    SHIFT,
    as_checkpoint,
    bench_params,
    dec_da_phase,
    nearest,
    parse_common,
    record_phase,
)
from sklearn.cluster import KMeans
from sklearn.neighbors import NearestNeighbors

from vaemix.augment import Augment
from vaemix.baselines import fit_baseline
from vaemix.data import load_prepared, prepare_dataset
from vaemix.distributions import log_student_t_assignments
from vaemix.metrics import clustering_metrics, transductive_metrics
from vaemix.models import spec_from_params
from vaemix.models.ae import AutoEncoder
from vaemix.models.init import load_ae_state
from vaemix.training import batched


def confident(z: torch.Tensor, centres: torch.Tensor, beta1: float,
              beta2: float) -> tuple[torch.Tensor, torch.Tensor]:
    """DynAE's unconflicted points: top-1 of q above beta1 and its gap to the
    top-2 above beta2; with each point's cluster argmax_j q_ij."""
    top = log_student_t_assignments(z, centres).exp().topk(2, dim=1)
    ok = (top.values[:, 0] > beta1) & (top.values[:, 0] - top.values[:, 1] > beta2)
    return ok, top.indices[:, 0]


def centres_of(ae: AutoEncoder, z: torch.Tensor, labels: np.ndarray | None, k: int,
               seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The codes of the training points nearest to the K-means centres (10 restarts; given
    ``labels``, to their cluster means) and those codes decoded."""
    zn = z.numpy()
    if labels is None:
        means = KMeans(k, n_init=10, random_state=seed).fit(zn).cluster_centers_
    else:
        means = np.stack([zn[labels == j].mean(0) for j in range(k)])
    _, idx = NearestNeighbors(n_neighbors=1).fit(zn).kneighbors(means)
    cz = z[torch.as_tensor(idx[:, 0])]
    with torch.no_grad():
        cx = ae.decoder(cz).flatten(1)
    return cz, cx


def dynae_step(ae: AutoEncoder, opt: torch.optim.Optimizer, xb: torch.Tensor,
               centres: tuple[torch.Tensor, torch.Tensor], betas: tuple[float, float],
               gamma: float, augment: Augment, gen: torch.Generator) -> float:
    """One batch of DynAE's dynamic loss: construction targets for the
    confident points, reconstruction targets for the others, on a moved copy."""
    cz, cx = centres
    with torch.no_grad():
        zb = ae.encode(xb)
        ok, lab = confident(zb, cz, *betas)
        t_z = torch.where(ok[:, None], cz[lab], zb)
        t_x = torch.where(ok[:, None], cx[lab], xb.flatten(1))
    z = ae.encode(augment(xb, gen))
    loss = (z - t_z).pow(2).mean() + gamma * (ae.decoder(z).flatten(1) - t_x).pow(2).mean()
    opt.zero_grad()
    loss.backward()
    opt.step()
    return loss.item()


def dynae_phase(ae: AutoEncoder, x: torch.Tensor, labels: np.ndarray | None, seed: int,
                k: int = 10, kappa: float = 3.0, gamma: float = 100.0, interval: int = 140,
                tol: float = 0.01, maxiter: int = 100_000, y: np.ndarray | None = None
                ) -> tuple[np.ndarray, torch.Tensor, list[dict]]:
    """DynAE's clustering phase from K-means (``labels`` None) or from ``labels``; the final
    partition, centre codes and the history of every check (with the partition's ACC against
    ``y`` where given: a record only, the training never sees it)."""
    gen = torch.Generator().manual_seed(seed)
    augment = Augment(SHIFT, ROTATE)
    opt = torch.optim.SGD(ae.parameters(), lr=0.001, momentum=0.9)
    ae.eval()   # no dropout or batch norm in the MLP: eval only marks the state
    centres = centres_of(ae, batched(ae.encode, x), labels, k, seed)
    beta1 = kappa / k
    beta2 = beta1 / 2
    delta = 0.3 * kappa
    prev = len(x)
    batches = torch.arange(len(x)).split(256)
    history: list[dict] = []
    losses: list[float] = []
    for ite in range(maxiter):
        if ite % interval == 0:
            with torch.no_grad():
                ok, pred = confident(batched(ae.encode, x), centres[0], beta1, beta2)
            conflicted = int((~ok).sum())
            if ite > 0 and conflicted >= prev:   # stalled: new centres, lower thresholds
                centres = centres_of(ae, batched(ae.encode, x), None, k, seed + ite)
                beta1, beta2 = beta1 - delta / k, beta2 - delta / k
                delta = 0.3 * kappa
                kappa = delta
            prev = conflicted
            history.append({"iteration": ite, "conflicted": conflicted, "beta1": beta1,
                            "beta2": beta2, "loss": float(np.mean(losses)) if losses else None,
                            "acc": None if y is None else
                            clustering_metrics(y, pred.numpy())["acc"]})
            losses = []
            print(json.dumps(history[-1]), flush=True)
            if conflicted / len(x) < tol:
                break
        losses.append(dynae_step(ae, opt, x[batches[ite % len(batches)]], centres,
                                 (beta1, beta2), gamma, augment, gen))
    with torch.no_grad():
        _, pred = confident(batched(ae.encode, x), centres[0], beta1, beta2)
    return pred.numpy(), centres[0], history


def run(kind: str, labels: np.ndarray | None, ae0: AutoEncoder, data, seed: int,
        **phase: float) -> tuple[dict, AutoEncoder, np.ndarray]:
    """One DynAE phase from the start ``kind``; its scores, autoencoder and partition."""
    ae = copy.deepcopy(ae0)
    x_tr, x_te = torch.as_tensor(data.x_train), torch.as_tensor(data.x_test)
    torch.manual_seed(seed)
    t = time.perf_counter()
    pred, centres, history = dynae_phase(ae, x_tr, labels, seed, y=data.y_train, **phase)
    with torch.no_grad():
        test_pred, _ = nearest(batched(ae.encode, x_te), centres)
    row = {"phase": "dynae", "start": kind, **phase, "checks": len(history),
           "iterations": history[-1]["iteration"], "seconds": time.perf_counter() - t,
           "start_train_acc": (transductive_metrics(data.y_train, labels)["train_acc"]
                               if labels is not None else None),
           **transductive_metrics(data.y_train, pred),
           **{key: clustering_metrics(data.y_test, test_pred)[key] for key in ("acc", "nmi")},
           "train_sizes": np.bincount(pred, minlength=10).tolist(), "history": history}
    return row, ae, pred


def starts(args: argparse.Namespace, params: dict, ae: AutoEncoder, data) -> dict:
    """The first partitions asked for, each with the autoencoder it starts: kmeans (None:
    the paper's), n2d, dec_da (DEC-DA's phase from n2d, as vaemix's start@: its encoder,
    ae_da's decoder), or pred.npz files."""
    x = torch.as_tensor(data.x_train)
    with torch.no_grad():
        z = batched(ae.encode, x).numpy()
    n2d = fit_baseline("umap_gmm", z, 10, params["baseline"]["umap_gmm"],
                       args.seed).train_labels(z)
    out: dict[str, tuple[np.ndarray | None, AutoEncoder]] = {}
    for kind in args.start:
        if kind == "kmeans":
            out[kind] = None, ae
        elif kind == "n2d":
            out[kind] = n2d, ae
        elif kind == "dec_da":
            dec = copy.deepcopy(ae)
            centres = torch.stack([torch.as_tensor(z[n2d == j]).mean(0) for j in range(10)])
            out[kind] = dec_da_phase(dec, x, n2d, centres, args.seed)[0], dec
        else:
            out[kind] = np.load(kind)["pred_train"], ae
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", type=Path, required=True, help="an ae_da model.pt")
    ap.add_argument("--start", nargs="+", default=["kmeans"],
                    help="kmeans (the paper's), n2d, or a pred.npz with pred_train")
    ap.add_argument("--gamma", type=float, default=100.0)
    ap.add_argument("--maxiter", type=int, default=100_000, help="the paper's 1e5 batches")
    ap.add_argument("--interval", type=int, default=140, help="batches between checks")
    args, out = parse_common(ap, "dynae")
    checkpoint = args.checkpoint.resolve()
    start_files = [str(Path(s).resolve()) if s.endswith(".npz") else s for s in args.start]
    args.start = start_files
    params = bench_params(args.raw, args.seed, 500, args.epoch_scale)
    os.chdir(args.work)
    prepare_dataset("mnist", params, Path("data/prepared/mnist"))
    data = load_prepared("mnist")
    ae0 = AutoEncoder(spec_from_params(params, "mnist", data.input_shape,
                                       recon="squared_error"))
    ae0.load_state_dict(load_ae_state(checkpoint))
    result = {"args": {k: str(v) for k, v in vars(args).items()}, "cpu": os.uname().machine,
              "rows": [], "then": []}
    for kind, (labels, ae_start) in starts(args, params, ae0, data).items():
        row, ae, pred = run(kind, labels, ae_start, data, args.seed, gamma=args.gamma,
                            maxiter=args.maxiter, interval=args.interval)
        ckpt = as_checkpoint(ae, Path(f"dynae_{Path(kind).stem}_s{args.seed}.pt"))
        record_phase(result, out, row, pred, ckpt, args.then, data, params,
                     args.then_augment)


if __name__ == "__main__":
    main()
