"""Input checks, batch orders and synthetic problems.

Everything a user passes in is checked here once, before any work; the kernels then
trust their inputs.
"""

from __future__ import annotations

import numpy as np

from ._rows import map_row_ranges
from .permutations import permutations
from .sklearn_shuffle import SklearnShuffle
from .sparse import check_sparse_X, is_sparse, reject_sparse
from .specs import SIGNED_LABEL_LOSSES, Loss

__all__ = [
    "check_X",
    "check_X_y",
    "check_targets",
    "check_sample_weight",
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


def all_finite(a: np.ndarray) -> bool:
    """Whether every entry of a real array (any shape) is finite: a finite sum
    (:func:`_is_finite_sum`, one pass without a temporary) proves it; the entry-by-entry
    test runs only when the sum is not (a NaN or inf, or huge finite values that overflow
    it)."""
    if a.ndim > 0 and _is_finite_sum(a):
        return True
    return bool(np.isfinite(a).all())


def _check_finite(name: str, a: np.ndarray) -> None:
    """Raise naming the first non-finite entry of ``a`` (at least 1-D)."""
    if all_finite(a):
        return
    bad = np.argwhere(~np.isfinite(a))[0]
    where = tuple(int(i) for i in bad)
    raise ValueError(
        f"{name} must be finite (no NaN or inf), found {a[where].item()!r} at index {where}"
    )


def check_X(X: object, *, n_features: int | None = None, dtype=None) -> np.ndarray:
    """Check a feature matrix and return it C-contiguous in a float dtype.

    Parameters
    ----------
    X : array-like or scipy.sparse matrix, shape (n, d)
        Real numeric, finite, n >= 1, d >= 1. float32 stays float32, float64 stays
        float64, ints and bools become float64. A scipy.sparse X is checked by
        :func:`fastgd.sparse.check_sparse_X` and returned as a canonical CSR matrix.
    n_features : int, optional
        If given, ``d`` must equal it.
    dtype : numpy dtype, optional
        If given, the result is cast to it (used to match a fitted model's dtype).

    Returns
    -------
    ndarray, shape (n, d)
        C-contiguous; the caller's array itself when it is already so (never written to).
        (CSR for a sparse X.)
    """
    if is_sparse(X):
        return check_sparse_X(X, n_features=n_features, dtype=dtype)
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
    """Check features and one column of targets together.

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
    y = _check_y(y, X.shape[0], allow_2d=False)
    if logistic:
        _check_binary_labels(y, "logistic")
    return X, np.ascontiguousarray(y, dtype=X.dtype)


def _check_y(y: object, n: int, *, allow_2d: bool, loss_name: str = "") -> np.ndarray:
    """``y`` as a finite real array of n rows (1-D, or 2-D with >= 1 column if allowed)."""
    reject_sparse("y", y)
    y = _as_real_array("y", y)
    if y.ndim == 2 and not allow_2d:
        raise ValueError(
            f"y must be 1-D (n_samples,) for the {loss_name or 'given'} loss, got {_describe(y)}"
        )
    if y.ndim not in (1, 2) or (y.ndim == 2 and y.shape[1] < 1):
        raise ValueError(f"y must be 1-D (n_samples,) or 2-D (n_samples, K), got {_describe(y)}")
    if y.shape[0] != n:
        raise ValueError(f"y must have one entry per row of X ({n}), got {y.shape[0]} entries")
    _check_finite("y", y)
    return y


def _check_binary_labels(y: np.ndarray, loss_name: str) -> None:
    bad = y[(y != 0) & (y != 1)]
    if bad.size:
        raise ValueError(
            f"y must hold labels in {{0, 1}} for the {loss_name} loss, found {bad[0]!r}"
        )


def check_targets(
    y: object, X: np.ndarray, loss: Loss
) -> tuple[np.ndarray, int, bool]:
    """Check the targets of ``loss`` and turn them into the kernels' targets.

    Labels are handled here, at the edge: the kernels see float targets in the form the
    loss's formula uses.

    Parameters
    ----------
    y : array-like
        Regression losses: shape (n,) or (n, K) of finite reals. Binary classification
        losses (``logistic``, ``hinge``, ``squared_hinge``, ``modified_huber``): shape
        (n,) or (n, K) of labels in {0, 1} (K independent binary models, one-vs-rest when
        the columns are one-hot). ``multinomial``: shape (n,) of integer class codes
        0..K-1 with K >= 2 (K is the largest code plus one).
    X : ndarray, shape (n, d)
        The checked features: their dtype is the targets' dtype.
    loss : Loss
        The loss spec.

    Returns
    -------
    Y : ndarray, shape (n, T), dtype of ``X``
        T = K; for ``multinomial`` T = 1 (the class codes). Labels of the ±1 losses
        (``SIGNED_LABEL_LOSSES``) become -1 / +1; ``logistic`` keeps {0, 1}.
    n_outputs : int
        K, the number of columns of the parameter matrix.
    single_output : bool
        Whether ``y`` was 1-D with a loss of one output per column: the model then
        reports coef (d,) and a float intercept.
    """
    name = type(loss).__name__
    n = X.shape[0]
    if loss.kind == "multinomial":
        y = _check_y(y, n, allow_2d=False, loss_name=name)
        codes = _class_codes(y)
        return codes.astype(X.dtype).reshape(n, 1), int(codes.max()) + 1, False
    y = _check_y(y, n, allow_2d=True)
    single_output = y.ndim == 1
    Y = y.reshape(n, -1)
    if loss.kind == "binary":
        _check_binary_labels(Y, name)
        if loss.code in SIGNED_LABEL_LOSSES:
            Y = 2.0 * Y - 1.0
    return np.ascontiguousarray(Y, dtype=X.dtype), Y.shape[1], single_output


def _class_codes(y: np.ndarray) -> np.ndarray:
    """Integer class codes 0..K-1 (K >= 2) from a real 1-D array, or a ``ValueError``."""
    bad = y[(y != np.round(y)) | (y < 0)]
    if bad.size:
        raise ValueError(
            f"y must hold integer class codes 0, 1, ..., K-1 for the multinomial loss, "
            f"found {bad[0]!r}"
        )
    codes = y.astype(np.int64)
    if codes.max() < 1:
        raise ValueError(
            f"y must hold at least two classes (codes 0..K-1, K >= 2) for the multinomial "
            f"loss, found only class {int(codes.max())}"
        )
    return codes


def check_sample_weight(
    sample_weight: object, n: int, dtype: np.dtype, mean: float | None = None
) -> np.ndarray:
    """Per-sample weights, rescaled to mean 1, in ``dtype``.

    Parameters
    ----------
    sample_weight : array-like, shape (n,)
        Finite, >= 0, not all 0.
    n : int
        Number of samples.
    dtype : numpy dtype
        The data's float dtype.
    mean : float, optional
        The mean to divide by (the weights' own by default; over every process's rows
        when several processes train together).

    Returns
    -------
    ndarray, shape (n,)
        ``sample_weight / mean(sample_weight)`` (computed in float64): a batch objective is
        ``(1/m)·Σ_i s_i·loss_i``, so a full batch weighs each sample by its share of the
        total weight, exactly as repeating rows would, and unit weights stay exactly 1.
        A new array (the caller's is never modified).
    """
    reject_sparse("sample_weight", sample_weight)
    s = _as_real_array("sample_weight", sample_weight)
    if s.shape != (n,):
        raise ValueError(f"sample_weight must have shape ({n},), got {_describe(s)}")
    _check_finite("sample_weight", s)
    negative = s[s < 0]
    if negative.size:
        raise ValueError(f"sample_weight must be >= 0, found {negative[0]!r}")
    s64 = s.astype(np.float64)
    if mean is None:
        total = s64.sum()
        if total == 0:
            raise ValueError("sample_weight must not be all zero")
        mean = total / n
    return (s64 / mean).astype(dtype)


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


def epoch_orders(
    rng: np.random.Generator | SklearnShuffle, n: int, n_epochs: int, shuffle: bool
) -> np.ndarray:
    """Sample order of each epoch, drawn in numpy so that every backend walks the same batches.

    Parameters
    ----------
    rng : numpy.random.Generator or SklearnShuffle
        Source of the permutations: a Generator gives ``n_epochs`` raw 64-bit outputs,
        each the seed of one epoch's Fisher–Yates shuffle (:mod:`fastgd.permutations`);
        a :class:`~fastgd.sklearn_shuffle.SklearnShuffle` gives scikit-learn SGD's next
        ``n_epochs`` orders (each epoch reshuffles the last one).
    n, n_epochs : int
        Samples and epochs.
    shuffle : bool
        If false every epoch visits the samples in order 0..n-1.

    Returns
    -------
    ndarray of int64, shape (n_epochs, n)
        Without shuffling, a read-only view of one row 0..n-1 repeated (stride 0): no
        (n_epochs, n) array is built.
    """
    in_order = np.arange(n, dtype=np.int64)
    if not shuffle:
        return np.broadcast_to(in_order, (n_epochs, n))
    if isinstance(rng, SklearnShuffle):
        return rng.epoch_orders(n, n_epochs)
    return permutations(rng, n, n_epochs)


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
