"""Behaviour specific to the jax backend: x64 scoping, dtypes, devices and compilation reuse,
the subgradients at the losses' kinks, weights and K outputs inside the programs.

Several devices and several processes: tests/test_jax_devices.py, tests/test_multiprocess.py."""

from __future__ import annotations

import numpy as np
import pytest

import fastgd
from fastgd.specs import (
    LOSS_EPSILON_INSENSITIVE,
    LOSS_HINGE,
    LOSS_HUBER,
    LOSS_LOGISTIC,
    LOSS_MODIFIED_HUBER,
    LOSS_MULTINOMIAL,
    LOSS_PERCEPTRON,
    LOSS_SQUARED,
    LOSS_SQUARED_EPSILON_INSENSITIVE,
    LOSS_SQUARED_HINGE,
    LoweredModel,
    lower_optimizer,
)

jax = pytest.importorskip("jax")
jax_backend = fastgd.get_backend("jax")
numpy_backend = fastgd.get_backend("numpy")
jax_batches = pytest.importorskip("fastgd.backends.jax.batches")
jax_epochs = pytest.importorskip("fastgd.backends.jax.epochs")
jax_staging = pytest.importorskip("fastgd.backends.jax.staging")
jax_updates = pytest.importorskip("fastgd.backends.jax.updates")

N, D = 23, 4


def _data(dtype=np.float64, n: int = N, d: int = D, seed: int = 0, k: int | None = None):
    """Regression data: y of shape (n,), or (n, k) with ``k``."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d)).astype(dtype)
    W = rng.standard_normal((d, k or 1))
    Y = (X @ W + 0.3 + np.arange(k or 1)).astype(dtype)
    return X, (Y[:, 0].copy() if k is None else Y)


def _weights(n: int, seed: int = 1) -> np.ndarray:
    """Uneven positive weights of mean 1, one of them zero (as check_sample_weight makes)."""
    w = np.random.default_rng(seed).uniform(0.2, 3.0, n)
    w[::5] = 0.0
    return w / w.mean()


def _prepare(backend, X, y, theta, weight=None, device=None):
    """``prepare`` of the kernel form of ``y`` ((n,) becomes one column) and ``theta``."""
    Y = y.reshape(X.shape[0], -1)
    return backend.prepare(X, Y, theta.reshape(X.shape[1] + 1, -1), device, weight)


def _epochs_cache_size() -> int:
    """Programs compiled so far for run_epochs (single-kernel and portable)."""
    programs = (jax_epochs._single_kernel_program, jax_epochs._portable_program)
    return sum(program._cache_size() for program in programs)


def test_float64_fit_does_not_leave_x64_enabled():
    X, y = _data(np.float64)
    before = bool(jax.config.jax_enable_x64)
    res = fastgd.fit(X, y, backend="jax", optimizer="adam", batch_size=5, epochs=2, seed=0)
    assert bool(jax.config.jax_enable_x64) == before
    assert jax.numpy.zeros(1).dtype == (np.float64 if before else np.float32)
    assert res.coef.dtype == np.float64


def test_float64_is_not_downcast():
    """Inside the backend float64 stays float64 even when x64 is off outside it."""
    X, y = _data(np.float64)
    data, theta = _prepare(jax_backend, X, y, np.zeros(D + 1), _weights(N))
    assert isinstance(data, jax_backend.Data)
    assert data.X.dtype == data.Y.dtype == data.weight.dtype == theta.dtype == np.float64
    assert data.Y.shape == (N, 1) and theta.shape == (D + 1, 1)
    np.testing.assert_array_equal(np.asarray(data.X), X)


def _unaligned_copy(a: np.ndarray, offset: int = 16) -> np.ndarray:
    """A copy of ``a`` whose buffer starts ``offset`` bytes past a 64-byte boundary."""
    raw = np.empty(a.nbytes + 128, dtype=np.uint8)
    start = (-raw.ctypes.data % 64) + offset
    out = raw[start : start + a.nbytes].view(a.dtype).reshape(a.shape)
    out[...] = a
    return out


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_prepare_unaligned_input_gives_a_private_aligned_copy(dtype):
    """On a CPU an unaligned X (Y, weights) is copied once into an aligned buffer the fit owns."""
    X, Y = _data(dtype, n=200, d=6, k=2)
    weight = _weights(200).astype(dtype)
    Xu, Yu, wu = _unaligned_copy(X), _unaligned_copy(Y), _unaligned_copy(weight)
    assert Xu.ctypes.data % 64 == 16
    data, theta = jax_backend.prepare(Xu, Yu, np.zeros((7, 2), dtype), "cpu", wu)
    assert data.X.dtype == data.Y.dtype == data.weight.dtype == theta.dtype == dtype
    assert all(a.unsafe_buffer_pointer() % 64 == 0 for a in data)
    for a in (Xu, Yu, wu):  # the caller's arrays are not shared with the prepared ones
        a[...] = -1.0
    for prepared, expected in zip(data, (X, Y, weight), strict=True):
        np.testing.assert_array_equal(np.asarray(prepared), expected)
    res = fastgd.fit(_unaligned_copy(X), _unaligned_copy(Y[:, 0]), backend="jax", epochs=2)
    ref = fastgd.fit(X, Y[:, 0], backend="numpy", epochs=2)
    rtol = 1e-12 if dtype == np.float64 else 1e-5
    np.testing.assert_allclose(res.coef, ref.coef, rtol=rtol)


def test_data_take_selects_rows_of_every_array():
    X, Y = _data(k=2)
    idx = np.array([4, 0, 4, 17])
    weight = _weights(N)
    for w in (None, weight):
        data, _ = jax_backend.prepare(X, Y, np.zeros((D + 1, 2)), None, w)
        taken = data.take(idx)
        expected = numpy_backend.Data(X, Y, w).take(idx)
        assert isinstance(taken, jax_backend.Data) and (taken.weight is None) == (w is None)
        for got, want in zip(taken, expected, strict=True):
            if want is not None:
                assert got.dtype == np.float64
                np.testing.assert_array_equal(np.asarray(got), want)


@pytest.mark.parametrize("n_epochs", [1, 3, 4, 5])
def test_padded_epochs_keeps_the_orders_and_pads_to_a_power_of_two(n_epochs):
    n = 37
    orders = np.stack([np.random.default_rng(e).permutation(n) for e in range(n_epochs)])
    padded = jax_staging._padded_epochs(orders, False)
    assert padded.shape == (1 << (n_epochs - 1).bit_length(), n)
    assert padded.dtype == np.int32 and padded.ctypes.data % 64 == 0
    np.testing.assert_array_equal(padded[:n_epochs], orders)
    assert jax_staging._padded_epochs(orders, True).shape == (padded.shape[0], 0)


@pytest.mark.parametrize("k", [1, 3])
def test_float32_in_float32_out(k):
    X, Y = _data(np.float32, k=k)
    model = LoweredModel(LOSS_SQUARED, 0.0, 0.01, 0.0, True)
    opt = lower_optimizer(fastgd.Adam(lr=0.01))
    data, theta = jax_backend.prepare(X, Y.reshape(N, k), np.zeros((D + 1, k), np.float32), "cpu")
    loss, grad = jax_backend.loss_grad(data, theta, model)
    assert grad.dtype == np.float32 and grad.shape == (D + 1, k) and loss.dtype == np.float64
    state = jax_backend.init_state(theta, opt)
    assert state[1].dtype == np.float32 and state[1].shape == (3, D + 1, k)
    orders = np.stack([np.arange(N), np.arange(N)[::-1]]).astype(np.int64)
    theta2, (step, slots), losses = jax_backend.run_epochs(
        data, theta, state, orders, 5, model, opt
    )
    assert theta2.dtype == np.float32 and theta2.shape == (D + 1, k)
    assert slots.dtype == np.float32 and slots.shape == (3, D + 1, k)
    assert losses.dtype == np.float64 and losses.shape == (2,)
    assert int(step) == 2 * 5  # ceil(23 / 5) updates per epoch
    res = fastgd.fit(X, Y, backend="jax", batch_size=4, epochs=2, seed=0)
    assert res.coef.dtype == np.float32


def test_device_cpu_and_bad_devices():
    X, y = _data()
    cpu = jax.devices("cpu")[0]
    for device in ("cpu", cpu):
        res = fastgd.fit(X, y, backend="jax", device=device, epochs=3)
        ref = fastgd.fit(X, y, backend="numpy", epochs=3)
        np.testing.assert_allclose(res.coef, ref.coef, rtol=1e-12)
    data, theta = _prepare(jax_backend, X, y, np.zeros(D + 1), _weights(N), cpu)
    assert all(a.devices() == {cpu} for a in (*data, theta))
    with pytest.raises(ValueError, match="tpu"):
        fastgd.fit(X, y, backend="jax", device="tpu")
    with pytest.raises(ValueError, match="3"):
        _prepare(jax_backend, X, y, np.zeros(D + 1), device=3)
    if not any(d.platform == "gpu" for d in jax.devices()):
        with pytest.raises(ValueError, match="'gpu'"):
            fastgd.fit(X, y, backend="jax", device="gpu")


def test_devices_of_a_single_device_run_the_single_device_program():
    """devices=1, [one device] or, on a machine of one device, "all": not a mesh, the
    single-device program and its numbers bit for bit. (Several devices:
    tests/test_jax_devices.py.)"""
    X, y = _data()
    kwargs = dict(backend="jax", optimizer="adam", batch_size=5, epochs=2, seed=0)
    ref = fastgd.fit(X, y, **kwargs)
    choices = [1, [jax.devices()[0]]] + (["all"] if len(jax.devices()) == 1 else [])
    for devices in choices:
        res = fastgd.fit(X, y, devices=devices, **kwargs)
        np.testing.assert_array_equal(res.coef, ref.coef)
        assert res.intercept == ref.intercept
    data, theta = _prepare(jax_backend, X, y, np.zeros(D + 1), device=1)
    assert type(data) is jax_backend.Data and theta.devices() == {jax.devices()[0]}


def test_bad_devices_are_refused_by_name():
    X, y = _data()
    count = len(jax.devices())
    for devices, message in (
        (count + 1, f"devices={count + 1}"), (0, "devices=0"), ([], r"\[\]"), ("most", "most"),
        (True, "True"), ([jax.devices()[0]] * 2, "twice"), (["cpu"], "jax.Device"),
    ):  # fmt: skip
        with pytest.raises(ValueError, match=message):
            fastgd.fit(X, y, backend="jax", devices=devices, epochs=1)


@pytest.mark.parametrize("k", [None, 3], ids=["one-output", "three-outputs"])
def test_refit_with_other_hyper_parameters_does_not_recompile(k):
    X, y = _data(n=31, k=k)
    kw = dict(backend="jax", loss="huber", penalty="elasticnet", batch_size=6, seed=1)
    fastgd.fit(X, y, optimizer=fastgd.Adam(lr=0.01), alpha=0.01, epochs=3, **kw)
    compiled = _epochs_cache_size()
    # Other floats (lr, betas, penalty strength, Huber's epsilon) and another epoch count
    # in the same power-of-two bucket reuse the program.
    fastgd.fit(
        X, y, optimizer=fastgd.Adam(lr=0.2, b1=0.5, b2=0.9), alpha=0.3, epochs=4,
        **{**kw, "loss": fastgd.Huber(0.3)},
    )  # fmt: skip
    assert _epochs_cache_size() == compiled


def test_one_column_targets_share_the_vector_program():
    """K = 1 runs on vectors inside the programs, whether y was (n,) or (n, 1)."""
    assert jax_batches._one_column(np.zeros((5, 1)), jax_batches._ModelStatic(0, True, False))
    assert not jax_batches._one_column(np.zeros((5, 3)), jax_batches._ModelStatic(0, True, False))
    multinomial = jax_batches._ModelStatic(LOSS_MULTINOMIAL, True, False)
    assert not jax_batches._one_column(np.zeros((5, 1)), multinomial)
    X, y = _data(n=31)
    kw = dict(backend="jax", optimizer="rmsprop", batch_size=6, epochs=3, seed=1)
    res = fastgd.fit(X, y, **kw)
    compiled = _epochs_cache_size()
    res2 = fastgd.fit(X, y[:, None], **kw)
    assert _epochs_cache_size() == compiled
    np.testing.assert_array_equal(res2.coef[:, 0], res.coef)
    np.testing.assert_array_equal(res2.intercept, [res.intercept])


def test_short_last_batch_does_not_retrace_per_epoch():
    """n = 29 and batch 4: every epoch ends with a batch of 1, run epoch by epoch."""
    X, y = _data(n=29)
    seen = []
    before = _epochs_cache_size()
    res = fastgd.fit(
        X, y, backend="jax", optimizer="rmsprop", batch_size=4, epochs=6, seed=2,
        callback=lambda epoch, *_: seen.append(epoch),
    )  # fmt: skip
    assert seen == [1, 2, 3, 4, 5, 6]  # one run_epochs call per epoch
    assert _epochs_cache_size() - before <= 1
    ref = fastgd.fit(X, y, backend="numpy", optimizer="rmsprop", batch_size=4, epochs=6, seed=2)
    np.testing.assert_allclose(res.coef, ref.coef, rtol=1e-10)
    assert res.n_updates == 6 * 8


def test_unit_weights_are_dropped_and_give_the_unweighted_numbers():
    """Weights of 1 are no weights: prepare drops them, the unweighted program runs."""
    X, Y = _data(n=31, k=2)
    data, _ = jax_backend.prepare(X, Y, np.zeros((D + 1, 2)), None, np.ones(31))
    assert data.weight is None
    kw = dict(backend="jax", loss="huber", optimizer="adam", batch_size=6, epochs=3, seed=1)
    plain = fastgd.fit(X, Y, **kw)
    compiled = _epochs_cache_size()
    unit = fastgd.fit(X, Y, sample_weight=np.full(31, 2.5), **kw)  # rescaled to mean 1
    assert _epochs_cache_size() == compiled
    np.testing.assert_array_equal(unit.coef, plain.coef)
    np.testing.assert_array_equal(unit.loss_history, plain.loss_history)


def test_weighted_programs_are_reused_across_weights():
    """Weighted or not is static (another program); the weights' values are traced."""
    X, Y = _data(n=31, k=2)
    kw = dict(loss="huber", optimizer="adam", batch_size=6, epochs=3, seed=1)
    plain = fastgd.fit(X, Y, backend="jax", **kw)
    compiled = _epochs_cache_size()
    for seed in (1, 2):
        weight = _weights(31, seed)
        res = fastgd.fit(X, Y, backend="jax", sample_weight=weight, **kw)
        assert _epochs_cache_size() == compiled + 1
        ref = fastgd.fit(X, Y, backend="numpy", sample_weight=weight, **kw)
        np.testing.assert_allclose(res.coef, ref.coef, rtol=1e-12)
        np.testing.assert_allclose(res.loss_history, ref.loss_history, rtol=1e-12)
        assert not np.allclose(res.coef, plain.coef, rtol=1e-3)


def test_the_unweighted_objective_has_no_weight_arithmetic():
    """Without weights the traced loss sum is one multiplication shorter (nothing compiled)."""
    X, Y = _data(k=2)
    model = LoweredModel(LOSS_SQUARED, 0.0, 0.0, 0.0, True)
    params = jax_batches._split(np.zeros((D + 1, 2)))
    hyper = jax_batches._model_hyper(model)
    static = jax_batches._model_static(model)

    def multiplications(weight):
        data = jax_backend.Data(X, Y, weight)
        with jax.enable_x64(True):
            jaxpr = jax.make_jaxpr(jax_batches._loss_sum, static_argnums=3)(
                params, data, hyper, static
            )
        return sum(eqn.primitive.name == "mul" for eqn in jaxpr.eqns)

    assert multiplications(None) == multiplications(np.ones(N)) - 1


def _kink_problem():
    """Scores on every kink: P = X @ W + b gives p = X[:, 0] in column 0 and -p in column 1.

    With labels s = ±1 the margins z = s·p take the values 1 (hinge, squared hinge,
    modified Huber) and -1 (modified Huber); with targets y = p ∓ 0.5 the residuals are
    ±0.5, the epsilon of the Huber and epsilon-insensitive losses below. W's second row
    is 0: the kink of the l1 term.
    """
    p = np.array([1.0, -1.0, 1.0, -1.0, 0.25, 2.0, -3.0, 0.0])
    s = np.array([1.0, -1.0, -1.0, 1.0, 1.0, -1.0, -1.0, 1.0])
    X = np.stack([p, np.linspace(-1, 1, p.size)], axis=1)
    theta = np.array([[1.0, -1.0], [0.0, 0.0], [0.0, 0.0]])
    residual_targets = p - 0.5 * s
    return (
        X,
        theta,
        {
            "signed": np.stack([s, s], axis=1),
            "residual": np.stack([residual_targets, -residual_targets], axis=1),
            "logistic": np.stack([(s > 0), (s < 0)], axis=1).astype(np.float64),
            "multinomial": np.where(s > 0, 1.0, 0.0)[:, None],
        },
    )


_KINK_LOSSES = {
    LOSS_SQUARED: "residual",
    LOSS_HUBER: "residual",
    LOSS_LOGISTIC: "logistic",
    LOSS_HINGE: "signed",
    LOSS_PERCEPTRON: "signed",
    LOSS_SQUARED_HINGE: "signed",
    LOSS_MODIFIED_HUBER: "signed",
    LOSS_EPSILON_INSENSITIVE: "residual",
    LOSS_SQUARED_EPSILON_INSENSITIVE: "residual",
    LOSS_MULTINOMIAL: "multinomial",
}


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("code", sorted(_KINK_LOSSES))
def test_subgradients_at_the_kinks_are_numpys(code, weighted):
    """``jax.value_and_grad`` of the jnp losses gives numpy's subgradient at every kink."""
    X, theta, targets = _kink_problem()
    Y = targets[_KINK_LOSSES[code]]
    weight = _weights(X.shape[0]) if weighted else None
    model = LoweredModel(code, 0.5, 0.1, 0.2, True)
    data, th = jax_backend.prepare(X, Y, theta, None, weight)
    loss, grad = jax_backend.loss_grad(data, th, model)
    ref_loss, ref_grad = numpy_backend.loss_grad(numpy_backend.Data(X, Y, weight), theta, model)
    np.testing.assert_allclose(float(loss), ref_loss, rtol=1e-14)
    np.testing.assert_allclose(np.asarray(grad), ref_grad, rtol=1e-14, atol=1e-15)


def test_hinge_at_a_margin_of_one_counts_as_violated():
    """scikit-learn's choice: at z = s·p = 1 the hinge's derivative is -s, not 0 or -s/2."""
    X = np.array([[1.0], [-1.0]])
    Y = np.array([[1.0], [-1.0]])  # both margins exactly 1
    model = LoweredModel(LOSS_HINGE, 0.0, 0.0, 0.0, True)
    data, theta = jax_backend.prepare(X, Y, np.array([[1.0], [0.0]]), None)
    loss, grad = jax_backend.loss_grad(data, theta, model)
    assert float(loss) == 0.0
    np.testing.assert_array_equal(np.asarray(grad), [[-1.0], [0.0]])  # mean(-s·x), mean(-s)


def test_multinomial_is_stable_for_large_scores():
    X = np.array([[800.0, 1.0], [-900.0, 2.0], [3.0, 0.5]])
    Y = np.array([[0.0], [2.0], [1.0]])
    theta = np.array([[1.0, 0.0, -1.0], [0.5, 0.0, 0.0], [0.0, 0.1, 0.0]])
    model = LoweredModel(LOSS_MULTINOMIAL, 0.0, 0.0, 0.0, True)
    data, th = jax_backend.prepare(X, Y, theta, None)
    loss, grad = jax_backend.loss_grad(data, th, model)
    ref_loss, ref_grad = numpy_backend.loss_grad(numpy_backend.Data(X, Y), theta, model)
    assert np.isfinite(float(loss)) and np.isfinite(np.asarray(grad)).all()
    np.testing.assert_allclose(float(loss), ref_loss, rtol=1e-14)
    np.testing.assert_allclose(np.asarray(grad), ref_grad, rtol=1e-14, atol=1e-15)


def test_l1_subgradient_is_zero_at_zero_and_no_intercept_gradient():
    X, Y = _data(k=2)
    theta = np.array([[0.0, 0.1], [0.5, 0.0], [-0.25, 0.0], [0.0, 0.3], [0.7, -0.2]])
    model = LoweredModel(LOSS_SQUARED, 0.0, 0.0, 0.3, False)
    data, th = jax_backend.prepare(X, Y, theta, None)
    _, grad = jax_backend.loss_grad(data, th, model)
    _, ref = numpy_backend.loss_grad(numpy_backend.Data(X, Y), theta, model)
    grad = np.asarray(grad)
    np.testing.assert_array_equal(grad[-1], 0.0)
    np.testing.assert_allclose(grad, ref, rtol=1e-13, atol=1e-15)


def test_full_batch_float32_products_use_full_precision():
    """float32 gradients match a float64 computation to float32 rounding, not TF32's."""
    X, Y = _data(np.float32, n=200, d=16, k=2)
    theta = np.linspace(-1, 1, 34).reshape(17, 2).astype(np.float32)
    model = LoweredModel(LOSS_SQUARED, 0.0, 0.0, 0.0, True)
    data, th = jax_backend.prepare(X, Y, theta, None)
    _, grad = jax_backend.loss_grad(data, th, model)
    ref_data = numpy_backend.Data(X.astype(np.float64), Y.astype(np.float64))
    _, ref = numpy_backend.loss_grad(ref_data, theta.astype(np.float64), model)
    np.testing.assert_allclose(np.asarray(grad), ref, rtol=2e-5, atol=1e-5)


def test_blocked_full_batch_matches_numpy():
    """Large full batches on a CPU are evaluated in row blocks (plus a remainder block)."""
    d = 64
    rows = jax_batches._block_rows(10**6, d, 8, True)
    n = 4 * rows + 37
    assert jax_batches._block_rows(n, d, 8, True) == rows < n
    X, y = _data(n=n, d=d, seed=4)
    y = (y > 0).astype(np.float64)
    theta = np.linspace(-0.1, 0.1, d + 1)[:, None]
    model = LoweredModel(LOSS_LOGISTIC, 0.0, 0.02, 0.01, True)
    data, th = jax_backend.prepare(X, y[:, None], theta, None)
    loss, grad = jax_backend.loss_grad(data, th, model)
    ref_loss, ref_grad = numpy_backend.loss_grad(numpy_backend.Data(X, y[:, None]), theta, model)
    np.testing.assert_allclose(float(loss), ref_loss, rtol=1e-13)
    np.testing.assert_allclose(np.asarray(grad), ref_grad, rtol=1e-12, atol=1e-16)
    kw = dict(loss="logistic", optimizer="adam", penalty="l2", epochs=3)
    res = fastgd.fit(X, y, backend="jax", **kw)
    ref = fastgd.fit(X, y, backend="numpy", **kw)
    np.testing.assert_allclose(res.coef, ref.coef, rtol=1e-10)
    np.testing.assert_allclose(res.loss_history, ref.loss_history, rtol=1e-12)
    # K outputs and weights are sliced into the same blocks.
    codes = np.digitize(X[:, 0], [-0.5, 0.5])
    kw = dict(loss="multinomial", optimizer="adam", penalty="l1", epochs=2)
    weight = _weights(n)
    res = fastgd.fit(X, codes, backend="jax", sample_weight=weight, **kw)
    ref = fastgd.fit(X, codes, backend="numpy", sample_weight=weight, **kw)
    np.testing.assert_allclose(res.coef, ref.coef, rtol=1e-10)
    np.testing.assert_allclose(res.loss_history, ref.loss_history, rtol=1e-12)


@pytest.mark.parametrize("batch_size, k, weighted", [(None, 1, False), (7, 1, False), (7, 3, True)])
def test_portable_program_matches_cpu_program(batch_size, k, weighted):
    """The program used off the CPU (one kernel per operation, no row blocks) agrees."""
    X, Y = _data(n=5000, d=8, seed=5, k=k)
    n = X.shape[0]
    batch_size = batch_size or n
    model = LoweredModel(LOSS_HUBER, 0.8, 0.01, 0.0, True)
    opt = lower_optimizer(fastgd.SGD(lr=0.01, momentum=0.5))
    orders = np.stack([np.random.default_rng(s).permutation(n) for s in (0, 1)])
    weight = _weights(n) if weighted else None
    data, th = jax_backend.prepare(X, Y, np.zeros((9, k)), "cpu", weight)
    step, slots = jax_backend.init_state(th, opt)
    hyper = np.concatenate([jax_batches._model_hyper(model), jax_updates._opt_hyper(opt)])
    padded = jax_staging._padded_epochs(orders, batch_size >= n)
    results = []
    for portable in (False, True):
        block_rows = n if portable else jax_batches._block_rows(n, 8, 8, True)
        with jax.enable_x64(True):
            out = jax_epochs._epochs_program(
                data, th, step, slots, padded, np.int64(2), hyper,
                static=jax_batches._model_static(model), opt=jax_updates._opt_static(opt),
                batch_size=batch_size,
                block_rows=block_rows, single_cpu_kernel=not portable and batch_size < n,
            )  # fmt: skip
        results.append([np.asarray(a) for a in out])
    for fast, portable in zip(*results, strict=True):
        np.testing.assert_allclose(fast, portable, rtol=1e-12, atol=1e-15)


_CACHE_SCRIPT = """
import numpy as np, jax, fastgd
X = np.arange(12.0).reshape(6, 2); y = X.sum(1)
fastgd.fit(X, y, backend="jax", batch_size=2, epochs=1)
print(jax.config.jax_compilation_cache_dir)
"""


@pytest.mark.parametrize("user_configured", [False, True])
def test_persistent_compilation_cache(tmp_path, user_configured):
    """Programs land in $FASTGD_JAX_CACHE_DIR, unless the user configured jax's own cache."""
    import os
    import subprocess
    import sys

    ours, theirs = tmp_path / "fastgd", tmp_path / "user"
    env = {**os.environ, "FASTGD_JAX_CACHE_DIR": str(ours), "JAX_PLATFORMS": "cpu"}
    env.pop("JAX_COMPILATION_CACHE_DIR", None)
    if user_configured:  # the user's own settings, left as they are
        env["JAX_COMPILATION_CACHE_DIR"] = str(theirs)
        env["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
    out = subprocess.run(
        [sys.executable, "-c", _CACHE_SCRIPT], env=env, capture_output=True, text=True,
        check=True, timeout=120,
    )  # fmt: skip
    used = theirs if user_configured else ours
    assert out.stdout.strip().splitlines()[-1] == str(used)
    assert used.is_dir() and any(used.iterdir())
    if user_configured:
        assert not ours.exists()


@pytest.mark.parametrize("loss", ["squared", "multinomial"])
def test_multi_output_mini_batches_run_as_a_single_kernel(monkeypatch, loss):
    """Products of K > 1 outputs, which XLA:CPU would give YNNPACK, fit in the one kernel."""
    monkeypatch.setattr(jax_epochs, "_single_kernel_refused", set())
    X, Y = _data(n=40, seed=7, k=3)
    y = np.argmax(Y, axis=1) if loss == "multinomial" else Y
    compiled = jax_epochs._single_kernel_program._cache_size()
    kw = dict(loss=loss, optimizer="adam", batch_size=8, epochs=2, seed=0)
    res = fastgd.fit(X, y, backend="jax", **kw)
    assert jax_epochs._single_kernel_program._cache_size() == compiled + 1
    assert not jax_epochs._single_kernel_refused
    ref = fastgd.fit(X, y, backend="numpy", **kw)
    np.testing.assert_allclose(res.coef, ref.coef, rtol=1e-12)


@pytest.mark.parametrize(
    "message",
    [
        "UNIMPLEMENTED: Fusion kind not implemented on CPU",
        "INVALID_ARGUMENT: No such compile option: 'xla_cpu_experimental_ynn_fusion_type'",
    ],
    ids=["unsupported-fusion", "unknown-option"],
)
def test_a_refused_single_kernel_is_not_retried(monkeypatch, message):
    program = jax_epochs._epochs_program
    attempts = []

    def refusing(*args, single_cpu_kernel, **static):
        attempts.append(single_cpu_kernel)
        if single_cpu_kernel:
            raise jax.errors.JaxRuntimeError(message)
        return program(*args, single_cpu_kernel=False, **static)

    monkeypatch.setattr(jax_epochs, "_epochs_program", refusing)
    monkeypatch.setattr(jax_epochs, "_single_kernel_refused", set())
    X, y = _data(n=40, seed=7)
    for _ in range(2):
        res = fastgd.fit(X, y, backend="jax", batch_size=8, epochs=2, seed=0)
    assert attempts == [True, False, False]
    ref = fastgd.fit(X, y, backend="numpy", batch_size=8, epochs=2, seed=0)
    np.testing.assert_allclose(res.coef, ref.coef, rtol=1e-12)
    # Weighted data are another configuration: tried as a single kernel once more.
    fastgd.fit(X, y, backend="jax", batch_size=8, epochs=2, seed=0, sample_weight=_weights(40))
    assert attempts == [True, False, False, True, False]
