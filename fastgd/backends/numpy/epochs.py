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

On a sparse X (a :class:`fastgd.backends.numpy.SparseData`), per-sample SGD truncates
only the features the row stores (scikit-learn's sparse rule), and with the model's
``sklearn_sparse_norms`` its objective's penalty uses scikit-learn's running norms of the
weights (:func:`_sklearn_norms_step`), kept in the data's ``norms`` across calls.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ...sparse import is_sparse, keeps_running_norms, kept_norms
from ...specs import PA_SCHEDULES, LoweredModel, LoweredOptimizer, learning_rate
from .batches import _batch_terms
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


def _sklearn_norms_step(
    norms: np.ndarray, W: np.ndarray, columns: np.ndarray, dloss: np.ndarray, shrink: float
) -> None:
    """scikit-learn's ``WeightVector`` norms after a step on one sparse row, in place:
    ``norms`` (2, K) scaled by the l2 shrink (``shrink²``, ``|shrink|``), then, for each
    output whose loss derivative ``dloss`` (1, K) is nonzero, replaced by the norms of
    the weights ``W`` (d, K) at the row's ``columns`` (those the step changed, not the
    whole vector)."""
    norms[0] *= shrink * shrink
    norms[1] *= abs(shrink)
    moved = dloss[0] != 0
    if moved.any():
        row = W[columns][:, moved].astype(np.float64)
        norms[0, moved] = np.einsum("jk,jk->k", row, row)
        norms[1, moved] = np.abs(row).sum(axis=0)


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
    sparse = is_sparse(data.X)
    norms = _tracked_norms(data, theta, batch_size, model, opt)

    def train_on(batch: Data) -> float:
        nonlocal theta, state, u
        if pa:
            loss, state = _pa_step(batch, theta, state, model, opt)
        else:
            loss, penalty, grad, dloss = _batch_terms(batch, theta, grad_model)
            if norms is not None:  # scikit-learn's objective on sparse rows
                penalty = 0.5 * model.l2 * float(norms[0].sum()) + l1 * float(norms[1].sum())
            elif rule != L1_SUBGRADIENT:
                penalty += l1 * float(np.abs(theta[:-1]).sum())
            loss += penalty
            theta, state = _step(theta, grad, state, opt)
            if norms is not None:
                lr = learning_rate(opt.schedule_code, opt.schedule_params, state[0])
                _sklearn_norms_step(norms, theta[:-1], batch.X.indices, dloss, 1.0 - lr * model.l2)
        if rule == L1_PROXIMAL:
            _prox_l1(theta, learning_rate(opt.schedule_code, opt.schedule_params, state[0]) * l1)
        if 0 < opt.average <= state[0]:
            _average_into(state[1][2], theta, state[0] - opt.average + 1)
        if rule == L1_TRUNCATED:
            u += l1 * learning_rate(opt.schedule_code, opt.schedule_params, state[0])
            # a sparse row: only the features it stores (scikit-learn's sparse rule)
            _truncate_l1(theta, state[1][1, :-1], u, batch.X.indices if sparse else None)
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


def _tracked_norms(
    data: Data, theta: np.ndarray, batch_size: int, model: LoweredModel, opt: LoweredOptimizer
) -> np.ndarray | None:
    """The running scikit-learn norms this call keeps (``data.norms``, updated in place),
    or None: a sparse X and :func:`fastgd.sparse.keeps_running_norms`."""
    if not (is_sparse(data.X) and keeps_running_norms(model, opt, batch_size)):
        return None
    return kept_norms(getattr(data, "norms", None), theta)
