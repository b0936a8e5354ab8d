"""The optimizer: its state before the first update (:func:`_initial_state`) and one step
at the schedule's learning rate (:func:`_step`), the bodies of
:func:`fastgd.backends.numpy.init_state` and :func:`fastgd.backends.numpy.update`."""

from __future__ import annotations

import numpy as np

from ...sparse import is_sparse
from ...specs import (
    OPT_ADAGRAD,
    OPT_ADAM,
    OPT_ADAMW,
    OPT_RMSPROP,
    OPT_SGD,
    SCHED_PA1,
    LoweredModel,
    LoweredOptimizer,
    learning_rate,
)
from .losses import _output_losses

#: The optimizer state: the number of updates done so far and the (3, d + 1, K) slots
#: (two of moments, one of the parameters' running average).
State = tuple[int, np.ndarray]


def _initial_state(theta: np.ndarray, opt: LoweredOptimizer) -> State:
    """``(0, slots)``: zero moments of ``theta``'s shape and dtype, AdaGrad's sum of squares
    at ``initial_accumulator_value``; see :func:`fastgd.backends.numpy.init_state`."""
    slots = np.zeros((3, *theta.shape), dtype=theta.dtype)
    if opt.code == OPT_ADAGRAD:
        slots[0] = opt.params[0]
    return 0, slots


def _step(
    theta: np.ndarray, grad: np.ndarray, state: State, opt: LoweredOptimizer
) -> tuple[np.ndarray, State]:
    """One optimizer step at the schedule's learning rate, in place on ``theta`` and the
    slots (optax's formulas); see :func:`fastgd.backends.numpy.update`."""
    step, slots = state
    t = step + 1
    lr = theta.dtype.type(learning_rate(opt.schedule_code, opt.schedule_params, t))
    a, b, c, d = (theta.dtype.type(v) for v in opt.params)
    if opt.code == OPT_SGD:
        slots[0] = grad + a * slots[0]
        u = grad + a * slots[0] if b else slots[0]
    elif opt.code == OPT_ADAGRAD:
        slots[0] += grad * grad
        u = grad / np.sqrt(slots[0] + b)
    elif opt.code == OPT_RMSPROP:
        slots[0] = (1 - a) * grad * grad + a * slots[0]
        u = grad / np.sqrt(slots[0] + b)
    elif opt.code in (OPT_ADAM, OPT_ADAMW):
        slots[0] = (1 - a) * grad + a * slots[0]
        slots[1] = (1 - b) * grad * grad + b * slots[1]
        m_hat = slots[0] / (1 - a**t)
        v_hat = slots[1] / (1 - b**t)
        u = m_hat / (np.sqrt(v_hat) + c)
        if opt.code == OPT_ADAMW:
            u[:-1] += d * theta[:-1]
    else:
        raise ValueError(f"unknown optimizer code {opt.code!r}")
    theta -= lr * u
    return theta, (t, slots)


# ------------------------------------------------------------ the passive-aggressive step


def _pa_step(
    batch: tuple, theta: np.ndarray, state: State, model: LoweredModel, opt: LoweredOptimizer
) -> tuple[float, State]:
    """One passive-aggressive step on one sample, in place on ``theta`` (see
    ``specs.PassiveAggressive``); returns its unweighted loss (summed over the K outputs)
    and the state after it (the step count; the moments are not used).

    Per output: ``tau = min(C, loss/‖x‖²)`` (pa1; 0 for a row of zeros) or
    ``loss/(‖x‖² + 1/(2C))`` (pa2), ``update = −tau·sign(dloss)·s``; then, in
    scikit-learn's order, the weights shrink by ``1 − C·l2``, ``w += update·x`` and the
    intercept ``b += (update − C·intercept_slope)·intercept_decay``. The arithmetic is
    float64. A sparse row is made dense (O(d), as the shrink).
    """
    X, Y, weight = batch[:3]
    x = (X[0].toarray()[0] if is_sparse(X) else X[0]).astype(np.float64)
    C = opt.schedule_params[0]
    step, slots = state
    P = x @ theta[:-1].astype(np.float64) + theta[-1].astype(np.float64)
    losses, dloss = _output_losses(
        P[None, :], Y.astype(np.float64), model.loss_code, model.loss_param
    )
    losses, dloss = losses[0], dloss[0]
    s = 1.0 if weight is None else float(weight[0])
    sq = float(x @ x)
    if opt.schedule_code == SCHED_PA1:
        tau = np.minimum(C, losses / sq) if sq != 0.0 else np.zeros_like(losses)
    else:
        tau = losses / (sq + 0.5 / C)
    update = -tau * np.sign(dloss) * s
    W = theta[:-1].astype(np.float64)
    if model.l2 != 0.0:
        W = W * (1.0 - C * model.l2)
    theta[:-1] = W + np.outer(x, update)
    if model.fit_intercept:
        step_b = (update - C * model.intercept_slope) * model.intercept_decay
        theta[-1] = theta[-1].astype(np.float64) + step_b
    return float(losses.sum()), (step + 1, slots)


# ------------------------------------------------------------------ the l1 penalty's step

#: How a training step applies the l1 penalty (:func:`_l1_rule`): as the subgradient
#: ``l1·sign(w)`` in the gradient, by scikit-learn's cumulative truncation after each
#: per-sample step, or by a proximal (soft-threshold) step after each batch's step.
L1_SUBGRADIENT, L1_TRUNCATED, L1_PROXIMAL = 0, 1, 2


def _l1_rule(opt: LoweredOptimizer, batch_size: int, l1: float) -> int:
    """How the training steps of ``opt`` with batches of ``batch_size`` apply ``l1``.

    - the SGD optimizer (momentum and Nesterov included), ``batch_size == 1``:
      :data:`L1_TRUNCATED`, scikit-learn's cumulative truncated penalty (Tsuruoka, Tsujii
      and Ananiadou 2009) after each sample's step (:func:`_truncate_l1`);
    - the SGD optimizer, larger batches (full batch too): :data:`L1_PROXIMAL`, the
      soft-threshold ``w = sign(w)·max(|w| − lr·l1, 0)`` after the step
      (:func:`_prox_l1`);
    - AdaGrad, RMSProp, Adam, AdamW, or no l1: :data:`L1_SUBGRADIENT`, ``l1·sign(w)`` in
      the gradient, as before. Their moments are built from the whole gradient and their
      step is not ``lr`` per coordinate; a proximal step in their metric would change
      what the moments hold (optax's optimizers take the penalty's gradient the same way).

    In the first two cases the gradient of the step leaves the l1 term out (the objective
    reported still has it).
    """
    if l1 == 0.0 or opt.code != OPT_SGD:
        return L1_SUBGRADIENT
    return L1_TRUNCATED if batch_size == 1 else L1_PROXIMAL


def _prox_l1(theta: np.ndarray, threshold: float) -> None:
    """Soft-threshold the weights ``theta[:-1]`` in place by ``threshold`` (= lr·l1),
    in float64, the intercepts untouched."""
    W = theta[:-1].astype(np.float64)
    theta[:-1] = np.sign(W) * np.maximum(np.abs(W) - threshold, 0.0)


def _truncate_l1(
    theta: np.ndarray, q: np.ndarray, u: float, rows: np.ndarray | None = None
) -> None:
    """scikit-learn's cumulative truncated l1 step on the weights ``theta[:-1]``, in place
    (only the features ``rows`` when given: scikit-learn's rule on a sparse row, which
    truncates the features the row stores).

    ``u`` is the total l1 penalty every weight could have received so far (Σ_t l1·lr_t,
    this step's included), ``q`` (d, K) the penalty each weight did receive (signed);
    for each weight ``z``: if ``z > 0``, ``w = max(0, z − (u + q))``; if ``z < 0``,
    ``w = min(0, z + (u − q))``; then ``q += w − z`` (with the stored, rounded ``w``).
    Computed in float64, stored in theta's and ``q``'s dtype.
    """
    at = slice(None) if rows is None else rows
    W = theta[:-1]
    z = W[at].astype(np.float64)
    q64 = q[at].astype(np.float64)
    w = np.where(z > 0.0, np.maximum(0.0, z - (u + q64)), z)
    w = np.where(z < 0.0, np.minimum(0.0, z + (u - q64)), w)
    W[at] = w
    q[at] = q64 + (W[at].astype(np.float64) - z)
