"""Sparse input: scipy.sparse matrices and arrays as ``X``, checked once and made canonical.

:func:`check_sparse_X` is what :func:`fastgd.data.check_X` calls for a sparse ``X``. The
kernels then read a CSR matrix in canonical form: rows as ``indptr`` ranges, each row's
column indices strictly increasing (sorted, no duplicates), float32 or float64 values.
The numpy backend uses the scipy matrix itself (its products); the numba and jax
backends read its arrays as a :class:`CsrRows` (:func:`csr_rows`: no copy of the stored
values).

What is converted, once, before any work (the caller's matrix is never modified):

- CSR is used as it is (the same object, when nothing below applies); CSC, COO and the
  other formats are converted to CSR (a copy);
- int and bool values become float64 (a copy of the values);
- unsorted column indices or duplicate entries are made canonical on a copy (duplicates
  summed, as scipy's ``sum_duplicates``);
- an ``indptr`` whose integer type differs from the indices' is cast to theirs.

X is never densified. Explicit zeros are kept (they cost time, not correctness); a
matrix with no stored values at all is a valid input (every row is zero).

What is refused, with an error naming ``X`` (or the argument): stored values that are
NaN or infinite; a shape with no row or no column; a broken structure (``indptr`` not
starting at 0 or decreasing, column indices negative or not below the number of
columns); values that are not real numbers. A sparse ``y`` or ``sample_weight`` is a
``TypeError`` (:func:`reject_sparse`).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .specs import OPT_SGD, PA_SCHEDULES, LoweredModel, LoweredOptimizer

__all__ = [
    "CsrRows", "is_sparse", "check_sparse_X", "reject_sparse", "csr_arrays", "csr_rows",
    "starting_norms", "kept_norms", "keeps_running_norms",
]

#: Stored values checked per slice when proving them finite (bounds the temporaries).
_CHECK_SLICE = 1 << 22


def is_sparse(value: object) -> bool:
    """Whether ``value`` is a scipy.sparse matrix or array (scipy is imported only if it
    is already loaded: a caller with a sparse matrix has imported it)."""
    import sys

    module = sys.modules.get("scipy.sparse")
    return module is not None and module.issparse(value)


def reject_sparse(name: str, value: object) -> None:
    """Raise a ``TypeError`` naming ``name`` when ``value`` is sparse (only ``X`` may be)."""
    if is_sparse(value):
        raise TypeError(
            f"{name} must be a dense array-like, got a scipy.sparse {value.format} "
            f"{type(value).__name__} of shape {value.shape} (only X may be sparse)"
        )


def _describe(X) -> str:
    return f"{type(X).__name__} ({X.format}) of dtype {X.dtype}, shape {X.shape}"


def _as_csr(X):
    """X in CSR format: the same object if it is CSR already, else a converted copy."""
    if X.format == "csr":
        return X
    return X.tocsr()


def _float_values(X, dtype):
    """X with float32/float64 values (ints and bools become float64), or ``dtype``."""
    kind = X.dtype.kind
    if dtype is not None:
        target = np.dtype(dtype)
    elif kind in "biu":
        target = np.dtype(np.float64)
    elif kind == "f" and X.dtype.itemsize in (4, 8):
        return X
    else:
        raise TypeError(
            f"X must have real numeric values (float32, float64, int or bool), got "
            f"{_describe(X)}"
        )
    return X if X.dtype == target else X.astype(target)


def _check_structure(X, n_features: int | None) -> None:
    """The shape, ``indptr`` and column indices of a CSR matrix, or a ``ValueError``."""
    n, d = X.shape
    if n < 1 or d < 1:
        raise ValueError(f"X must have at least one sample and one feature, got {_describe(X)}")
    if n_features is not None and d != n_features:
        raise ValueError(f"X must have {n_features} features, got {_describe(X)}")
    indptr, indices = X.indptr, X.indices
    if indptr.ndim != 1 or indptr.shape[0] != n + 1:
        raise ValueError(
            f"X.indptr must have n_samples + 1 = {n + 1} entries, got shape {indptr.shape}"
        )
    if indptr[0] != 0 or (n > 0 and np.any(indptr[1:] < indptr[:-1])):
        raise ValueError("X.indptr must start at 0 and never decrease (a broken CSR matrix)")
    nnz = int(indptr[-1])
    if nnz > indices.shape[0] or nnz > X.data.shape[0]:
        raise ValueError(
            f"X.indptr ends at {nnz} stored values, but X has only "
            f"{min(indices.shape[0], X.data.shape[0])}"
        )
    if nnz:
        stored = indices[:nnz]
        low, high = int(stored.min()), int(stored.max())
        if low < 0 or high >= d:
            bad = low if low < 0 else high
            raise ValueError(
                f"X has a column index {bad} outside [0, {d}) (negative or out of range)"
            )


def _check_finite_values(X) -> None:
    """Every stored value of X is finite, or a ``ValueError`` naming the first bad one.

    Slices of the values are summed (a finite sum proves every entry finite) without a
    temporary of the size of X.
    """
    values = X.data[: int(X.indptr[-1])]
    for start in range(0, values.shape[0], _CHECK_SLICE):
        part = values[start : start + _CHECK_SLICE]
        with np.errstate(over="ignore", invalid="ignore"):
            if np.isfinite(part.sum(dtype=np.float64)):
                continue
        bad = np.flatnonzero(~np.isfinite(part))
        if bad.size:
            position = start + int(bad[0])
            row = int(np.searchsorted(X.indptr, position, side="right")) - 1
            raise ValueError(
                f"X must be finite (no NaN or inf among its stored values), found "
                f"{values[position].item()!r} at row {row}, column {int(X.indices[position])}"
            )


def _same_index_types(X):
    """X with ``indptr`` in the integer type of its column indices (a new matrix if cast)."""
    if X.indptr.dtype == X.indices.dtype:
        return X
    indices, indptr = X.indices, X.indptr
    if np.can_cast(indices.dtype, np.int64) and int(indptr[-1]) <= np.iinfo(indices.dtype).max:
        indptr = indptr.astype(indices.dtype)
    else:
        indices = indices.astype(np.int64)
        indptr = indptr.astype(np.int64)
    return _rebuilt(X, X.data, indices, indptr)


def _rebuilt(X, data, indices, indptr):
    """A CSR matrix of X's class (matrix or array) from these arrays, kept as given.

    scipy's constructor may re-cast the index arrays; they are put back afterwards, so
    the arrays (and their integer types) are the ones given.
    """
    out = type(X)((data, indices, indptr), shape=X.shape, copy=False)
    out.indices, out.indptr = indices, indptr
    return out


def _is_canonical(X) -> bool:
    """Whether each row's column indices strictly increase (sorted, no duplicates).

    Asked of scipy's compiled check, never of the cached flags of the caller's object
    (which a caller who edited the indices in place may have left stale).
    """
    try:
        from scipy.sparse import _sparsetools

        return bool(
            _sparsetools.csr_has_canonical_format(X.shape[0], X.indptr, X.indices)
        )
    except (ImportError, AttributeError, TypeError, ValueError):  # a scipy without it
        for start in range(X.shape[0]):
            row = X.indices[X.indptr[start] : X.indptr[start + 1]]
            if row.shape[0] > 1 and np.any(row[1:] <= row[:-1]):
                return False
        return True


def _canonical(X):
    """X with sorted column indices and no duplicates: X itself, or a canonical copy."""
    if _is_canonical(X):
        return X
    fixed = X.copy()
    fixed.has_sorted_indices = False  # no flag cached on the caller's object is trusted
    fixed.sum_duplicates()  # sorts the indices and sums duplicates, on the copy
    return fixed


def check_sparse_X(X: object, *, n_features: int | None = None, dtype=None):
    """Check a sparse feature matrix and return it as a canonical CSR matrix.

    Parameters
    ----------
    X : scipy.sparse matrix or array, shape (n, d)
        Any format; real numeric values; n >= 1, d >= 1.
    n_features : int, optional
        If given, ``d`` must equal it.
    dtype : numpy dtype, optional
        If given, the values are cast to it (a fitted model's dtype).

    Returns
    -------
    scipy.sparse CSR matrix or array (X's own class), shape (n, d)
        float32 or float64 values, every stored value finite, column indices sorted
        and unique within each row, ``indptr`` of the indices' integer type (int32 or
        int64). The caller's object itself when it is all that already, else a new one
        (the caller's arrays are never written to).

    Raises
    ------
    TypeError
        For values that are not real numbers.
    ValueError
        For an empty shape, a broken structure (see the module docstring), NaN or inf
        among the stored values, or a ``d`` other than ``n_features``.
    """
    if X.ndim != 2:
        raise ValueError(f"X must be 2-D (n_samples, n_features), got {_describe(X)}")
    X = _float_values(_as_csr(X), dtype)
    _check_structure(X, n_features)
    _check_finite_values(X)
    return _canonical(_same_index_types(X))


def csr_arrays(X) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The three arrays of a checked CSR matrix as the kernels take them.

    Returns
    -------
    indptr : ndarray of int64, shape (n + 1,)
        Row ``i``'s stored values are at positions ``indptr[i]..indptr[i + 1] - 1``
        (int64 always: one compiled type, a copy of n + 1 numbers at most).
    indices : ndarray of int32 or int64, shape (nnz,)
        Column indices, as stored (no copy).
    values : ndarray of float32 or float64, shape (nnz,)
        Stored values, as stored (no copy).
    """
    nnz = int(X.indptr[-1])
    indptr = np.ascontiguousarray(X.indptr, dtype=np.int64)
    return indptr, np.ascontiguousarray(X.indices[:nnz]), np.ascontiguousarray(X.data[:nnz])


class CsrRows(NamedTuple):
    """A checked CSR matrix as plain arrays: what the numba and jax backends' sparse
    kernels read (the ``X`` of their sparse ``Data``).

    Attributes
    ----------
    indptr : array of int64, shape (n + 1,)
    indices : array of int32 or int64, shape (nnz,)
        Sorted and unique within each row.
    values : array of float32 or float64, shape (nnz,)
    n_features : int
        d, the number of columns.
    """

    indptr: object
    indices: object
    values: object
    n_features: int

    @property
    def shape(self) -> tuple[int, int]:
        """(n, d)."""
        return (int(self.indptr.shape[0]) - 1, int(self.n_features))

    @property
    def dtype(self) -> np.dtype:
        """The values' dtype."""
        return np.dtype(self.values.dtype)


def csr_rows(X) -> CsrRows:
    """A checked scipy CSR matrix (or a :class:`CsrRows`, returned as it is) as
    :class:`CsrRows` on the host (see :func:`csr_arrays`: no copy of the stored values)."""
    if isinstance(X, CsrRows):
        return X
    return CsrRows(*csr_arrays(X), int(X.shape[1]))


def starting_norms(theta) -> np.ndarray:
    """scikit-learn's ``WeightVector`` norms at the start of a fit, per output: row 0 the
    squared l2 norms ``Σ_j W[j, k]²``, row 1 the l1 norms ``Σ_j |W[j, k]|`` of the weights
    ``W = theta[:-1]`` (theta (d + 1, K), any backend's array), float64 (2, K) on the host.

    The per-sample loops keep them as scikit-learn does when ``sklearn_sparse_norms`` is
    set (see :class:`fastgd.specs.LoweredModel`).
    """
    W = np.asarray(theta, dtype=np.float64)[:-1]
    if not W.any():  # a fresh fit: one read, no temporary (2^20 x 20: 50 ms -> 10 ms)
        return np.zeros((2, W.shape[1]))
    return np.stack([np.einsum("jk,jk->k", W, W), np.abs(W).sum(axis=0)])


def keeps_running_norms(model: LoweredModel, opt: LoweredOptimizer, batch_size: int) -> bool:
    """Whether an epoch over sparse rows keeps scikit-learn's running norms (see
    :func:`starting_norms`) for its objective: with ``sklearn_sparse_norms``, in per-sample
    plain SGD (no momentum, no passive-aggressive step), the steps scikit-learn's sparse
    loop takes. The numpy and jax backends ask it; numba's per-sample kernel takes
    ``sklearn_sparse_norms`` itself and leaves them out of a passive-aggressive step's
    objective, as here."""
    plain_sgd = opt.code == OPT_SGD and opt.params[0] == 0.0
    return bool(model.sklearn_sparse_norms) and batch_size == 1 and plain_sgd and (
        opt.schedule_code not in PA_SCHEDULES
    )


def kept_norms(norms, theta) -> np.ndarray:
    """The running norms a sparse data bundle keeps between calls (see
    :func:`starting_norms`), or the starting norms of ``theta`` when it keeps none (a
    bundle built elsewhere than a backend's ``prepare``) or keeps them for another number
    of outputs."""
    if norms is None or norms.shape[1] != theta.shape[1]:
        return starting_norms(theta)
    return norms
