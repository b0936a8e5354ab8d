"""The backend contract: the same public functions, signatures and return shapes everywhere."""

from __future__ import annotations

import ast
import inspect
import pathlib

import numpy as np
import pytest
from helpers import BACKENDS, lowered, model_for, problem

import fastgd
from fastgd.backends import BACKEND_MODULES, CONTRACT


def test_registry_lists_only_importable_backends_numpy_first():
    names = fastgd.available_backends()
    assert names[0] == "numpy"
    assert set(names) <= set(BACKEND_MODULES)
    assert names == [n for n in BACKEND_MODULES if n in names]  # a fixed order


def calling_signature(function) -> list[tuple[str, object, object]]:
    """What a caller relies on: each parameter's name, kind and default, in order.

    These must be identical in every backend, so that code written against one backend
    runs on another. Annotations are left out: they name each backend's own array type
    (``jax.Array`` for the arrays the jax backend's ``prepare`` hands back).
    """
    return [
        (p.name, p.kind, p.default) for p in inspect.signature(function).parameters.values()
    ]


@pytest.mark.parametrize("name", CONTRACT)
def test_every_backend_has_the_numpy_signature(backend, name):
    kernels = fastgd.get_backend(backend)
    reference = fastgd.get_backend("numpy")
    assert name in kernels.__all__
    assert calling_signature(getattr(kernels, name)) == calling_signature(
        getattr(reference, name)
    )


def imported_modules(path: pathlib.Path, package: str) -> set[str]:
    """The absolute names of the modules a source file imports (relative imports resolved
    against ``package``, the package the file belongs to)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{parent}.{base}" if base else parent
            names |= {base} | {f"{base}.{alias.name}" for alias in node.names}
    return names


def test_backend_packages_do_not_import_each_other(backend):
    package = fastgd.get_backend(backend)
    others = set(BACKEND_MODULES.values()) - {package.__name__}
    files = sorted(pathlib.Path(package.__file__).parent.glob("*.py"))
    assert files
    for path in files:
        for name in imported_modules(path, package.__name__):
            assert not any(name == o or name.startswith(o + ".") for o in others), (path, name)


def test_kernels_return_the_documented_shapes_and_dtypes(backend, dtype):
    kernels = fastgd.get_backend(backend)
    X, y = problem("squared", dtype)
    n, d = X.shape
    opt = lowered(fastgd.Adam(lr=0.01))
    model = model_for("squared", "l2")
    Y = np.stack([y, -y], axis=1)
    data, theta = kernels.prepare(X, Y, np.zeros((d + 1, 2), dtype=dtype), None, np.ones(n, dtype))
    assert set(data._fields) == {"X", "Y", "weight"}

    value, grad = kernels.loss_grad(data, theta, model)
    assert np.ndim(value) == 0 and np.isfinite(float(value))
    assert np.asarray(grad).shape == (d + 1, 2) and np.asarray(grad).dtype == dtype

    step, slots = kernels.init_state(theta, opt)
    assert int(step) == 0
    assert np.asarray(slots).shape == (3, d + 1, 2) and np.asarray(slots).dtype == dtype

    theta, (step, slots) = kernels.update(theta, grad, (step, slots), opt)
    assert int(step) == 1 and np.asarray(theta).dtype == dtype

    orders = np.stack([np.arange(n, dtype=np.int64), np.arange(n, dtype=np.int64)[::-1]])
    theta, (step, slots), losses = kernels.run_epochs(data, theta, (step, slots), orders, 8,
                                                      model, opt)
    batches = -(-n // 8)
    assert int(step) == 1 + 2 * batches
    assert np.asarray(theta).shape == (d + 1, 2) and np.asarray(theta).dtype == dtype
    losses = np.asarray(losses)
    assert losses.shape == (2,) and losses.dtype == np.float64
    assert np.isfinite(losses).all()


def test_loss_grad_at_zero_is_half_mean_square(backend):
    """A value checkable by hand: at θ = 0 the squared loss is mean(y²)/2, gradient −X̄ᵀy."""
    kernels = fastgd.get_backend(backend)
    X = np.array([[1.0, 2.0], [3.0, -1.0]])
    y = np.array([2.0, 4.0])
    data, theta = kernels.prepare(X, y[:, None], np.zeros((3, 1)), None)
    value, grad = kernels.loss_grad(data, theta, model_for("squared"))
    assert float(value) == pytest.approx(5.0, rel=1e-15)
    np.testing.assert_allclose(np.asarray(grad)[:, 0], [-7.0, 0.0, -3.0], rtol=1e-15)


def test_weighted_loss_grad_by_hand(backend):
    """Weights 3 and 1 at θ = 0: objective (3·2² + 1·4²)/2/2 = 7, as (1/m)·Σ s_i·loss_i."""
    kernels = fastgd.get_backend(backend)
    X = np.array([[1.0, 2.0], [3.0, -1.0]])
    y = np.array([[2.0], [4.0]])
    data, theta = kernels.prepare(X, y, np.zeros((3, 1)), None, np.array([3.0, 1.0]))
    value, grad = kernels.loss_grad(data, theta, model_for("squared"))
    assert float(value) == pytest.approx(7.0, rel=1e-15)
    # -(1/2)·(3·2·x_1 + 1·4·x_2) = -(1/2)·([6, 12] + [12, -4]) = [-9, -4]; b: -(6 + 4)/2
    np.testing.assert_allclose(np.asarray(grad)[:, 0], [-9.0, -4.0, -5.0], rtol=1e-15)


def test_the_fixture_covers_every_importable_backend():
    assert set(BACKENDS) <= set(fastgd.available_backends())
