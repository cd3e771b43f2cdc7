"""What the portable kernels (scripts/portable_numerics.sh) cost in speed.

Times training steps of the MNIST autoencoder (784-500-500-2000-10, batch 256, Adam; the
networks every MNIST model uses), a forward + backward of the Collier & Urdiales conv net on
CIFAR-100-sized batches, and NumPy/scikit-learn work (a diagonal GMM on 10-d codes), each in
a fresh process on one thread, with the CPU's own kernels and with the portable ones.

    python bench/portable_speed.py [--repeats 3]

writes ``reports/benchmarks/portable_speed.md`` and ``portable_speed.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from vaemix.io import write_json, write_text  # noqa: E402
from vaemix.regress import PINS, describe, machine  # noqa: E402

WORK = r'''
import json, sys, time
import numpy as np, torch
from sklearn.mixture import GaussianMixture
torch.set_num_threads(1); torch.manual_seed(0)
def timed(step, n):
    step()
    t = time.perf_counter()
    for _ in range(n):
        step()
    return (time.perf_counter() - t) / n * 1000
dims = [784, 500, 500, 2000, 10]
layers = []
for a, b in zip(dims[:-1], dims[1:]):
    layers += [torch.nn.Linear(a, b), torch.nn.ReLU()]
net = torch.nn.Sequential(*layers[:-1])
opt = torch.optim.Adam(net.parameters())
x = torch.rand(256, 784)
def mlp():
    opt.zero_grad(); net(x).square().sum().backward(); opt.step()
conv = torch.nn.Sequential(torch.nn.Conv2d(3, 32, 4, 2, 1), torch.nn.ReLU(),
                           torch.nn.Conv2d(32, 64, 4, 2, 1), torch.nn.ReLU(),
                           torch.nn.Flatten(), torch.nn.Linear(64 * 8 * 8, 64))
xc = torch.rand(128, 3, 32, 32)
def cnn():
    conv.zero_grad(); conv(xc).square().sum().backward()
z = np.random.default_rng(0).normal(size=(8000, 10))
def gmm():
    GaussianMixture(10, covariance_type="diag", random_state=0, max_iter=50).fit(z)
print(json.dumps({"mlp_step_ms": timed(mlp, 20), "conv_step_ms": timed(cnn, 10),
                  "gmm_fit_ms": timed(gmm, 3),
                  "torch_capability": torch.backends.cpu.get_cpu_capability()}))
'''


def measure(portable: bool) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in PINS}
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    if portable:
        out = subprocess.run(["bash", "-c", f". {ROOT}/scripts/portable_numerics.sh && env -0"],
                             env=env, capture_output=True, text=True, check=True).stdout
        env = dict(item.split("=", 1) for item in out.split("\0") if "=" in item)
    proc = subprocess.run([sys.executable, "-c", WORK], env=env, capture_output=True,
                          text=True, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    runs = {"native": [], "portable": []}
    for _ in range(args.repeats):  # interleaved, so drift in the machine's load hits both
        for name in runs:
            runs[name].append(measure(name == "portable"))
    keys = ("mlp_step_ms", "conv_step_ms", "gmm_fit_ms")
    median = {name: {k: statistics.median(r[k] for r in rs) for k in keys}
              for name, rs in runs.items()}
    lines = ["# Portable kernels: the cost in speed", "",
             f"`python bench/portable_speed.py --repeats {args.repeats}` on "
             f"{describe(machine(), kernels=False)}; one thread, median of {args.repeats} "
             "fresh processes each (torch capability: native "
             f"{runs['native'][0]['torch_capability']}, portable "
             f"{runs['portable'][0]['torch_capability']}).", "",
             "| work | native (ms) | portable (ms) | portable / native |", "|---|---:|---:|---:|"]
    labels = {"mlp_step_ms": "MNIST AE training step (784-500-500-2000-10, batch 256)",
              "conv_step_ms": "conv net forward + backward (CIFAR-sized, batch 128)",
              "gmm_fit_ms": "diagonal GMM, 8000 x 10, 50 EM steps (scikit-learn)"}
    for k in keys:
        a, b = median["native"][k], median["portable"][k]
        lines.append(f"| {labels[k]} | {a:.1f} | {b:.1f} | {b / a:.2f} |")
    out = ROOT / "reports/benchmarks/portable_speed"
    write_json(out.with_suffix(".json"), {"machine": machine(), "runs": runs, "median": median})
    write_text(out.with_suffix(".md"), "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
