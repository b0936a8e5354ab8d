"""The epochs' orders (fastgd.permutations) against the plain-Python reference."""

from __future__ import annotations

import numpy as np
import pytest
import reference as ref
from numba import uint64

import fastgd._rows as _rows
import fastgd.permutations as permutations_module
from fastgd._permutations_jit import _below
from fastgd.data import epoch_orders
from fastgd.permutations import permutations


@pytest.mark.parametrize("compiled", [False, True])
@pytest.mark.parametrize("n", [1, 2, 3, 17, 1000])
def test_orders_equal_the_reference_fisher_yates(n, compiled, monkeypatch):
    """Both implementations (the Python loop of small draws, the compiled kernel of large
    ones, forced here on the same sizes) give the reference's orders."""
    monkeypatch.setattr(permutations_module, "_COMPILED_FROM", 0 if compiled else 10**9)
    orders = epoch_orders(np.random.default_rng(5), n, 3, True)
    assert orders.dtype == np.int64 and orders.shape == (3, n)
    assert orders.tolist() == ref.shuffled_orders(5, n, 3, True)


@pytest.mark.parametrize("bound", [1, 2, 7, 2**31 + 11, 2**32, 2**32 + 1, 3 * 2**40 + 5, 2**63 + 9])
def test_uniform_draw_equals_the_reference_on_both_paths(bound):
    for state in (0, 1, 2**63 + 12345, 2**64 - 1):
        got_state, got = _below(uint64(state), uint64(bound))
        want_state, want = ref._uniform_below(state, bound)
        assert (int(got_state), int(got)) == (want_state, want)
        assert 0 <= int(got) < bound


def test_the_generator_is_advanced_once_per_epoch():
    rng = np.random.default_rng(3)
    permutations(rng, 10, 4)
    twin = np.random.default_rng(3)
    twin.bit_generator.random_raw(4)
    assert rng.integers(0, 2**62) == twin.integers(0, 2**62)


@pytest.mark.parametrize("compiled", [False, True])
def test_empty_shapes(compiled, monkeypatch):
    monkeypatch.setattr(permutations_module, "_COMPILED_FROM", 0 if compiled else 10**9)
    assert permutations(np.random.default_rng(0), 0, 2).shape == (2, 0)
    assert permutations(np.random.default_rng(0), 5, 0).shape == (0, 5)


def test_epochs_drawn_on_several_threads_equal_the_reference(monkeypatch):
    """The compiled draw splits the epochs across the row threads: three threads on
    five epochs give each epoch the permutation of its own seed, as one thread does."""
    monkeypatch.setattr(permutations_module, "_COMPILED_FROM", 0)
    monkeypatch.setattr(permutations_module, "_PARALLEL_FROM_BYTES", 8)
    monkeypatch.setattr(_rows, "usable_cpus", lambda: 3)
    assert len(_rows.row_ranges(np.empty((5, 17), dtype=np.int64), 8)) == 3
    orders = permutations(np.random.default_rng(11), 17, 5)
    assert orders.tolist() == ref.shuffled_orders(11, 17, 5, True)


def test_a_large_draw_equals_the_reference():
    """Above the threshold (the compiled kernel by default): 30,000 rows, two epochs."""
    assert permutations_module._COMPILED_FROM <= 60_000
    orders = permutations(np.random.default_rng(9), 30_000, 2)
    assert orders.tolist() == ref.shuffled_orders(9, 30_000, 2, True)


@pytest.mark.parametrize("compiled", [False, True])
def test_every_position_is_equally_likely(compiled, monkeypatch):
    """Where element 0 and element 4 of 0..4 land over 20,000 seeds: each of the 5 positions
    within 5 standard deviations of 1/5 (a biased draw, e.g. modulo without rejection on
    a small bound, or an off-by-one range, moves some by far more)."""
    monkeypatch.setattr(permutations_module, "_COMPILED_FROM", 0 if compiled else 10**9)
    orders = permutations(np.random.default_rng(11), 5, 20_000)
    for element in (0, 4):
        where = np.argmax(orders == element, axis=1)
        freq = np.bincount(where, minlength=5) / orders.shape[0]
        sigma = np.sqrt(0.2 * 0.8 / orders.shape[0])
        assert np.all(np.abs(freq - 0.2) < 5 * sigma), freq
