"""Whole training runs: ``fastgd.fit`` on every backend, and the peers, in the same tables.

Modes (see ``benchutil.MODES``), 5 epochs each, on 512 x 32 (in cache, smoke-tested by
plain ``pytest``) and 200,000 x 100 (memory-bound, ``slow``):

- ``full``: full-batch GD, SGD lr 0.1;
- ``mb64``: mini-batch Adam, batch 64, lr 1e-3, epochs shuffled from seed 0;
- ``sgd1``: SGD, batch 1, constant lr 1e-3, no shuffle — scikit-learn's ``SGDRegressor``
  with ``penalty=None, learning_rate="constant", shuffle=False, tol=None``.

On the large shape these are the target problems of the numba and jax backends. Peers run
the same data, batch order and algorithm: scikit-learn (sgd1), a jitted optax loop over
``lax.scan`` (all modes; also timed "from host", moving X, y and the order to the device
inside the timed call, the same end-to-end work as ``fit``), a plain PyTorch loop (all
modes, when torch is installed) and the naive per-sample numpy loop (sgd1). Every final
parameter vector is checked against the float64 reference of ``benchutil.reference_fit``.

``fastgd.fit`` is timed from host numpy arrays, input checks and the host-to-device copy
included. For mini-batch Adam and batch-1 SGD, ``fastgd[jax] run_epochs`` also times the jax
backend's training loop alone, on data already on the device, like the optax loop's
default timing.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from benchutil import (
    DTYPES,
    FIT_SHAPES,
    MODES,
    TOL_FIT,
    assert_close,
    data,
    fastgd_fit,
    reference_fit,
    run_benchmark,
    set_group,
    size_params,
    time_first_call,
)
from peers import OptaxLoop, naive_numpy_sgd, sklearn_sgd, torch_loop

from fastgd.specs import Squared, lower_model, lower_optimizer

dtypes = pytest.mark.parametrize("dtype", DTYPES)
sizes = pytest.mark.parametrize("size", size_params(FIT_SHAPES))
modes = pytest.mark.parametrize("mode_name", list(MODES))


def _setup(benchmark, size: str, dtype: str, mode_name: str, runner: str):
    shape = FIT_SHAPES[size]
    X, y = data(*shape, dtype)
    set_group(benchmark, "fit", shape, dtype, mode_name, runner)
    return X, y, MODES[mode_name], reference_fit(shape, dtype, mode_name)


@dtypes
@modes
@sizes
def test_fit(benchmark, backend, size, mode_name, dtype):
    X, y, mode, reference = _setup(benchmark, size, dtype, mode_name, f"fastgd[{backend}]")
    run = lambda: fastgd_fit(X, y, mode, backend)  # noqa: E731
    if backend != "numpy":  # nothing to compile in the numpy backend
        time_first_call(benchmark, run)
    expected = {"large": 60.0 if backend == "numpy" and mode_name == "sgd1" else 2.0}
    theta = run_benchmark(
        benchmark, run,
        heavy_seconds=benchmark.extra_info.get("first_call_s", expected.get(size, 0.0)),
    )
    assert_close(theta, reference, dtype, TOL_FIT, f"fastgd {backend} {mode_name}")
    assert theta.dtype == X.dtype, "dtype in must be dtype out"


@dtypes
@pytest.mark.parametrize("mode_name", ["mb64", "sgd1"])
@sizes
def test_jax_run_epochs(benchmark, size, mode_name, dtype):
    """The jax backend's ``run_epochs`` alone, X and y already on the device."""
    pytest.importorskip("jax")
    import fastgd.backends.jax as jb

    X, y, mode, reference = _setup(benchmark, size, dtype, mode_name, "fastgd[jax] run_epochs")
    n, d = X.shape
    batch, theta0 = jb.prepare(X, y[:, None], np.zeros((d + 1, 1), dtype=X.dtype))
    orders = mode.orders(n)
    model = lower_model(Squared(), 0.0, 0.0, True)
    opt = lower_optimizer(mode.optimizer)

    def run():
        theta, _, _ = jb.run_epochs(
            batch, theta0, jb.init_state(theta0, opt), orders, mode.batch(n), model, opt
        )
        return np.asarray(theta)[:, 0]

    time_first_call(benchmark, run)
    theta = run_benchmark(benchmark, run, heavy_seconds=benchmark.extra_info["first_call_s"])
    assert_close(theta, reference, dtype, TOL_FIT, f"jax run_epochs {mode_name}")
    assert theta.dtype == X.dtype, "dtype in must be dtype out"


@dtypes
@sizes
def test_sklearn_sgd(benchmark, size, dtype):
    X, y, mode, reference = _setup(benchmark, size, dtype, "sgd1", "scikit-learn")
    theta = run_benchmark(
        benchmark, lambda: sklearn_sgd(X, y, mode.lr, mode.epochs),
        heavy_seconds=2.0 if size == "large" else None,
    )
    assert_close(theta, reference, dtype, TOL_FIT, "scikit-learn SGDRegressor")


@dtypes
@sizes
def test_naive_numpy_sgd(benchmark, size, dtype):
    X, y, mode, reference = _setup(benchmark, size, dtype, "sgd1", "naive numpy loop")
    theta = run_benchmark(
        benchmark, lambda: naive_numpy_sgd(X, y, mode.lr, mode.epochs),
        heavy_seconds=10.0 if size == "large" else None,
    )
    assert_close(theta, reference, dtype, TOL_FIT, "naive numpy loop")


@dtypes
@modes
@sizes
def test_optax_loop(benchmark, size, mode_name, dtype):
    pytest.importorskip("optax")
    X, y, mode, reference = _setup(benchmark, size, dtype, mode_name, "optax loop")
    loop = OptaxLoop(X, y, mode.orders(X.shape[0]), mode.batch(X.shape[0]), mode.opt, mode.lr)
    time_first_call(benchmark, loop)
    theta = run_benchmark(benchmark, loop, heavy_seconds=benchmark.extra_info["first_call_s"])
    assert_close(theta, reference, dtype, TOL_FIT, f"optax {mode.opt} loop")


@dtypes
@pytest.mark.parametrize("mode_name", ["mb64", "sgd1"])
@sizes
def test_optax_loop_from_host(benchmark, size, mode_name, dtype):
    """The optax loop, with X, y and the order moved to the device inside the timed call."""
    pytest.importorskip("optax")
    X, y, mode, reference = _setup(benchmark, size, dtype, mode_name, "optax loop from host")
    orders = mode.orders(X.shape[0])
    loop = OptaxLoop(X, y, orders, mode.batch(X.shape[0]), mode.opt, mode.lr)
    run = lambda: loop.from_host(X, y, orders)  # noqa: E731
    time_first_call(benchmark, run)
    theta = run_benchmark(benchmark, run, heavy_seconds=benchmark.extra_info["first_call_s"])
    assert_close(theta, reference, dtype, TOL_FIT, f"optax {mode.opt} loop from host")


@dtypes
@modes
@sizes
def test_torch_loop(benchmark, size, mode_name, dtype):
    pytest.importorskip("torch")
    if size == "large" and mode_name == "sgd1" and not os.environ.get("FASTGD_BENCH_HEAVY"):
        pytest.skip("1,000,000 one-sample torch steps take minutes; FASTGD_BENCH_HEAVY=1 runs it")
    X, y, mode, reference = _setup(benchmark, size, dtype, mode_name, "torch loop")
    orders = mode.orders(X.shape[0])
    run = lambda: torch_loop(X, y, orders, mode.batch(X.shape[0]), mode.opt, mode.lr)  # noqa: E731
    heavy = {"full": 1.5, "mb64": 5.0, "sgd1": 60.0}[mode_name] if size == "large" else None
    theta = run_benchmark(benchmark, run, heavy_seconds=heavy)
    assert_close(theta, reference, dtype, TOL_FIT, f"torch {mode.opt} loop")
