"""What only the numba backend promises: compilation flags, one kernel family per output
count, parallel = serial (gradient blocks and per-sample output groups), unit weights = no
weights, float64 sums, the scaled SGD path.

Cross-backend parity (numba equals numpy) lives in the shared, backend-parametrized
tests; the comparisons with the numpy backend here check numba-only code paths (the
vector/matrix split, the scaled per-sample SGD, the subgradients at the kinks).
"""

from __future__ import annotations

import importlib
import pkgutil

import numpy as np
import pytest

import fastgd
from fastgd.specs import (
    LOSS_CODES,
    LOSS_MULTINOMIAL,
    OPT_ADAM,
    SCHED_CONSTANT,
    SGD,
    SIGNED_LABEL_LOSSES,
    Adam,
    AdamW,
    Huber,
    Squared,
    learning_rate,
    lower_model,
    lower_optimizer,
    resolve_loss,
)

numba = pytest.importorskip("numba")
nb = pytest.importorskip("fastgd.backends.numba")
nb_batches = pytest.importorskip("fastgd.backends.numba.batches")
nb_sgd = pytest.importorskip("fastgd.backends.numba.sgd")
ref = fastgd.get_backend("numpy")

#: Loss names in code order.
LOSS_NAMES = ("squared", "huber", "logistic", "hinge", "squared_hinge", "modified_huber",
              "epsilon_insensitive", "squared_epsilon_insensitive", "multinomial",
              "perceptron")


def _dispatchers():
    """Every compiled kernel of the backend's modules, by name."""
    modules = [nb] + [
        importlib.import_module(f"{nb.__name__}.{info.name}")
        for info in pkgutil.iter_modules(nb.__path__)
    ]
    return {
        name: obj
        for module in modules
        for name, obj in vars(module).items()
        if isinstance(obj, numba.core.registry.CPUDispatcher)
    }


def _model(loss="squared", l2=0.0, l1=0.0, fit_intercept=True):
    return lower_model(resolve_loss(loss), l2, l1, fit_intercept)


def _problem(loss, n, d, K=1, dtype=np.float64, seed=0, weights=False):
    """``Data`` in the kernels' form for ``loss`` (K outputs; K classes for multinomial)
    and a starting ``theta`` (d + 1, K) away from 0."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)).astype(dtype)
    P = X @ rng.normal(size=(d, K)) + 0.3 * rng.normal(size=(n, K))
    if loss == "multinomial":
        Y = np.argmax(P, axis=1)[:, None]
    elif loss == "logistic":
        Y = P > 0
    elif resolve_loss(loss).code in SIGNED_LABEL_LOSSES:
        Y = np.where(P > 0, 1.0, -1.0)
    else:
        Y = 2.0 * P
    weight = rng.uniform(0.2, 2.0, n).astype(dtype) if weights else None
    theta = (0.1 * rng.normal(size=(d + 1, K))).astype(dtype)
    return nb.Data(X, np.ascontiguousarray(Y, dtype=dtype), weight), theta


def _run(data, theta, orders, batch_size, model, opt):
    """``run_epochs`` from ``theta`` (copied) and a fresh state: (theta, slots, losses)."""
    theta = theta.copy()
    theta, (_, slots), losses = nb.run_epochs(
        data, theta, nb.init_state(theta, opt), orders, batch_size, model, opt
    )
    return theta, slots, losses


def _orders(n, epochs=2, seed=0):
    rng = np.random.default_rng(seed)
    return np.stack([rng.permutation(n) for _ in range(epochs)])


# ------------------------------------------------------------------ compilation


def test_every_kernel_is_cached_and_keeps_nan_checks():
    kernels = _dispatchers()
    assert {
        "_accumulate_rows", "_accumulate_rows_matrix", "_blocks_parallel",
        "_blocks_parallel_matrix", "_update_kernel", "_sgd_epochs", "_sgd_epochs_matrix",
        "_scaled_sgd_step",
    } <= set(kernels)
    for family in ("", "_MATRIX"):
        for code, entry in getattr(nb, "_LOSS_GRAD" + family).items():
            kernels[f"_LOSS_GRAD{family} entry {code}"] = entry
    for key, entries in nb._RUN_EPOCHS.items():
        for code, entry in entries.items():
            kernels[f"_RUN_EPOCHS{key} entry {code}"] = entry
    for name, kernel in kernels.items():
        assert isinstance(kernel._cache, numba.core.caching.FunctionCache), name
        flags = kernel.targetoptions.get("fastmath", set())
        assert flags, f"{name} compiled without fastmath"
        assert not {"fast", "nnan", "ninf"} & set(flags), f"{name}: {flags}"
        assert kernel.targetoptions.get("error_model") == "numpy", name
    assert kernels["_blocks_parallel"].targetoptions.get("parallel")
    assert kernels["_blocks_parallel_matrix"].targetoptions.get("parallel")


def test_the_updates_divide_and_take_square_roots_in_vectors():
    """numpy's error model (``jit._JIT``): with Python's, a check that raises
    ZeroDivisionError sits in every division and keeps the loop scalar."""
    import re

    from fastgd.backends.numba.jit import _JIT
    from fastgd.backends.numba.updates import _update_kernel

    uncached = numba.njit(**{**_JIT, "cache": False})(_update_kernel.py_func)
    theta, grad, slots = np.zeros(11), np.ones(11), np.zeros((3, 11))
    uncached(theta, grad, slots, 1, 10, OPT_ADAM, np.array([0.9, 0.999, 1e-8, 0.0]),
             SCHED_CONSTANT, np.array([1e-3, 0.0, 0.0, 0.0]))  # fmt: skip
    asm = uncached.inspect_asm(uncached.signatures[0])
    assert re.search(r"\bv?divpd\b", asm), "no packed division"
    assert re.search(r"\bv?sqrtpd\b", asm), "no packed square root"


def test_a_row_hint_steps_by_one_cache_line():
    from fastgd.backends.numba.rows import _line_step

    @numba.njit(cache=False)
    def compiled(X):
        return _line_step(X)

    for dtype, step in ((np.float64, 8), (np.float32, 16)):
        X = np.zeros((2, 3), dtype=dtype)
        assert compiled(X) == _line_step(X) == step


def test_one_entry_per_loss_family_and_loop():
    vector_codes = set(LOSS_CODES) - {LOSS_MULTINOMIAL}  # a softmax needs K >= 2
    assert set(nb._LOSS_GRAD_MATRIX) == set(LOSS_CODES)
    assert set(nb._LOSS_GRAD) == vector_codes
    vector_loops = {"batches", "samples", "dense"}
    assert set(nb._RUN_EPOCHS) == {(False, loop) for loop in vector_loops} | {
        (True, loop) for loop in vector_loops | {"grouped"}
    }
    for (matrix, _loop), entries in nb._RUN_EPOCHS.items():
        assert set(entries) == (set(LOSS_CODES) if matrix else vector_codes)
    theta = np.zeros((4, 1))
    assert nb._is_vector(0, theta) and not nb._is_vector(LOSS_MULTINOMIAL, theta)
    assert not nb._is_vector(0, np.zeros((4, 3)))


def float64_writable(signatures) -> list:
    """The compiled signatures whose X (first argument) is float64 and writable."""
    return [sig for sig in signatures
            if sig[0].dtype == numba.float64 and sig[0].mutable]


def test_one_specialization_per_loss_dtype_and_family_whatever_the_rest():
    X, y, _ = fastgd.make_regression(40, 3)
    Y = np.stack([y, -y], axis=1)
    code = Squared.code
    fastgd.fit(X, y, optimizer="sgd", batch_size=1, epochs=2, backend="numba")
    fastgd.fit(X, Y, optimizer="sgd", batch_size=1, epochs=2, backend="numba")
    compiled = set(nb._RUN_EPOCHS[False, "samples"][code].signatures)
    compiled_matrix = set(nb._RUN_EPOCHS[True, "samples"][code].signatures)
    # one float64 version with writable X (other tests of the session may have compiled
    # float32 or read-only-X versions too: count this test's kind only)
    assert len(float64_writable(compiled)) == len(float64_writable(compiled_matrix)) == 1
    weight = np.linspace(0.5, 1.5, 40)
    for optimizer, batch, penalty, sample_weight in [
        ("adam", 8, "l2", weight),
        (fastgd.SGD(lr=0.01, momentum=0.5), None, "elasticnet", None),
        (fastgd.AdaGrad(lr=fastgd.cosine(0.1, 50)), 4, "l1", weight),
        ("sgd", 1, "l2", weight),
    ]:
        for target in (y, Y):
            fastgd.fit(X, target, optimizer=optimizer, batch_size=batch, epochs=2,
                       penalty=penalty, sample_weight=sample_weight, backend="numba")
    assert set(nb._RUN_EPOCHS[False, "samples"][code].signatures) == compiled
    assert set(nb._RUN_EPOCHS[True, "samples"][code].signatures) == compiled_matrix


def _fits_of_loop(loop: str) -> list[dict]:
    """Arguments of fits that run ``loop`` (see ``epochs._training_loop``)."""
    X, y, _ = fastgd.make_regression(40, 3)
    labels = (y > 0).astype(float)
    two = np.stack([y, -y], axis=1)
    pa = fastgd.SGD(lr=fastgd.PassiveAggressive(0.3, "pa1"))
    return {
        "batches": [dict(X=X, y=t, batch_size=b) for b in (None, 8) for t in (y, two)],
        "samples": [dict(X=X, y=t, batch_size=1) for t in (y, two)],
        "dense": [dict(X=X, y=t, batch_size=1, loss="hinge", optimizer=pa)
                  for t in (labels, np.stack([labels, 1 - labels], axis=1))],
        "grouped": [dict(X=X, y=np.eye(10)[np.arange(40) % 10], batch_size=1, loss="hinge")],
    }[loop]


@pytest.mark.parametrize("loop", ["batches", "samples", "dense", "grouped"])
def test_a_fit_runs_only_the_loop_it_needs(monkeypatch, loop):
    """Each training loop is its own compiled entry: a fit compiles (calls) only the one
    it runs, so a first fit does not wait for the others' compilation."""
    if loop == "grouped":
        if numba.config.NUMBA_NUM_THREADS < 2:
            pytest.skip("one thread only: the groups never run")
        monkeypatch.setattr(nb_sgd, "_SGD_PARALLEL_MIN_WORK", 0)
    for key, entries in nb._RUN_EPOCHS.items():
        if key[1] != loop:

            def refuse(*args, _key=key):
                raise AssertionError(f"the loop {_key} ran")

            monkeypatch.setitem(nb._RUN_EPOCHS, key, dict.fromkeys(entries, refuse))
    for args in _fits_of_loop(loop):
        result = fastgd.fit(**args, epochs=2, backend="numba")
        assert np.all(np.isfinite(result.coef))


# ---------------------------------------------------------------- non-finite values


def test_divergence_is_seen_through_fastmath():
    X, y, _ = fastgd.make_regression(60, 4)
    for target in (y, np.stack([y, 3 * y], axis=1)):
        with pytest.raises(fastgd.DivergenceError):
            fastgd.fit(X, target, optimizer="sgd", lr=1e3, batch_size=1, epochs=3,
                       shuffle=False, backend="numba")
        with pytest.raises(fastgd.DivergenceError):
            fastgd.fit(X, target, optimizer="sgd", lr=1e3, batch_size=None, epochs=60,
                       backend="numba")


def test_loss_names_are_in_code_order():
    assert [resolve_loss(name).code for name in LOSS_NAMES] == list(LOSS_CODES)


@pytest.mark.parametrize("loss", LOSS_NAMES)
def test_nan_parameters_give_a_nan_loss_and_gradient(loss):
    code = resolve_loss(loss).code
    for K in (1, 3):
        if code == LOSS_MULTINOMIAL and K == 1:
            continue
        data, theta = _problem(loss, 20, 3, K)
        theta[1, 0] = np.nan
        value, grad = nb.loss_grad(data, theta, _model(loss, l2=0.1))
        assert np.isnan(value), (loss, K)
        assert np.isnan(grad).any(), (loss, K)


# --------------------------------------------------------------- per-sample math


def test_subgradients_at_the_kinks_are_numpys():
    # X = 0 makes every prediction the intercept, placed exactly on each kink.
    n, d = 4, 2
    X = np.zeros((n, d))
    cases = [
        ("hinge", [[1.0], [-1.0], [1.0], [-1.0]], [[1.0]]),  # z = s·p = 1 and -1
        ("squared_hinge", [[1.0], [1.0], [1.0], [1.0]], [[1.0]]),  # z = 1
        ("modified_huber", [[-1.0], [1.0], [-1.0], [1.0]], [[1.0]]),  # z = -1 and 1
        ("epsilon_insensitive", [[0.75], [0.25], [0.5], [1.0]], [[0.5]]),  # |r| = ε = 0.25
        ("squared_epsilon_insensitive", [[0.75], [0.25], [0.5], [1.0]], [[0.5]]),
        ("huber", [[1.85], [-0.85], [0.5], [0.0]], [[0.5]]),  # |r| = ε = 1.35
    ]
    for loss, Y, b in cases:
        theta = np.vstack([np.zeros((d, 1)), b])
        model = _model(Huber(1.35) if loss == "huber" else loss)
        if loss.endswith("epsilon_insensitive"):
            model = model._replace(loss_param=0.25)
        data = nb.Data(X, np.array(Y), np.array([1.0, 2.0, 0.5, 1.0]))
        expected = ref.loss_grad(ref.Data(*data), theta, model)
        value, grad = nb.loss_grad(data, theta, model)
        np.testing.assert_array_equal(grad, expected[1], err_msg=loss)
        assert value == pytest.approx(expected[0], rel=1e-15), loss


def test_multinomial_is_stable_for_large_logits():
    data, theta = _problem("multinomial", 30, 3, K=4, seed=4)
    theta *= 800.0  # logits in the thousands: a naive exp overflows
    model = _model("multinomial")
    value, grad = nb.loss_grad(data, theta, model)
    expected = ref.loss_grad(ref.Data(*data), theta, model)
    assert np.isfinite(value) and np.isfinite(grad).all()
    assert value == pytest.approx(expected[0], rel=1e-12)
    np.testing.assert_allclose(grad, expected[1], rtol=1e-12, atol=1e-12)


# ------------------------------------------------------------ blocks and threads


@pytest.mark.parametrize("K", [1, 3])
def test_parallel_gradient_equals_serial_bit_for_bit(K):
    n, d = 3 * nb_batches._BLOCK_ROWS + 17, 5
    loss = "huber" if K == 1 else "multinomial"
    data, theta = _problem(loss, n, d, K, seed=1, weights=True)
    model = _model(loss, l2=0.01, l1=0.02)
    serial, parallel = np.empty_like(theta), np.empty_like(theta)
    loss_serial = nb._loss_grad_into(data, theta, model, serial, parallel_min_work=2**62)
    loss_parallel = nb._loss_grad_into(data, theta, model, parallel, parallel_min_work=0)
    assert nb_batches._n_blocks(n, nb_batches._MAX_BLOCKS) > 1
    assert loss_serial == loss_parallel
    np.testing.assert_array_equal(serial, parallel)
    # and both are the gradient (checked against the numpy backend)
    expected_loss, expected = ref.loss_grad(ref.Data(*data), theta, model)
    np.testing.assert_allclose(serial, expected, rtol=1e-12, atol=1e-14)
    assert loss_serial == pytest.approx(expected_loss, rel=1e-12)


@pytest.mark.parametrize("K", [1, 4])
def test_gradient_does_not_depend_on_the_thread_count(K):
    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("one thread only")
    data, theta = _problem("hinge", 4 * nb_batches._BLOCK_ROWS, 40, K, seed=2)
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = nb.loss_grad(data, theta, _model("hinge"))
        numba.set_num_threads(2)
        two = nb.loss_grad(data, theta, _model("hinge"))
    finally:
        numba.set_num_threads(before)
    assert one[0] == two[0]
    np.testing.assert_array_equal(one[1], two[1])


def test_wide_models_get_fewer_blocks():
    assert nb_batches._max_blocks(nb_batches._PARTIAL_ENTRIES // 4) == 4
    assert nb_batches._max_blocks(10 * nb_batches._PARTIAL_ENTRIES) == 1
    assert nb_batches._n_blocks(10**6, nb_batches._max_blocks(100)) == nb_batches._MAX_BLOCKS
    *_, partial = nb_batches._new_scratch_matrix(2000, 500)
    assert partial.size <= nb_batches._PARTIAL_ENTRIES


# ------------------------------------------------------------------------ weights


@pytest.mark.parametrize("loss,K", [("squared", 1), ("hinge", 1), ("hinge", 3),
                                    ("multinomial", 3)])
def test_unit_weights_equal_no_weights_bit_for_bit(loss, K):
    data, theta = _problem(loss, 37, 4, K, seed=5)
    unit = data._replace(weight=np.ones(37))
    model = _model(loss, l2=0.01)
    a, b = nb.loss_grad(data, theta, model), nb.loss_grad(unit, theta, model)
    assert a[0] == b[0]
    np.testing.assert_array_equal(a[1], b[1])
    orders = _orders(37)
    for batch_size, optimizer in [(37, SGD(lr=0.1)), (8, Adam(lr=0.05)), (1, SGD(lr=0.05)),
                                  (1, SGD(lr=0.05, momentum=0.5))]:
        opt = lower_optimizer(optimizer)
        plain = _run(data, theta, orders, batch_size, model, opt)
        weighted = _run(unit, theta, orders, batch_size, model, opt)
        for x, y in zip(plain, weighted, strict=True):
            np.testing.assert_array_equal(x, y, err_msg=f"batch {batch_size} {optimizer}")


# ------------------------------------------------------------------------ dtypes


@pytest.mark.parametrize("K", [1, 3])
def test_float32_stays_float32(K):
    loss = "squared" if K == 1 else "hinge"
    data, theta = _problem(loss, 50, 4, K, dtype=np.float32)
    opt = lower_optimizer(Adam(lr=0.01))
    data, theta = nb.prepare(*data[:2], theta, None, data.weight)
    _, grad = nb.loss_grad(data, theta, _model(loss))
    assert grad.dtype == np.float32
    state = nb.init_state(theta, opt)
    orders = np.tile(np.arange(50, dtype=np.int64), (2, 1))
    theta, (step, slots), losses = nb.run_epochs(data, theta, state, orders, 8, _model(loss),
                                                 opt)
    assert theta.dtype == np.float32 and slots.dtype == np.float32
    assert losses.dtype == np.float64 and step == 2 * 7
    sgd = lower_optimizer(SGD(lr=0.01))
    theta, (_, slots), _ = nb.run_epochs(data, theta, nb.init_state(theta, sgd), orders, 1,
                                         _model(loss, l2=0.01), sgd)
    assert theta.dtype == np.float32 and slots.dtype == np.float32


@pytest.mark.parametrize("K", [1, 2])
def test_float32_gradient_sums_in_float64(K):
    # A long float32 sum accumulated in float32 drifts by ~sqrt(n)·eps; in float64 the
    # only error left is the final rounding to float32.
    n, d = 200_000, 2
    rng = np.random.default_rng(5)
    X = (1.0 + rng.random((n, d))).astype(np.float32)
    Y = np.zeros((n, K), dtype=np.float32)
    theta = np.tile(np.array([[0.3], [0.7], [0.1]], dtype=np.float32), (1, K))
    _, grad = nb.loss_grad(nb.Data(X, Y), theta, _model())
    X64, theta64 = X.astype(np.float64), theta.astype(np.float64)
    residual = X64 @ theta64[:2] + theta64[2]
    exact = np.vstack([X64.T @ residual, residual.sum(axis=0)]) / n
    np.testing.assert_allclose(grad, exact, rtol=float(np.finfo(np.float32).eps), atol=0)


# ----------------------------------------------------------------- training loop


def _step_by_step(data, theta, orders, model, opt):
    """Per-sample training through ``loss_grad`` and ``update``: the reference loop.

    An l1 term is left out of the step's gradient and truncated after the step as
    scikit-learn does (README, "Mathematical conventions"): ``q`` and ``u`` in
    ``slots[1]``."""
    theta = theta.copy()
    state = nb.init_state(theta, opt)
    grad_model = model._replace(l1=0.0)
    u = 0.0
    losses = []
    for order in orders:
        total = 0.0
        for i in order:
            value, grad = nb.loss_grad(data.take([i]), theta, model)
            if model.l1:
                grad = nb.loss_grad(data.take([i]), theta, grad_model)[1]
            theta, state = nb.update(theta, grad, state, opt)
            if model.l1:
                u += model.l1 * learning_rate(opt.schedule_code, opt.schedule_params, state[0])
                W, q = theta[:-1], state[1][1, :-1]
                z = W.copy()
                W[:] = np.where(z > 0, np.maximum(0, z - (u + q)), z)
                W[:] = np.where(z < 0, np.minimum(0, z + (u - q)), W)
                q += W - z
            total += value
        losses.append(total / len(order))
    if model.l1:
        state[1][1, -1] = u
    return theta, state, losses


@pytest.mark.parametrize(
    "loss,K,optimizer,l2,l1",
    [("squared", 1, SGD(lr=0.02), 0.0, 0.0),
     ("squared", 1, SGD(lr=0.02, momentum=0.6), 0.03, 0.0),
     ("huber", 1, SGD(lr=0.02, momentum=0.5, nesterov=True), 0.02, 0.01),
     ("hinge", 3, SGD(lr=0.05), 0.0, 0.0),  # scaled, no penalty
     ("hinge", 3, SGD(lr=0.05), 0.05, 0.0),  # scaled, l2
     ("multinomial", 3, SGD(lr=0.05), 0.05, 0.0),
     ("hinge", 3, SGD(lr=0.05), 0.03, 0.02),  # dense: l1
     ("multinomial", 3, SGD(lr=0.05, momentum=0.5, nesterov=True), 0.03, 0.0)],  # dense
)
def test_per_sample_sgd_path_equals_loss_grad_then_update(loss, K, optimizer, l2, l1):
    data, theta = _problem(loss, 30, 4, K, seed=3, weights=True)
    model = _model(loss, l2=l2, l1=l1)
    opt = lower_optimizer(optimizer)
    orders = _orders(30)
    theta_run, slots, losses = _run(data, theta, orders, 1, model, opt)
    expected, (step, expected_slots), expected_losses = _step_by_step(
        data, theta, orders, model, opt
    )
    assert step == 60
    np.testing.assert_allclose(theta_run, expected, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(slots, expected_slots, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(losses, expected_losses, rtol=1e-12)


@pytest.mark.parametrize("lr_l2", [0.5, 1.0])
def test_scaled_sgd_folds_a_vanishing_scale(lr_l2):
    # The shrink 1 − lr·l2 (0.5, or exactly 0) takes the shared scale below _MIN_SCALE
    # within a few dozen steps: the weights must stay the numpy backend's all along.
    data, theta = _problem("hinge", 37, 4, 3, seed=6)
    model, opt = _model("hinge", l2=lr_l2 / 0.5), lower_optimizer(SGD(lr=0.5))
    orders = _orders(37, epochs=3)
    theta_run, _, losses = _run(data, theta, orders, 1, model, opt)
    expected = theta.copy()
    expected, _, expected_losses = ref.run_epochs(
        ref.Data(*data), expected, ref.init_state(expected, opt), orders, 1, model, opt
    )
    np.testing.assert_allclose(theta_run, expected, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(losses, expected_losses, rtol=1e-10)


def test_scaled_sgd_matches_numpy_over_calls():
    # Epochs split over calls (as fit's per-epoch callbacks do) walk the same path as
    # one call: the scale is folded back into theta at the end of each call.
    data, theta = _problem("squared_hinge", 37, 4, 3, seed=7, weights=True)
    model, opt = _model("squared_hinge", l2=0.02), lower_optimizer(SGD(lr=0.05))
    orders = _orders(37, epochs=3)
    whole = _run(data, theta, orders, 1, model, opt)
    split = theta.copy()
    state = nb.init_state(split, opt)
    pieces = []
    for e in range(3):
        split, state, losses = nb.run_epochs(data, split, state, orders[e : e + 1], 1, model,
                                             opt)
        pieces.append(losses)
    np.testing.assert_allclose(split, whole[0], rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(np.concatenate(pieces), whole[2], rtol=1e-13)


@pytest.mark.parametrize("lr,l2", [(0.05, 0.01), (0.5, 0.9)])  # 0.9: folds every ~26 steps
def test_per_sample_sgd_output_groups_equal_one_thread_bit_for_bit(monkeypatch, lr, l2):
    # K = 10 outputs in two groups on two threads, chunk after chunk (and, with a large
    # l2, a folded scale every few dozen steps): the serial loop's results, bit for bit.
    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("one thread only")
    assert nb_sgd._output_groups(10, 2).tolist() == [0, 4, 10]  # cuts where _dots' tiers do
    assert nb_sgd._output_groups(7, 3).tolist() == [0, 4, 6, 7]
    assert nb_sgd._output_groups(2, 2).tolist() == [0, 2]  # one pair: nothing to split
    monkeypatch.setattr(nb_sgd, "_SGD_PARALLEL_MIN_WORK", 0)
    n = 2 * nb_sgd._SGD_CHUNK + 37
    data, theta = _problem("hinge", n, 12, 10, seed=8, weights=True)
    model, opt = _model("hinge", l2=l2), lower_optimizer(SGD(lr=lr))
    orders = _orders(n)
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = _run(data, theta, orders, 1, model, opt)
        numba.set_num_threads(2)
        assert nb_sgd._sgd_groups(data.X, theta) == 2
        two = _run(data, theta, orders, 1, model, opt)
    finally:
        numba.set_num_threads(before)
    for serial, grouped in zip(one, two, strict=True):
        np.testing.assert_array_equal(grouped, serial)


def test_update_decays_the_weights_not_the_intercepts():
    theta = np.arange(12.0).reshape(4, 3) / 10
    grad = np.zeros_like(theta)
    opt = lower_optimizer(AdamW(lr=0.1, weight_decay=0.5))
    expected, _ = ref.update(theta.copy(), grad, ref.init_state(theta, opt), opt)
    result, (step, _) = nb.update(theta.copy(), grad, nb.init_state(theta, opt), opt)
    np.testing.assert_allclose(result, expected, rtol=1e-15)
    np.testing.assert_array_equal(result[-1], theta[-1])
    assert step == 1


@pytest.mark.parametrize("K", [1, 3])
def test_repeated_order_broadcast_equals_its_copy(K):
    data, theta = _problem("squared", 33, 3, K)
    opt, model = lower_optimizer(Adam(lr=0.05)), _model()
    order = np.random.default_rng(0).permutation(33)
    results = []
    for orders in (np.broadcast_to(order, (3, 33)), np.tile(order, (3, 1))):
        result, _, losses = _run(data, theta, orders, 5, model, opt)
        results.append(np.append(result, losses))
    np.testing.assert_array_equal(results[0], results[1])


def test_prepare_bundles_contiguous_host_arrays():
    X, y, _ = fastgd.make_regression(5, 2)
    Y, theta = y.reshape(5, 1), np.zeros((3, 1))
    data, same = nb.prepare(X, Y, theta, "cpu")
    assert "Data" in nb.__all__ and isinstance(data, nb.Data)
    assert data.X is X and data.Y is Y and data.weight is None and same is theta
    strided = np.zeros((3, 4))[:, ::2]
    data, copy = nb.prepare(np.asfortranarray(X), Y, strided, None, np.ones(5, int))
    assert data.X.flags.c_contiguous and copy.flags.c_contiguous
    assert data.weight.dtype == X.dtype
    with pytest.raises(ValueError, match="device"):
        nb.prepare(X, Y, theta, "gpu")


@pytest.mark.parametrize("K", [1, 3])
def test_the_weights_norms_in_one_pass_equal_numpys(K):
    from fastgd.backends.numba.sparse import _weight_norms
    from fastgd.sparse import starting_norms

    V = np.random.default_rng(K).standard_normal((1001, K))
    V[-1] = 100.0  # the intercepts' row is left out
    out = np.full((2, K), np.nan)
    _weight_norms(V, out)
    np.testing.assert_allclose(out, starting_norms(V), rtol=1e-13)
    _weight_norms(np.zeros((5, K)), out)
    np.testing.assert_array_equal(out, 0.0)
