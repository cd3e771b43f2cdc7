"""ASPC-DA's clustering phase (Guo, Liu, Zhu & Yin 2019) on vaemix's autoencoder, on the
MNIST dev split: does the published recipe reach its MNIST-test level (0.973) here?

ASPC-DA, as its authors' code sets it (github.com/XifengGuo/ASPC-DA, run_exp.py / ASPC.py):
- the 784-500-500-2000-10 autoencoder pretrained 500 epochs on augmented images (random
  shifts of up to 10 % of the side, rotations of up to 10 degrees; sec. 3.4);
- k-means (20 restarts) on the codes gives the labels s_i and the centres mu_j, which then
  stay fixed;
- up to T = 100 epochs: the encoder alone is trained one epoch, Adam(1e-4), batch 256, on
  augmented copies, to minimise sum_i v_i ||f(x~_i) - mu_{s_i}||^2 / (d N_batch) (eq. 7);
  then every sample is reassigned to its nearest centre (clean image) and its weight
  v_i = 1[l_i < mean(l) + (t / T) std(l)] recomputed (eq. 8-9, vaemix.augment); it stops
  when fewer than 0.1 % of the labels change.

``--ae vaemix`` pretrains the pipeline's ``ae`` (Adam 1e-3, a Bernoulli likelihood) with
augmentation; ``--ae aspc`` the same network as ASPC-DA's code does: squared error on a
linear output, SGD(lr 1, momentum 0.9), zero biases. The test score is the nearest centre
of each held-out image's code. ``--start n2d`` replaces k-means by the
N2D partition (UMAP + GMM on the same codes, vaemix's start), the centres the means of its
clusters. ``--then vade gmvae`` trains those mixture models of vaemix's protocol (warm-up and
anchor as params.yaml sets them) from each phase's end partition in place of the N2D one.

    OMP_NUM_THREADS=2 python bench/aspc_da.py --raw /tmp/raw --work /tmp/aspc --seed 0 \
        --ae-epochs 500 --start kmeans n2d --name aspc_da_s0
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
import yaml
from sklearn.cluster import KMeans
from tqdm import tqdm

from vaemix.augment import Augment, self_paced_mask
from vaemix.baselines import fit_baseline, load_latents
from vaemix.config import validate
from vaemix.data import load_prepared, prepare_dataset
from vaemix.distributions import log_student_t_assignments, target_distribution
from vaemix.metrics import clustering_metrics, transductive_metrics
from vaemix.models import spec_from_params
from vaemix.models.ae import AutoEncoder
from vaemix.models.init import load_ae_state
from vaemix.runs import ARTIFACTS, train_and_export
from vaemix.training import batched

ROOT = Path(__file__).resolve().parents[1]
SHIFT, ROTATE = 0.1, 10.0


def bench_params(raw: Path, seed: int, ae_epochs: int, epoch_scale: float = 1.0) -> dict:
    """params.yaml for MNIST at ``seed``: the augmented ``ae`` at ``ae_epochs`` whatever
    ``epoch_scale`` (which scales the ``--then`` models' budgets)."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["budget"]["epoch_scale"] = epoch_scale
    params["latent_sweep"]["latent_dims"] = []
    params["seed"], params["seeds"] = seed, [seed]
    params["data"]["mnist"].update(root=str(raw.resolve()), download=False)
    params["pretrain"]["ae"].update(epochs=round(ae_epochs / epoch_scale), augment_shift=SHIFT,
                                    augment_rotate=ROTATE, eval_every=50)
    return validate(params)


def pretrained_ae(params: dict, data, name: str) -> tuple[AutoEncoder, float]:
    """The augmented ``ae`` of the pipeline (reused if ``artifacts/mnist/<name>`` holds it)."""
    path = ARTIFACTS / "mnist" / name / "model.pt"
    seconds = 0.0
    if not path.is_file():
        start = time.perf_counter()
        train_and_export("ae", "mnist", data, params, "pretrain", name=name)
        seconds = time.perf_counter() - start
    ae = AutoEncoder(spec_from_params(params, "mnist", data.input_shape))
    ae.load_state_dict(load_ae_state(path))
    return ae, seconds


def optimizer_of(kind: str, lr: float, params: list) -> torch.optim.Optimizer:
    """Guo's Keras optimisers: SGD(lr, momentum 0.9) or Adam(lr)."""
    if kind == "adam":
        return torch.optim.Adam(params, lr=lr)
    return torch.optim.SGD(params, lr=lr, momentum=0.9)


def aspc_pretrain(ae: torch.nn.Module, x: torch.Tensor, epochs: int, seed: int,
                  optimizer: str = "sgd", lr: float = 1.0) -> None:
    """ASPC-DA's pretraining of ``ae``: squared error of the clean image from an augmented
    copy's code, SGD(1.0, momentum 0.9) unless ``optimizer`` and ``lr`` say otherwise,
    batch 256 (their run_exp.py)."""
    for module in ae.modules():
        if isinstance(module, torch.nn.Linear):
            torch.nn.init.zeros_(module.bias)
    gen = torch.Generator().manual_seed(seed)
    augment = Augment(SHIFT, ROTATE)
    opt = optimizer_of(optimizer, lr, list(ae.parameters()))
    flat = x.flatten(1)
    for _ in tqdm(range(epochs), desc="aspc pretrain", mininterval=30):
        for idx in torch.randperm(len(x), generator=gen).split(256):
            out = ae.decoder(ae.encode(augment(x[idx], gen))).flatten(1)
            loss = (out - flat[idx]).pow(2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
    ae.eval()


def aspc_ae(params: dict, data, name: str, epochs: int, seed: int) -> tuple[AutoEncoder, float]:
    """ASPC-DA's own pretraining (reused if ``<name>.pt`` exists in the work folder)."""
    ae = AutoEncoder(spec_from_params(params, "mnist", data.input_shape))
    path = Path(f"{name}.pt")
    if path.is_file():
        ae.load_state_dict(torch.load(path, weights_only=True))
        return ae, 0.0
    start = time.perf_counter()
    aspc_pretrain(ae, torch.as_tensor(data.x_train), epochs, seed)
    torch.save(ae.state_dict(), path)
    return ae, time.perf_counter() - start


def nearest(z: torch.Tensor, centres: torch.Tensor) -> tuple[np.ndarray, torch.Tensor]:
    """Each code's nearest centre and its squared distance (ASPC-DA's l_i)."""
    d2 = torch.cdist(z, centres).pow(2)
    loss, labels = d2.min(1)
    return labels.numpy(), loss


def aspc_phase(ae: AutoEncoder, x: torch.Tensor, labels: np.ndarray, centres: torch.Tensor,
               seed: int, epochs: int = 100, tol: float = 0.001) -> tuple[np.ndarray, list]:
    """ASPC-DA's training of the encoder towards fixed centres, self-paced, augmented."""
    gen = torch.Generator().manual_seed(seed)
    augment = Augment(SHIFT, ROTATE)
    opt = torch.optim.Adam([*ae.trunk.parameters(), *ae.to_z.parameters()], lr=1e-4)
    weights = torch.ones(len(x))
    history = []
    for epoch in range(epochs):
        ae.train()
        target = centres[torch.as_tensor(labels)]
        for idx in torch.randperm(len(x), generator=gen).split(256):
            z = ae.encode(augment(x[idx], gen))
            per = (z - target[idx]).pow(2).mean(1)
            loss = (weights[idx] * per).sum() / len(idx)   # Keras' sample-weighted mean
            opt.zero_grad()
            loss.backward()
            opt.step()
        ae.eval()
        with torch.no_grad():
            new, dist = nearest(batched(ae.encode, x), centres)
        changed = float(np.mean(new != labels))
        labels = new
        weights = self_paced_mask(dist, epoch / epochs).float()
        history.append({"epoch": epoch + 1, "changed": changed,
                        "selected": float(weights.mean()), "loss": float(dist.mean())})
        print(json.dumps(history[-1]), flush=True)
        if changed < tol:
            break
    return labels, history


def dec_da_phase(ae: torch.nn.Module, x: torch.Tensor, labels: np.ndarray,
                 centres: torch.Tensor, seed: int, maxiter: int = 20000, interval: int = 30,
                 tol: float = 0.001, optimizer: str = "sgd", lr: float = 0.01
                 ) -> tuple[np.ndarray, list, torch.Tensor]:
    """DEC-DA's clustering phase (Guo, Zhu, Liu & Yin 2018; FcDEC-DA of their code): DEC's
    KL(P || Q) (Xie et al. 2016, eq. 2-3) with Q of an augmented copy and P of the clean
    images, P refreshed every ``interval`` batches (30 on MNIST-test), SGD(0.01, momentum
    0.9; ConvDEC-DA's Adam) on the encoder and the centres, batches taken in order; it stops
    when fewer than 0.1 % of the labels change between refreshes."""
    gen = torch.Generator().manual_seed(seed)
    augment = Augment(SHIFT, ROTATE)
    mu = torch.nn.Parameter(centres.clone())
    opt = optimizer_of(optimizer, lr, [*ae.trunk.parameters(), *ae.to_z.parameters(), mu])
    batches = torch.arange(len(x)).split(256)
    history: list[dict] = []
    p = None
    for ite in range(maxiter):
        if ite % interval == 0:
            ae.eval()
            with torch.no_grad():
                log_q = log_student_t_assignments(batched(ae.encode, x), mu)
            p, new = target_distribution(log_q.exp()), log_q.argmax(1).numpy()
            changed = float(np.mean(new != labels))
            labels = new
            history.append({"iteration": ite, "changed": changed})
            print(json.dumps(history[-1]), flush=True)
            if ite > 0 and changed < tol:
                break
            ae.train()
        idx = batches[ite % len(batches)]
        log_qb = log_student_t_assignments(ae.encode(augment(x[idx], gen)), mu)
        loss = (p[idx] * (p[idx].clamp_min(1e-12).log() - log_qb)).sum(1).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    ae.eval()
    return labels, history, mu.detach()


def one_start(kind: str, labels: np.ndarray, ae0: AutoEncoder, data, seed: int,
              phase: str) -> dict:
    """ASPC-DA's or DEC-DA's phase from the partition ``labels`` of the training codes."""
    ae = copy.deepcopy(ae0)
    x_tr, x_te = torch.as_tensor(data.x_train), torch.as_tensor(data.x_test)
    with torch.no_grad():
        z = batched(ae.encode, x_tr)
    centres = torch.stack([z[torch.as_tensor(labels == j)].mean(0) for j in range(10)])
    start = transductive_metrics(data.y_train, labels)["train_acc"]
    t = time.perf_counter()
    torch.manual_seed(seed)
    if phase == "aspc":
        labels, history = aspc_phase(ae, x_tr, labels, centres, seed)
    else:   # DEC's argmax_j q_ij is the nearest of its trained centres too
        labels, history, centres = dec_da_phase(ae, x_tr, labels, centres, seed)
    with torch.no_grad():
        test_pred, _ = nearest(batched(ae.encode, x_te), centres)
    out = {"phase": phase, "start": kind, "start_train_acc": start, "epochs": len(history),
           "seconds": time.perf_counter() - t,
           **transductive_metrics(data.y_train, labels),
           **{k: clustering_metrics(data.y_test, test_pred)[k] for k in ("acc", "nmi")},
           "train_sizes": np.bincount(labels, minlength=10).tolist(), "history": history,
           "labels": labels}
    return out


def as_checkpoint(ae: AutoEncoder, path: Path) -> Path:
    """``ae`` saved as the pipeline's ``ae`` checkpoint (what a mixture model copies)."""
    torch.save({"method": "ae", "state_dict": ae.state_dict()}, path)
    return path


def then_train(method: str, labels: np.ndarray, checkpoint: Path, data, params: dict,
               augment: bool = False) -> dict:
    """``method`` of vaemix's protocol (warm-up and anchor) started from ``labels`` in place
    of the N2D partition, on the autoencoder ``checkpoint``."""
    start = Path(f"start_{method}.npz")
    np.savez(start, pred_train=labels)
    init = {"ae_checkpoint": checkpoint,
            "start": {"umap": params["baseline"]["umap_gmm"], "file": start}}
    params = copy.deepcopy(params)   # the file as the start, not a cut against spectral
    params["train"][method]["init_clusters"] = "umap"
    if augment:   # the warm-up and the anchor on moved copies (vaemix.augment)
        params["train"][method].update(augment_shift=SHIFT, augment_rotate=ROTATE)
    m = train_and_export(method, "mnist", data, params, "train", init=init,
                         name=f"{method}_from_phase")
    keys = ("start_acc", "acc", "train_acc", "n_clusters_used", "train_seconds", "collapsed")
    return {k: m.get(k) for k in keys}


def add_common_args(ap: argparse.ArgumentParser, name: str) -> None:
    """The options every phase benchmark shares: the raw MNIST folder, a scratch folder (the
    prepared split and autoencoders, reused), the seed, the --then models, threads, name."""
    ap.add_argument("--raw", type=Path, required=True)
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--then", nargs="*", default=[], metavar="METHOD",
                    help="mixture models of vaemix's protocol started from each phase's end")
    ap.add_argument("--epoch-scale", type=float, default=1.0,
                    help="budget.epoch_scale of the --then models (0.2: the quick profile's)")
    ap.add_argument("--then-augment", action="store_true",
                    help="the --then models' warm-up and anchor see moved copies")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--name", default=name)


def parse_common(ap: argparse.ArgumentParser, name: str) -> tuple[argparse.Namespace, Path]:
    """Parse ``ap`` with the common options added: the arguments (torch's threads set, the work
    folder made) and the benchmark's JSON file under reports/benchmarks."""
    add_common_args(ap, name)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    args.work.mkdir(parents=True, exist_ok=True)
    return args, ROOT / "reports" / "benchmarks" / f"{args.name}.json"


def record_phase(result: dict, out: Path, row: dict, pred: np.ndarray, checkpoint: Path | None,
                 then: list[str], data, params: dict, augment: bool = False) -> None:
    """Add a phase's ``row`` to ``result`` (rewritten to ``out``), then train the ``then``
    models of vaemix's protocol from its partition ``pred`` on the AE ``checkpoint`` (their
    warm-up and anchor on moved copies if ``augment``)."""
    result["rows"].append(row)
    print(json.dumps({k: v for k, v in row.items() if k != "history"}), flush=True)
    out.write_text(json.dumps(result, indent=1))
    for method in then:
        result["then"].append({"start": row["start"], "method": method,
                               **then_train(method, pred, checkpoint, data, params, augment)})
        print(json.dumps(result["then"][-1]), flush=True)
        out.write_text(json.dumps(result, indent=1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ae-epochs", type=int, default=500)
    ap.add_argument("--ae", default="vaemix", choices=["vaemix", "aspc"])
    ap.add_argument("--phase", nargs="+", default=["aspc"], choices=["aspc", "dec"])
    ap.add_argument("--start", nargs="+", default=["kmeans"], choices=["kmeans", "n2d"])
    args, out = parse_common(ap, "aspc_da")
    params = bench_params(args.raw, args.seed, args.ae_epochs, args.epoch_scale)
    os.chdir(args.work)
    prepare_dataset("mnist", params, Path("data/prepared/mnist"))
    data = load_prepared("mnist")
    torch.manual_seed(args.seed)
    name = f"ae_aug{args.ae_epochs}_s{args.seed}"
    if args.ae == "aspc":
        ae, seconds = aspc_ae(params, data, f"aspc_{name}", args.ae_epochs, args.seed)
        with torch.no_grad():
            lat = {"z_train": batched(ae.encode, torch.as_tensor(data.x_train)).numpy(),
                   "z_test": batched(ae.encode, torch.as_tensor(data.x_test)).numpy(),
                   "y_train": data.y_train, "y_test": data.y_test}
    else:
        ae, seconds = pretrained_ae(params, data, name)
        lat = load_latents(ARTIFACTS / "mnist" / name / "latents.npz")
    result = {"args": {k: str(v) for k, v in vars(args).items()}, "ae_seconds": seconds,
              "cpu": os.uname().machine, "rows": [], "then": []}
    n2d = fit_baseline("umap_gmm", lat["z_train"], 10, params["baseline"]["umap_gmm"],
                       args.seed)
    result["n2d"] = {**transductive_metrics(lat["y_train"], n2d.train_labels(lat["z_train"])),
                     "acc": clustering_metrics(lat["y_test"], n2d.predict(lat["z_test"]))["acc"]}
    print(json.dumps(result["n2d"]), flush=True)
    starts = {"n2d": n2d.train_labels(lat["z_train"]),
              "kmeans": KMeans(10, n_init=20, random_state=args.seed).fit_predict(lat["z_train"])}
    ends = {}
    for phase in args.phase:
        for kind in args.start:
            row = one_start(kind, starts[kind], ae, data, args.seed, phase)
            ends[(phase, kind)] = row.pop("labels")
            result["rows"].append(row)
            print(json.dumps({k: v for k, v in row.items() if k != "history"}), flush=True)
            out.write_text(json.dumps(result, indent=1))
    checkpoint = (ARTIFACTS / "mnist" / name / "model.pt" if args.ae == "vaemix"
                  else as_checkpoint(ae, Path(f"aspc_{name}_ckpt.pt")))
    for (phase, kind), labels in ends.items():
        for method in args.then:
            result["then"].append({"phase": phase, "start": kind, "method": method,
                                   **then_train(method, labels, checkpoint, data, params,
                                               args.then_augment)})
            print(json.dumps(result["then"][-1]), flush=True)
            out.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
