"""The training loop of a chunk of epochs (:func:`_train_epochs`, the body of
:func:`fastgd.backends.numpy.run_epochs`): one Python step per batch.

The l1 penalty with the SGD optimizer is applied after each step, not in its gradient
(:func:`fastgd.backends.numpy.updates._l1_rule`): scikit-learn's cumulative truncation
with batches of one sample, a proximal step with larger ones. The truncation's state
lives in the SGD optimizer's second slot, which SGD does not use otherwise:
``slots[1][:d]`` is the penalty each weight received so far (scikit-learn's ``q``, one
column per output) and ``slots[1][d]`` the total it could have received (its ``u``, the
same in every column), so a fit resumed from its state (chunks of epochs, ``partial_fit``)
continues where it stopped. ``u`` is summed in float64 within a call and stored in the
slots' dtype at its end.

With ``opt.average`` = a > 0, the third slot keeps the running average of the parameters
after each update t >= a, ``avg += (theta − avg) / (t − a + 1)`` (:func:`_average_into`):
after the proximal l1 step, but before the truncation per sample (scikit-learn's order).

A passive-aggressive schedule (``SCHED_PA1``/``SCHED_PA2``, batches of one sample) takes
its own step (:func:`fastgd.backends.numpy.updates._pa_step`) in place of the gradient's;
the epoch's objective is then the mean unweighted loss alone (scikit-learn's).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ...specs import PA_SCHEDULES, LoweredModel, LoweredOptimizer, learning_rate
from .batches import _batch_loss_grad
from .updates import (
    L1_PROXIMAL,
    L1_SUBGRADIENT,
    L1_TRUNCATED,
    State,
    _l1_rule,
    _pa_step,
    _prox_l1,
    _step,
    _truncate_l1,
)

if TYPE_CHECKING:
    from . import Data


def _average_into(avg: np.ndarray, theta: np.ndarray, k: int) -> None:
    """``avg += (theta − avg) / k`` in place, in float64 (k = 1 copies theta)."""
    a = avg.astype(np.float64)
    avg[...] = a + (theta.astype(np.float64) - a) / k


def _train_epochs(
    data: Data, theta: np.ndarray, state: State, orders: np.ndarray, batch_size: int,
    model: LoweredModel, opt: LoweredOptimizer,
) -> tuple[np.ndarray, State, np.ndarray]:
    """Every batch of the epochs ``orders`` (one row each): the gradient of the batch, then
    the step; returns the parameters, the state and each epoch's mean batch objective.
    See :func:`fastgd.backends.numpy.run_epochs`."""
    n_epochs, n = orders.shape
    epoch_losses = np.empty(n_epochs, dtype=np.float64)
    l1 = model.l1
    rule = _l1_rule(opt, batch_size, l1)
    grad_model = model if rule == L1_SUBGRADIENT else model._replace(l1=0.0)
    u = float(state[1][1, -1, 0]) if rule == L1_TRUNCATED else 0.0

    pa = opt.schedule_code in PA_SCHEDULES

    def train_on(batch: Data) -> float:
        nonlocal theta, state, u
        if pa:
            loss, state = _pa_step(batch, theta, state, model, opt)
        else:
            loss, grad = _batch_loss_grad(batch, theta, grad_model)
            if rule != L1_SUBGRADIENT:
                loss += l1 * float(np.abs(theta[:-1]).sum())
            theta, state = _step(theta, grad, state, opt)
        if rule == L1_PROXIMAL:
            _prox_l1(theta, learning_rate(opt.schedule_code, opt.schedule_params, state[0]) * l1)
        if 0 < opt.average <= state[0]:
            _average_into(state[1][2], theta, state[0] - opt.average + 1)
        if rule == L1_TRUNCATED:
            u += l1 * learning_rate(opt.schedule_code, opt.schedule_params, state[0])
            _truncate_l1(theta, state[1][1, :-1], u)
        return loss

    for e in range(n_epochs):
        if batch_size >= n:
            epoch_losses[e] = train_on(data)
            continue
        total = 0.0
        for start in range(0, n, batch_size):
            idx = orders[e, start : start + batch_size]
            total += train_on(data.take(idx)) * idx.shape[0]
        epoch_losses[e] = total / n
    if rule == L1_TRUNCATED:
        state[1][1, -1] = u
    return theta, state, epoch_losses
