"""The checks of ``tests/test_jax_devices.py``, run in a process with 4 jax CPU devices.

``XLA_FLAGS=--xla_force_host_platform_device_count=4 JAX_PLATFORMS=cpu pytest
tests/jax_devices_checks.py`` (not a ``test_*`` module: the suite's own run collects
only the test that runs it so). Data-parallel jax on a mesh of 4 devices equals one
device (and the numpy backend): ``fit(devices=...)`` and the kernels.

Every case trains n = 37 rows, which split unevenly over 4 devices, in full batches,
mini-batches of 8 (the last one of 5) and one sample at a time, so that padding rows
and padded batches (weight 0) are always involved.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
from helpers import (
    ALL_LOSSES,
    BATCH_MODES,
    EPOCHS,
    K_MULTI,
    OPTIMIZERS,
    kernel_data,
    lowered,
    model_for,
    problem,
    rel_err,
    sample_weights,
    theta_of,
)

import fastgd

jax = pytest.importorskip("jax")
jax_backend = fastgd.get_backend("jax")
jax_batches = pytest.importorskip("fastgd.backends.jax.batches")
jax_devices = pytest.importorskip("fastgd.backends.jax.devices")
jax_epochs = pytest.importorskip("fastgd.backends.jax.epochs")
jax_updates = pytest.importorskip("fastgd.backends.jax.updates")

FORCED = 4
pytestmark = pytest.mark.skipif(
    jax.device_count() != FORCED or jax.devices()[0].platform != "cpu",
    reason="needs 4 jax CPU devices: run by tests/test_jax_devices.py",
)
#: Relative agreement asked of a mesh with one device (float64; measured about 1e-15).
RTOL = 1e-9


def _cases() -> list[tuple[str, str, str, int | None, bool]]:
    """(loss, optimizer, batch mode, K, weighted): 27 fits that share few programs.

    Every loss meets every batch mode (i % 9, i // 9), every batch mode every optimizer
    (9 consecutive i cover the 7 optimizers); each loss trains with K = 1 and K = 3 and
    with and without weights; each batch mode sees all four (K, weights) pairs.
    ``multinomial`` always has K_MULTI classes.
    """
    modes, names = list(BATCH_MODES), list(OPTIMIZERS)
    cases = []
    for i in range(3 * len(ALL_LOSSES)):
        loss_index, mode_index = i % len(ALL_LOSSES), i // len(ALL_LOSSES)
        k = K_MULTI if (loss_index + mode_index) % 2 else None
        weighted = bool((loss_index // 3 + mode_index) % 2)
        cases.append((ALL_LOSSES[loss_index], names[i % len(names)], modes[mode_index], k,
                      weighted))  # fmt: skip
    return cases


CASES = _cases()


def _fit(loss, optimizer, mode, k, weighted, backend="jax", **placement):
    X, y = problem(loss, n_outputs=k)
    return fastgd.fit(
        X, y, loss=loss, optimizer=OPTIMIZERS[optimizer], batch_size=BATCH_MODES[mode],
        epochs=EPOCHS, penalty="elasticnet", alpha=0.05, l1_ratio=0.4, seed=0,
        sample_weight=sample_weights() if weighted else None, backend=backend, **placement,
    )  # fmt: skip


def _assert_same_fit(mesh, one, what=""):
    """A mesh fit against another fit: parameters and losses to RTOL, the same steps."""
    assert mesh.optimizer_state[0] == mesh.n_updates == one.n_updates, what
    assert rel_err(theta_of(mesh), theta_of(one)) <= RTOL, what
    assert rel_err(mesh.loss_history, one.loss_history) <= RTOL, what


@pytest.mark.parametrize(
    "loss, optimizer, mode, k, weighted", CASES,
    ids=[f"{c[0]}-{c[1]}-{c[2]}-k{c[3] or 1}-{'w' if c[4] else 'u'}" for c in CASES],
)  # fmt: skip
def test_four_devices_equal_one(loss, optimizer, mode, k, weighted):
    one = _fit(loss, optimizer, mode, k, weighted)
    mesh = _fit(loss, optimizer, mode, k, weighted, devices=FORCED)
    _assert_same_fit(mesh, one, "against one device")
    _assert_same_fit(mesh, _fit(loss, optimizer, mode, k, weighted, "numpy"), "against numpy")


@pytest.mark.parametrize("mode", list(BATCH_MODES))
def test_the_loss_derivative_clip_holds_on_the_mesh(mode):
    """``max_dloss`` clips each sample's derivative, before its weight, on a mesh too."""
    case = ("squared", "sgd", mode, K_MULTI, True)
    mesh = _fit(*case, devices=FORCED, max_dloss=1.5)
    clipped = _fit(*case, "numpy", max_dloss=1.5)
    assert rel_err(theta_of(_fit(*case, "numpy")), theta_of(clipped)) > 1e-3  # the clip acts
    _assert_same_fit(mesh, clipped, "against numpy")


@pytest.mark.parametrize("devices", [2, 3, "all", "list"])
@pytest.mark.parametrize("batch_size", [None, 3, 8], ids=["full", "mini3", "mini8"])
def test_every_way_to_name_the_devices(devices, batch_size):
    """2, 3 (37 rows in blocks of 39) or 4 devices, by count, "all" or a list in any order;
    batches of 3 and 8 padded to 4 or 6, 8 and 9."""
    if devices == "list":
        devices = [jax.devices()[3], jax.devices()[1], jax.devices()[2]]
    X, y = problem("huber", n_outputs=2)
    kwargs = dict(loss="huber", optimizer=OPTIMIZERS["nesterov"], batch_size=batch_size,
                  epochs=EPOCHS, seed=1, backend="jax")  # fmt: skip
    one = fastgd.fit(X, y, **kwargs)
    _assert_same_fit(fastgd.fit(X, y, devices=devices, **kwargs), one, str(devices))


def test_float32_stays_float32_on_the_mesh():
    X, y = problem("logistic", np.float32, n_outputs=3)
    kwargs = dict(loss="logistic", optimizer="rmsprop", batch_size=8, epochs=EPOCHS, seed=0,
                  sample_weight=sample_weights(), backend="jax")  # fmt: skip
    one, mesh = fastgd.fit(X, y, **kwargs), fastgd.fit(X, y, devices=FORCED, **kwargs)
    assert mesh.coef.dtype == mesh.intercept.dtype == np.float32
    assert rel_err(theta_of(mesh), theta_of(one)) <= 250 * np.finfo(np.float32).eps


def test_one_device_of_the_mesh_is_the_single_device_program():
    """devices=1 (or a list of one device) is not a mesh: the same program, bit for bit."""
    X, y = problem("logistic")
    kwargs = dict(loss="logistic", optimizer="adam", batch_size=8, epochs=2, seed=0,
                  backend="jax")  # fmt: skip
    one = fastgd.fit(X, y, **kwargs)
    for devices in (1, [jax.devices()[0]]):
        res = fastgd.fit(X, y, devices=devices, **kwargs)
        np.testing.assert_array_equal(theta_of(res), theta_of(one))
    data, _ = jax_backend.prepare(X, y[:, None], np.zeros((X.shape[1] + 1, 1)), 1)
    assert type(data) is jax_backend.Data and data.X.devices() == {jax.devices()[0]}


def test_rows_are_split_over_the_mesh_and_parameters_replicated():
    X, y = problem("squared")
    n, d = X.shape
    weight = sample_weights()
    data, theta = jax_backend.prepare(X, y[:, None], np.zeros((d + 1, 1)), "all", weight)
    block = -(-(n + 1) // FORCED) * FORCED  # at least one padding row: 40 rows
    assert data.X.shape == (block, d) and data.weight.shape == (block,)
    for a in data:
        assert len(a.addressable_shards) == FORCED
        assert {s.data.shape[0] for s in a.addressable_shards} == {block // FORCED}
    np.testing.assert_array_equal(np.asarray(data.X)[:n], X)
    np.testing.assert_array_equal(np.asarray(data.X)[n:], 0.0)
    np.testing.assert_array_equal(np.asarray(data.weight), np.r_[weight, np.zeros(block - n)])
    assert theta.sharding.is_fully_replicated and len(theta.sharding.device_set) == FORCED
    assert jax_backend.global_rows(data) == n
    step, slots = jax_backend.init_state(theta, lowered(fastgd.Adam()))
    assert step.sharding.is_fully_replicated and slots.sharding.is_fully_replicated
    unweighted, _ = jax_backend.prepare(X, y[:, None], np.zeros((d + 1, 1)), "all")
    np.testing.assert_array_equal(np.asarray(unweighted.weight), np.r_[np.ones(n), [0.0] * 3])


@pytest.mark.parametrize("loss, k", [("squared", None), ("multinomial", None), ("hinge", 3)])
def test_kernels_on_the_mesh_equal_numpy(loss, k):
    """loss_grad, init_state and update on mesh data: the mean divides by the 37 real rows."""
    X, y = problem(loss, n_outputs=k)
    Y, weight = kernel_data(loss, X, y, sample_weights())
    n_outputs = K_MULTI if loss == "multinomial" else Y.shape[1]
    theta0 = np.random.default_rng(0).standard_normal((X.shape[1] + 1, n_outputs))
    model, opt = model_for(loss, "l2"), lowered(OPTIMIZERS["adam"])
    numpy_backend = fastgd.get_backend("numpy")
    ref_loss, ref_grad = numpy_backend.loss_grad(
        numpy_backend.Data(X, Y, weight), theta0.copy(), model
    )
    data, theta = jax_backend.prepare(X, Y, theta0, FORCED, weight)
    value, grad = jax_backend.loss_grad(data, theta, model)
    assert rel_err(float(value), ref_loss) <= 1e-12
    assert rel_err(grad, ref_grad) <= 1e-12
    state = jax_backend.init_state(theta, opt)
    theta, state = jax_backend.update(theta, grad, state, opt)
    ref_theta, _ = numpy_backend.update(theta0.copy(), ref_grad, numpy_backend.init_state(
        theta0, opt), opt)  # fmt: skip
    assert rel_err(theta, ref_theta) <= 1e-12 and int(state[0]) == 1
    assert theta.sharding.is_fully_replicated


def test_each_batch_is_split_over_the_devices():
    """In the compiled mini-batch program each device computes the predictions of its 2
    rows of a batch of 8, and XLA sums the devices' partial gradients (all-reduce)."""
    X, y = problem("squared")
    data, theta = jax_backend.prepare(X, y[:, None], np.zeros((X.shape[1] + 1, 1)), FORCED)
    layout = data.layout
    orders = np.random.default_rng(0).permutation(X.shape[0])[None, :]
    model, opt = model_for("squared"), lowered(fastgd.Adam())
    hyper = np.concatenate([jax_batches._model_hyper(model), jax_updates._opt_hyper(opt)])
    with jax.enable_x64(True):
        args = [jax_devices._replicated(a, layout.mesh) for a in (
            theta, np.int64(0), np.zeros((2, *theta.shape)),
            jax_devices._orders_on_mesh(orders, 8, layout), np.int64(1), hyper,
        )]  # fmt: skip
        text = jax_epochs._portable_program.lower(
            data, *args, static=jax_batches._model_static(model),
            opt=jax_updates._opt_static(opt), batch_size=8, block_rows=None,
            spread=layout.spread,
        ).compile().as_text()  # fmt: skip
    assert re.search(rf"f64\[{8 // FORCED},1\]\S* dot\(", text), "no per-device share"
    assert not re.search(r"f64\[8,1\]\S* dot\(", text), "the whole batch on every device"
    assert "all-reduce(" in text


def test_bad_devices_are_refused():
    X, y = problem("squared")
    for devices, message in ((5, "5"), (0, "0"), ([], r"\[\]"), ("some", "some"),
                             ([jax.devices()[0]] * 2, "twice"), (True, "True")):  # fmt: skip
        with pytest.raises(ValueError, match=message):
            fastgd.fit(X, y, backend="jax", devices=devices, epochs=1)


def test_info_and_compare_show_the_mesh(capsys):
    from fastgd.cli import main
    from fastgd.compare import _device_targets

    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert "jax mesh of fit(devices='all'): cpu x4 over 1 process" in out
    assert ("jax", "cpu x4") in _device_targets(["jax"])
    argv = ["compare", "--quick", "--no-progress", "--repeat", "1", "--backends", "numpy,jax",
            "--problems", "adam,gd", "--sizes", "64x3", "--dtype", "float64"]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr().out
    rows = [line.split() for line in out.splitlines() if " cpu x4 " in line]
    assert len(rows) == 2, out  # adam and gd on the mesh
    for row in rows:
        assert float(row[-1]) <= 1e-12, out  # max abs difference from numpy
