"""Lay out the official MNIST test split (t10k-*.gz) as a small train/test raw folder.

    python scripts/make_mnist_split.py ../shared/data/mnist-t10k data/raw [--n-train 8000]

writes DEST_ROOT/MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte (uncompressed IDX):
the first N_TRAIN images as the train split, the rest as the test split.
"""

import argparse
import sys

from vaemix.data.mnist import make_split
from vaemix.errors import VaemixError


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("src_dir", help="folder with t10k-images-idx3-ubyte.gz and labels")
    ap.add_argument("dest_root", help="root of the torchvision layout (data.mnist.root)")
    ap.add_argument("--n-train", type=int, default=8000)
    args = ap.parse_args()
    try:
        dest = make_split(args.src_dir, args.dest_root, args.n_train)
    except VaemixError as err:
        sys.exit(f"error: {err}")
    print(f"wrote {dest}")


if __name__ == "__main__":
    main()
