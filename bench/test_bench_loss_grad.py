"""The gradient kernel ``loss_grad``: every backend, full batch / mini-batch 64 / one sample.

The large shape (2,000,000 x 32) is full batch only: it is the memory-bound case, where
one gradient must read X once; ``numpy X @ w`` (one BLAS read of X) sits in the same table
as the practical floor. Mini-batches and single samples are gathered before timing, so
their cost does not depend on the size of X; they run on the small shape.
"""

from __future__ import annotations

import numpy as np
import pytest
from benchutil import (
    DTYPES,
    LOSS_GRAD_SHAPES,
    TOL_KERNEL,
    assert_close,
    data,
    run_benchmark,
    set_group,
    size_params,
    time_first_call,
)

import fastgd
from fastgd.specs import Squared, lower_model

MODEL = lower_model(Squared(), 0.0, 0.0, True)
BATCH_ROWS = {"full": None, "mb64": 64, "sgd1": 1}
CASES = [
    pytest.param(size, mode, id=f"{size}-{mode}", marks=p.marks)
    for p in size_params(LOSS_GRAD_SHAPES)
    for size in p.values
    for mode in BATCH_ROWS
    if size == "small" or mode == "full"
]


def _batch(size: str, dtype: str, mode: str):
    """The batch (rows drawn with seed 1 for mini-batches) and a non-zero theta."""
    n, d = LOSS_GRAD_SHAPES[size]
    X, y = data(n, d, dtype)
    rows = BATCH_ROWS[mode]
    if rows is not None:
        idx = np.random.default_rng(1).choice(n, size=rows, replace=False)
        X, y = np.ascontiguousarray(X[idx]), np.ascontiguousarray(y[idx])
    theta = np.linspace(-1.0, 1.0, d + 1).astype(dtype)[:, None]
    return X, y, theta


def _reference(X: np.ndarray, y: np.ndarray, theta: np.ndarray) -> tuple[float, np.ndarray]:
    """Mean ½ r² and its gradient, written out in float64."""
    X, y, theta = (a.astype(np.float64) for a in (X, y, theta))
    r = X @ theta[:-1, 0] + theta[-1, 0] - y
    grad = (np.append(X.T @ r, r.sum()) / X.shape[0])[:, None]
    return 0.5 * float(r @ r) / X.shape[0], grad


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("size", "mode"), CASES)
def test_loss_grad(benchmark, backend, size, mode, dtype):
    X, y, theta = _batch(size, dtype, mode)
    ref_loss, ref_grad = _reference(X, y, theta)
    kernels = fastgd.get_backend(backend)
    batch, tb = kernels.prepare(X, y[:, None], theta)
    set_group(benchmark, "loss_grad", X.shape, dtype, mode, f"fastgd[{backend}]")
    time_first_call(benchmark, lambda: kernels.loss_grad(batch, tb, MODEL))
    loss, grad = run_benchmark(benchmark, lambda: kernels.loss_grad(batch, tb, MODEL))
    assert_close(grad, ref_grad, dtype, TOL_KERNEL, f"{backend} gradient")
    assert_close(loss, ref_loss, dtype, TOL_KERNEL, f"{backend} loss")
    assert np.asarray(grad).dtype == np.dtype(dtype), "dtype in must be dtype out"


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("size", size_params(LOSS_GRAD_SHAPES))
def test_matvec_floor(benchmark, size, dtype):
    """numpy's ``X @ w``: one read of X by BLAS, the floor a full-batch gradient is held to."""
    X, y, theta = _batch(size, dtype, "full")
    w = theta[:-1]
    set_group(benchmark, "loss_grad", X.shape, dtype, "full", "numpy X @ w")
    p = run_benchmark(benchmark, lambda: X @ w)
    assert_close(p, X.astype(np.float64) @ w.astype(np.float64), dtype, TOL_KERNEL, "X @ w")
