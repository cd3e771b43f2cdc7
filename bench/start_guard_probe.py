"""A probe for a label-free guard on vaemix's start (issue 31): on a work folder of
bench/conv_dec_da.py (its CAE and its `start_cae` partition), run the start phase again from N2D
instead of K-means, and score every partition by its normalised cut of UMAP's graph of the CAE's
codes (Shi & Malik 2000; vaemix.models.init.normalized_cut).

    python bench/start_guard_probe.py /tmp/convdec2 2 1   # work folder, seed, 1 = run the phase
"""
import copy
import json
import os
import sys
from pathlib import Path

import numpy as np
import torch
from aspc_da import bench_params
from conv_dec_da import pretrained

from vaemix.data import load_prepared
from vaemix.metrics import transductive_metrics
from vaemix.models.init import normalized_cut, umap_mixture
from vaemix.runs import train_and_export
from vaemix.training import batched
from vaemix.umap_gmm import umap_graph

OUT = Path(__file__).resolve().parents[1] / "reports" / "benchmarks"

work, seed, run_n2d = Path(sys.argv[1]).resolve(), int(sys.argv[2]), sys.argv[3] == "1"
torch.set_num_threads(2)
params = bench_params(Path(os.environ.get("RAW", "/tmp/raw")), seed, 500, 0.2)
os.chdir(work)
data = load_prepared("mnist")
cae, _ = pretrained(params, data, 500, seed, (work / f"cae500_s{seed}.pt").resolve())
with torch.no_grad():
    z = batched(cae.encode, torch.as_tensor(data.x_train)).numpy()
graph = umap_graph(z, 20, seed)
start = {"umap": params["baseline"]["umap_gmm"]}
parts = {"cae+umap_gmm": umap_mixture(z, 10, seed, start).labels,
         "start_kmeans": np.load("artifacts/mnist/start_cae/pred.npz")["pred_train"]}
if run_n2d:
    p = copy.deepcopy(params)
    p["start"]["dec"]["epochs"] = round(p["start"]["dec"]["epochs"] / p["budget"]["epoch_scale"])
    p["start"]["dec"]["per_dataset"]["mnist"]["init_clusters"] = "umap"
    m = train_and_export("dec", "mnist", data, p, "start", name="start_cae_n2d",
                         init={"ae_checkpoint": (work / f"cae500_s{seed}.pt").resolve(),
                               "start": start}, overrides={"net": "cae"})
    print("n2d-started phase:", {k: m[k] for k in ("train_acc", "acc")}, flush=True)
    (OUT / f"start_guard_probe_phase_n2d_s{seed}.json").write_text(json.dumps(
        {k: m[k] for k in ("train_acc", "acc")}))
    parts["start_n2d"] = np.load("artifacts/mnist/start_cae_n2d/pred.npz")["pred_train"]
out = {k: {"ncut": normalized_cut(graph, v), **transductive_metrics(data.y_train, v),
           "sizes": np.bincount(v, minlength=10).tolist()} for k, v in parts.items()}
print(json.dumps(out, indent=1))
(OUT / f"start_guard_probe_s{seed}.json").write_text(json.dumps(out, indent=1))
