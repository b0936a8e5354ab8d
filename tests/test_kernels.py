"""Gradient and update kernels of every backend against the oracle and finite differences."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import reference as ref
from helpers import (
    ALL_LOSSES,
    F32_EPS,
    K_MULTI,
    LOSSES,
    NEW_LOSSES,
    OPTIMIZERS,
    PENALTIES,
    as_list,
    as_rows,
    kernel_data,
    problem,
    rel_err,
    sample_weights,
)

import fastgd
from fastgd.specs import learning_rate, lower_model, lower_optimizer, resolve_loss, resolve_penalty

#: Schedules for a few single updates (short decay horizons, so that 7 steps see them move).
SCHEDULES = {
    "constant": 0.05,
    "invscaling": fastgd.invscaling(0.08, power_t=0.4),
    "exponential": fastgd.exponential(0.08, decay_rate=0.5, decay_steps=3),
    "cosine": fastgd.cosine(0.08, decay_steps=4, final_fraction=0.1),
    "optimal": fastgd.specs.optimal(0.5),
}

#: float32 tolerance of one gradient evaluation, relative to the gradient's largest entry.
#: Each entry is a mean of 37 products whose prediction came from a 6-term float32 dot
#: product: the classical bound (n + d)·eps ≈ 43·1.2e-7 ≈ 5e-6 of the sum of absolute
#: terms, and on these problems that sum stays within a few times the largest entry.
F32_GRAD_RTOL = 200 * F32_EPS
#: float64: the same bound is ≈ 1e-14; 1e-12 leaves room for a different summation order.
F64_GRAD_RTOL = 1e-12


def epsilon_away_from_kinks(X, Y, theta, margin: float) -> float:
    """A threshold for |p − y| with residuals on both sides and none within ``margin``."""
    r = np.sort(np.abs(X.astype(np.float64) @ theta[:-1] + theta[-1] - Y).ravel())
    gaps = np.diff(r)
    middle = slice(len(r) // 4, 3 * len(r) // 4)
    k = int(np.argmax(gaps[middle])) + middle.start
    assert gaps[k] > 2 * margin, "problem too dense to avoid the kink"
    return float(0.5 * (r[k] + r[k + 1]))


#: Losses with a threshold on |p − y|, picked away from every residual by :func:`point`.
THRESHOLD_LOSSES = {
    "huber": fastgd.Huber,
    "epsilon_insensitive": fastgd.specs.EpsilonInsensitive,
    "squared_epsilon_insensitive": fastgd.specs.SquaredEpsilonInsensitive,
}


def point(loss: str, dtype, fit_intercept: bool = True, n_outputs: int | None = None):
    """Data, parameters away from zero (so the l1 term is differentiable), and the loss spec.

    ``theta`` has the kernels' shape (d + 1, K); ``n_outputs`` None is a 1-D ``y`` (K = 1,
    or K_MULTI classes for multinomial).
    """
    X, y = problem(loss, dtype, n_outputs=n_outputs)
    spec = resolve_loss(loss)
    k = (n_outputs or K_MULTI) if spec.kind == "multinomial" else (n_outputs or 1)
    rng = np.random.default_rng(11)
    shape = (X.shape[1] + 1, k)
    theta = (rng.uniform(0.3, 1.0, shape) * rng.choice([-1.0, 1.0], shape)).astype(dtype)
    if not fit_intercept:
        theta[-1] = 0
    if loss in THRESHOLD_LOSSES:
        Y = y.reshape(X.shape[0], -1)
        spec = THRESHOLD_LOSSES[loss](epsilon_away_from_kinks(X, Y, theta, margin=0.02))
    return X, y, theta, spec


def backend_loss_grad(backend: str, X, y, theta, model, weight=None, loss="squared"):
    """A backend's objective and gradient (as host arrays) for ``fit``-style data."""
    kernels = fastgd.get_backend(backend)
    Y, w = kernel_data(loss, X, y, weight)
    data, thb = kernels.prepare(X, Y, theta.copy(), None, w)
    value, grad = kernels.loss_grad(data, thb, model)
    return float(value), np.asarray(grad)


def oracle_loss_grad(loss, X, y, theta, model, weight=None):
    Y, w = kernel_data(loss, X, y, weight)
    weights = None if w is None else as_list(w)
    return ref.loss_grad(as_rows(X), as_rows(Y), theta.astype(np.float64).tolist(), model,
                         weights)


@pytest.mark.parametrize("fit_intercept", [True, False], ids=["intercept", "no_intercept"])
@pytest.mark.parametrize("penalty", PENALTIES, ids=str)
@pytest.mark.parametrize("loss", LOSSES)
def test_loss_grad_matches_oracle(backend, dtype, loss, penalty, fit_intercept):
    X, y, theta, spec = point(loss, dtype, fit_intercept)
    l2, l1 = resolve_penalty(penalty, 0.05, 0.4)
    model = lower_model(spec, l2, l1, fit_intercept)
    value, grad = backend_loss_grad(backend, X, y, theta, model, loss=loss)
    ref_value, ref_grad = oracle_loss_grad(loss, X, y, theta, model)
    assert grad.dtype == dtype and grad.shape == (X.shape[1] + 1, 1)
    rtol = F32_GRAD_RTOL if dtype == np.float32 else F64_GRAD_RTOL
    assert rel_err(grad, ref_grad) <= rtol
    assert abs(value - ref_value) <= rtol * abs(ref_value)
    if not fit_intercept:
        assert (grad[-1] == 0).all()


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("n_outputs", [None, K_MULTI], ids=["1d", "K3"])
@pytest.mark.parametrize("loss", ALL_LOSSES)
def test_new_losses_outputs_and_weights_match_oracle(backend, dtype, loss, n_outputs, weighted):
    """Every loss, one output and K outputs, with and without sample weights."""
    X, y, theta, spec = point(loss, dtype, n_outputs=n_outputs)
    model = lower_model(spec, 0.05 * 0.6, 0.05 * 0.4, True)
    weight = sample_weights(X.shape[0]) if weighted else None
    value, grad = backend_loss_grad(backend, X, y, theta, model, weight, loss)
    ref_value, ref_grad = oracle_loss_grad(loss, X, y, theta, model, weight)
    assert grad.dtype == dtype and grad.shape == theta.shape
    rtol = F32_GRAD_RTOL if dtype == np.float32 else F64_GRAD_RTOL
    assert rel_err(grad, ref_grad) <= rtol
    assert abs(value - ref_value) <= rtol * abs(ref_value)


def test_unit_weights_give_exactly_the_unweighted_gradient(backend):
    for loss in ALL_LOSSES:
        X, y, theta, spec = point(loss, np.float64, n_outputs=None)
        model = lower_model(spec, 0.01, 0.0, True)
        plain = backend_loss_grad(backend, X, y, theta, model, None, loss)
        unit = backend_loss_grad(backend, X, y, theta, model, np.ones(X.shape[0]), loss)
        assert plain[0] == unit[0], loss
        np.testing.assert_array_equal(plain[1], unit[1], err_msg=loss)


@pytest.mark.parametrize("loss", ["hinge", "epsilon_insensitive", "modified_huber",
                                  "perceptron"])
def test_kinks_take_scikit_learns_subgradient(backend, loss):
    """At a hinge margin of exactly 1 the derivative is -y (scikit-learn's ``z <= 1``), at a
    perceptron margin of exactly 0 too (``z <= 0``: from zero weights the first step moves);
    at |p − y| = ε the epsilon-insensitive derivative is 0; modified Huber is smooth at
    z = 1 (derivative 0) and at z = -1 (derivative -4·y on both sides)."""
    X = np.array([[1.0], [1.0]])
    spec = resolve_loss(loss)
    model = lower_model(spec, 0.0, 0.0, True)
    if loss == "epsilon_insensitive":  # residuals +0.1 and -0.1 with eps 0.1: both at the kink
        y, theta, expected = np.array([0.4, 0.6]), np.array([[0.5], [0.0]]), [[0.0], [0.0]]
    elif loss == "hinge":  # margins exactly 1 for both labels
        y, theta, expected = np.array([1.0, 1.0]), np.array([[1.0], [0.0]]), [[-1.0], [-1.0]]
    elif loss == "perceptron":  # zero weights: margins exactly 0, labels +1 and -1
        X = np.array([[1.0], [2.0]])
        y, theta = np.array([1.0, 0.0]), np.zeros((2, 1))
        expected = [[(-1.0 * 1 + 1.0 * 2) / 2], [(-1.0 + 1.0) / 2]]
    else:  # margins z = 1 (derivative 0) and z = -1 (derivative -4), label +1 for both
        X = np.array([[1.0], [-1.0]])
        y, theta = np.array([1.0, 1.0]), np.array([[1.0], [0.0]])
        expected = [[(0.0 * 1 + -4.0 * -1) / 2], [(0.0 + -4.0) / 2]]
    _, grad = backend_loss_grad(backend, X, y, theta, model, loss=loss)
    np.testing.assert_allclose(grad, expected, atol=1e-15)


@pytest.mark.parametrize("penalty", PENALTIES, ids=str)
@pytest.mark.parametrize("loss", LOSSES)
def test_loss_grad_matches_finite_differences(backend, dtype, loss, penalty):
    """fastgd.check_grad: central differences of the backend's own objective.

    Tolerances: the step is cbrt(eps)·max(1, |θ|), so truncation and rounding errors are
    both about eps^(2/3) relative: 4e-11 in float64, 2.4e-5 in float32 (where the objective
    itself is rounded to float32 per sample); 1e-7 and 3e-3 leave a margin of ~100.
    """
    X, y, theta, spec = point(loss, dtype)
    err = fastgd.check_grad(
        X, y, theta[:-1, 0], float(theta[-1, 0]), loss=spec, penalty=penalty, alpha=0.05,
        l1_ratio=0.4, backend=backend,
    )
    assert err <= (3e-3 if dtype == np.float32 else 1e-7)


@pytest.mark.parametrize("n_outputs", [None, K_MULTI], ids=["1d", "K3"])
@pytest.mark.parametrize("loss", NEW_LOSSES)
def test_new_losses_match_finite_differences(backend, dtype, loss, n_outputs):
    """check_grad for the new losses, K outputs and sample weights (tolerances as above)."""
    X, y, theta, spec = point(loss, dtype, n_outputs=n_outputs)
    single = n_outputs is None and spec.kind != "multinomial"
    coef, intercept = (theta[:-1, 0], theta[-1, 0]) if single else (theta[:-1], theta[-1])
    err = fastgd.check_grad(
        X, y, coef, intercept, loss=spec, penalty="elasticnet", alpha=0.05, l1_ratio=0.4,
        sample_weight=sample_weights(X.shape[0]), backend=backend,
    )
    assert err <= (3e-3 if dtype == np.float32 else 1e-7)


@pytest.mark.parametrize("penalty", PENALTIES, ids=str)
@pytest.mark.parametrize("loss", ALL_LOSSES)
def test_oracle_gradient_is_the_derivative_of_its_objective(loss, penalty):
    X, y, theta, spec = point(loss, np.float64, n_outputs=None)
    l2, l1 = resolve_penalty(penalty, 0.05, 0.4)
    model = lower_model(spec, l2, l1, True)
    Y, weight = kernel_data(loss, X, y, sample_weights(X.shape[0]))
    rows, targets, th, w = as_rows(X), as_rows(Y), theta.tolist(), as_list(weight)
    _, grad = ref.loss_grad(rows, targets, th, model, w)
    h = 1e-6
    for j, k in np.ndindex(theta.shape):
        plus, minus = [list(r) for r in th], [list(r) for r in th]
        plus[j][k] += h
        minus[j][k] -= h
        fd = ref.objective(rows, targets, plus, model, w) - ref.objective(
            rows, targets, minus, model, w
        )
        assert fd / (2 * h) == pytest.approx(grad[j][k], rel=1e-6, abs=1e-8)


def test_logistic_loss_is_stable_for_large_predictions(backend):
    """log(1 + e^p) must not overflow; sigmoid must not produce NaN at |p| = 800."""
    X = np.array([[1.0], [1.0], [1.0], [1.0]])
    y = np.array([1.0, 0.0, 1.0, 0.0])
    model = lower_model(fastgd.Logistic(), 0.0, 0.0, True)
    for w in (800.0, -800.0):
        theta = np.array([[w], [0.0]])
        value, grad = backend_loss_grad(backend, X, y, theta, model, loss="logistic")
        ref_value, ref_grad = oracle_loss_grad("logistic", X, y, theta, model)
        assert math.isfinite(value) and np.isfinite(grad).all()
        assert value == pytest.approx(ref_value, rel=1e-12)
        assert rel_err(grad, ref_grad) <= 1e-12


def test_multinomial_loss_is_stable_for_large_logits(backend):
    """Softmax of logits ±800 must neither overflow nor produce NaN."""
    X = np.array([[1.0], [-1.0], [2.0]])
    y = np.array([0, 1, 2])
    model = lower_model(fastgd.specs.Multinomial(), 0.0, 0.0, True)
    theta = np.array([[800.0, -800.0, 400.0], [0.0, 0.0, 0.0]])
    value, grad = backend_loss_grad(backend, X, y, theta, model, loss="multinomial")
    ref_value, ref_grad = oracle_loss_grad("multinomial", X, y, theta, model)
    assert math.isfinite(value) and np.isfinite(grad).all()
    assert value == pytest.approx(ref_value, rel=1e-12)
    assert rel_err(grad, ref_grad) <= 1e-12


@pytest.mark.parametrize("schedule", SCHEDULES.values(), ids=SCHEDULES.keys())
def test_learning_rate_matches_oracle(schedule):
    opt = lower_optimizer(fastgd.SGD(lr=schedule))
    for t in range(1, 60):
        expected = ref.learning_rate(opt.schedule_code, opt.schedule_params, t)
        assert learning_rate(opt.schedule_code, opt.schedule_params, t) == pytest.approx(
            expected, rel=1e-14
        )


def test_schedules_have_their_documented_values():
    """Spot values computed by hand, so the oracle's schedules are checked too."""
    sched = {k: lower_optimizer(fastgd.SGD(lr=v)) for k, v in SCHEDULES.items()}

    def lr(name, t):
        return ref.learning_rate(sched[name].schedule_code, sched[name].schedule_params, t)

    assert lr("constant", 7) == 0.05
    assert lr("invscaling", 1) == pytest.approx(0.08)
    assert lr("invscaling", 16) == pytest.approx(0.08 / 16**0.4)
    assert lr("exponential", 1) == pytest.approx(0.08)
    assert lr("exponential", 4) == pytest.approx(0.04)  # one halving after 3 steps
    assert lr("cosine", 1) == pytest.approx(0.08)
    assert lr("cosine", 3) == pytest.approx(0.08 * (0.9 * 0.5 + 0.1))  # halfway
    assert lr("cosine", 5) == pytest.approx(0.008)
    assert lr("cosine", 50) == pytest.approx(0.008)


def run_updates(backend: str, optimizer, dtype, steps: int = 7):
    """``steps`` updates of a (6, 2) parameter matrix from a fixed start with fixed
    pseudo-random gradients."""
    rng = np.random.default_rng(5)
    theta0 = rng.standard_normal((6, 2)).astype(dtype)
    scales = np.array([1, 0.1, 3, 1e-3, 1, 2])[:, None]
    grads = (rng.standard_normal((steps, 6, 2)) * scales).astype(dtype)
    opt = lower_optimizer(optimizer)
    kernels = fastgd.get_backend(backend)
    X, Y = np.ones((2, 5), dtype=dtype), np.zeros((2, 2), dtype=dtype)
    _, theta = kernels.prepare(X, Y, theta0.copy(), None)
    state = kernels.init_state(theta, opt)
    for g in grads:
        theta, state = kernels.update(theta, g.copy(), state, opt)
    ref_theta = theta0.astype(np.float64).tolist()
    ref_state = ref.init_state(6, opt, 2)
    for g in grads:
        ref_theta, ref_state = ref.update(ref_theta, g.astype(np.float64).tolist(), ref_state,
                                          opt)
    return theta, state, ref_theta, ref_state


@pytest.mark.parametrize("schedule", SCHEDULES.values(), ids=SCHEDULES.keys())
@pytest.mark.parametrize("name", OPTIMIZERS)
def test_update_matches_oracle(backend, dtype, name, schedule):
    optimizer = dataclasses.replace(OPTIMIZERS[name], lr=schedule)
    theta, state, ref_theta, ref_state = run_updates(backend, optimizer, dtype)
    step, slots = state
    assert int(step) == ref_state[0] == 7
    assert np.asarray(theta).dtype == dtype and np.asarray(slots).shape == (3, 6, 2)
    # float64: a handful of roundings per step. float32: Adam-type updates divide by
    # sqrt(v̂) + eps, which amplifies the rounding of small moments; 7 steps of ~10
    # roundings each stay below 100·eps relative to the largest parameter.
    rtol = 100 * F32_EPS if dtype == np.float32 else 1e-13
    assert rel_err(theta, ref_theta) <= rtol
    used = 2 if name in ("adam", "adamw") else 1
    for k in range(used):
        assert rel_err(np.asarray(slots)[k], ref_state[1][k]) <= rtol


def test_adamw_does_not_decay_the_intercept(backend):
    """With zero gradients AdamW only decays: the weights shrink, the intercept stays."""
    opt = lower_optimizer(fastgd.AdamW(lr=0.1, weight_decay=0.5))
    kernels = fastgd.get_backend(backend)
    X, Y = np.ones((2, 2)), np.zeros((2, 2))
    _, theta = kernels.prepare(X, Y, np.array([[1.0, 2.0], [-2.0, 4.0], [3.0, 5.0]]), None)
    state = kernels.init_state(theta, opt)
    theta, state = kernels.update(theta, np.zeros((3, 2)), state, opt)
    expected = [[0.95, 1.9], [-1.9, 3.8], [3.0, 5.0]]
    np.testing.assert_allclose(np.asarray(theta), expected, rtol=1e-14)


def test_adagrad_state_starts_at_initial_accumulator(backend):
    opt = lower_optimizer(fastgd.AdaGrad(lr=0.1, initial_accumulator_value=0.25))
    kernels = fastgd.get_backend(backend)
    _, theta = kernels.prepare(np.ones((2, 2)), np.zeros((2, 1)), np.zeros((3, 1)), None)
    step, slots = kernels.init_state(theta, opt)
    assert int(step) == 0
    assert np.asarray(slots)[0].tolist() == [[0.25], [0.25], [0.25]]
