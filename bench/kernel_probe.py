"""Which environment variable moves which numbers: a fingerprint of torch's and NumPy's
results under each kernel pin, on this CPU.

Each setting runs in a fresh process (the libraries read their pins when they load) on one
thread and hashes the bits of: a small MLP's forward and backward in torch (MKL's GEMMs and
torch's vectorised exp/log1p/tanh) and, in NumPy, a GEMM, exp, log1p and a symmetric
eigendecomposition (OpenBLAS, NumPy's SIMD loops, LAPACK). Two settings with the same
fingerprint computed the same bits; a pin that changes the fingerprint on this CPU is one
that a CPU of another family would otherwise choose differently.

    python bench/kernel_probe.py

writes ``reports/benchmarks/kernel_probe.md``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from vaemix.io import write_text  # noqa: E402
from vaemix.regress import PINS, describe, machine  # noqa: E402

PROBE = r'''
import hashlib
import numpy as np, torch
torch.manual_seed(0); torch.set_num_threads(1)
a = torch.randn(256, 784)
net = torch.nn.Sequential(torch.nn.Linear(784, 500), torch.nn.ReLU(), torch.nn.Linear(500, 10))
out = net(a)
loss = out.exp().log1p().sum() + net[0](a).tanh().sum()
loss.backward()
th = hashlib.sha1(b"".join(t.detach().numpy().tobytes()
                           for t in (out, loss, *[p.grad for p in net.parameters()])))
x = np.random.default_rng(0).normal(size=(300, 50))
nh = hashlib.sha1((x @ x.T).tobytes() + np.exp(x).tobytes() + np.log1p(np.abs(x)).tobytes()
                  + np.linalg.eigh(x.T @ x)[0].tobytes())
print(torch.backends.cpu.get_cpu_capability(), th.hexdigest()[:10], nh.hexdigest()[:10])
'''

SETTINGS = [
    ("native (no pin)", {}),
    ("ATEN_CPU_CAPABILITY=avx2", {"ATEN_CPU_CAPABILITY": "avx2"}),
    ("ATEN_CPU_CAPABILITY=default", {"ATEN_CPU_CAPABILITY": "default"}),
    ("MKL_CBWR=AVX2", {"MKL_CBWR": "AVX2"}),
    ("MKL_CBWR=COMPATIBLE", {"MKL_CBWR": "COMPATIBLE"}),
    ("OPENBLAS_CORETYPE=Haswell", {"OPENBLAS_CORETYPE": "Haswell"}),
    ("OPENBLAS_CORETYPE=SkylakeX", {"OPENBLAS_CORETYPE": "SkylakeX"}),
    ("NPY_DISABLE_CPU_FEATURES (AVX-512 off)",
     {"NPY_DISABLE_CPU_FEATURES": "X86_V4 AVX512_ICL AVX512_SPR"}),
    ("scripts/portable_numerics.sh", "portable"),
]


def fingerprint(pins: dict | str) -> str:
    env = {k: v for k, v in os.environ.items() if k not in PINS}
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    if pins == "portable":
        cmd = ["bash", "-c", f'. "{ROOT}/scripts/portable_numerics.sh" && exec "$0" -c "$1"',
               sys.executable, PROBE]
    else:
        env.update(pins)
        cmd = [sys.executable, "-c", PROBE]
    return subprocess.run(cmd, env=env, capture_output=True, text=True,
                          check=True).stdout.strip()


def main() -> None:
    lines = ["# Kernel pins: which one moves which bits", "",
             f"`python bench/kernel_probe.py` on {describe(machine(), kernels=False)}, "
             "one thread. Same fingerprint = the same bits.", "",
             "| setting | torch capability | torch (MKL GEMM, ATen exp/log1p/tanh) | "
             "NumPy (OpenBLAS, SIMD exp/log1p, LAPACK) |", "|---|---|---|---|"]
    for label, pins in SETTINGS:
        capability, torch_fp, numpy_fp = fingerprint(pins).split()
        lines.append(f"| {label} | {capability} | `{torch_fp}` | `{numpy_fp}` |")
        print(lines[-1], flush=True)
    write_text(ROOT / "reports/benchmarks/kernel_probe.md", "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
