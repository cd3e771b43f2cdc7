"""MNIST from torchvision's raw layout ``<root>/MNIST/raw/*-ubyte`` (strict IDX reader)."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path
from typing import Any

import numpy as np

from vaemix.config import read
from vaemix.data.common import sha256_file
from vaemix.errors import DataError
from vaemix.io import write_bytes

FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
IMAGE_MAGIC = 0x00000803  # unsigned bytes, 3 dimensions
LABEL_MAGIC = 0x00000801  # unsigned bytes, 1 dimension
LEAVE_OUT_HINT = (
    "or leave the dataset out: dvc exp run -S 'datasets=[spiral]' (or edit `datasets` in "
    "params.yaml)"
)


def download_failure(err: Exception) -> str:
    """A download exception as a short one-line reason."""
    detail = " ".join(str(err).split())
    if len(detail) > 240:
        detail = detail[:240] + "..."
    return f"the download failed ({type(err).__name__}: {detail})"


def raw_dir(root: str | Path) -> Path:
    return Path(root) / "MNIST" / "raw"


def _read_bytes(path: Path) -> bytes:
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as fh:
                return fh.read()
        return path.read_bytes()
    except (OSError, EOFError) as err:
        raise DataError(f"{path}: cannot read ({err})") from None


def read_idx(path: str | Path, magic: int) -> np.ndarray:
    """Read an IDX file of unsigned bytes (``.gz`` allowed), checking magic and length."""
    path = Path(path)
    data = _read_bytes(path)
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{path}: truncated IDX header ({len(data)} bytes)")
    (got,) = struct.unpack(">I", data[:4])
    if got != magic:
        raise DataError(f"{path}: bad IDX magic number 0x{got:08x} (expected 0x{magic:08x})")
    dims = struct.unpack(f">{ndim}I", data[4:header])
    expected = header + int(np.prod(dims, dtype=np.int64))
    if len(data) != expected:
        raise DataError(
            f"{path}: wrong length {len(data)} bytes for IDX dims {list(dims)} "
            f"(expected {expected}); the file is truncated or corrupted"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims)


def idx_bytes(arr: np.ndarray) -> bytes:
    """Serialise a uint8 array as an IDX file."""
    arr = np.ascontiguousarray(arr, dtype=np.uint8)
    magic = 0x00000800 | arr.ndim
    return struct.pack(f">I{arr.ndim}I", magic, *arr.shape) + arr.tobytes()


def read_pair(images_path: Path, labels_path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Images [N, 1, 28, 28] uint8 and labels [N] int64 of one split, validated."""
    x = read_idx(images_path, IMAGE_MAGIC)
    y = read_idx(labels_path, LABEL_MAGIC)
    if x.shape[1:] != (28, 28):
        raise DataError(f"{images_path}: images are {x.shape[1:]}, expected 28x28")
    if len(x) != len(y):
        raise DataError(
            f"{labels_path}: {len(y)} labels but {images_path.name} has {len(x)} images"
        )
    if y.size and y.max() > 9:
        raise DataError(f"{labels_path}: label {int(y.max())} outside 0..9")
    return x[:, None].copy(), y.astype(np.int64)


def _download(root: Path) -> None:
    """Fetch with torchvision (it verifies the MD5 of every archive)."""
    from torchvision import datasets

    for train in (True, False):
        datasets.MNIST(str(root), train=train, download=True)


def _missing(root: Path) -> list[str]:
    return [f for pair in FILES.values() for f in pair if not (raw_dir(root) / f).is_file()]


def ensure_raw(root: Path, download: bool) -> None:
    """Make sure the four raw files exist; the network is touched only when some are missing."""
    missing = _missing(root)
    if not missing:
        return
    why = "download is off"
    if download:
        try:
            _download(root)
        except Exception as err:  # no network, bad checksum, ... -> one clear line
            why = download_failure(err)
        missing = _missing(root)
        if not missing:
            return
    where = raw_dir(root)
    raise DataError(
        f"MNIST raw files missing in {where}: {', '.join(missing)} ({why}). "
        f"Place the uncompressed IDX files at {where}/<name> "
        f"(e.g. python scripts/make_mnist_split.py ../shared/data/mnist-t10k {root}), "
        + LEAVE_OUT_HINT
    )


def load(params: dict[str, Any]) -> dict[str, Any]:
    """Read MNIST as uint8 [N, 1, 28, 28] with int64 labels."""
    root = Path(read(params, "data.mnist.root"))
    ensure_raw(root, read(params, "data.mnist.download"))
    out: dict[str, np.ndarray] = {}
    raw_files: dict[str, str] = {}
    for split, (img_name, lab_name) in FILES.items():
        img, lab = raw_dir(root) / img_name, raw_dir(root) / lab_name
        out[f"x_{split}"], out[f"y_{split}"] = read_pair(img, lab)
        raw_files[str(img)] = sha256_file(img)
        raw_files[str(lab)] = sha256_file(lab)
    return {
        "arrays": out,
        "source": f"torchvision MNIST raw files in {raw_dir(root)}",
        "raw_files": raw_files,
        "extra": {},
    }


def make_split(src_dir: str | Path, dest_root: str | Path, n_train: int = 8000) -> Path:
    """Split the official test set (``t10k-*.gz`` in ``src_dir``) into a train/test raw folder.

    The first ``n_train`` images become the train split, the rest the test split, written as
    uncompressed IDX in torchvision's layout under ``dest_root/MNIST/raw``.
    """
    src = Path(src_dir)
    candidates = {
        stem: next((p for p in (src / f"{stem}.gz", src / stem) if p.is_file()), src / f"{stem}.gz")
        for stem in FILES["test"]
    }
    for path in candidates.values():
        if not path.is_file():
            raise DataError(f"{path}: file not found")
    x = read_idx(candidates[FILES["test"][0]], IMAGE_MAGIC)
    y = read_idx(candidates[FILES["test"][1]], LABEL_MAGIC)
    if len(x) != len(y):
        raise DataError(f"{candidates[FILES['test'][1]]}: {len(y)} labels for {len(x)} images")
    if not 0 < n_train < len(x):
        raise DataError(f"{src}: --n-train must be between 1 and {len(x) - 1}, got {n_train}")
    dest = raw_dir(dest_root)
    for split, sl in (("train", slice(0, n_train)), ("test", slice(n_train, None))):
        img_name, lab_name = FILES[split]
        write_bytes(dest / img_name, idx_bytes(x[sl]))
        write_bytes(dest / lab_name, idx_bytes(y[sl]))
    return dest
