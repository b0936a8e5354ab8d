"""Gradient and update kernels of every backend against the oracle and finite differences."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import reference as ref
from helpers import F32_EPS, LOSSES, OPTIMIZERS, PENALTIES, as_list, as_rows, problem, rel_err

import fastgd
from fastgd.specs import learning_rate, lower_model, lower_optimizer, resolve_loss, resolve_penalty

#: Schedules for a few single updates (short decay horizons, so that 7 steps see them move).
SCHEDULES = {
    "constant": 0.05,
    "invscaling": fastgd.invscaling(0.08, power_t=0.4),
    "exponential": fastgd.exponential(0.08, decay_rate=0.5, decay_steps=3),
    "cosine": fastgd.cosine(0.08, decay_steps=4, final_fraction=0.1),
}

#: float32 tolerance of one gradient evaluation, relative to the gradient's largest entry.
#: Each entry is a mean of 37 products whose prediction came from a 6-term float32 dot
#: product: the classical bound (n + d)·eps ≈ 43·1.2e-7 ≈ 5e-6 of the sum of absolute
#: terms, and on these problems that sum stays within a few times the largest entry.
F32_GRAD_RTOL = 200 * F32_EPS
#: float64: the same bound is ≈ 1e-14; 1e-12 leaves room for a different summation order.
F64_GRAD_RTOL = 1e-12


def huber_epsilon_away_from_kinks(X, y, theta, margin: float) -> float:
    """A Huber threshold with residuals on both sides and none within ``margin`` of it."""
    r = np.sort(np.abs(X.astype(np.float64) @ theta[:-1] + theta[-1] - y))
    gaps = np.diff(r)
    middle = slice(len(r) // 4, 3 * len(r) // 4)
    k = int(np.argmax(gaps[middle])) + middle.start
    assert gaps[k] > 2 * margin, "problem too dense to avoid the Huber kink"
    return float(0.5 * (r[k] + r[k + 1]))


def point(loss: str, dtype, fit_intercept: bool = True):
    """Data, parameters away from zero (so the l1 term is differentiable), and the loss spec."""
    X, y = problem(loss, dtype)
    rng = np.random.default_rng(11)
    theta = rng.uniform(0.3, 1.0, X.shape[1] + 1) * rng.choice([-1.0, 1.0], X.shape[1] + 1)
    theta = theta.astype(dtype)
    if not fit_intercept:
        theta[-1] = 0
    spec = resolve_loss(loss)
    if loss == "huber":
        spec = fastgd.Huber(huber_epsilon_away_from_kinks(X, y, theta, margin=0.05))
    return X, y, theta, spec


def backend_loss_grad(backend: str, X, y, theta, model):
    kernels = fastgd.get_backend(backend)
    Xb, yb, thb = kernels.prepare(X, y, theta.copy(), None)
    value, grad = kernels.loss_grad(Xb, yb, thb, model)
    return float(value), np.asarray(grad)


@pytest.mark.parametrize("fit_intercept", [True, False], ids=["intercept", "no_intercept"])
@pytest.mark.parametrize("penalty", PENALTIES, ids=str)
@pytest.mark.parametrize("loss", LOSSES)
def test_loss_grad_matches_oracle(backend, dtype, loss, penalty, fit_intercept):
    X, y, theta, spec = point(loss, dtype, fit_intercept)
    l2, l1 = resolve_penalty(penalty, 0.05, 0.4)
    model = lower_model(spec, l2, l1, fit_intercept)
    value, grad = backend_loss_grad(backend, X, y, theta, model)
    ref_value, ref_grad = ref.loss_grad(as_rows(X), as_list(y), as_list(theta), model)
    assert grad.dtype == dtype and grad.shape == (X.shape[1] + 1,)
    rtol = F32_GRAD_RTOL if dtype == np.float32 else F64_GRAD_RTOL
    assert rel_err(grad, ref_grad) <= rtol
    assert abs(value - ref_value) <= rtol * abs(ref_value)
    if not fit_intercept:
        assert grad[-1] == 0


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
        X, y, theta[:-1], float(theta[-1]), loss=spec, penalty=penalty, alpha=0.05,
        l1_ratio=0.4, backend=backend,
    )
    assert err <= (3e-3 if dtype == np.float32 else 1e-7)


@pytest.mark.parametrize("penalty", PENALTIES, ids=str)
@pytest.mark.parametrize("loss", LOSSES)
def test_oracle_gradient_is_the_derivative_of_its_objective(loss, penalty):
    X, y, theta, spec = point(loss, np.float64)
    l2, l1 = resolve_penalty(penalty, 0.05, 0.4)
    model = lower_model(spec, l2, l1, True)
    rows, targets, th = as_rows(X), as_list(y), as_list(theta)
    _, grad = ref.loss_grad(rows, targets, th, model)
    h = 1e-6
    for j in range(len(th)):
        plus, minus = list(th), list(th)
        plus[j] += h
        minus[j] -= h
        fd = ref.objective(rows, targets, plus, model) - ref.objective(rows, targets, minus, model)
        assert fd / (2 * h) == pytest.approx(grad[j], rel=1e-6, abs=1e-8)


def test_logistic_loss_is_stable_for_large_predictions(backend):
    """log(1 + e^p) must not overflow; sigmoid must not produce NaN at |p| = 800."""
    X = np.array([[1.0], [1.0], [1.0], [1.0]])
    y = np.array([1.0, 0.0, 1.0, 0.0])
    model = lower_model(fastgd.Logistic(), 0.0, 0.0, True)
    for w in (800.0, -800.0):
        theta = np.array([w, 0.0])
        value, grad = backend_loss_grad(backend, X, y, theta, model)
        ref_value, ref_grad = ref.loss_grad(as_rows(X), as_list(y), as_list(theta), model)
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
    """``steps`` updates from a fixed start with fixed pseudo-random gradients."""
    rng = np.random.default_rng(5)
    theta0 = rng.standard_normal(6).astype(dtype)
    grads = (rng.standard_normal((steps, 6)) * np.array([1, 0.1, 3, 1e-3, 1, 2])).astype(dtype)
    opt = lower_optimizer(optimizer)
    kernels = fastgd.get_backend(backend)
    X, y = np.ones((2, 5), dtype=dtype), np.zeros(2, dtype=dtype)
    _, _, theta = kernels.prepare(X, y, theta0.copy(), None)
    state = kernels.init_state(theta, opt)
    for g in grads:
        theta, state = kernels.update(theta, g.copy(), state, opt)
    ref_theta = as_list(theta0)
    ref_state = ref.init_state(6, opt)
    for g in grads:
        ref_theta, ref_state = ref.update(ref_theta, as_list(g), ref_state, opt)
    return theta, state, ref_theta, ref_state


@pytest.mark.parametrize("schedule", SCHEDULES.values(), ids=SCHEDULES.keys())
@pytest.mark.parametrize("name", OPTIMIZERS)
def test_update_matches_oracle(backend, dtype, name, schedule):
    optimizer = dataclasses.replace(OPTIMIZERS[name], lr=schedule)
    theta, state, ref_theta, ref_state = run_updates(backend, optimizer, dtype)
    step, slots = state
    assert int(step) == ref_state[0] == 7
    assert np.asarray(theta).dtype == dtype and np.asarray(slots).shape == (2, 6)
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
    X, y = np.ones((2, 2)), np.zeros(2)
    _, _, theta = kernels.prepare(X, y, np.array([1.0, -2.0, 3.0]), None)
    state = kernels.init_state(theta, opt)
    theta, state = kernels.update(theta, np.zeros(3), state, opt)
    assert np.asarray(theta).tolist() == pytest.approx([0.95, -1.9, 3.0], rel=1e-14)


def test_adagrad_state_starts_at_initial_accumulator(backend):
    opt = lower_optimizer(fastgd.AdaGrad(lr=0.1, initial_accumulator_value=0.25))
    kernels = fastgd.get_backend(backend)
    _, _, theta = kernels.prepare(np.ones((2, 2)), np.zeros(2), np.zeros(3), None)
    step, slots = kernels.init_state(theta, opt)
    assert int(step) == 0
    assert np.asarray(slots)[0].tolist() == [0.25, 0.25, 0.25]
