import numpy as np

from vaemix.data.common import (
    allocate,
    cap_split,
    rng_for,
    stratified_indices,
    stratified_split,
)


def test_allocate_largest_remainder():
    # quotas 7 * (5, 3, 2) / 10 = 3.5, 2.1, 1.4 -> floors 3, 2, 1, one left for the largest rest
    assert allocate(np.array([5, 3, 2]), 7).tolist() == [4, 2, 1]
    # equal remainders go to the earlier class
    assert allocate(np.array([1, 1, 1]), 2).tolist() == [1, 1, 0]
    assert allocate(np.array([10, 30]), 40).tolist() == [10, 30]


def test_stratified_cap_keeps_proportions_order_and_is_seeded():
    y = np.repeat(np.arange(4), [400, 300, 200, 100])
    y = np.random.default_rng(0).permutation(y)
    idx = stratified_indices(y, 100, rng_for(0, "cap"))
    assert len(idx) == 100 and len(np.unique(idx)) == 100
    assert np.all(np.diff(idx) > 0)  # original order kept
    assert np.bincount(y[idx]).tolist() == [40, 30, 20, 10]
    again = stratified_indices(y, 100, rng_for(0, "cap"))
    other = stratified_indices(y, 100, rng_for(1, "cap"))
    assert np.array_equal(idx, again)
    assert not np.array_equal(idx, other)
    assert np.bincount(y[other]).tolist() == [40, 30, 20, 10]


def test_cap_split_subsets_all_arrays_together_and_none_means_all():
    y = np.arange(50) % 5
    x = np.arange(50) * 10
    out = cap_split({"x": x, "y": y}, y, 20, rng_for(3, "cap"))
    assert np.array_equal(out["y"], y[out["x"] // 10])  # rows stay aligned
    assert np.bincount(out["y"]).tolist() == [4] * 5
    assert cap_split({"x": x}, y, None, rng_for(3, "cap"))["x"] is x
    assert cap_split({"x": x}, y, 500, rng_for(3, "cap"))["x"] is x


def test_stratified_split_partitions_by_class():
    y = np.repeat(np.arange(3), [100, 50, 50])
    train, test = stratified_split(y, 0.2, rng_for(0, "split"))
    assert len(test) == 40 and len(train) == 160
    assert np.bincount(y[test]).tolist() == [20, 10, 10]
    assert np.array_equal(np.sort(np.concatenate([train, test])), np.arange(200))


def test_unlabelled_data_is_one_stratum():
    y = np.full(30, -1)
    idx = stratified_indices(y, 10, rng_for(0, "x"))
    assert len(idx) == 10 and np.all(np.diff(idx) > 0)


def test_save_samples_for_each_kind_of_input(tmp_path):
    from vaemix.data.common import save_samples

    rng = np.random.default_rng(0)
    cases = {
        "gray": (rng.integers(0, 256, (12, 1, 8, 8), dtype=np.uint8), np.arange(12) % 3),
        "hw": (rng.normal(size=(12, 8, 8)).astype(np.float32), np.full(12, -1)),
        "vec": (rng.normal(size=(40, 5)).astype(np.float32), np.arange(40) % 4),
        "2d": (rng.normal(size=(40, 2)).astype(np.float32), np.arange(40) % 4),
    }
    for name, (x, y) in cases.items():
        save_samples(x, y, tmp_path / f"{name}.png", name)
        assert (tmp_path / f"{name}.png").read_bytes()[:4] == b"\x89PNG"
