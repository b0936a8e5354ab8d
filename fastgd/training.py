"""The epoch loop of a fit: backend calls of one or more epochs each, then after each epoch
the divergence check, the reports (verbose line, progress bar, callback) and the stopping
rule (:class:`ToleranceRule`, with scikit-learn's ``adaptive`` learning rate)."""

from __future__ import annotations

import math
import sys
from types import ModuleType
from typing import NamedTuple

import numpy as np
from tqdm.auto import tqdm

from .data import all_finite, epoch_orders
from .placement import Placed
from .plan import Plan
from .result import DivergenceError, public_params
from .specs import LoweredOptimizer, learning_rate

__all__ = ["ToleranceRule", "Trained", "epochs_per_call", "train"]

#: Upper bound on the bytes of sample indices handed to a backend in one call.
_CHUNK_INDEX_BYTES = 32 * 2**20


class ToleranceRule:
    """scikit-learn's stopping rule, and its ``adaptive`` learning rate.

    After ``n_iter_no_change`` epochs in a row whose loss (or monitored value, e.g. minus
    a validation score) did not beat the best so far by ``tol``: stop, or, with an
    adaptive rate still above 1e-6, divide the rate by 5 and start counting again.
    ``tol=None`` never stops (nor adapts).
    """

    def __init__(self, tol: float | None, n_iter_no_change: int, adaptive_lr: float | None):
        self.tol = tol
        self.n_iter_no_change = n_iter_no_change
        self.lr = adaptive_lr
        self.best = math.inf
        self.no_gain = 0

    def stop_after(self, loss: float) -> bool:
        """Record one epoch's loss; True means stop (``self.lr`` may have been divided)."""
        if self.tol is None:
            return False
        self.no_gain = self.no_gain + 1 if loss > self.best - self.tol else 0
        self.best = min(self.best, loss)
        if self.no_gain < self.n_iter_no_change:
            return False
        if self.lr is not None and self.lr > 1e-6:
            self.lr /= 5.0
            self.no_gain = 0
            return False
        return True


class Trained(NamedTuple):
    """Where training ended.

    Attributes
    ----------
    theta : array, shape (d + 1, K)
        The backend's parameters after the last update.
    state : tuple (int, array of shape (3, d + 1, K))
        The backend's optimizer state after the last update.
    history : ndarray of float64, shape (epochs run,)
        Each epoch's loss (see :attr:`fastgd.FitResult.loss_history`).
    converged : bool
        Whether the stopping rule or the callback stopped training.
    """

    theta: object
    state: tuple
    history: np.ndarray
    converged: bool


def epochs_per_call(n: int, epochs: int, per_epoch: bool, drawn: bool) -> int:
    """Epochs handed to the backend per call.

    Parameters
    ----------
    n, epochs : int
        Rows an epoch walks; epochs to run.
    per_epoch : bool
        Whether Python must look at every epoch: then 1.
    drawn : bool
        Whether each epoch draws a sample order: else all the epochs (one row of orders
        serves every epoch), and with orders as many as fit in ``_CHUNK_INDEX_BYTES`` of
        sample indices.

    Returns
    -------
    int
    """
    if per_epoch:
        return 1
    if not drawn:
        return epochs
    return max(1, min(epochs, _CHUNK_INDEX_BYTES // (8 * n)))


def train(plan: Plan, kernels: ModuleType, placed: Placed) -> Trained:
    """Run the plan's epochs on the placed data, chunk of epochs after chunk of epochs.

    Parameters
    ----------
    plan : Plan
        The problem, the stopping rule, the reports.
    kernels : module
        The backend.
    placed : Placed
        The data, parameters and optimizer state to start from.

    Returns
    -------
    Trained

    Raises
    ------
    DivergenceError
        When an epoch's loss or the parameters stop being finite.
    """
    drawn = plan.shuffle and placed.batch_size < placed.n  # a full batch draws no order
    per_call = 1 if placed.chunks is not None else epochs_per_call(
        placed.n, plan.epochs, plan.per_epoch, drawn
    )
    first_lr = _first_lr(plan)
    rule = ToleranceRule(plan.tol, plan.n_iter_no_change, plan.adaptive_lr)
    bar = tqdm(total=plan.epochs, unit="epoch", file=sys.stderr) if plan.progress else None
    theta, state, opt = placed.theta, placed.state, plan.opt
    history: list[float] = []
    converged = False
    while len(history) < plan.epochs and not converged:
        n_now = min(per_call, plan.epochs - len(history))
        with np.errstate(over="ignore", invalid="ignore"):  # divergence is reported below
            if placed.chunks is None:
                orders = epoch_orders(plan.rng, placed.n, n_now, drawn)
                theta, state, losses = kernels.run_epochs(
                    placed.data, theta, state, orders, placed.batch_size, plan.model, opt
                )
            else:
                theta, state, losses = _epoch_in_chunks(kernels, plan, placed, theta, state, opt)
        _extend_history(history, losses, theta, first_lr)
        if plan.per_epoch:
            converged = _after_epoch(history, theta, plan, rule, bar)
            if rule.lr is not None:  # the adaptive rate may have been divided
                opt = opt._replace(schedule_params=(rule.lr, 0.0, 0.0))
    if bar is not None:
        bar.close()
    return Trained(theta, state, np.array(history), converged)


def _first_lr(plan: Plan) -> float:
    """The learning rate at the first update of this fit (a resumed state's next step)."""
    opt = plan.opt
    first_step = 1 if plan.state is None else plan.state[0] + 1
    return learning_rate(opt.schedule_code, opt.schedule_params, first_step)


def _extend_history(history: list[float], losses: object, theta: object, first_lr: float) -> None:
    """Append a backend call's epoch losses to ``history``.

    Raises
    ------
    DivergenceError
        When a loss or the parameters are not finite; ``history`` then ends with the
        finite losses before the first bad epoch.
    """
    losses = np.asarray(losses, dtype=np.float64)
    bad = np.flatnonzero(~np.isfinite(losses))
    if bad.size or not all_finite(np.asarray(theta)):
        first_bad = int(bad[0]) if bad.size else losses.shape[0] - 1
        history.extend(losses[:first_bad].tolist())
        raise DivergenceError(len(history) + 1, first_lr, np.array(history))
    history.extend(losses.tolist())


def _epoch_in_chunks(
    kernels: ModuleType,
    plan: Plan,
    placed: Placed,
    theta: object,
    state: tuple,
    opt: LoweredOptimizer,
) -> tuple[object, tuple, np.ndarray]:
    """One epoch over the chunks (see :mod:`fastgd.chunks`).

    Full batch: each chunk adds its share of the gradient (on the host), and one update
    follows; else each chunk runs its own batches, its rows shuffled within it.

    An l1 term with the SGD optimizer is applied as the backends' full batch applies it
    (see ``fastgd.backends.numpy.updates._l1_rule``): the chunks' gradients leave it out
    (``loss_grad`` of the model without l1, whose ``l1·‖W‖₁`` is added to the epoch's
    loss once), the update follows, then the proximal step ``W = sign(W)·max(|W| −
    lr·l1, 0)`` on the host, lr being the update's learning rate. ``update`` keeps its
    contract (it applies the gradient it is given); the adaptive optimizers keep the
    subgradient in the gradient, as in the backends. Per-sample chunks run the backends'
    own truncation, whose state travels in the optimizer state from chunk to chunk.

    Returns
    -------
    theta, state
        After the epoch's updates.
    losses : ndarray of float64, shape (1,)
        The epoch's loss.
    """
    from .specs import OPT_SGD

    chunks = placed.chunks
    n = chunks.n
    full_batch = placed.batch_size >= n
    total, grad_sum = 0.0, None
    l1 = plan.model.l1
    prox = full_batch and l1 != 0.0 and opt.code == OPT_SGD
    grad_model = plan.model._replace(l1=0.0) if prox else plan.model
    chunk_order = chunks.chunk_order(plan.rng, plan.shuffle)
    for position, chunk in enumerate(chunk_order):
        following = chunk_order[position + 1] if position + 1 < len(chunk_order) else None
        X, Y, weight = chunks.load(chunk, following)
        m = X.shape[0]
        data, theta = kernels.prepare(X, Y, theta, plan.placement, weight)
        if full_batch:  # accumulate the chunk's share of the full-batch gradient
            loss, grad = kernels.loss_grad(data, theta, grad_model)
            share = np.asarray(grad, dtype=np.float64) * (m / n)  # summed on the host
            total += float(loss) * (m / n)
            grad_sum = share if grad_sum is None else grad_sum + share
            continue
        rows = epoch_orders(plan.rng, m, 1, plan.shuffle)
        theta, state, losses = kernels.run_epochs(
            data, theta, state, rows, min(placed.batch_size, m), plan.model, opt
        )
        total += float(np.asarray(losses)[0]) * (m / n)
    if prox:
        total += l1 * float(np.abs(np.asarray(theta, dtype=np.float64)[:-1]).sum())
    if full_batch:
        theta, state = kernels.update(theta, grad_sum.astype(plan.X.dtype), state, opt)
    if prox:
        lr = learning_rate(opt.schedule_code, opt.schedule_params, int(state[0]))
        shrunk = np.array(theta)  # on the host (jax's theta is a device array)
        W = shrunk[:-1].astype(np.float64)
        shrunk[:-1] = np.sign(W) * np.maximum(np.abs(W) - lr * l1, 0.0)
        theta = shrunk
    return theta, state, np.array([total])


def _after_epoch(
    history: list[float], theta: object, plan: Plan, rule: ToleranceRule, bar: tqdm | None
) -> bool:
    """Report one epoch (verbose line, progress bar, callback) and apply the stopping
    rules; True means stop."""
    epoch, loss = len(history), history[-1]
    if plan.verbose:
        print(f"epoch {epoch}: loss {loss:.10g}")
    if bar is not None:
        bar.set_postfix(loss=f"{loss:.6g}", refresh=False)
        bar.update(1)
    if plan.callback is None and plan.monitor is None:  # no host copy of the parameters
        return rule.stop_after(loss)
    params = public_params(theta, plan.X.dtype, plan.single_output)
    if plan.callback is not None and plan.callback(epoch, loss, *params):
        return True
    return rule.stop_after(loss if plan.monitor is None else float(plan.monitor(*params)))
