"""Training throughput of every method against the bare autoencoder on the same networks.

For each method, the samples per second of a training epoch (the real loop,
``vaemix.training.fit``: loss, backward, Adam step, finiteness checks and the method's epoch
hook) on the MNIST dev split, with the networks and batch sizes of ``params.yaml`` (the
quick run changes only epochs and data size). The floor is the bare autoencoder (``ae``)
on the same networks: no mixture model can train faster per sample. Targets (issue 7):
``vade``, ``dmvae``, ``concrete_gmvae`` within 1.25x the autoencoder's time per sample;
``movae`` and ``gmvae``, which run K passes by design, within 1.25x of K autoencoder passes.

A torch profiler pass over a few steps of each method records where the time goes.

    python bench/throughput.py --raw data/raw --max-train 4000 --epochs 3

writes ``reports/benchmarks/throughput.md`` and ``throughput.json``.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch
import yaml
from torch.profiler import ProfilerActivity, profile

from vaemix.config import training_settings, validate
from vaemix.data import load_prepared, prepare_dataset
from vaemix.io import write_json, write_text
from vaemix.models import Model, build_model, spec_from_params
from vaemix.training import TrainConfig, fit, seed_everything, to_tensor

ROOT = Path(__file__).resolve().parents[1]
METHODS = ("vade", "dmvae", "movae", "gmvae", "concrete_gmvae", "gmvae_dpgmm")
K_PASSES = {"movae", "gmvae"}  # methods that pass every example through K networks
TARGET = 1.25


def load_mnist(params: dict, raw: Path, max_train: int | None) -> torch.Tensor:
    """The prepared MNIST training images of the dev split in ``raw``, on the CPU."""
    params = yaml.safe_load(yaml.safe_dump(params))
    params["data"]["mnist"].update(root=str(raw.resolve()), download=False)
    validate(params)
    with tempfile.TemporaryDirectory(prefix="vaemix-speed-") as scratch:
        cwd = os.getcwd()
        os.chdir(scratch)
        try:
            prepare_dataset("mnist", params, Path("data/prepared/mnist"))
            x = load_prepared("mnist").x_train[:max_train]
        finally:
            os.chdir(cwd)
    return to_tensor(x, torch.device("cpu"))


def build(method: str, params: dict, x: torch.Tensor, k: int | None = None,
          dataset: str = "mnist") -> tuple[Model, TrainConfig]:
    """The model of ``method`` on the networks of ``dataset``, from a random start
    (``init: none``: the start does not change the cost of a step), and its config."""
    params = yaml.safe_load(yaml.safe_dump(params))
    if k is not None:
        params["model"][dataset]["n_clusters"] = k
    section = "pretrain" if method in ("ae", "vae") else "train"
    settings = training_settings(params, section, method, dataset)
    if section == "train":
        settings["init"] = "none"
    spec = spec_from_params(params, dataset, tuple(x.shape[1:]), **settings)
    model = build_model(method, spec)
    if hasattr(model, "initialise"):  # e.g. the DP-GMM of gmvae_dpgmm keeps its refit data
        model.initialise(x, seed=0)
    return model, TrainConfig.from_settings(settings, 1, seed=0)


def timed_epochs(method: str, params: dict, x: torch.Tensor, epochs: int,
                 k: int | None = None, dataset: str = "mnist") -> float:
    """Median seconds per training epoch after a warm-up epoch (each a one-epoch ``fit``, so
    epoch hooks such as a DP-GMM refit with ``refit_every: 1`` run every epoch)."""
    seed_everything(0)
    model, config = build(method, params, x, k, dataset)
    opt = torch.optim.Adam(model.parameters(), lr=config.lr)
    times = []
    for _ in range(epochs):
        start = time.perf_counter()
        fit(model, x, config, desc=f"{method}" + (f" K={k}" if k else ""), optimizer=opt)
        times.append(time.perf_counter() - start)
    return statistics.median(times[1:])


def macs_per_example(model: Model, x: torch.Tensor, batch: int = 64) -> float:
    """Multiply-accumulates per example of one training loss (forward only), counted by hooks
    on every linear and convolutional layer: the size of the networks a step really runs,
    K passes included."""
    total = 0

    def count(module: torch.nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        nonlocal total
        if isinstance(module, torch.nn.Linear):
            total += inputs[0].numel() // module.in_features * module.weight.numel()
        elif isinstance(module, torch.nn.Conv2d):  # per output value: in/groups × kernel
            total += output.numel() * module.weight[0].numel()
        elif isinstance(module, torch.nn.ConvTranspose2d):  # per input value: out × kernel
            total += inputs[0].numel() * module.weight[0].numel()

    layers = (torch.nn.Linear, torch.nn.Conv2d, torch.nn.ConvTranspose2d)
    hooks = [m.register_forward_hook(count) for m in model.modules() if isinstance(m, layers)]
    try:
        with torch.no_grad():
            model.loss(x[:batch])
    finally:
        for h in hooks:
            h.remove()
    return total / batch


def profile_steps(method: str, params: dict, x: torch.Tensor, steps: int = 8) -> list[dict]:
    """The operators that take the most self CPU time over ``steps`` training steps."""
    seed_everything(0)
    model, config = build(method, params, x)
    opt = torch.optim.Adam(model.parameters(), lr=config.lr)
    model.train()
    model.start_epoch(0, 1)

    def step(i: int) -> None:
        batch = x[(i * config.batch_size) % len(x):][: config.batch_size]
        loss = model.loss(batch)["loss"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    step(0)  # warm-up
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for i in range(1, steps + 1):
            step(i)
    events = [e for e in prof.key_averages() if e.self_cpu_time_total > 0]
    total = sum(e.self_cpu_time_total for e in events)
    events.sort(key=lambda e: e.self_cpu_time_total, reverse=True)
    return [{"op": e.key, "share": e.self_cpu_time_total / total} for e in events[:5]]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--raw", type=Path, default=ROOT / "data" / "raw")
    ap.add_argument("--methods", nargs="+", default=list(METHODS))
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--max-train", type=int, default=4000,
                    help="time on the first N training images (per-sample cost does not "
                         "depend on N)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=ROOT / "reports" / "benchmarks")
    args = ap.parse_args()
    if args.epochs < 2:
        ap.error("--epochs must be at least 2 (the first is a warm-up)")
    torch.set_num_threads(args.threads)
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    x = load_mnist(params, args.raw, args.max_train)
    k = int(params["model"]["mnist"]["n_clusters"])

    ae = timed_epochs("ae", params, x, args.epochs)
    ae_macs = macs_per_example(build("ae", params, x)[0], x)
    rows = [{"method": "ae", "seconds_per_epoch": ae, "samples_per_second": len(x) / ae,
             "passes": 1, "ratio": 1.0, "macs": ae_macs, "ratio_per_mac": 1.0,
             "profile": profile_steps("ae", params, x)}]
    for method in args.methods:
        s = timed_epochs(method, params, x, args.epochs)
        passes = k if method in K_PASSES else 1
        macs = macs_per_example(build(method, params, x)[0], x)
        rows.append({"method": method, "seconds_per_epoch": s,
                     "samples_per_second": len(x) / s, "passes": passes,
                     "ratio": s / (passes * ae), "macs": macs,
                     "ratio_per_mac": (s / macs) / (ae / ae_macs),
                     "profile": profile_steps(method, params, x)})
        print({key: v for key, v in rows[-1].items() if key != "profile"}, flush=True)

    meta = {
        "command": "python bench/throughput.py --raw data/raw --methods "
                   + " ".join(args.methods) + f" --epochs {args.epochs} --max-train "
                   f"{args.max_train} --threads {args.threads}",
        "n_train": int(len(x)), "torch_threads": torch.get_num_threads(),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs",
        "torch": torch.__version__, "date": time.strftime("%Y-%m-%d"),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    write_json(args.out / "throughput.json", {"meta": meta, "rows": rows})
    write_text(args.out / "throughput.md", markdown(meta, rows, k))
    print(markdown(meta, rows, k))


def markdown(meta: dict, rows: list[dict], k: int) -> str:
    lines = [
        "# Training throughput against the bare autoencoder",
        "",
        f"MNIST dev split, {meta['n_train']} training images, the `params.yaml` MNIST "
        f"networks and batch sizes, K = {k}; CPU ({meta['machine']}, "
        f"{meta['torch_threads']} torch thread(s), torch {meta['torch']}); median epoch "
        "after a warm-up epoch, through the real training loop. ratio = time per sample / "
        "(passes × the autoencoder's), the issue's measure; target ≤ 1.25. MMACs = million "
        "multiply-accumulates per example in the forward pass of one training loss, counted "
        "on every linear and convolutional layer (the networks a step really runs); "
        "ratio per MAC = (time per sample / MACs) / the autoencoder's: the cost of the "
        "mixture machinery (sampling, KLs, mixture log-densities, epoch hooks) beyond the "
        "size of the networks.",
        "",
        "| method | s/epoch | samples/s | passes | ratio | target met | MMACs | ratio per MAC "
        "| top ops (self CPU) |",
        "|---|---:|---:|---:|---:|---|---:|---:|---|",
    ]
    for r in rows:
        ops = ", ".join(f"{p['op']} {100 * p['share']:.0f}%" for p in r["profile"][:3])
        met = "—" if r["method"] == "ae" else ("yes" if r["ratio"] <= TARGET else "no")
        lines.append(f"| {r['method']} | {r['seconds_per_epoch']:.2f} | "
                     f"{r['samples_per_second']:.0f} | {r['passes']} | {r['ratio']:.2f} | "
                     f"{met} | {r['macs'] / 1e6:.2f} | {r['ratio_per_mac']:.2f} | {ops} |")
    lines += ["", f"Command: `{meta['command']}` ({meta['date']})."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
