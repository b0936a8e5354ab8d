"""The compiled Fisher–Yates shuffle of :mod:`fastgd.permutations` (numba), imported only
for draws large enough to repay loading numba."""

from __future__ import annotations

from numba import njit, uint64

_GOLDEN = uint64(0x9E3779B97F4A7C15)
_MIX1 = uint64(0xBF58476D1CE4E5B9)
_MIX2 = uint64(0x94D049BB133111EB)
_LOW32 = uint64(0xFFFFFFFF)
_TWO32 = uint64(0x100000000)


@njit(inline="always", cache=True, nogil=True)
def _splitmix64(state):
    """The next splitmix64 ``(state, output)`` (both uint64)."""
    state = state + _GOLDEN
    z = state
    z = (z ^ (z >> uint64(30))) * _MIX1
    z = (z ^ (z >> uint64(27))) * _MIX2
    return state, z ^ (z >> uint64(31))


@njit(inline="always", cache=True, nogil=True)
def _below(state, bound):
    """A uniform integer in ``[0, bound)`` (uint64 ``bound`` ≥ 1) and the new state."""
    if bound > _TWO32:  # 64-bit modulo, rejecting the remainder's biased top
        threshold = (uint64(0) - bound) % bound
        state, r = _splitmix64(state)
        while r < threshold:
            state, r = _splitmix64(state)
        return state, r % bound
    state, r = _splitmix64(state)
    m = (r >> uint64(32)) * bound
    low = m & _LOW32
    if low < bound:  # Lemire: reject the few draws that would bias the result
        threshold = (_TWO32 - bound) % bound
        while low < threshold:
            state, r = _splitmix64(state)
            m = (r >> uint64(32)) * bound
            low = m & _LOW32
    return state, m >> uint64(32)


@njit(cache=True, nogil=True)
def _shuffle_range(order, seed):
    """Fill ``order`` (n,) int64 with a permutation of ``0..n-1`` drawn from ``seed``."""
    n = order.shape[0]
    for i in range(n):
        order[i] = i
    state = uint64(seed)
    for i in range(n - 1, 0, -1):
        state, j = _below(state, uint64(i + 1))
        swapped = order[i]
        order[i] = order[j]
        order[j] = swapped


@njit(cache=True, nogil=True)
def shuffle_rows(orders, seeds):
    """Row e of ``orders`` (E, n) int64: the permutation of ``seeds[e]`` (E,) uint64."""
    for e in range(orders.shape[0]):
        _shuffle_range(orders[e], seeds[e])
