"""A probe for a label-free guard on vaemix's start (issue 31). In a work folder of
bench/conv_dec_da.py (its CAE and its ``start_cae`` partition from K-means), run the same start
phase from N2D, and score the partitions by their normalised cut of UMAP's graph of the CAE's
codes (Shi & Malik 2000; vaemix.models.init.normalized_cut, as ``umap_or_spectral`` chooses).

    python bench/start_guard_probe.py --raw /tmp/raw --work /tmp/convdec2 --seed 2
"""
import argparse
import copy
import json
import os
from pathlib import Path

import numpy as np
import torch
from aspc_da import ROOT, bench_params
from conv_dec_da import pipeline_phase, pretrained

from vaemix.data import load_prepared
from vaemix.metrics import transductive_metrics
from vaemix.models.init import normalized_cut, umap_mixture
from vaemix.training import batched
from vaemix.umap_gmm import umap_graph


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--raw", type=Path, required=True)
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(2)
    params = bench_params(args.raw, args.seed, 500, 0.2)
    cae_path = (args.work / f"cae500_s{args.seed}.pt").resolve()
    os.chdir(args.work)
    data = load_prepared("mnist")
    cae, _ = pretrained(params, data, 500, args.seed, cae_path)
    with torch.no_grad():
        z = batched(cae.encode, torch.as_tensor(data.x_train)).numpy()
    umap = params["baseline"]["umap_gmm"]
    from_n2d = copy.deepcopy(params)
    from_n2d["start"]["dec"]["per_dataset"]["mnist"]["init_clusters"] = "umap"
    row, pred_n2d = pipeline_phase(from_n2d, data, cae_path, name="start_cae_n2d")
    parts = {"cae+umap_gmm": umap_mixture(z, 10, args.seed, {"umap": umap}).labels,
             "start_kmeans": np.load("artifacts/mnist/start_cae/pred.npz")["pred_train"],
             "start_n2d": pred_n2d}
    graph = umap_graph(z, umap["n_neighbors"], args.seed)
    out = {"phase_from_n2d": {k: row[k] for k in ("train_acc", "acc")},
           **{k: {"ncut": normalized_cut(graph, v), **transductive_metrics(data.y_train, v),
                  "sizes": np.bincount(v, minlength=10).tolist()} for k, v in parts.items()}}
    print(json.dumps(out, indent=1))
    (ROOT / "reports" / "benchmarks" / f"start_guard_probe_s{args.seed}.json").write_text(
        json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
