"""Clustering quality of the methods on the MNIST dev split and spiral, over seeds.

Runs the same library calls as the DVC stages (prepare -> pretrain ae and ae_da ->
baselines -> start -> train), each seed in its own scratch directory, and writes a table of
mean ± std of ACC, NMI, ARI, test_recon_ll and minutes per (dataset, method) to
``reports/benchmarks/quality.md`` (and the raw numbers to ``quality.json``).

    python bench/quality.py --raw data/raw --seeds 0 1 2 --epoch-scale 1.0
    python bench/quality.py --protocol paper --methods vade dmvae ... --name quality_paper
    python bench/quality.py --profile quick --seeds 0 1 2 --methods gmvae_dpgmm

``--profile`` starts from ``profiles/<name>.yaml``'s params, as ``scripts/repro.sh`` does
(its epoch scale too, unless ``--epoch-scale`` is given).

``--protocol paper`` trains each method as its paper does (vaemix.protocols; rows
``<method>_paper``). train_acc / train_nmi are the transductive scores, on the 8000 images
the clustering was fitted on.

``--raw`` must hold the MNIST files in the torchvision layout, e.g. the dev split made by
``python scripts/make_mnist_split.py ../shared/data/mnist-t10k data/raw``.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch
import yaml

from vaemix import profiles
from vaemix.baselines import evaluate_baseline, load_latents, run_baseline
from vaemix.config import validate
from vaemix.data import load_prepared, prepare_dataset
from vaemix.errors import VaemixError
from vaemix.io import write_json, write_text
from vaemix.models import model_class
from vaemix.protocols import Cited, split_run
from vaemix.regress import describe, machine
from vaemix.runs import ARTIFACTS, train_and_export
from vaemix.start import make_start, start_init

ROOT = Path(__file__).resolve().parents[1]
KEYS = ("start_acc", "acc", "nmi", "train_acc", "train_nmi", "ari", "test_recon_ll",
        "seconds_per_epoch", "minutes")
# trained methods whose latents also get the baselines (Nagpal et al. 2019, Table 1)
BASELINE_ENCODERS = ("gmvae",)


def run_seed(
    params: dict, datasets: list[str], methods: list[str], raw: Path, seed: int,
    protocol: str = "vaemix",
) -> list[dict]:
    rows = []
    params = copy.deepcopy(params)
    params["seed"] = seed
    params["seeds"] = [seed]  # one training seed per run: this script loops over the seeds
    params["data"]["mnist"]["root"] = str(raw.resolve())
    params["data"]["mnist"]["download"] = False
    validate(params)
    with tempfile.TemporaryDirectory(prefix=f"vaemix-bench-{seed}-") as scratch:
        cwd = os.getcwd()
        os.chdir(scratch)
        try:
            for ds in datasets:
                prepare_dataset(ds, params, Path("data/prepared") / ds)
                data = load_prepared(ds)
                # the paper protocol starts from ae alone; vaemix's from start@ (vaemix.start)
                for enc in ("ae",) if protocol == "paper" else ("ae", "ae_da"):
                    rows += pretrain_rows(params, ds, data, enc, seed)
                init = {"ae_checkpoint": ARTIFACTS / ds / "ae" / "model.pt"}
                if protocol != "paper":
                    start = time.perf_counter()
                    m = make_start(params, ds, data)
                    rows.append(row(ds, "start", seed, m, (time.perf_counter() - start) / 60))
                    print(json.dumps(rows[-1]), flush=True)
                    init = start_init(params, ds, data.input_shape)
                k = params["model"][ds]["n_clusters"]
                for method in methods:
                    start = time.perf_counter()
                    m = train_and_export(method, ds, data, params, "train", init=init,
                                         protocol=protocol)
                    name = method + ("_paper" if protocol == "paper" else "")
                    minutes = (time.perf_counter() - start) / 60
                    rows.append(row(ds, name, seed, m, minutes))
                    print(json.dumps(rows[-1]), flush=True)
                    if method in BASELINE_ENCODERS:
                        latents = load_latents(ARTIFACTS / ds / name / "latents.npz")
                        for bl in ("kmeans", "gmm", "dpgmm"):
                            bm, _ = evaluate_baseline(bl, latents, k, params["baseline"][bl],
                                                      seed)
                            rows.append({"dataset": ds, "method": f"{name}+{bl}",
                                         "seed": seed, "n_clusters_used": bm["n_clusters_used"],
                                         "minutes": minutes + bm["train_seconds"] / 60,
                                         **{key: bm.get(key) for key in
                                            ("acc", "nmi", "ari", "n_components_effective")}})
        finally:
            os.chdir(cwd)
    return rows


def row(ds: str, name: str, seed: int, m: dict, minutes: float) -> dict:
    """One table row of a run's (one seed's) metrics."""
    return {"dataset": ds, "method": name, "seed": seed, "minutes": minutes,
            **{key: m.get(key) for key in (
                "start_acc", "acc", "nmi", "ari", "train_acc", "train_nmi",
                "train_n_clusters_used", "test_recon_ll", "test_recon_mse", "n_clusters_used",
                "seconds_per_epoch", "n_components_effective", "collapsed")}}


def pretrain_rows(params: dict, ds: str, data, enc: str, seed: int) -> list[dict]:
    """Pretrain the encoder ``enc`` and fit K-means, GMM and N2D on its codes, as the
    pretrain@ and baselines@ stages do; their rows."""
    start = time.perf_counter()
    m = train_and_export(enc, ds, data, params, "pretrain")
    minutes = (time.perf_counter() - start) / 60
    rows = [row(ds, enc, seed, m, minutes)]
    for bl in ("kmeans", "gmm", "umap_gmm"):
        start = time.perf_counter()
        bm = run_baseline(params, ds, enc, bl)
        rows.append(row(ds, f"{enc}+{bl}", seed, bm,
                        minutes + (time.perf_counter() - start) / 60))
        print(json.dumps(rows[-1]), flush=True)
    return rows


def add_run_args(ap: argparse.ArgumentParser, name: str) -> None:
    """The options every bench script shares: threads, output folder, file stem."""
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=ROOT / "reports" / "benchmarks")
    ap.add_argument("--name", default=name, help="file stem of the outputs in --out")


def set_key(params: dict, key: str, value: object) -> None:
    """Set the dotted ``key`` of params; a missing level (e.g. per_dataset.mnist) is created."""
    node = params
    *parents, last = key.split(".")
    for part in parents:
        node = node.setdefault(part, {})
    node[last] = value


def parse_overrides(items: list[str]) -> dict[str, object]:
    """``--set KEY=YAML`` items, e.g. ``train.vade.epochs=50``, as {dotted key: value}."""
    pairs = (item.split("=", 1) for item in items)
    return {key: yaml.safe_load(value) for key, value in pairs}


def apply_overrides(params: dict, items: list[str]) -> None:
    """Apply ``--set KEY=YAML`` items to params (see :func:`set_key`)."""
    for key, value in parse_overrides(items).items():
        set_key(params, key, value)


def override_paper(items: list[str]) -> None:
    """``--paper METHOD.KEY=YAML`` items: replace that setting of the method's paper recipe
    (for this process only), refusing a key the recipe does not have."""
    for item in items:
        target, _, value = item.partition("=")
        method, _, key = target.partition(".")
        recipe = model_class(method).paper
        if recipe is None or key not in recipe.settings:
            raise SystemExit(f"error: --paper {target}: not a setting of {method}'s recipe")
        recipe.settings[key] = Cited(yaml.safe_load(value), "bench/quality.py --paper")


def bench_params(threads: int) -> dict:
    """params.yaml without the latent sweep (a pipeline matter), torch on ``threads``."""
    torch.set_num_threads(threads)
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["latent_sweep"]["latent_dims"] = []
    return params


def fmt(values: list[float]) -> str:
    values = [v for v in values if v is not None]
    if not values:
        return ""
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f}"


def table(rows: list[dict]) -> str:
    lines = ["| dataset | method | " + " | ".join(KEYS) + " | clusters used | effective K |",
             "|---|---|" + "---:|" * (len(KEYS) + 2)]
    seen = []
    for r in rows:
        if (r["dataset"], r["method"]) not in seen:
            seen.append((r["dataset"], r["method"]))
    for ds, method in seen:
        group = [r for r in rows if r["dataset"] == ds and r["method"] == method]
        used = sorted({r.get("n_clusters_used") for r in group if r.get("n_clusters_used")})
        cells = [fmt([r.get(k) for r in group]) for k in KEYS]
        k_eff = sorted({r["n_components_effective"] for r in group
                        if r.get("n_components_effective") is not None})
        lines.append(f"| {ds} | {method} | " + " | ".join(cells)
                     + f" | {used or ''} | {k_eff or ''} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--raw", type=Path, default=ROOT / "data" / "raw")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--datasets", nargs="+", default=["mnist", "spiral"])
    ap.add_argument("--methods", nargs="+", default=["vade", "dmvae", "movae"])
    ap.add_argument("--profile", metavar="NAME",
                    help="start from profiles/NAME.yaml's params (e.g. quick), as repro.sh does")
    ap.add_argument("--epoch-scale", type=float, default=None,
                    help="budget.epoch_scale (default: the profile's, else 1.0)")
    ap.add_argument("--protocol", choices=("vaemix", "paper"), default="vaemix")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=ROOT / "reports" / "benchmarks")
    ap.add_argument("--name", default="quality",
                    help="file stem of the table and raw numbers in --out")
    ap.add_argument("--set", nargs="+", action="extend", default=[], metavar="KEY=YAML",
                    help="extra params overrides, e.g. train.vade.epochs=50")
    ap.add_argument("--paper", nargs="+", action="extend", default=[],
                    metavar="METHOD.KEY=YAML",
                    help="replace a setting of a paper recipe (--protocol paper), e.g. "
                         "concrete_gmvae.kl_anneal=exp_printed, to test another reading")
    ap.add_argument("--merge", nargs="+", type=Path, metavar="JSON",
                    help="only write the table of earlier runs' raw files (e.g. seeds run as "
                         "parallel processes), concatenated, under --name")
    args = ap.parse_args()
    if args.merge:
        runs = [json.loads(p.read_text()) for p in args.merge]
        rows = [r for run in runs for r in run["rows"]]
        commands = "  \n".join(f"`{run['command']}`" for run in runs)
        write_text(args.out / f"{args.name}.md",
                   "# Clustering quality (test split, mean ± std over seeds)\n\n"
                   f"Merged from runs made in parallel, one per seed:  \n{commands}\n\n"
                   + table(rows) + "\n")
        write_json(args.out / f"{args.name}.json", {"command": [r["command"] for r in runs],
                                                    "rows": rows})
        print(table(rows))
        return
    torch.set_num_threads(args.threads)
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    if args.profile:
        where = ROOT / "profiles" / f"{args.profile}.yaml"
        try:
            params = profiles.apply(params, profiles.load_profile(args.profile, where.parent),
                                    str(where))
        except VaemixError as err:
            raise SystemExit(f"error: {err}") from None
    if args.epoch_scale is None:
        args.epoch_scale = params["budget"]["epoch_scale"] if args.profile else 1.0
    params["budget"]["epoch_scale"] = args.epoch_scale
    params["methods"] = list(args.methods)
    # only encoders that this run trains can feed the baselines (config.validate checks it)
    params["baseline_encoders"] = [e for e in params["baseline_encoders"]
                                   if e in params["encoders"] or split_run(e)[0] in args.methods]
    params["paper_starts"] = [m for m in params["paper_starts"] if m in args.methods]
    params["datasets"] = list(args.datasets)
    params["latent_sweep"]["latent_dims"] = []  # the sweep is the pipeline's, not this table's
    apply_overrides(params, args.set)
    override_paper(args.paper)
    start = time.perf_counter()
    rows = []
    for seed in args.seeds:
        rows += run_seed(params, args.datasets, args.methods, args.raw, seed, args.protocol)
    total = (time.perf_counter() - start) / 60
    command = "python bench/quality.py " + " ".join(
        ([f"--profile {args.profile}"] if args.profile else [])
        + [f"--seeds {' '.join(map(str, args.seeds))}", f"--epoch-scale {args.epoch_scale}",
         f"--datasets {' '.join(args.datasets)}", f"--methods {' '.join(args.methods)}",
         f"--protocol {args.protocol}"]
        + [f"--set {s}" for s in args.set] + [f"--paper {s}" for s in args.paper]
        + [f"--name {args.name}"])
    header = (
        "# Clustering quality (test split, mean ± std over seeds)\n\n"
        f"Command: `{command}`  \nMachine: {describe(machine())}, "
        f"{args.threads} threads, torch {torch.__version__}; total {total:.1f} min.  \n"
        "MNIST: the dev split of `../shared/data/mnist-t10k` (first 8000 train, last 2000 "
        "test). minutes = wall time of the method's training (baselines: + the AE's).\n\n"
    )
    args.out.mkdir(parents=True, exist_ok=True)
    write_text(args.out / f"{args.name}.md", header + table(rows) + "\n")
    write_json(args.out / f"{args.name}.json", {"command": command, "rows": rows})
    print(table(rows))


if __name__ == "__main__":
    main()
