"""``backend="auto"``: the rules of ``fastgd.auto``, and ``fit``/the estimators/``fastgd info``
running the backend they pick."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import fastgd
from fastgd import auto
from fastgd.auto import choose_backend
from fastgd.cli import AUTO_EXAMPLES, main

ALL = ("numpy", "numba", "jax")

# (n, d, K, batch_size, epochs) of the typical problems (fastgd info's examples)
SGD1 = (200_000, 100, 1, 1, 5)
FULL = (2_000_000, 32, 1, None, 10)
MB64 = (200_000, 100, 1, 64, 5)
TINY = (100, 5, 1, None, 100)
OVR10 = (200_000, 100, 10, 1, 5)
MB4096 = (1_000_000, 64, 1, 4096, 5)  # 2**18 elements a step, 2**28.3 a fit: accelerator-sized

# problem, accelerator, available backends, device -> backend, device, rule
RULES = [
    ("sgd1 cpu", SGD1, None, ALL, None, "numba", None, 4),
    ("full cpu", FULL, None, ALL, None, "numba", None, 4),
    ("mb64 cpu", MB64, None, ALL, None, "numba", None, 4),
    ("mb4096 cpu", MB4096, None, ALL, None, "numba", None, 4),
    ("tiny cpu", TINY, None, ALL, None, "numpy", None, 3),
    ("ovr10 cpu", OVR10, None, ALL, None, "numba", None, 4),
    ("sgd1 gpu", SGD1, "gpu", ALL, None, "numba", None, 4),
    ("full gpu", FULL, "gpu", ALL, None, "jax", None, 2),
    ("mb64 gpu", MB64, "gpu", ALL, None, "numba", None, 4),
    ("mb4096 gpu", MB4096, "gpu", ALL, None, "jax", None, 2),
    ("tiny gpu", TINY, "gpu", ALL, None, "numpy", None, 3),
    ("ovr10 gpu", OVR10, "gpu", ALL, None, "numba", None, 4),
    ("full gpu device cpu", FULL, "gpu", ALL, "cpu", "numba", "cpu", 4),
    ("tiny device cpu", TINY, None, ALL, "cpu", "numpy", "cpu", 3),
    ("sgd1 device gpu", SGD1, None, ALL, "gpu", "jax", "gpu", 1),
    ("tiny device gpu", TINY, None, ALL, "gpu", "jax", "gpu", 1),
    ("full gpu without jax", FULL, "gpu", ("numpy", "numba"), None, "numba", None, 4),
    ("sgd1 without numba", SGD1, None, ("numpy", "jax"), None, "jax", None, 5),
    ("ovr10 without numba", OVR10, None, ("numpy", "jax"), None, "jax", None, 5),
    ("full without numba, device cpu", FULL, None, ("numpy", "jax"), "cpu", "jax", "cpu", 5),
    ("sgd1 numpy only", SGD1, None, ("numpy",), None, "numpy", None, 6),
]


@pytest.mark.parametrize(
    ("shape", "accelerator", "available", "device", "backend", "where", "rule"),
    [case[1:] for case in RULES], ids=[case[0] for case in RULES],
)
def test_each_rule_picks_what_it_says(shape, accelerator, available, device, backend, where,
                                      rule):  # fmt: skip
    choice = choose_backend(*shape, np.float64, device=device, accelerator=accelerator,
                            available=available)  # fmt: skip
    assert (choice.backend, choice.device, choice.rule) == (backend, where, rule)
    assert choice.backend in choice.describe() and f"rule {rule}" in choice.describe()


def test_devices_mean_jax():
    choice = choose_backend(*TINY, device=None, devices="all", accelerator=None)
    assert (choice.backend, choice.rule) == ("jax", 1)


def test_the_accelerator_is_detected_only_for_large_problems(monkeypatch):
    """Detection imports jax: small problems must not ask; large ones do."""

    def must_not_run():
        raise AssertionError("detect_accelerator called for a problem below rule 2's sizes")

    monkeypatch.setattr(auto, "detect_accelerator", must_not_run)
    for shape in (SGD1, MB64, TINY, OVR10):
        assert choose_backend(*shape, available=ALL).backend != "jax"
    monkeypatch.setattr(auto, "detect_accelerator", lambda: "gpu")
    assert choose_backend(*FULL, available=ALL).backend == "jax"
    monkeypatch.setattr(auto, "detect_accelerator", lambda: None)
    assert choose_backend(*FULL, available=ALL).backend == "numba"


def test_the_cpu_picks_on_this_machine_follow_the_table(monkeypatch):
    monkeypatch.setattr(auto, "detect_accelerator", lambda: None)
    assert choose_backend(*TINY).backend == "numpy"
    for shape in (SGD1, FULL, MB64, OVR10):
        assert choose_backend(*shape).backend == "numba"  # numba is a dependency


def test_numpy_keeps_the_fits_it_finishes_in_50_ms():
    # per-sample SGD: 27 us a step, so 1851 steps fit in 50 ms and 1852 do not
    assert choose_backend(1851, 5, 1, 1, 1, accelerator=None).backend == "numpy"
    assert choose_backend(1852, 5, 1, 1, 1, accelerator=None).backend == "numba"


def test_rule_two_thresholds():
    step, whole = auto.GPU_MIN_STEP_ELEMENTS, auto.GPU_MIN_FIT_ELEMENTS
    # a full batch of exactly the step threshold, for just enough epochs
    n, d = step // 16, 16
    epochs = whole // step
    assert choose_backend(n, d, 1, None, epochs, accelerator="gpu").backend == "jax"
    assert choose_backend(n, d, 1, None, epochs - 1, accelerator="gpu").backend == "numba"
    assert choose_backend(n - 1, d, 1, None, 2 * epochs, accelerator="gpu").backend == "numba"
    # fewer epochs than it takes to repay the copy of X, however large X is
    few = auto.GPU_MIN_EPOCHS - 1
    assert choose_backend(10**8, d, 1, None, few, accelerator="gpu").backend == "numba"
    assert choose_backend(10**8, d, 1, None, few + 1, accelerator="gpu").backend == "jax"


# ----------------------------------------------------------------------------- fit


def _data(n=200, d=5, seed=0):
    X, y, _ = fastgd.make_regression(n, d, seed=seed)
    return X, y


@pytest.mark.parametrize(
    ("batch_size", "epochs", "expected"),
    [(None, 20, "numpy"), (1, 100, "numba")],
    ids=["tiny-full-batch", "per-sample"],
)
def test_fit_auto_records_the_backend_and_equals_it_named(batch_size, epochs, expected):
    X, y = _data()
    kwargs = dict(optimizer="adam", lr=0.01, batch_size=batch_size, epochs=epochs, seed=3)
    result = fastgd.fit(X, y, backend="auto", **kwargs)
    assert result.backend == expected
    assert result.backend == choose_backend(200, 5, 1, batch_size, epochs).backend
    named = fastgd.fit(X, y, backend=result.backend, **kwargs)
    np.testing.assert_array_equal(result.coef, named.coef, strict=True)
    assert result.intercept == named.intercept
    np.testing.assert_array_equal(result.loss_history, named.loss_history, strict=True)


def test_fit_auto_counts_outputs_and_classes():
    X, y = _data(n=300)
    codes = np.argmax(X[:, :3], axis=1)
    onehot = np.eye(3)[codes]
    for target, loss in ((onehot, "hinge"), (codes, "multinomial")):
        result = fastgd.fit(X, target, loss=loss, batch_size=1, epochs=30, backend="auto")
        assert result.backend == choose_backend(300, 5, 3, 1, 30).backend


def test_fit_auto_respects_device_cpu(monkeypatch):
    """A (faked) accelerator and a problem large enough for it: device="cpu" keeps the
    fit off it, and without device the fit goes to jax (here jax's default, the CPU)."""
    pytest.importorskip("jax")
    monkeypatch.setattr(auto, "detect_accelerator", lambda: "gpu")
    monkeypatch.setattr(auto, "GPU_MIN_STEP_ELEMENTS", 1)
    monkeypatch.setattr(auto, "GPU_MIN_FIT_ELEMENTS", 1)
    X, y = _data()
    on_cpu = fastgd.fit(X, y, epochs=5, backend="auto", device="cpu")
    assert on_cpu.backend == "numpy"  # tiny: rule 3
    accelerated = fastgd.fit(X, y, epochs=5, backend="auto")
    assert accelerated.backend == "jax"
    np.testing.assert_allclose(accelerated.coef, on_cpu.coef, rtol=1e-10, atol=1e-12)
    monkeypatch.setattr(auto, "detect_accelerator", lambda: None)
    assert fastgd.fit(X, y, batch_size=1, epochs=100, backend="auto",
                      device="cpu").backend == "numba"  # fmt: skip


def test_fit_auto_with_a_jax_device_runs_jax():
    jax = pytest.importorskip("jax")
    X, y = _data()
    result = fastgd.fit(X, y, epochs=5, backend="auto", device=jax.devices()[0])
    assert result.backend == "jax"


@pytest.mark.parametrize("bad", ["torch", "Auto", "", None, 3])
def test_bad_backend_names_raise_naming_the_value(bad):
    X, y = _data()
    with pytest.raises(ValueError) as info:
        fastgd.fit(X, y, epochs=1, backend=bad)
    message = str(info.value)
    for fragment in ("backend", repr(bad), "auto", "numpy", "numba", "jax"):
        assert fragment in message, f"{fragment!r} not in {message!r}"


def test_auto_imports_jax_only_to_ask_an_accelerator_plugin():
    """A tiny fit imports neither jax nor numba; a large choice imports jax only where a
    jax accelerator plugin (or libtpu) is installed."""
    code = (
        "import sys, fastgd\n"
        "from fastgd.auto import _accelerator_plugin_installed, choose_backend\n"
        "X, y, _ = fastgd.make_regression(100, 5, seed=0)\n"
        "r = fastgd.fit(X, y, backend='auto')\n"
        "print(r.backend, 'jax' in sys.modules, 'numba' in sys.modules)\n"
        "choose_backend(2_000_000, 32, 1, None, 10)\n"
        "print('jax' in sys.modules, _accelerator_plugin_installed())\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    tiny, large = proc.stdout.splitlines()
    assert tiny.split() == ["numpy", "False", "False"]
    jax_imported, plugin = large.split()
    assert jax_imported == plugin


# ---------------------------------------------------------------------- estimators


def test_estimators_record_backend_():
    sklearn = pytest.importorskip("sklearn")
    del sklearn
    X, y = _data(n=300)
    labels = np.argmax(X[:, :3], axis=1)
    params = dict(max_iter=5, tol=None, random_state=0)
    for make, target in ((fastgd.GDRegressor, y), (fastgd.GDClassifier, labels)):
        auto_est = make(backend="auto", **params).fit(X, target)
        assert auto_est.backend_ == choose_backend(300, 5, 1, 1, 5).backend
        named = make(backend=auto_est.backend_, **params).fit(X, target)
        assert named.backend_ == auto_est.backend_
        np.testing.assert_array_equal(auto_est.coef_, named.coef_, strict=True)
        np.testing.assert_array_equal(auto_est.intercept_, named.intercept_, strict=True)
        assert make(backend="numpy", **params).fit(X, target).backend_ == "numpy"
    partial = fastgd.GDClassifier(backend="numpy").partial_fit(X, labels, classes=[0, 1, 2])
    assert partial.backend_ == "numpy"


def test_estimators_refuse_a_bad_backend():
    pytest.importorskip("sklearn")
    X, y = _data()
    with pytest.raises(ValueError, match="'bogus'"):
        fastgd.GDRegressor(backend="bogus", max_iter=1, tol=None).fit(X, y)


# ---------------------------------------------------------------------------- info


def test_info_prints_the_picks(capsys, monkeypatch):
    monkeypatch.setattr(auto, "detect_accelerator", lambda: None)
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert 'backend="auto" picks' in out
    for label, shape in AUTO_EXAMPLES:
        line = next(line for line in out.splitlines() if label in line)
        assert choose_backend(*shape).describe() in line
    tiny = next(line for line in out.splitlines() if "100 x 5" in line)
    assert "numpy" in tiny
