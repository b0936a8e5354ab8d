"""A slow, obvious oracle of fastgd's mathematics, in plain Python floats.

Everything here is written from the formulas in the design notes, one sample and one
parameter at a time, with the ``math`` module and Python lists; nothing calls fastgd's
kernels. Only the integer codes of losses, optimizers and schedules are shared with the
library, because they are part of the kernel contract.

Conventions (the same as the library's):

- parameters are one list ``theta`` of length d + 1: the weights, then the intercept;
- a batch objective is the mean per-sample loss plus ``l2/2·‖w‖² + l1·‖w‖₁`` (never the
  intercept);
- optimizer state is ``(step, slots)`` with ``slots`` two lists of length d + 1, and
  ``t = step + 1`` counts updates from 1 (schedules and Adam's bias correction use it).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from fastgd.specs import (
    LOSS_HUBER,
    LOSS_LOGISTIC,
    LOSS_SQUARED,
    OPT_ADAGRAD,
    OPT_ADAM,
    OPT_ADAMW,
    OPT_RMSPROP,
    OPT_SGD,
    SCHED_CONSTANT,
    SCHED_COSINE,
    SCHED_EXPONENTIAL,
    SCHED_INVSCALING,
)

Vector = list[float]
State = tuple[int, list[Vector]]

# ------------------------------------------------------------------ per-sample losses


def sigmoid(p: float) -> float:
    """1 / (1 + e^-p), written so that neither branch overflows."""
    if p >= 0:
        return 1.0 / (1.0 + math.exp(-p))
    e = math.exp(p)
    return e / (1.0 + e)


def sample_loss(loss_code: int, loss_param: float, p: float, y: float) -> float:
    """Loss of one prediction ``p`` against its target ``y``."""
    if loss_code == LOSS_SQUARED:
        return 0.5 * (p - y) ** 2
    if loss_code == LOSS_HUBER:
        r, eps = p - y, loss_param
        return 0.5 * r * r if abs(r) <= eps else eps * (abs(r) - 0.5 * eps)
    if loss_code == LOSS_LOGISTIC:
        # log(1 + e^p) = max(p, 0) + log(1 + e^-|p|), which never overflows.
        return max(p, 0.0) + math.log1p(math.exp(-abs(p))) - y * p
    raise ValueError(f"unknown loss code {loss_code!r}")


def sample_dloss(loss_code: int, loss_param: float, p: float, y: float) -> float:
    """Derivative of :func:`sample_loss` with respect to ``p``."""
    if loss_code == LOSS_SQUARED:
        return p - y
    if loss_code == LOSS_HUBER:
        return min(max(p - y, -loss_param), loss_param)
    if loss_code == LOSS_LOGISTIC:
        return sigmoid(p) - y
    raise ValueError(f"unknown loss code {loss_code!r}")


# ------------------------------------------------------------------------ penalties


def sign(v: float) -> float:
    """-1, 0 or 1 (the l1 subgradient picks 0 at 0)."""
    return float((v > 0) - (v < 0))


def penalty(w: Sequence[float], l2: float, l1: float) -> float:
    """``l2/2·Σ w_j² + l1·Σ |w_j|``."""
    return 0.5 * l2 * sum(v * v for v in w) + l1 * sum(abs(v) for v in w)


def penalty_grad(w: Sequence[float], l2: float, l1: float) -> Vector:
    """(Sub)gradient of :func:`penalty`: ``l2·w_j + l1·sign(w_j)``."""
    return [l2 * v + l1 * sign(v) for v in w]


# ---------------------------------------------------------------- batch objective


def predict(x: Sequence[float], theta: Sequence[float]) -> float:
    """``Σ_j x_j·w_j + b`` for one sample."""
    d = len(x)
    return sum(x[j] * theta[j] for j in range(d)) + theta[d]


def loss_grad(
    X: Sequence[Sequence[float]],
    y: Sequence[float],
    theta: Sequence[float],
    model: Sequence,
) -> tuple[float, Vector]:
    """Batch objective and its gradient, one sample at a time.

    Parameters
    ----------
    X : sequence of m rows of d floats
    y : sequence of m floats
    theta : sequence of d + 1 floats (weights, then intercept)
    model : (loss_code, loss_param, l2, l1, fit_intercept)

    Returns
    -------
    objective : float
        ``(1/m)·Σ_i loss(p_i, y_i) + penalty(w)``.
    grad : list of d + 1 floats
        ``(1/m)·Σ_i dloss_i·x_i + penalty_grad(w)``, then ``(1/m)·Σ_i dloss_i`` for the
        intercept (0 when it is not trained).
    """
    loss_code, loss_param, l2, l1, fit_intercept = model
    m, d = len(X), len(theta) - 1
    w = list(theta[:d])
    total = 0.0
    grad_w = [0.0] * d
    grad_b = 0.0
    for x, target in zip(X, y, strict=True):
        p = predict(x, theta)
        total += sample_loss(loss_code, loss_param, p, target)
        g = sample_dloss(loss_code, loss_param, p, target)
        for j in range(d):
            grad_w[j] += g * x[j]
        grad_b += g
    pen_grad = penalty_grad(w, l2, l1)
    grad = [grad_w[j] / m + pen_grad[j] for j in range(d)]
    grad.append(grad_b / m if fit_intercept else 0.0)
    return total / m + penalty(w, l2, l1), grad


def objective(X, y, theta, model) -> float:
    """Only the objective of :func:`loss_grad` (for finite differences)."""
    return loss_grad(X, y, theta, model)[0]


# ------------------------------------------------------------------------ schedules


def learning_rate(schedule_code: int, schedule_params: Sequence[float], t: int) -> float:
    """Learning rate of update ``t`` (1, 2, ...).

    constant: lr; invscaling: lr0 / t^power_t; exponential: lr0·rate^((t-1)/steps);
    cosine: lr0·((1 - f)·½(1 + cos(π·min(t-1, steps)/steps)) + f).
    """
    lr0, a, b = schedule_params
    if schedule_code == SCHED_CONSTANT:
        return lr0
    if schedule_code == SCHED_INVSCALING:
        return lr0 / math.pow(t, a)
    if schedule_code == SCHED_EXPONENTIAL:
        return lr0 * math.pow(a, (t - 1) / b)
    if schedule_code == SCHED_COSINE:
        done = min(t - 1, a)
        return lr0 * ((1.0 - b) * 0.5 * (1.0 + math.cos(math.pi * done / a)) + b)
    raise ValueError(f"unknown schedule code {schedule_code!r}")


# ----------------------------------------------------------------------- optimizers


def init_state(n_params: int, opt: Sequence) -> State:
    """``(0, [slot0, slot1])``; AdaGrad's sum of squares starts at its initial value."""
    code, params = opt[0], opt[1]
    first = params[0] if code == OPT_ADAGRAD else 0.0
    return 0, [[first] * n_params, [0.0] * n_params]


def update(
    theta: Sequence[float], grad: Sequence[float], state: State, opt: Sequence
) -> tuple[Vector, State]:
    """One optimizer step on new lists (the inputs are left as they are).

    Parameters
    ----------
    theta, grad : sequences of d + 1 floats
    state : (step, [slot0, slot1])
    opt : (code, params[4], schedule_code, schedule_params[3])

    Returns
    -------
    theta, state : the parameters and state after the step.
    """
    code, params, schedule_code, schedule_params = opt
    step, (s0, s1) = state
    t = step + 1
    lr = learning_rate(schedule_code, schedule_params, t)
    n_params = len(theta)
    s0, s1 = list(s0), list(s1)
    new_theta = []
    for j in range(n_params):
        g = grad[j]
        if code == OPT_SGD:
            momentum, nesterov = params[0], params[1]
            s0[j] = g + momentum * s0[j]
            u = g + momentum * s0[j] if nesterov else s0[j]
        elif code == OPT_ADAGRAD:
            eps = params[1]
            s0[j] = s0[j] + g * g
            u = g / math.sqrt(s0[j] + eps)
        elif code == OPT_RMSPROP:
            decay, eps = params[0], params[1]
            s0[j] = decay * s0[j] + (1.0 - decay) * g * g
            u = g / math.sqrt(s0[j] + eps)
        elif code in (OPT_ADAM, OPT_ADAMW):
            b1, b2, eps, weight_decay = params
            s0[j] = b1 * s0[j] + (1.0 - b1) * g
            s1[j] = b2 * s1[j] + (1.0 - b2) * g * g
            m_hat = s0[j] / (1.0 - b1**t)
            v_hat = s1[j] / (1.0 - b2**t)
            u = m_hat / (math.sqrt(v_hat) + eps)
            if code == OPT_ADAMW and j < n_params - 1:  # decay the weights, not the intercept
                u += weight_decay * theta[j]
        else:
            raise ValueError(f"unknown optimizer code {code!r}")
        new_theta.append(theta[j] - lr * u)
    return new_theta, (t, [s0, s1])


# -------------------------------------------------------------------- training loop


def batches(order: Sequence[int], batch_size: int) -> list[list[int]]:
    """Consecutive slices of ``order`` of ``batch_size`` samples; the last may be shorter."""
    order = [int(i) for i in order]
    return [order[k : k + batch_size] for k in range(0, len(order), batch_size)]


def run_epochs(
    X: Sequence[Sequence[float]],
    y: Sequence[float],
    theta: Sequence[float],
    state: State,
    orders: Sequence[Sequence[int]],
    batch_size: int,
    model: Sequence,
    opt: Sequence,
) -> tuple[Vector, State, Vector]:
    """Every batch of every epoch in ``orders``, one update per batch.

    Returns
    -------
    theta, state
        After the last update.
    epoch_losses : list of floats
        Per epoch, ``Σ_batches (batch size)·objective / n``, each batch objective taken
        before that batch's update.
    """
    theta = [float(v) for v in theta]
    n = len(y)
    losses = []
    for order in orders:
        weighted = 0.0
        for idx in batches(order, batch_size):
            value, grad = loss_grad([X[i] for i in idx], [y[i] for i in idx], theta, model)
            theta, state = update(theta, grad, state, opt)
            weighted += value * len(idx)
        losses.append(weighted / n)
    return theta, state, losses


def train(
    X: Sequence[Sequence[float]],
    y: Sequence[float],
    theta0: Sequence[float],
    orders: Sequence[Sequence[int]],
    batch_size: int,
    model: Sequence,
    opt: Sequence,
) -> tuple[Vector, Vector]:
    """A whole training run from ``theta0`` with a fresh optimizer state.

    Returns
    -------
    theta : list of d + 1 floats
    loss_history : list of floats, one per epoch
    """
    state = init_state(len(theta0), opt)
    theta, _, losses = run_epochs(X, y, theta0, state, orders, batch_size, model, opt)
    return theta, losses


def shuffled_orders(seed: int, n: int, n_epochs: int, shuffle: bool) -> list[list[int]]:
    """Epoch orders as the library draws them: one ``permutation(n)`` per epoch.

    The only numpy call of this module: the permutations are the documented source of
    randomness (``numpy.random.default_rng(seed)``), not a piece of fastgd.
    """
    import numpy as np

    if not shuffle:
        return [list(range(n)) for _ in range(n_epochs)]
    rng = np.random.default_rng(seed)
    return [rng.permutation(n).tolist() for _ in range(n_epochs)]
