"""scikit-learn SGD's row order, reproduced so that ``shuffle=True`` gives its model.

scikit-learn's SGD does not shuffle with numpy. Its fit draws a 32-bit seed from
``random_state`` and, at the start of every epoch, reshuffles its *current* index array
(not a fresh ``0..n-1``) in place with a Fisher-Yates pass driven by a small xorshift
generator restarted from that same seed:

- the generator: ``x ^= x << 13; x ^= x >> 17; x ^= x << 5`` on 32 bits (a state of 0 is
  replaced by 1), each draw returned modulo 2**31;
- the pass: for ``i`` in ``0 .. n-2``, swap positions ``i`` and ``i + draw % (n - i)``.

Because the draws depend only on the seed and ``n``, every epoch applies the same
permutation ``P`` of positions to the previous epoch's order: epoch ``e`` visits
``order[e] = order[e - 1][P]`` with ``order[-1] = 0..n-1``. :class:`SklearnShuffle`
computes ``P`` once (a compiled loop) and composes it.

The seeds: scikit-learn's binary classifier makes ``r = RandomState(random_state)``, draws
one number for its dataset (``r.randint(1, 2**31 - 1)``), then the shuffle seed
``r.randint(2**31 - 1)``; one-vs-rest first draws one seed per class from
``RandomState(random_state)`` and each class's binary fit starts its own ``RandomState``
from it; the regressor and the one-class SVM draw the shuffle seed first. The functions
:func:`binary_seed`, :func:`one_vs_rest_seeds` and :func:`regressor_seed` repeat those
draws.
"""

from __future__ import annotations

import numbers
from functools import cache

import numpy as np

__all__ = ["SklearnShuffle", "binary_seed", "one_vs_rest_seeds", "regressor_seed"]

#: scikit-learn's ``MAX_INT`` (``np.iinfo(np.int32).max``): seeds are drawn below it.
MAX_INT = 2**31 - 1


@cache
def _swap_positions_kernel():
    """The compiled Fisher-Yates pass (numba is imported only when a shuffle is asked for)."""
    from numba import njit

    @njit(cache=True, nogil=True)
    def swap_positions(n: int, seed: int):
        positions = np.arange(n, dtype=np.int64)
        state = seed if seed != 0 else 1
        for i in range(n - 1):
            state = (state ^ (state << 13)) & 0xFFFFFFFF
            state = state ^ (state >> 17)
            state = (state ^ (state << 5)) & 0xFFFFFFFF
            j = i + (state & 0x7FFFFFFF) % (n - i)
            positions[i], positions[j] = positions[j], positions[i]
        return positions

    return swap_positions


class SklearnShuffle:
    """The epochs' row orders of scikit-learn's SGD for one 32-bit shuffle seed.

    Give it to :func:`fastgd.fit` as ``seed`` (with ``shuffle=True``) to visit the rows as
    scikit-learn's ``SGDClassifier``/``SGDRegressor`` do for that seed. Each fit starts
    from the order ``0..n-1``; the epochs of one fit carry the order on, as scikit-learn.

    Parameters
    ----------
    seed : int
        The shuffle seed, in [0, 2**32) (scikit-learn draws it below 2**31 - 1; see
        :func:`binary_seed`).
    keep : array of bool, shape (N,), optional
        The rows trained on, among all ``N`` rows scikit-learn shuffles (its early
        stopping holds the others out: they keep their places in the shuffled order and
        are skipped). The orders then index the kept rows, ``0..keep.sum()-1``.
    """

    def __init__(self, seed: int, keep: np.ndarray | None = None):
        if (not isinstance(seed, numbers.Integral) or isinstance(seed, bool)
                or not 0 <= int(seed) < 2**32):  # fmt: skip
            raise ValueError(f"seed must be an integer in [0, 2**32), got {seed!r}")
        self.seed = int(seed)
        self.keep = None if keep is None else np.asarray(keep, dtype=bool).copy()
        self._order: np.ndarray | None = None
        self._positions: np.ndarray | None = None

    def __repr__(self) -> str:
        return f"SklearnShuffle({self.seed})"

    def restarted(self) -> SklearnShuffle:
        """A new stream of orders for the same seed, starting again from ``0..n-1``."""
        return SklearnShuffle(self.seed, self.keep)

    def positions(self, n: int) -> np.ndarray:
        """The permutation ``P`` one epoch's pass applies, shape (n,), int64."""
        if self._positions is None or self._positions.shape[0] != n:
            self._positions = _swap_positions_kernel()(n, self.seed)
        return self._positions

    def epoch_orders(self, n: int, n_epochs: int) -> np.ndarray:
        """The next ``n_epochs`` epochs' orders, shape (n_epochs, n), int64.

        The stream goes on from the last epoch it gave (for the same ``n``). With
        ``keep``, ``n`` is the number of kept rows.
        """
        if self.keep is None:
            return self._all_rows_orders(n, n_epochs)
        if n != int(self.keep.sum()):
            raise ValueError(f"n={n} differs from the {int(self.keep.sum())} rows kept")
        kept_index = np.cumsum(self.keep) - 1  # a kept row's place among the kept rows
        orders = self._all_rows_orders(self.keep.shape[0], n_epochs)
        return np.stack([kept_index[order[self.keep[order]]] for order in orders]).reshape(
            n_epochs, n
        )

    def _all_rows_orders(self, n: int, n_epochs: int) -> np.ndarray:
        """The orders of all ``n`` rows, the stream going on."""
        positions = self.positions(n)
        order = self._order if self._order is not None and self._order.shape[0] == n else None
        if order is None:
            order = np.arange(n, dtype=np.int64)
        orders = np.empty((n_epochs, n), dtype=np.int64)
        for epoch in range(n_epochs):
            order = np.take(order, positions, out=orders[epoch])
        self._order = order.copy() if n_epochs else order
        return orders


def _random_state(random_state: object) -> np.random.RandomState:
    """``sklearn.utils.check_random_state`` without importing scikit-learn."""
    if random_state is None:
        return np.random.mtrand._rand
    if isinstance(random_state, np.random.RandomState):
        return random_state
    if isinstance(random_state, numbers.Integral) and not isinstance(random_state, bool):
        return np.random.RandomState(int(random_state))
    raise ValueError(f"random_state must be None, an int or a RandomState, got {random_state!r}")


def binary_seed(random_state: object) -> int:
    """The shuffle seed of scikit-learn's binary ``fit_binary`` for ``random_state``.

    Parameters
    ----------
    random_state : None, int or numpy.random.RandomState
        As given to the estimator (a RandomState is advanced by two draws, as there).
    """
    rs = _random_state(random_state)
    rs.randint(1, MAX_INT)  # the dataset's own seed, drawn first
    return int(rs.randint(MAX_INT))


def one_vs_rest_seeds(random_state: object, n_classes: int) -> list[int]:
    """The shuffle seed of each class's binary problem in scikit-learn's one-vs-rest."""
    rs = _random_state(random_state)
    return [binary_seed(int(s)) for s in rs.randint(MAX_INT, size=n_classes)]


def regressor_seed(random_state: object) -> int:
    """The shuffle seed of scikit-learn's ``SGDRegressor`` and ``SGDOneClassSVM``."""
    return int(_random_state(random_state).randint(0, MAX_INT))
