"""The loss-derivative clip ``max_dloss``: scikit-learn SGD's ``MAX_DLOSS``, on every backend.

scikit-learn's SGD clips each sample's d loss / d p to [-1e12, 1e12] before weighting it,
which keeps a diverging run finite. ``fit(..., max_dloss=c)`` does the same on every
backend (the estimators pass 1e12); the default, inf, clips nothing. The gradients are
checked against formulas written out here, the diverging fit against scikit-learn.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from helpers import BACKENDS, BATCH_MODES, EPOCHS, K_MULTI, kernel_data, problem, rel_err, theta_of

import fastgd
from fastgd.specs import LoweredModel, resolve_loss

#: The clip of the gradient and trajectory tests: below some of their derivatives.
CLIP = 1.5
#: Relative agreement asked in float64 (measured: 1e-15 to 1e-12).
RTOL = 1e-9


# -------------------------------------------------------------------- gradients


def _expected_dloss(loss: str, P: np.ndarray, Y: np.ndarray) -> np.ndarray:
    """d loss / d p per sample and output, unclipped, from the loss's formula."""
    if loss == "squared":
        return P - Y
    if loss == "logistic":
        return 1.0 / (1.0 + np.exp(-P)) - Y
    assert loss == "multinomial"
    e = np.exp(P - P.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True) - np.eye(P.shape[1])[Y[:, 0].astype(int)]


#: (loss, outputs K, weighted, l2): the vector and matrix kernels, weights, a penalty.
GRADIENT_CASES = [
    ("squared", 1, False, 0.0),
    ("squared", 1, True, 0.0),
    ("squared", 3, True, 0.1),
    ("logistic", 1, True, 0.0),
    ("multinomial", K_MULTI, False, 0.0),
]


@pytest.mark.parametrize("loss, k, weighted, l2", GRADIENT_CASES)
def test_gradient_clips_each_sample_derivative_before_its_weight(backend, loss, k, weighted, l2):
    rng = np.random.default_rng(7)
    n, d = 40, 5
    X, y = problem(loss, n=n, d=d, n_outputs=None if k == 1 else k)
    weight = rng.uniform(0.2, 3.0, n) if weighted else None
    Y, weight = kernel_data(loss, X, y, weight)
    theta = 2.0 * rng.standard_normal((d + 1, k))
    clip = CLIP if loss == "squared" else 0.4  # logistic, softmax: derivatives in [-1, 1]
    code, param = resolve_loss(loss).code, resolve_loss(loss).param()
    clipped = LoweredModel(code, param, l2, 0.0, True, clip)
    kernels = fastgd.get_backend(backend)
    data, placed = kernels.prepare(X, Y, theta, None, weight)
    loss_value, grad = kernels.loss_grad(data, placed, clipped)
    unclipped_value, _ = kernels.loss_grad(data, placed, clipped._replace(max_dloss=math.inf))

    dloss = _expected_dloss(loss, X @ theta[:-1] + theta[-1], Y)
    assert (np.abs(dloss) > clip).any() and (np.abs(dloss) < clip).any()  # the clip acts
    D = np.clip(dloss, -clip, clip) * (1.0 if weight is None else weight[:, None])
    expected = np.vstack([X.T @ D / n + l2 * theta[:-1], D.mean(axis=0)])
    assert rel_err(np.asarray(grad), expected) < RTOL
    assert float(loss_value) == pytest.approx(float(unclipped_value), rel=1e-14)  # unclipped


def test_float32_gradient_is_clipped(backend):
    X, Y = problem("squared", np.float32, n=40, d=5, n_outputs=3)
    theta = np.random.default_rng(1).standard_normal((6, 3)).astype(np.float32)
    kernels = fastgd.get_backend(backend)
    data, placed = kernels.prepare(X, Y, theta, None)
    _, grad = kernels.loss_grad(data, placed, LoweredModel(0, 0.0, 0.0, 0.0, True, CLIP))
    X64 = X.astype(np.float64)
    D = np.clip(X64 @ theta[:-1] + theta[-1] - Y, -CLIP, CLIP)
    expected = np.vstack([X64.T @ D / 40, D.mean(axis=0)])
    assert np.asarray(grad).dtype == np.float32
    assert rel_err(np.asarray(grad), expected) < 1e-5


# ------------------------------------------------------------------- trajectories

#: (batch mode, outputs K, optimizer, penalty): every kind of training loop the backends
#: have (numba: full and mini-batches, per-sample SGD plain, with momentum and l2, K > 1
#: with its scaled weights (l2) and dense steps (momentum)).
TRAINING_CASES = [
    ("full", 1, "sgd", None),
    ("mini", 1, "sgd", None),
    ("sgd", 1, "sgd", None),
    ("sgd", 1, "momentum", "l2"),
    ("full", 3, "sgd", None),
    ("sgd", 3, "sgd", "l2"),
    ("sgd", 3, "momentum", None),
]


def _clipped_fit(backend, mode, k, optimizer, penalty, max_dloss=CLIP):
    X, y = problem("squared", n_outputs=None if k == 1 else k)
    optimizer = fastgd.SGD(lr=0.02, momentum=0.5 if optimizer == "momentum" else 0.0)
    return fastgd.fit(
        X, y, optimizer=optimizer, batch_size=BATCH_MODES[mode], epochs=EPOCHS,
        penalty=penalty, alpha=0.05, seed=4, backend=backend, max_dloss=max_dloss,
    )  # fmt: skip


@pytest.mark.parametrize("mode, k, optimizer, penalty", TRAINING_CASES)
def test_clipped_training_equals_numpy(backend, mode, k, optimizer, penalty):
    result = _clipped_fit(backend, mode, k, optimizer, penalty)
    reference = _clipped_fit("numpy", mode, k, optimizer, penalty)
    unclipped = _clipped_fit("numpy", mode, k, optimizer, penalty, max_dloss=math.inf)
    assert rel_err(theta_of(unclipped), theta_of(reference)) > 1e-3  # the clip acts
    assert rel_err(theta_of(result), theta_of(reference)) < RTOL
    assert rel_err(result.loss_history, reference.loss_history) < RTOL


# --------------------------------------------------------------------- jax only


def _jax_backend():
    if "jax" not in BACKENDS:
        pytest.skip("the jax backend is not under test")
    return fastgd.get_backend("jax")


def test_jax_blocked_full_batch_is_clipped(monkeypatch):
    """Large full batches on a CPU run in row blocks (64 rows here): clipped too."""
    _jax_backend()
    from fastgd.backends.jax import batches as jax_batches

    monkeypatch.setattr(jax_batches, "_BLOCK_BYTES", 1)
    n, d = 4 * 64 + 37, 5
    assert jax_batches._block_rows(n, d, 8, True) == 64
    X, y = problem("squared", n=n, d=d, n_outputs=2)
    kw = dict(epochs=EPOCHS, penalty="l2", alpha=0.05, max_dloss=CLIP)
    result = fastgd.fit(X, y, backend="jax", **kw)
    reference = fastgd.fit(X, y, backend="numpy", **kw)
    assert rel_err(theta_of(fastgd.fit(X, y, **dict(kw, max_dloss=math.inf))),
                   theta_of(reference)) > 1e-3  # fmt: skip
    assert rel_err(theta_of(result), theta_of(reference)) < RTOL
    assert rel_err(result.loss_history, reference.loss_history) < RTOL


def _primitives(jaxpr) -> list[str]:
    """The primitives of a jaxpr, those of its sub-jaxprs included."""
    names = []
    for eqn in jaxpr.eqns:
        names.append(eqn.primitive.name)
        for value in eqn.params.values():
            sub = value if hasattr(value, "eqns") else getattr(value, "jaxpr", None)
            if hasattr(sub, "eqns"):
                names.extend(_primitives(sub))
    return names


def test_jax_unclipped_gradient_has_no_clip():
    """Only "clipped or not" is static: without a clip the traced gradient of the squared
    loss has no min or max at all; with one, it clips."""
    jax_backend = _jax_backend()
    import jax

    from fastgd.backends.jax import batches as jax_batches

    X, Y = problem("squared")
    data = jax_backend.Data(X, Y[:, None])
    params = jax_batches._split(np.zeros((X.shape[1] + 1, 1)))

    def primitives(max_dloss):
        model = LoweredModel(0, 0.0, 0.0, 0.0, True, max_dloss)
        static, hyper = jax_batches._model_static(model), jax_batches._model_hyper(model)
        with jax.enable_x64(True):
            jaxpr = jax.make_jaxpr(jax_batches._loss_sum_value_and_grad, static_argnums=3)(
                params, data, hyper, static
            )
        return _primitives(jaxpr.jaxpr)

    assert not {"min", "max", "clamp"} & set(primitives(math.inf))
    assert {"min", "max"} <= set(primitives(1e12)) or "clamp" in primitives(1e12)


# ----------------------------------------------------- diverging, as scikit-learn

#: scikit-learn's estimator checks fit squared loss on X ~ N(100, 1) with eta0 = 0.01:
#: each step multiplies the error by about lr·‖x‖² ≈ 400, and only the clip stops it.
DIVERGING = dict(n=30, d=4, lr=0.01, epochs=5)


def _diverging_problem() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    X = rng.normal(loc=100.0, size=(DIVERGING["n"], DIVERGING["d"]))
    return X, rng.standard_normal(DIVERGING["n"])


def _diverging_fit(backend: str, **kw) -> fastgd.FitResult:
    X, y = _diverging_problem()
    return fastgd.fit(
        X, y, lr=DIVERGING["lr"], batch_size=1, epochs=DIVERGING["epochs"], shuffle=False,
        backend=backend, **kw,
    )  # fmt: skip


def _sklearn_diverging_fit():
    sklearn = pytest.importorskip("sklearn.linear_model")
    peer = sklearn.SGDRegressor(
        penalty=None, learning_rate="constant", eta0=DIVERGING["lr"], shuffle=False,
        tol=None, max_iter=DIVERGING["epochs"],
    )  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # max_iter reached without tol: expected
        return peer.fit(*_diverging_problem())


def test_diverging_fit_is_kept_finite_like_scikit_learns(backend):
    with pytest.raises(fastgd.DivergenceError):
        _diverging_fit(backend)
    result = _diverging_fit(backend, max_dloss=1e12)
    assert np.isfinite(theta_of(result)).all() and np.isfinite(result.loss_history).all()
    assert np.abs(result.coef).max() > 1e10  # far out, where only the clip holds it
    reference = _diverging_fit("numpy", max_dloss=1e12)
    assert rel_err(theta_of(result), theta_of(reference)) < RTOL
    peer = _sklearn_diverging_fit()
    assert rel_err(result.coef, peer.coef_) < RTOL
    assert rel_err([result.intercept], peer.intercept_) < RTOL


def test_estimator_on_a_diverging_problem_equals_scikit_learns(backend):
    peer = _sklearn_diverging_fit()
    ours = fastgd.GDRegressor(
        penalty=None, learning_rate="constant", eta0=DIVERGING["lr"], shuffle=False,
        tol=None, max_iter=DIVERGING["epochs"], backend=backend,
    )  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours.fit(*_diverging_problem())
    assert rel_err(ours.coef_, peer.coef_) < RTOL
    assert rel_err(ours.intercept_, peer.intercept_) < RTOL


# ------------------------------------------------------------ default and errors


@pytest.mark.parametrize("mode, k", [("full", 1), ("mini", K_MULTI), ("sgd", 1), ("sgd", 3)])
def test_infinite_max_dloss_is_the_default_bit_for_bit(backend, mode, k):
    default = _clipped_fit(backend, mode, k, "sgd", "l2", max_dloss=math.inf)
    X, y = problem("squared", n_outputs=None if k == 1 else k)
    plain = fastgd.fit(
        X, y, optimizer=fastgd.SGD(lr=0.02), batch_size=BATCH_MODES[mode], epochs=EPOCHS,
        penalty="l2", alpha=0.05, seed=4, backend=backend,
    )  # fmt: skip
    np.testing.assert_array_equal(theta_of(default), theta_of(plain))
    np.testing.assert_array_equal(default.loss_history, plain.loss_history)


@pytest.mark.parametrize("value", [0, -1, -1e12, math.nan, -math.inf, "x", None, True])
def test_bad_max_dloss_is_refused_by_name(backend, value):
    X, y = problem("squared")
    with pytest.raises(ValueError, match="max_dloss"):
        fastgd.fit(X, y, epochs=1, backend=backend, max_dloss=value)
