"""Per-sample SGD on (d + 1, K) parameters, every step dense: what the fast loops of
:mod:`.sgd` do not carry, scikit-learn's passive-aggressive steps (``learning_rate="pa1"``
/ ``"pa2"``) and the one-class SVM's intercept slope (``nu·b``, see
``fastgd.specs.OneClassHinge``), for one output or K independent ones
(:func:`_sgd_epochs_dense`). Not on the default path: each step reads and writes every
parameter, as scikit-learn's own loop does on dense rows for these options.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ...specs import SCHED_PA1, SCHED_PA2
from .jit import _JIT
from .losses import _clip_dloss, _loss_and_dloss
from .rows import _prefetch_distance, _prefetch_row
from .sgd import _average_into, _truncate_l1
from .updates import _learning_rate


@njit(**_JIT)
def _pa_size(loss: float, sq: float, pa1: bool, C: float) -> float:
    """The passive-aggressive step size ``tau`` of a sample of loss ``loss`` and squared
    norm ``sq`` (without the intercept): ``min(C, loss/sq)`` for pa1 (0 for a row of
    zeros), ``loss/(sq + 1/(2C))`` for pa2."""
    if pa1:
        if sq == 0.0:
            return 0.0
        return min(C, loss / sq)
    return loss / (sq + 0.5 / C)


@njit(**_JIT)
def _sgd_epochs_dense(
    X, Y, weight, theta, slots, step, orders, loss_code, loss_param, max_dloss, l2, l1,
    fit_intercept, slope, params, schedule_code, schedule_params, epoch_losses, average,
):
    """Per-sample SGD of K independent outputs, dense steps; returns the step count.

    ``Y`` (n, K), ``theta`` (d + 1, K) and ``slots`` (3, d + 1, K), float32 or float64
    (the arithmetic is float64, stored at each step). For each sample, in scikit-learn's
    order: the K predictions, losses and (clipped) derivatives; each output's step
    coefficient ``c_k`` on ``x``: ``−lr·dloss·s`` (``s`` the sample's weight), or with a
    passive-aggressive schedule ``−tau·sign(dloss)·s`` (:func:`_pa_size`, ``lr`` = C);
    then ``w = w·(1 − lr·l2) + c_k·x`` and ``b += c_k − lr·slope`` (when fitted). With
    momentum (never with pa) the step is the gradient's, as :func:`.sgd._sgd_epochs`:
    ``g = dloss·s·x + l2·w`` (``dloss·s + slope`` on b) through the trace in
    ``slots[0]``. After the step, the running average (``average``, ``slots[2]``), then
    the l1 truncation (``slots[1]``: q, and u at the intercepts' row).

    The epoch's objective: the mean over samples of the weighted losses summed over the
    outputs, plus the penalty and ``slope·Σb`` before the step; with pa the unweighted
    losses alone (scikit-learn's).
    """
    n, d = X.shape
    K = theta.shape[1]
    weighted = weight.shape[0] > 0
    pa = schedule_code == SCHED_PA1 or schedule_code == SCHED_PA2
    pa1 = schedule_code == SCHED_PA1
    momentum = params[0]
    nesterov = params[1] != 0.0
    ahead = _prefetch_distance(X)
    trace = slots[0]
    q = slots[1]
    avg = slots[2]
    u = np.float64(q[d, 0])
    dl = np.empty(K)
    coef = np.empty(K)
    for e in range(epoch_losses.shape[0]):
        order = orders[e % orders.shape[0]]
        total = 0.0
        for r in range(n):
            i = order[r]
            if r + ahead < n:
                _prefetch_row(X, order[r + ahead])
            x = X[i]
            step += 1
            lr = _learning_rate(schedule_code, schedule_params, step)
            s = np.float64(weight[i]) if weighted else 1.0
            sq = -1.0  # ‖x‖², computed for the first pa step that needs it
            objective = 0.0
            for k in range(K):
                p = np.float64(theta[d, k])
                dot = 0.0
                for j in range(d):
                    dot += np.float64(x[j]) * theta[j, k]
                loss, g = _loss_and_dloss(dot + p, np.float64(Y[i, k]), loss_code, loss_param)
                g = _clip_dloss(g, max_dloss)
                objective += loss if pa else loss * s
                dl[k] = g * s
                if pa:
                    tau = 0.0
                    if loss > 0.0:
                        if sq < 0.0:
                            sq = 0.0
                            for j in range(d):
                                sq += np.float64(x[j]) * x[j]
                        tau = _pa_size(loss, sq, pa1, lr)
                    coef[k] = -tau * np.sign(g) * s
                else:
                    coef[k] = -lr * g * s
            if not pa:
                objective += _penalty_and_slope(theta, d, l2, l1, slope)
            total += objective
            if momentum != 0.0:
                _momentum_step(x, theta, trace, dl, lr, l2, slope, momentum, nesterov,
                               fit_intercept)  # fmt: skip
            else:
                shrink = 1.0 - lr * l2
                for j in range(d):
                    for k in range(K):
                        w = np.float64(theta[j, k])
                        if l2 != 0.0:
                            w *= shrink
                        theta[j, k] = w + coef[k] * x[j]
                if fit_intercept:
                    for k in range(K):
                        theta[d, k] = np.float64(theta[d, k]) + (coef[k] - lr * slope)
            if 0 < average <= step:
                for k in range(K):
                    _average_into(avg[:, k], theta[:, k], step - average + 1)
            if l1 != 0.0:
                u += l1 * lr
                for k in range(K):
                    _truncate_l1(theta[:, k], q[:, k], d, u)
        epoch_losses[e] = total / n
    if l1 != 0.0:
        for k in range(K):
            q[d, k] = u
    return step


@njit(**_JIT)
def _penalty_and_slope(theta, d: int, l2: float, l1: float, slope: float) -> float:
    """``l2/2·‖w‖² + l1·‖w‖₁ + slope·Σb`` of the (d + 1, K) parameters, in float64."""
    ww = 0.0
    aw = 0.0
    for j in range(d):
        for k in range(theta.shape[1]):
            w = np.float64(theta[j, k])
            ww += w * w
            aw += abs(w)
    total = 0.5 * l2 * ww + l1 * aw
    if slope != 0.0:
        for k in range(theta.shape[1]):
            total += slope * np.float64(theta[d, k])
    return total


@njit(**_JIT)
def _momentum_step(x, theta, trace, dl, lr, l2, slope, momentum, nesterov, fit_intercept):
    """The SGD step with (Nesterov) momentum on every parameter: ``g = dl_k·x + l2·w``
    (``dl_k + slope`` on the intercepts, 0 when not fitted), ``trace = g + μ·trace``,
    ``θ −= lr·trace`` (Nesterov: ``lr·(g + μ·trace)``)."""
    d = x.shape[0]
    for j in range(d + 1):
        for k in range(theta.shape[1]):
            if j < d:
                g = dl[k] * x[j] + l2 * np.float64(theta[j, k])
            else:
                g = dl[k] + slope if fit_intercept else 0.0
            t = g + momentum * trace[j, k]
            trace[j, k] = t
            theta[j, k] -= lr * (g + momentum * t if nesterov else t)
