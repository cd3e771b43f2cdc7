"""Shared test set-up.

``tests`` is a package, so pytest puts the repository root on ``sys.path`` when it loads this
file; every test can then import the fake-data writers with
``from tests.data.fakes import write_mnist_raw, write_cifar100_raw``.
"""

import numpy as np
import pytest


def blobs(n_per: int, k: int, dim: int, seed: int, spread: float = 6.0):
    """k Gaussian blobs of unit variance with centres ~ N(0, spread^2 I), shuffled:
    x [k * n_per, dim] float32 and the blob index y."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(k, dim)) * spread
    y = np.repeat(np.arange(k), n_per)
    x = centres[y] + rng.normal(size=(len(y), dim))
    perm = rng.permutation(len(y))
    return x[perm].astype(np.float32), y[perm]


@pytest.fixture
def one_thread():
    """Tiny networks: one intra-op thread is several times faster than two on a shared box."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# The slowest modules, run first: under pytest-xdist (scripts/test.sh runs two workers with
# --dist loadfile --no-loadscope-reorder) one worker takes the end-to-end `dvc repro` at once
# while the other goes through the rest.
SLOW_FIRST = ("test_pipeline_e2e.py", "test_sweeps.py", "test_add_a_method.py")


def pytest_collection_modifyitems(config, items):
    def rank(item) -> int:
        name = item.path.name
        return SLOW_FIRST.index(name) if name in SLOW_FIRST else len(SLOW_FIRST)

    items.sort(key=rank)  # stable: the order within a module is kept
