"""What only the numba backend promises: compilation flags, parallel = serial, float64 sums.

Cross-backend parity (numba equals numpy) lives in the shared, backend-parametrized tests.
"""

from __future__ import annotations

import numpy as np
import pytest

import fastgd
from fastgd.specs import (
    SGD,
    Adam,
    Huber,
    Squared,
    lower_model,
    lower_optimizer,
)

numba = pytest.importorskip("numba")
nb = pytest.importorskip("fastgd.backends.numba_backend")


def _dispatchers():
    """Every compiled kernel of the module, by name."""
    return {
        name: obj
        for name, obj in vars(nb).items()
        if isinstance(obj, numba.core.registry.CPUDispatcher)
    }


def _model(loss=None, l2=0.0, l1=0.0, fit_intercept=True):
    return lower_model(loss or Squared(), l2, l1, fit_intercept)


def _problem(n, d, dtype=np.float64, seed=0):
    X, y, _ = fastgd.make_regression(n, d, dtype=dtype, seed=seed)
    return X, y


# ------------------------------------------------------------------ compilation


def test_every_kernel_is_cached_and_keeps_nan_checks():
    kernels = _dispatchers()
    assert {"_accumulate_rows", "_blocks_parallel", "_update_kernel", "_sgd_epochs"} <= set(
        kernels
    )
    for code in nb._RUN_EPOCHS:
        kernels[f"run_epochs entry {code}"] = nb._RUN_EPOCHS[code]
        kernels[f"loss_grad entry {code}"] = nb._LOSS_GRAD[code]
    for name, kernel in kernels.items():
        assert isinstance(kernel._cache, numba.core.caching.FunctionCache), name
        flags = kernel.targetoptions.get("fastmath", set())
        assert flags, f"{name} compiled without fastmath"
        assert not {"fast", "nnan", "ninf"} & set(flags), f"{name}: {flags}"
    assert _dispatchers()["_blocks_parallel"].targetoptions.get("parallel")


def test_one_specialization_per_loss_and_dtype_whatever_the_rest():
    X, y = _problem(40, 3)
    entry = nb._RUN_EPOCHS[Squared.code]
    fastgd.fit(X, y, optimizer="sgd", batch_size=1, epochs=2, backend="numba")
    compiled = set(entry.signatures)
    for optimizer, batch, penalty in [
        ("adam", 8, "l2"),
        (fastgd.SGD(lr=0.01, momentum=0.5), None, "elasticnet"),
        (fastgd.AdaGrad(lr=fastgd.cosine(0.1, 50)), 4, "l1"),
    ]:
        fastgd.fit(X, y, optimizer=optimizer, batch_size=batch, epochs=2, penalty=penalty,
                   backend="numba")
    assert set(entry.signatures) == compiled


# ---------------------------------------------------------------- non-finite values


def test_divergence_is_seen_through_fastmath():
    X, y = _problem(60, 4)
    with pytest.raises(fastgd.DivergenceError):
        fastgd.fit(X, y, optimizer="sgd", lr=1e3, batch_size=1, epochs=3, shuffle=False,
                   backend="numba")
    with pytest.raises(fastgd.DivergenceError):
        fastgd.fit(X, y, optimizer="sgd", lr=1e3, batch_size=None, epochs=60, backend="numba")


@pytest.mark.parametrize("loss", [Squared(), Huber(1.0), fastgd.Logistic()])
def test_nan_parameters_give_a_nan_loss_and_gradient(loss):
    X, y = _problem(20, 3)
    if isinstance(loss, fastgd.Logistic):
        y = (y > y.mean()).astype(y.dtype)
    theta = np.array([0.5, np.nan, 0.1, 0.0])
    value, grad = nb.loss_grad(X, y, theta, _model(loss, l2=0.1))
    assert np.isnan(value)
    assert np.isnan(grad).any()


# ------------------------------------------------------------ blocks and threads


def test_parallel_gradient_equals_serial_bit_for_bit():
    n, d = 3 * nb._BLOCK_ROWS + 17, 5
    X, y = _problem(n, d, seed=1)
    theta = np.linspace(-0.5, 0.5, d + 1)
    model = _model(Huber(0.7), l2=0.01, l1=0.02)
    serial, parallel = np.empty(d + 1), np.empty(d + 1)
    loss_serial = nb._loss_grad_into(X, y, theta, model, serial, parallel_min_work=2**62)
    loss_parallel = nb._loss_grad_into(X, y, theta, model, parallel, parallel_min_work=0)
    assert nb._n_blocks(n) > 1
    assert loss_serial == loss_parallel
    np.testing.assert_array_equal(serial, parallel)
    # and both are the gradient (checked against the numpy backend)
    expected_loss, expected = fastgd.get_backend("numpy").loss_grad(X, y, theta, model)
    np.testing.assert_allclose(serial, expected, rtol=1e-12, atol=1e-14)
    assert loss_serial == pytest.approx(expected_loss, rel=1e-12)


def test_gradient_does_not_depend_on_the_thread_count():
    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("one thread only")
    X, y = _problem(4 * nb._BLOCK_ROWS, 40, seed=2)
    theta = np.full(41, 0.05)
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = nb.loss_grad(X, y, theta, _model())
        numba.set_num_threads(2)
        two = nb.loss_grad(X, y, theta, _model())
    finally:
        numba.set_num_threads(before)
    assert one[0] == two[0]
    np.testing.assert_array_equal(one[1], two[1])


# ------------------------------------------------------------------------ dtypes


def test_float32_stays_float32():
    X, y = _problem(50, 4, dtype=np.float32)
    theta = np.zeros(5, dtype=np.float32)
    opt = lower_optimizer(Adam(lr=0.01))
    X, y, theta = nb.prepare(X, y, theta)
    _, grad = nb.loss_grad(X, y, theta, _model())
    assert grad.dtype == np.float32
    state = nb.init_state(theta, opt)
    orders = np.tile(np.arange(50, dtype=np.int64), (2, 1))
    theta, (step, slots), losses = nb.run_epochs(X, y, theta, state, orders, 8, _model(), opt)
    assert theta.dtype == np.float32 and slots.dtype == np.float32
    assert losses.dtype == np.float64 and step == 2 * 7
    assert fastgd.fit(X, y, batch_size=1, epochs=1, backend="numba").coef.dtype == np.float32


def test_float32_gradient_sums_in_float64():
    # A long float32 sum accumulated in float32 drifts by ~sqrt(n)·eps; in float64 the
    # only error left is the final rounding to float32.
    n, d = 200_000, 2
    rng = np.random.default_rng(5)
    X = (1.0 + rng.random((n, d))).astype(np.float32)
    y = np.zeros(n, dtype=np.float32)
    theta = np.array([0.3, 0.7, 0.1], dtype=np.float32)
    _, grad = nb.loss_grad(X, y, theta, _model())
    X64, theta64 = X.astype(np.float64), theta.astype(np.float64)
    residual = X64 @ theta64[:2] + theta64[2]
    exact = np.append(X64.T @ residual, residual.sum()) / n
    np.testing.assert_allclose(grad, exact, rtol=float(np.finfo(np.float32).eps), atol=0)


# ----------------------------------------------------------------- training loop


@pytest.mark.parametrize(
    "optimizer,l2,l1",
    [(SGD(lr=0.02), 0.0, 0.0), (SGD(lr=0.02, momentum=0.6), 0.03, 0.0),
     (SGD(lr=0.02, momentum=0.5, nesterov=True), 0.02, 0.01)],
)
def test_per_sample_sgd_path_equals_loss_grad_then_update(optimizer, l2, l1):
    X, y = _problem(30, 4, seed=3)
    model = _model(l2=l2, l1=l1)
    opt = lower_optimizer(optimizer)
    orders = np.stack([np.random.default_rng(e).permutation(30) for e in range(2)])
    theta = np.zeros(5)
    theta, state, losses = nb.run_epochs(X, y, theta, nb.init_state(theta, opt), orders, 1,
                                         model, opt)
    ref = np.zeros(5)
    ref_state = nb.init_state(ref, opt)
    ref_losses = []
    for order in orders:
        total = 0.0
        for i in order:
            value, grad = nb.loss_grad(X[i : i + 1], y[i : i + 1], ref, model)
            ref, ref_state = nb.update(ref, grad, ref_state, opt)
            total += value
        ref_losses.append(total / 30)
    np.testing.assert_allclose(theta, ref, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(state[1], ref_state[1], rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(losses, ref_losses, rtol=1e-12)
    assert state[0] == ref_state[0] == 60


def test_repeated_order_broadcast_equals_its_copy():
    X, y = _problem(33, 3)
    opt, model = lower_optimizer(Adam(lr=0.05)), _model()
    order = np.random.default_rng(0).permutation(33)
    results = []
    for orders in (np.broadcast_to(order, (3, 33)), np.tile(order, (3, 1))):
        theta = np.zeros(4)
        theta, _, losses = nb.run_epochs(X, y, theta, nb.init_state(theta, opt), orders, 5,
                                         model, opt)
        results.append(np.append(theta, losses))
    np.testing.assert_array_equal(results[0], results[1])


def test_cpu_only():
    X, y = _problem(5, 2)
    assert nb.prepare(X, y, np.zeros(3), "cpu")[0] is X
    with pytest.raises(ValueError, match="device"):
        nb.prepare(X, y, np.zeros(3), "gpu")
