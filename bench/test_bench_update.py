"""The update kernel ``update``: one SGD or Adam step on a parameter vector, every backend.

The update does not depend on the batch, so its "mode" is the optimizer. Sizes: 33
parameters (in cache) and 1,000,001 (the state, three vectors, is memory-bound). Each round
starts from the same snapshot (the state after three warm-up steps, so Adam's moments are
not zero); the numpy backend applied to that snapshot in float64 is the reference.
"""

from __future__ import annotations

import numpy as np
import pytest
from benchutil import (
    DTYPES,
    TOL_KERNEL,
    UPDATE_SIZES,
    assert_close,
    host64,
    ready,
    record_compile_time,
    set_group,
    size_params,
    time_first_call,
)

import fastgd
import fastgd.backends.numpy as numpy_backend
from fastgd.specs import SGD, Adam, lower_optimizer

OPTIMIZERS = {"sgd": lower_optimizer(SGD(lr=0.01)), "adam": lower_optimizer(Adam(lr=0.01))}


def _fresh(value):
    """A copy of host arrays (updated in place by numpy/numba); device arrays are immutable."""
    if isinstance(value, tuple | list):
        return type(value)(_fresh(v) for v in value)
    return value.copy() if isinstance(value, np.ndarray) else value


def _state64(state) -> tuple[int, np.ndarray]:
    step, slots = state
    return int(np.asarray(step)), np.array(slots, dtype=np.float64)  # a copy: update writes it


def _reference(theta, grad, state, opt) -> np.ndarray:
    """The numpy backend's step from the same snapshot, in float64."""
    theta64 = np.array(theta, dtype=np.float64)
    theta64, _ = numpy_backend.update(theta64, host64(grad), _state64(state), opt)
    return theta64


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("opt_name", list(OPTIMIZERS))
@pytest.mark.parametrize("size", size_params(UPDATE_SIZES))
def test_update(benchmark, backend, size, opt_name, dtype):
    p = UPDATE_SIZES[size]
    opt = OPTIMIZERS[opt_name]
    rng = np.random.default_rng(2)
    kernels = fastgd.get_backend(backend)
    dummy_X, dummy_Y = np.zeros((1, p - 1), dtype), np.zeros((1, 1), dtype)
    _, theta = kernels.prepare(dummy_X, dummy_Y, rng.standard_normal((p, 1)).astype(dtype))
    _, grad = kernels.prepare(dummy_X, dummy_Y, rng.standard_normal((p, 1)).astype(dtype))
    state = kernels.init_state(theta, opt)
    # The first step compiles (timed apart); three steps move the state away from zero.
    theta, state = time_first_call(benchmark, lambda: kernels.update(theta, grad, state, opt))
    for _ in range(2):
        theta, state = ready(kernels.update(theta, grad, state, opt))
    snapshot = (_fresh(theta), _fresh(state))
    reference = _reference(theta, grad, state, opt)
    set_group(benchmark, "update", (p,), dtype, opt_name, f"fastgd[{backend}]")
    rounds = 200 if size == "small" else 20
    new_theta, new_state = benchmark.pedantic(
        lambda th, st: ready(kernels.update(th, grad, st, opt)),
        setup=lambda: ((_fresh(snapshot[0]), _fresh(snapshot[1])), {}),
        rounds=rounds,
        iterations=1,
    )
    record_compile_time(benchmark)
    assert_close(new_theta, reference, dtype, TOL_KERNEL, f"{backend} {opt_name} update")
    assert int(np.asarray(new_state[0])) == 4, "the step count must advance by one"
    assert np.asarray(new_theta).dtype == np.dtype(dtype), "dtype in must be dtype out"
