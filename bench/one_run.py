"""One seed of a method on the MNIST dev split at the full budget, under either protocol,
from a quick-profile checkout's pretrained AE and N2D partition (artifacts/mnist/ae,
ae+umap_gmm), e.g. the runs of reports/benchmarks/dec_idec.md. Run it from the root of a
project where the quick profile ran (`bash scripts/repro.sh --profile quick`); it writes
artifacts/ and reports/metrics/ under the name sanity_<method>_<protocol>.

    OMP_NUM_THREADS=1 NUMBA_NUM_THREADS=1 python bench/one_run.py <method> <paper|vaemix>
"""

from __future__ import annotations

import json
import sys

from vaemix.config import load_params
from vaemix.data import load_prepared
from vaemix.runs import ARTIFACTS, train_and_export


def main(method: str, protocol: str) -> None:
    params = load_params()
    params["budget"] = {**params["budget"], "epoch_scale": 1.0, "paper_epoch_scale": 1.0}
    init: dict = {"ae_checkpoint": ARTIFACTS / "mnist" / "ae" / "model.pt"}
    if protocol == "vaemix":
        init["start"] = {"umap": params["baseline"].get("umap_gmm"),
                         "file": ARTIFACTS / "mnist" / "ae+umap_gmm" / "pred.npz"}
    m = train_and_export(method, "mnist", load_prepared("mnist"), params, "train", init=init,
                         protocol=protocol, name=f"sanity_{method}_{protocol}")
    keys = ("acc", "nmi", "train_acc", "start_acc", "epochs", "train_seconds", "n_clusters_used")
    print(json.dumps({k: m.get(k) for k in keys}))


if __name__ == "__main__":
    main(*sys.argv[1:3])
