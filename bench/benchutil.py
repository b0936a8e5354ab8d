"""Shared pieces of the benchmark suite: sizes, modes, data, references and timing helpers.

Every benchmark checks the value its timed call returned against a reference computed
outside the timing, in float64, from the same (possibly float32-rounded) data; a wrong fast
answer fails the benchmark.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest
from peers import sklearn_sgd

import fastgd
from fastgd.data import epoch_orders
from fastgd.specs import SGD, Adam, Optimizer

#: Relative tolerance of a result against its float64 reference, by dtype: the error is
#: measured as max |result − reference| / max |reference|. A float32 mean of 2e6 terms
#: summed in float32 blocks is off by up to about eps32·sqrt(n) ≈ 1e-4.
TOL_KERNEL = {"float64": 1e-11, "float32": 1e-4}
TOL_FIT = {"float64": 1e-8, "float32": 2e-3}

DTYPES = ("float32", "float64")

# Shapes: "small" fits in the L2/L3 cache; "large" is memory-bound (well above a 32 MB L3).
LOSS_GRAD_SHAPES = {"small": (4_096, 32), "large": (2_000_000, 32)}
FIT_SHAPES = {"small": (512, 32), "large": (200_000, 100)}
UPDATE_SIZES = {"small": 33, "large": 1_000_001}


def size_params(shapes: dict) -> list:
    """pytest params over ``shapes``' keys, the large one behind the ``slow`` marker."""
    return [
        pytest.param(key, id=key, marks=[pytest.mark.slow] if key == "large" else [])
        for key in shapes
    ]


@dataclass(frozen=True)
class Mode:
    """A batch mode of the whole-fit benchmarks (one training problem).

    Attributes
    ----------
    name : str
        ``full``, ``mb64`` or ``sgd1``.
    optimizer : Optimizer
        fastgd's spec; peers build the same optimizer from ``opt`` and ``lr``.
    opt, lr : str, float
        Optimizer name (``sgd`` or ``adam``) and constant learning rate.
    batch_size : int or None
        None is full batch.
    epochs : int
    shuffle : bool
        Permutations from ``numpy.random.default_rng(0)`` when true.
    """

    name: str
    optimizer: Optimizer
    opt: str
    lr: float
    batch_size: int | None
    epochs: int
    shuffle: bool

    def batch(self, n: int) -> int:
        return n if self.batch_size is None else self.batch_size

    def orders(self, n: int) -> np.ndarray:
        """The sample order of every epoch, exactly as ``fastgd.fit(seed=0)`` draws it."""
        return epoch_orders(np.random.default_rng(0), n, self.epochs, self.shuffle)


MODES = {
    "full": Mode("full", SGD(lr=0.1), "sgd", 0.1, None, 5, False),
    "mb64": Mode("mb64", Adam(lr=1e-3), "adam", 1e-3, 64, 5, True),
    "sgd1": Mode("sgd1", SGD(lr=1e-3), "sgd", 1e-3, 1, 5, False),
}


@functools.cache
def data(n: int, d: int, dtype: str) -> tuple[np.ndarray, np.ndarray]:
    """A regression problem, the same values for both dtypes (float32 is the rounded float64)."""
    X, y, _ = fastgd.make_regression(n, d, dtype=np.float64, seed=0)
    return X.astype(dtype), y.astype(dtype)


def set_group(
    benchmark, kernel: str, shape: tuple[int, ...], dtype: str, mode: str, runner: str
) -> None:
    """Put every backend and peer of one kernel/shape/dtype/mode in one table.

    ``runner`` (``fastgd[numba]``, ``scikit-learn``, …) is saved in ``extra_info``.
    """
    benchmark.group = f"{kernel}|{'x'.join(map(str, shape))}|{dtype}|{mode}"
    benchmark.extra_info["runner"] = runner


def ready(value):
    """Wait for asynchronous (jax) results inside tuples, so timings include the work."""
    if isinstance(value, tuple | list):
        for item in value:
            ready(item)
    elif hasattr(value, "block_until_ready"):
        value.block_until_ready()
    return value


def host64(value) -> np.ndarray:
    """Any backend's array (or scalar) as a float64 numpy array."""
    return np.asarray(value, dtype=np.float64)


def assert_close(result, reference, dtype: str, tol: dict, what: str) -> None:
    """Fail unless ``max|result − reference| <= tol[dtype] · max|reference|``."""
    result, reference = host64(result), host64(reference)
    assert result.shape == reference.shape, f"{what}: shape {result.shape} != {reference.shape}"
    scale = max(float(np.max(np.abs(reference))), np.finfo(np.float64).tiny)
    err = float(np.max(np.abs(result - reference))) / scale
    assert np.isfinite(err) and err <= tol[dtype], (
        f"{what}: relative error {err:.3e} > {tol[dtype]:.0e} ({dtype})"
    )


# ---------------------------------------------------------------------------- fits


def fastgd_fit(X: np.ndarray, y: np.ndarray, mode: Mode, backend: str) -> np.ndarray:
    """``fastgd.fit`` of ``mode``; returns theta = (coef, intercept) in X's dtype."""
    res = fastgd.fit(
        X, y, optimizer=mode.optimizer, batch_size=mode.batch_size, epochs=mode.epochs,
        shuffle=mode.shuffle, seed=0, backend=backend,
    )
    return np.append(res.coef, res.coef.dtype.type(res.intercept))


@functools.cache
def reference_fit(shape: tuple[int, int], dtype: str, mode_name: str) -> np.ndarray:
    """float64 parameters after ``mode`` on the (dtype-rounded) data, computed once.

    Full batch and mini-batch: the numpy backend in float64. SGD with batch 1: scikit-learn's
    ``SGDRegressor`` in float64, which equals the numpy backend to 1e-12 in the test suite and
    is a hundred times faster than it on the large problem.
    """
    X, y = data(*shape, dtype)
    X64, y64 = X.astype(np.float64), y.astype(np.float64)
    mode = MODES[mode_name]
    if mode_name == "sgd1":
        return sklearn_sgd(X64, y64, mode.lr, mode.epochs)
    return fastgd_fit(X64, y64, mode, "numpy")


# -------------------------------------------------------------------------- timing


def time_first_call(benchmark, fn: Callable[[], object]) -> object:
    """Run ``fn`` once untimed (JIT compilation happens here) and record how long it took."""
    start = time.perf_counter()
    out = ready(fn())
    benchmark.extra_info["first_call_s"] = time.perf_counter() - start
    return out


def record_compile_time(benchmark) -> None:
    """``compile_s`` = first call minus the median timed call (when timings were taken)."""
    first = benchmark.extra_info.get("first_call_s")
    stats = getattr(benchmark, "stats", None)
    if first is None or stats is None:
        return
    benchmark.extra_info["compile_s"] = max(0.0, first - stats.stats.median)


def run_benchmark(benchmark, fn: Callable[[], object], *, heavy_seconds: float | None = None):
    """Time ``fn``: auto-calibrated rounds when it is fast, a few fixed rounds when it is slow.

    Parameters
    ----------
    heavy_seconds : float, optional
        Expected seconds per call (e.g. the first call's); above 1 s, fixed rounds
        (3, or 1 above 20 s) replace pytest-benchmark's calibration of at least 5 rounds.
    """
    if heavy_seconds is not None and heavy_seconds > 1.0:
        rounds = 1 if heavy_seconds > 20.0 else 3
        out = benchmark.pedantic(lambda: ready(fn()), rounds=rounds, iterations=1)
    else:
        out = benchmark(lambda: ready(fn()))
    record_compile_time(benchmark)
    return out
