"""Input checks, batch orders and synthetic problems.

Everything a user passes in is checked here once, before any work; the kernels then
trust their inputs.
"""

from __future__ import annotations

import numpy as np

from ._rows import map_row_ranges

__all__ = [
    "check_X",
    "check_X_y",
    "check_int",
    "check_vector",
    "epoch_orders",
    "make_regression",
    "make_classification",
]


def _describe(a: np.ndarray) -> str:
    return f"dtype {a.dtype}, shape {a.shape}"


def _as_real_array(name: str, value: object) -> np.ndarray:
    """``value`` as an ndarray of a real numeric dtype (ints and bools become float64)."""
    try:
        arr = np.asarray(value)
    except (ValueError, TypeError) as exc:
        raise TypeError(
            f"{name} must be a numeric array, got {type(value).__name__}: {exc}"
        ) from None
    if isinstance(arr, np.memmap):
        arr = arr.view(np.ndarray)
    kind = arr.dtype.kind
    if kind in "biu":
        return arr.astype(np.float64)
    if kind == "f" and arr.dtype.itemsize in (4, 8):
        return arr
    raise TypeError(
        f"{name} must be real numeric (float32, float64, int or bool), got dtype {arr.dtype}"
    )


def _is_finite_sum(a: np.ndarray) -> bool:
    """True if the float64 sum of ``a`` is finite, which proves every entry is.

    One pass over memory, split by rows across threads for large arrays. A false answer
    is not proof of a bad entry (huge finite values can overflow the sum).
    """

    def rows_sum(start: int, stop: int) -> np.float64:
        with np.errstate(over="ignore", invalid="ignore"):  # per thread: set it here
            return a[start:stop].sum(dtype=np.float64)

    with np.errstate(over="ignore", invalid="ignore"):
        return bool(np.isfinite(np.sum(map_row_ranges(rows_sum, a))))


def _check_finite(name: str, a: np.ndarray) -> None:
    """Raise naming the first non-finite entry of ``a`` (at least 1-D).

    A finite sum (one cheap pass) proves there is none.
    """
    if _is_finite_sum(a):
        return
    if not np.isfinite(a).all():
        bad = np.argwhere(~np.isfinite(a))[0]
        where = tuple(int(i) for i in bad)
        raise ValueError(f"{name} must be finite, found {a[where].item()!r} at index {where}")


def check_X(X: object, *, n_features: int | None = None, dtype=None) -> np.ndarray:
    """Check a feature matrix and return it C-contiguous in a float dtype.

    Parameters
    ----------
    X : array-like, shape (n, d)
        Real numeric, finite, n >= 1, d >= 1. float32 stays float32, float64 stays
        float64, ints and bools become float64.
    n_features : int, optional
        If given, ``d`` must equal it.
    dtype : numpy dtype, optional
        If given, the result is cast to it (used to match a fitted model's dtype).

    Returns
    -------
    ndarray, shape (n, d)
        C-contiguous; the caller's array itself when it is already so (never written to).
    """
    X = _as_real_array("X", X)
    if X.ndim != 2:
        raise ValueError(f"X must be 2-D (n_samples, n_features), got {_describe(X)}")
    if X.shape[0] < 1 or X.shape[1] < 1:
        raise ValueError(f"X must have at least one sample and one feature, got {_describe(X)}")
    if n_features is not None and X.shape[1] != n_features:
        raise ValueError(f"X must have {n_features} features, got {_describe(X)}")
    _check_finite("X", X)
    if dtype is not None:
        X = X.astype(dtype, copy=False)
    return np.ascontiguousarray(X)


def check_X_y(X: object, y: object, *, logistic: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Check features and targets together.

    Parameters
    ----------
    X : array-like, shape (n, d)
        See :func:`check_X`.
    y : array-like, shape (n,)
        Real numeric and finite; cast to ``X``'s float dtype.
    logistic : bool
        If true, every label must be 0 or 1.

    Returns
    -------
    X : ndarray, shape (n, d), C-contiguous float32 or float64
    y : ndarray, shape (n,), same dtype as X
    """
    X = check_X(X)
    y = _as_real_array("y", y)
    if y.ndim != 1:
        raise ValueError(f"y must be 1-D (n_samples,), got {_describe(y)}")
    if y.shape[0] != X.shape[0]:
        raise ValueError(
            f"y must have one entry per row of X ({X.shape[0]}), got {y.shape[0]} entries"
        )
    _check_finite("y", y)
    if logistic:
        bad = y[(y != 0) & (y != 1)]
        if bad.size:
            raise ValueError(
                f"y must hold labels in {{0, 1}} for the logistic loss, found {bad[0]!r}"
            )
    return X, np.ascontiguousarray(y, dtype=X.dtype)


def check_vector(name: str, value: object, length: int) -> np.ndarray:
    """A finite real 1-D array of ``length`` entries, or an error naming ``name``."""
    arr = _as_real_array(name, value)
    if arr.shape != (length,):
        raise ValueError(f"{name} must have shape ({length},), got {_describe(arr)}")
    _check_finite(name, arr)
    return arr


def check_int(name: str, value: object, low: int, high: int | None = None) -> int:
    """``value`` as an int in [low, high], or a ``TypeError``/``ValueError`` naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise TypeError(f"{name} must be an int, got {value!r} of type {type(value).__name__}")
    value = int(value)
    if value < low or (high is not None and value > high):
        bounds = f"[{low}, {high}]" if high is not None else f">= {low}"
        raise ValueError(f"{name} must be {bounds}, got {value!r}")
    return value


def epoch_orders(rng: np.random.Generator, n: int, n_epochs: int, shuffle: bool) -> np.ndarray:
    """Sample order of each epoch, drawn in numpy so that every backend walks the same batches.

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of the permutations (advanced by ``n_epochs`` permutations when shuffling).
    n, n_epochs : int
        Samples and epochs.
    shuffle : bool
        If false every epoch visits the samples in order 0..n-1.

    Returns
    -------
    ndarray of int64, shape (n_epochs, n)
    """
    if not shuffle:
        return np.tile(np.arange(n, dtype=np.int64), (n_epochs, 1))
    return np.stack([rng.permutation(n).astype(np.int64) for _ in range(n_epochs)])


def make_regression(
    n: int, d: int, *, noise: float = 0.1, dtype=np.float64, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A synthetic linear regression problem ``y = X @ coef + 0.5 + noise``.

    Returns
    -------
    X : ndarray, shape (n, d); y : ndarray, shape (n,); coef : ndarray, shape (d,)
    """
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d)).astype(dtype)
    coef = rng.standard_normal(d).astype(dtype)
    y = (X @ coef + 0.5 + noise * rng.standard_normal(n)).astype(dtype)
    return X, y, coef


def make_classification(
    n: int, d: int, *, dtype=np.float64, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A synthetic logistic problem: labels drawn from ``sigmoid(X @ coef)``.

    Returns
    -------
    X : ndarray, shape (n, d); y : ndarray of {0, 1}, shape (n,); coef : ndarray, shape (d,)
    """
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d)).astype(dtype)
    coef = rng.standard_normal(d).astype(dtype)
    prob = 1.0 / (1.0 + np.exp(-(X @ coef)))
    y = (rng.random(n) < prob).astype(dtype)
    return X, y, coef
