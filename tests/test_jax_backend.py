"""Behaviour specific to the jax backend: x64 scoping, dtypes, devices and compilation reuse."""

from __future__ import annotations

import numpy as np
import pytest

import fastgd
from fastgd.specs import LOSS_SQUARED, LoweredModel, lower_optimizer

jax = pytest.importorskip("jax")
jax_backend = fastgd.get_backend("jax")

N, D = 23, 4


def _data(dtype=np.float64, n: int = N, d: int = D, seed: int = 0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d)).astype(dtype)
    y = (X @ rng.standard_normal(d) + 0.3).astype(dtype)
    return X, y


def _epochs_cache_size() -> int:
    return jax_backend._epochs_program._cache_size()


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
    Xd, yd, theta = jax_backend.prepare(X, y, np.zeros(D + 1), None)
    assert Xd.dtype == yd.dtype == theta.dtype == np.float64
    np.testing.assert_array_equal(np.asarray(Xd), X)


def _unaligned_copy(a: np.ndarray, offset: int = 16) -> np.ndarray:
    """A copy of ``a`` whose buffer starts ``offset`` bytes past a 64-byte boundary."""
    raw = np.empty(a.nbytes + 128, dtype=np.uint8)
    start = (-raw.ctypes.data % 64) + offset
    out = raw[start : start + a.nbytes].view(a.dtype).reshape(a.shape)
    out[...] = a
    return out


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_prepare_unaligned_input_gives_a_private_aligned_copy(dtype):
    """On a CPU an unaligned X is copied once into an aligned buffer the fit owns."""
    X, y = _data(dtype, n=200, d=6)
    Xu, yu = _unaligned_copy(X), _unaligned_copy(y)
    assert Xu.ctypes.data % 64 == 16
    Xd, yd, theta = jax_backend.prepare(Xu, yu, np.zeros(7, dtype), "cpu")
    assert Xd.dtype == yd.dtype == theta.dtype == dtype
    assert Xd.unsafe_buffer_pointer() % 64 == 0 and yd.unsafe_buffer_pointer() % 64 == 0
    Xu[...] = -1.0  # the caller's arrays are not shared with the prepared ones
    yu[...] = -1.0
    np.testing.assert_array_equal(np.asarray(Xd), X)
    np.testing.assert_array_equal(np.asarray(yd), y)
    res = fastgd.fit(_unaligned_copy(X), _unaligned_copy(y), backend="jax", epochs=2)
    ref = fastgd.fit(X, y, backend="numpy", epochs=2)
    rtol = 1e-12 if dtype == np.float64 else 1e-5
    np.testing.assert_allclose(res.coef, ref.coef, rtol=rtol)


@pytest.mark.parametrize("n_epochs", [1, 3, 4, 5])
def test_padded_epochs_keeps_the_orders_and_pads_to_a_power_of_two(n_epochs):
    n = 37
    orders = np.stack([np.random.default_rng(e).permutation(n) for e in range(n_epochs)])
    padded = jax_backend._padded_epochs(orders, False)
    assert padded.shape == (1 << (n_epochs - 1).bit_length(), n)
    assert padded.dtype == np.int32 and padded.ctypes.data % 64 == 0
    np.testing.assert_array_equal(padded[:n_epochs], orders)
    assert jax_backend._padded_epochs(orders, True).shape == (padded.shape[0], 0)


def test_float32_in_float32_out():
    X, y = _data(np.float32)
    model = LoweredModel(LOSS_SQUARED, 0.0, 0.01, 0.0, True)
    opt = lower_optimizer(fastgd.Adam(lr=0.01))
    Xd, yd, theta = jax_backend.prepare(X, y, np.zeros(D + 1, np.float32), "cpu")
    loss, grad = jax_backend.loss_grad(Xd, yd, theta, model)
    assert grad.dtype == np.float32 and loss.dtype == np.float64
    state = jax_backend.init_state(theta, opt)
    assert state[1].dtype == np.float32
    orders = np.stack([np.arange(N), np.arange(N)[::-1]]).astype(np.int64)
    theta2, (step, slots), losses = jax_backend.run_epochs(
        Xd, yd, theta, state, orders, 5, model, opt
    )
    assert theta2.dtype == np.float32 and slots.dtype == np.float32
    assert losses.dtype == np.float64 and losses.shape == (2,)
    assert int(step) == 2 * 5  # ceil(23 / 5) updates per epoch
    res = fastgd.fit(X, y, backend="jax", batch_size=4, epochs=2, seed=0)
    assert res.coef.dtype == np.float32


def test_device_cpu_and_bad_devices():
    X, y = _data()
    cpu = jax.devices("cpu")[0]
    for device in ("cpu", cpu):
        res = fastgd.fit(X, y, backend="jax", device=device, epochs=3)
        ref = fastgd.fit(X, y, backend="numpy", epochs=3)
        np.testing.assert_allclose(res.coef, ref.coef, rtol=1e-12)
    Xd, _, _ = jax_backend.prepare(X, y, np.zeros(D + 1), cpu)
    assert Xd.devices() == {cpu}
    with pytest.raises(ValueError, match="tpu"):
        fastgd.fit(X, y, backend="jax", device="tpu")
    with pytest.raises(ValueError, match="3"):
        jax_backend.prepare(X, y, np.zeros(D + 1), 3)
    if not any(d.platform == "gpu" for d in jax.devices()):
        with pytest.raises(ValueError, match="'gpu'"):
            fastgd.fit(X, y, backend="jax", device="gpu")


def test_refit_with_other_hyper_parameters_does_not_recompile():
    X, y = _data(n=31)
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


def test_l1_subgradient_is_zero_at_zero_and_no_intercept_gradient():
    X, y = _data()
    theta = np.array([0.0, 0.5, -0.25, 0.0, 0.7])
    model = LoweredModel(LOSS_SQUARED, 0.0, 0.0, 0.3, False)
    Xd, yd, th = jax_backend.prepare(X, y, theta, None)
    _, grad = jax_backend.loss_grad(Xd, yd, th, model)
    _, ref = fastgd.get_backend("numpy").loss_grad(X, y, theta, model)
    grad = np.asarray(grad)
    assert grad[-1] == 0.0
    np.testing.assert_allclose(grad, ref, rtol=1e-13, atol=1e-15)


def test_full_batch_float32_products_use_full_precision():
    """float32 gradients match a float64 computation to float32 rounding, not TF32's."""
    X, y = _data(np.float32, n=200, d=16)
    theta = np.linspace(-1, 1, 17).astype(np.float32)
    model = LoweredModel(LOSS_SQUARED, 0.0, 0.0, 0.0, True)
    Xd, yd, th = jax_backend.prepare(X, y, theta, None)
    _, grad = jax_backend.loss_grad(Xd, yd, th, model)
    _, ref = fastgd.get_backend("numpy").loss_grad(
        X.astype(np.float64), y.astype(np.float64), theta.astype(np.float64), model
    )
    np.testing.assert_allclose(np.asarray(grad), ref, rtol=2e-5, atol=1e-5)


def test_blocked_full_batch_matches_numpy():
    """Large full batches on a CPU are evaluated in row blocks (plus a remainder block)."""
    d = 64
    rows = jax_backend._block_rows(10**6, d, 8, True)
    n = 4 * rows + 37
    assert jax_backend._block_rows(n, d, 8, True) == rows < n
    X, y = _data(n=n, d=d, seed=4)
    y = (y > 0).astype(np.float64)
    theta = np.linspace(-0.1, 0.1, d + 1)
    model = LoweredModel(fastgd.specs.LOSS_LOGISTIC, 0.0, 0.02, 0.01, True)
    Xd, yd, th = jax_backend.prepare(X, y, theta, None)
    loss, grad = jax_backend.loss_grad(Xd, yd, th, model)
    ref_loss, ref_grad = fastgd.get_backend("numpy").loss_grad(X, y, theta, model)
    np.testing.assert_allclose(float(loss), ref_loss, rtol=1e-13)
    np.testing.assert_allclose(np.asarray(grad), ref_grad, rtol=1e-12, atol=1e-16)
    kw = dict(loss="logistic", optimizer="adam", penalty="l2", epochs=3)
    res = fastgd.fit(X, y, backend="jax", **kw)
    ref = fastgd.fit(X, y, backend="numpy", **kw)
    np.testing.assert_allclose(res.coef, ref.coef, rtol=1e-10)
    np.testing.assert_allclose(res.loss_history, ref.loss_history, rtol=1e-12)


@pytest.mark.parametrize("batch_size", [None, 7])
def test_portable_program_matches_cpu_program(batch_size):
    """The program used off the CPU (one kernel per operation, no row blocks) agrees."""
    X, y = _data(n=5000, d=8, seed=5)
    n = X.shape[0]
    batch_size = batch_size or n
    model = LoweredModel(fastgd.specs.LOSS_HUBER, 0.8, 0.01, 0.0, True)
    opt = lower_optimizer(fastgd.SGD(lr=0.01, momentum=0.5))
    orders = np.stack([np.random.default_rng(s).permutation(n) for s in (0, 1)])
    Xd, yd, th = jax_backend.prepare(X, y, np.zeros(9), "cpu")
    step, slots = jax_backend.init_state(th, opt)
    hyper = np.concatenate([jax_backend._model_hyper(model), jax_backend._opt_hyper(opt)])
    padded = jax_backend._padded_epochs(orders, batch_size >= n)
    results = []
    for portable in (False, True):
        block_rows = n if portable else jax_backend._block_rows(n, 8, 8, True)
        with jax.enable_x64(True):
            out = jax_backend._epochs_program(
                Xd, yd, th, step, slots, padded, np.int64(2), hyper,
                static=jax_backend._model_static(model), opt=jax_backend._opt_static(opt),
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


def test_large_batches_fall_back_when_xla_refuses_the_single_kernel(monkeypatch):
    """XLA:CPU (jaxlib 0.10) cannot emit a 4096-sample batch as one kernel: still correct."""
    monkeypatch.setattr(jax_backend, "_SINGLE_KERNEL_MAX_BATCH", 10**9)
    monkeypatch.setattr(jax_backend, "_single_kernel_refused", set())
    X, y = _data(n=4096 + 100, d=3, seed=6)
    kw = dict(optimizer="adam", batch_size=4096, epochs=2, seed=0)
    res = fastgd.fit(X, y, backend="jax", **kw)
    ref = fastgd.fit(X, y, backend="numpy", **kw)
    np.testing.assert_allclose(res.coef, ref.coef, rtol=1e-12)


def test_a_refused_single_kernel_is_not_retried(monkeypatch):
    program = jax_backend._epochs_program
    attempts = []

    def refusing(*args, single_cpu_kernel, **static):
        attempts.append(single_cpu_kernel)
        if single_cpu_kernel:
            raise jax.errors.JaxRuntimeError("UNIMPLEMENTED: Fusion kind not implemented on CPU")
        return program(*args, single_cpu_kernel=False, **static)

    monkeypatch.setattr(jax_backend, "_epochs_program", refusing)
    monkeypatch.setattr(jax_backend, "_single_kernel_refused", set())
    X, y = _data(n=40, seed=7)
    for _ in range(2):
        res = fastgd.fit(X, y, backend="jax", batch_size=8, epochs=2, seed=0)
    assert attempts == [True, False, False]
    ref = fastgd.fit(X, y, backend="numpy", batch_size=8, epochs=2, seed=0)
    np.testing.assert_allclose(res.coef, ref.coef, rtol=1e-12)

