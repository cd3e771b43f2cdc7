import math

import numpy as np
import pytest

from vaemix.metrics import cluster_accuracy, clustering_metrics, confusion


def test_relabelled_perfect_clustering_has_accuracy_one():
    assert cluster_accuracy([0, 0, 1, 1, 2, 2], [1, 1, 0, 0, 2, 2]) == 1.0


def test_arbitrary_integer_labels():
    y_true = np.array([7, 7, -3, -3, 42, 42])
    y_pred = np.array([100, 100, 5, 5, 5, -1])
    # 7 -> 100 (2), -3 -> 5 (2), 42 -> -1 (1): 5 of 6
    assert cluster_accuracy(y_true, y_pred) == pytest.approx(5 / 6)


def test_more_clusters_than_classes_is_one_to_one():
    # class 0: cluster 0 x2, cluster 1 x2; class 1: cluster 1 x1, cluster 2 x3.
    y_true = [0, 0, 0, 0, 1, 1, 1, 1]
    y_pred = [0, 0, 1, 1, 2, 2, 2, 1]
    # best one-to-one: 0 -> 0 (or 1) for 2 points, 1 -> 2 for 3 points; the third
    # cluster's points are errors. (Many-to-one majority voting would give 7/8.)
    assert cluster_accuracy(y_true, y_pred) == pytest.approx(5 / 8)


def test_fewer_clusters_than_classes():
    # one cluster holds classes 0 and 1: only one of them can be matched to it
    assert cluster_accuracy([0, 0, 1, 1, 2, 2], [5, 5, 5, 5, 9, 9]) == pytest.approx(4 / 6)


def test_accuracy_is_invariant_to_permuting_points_and_cluster_ids():
    rng = np.random.default_rng(0)
    y_true = rng.integers(0, 4, size=200)
    y_pred = np.where(rng.random(200) < 0.7, y_true, rng.integers(0, 6, size=200))
    acc = cluster_accuracy(y_true, y_pred)
    order = rng.permutation(200)
    relabel = rng.permutation(6) + 10
    assert cluster_accuracy(y_true[order], y_pred[order]) == pytest.approx(acc)
    assert cluster_accuracy(y_true, relabel[y_pred]) == pytest.approx(acc)
    # the identity is one admissible matching, so the optimum is at least as good
    assert np.mean(y_true == y_pred) <= acc < 1.0


def test_mismatched_or_empty_labels_raise():
    with pytest.raises(ValueError):
        cluster_accuracy([0, 1], [0])
    with pytest.raises(ValueError):
        cluster_accuracy([], [])


def test_metrics_match_hand_computed_values():
    y_true = [0, 0, 0, 1, 1, 1]
    y_pred = [0, 0, 1, 1, 1, 1]
    # contingency: class 0 -> (2, 1), class 1 -> (0, 3); n = 6
    h_class = math.log(2)  # classes 3/6, 3/6
    h_clust = -(2 / 6 * math.log(2 / 6) + 4 / 6 * math.log(4 / 6))  # clusters 2/6, 4/6
    mi = (
        2 / 6 * math.log((2 / 6) / (3 / 6 * 2 / 6))
        + 1 / 6 * math.log((1 / 6) / (3 / 6 * 4 / 6))
        + 3 / 6 * math.log((3 / 6) / (3 / 6 * 4 / 6))
    )
    # ARI: sum C(n_ij, 2) = 1 + 0 + 3 = 4; rows: 3 + 3 = 6; cols: 1 + 6 = 7; C(6, 2) = 15
    expected_index = 6 * 7 / 15
    ari = (4 - expected_index) / ((6 + 7) / 2 - expected_index)
    assert ari == pytest.approx(12 / 37)

    m = clustering_metrics(y_true, y_pred)
    assert m["acc"] == pytest.approx(5 / 6)
    assert m["nmi"] == pytest.approx(mi / ((h_class + h_clust) / 2))
    assert m["ari"] == pytest.approx(ari)
    assert m["completeness"] == pytest.approx(mi / h_clust)  # 1 - H(C|Y) / H(C)
    assert m["n_clusters_used"] == 2
    assert {type(v) for k, v in m.items() if k != "n_clusters_used"} == {float}
    assert type(m["n_clusters_used"]) is int


def test_perfect_clustering_scores_one_everywhere():
    m = clustering_metrics([3, 3, 1, 1, 2], [0, 0, 2, 2, 1])
    assert m == pytest.approx({"acc": 1.0, "nmi": 1.0, "ari": 1.0, "completeness": 1.0,
                               "n_clusters_used": 3})


def test_confusion_puts_matched_clusters_on_the_diagonal():
    y_true = [0, 0, 0, 0, 1, 1, 1, 1]
    y_pred = [0, 0, 0, 1, 2, 2, 2, 1]
    # class 0 -> cluster 0, class 1 -> cluster 2, then the unmatched cluster 1
    np.testing.assert_array_equal(confusion(y_true, y_pred), [[3, 0, 1], [0, 3, 1]])


def test_confusion_with_permuted_labels():
    y_true = [0, 0, 1, 1, 1, 2]
    y_pred = [9, 9, 4, 4, 7, 7]
    # class 0 -> 9, class 1 -> 4, class 2 -> 7
    c = confusion(y_true, y_pred)
    np.testing.assert_array_equal(c, [[2, 0, 0], [0, 2, 1], [0, 0, 1]])
    assert np.trace(c) / c.sum() == pytest.approx(cluster_accuracy(y_true, y_pred))


def test_a_forced_collapse_is_flagged():
    from vaemix.metrics import mark_collapsed, min_clusters

    y = np.repeat(np.arange(10), 20)
    one = mark_collapsed(clustering_metrics(y, np.zeros(200, int)), 10, 0.5)
    assert one["collapsed"] is True and one["n_clusters_used"] == 1
    assert one["n_clusters_expected"] == 10
    healthy = mark_collapsed(clustering_metrics(y, y % 5), 10, 0.5)   # 5 of 10: at the line
    assert healthy["collapsed"] is False
    four = mark_collapsed(clustering_metrics(y, y % 4), 10, 0.5)
    assert four["collapsed"] is True
    assert min_clusters(10, 0.5) == 5 and min_clusters(10, 0.9) == 9 and min_clusters(3, 0.1) == 1
    assert "collapsed" not in mark_collapsed({"test_mse": 1.0}, 10, 0.5)
