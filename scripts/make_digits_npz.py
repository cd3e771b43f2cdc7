"""Write scikit-learn's bundled handwritten digits (UCI optdigits test set, 1,797 images of
8x8 pixels, 10 classes; no download) as a bring-your-own ``npz`` dataset for vaemix:
``x`` float32 [N, 1, 8, 8] in [0, 1] and ``y`` int64.

    python scripts/make_digits_npz.py data/raw/digits.npz
    dvc exp run -S 'datasets=[npz]' -S data.npz.path=data/raw/digits.npz \\
        -S 'latent_sweep.latent_dims=[]'   # optional: no latent sweep

Data the defaults were never tuned on: ``reports/benchmarks/unseen_digits.md``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from sklearn.datasets import load_digits

from vaemix.io import save_npz


def main(argv: list[str]) -> None:
    if len(argv) != 1:
        sys.exit("usage: python scripts/make_digits_npz.py OUT.npz")
    digits = load_digits()
    x = (digits.images / 16.0).astype(np.float32)[:, None]  # pixel values 0..16
    out = Path(argv[0])
    out.parent.mkdir(parents=True, exist_ok=True)
    save_npz(out, x=x, y=digits.target.astype(np.int64))
    print(f"{out}: x {x.shape}, y {digits.target.shape}, classes {np.bincount(digits.target)}")


if __name__ == "__main__":
    main(sys.argv[1:])
