"""scikit-learn SGD's row order: the same orders as its own dataset, the same seeds."""

from __future__ import annotations

import numpy as np
import pytest

from fastgd.sklearn_shuffle import (
    MAX_INT,
    SklearnShuffle,
    binary_seed,
    one_vs_rest_seeds,
    regressor_seed,
)

seq_dataset = pytest.importorskip("sklearn.utils._seq_dataset")


def sklearn_orders(n: int, seed: int, epochs: int) -> np.ndarray:
    """The rows scikit-learn's own dataset visits, read back through its test hooks: the
    targets are the row numbers, so each sample's target says which row it is."""
    dataset = seq_dataset.ArrayDataset64(np.zeros((n, 1)), np.arange(n, dtype=np.float64),
                                         np.ones(n), seed=1)  # fmt: skip
    orders = []
    for _ in range(epochs):
        dataset._shuffle_py(seed)
        orders.append([dataset._next_py()[1] for _ in range(n)])
    return np.array(orders, dtype=np.int64)


@pytest.mark.parametrize(
    "n, seed",
    [(1, 5), (2, 0), (7, 0), (50, 12345), (1000, MAX_INT - 1), (999, 2**32 - 1), (4096, 1)],
)
def test_orders_equal_scikit_learns_epoch_after_epoch(n, seed):
    shuffle = SklearnShuffle(seed)
    ours = np.vstack([shuffle.epoch_orders(n, 3), shuffle.epoch_orders(n, 2)])
    np.testing.assert_array_equal(ours, sklearn_orders(n, seed, 5))
    assert ours.dtype == np.int64
    for order in ours:
        np.testing.assert_array_equal(np.sort(order), np.arange(n))


def test_a_restarted_stream_begins_again_and_zero_epochs_give_nothing():
    shuffle = SklearnShuffle(99)
    first = shuffle.epoch_orders(20, 2)
    assert shuffle.epoch_orders(20, 0).shape == (0, 20)
    np.testing.assert_array_equal(shuffle.restarted().epoch_orders(20, 2), first)
    assert not np.array_equal(shuffle.epoch_orders(20, 1)[0], first[0])  # it went on


@pytest.mark.parametrize("seed", [-1, 2**32, 1.5, True, "3", None])
def test_bad_seeds_are_refused_with_the_value(seed):
    with pytest.raises(ValueError, match="seed must be an integer"):
        SklearnShuffle(seed)


def test_seeds_repeat_scikit_learns_draws():
    rs = np.random.RandomState(7)
    rs.randint(1, MAX_INT)
    assert binary_seed(7) == rs.randint(MAX_INT)
    class_seeds = np.random.RandomState(3).randint(MAX_INT, size=4)
    assert one_vs_rest_seeds(3, 4) == [binary_seed(int(s)) for s in class_seeds]
    assert regressor_seed(11) == np.random.RandomState(11).randint(0, MAX_INT)
    shared = np.random.RandomState(5)  # a RandomState given is advanced, as scikit-learn's
    assert binary_seed(shared) != binary_seed(shared)
    with pytest.raises(ValueError, match="random_state"):
        binary_seed("seed")


def test_held_out_rows_keep_their_places_and_are_skipped():
    keep = np.ones(40, dtype=bool)
    keep[[0, 7, 8, 39]] = False
    full = SklearnShuffle(17).epoch_orders(40, 3)
    kept = SklearnShuffle(17, keep=keep).epoch_orders(36, 3)
    rows = np.flatnonzero(keep)
    for all_rows, ours in zip(full, kept, strict=True):
        np.testing.assert_array_equal(rows[ours], all_rows[keep[all_rows]])
    with pytest.raises(ValueError, match="n=40 differs from the 36 rows kept"):
        SklearnShuffle(17, keep=keep).epoch_orders(40, 1)
