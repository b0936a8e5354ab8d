"""The scikit-learn estimators: what ``GDClassifier`` adds over ``fastgd.fit``, and against
``SGDClassifier`` on the same 10-class problem.

Problem (as ``test_bench_outputs.py``'s one-vs-rest): 10 classes, hinge, per-sample SGD,
constant lr 1e-3, l2 1e-4, 5 epochs, no shuffle, ``tol=None``, float64; ``small`` is
smoke-tested by plain ``pytest``, ``large`` (200,000 x 100) is ``slow``. Runners:
``GDClassifier(backend=...)``, the same training through ``fastgd.fit`` (one-hot targets),
and ``SGDClassifier`` with ``n_jobs=1`` and ``n_jobs=-1``. Every result is checked against
``SGDClassifier(n_jobs=1)``'s coefficients (float64 reference, computed once).
"""

from __future__ import annotations

import functools
import warnings

import numpy as np
import pytest
from benchutil import TOL_FIT, assert_close, run_benchmark, set_group, size_params, time_first_call
from test_bench_outputs import OVR, OVR_SHAPES, classes, ovr_fit

import fastgd

PARAMS = dict(loss="hinge", penalty="l2", alpha=OVR["alpha"], learning_rate="constant",
              eta0=OVR["lr"], max_iter=OVR["epochs"], tol=None, shuffle=False)


def sklearn_fit(X, y, n_jobs):
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import SGDClassifier

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model = SGDClassifier(n_jobs=n_jobs, **PARAMS).fit(X, y)
    return np.vstack([model.coef_.T, model.intercept_[None, :]])


@functools.cache
def reference(size: str) -> np.ndarray:
    return sklearn_fit(*classes(*OVR_SHAPES[size], "float64"), n_jobs=1)


def estimator_fit(X, y, backend):
    model = fastgd.GDClassifier(backend=backend, **PARAMS).fit(X, y)
    return np.vstack([model.coef_.T, model.intercept_[None, :]])


@pytest.mark.parametrize("size", size_params(OVR_SHAPES))
def test_gdclassifier(benchmark, backend, size):
    if backend == "numpy" and size == "large":
        pytest.skip("a Python step per sample: minutes on the large problem")
    X, y = classes(*OVR_SHAPES[size], "float64")
    set_group(benchmark, "estimator", X.shape, "float64", "hinge10", f"GDClassifier[{backend}]")
    run = lambda: estimator_fit(X, y, backend)  # noqa: E731
    time_first_call(benchmark, run)
    theta = run_benchmark(benchmark, run, heavy_seconds=benchmark.extra_info["first_call_s"])
    assert_close(theta, reference(size), "float64", TOL_FIT, f"GDClassifier {backend}")


@pytest.mark.parametrize("size", size_params(OVR_SHAPES))
def test_fit_same_training(benchmark, backend, size):
    if backend == "numpy" and size == "large":
        pytest.skip("a Python step per sample: minutes on the large problem")
    X, y = classes(*OVR_SHAPES[size], "float64")
    set_group(benchmark, "estimator", X.shape, "float64", "hinge10", f"fastgd.fit[{backend}]")
    run = lambda: ovr_fit(X, y, backend)  # noqa: E731
    time_first_call(benchmark, run)
    theta = run_benchmark(benchmark, run, heavy_seconds=benchmark.extra_info["first_call_s"])
    assert_close(theta, reference(size), "float64", TOL_FIT, f"fit {backend}")


@pytest.mark.parametrize("n_jobs", [1, -1], ids=["n_jobs=1", "n_jobs=-1"])
@pytest.mark.parametrize("size", size_params(OVR_SHAPES))
def test_sgdclassifier(benchmark, size, n_jobs):
    X, y = classes(*OVR_SHAPES[size], "float64")
    runner = f"SGDClassifier n_jobs={n_jobs}"
    set_group(benchmark, "estimator", X.shape, "float64", "hinge10", runner)
    theta = run_benchmark(benchmark, lambda: sklearn_fit(X, y, n_jobs),
                          heavy_seconds=5.0 if size == "large" else None)
    assert_close(theta, reference(size), "float64", TOL_FIT, runner)
