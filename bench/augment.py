"""Label-free augmentation on the MNIST dev split (reports/benchmarks/augment.md): the
autoencoder pretrained with and without random shifts and rotations, the N2D baseline on
each, and a mixture model of vaemix's protocol started from each, its warm-up and anchor
with and without augmented copies and the self-paced choice (vaemix.augment).

Run it in a folder whose data/prepared/mnist holds the dev split (e.g. a copy of a
quick-profile checkout's); it writes artifacts/ and reports/metrics/ there, one variant
after another:

    OMP_NUM_THREADS=1 NUMBA_NUM_THREADS=1 python bench/augment.py --method vade \
        --epoch-scale 0.2 --ae-epochs 100 --variants plain aug aug_sp [--out FILE.json]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

from vaemix.baselines import run_baseline
from vaemix.config import validate
from vaemix.data import load_prepared
from vaemix.profiles import apply, load_profile
from vaemix.runs import train_and_export

ROOT = Path(__file__).resolve().parents[1]
SHIFT, ROTATE = 0.1, 10.0   # ASPC-DA / DEC-DA: 10 % of the side, 10 degrees
# variant -> (the AE's augmentation, the clustering phase's keys)
VARIANTS: dict[str, tuple[bool, dict[str, Any]]] = {
    "plain": (False, {}),
    "aug_ae": (True, {}),
    "aug": (True, {"augment_shift": SHIFT, "augment_rotate": ROTATE}),
    "aug_sp": (True, {"augment_shift": SHIFT, "augment_rotate": ROTATE, "self_paced": True}),
    # ASPC-DA's whole clustering phase: dynamic pseudo-labels, confident first; on the
    # plain AE (the clustering phase's own effect) and on the augmented one
    "sp_rl": (False, {"augment_shift": SHIFT, "augment_rotate": ROTATE, "self_paced": True,
                      "relabel": True}),
    "aug_sp_rl": (True, {"augment_shift": SHIFT, "augment_rotate": ROTATE, "self_paced": True,
                         "relabel": True}),
}


def bench_params(epoch_scale: float, ae_epochs: int, seed: int = 0) -> dict[str, Any]:
    """The repository's params.yaml with the quick profile, at ``epoch_scale``, one seed."""
    import yaml

    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params = apply(params, load_profile("quick", ROOT / "profiles"), "profiles/quick.yaml")
    params["budget"]["epoch_scale"] = epoch_scale
    params["pretrain"]["ae"]["epochs"] = round(ae_epochs / epoch_scale)
    params["datasets"] = ["mnist"]
    params["seeds"] = [seed]
    return validate(params)


def one_variant(params: dict, method: str, variant: str, data: Any) -> dict[str, Any]:
    aug_ae, clustering = VARIANTS[variant]
    ae = "ae_aug" if aug_ae else "ae_plain"
    out: dict[str, Any] = {"variant": variant, "method": method}
    root = Path("artifacts/mnist")
    if not (root / ae / "model.pt").is_file():
        p = json.loads(json.dumps(params))
        if aug_ae:
            p["pretrain"]["ae"].update(augment_shift=SHIFT, augment_rotate=ROTATE)
        t = time.perf_counter()
        train_and_export("ae", "mnist", data, p, "pretrain", name=ae)
        out["pretrain_seconds"] = time.perf_counter() - t
    base = run_baseline(params, "mnist", ae, "umap_gmm")
    out["n2d"] = {k: base.get(k) for k in ("acc", "train_acc", "nmi")}
    p = json.loads(json.dumps(params))
    p["train"].setdefault(method, {}).update(clustering)
    init = {"ae_checkpoint": root / ae / "model.pt",
            "start": {"umap": params["baseline"].get("umap_gmm"),
                      "file": root / f"{ae}+umap_gmm" / "pred.npz"}}
    m = train_and_export(method, "mnist", data, p, "train", init=init,
                         name=f"{method}_{variant}")
    keys = ("acc", "train_acc", "nmi", "start_acc", "n_clusters_used", "train_seconds")
    out["model"] = {k: m.get(k) for k in keys}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--method", default="vade")
    ap.add_argument("--epoch-scale", type=float, default=0.2)
    ap.add_argument("--ae-epochs", type=int, default=100)
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    ap.add_argument("--seed", type=int, default=0, help="the one seed (AE, start, model)")
    ap.add_argument("--out", default="augment.json")
    args = ap.parse_args()
    params = bench_params(args.epoch_scale, args.ae_epochs, args.seed)
    data = load_prepared("mnist")
    rows = []
    for variant in args.variants:
        rows.append(one_variant(params, args.method, variant, data))
        print(json.dumps(rows[-1]), flush=True)
        Path(args.out).write_text(json.dumps({"threads": os.environ.get("OMP_NUM_THREADS"),
                                              "args": vars(args), "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
