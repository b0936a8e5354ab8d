"""K outputs, the new losses and sample weights: fastgd's backends against their peers.

Problems (float64 and float32; ``small`` is smoke-tested by plain ``pytest``, ``large`` is
``slow``), each result checked against a float64 reference computed outside the timing:

- ``ovr``: one-vs-rest hinge, K = 10 classes, per-sample SGD, constant lr 1e-3, l2 penalty
  1e-4, 5 epochs, no shuffle, float64 only (in float32 the hinge's kink decisions flip
  with the rounding, so runs drift apart by more than a float32 tolerance can say); reference
  and peer: scikit-learn's ``SGDClassifier``
  (``n_jobs=1`` and ``n_jobs=-1``), which trains the classes one after another (or one per
  core) where fastgd trains all ten in one pass over X.
- ``softmax_full``: multinomial, K = 10, one full-batch GD epoch (lr 0.5) through ``fit``
  (input checks included);
  floor: one numpy ``X @ W`` with W of shape (d, K) (the gradient needs that product, its
  transpose and K exponentials per row). Reference: the numpy backend in float64.
- ``softmax_mb64``: multinomial, K = 10, mini-batch Adam (batch 64, lr 1e-3, 2 epochs,
  shuffled from seed 0); peer: an optax ``jit`` + ``lax.scan`` loop of the same softmax
  objective. Reference: the numpy backend in float64.
- ``weights``: mini-batch Adam on the squared loss, batch 64, 5 epochs, with and without
  sample weights (the cost of the weights). Reference: the numpy backend in float64.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
from benchutil import (
    DTYPES,
    TOL_FIT,
    assert_close,
    data,
    run_benchmark,
    set_group,
    size_params,
    time_first_call,
)
from peers import OptaxLoop, sklearn_sgd_classifier

import fastgd

K = 10
OVR_SHAPES = {"small": (2_048, 20), "large": (200_000, 100)}
SOFTMAX_FULL_SHAPES = {"small": (4_096, 16), "large": (1_000_000, 64)}
SOFTMAX_MB_SHAPES = {"small": (2_048, 16), "large": (200_000, 64)}
WEIGHT_SHAPES = {"small": (512, 32), "large": (200_000, 100)}
OVR = dict(alpha=1e-4, lr=1e-3, epochs=5)
SOFTMAX_FULL = dict(optimizer=fastgd.SGD(lr=0.5), epochs=1)
SOFTMAX_MB = dict(optimizer=fastgd.Adam(lr=1e-3), batch_size=64, epochs=2, seed=0)
WEIGHTED = dict(optimizer=fastgd.Adam(lr=1e-3), batch_size=64, epochs=5, seed=0)

dtypes = pytest.mark.parametrize("dtype", DTYPES)


@functools.cache
def classes(n: int, d: int, dtype: str) -> tuple[np.ndarray, np.ndarray]:
    """A K-class problem: class codes from a noisy linear rule (float32 = rounded float64)."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((n, d))
    codes = np.argmax(X @ rng.standard_normal((d, K)) + rng.standard_normal((n, K)), axis=1)
    return X.astype(dtype), codes


def params(result: fastgd.FitResult) -> np.ndarray:
    """``coef`` then ``intercept`` as one (d + 1, K) (or (d + 1,)) array."""
    return np.vstack([result.coef.reshape(result.coef.shape[0], -1),
                      np.reshape(result.intercept, (1, -1))]).squeeze()


# ------------------------------------------------------------------ one-vs-rest hinge


def ovr_fit(X, codes, backend):
    return params(fastgd.fit(
        X, np.eye(K)[codes], loss="hinge", optimizer=fastgd.SGD(lr=OVR["lr"]), batch_size=1,
        epochs=OVR["epochs"], penalty="l2", alpha=OVR["alpha"], shuffle=False, backend=backend,
    ))


@functools.cache
def ovr_reference(size: str, dtype: str) -> np.ndarray:
    X, codes = classes(*OVR_SHAPES[size], dtype)
    return sklearn_sgd_classifier(X.astype(np.float64), codes, "hinge", OVR["alpha"],
                                  OVR["lr"], OVR["epochs"], n_jobs=1)


@pytest.mark.parametrize("dtype", ["float64"])
@pytest.mark.parametrize("size", size_params(OVR_SHAPES))
def test_ovr_hinge_sgd(benchmark, backend, size, dtype):
    if backend == "numpy" and size == "large":
        pytest.skip("a Python step per sample: minutes on the large problem")
    X, codes = classes(*OVR_SHAPES[size], dtype)
    set_group(benchmark, "ovr_hinge", X.shape, dtype, "sgd1", f"fastgd[{backend}]")
    run = lambda: ovr_fit(X, codes, backend)  # noqa: E731
    time_first_call(benchmark, run)
    theta = run_benchmark(benchmark, run, heavy_seconds=benchmark.extra_info["first_call_s"])
    assert_close(theta, ovr_reference(size, dtype), dtype, TOL_FIT, f"{backend} one-vs-rest")


@pytest.mark.parametrize("dtype", ["float64"])
@pytest.mark.parametrize("n_jobs", [1, -1], ids=["n_jobs=1", "n_jobs=-1"])
@pytest.mark.parametrize("size", size_params(OVR_SHAPES))
def test_ovr_sklearn(benchmark, size, n_jobs, dtype):
    X, codes = classes(*OVR_SHAPES[size], dtype)
    runner = f"scikit-learn n_jobs={n_jobs}"
    set_group(benchmark, "ovr_hinge", X.shape, dtype, "sgd1", runner)
    run = lambda: sklearn_sgd_classifier(  # noqa: E731
        X, codes, "hinge", OVR["alpha"], OVR["lr"], OVR["epochs"], n_jobs
    )
    theta = run_benchmark(benchmark, run, heavy_seconds=5.0 if size == "large" else None)
    assert_close(theta, ovr_reference(size, dtype), dtype, TOL_FIT, runner)


# ------------------------------------------------------------------------ multinomial


@functools.cache
def softmax_reference(shapes_name: str, size: str, dtype: str) -> np.ndarray:
    shape, kwargs = SOFTMAX[shapes_name]
    X, codes = classes(*shape[size], dtype)
    result = fastgd.fit(X.astype(np.float64), codes, loss="multinomial", backend="numpy",
                        **kwargs)
    return params(result)


SOFTMAX = {"full": (SOFTMAX_FULL_SHAPES, SOFTMAX_FULL), "mb64": (SOFTMAX_MB_SHAPES, SOFTMAX_MB)}


@dtypes
@pytest.mark.parametrize("mode", list(SOFTMAX))
@pytest.mark.parametrize("size", size_params(SOFTMAX_FULL_SHAPES))
def test_softmax_fit(benchmark, backend, size, mode, dtype):
    shapes, kwargs = SOFTMAX[mode]
    X, codes = classes(*shapes[size], dtype)
    set_group(benchmark, "softmax", X.shape, dtype, mode, f"fastgd[{backend}]")
    run = lambda: params(  # noqa: E731
        fastgd.fit(X, codes, loss="multinomial", backend=backend, **kwargs)
    )
    if backend != "numpy":
        time_first_call(benchmark, run)
    theta = run_benchmark(benchmark, run,
                          heavy_seconds=benchmark.extra_info.get("first_call_s", 3.0))
    assert_close(theta, softmax_reference(mode, size, dtype), dtype, TOL_FIT,
                 f"{backend} multinomial {mode}")


@dtypes
@pytest.mark.parametrize("size", size_params(SOFTMAX_FULL_SHAPES))
def test_softmax_matmul_floor(benchmark, size, dtype):
    """One ``X @ W`` (W of shape (d, K)): the memory-bound floor of a full-batch epoch."""
    X, _ = classes(*SOFTMAX_FULL_SHAPES[size], dtype)
    W = np.linspace(-1, 1, X.shape[1] * K).reshape(X.shape[1], K).astype(dtype)
    set_group(benchmark, "softmax", X.shape, dtype, "full", "numpy X @ W")
    P = run_benchmark(benchmark, lambda: X @ W)
    assert_close(P, X.astype(np.float64) @ W.astype(np.float64), dtype,
                 {"float64": 1e-12, "float32": 1e-5}, "X @ W")


@dtypes
@pytest.mark.parametrize("size", size_params(SOFTMAX_MB_SHAPES))
def test_softmax_optax_loop(benchmark, size, dtype):
    pytest.importorskip("optax")
    X, codes = classes(*SOFTMAX_MB_SHAPES[size], dtype)
    set_group(benchmark, "softmax", X.shape, dtype, "mb64", "optax loop")
    orders = fastgd.data.epoch_orders(np.random.default_rng(0), X.shape[0],
                                      SOFTMAX_MB["epochs"], True)
    loop = OptaxLoop(X, codes.astype(dtype), orders, SOFTMAX_MB["batch_size"], "adam", 1e-3,
                     n_classes=K)
    time_first_call(benchmark, loop)
    theta = run_benchmark(benchmark, loop, heavy_seconds=benchmark.extra_info["first_call_s"])
    assert_close(theta, softmax_reference("mb64", size, dtype), dtype, TOL_FIT,
                 "optax softmax loop")


# ---------------------------------------------------------------------------- weights


@functools.cache
def weights_reference(size: str, dtype: str, weighted: bool) -> np.ndarray:
    X, y = data(*WEIGHT_SHAPES[size], dtype)
    w = sample_weight(X.shape[0]) if weighted else None
    return params(fastgd.fit(X.astype(np.float64), y.astype(np.float64), sample_weight=w,
                             backend="numpy", **WEIGHTED))


def sample_weight(n: int) -> np.ndarray:
    return np.random.default_rng(1).uniform(0.0, 2.0, n)


@dtypes
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("size", size_params(WEIGHT_SHAPES))
def test_sample_weight_cost(benchmark, backend, size, weighted, dtype):
    X, y = data(*WEIGHT_SHAPES[size], dtype)
    w = sample_weight(X.shape[0]) if weighted else None
    label = f"fastgd[{backend}] {'weighted' if weighted else 'unweighted'}"
    set_group(benchmark, "weights", X.shape, dtype, "mb64", label)
    run = lambda: params(fastgd.fit(X, y, sample_weight=w, backend=backend, **WEIGHTED))  # noqa: E731
    if backend != "numpy":
        time_first_call(benchmark, run)
    theta = run_benchmark(benchmark, run,
                          heavy_seconds=benchmark.extra_info.get("first_call_s", 3.0))
    assert_close(theta, weights_reference(size, dtype, weighted), dtype, TOL_FIT, label)
