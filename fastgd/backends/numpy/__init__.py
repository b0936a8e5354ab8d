"""The numpy backend: vectorized kernels, one Python step per batch.

This is the readable baseline the other two backends mirror name for name. Its public
names, with the same signatures in ``fastgd.backends.numba`` and ``fastgd.backends.jax``:

- :func:`prepare` — put the data where the kernels run (a device, for jax), once per fit,
  as one :class:`Data` bundle;
- :func:`loss_grad` — mean loss (plus penalty) and its gradient over a batch;
- :func:`init_state` — the optimizer's state for a parameter matrix;
- :func:`update` — one optimizer step;
- :func:`run_epochs` — all batches of a chunk of epochs.

Parameters travel as one matrix ``theta`` of shape (d + 1, K): ``theta[:d]`` are the
weights ``W`` (one column per output) and ``theta[d]`` the K intercepts ``b``; a single
output is K = 1. Penalties and AdamW's weight decay touch ``W`` only. The optimizer
state is ``(step, slots)``: the number of updates done so far and a (2, d + 1, K) array
of per-parameter moments (SGD: trace; AdaGrad: sum of squares; RMSProp: mean square;
Adam/AdamW: first and second moments).

The data travel as one :class:`Data` bundle ``(X, Y, weight)``. ``Y`` holds the targets
in the form the loss's formula uses (see :func:`fastgd.data.kernel_targets`): real
values for the regression losses, {0, 1} for ``logistic``, ±1 for ``hinge``,
``squared_hinge`` and ``modified_huber`` — one column per output — and, for
``multinomial``, one column of class codes 0..K-1. ``weight`` is None (every sample
weighs 1) or one weight per sample; a batch objective is
``(1/m)·Σ_i weight_i·loss_i + penalty`` with ``loss_i`` summed over the K outputs.

The gradient is ``(1/m)·Σ_i weight_i·clip(d loss_i / d p_i)·x_i`` plus the penalty's: each
loss derivative is clipped to ``[-max_dloss, max_dloss]`` of the :class:`LoweredModel`
before it is weighted (scikit-learn SGD's ``MAX_DLOSS``; inf, no clip, by default).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from ...specs import (
    LOSS_EPSILON_INSENSITIVE,
    LOSS_HINGE,
    LOSS_HUBER,
    LOSS_LOGISTIC,
    LOSS_MODIFIED_HUBER,
    LOSS_MULTINOMIAL,
    LOSS_SQUARED,
    LOSS_SQUARED_EPSILON_INSENSITIVE,
    LOSS_SQUARED_HINGE,
    OPT_ADAGRAD,
    OPT_ADAM,
    OPT_ADAMW,
    OPT_RMSPROP,
    OPT_SGD,
    LoweredModel,
    LoweredOptimizer,
    learning_rate,
)

__all__ = ["NAME", "Data", "prepare", "loss_grad", "init_state", "update", "run_epochs"]

NAME = "numpy"

State = tuple[int, np.ndarray]


class Data(NamedTuple):
    """The training data as the kernels read them (host arrays here).

    Attributes
    ----------
    X : ndarray, shape (n, d)
        Samples, float32 or float64.
    Y : ndarray, shape (n, T)
        Targets in ``X``'s dtype: T = K outputs, or T = 1 column of class codes for the
        multinomial loss.
    weight : ndarray of shape (n,) or None
        Per-sample weights in ``X``'s dtype; None means all ones.
    """

    X: np.ndarray
    Y: np.ndarray
    weight: np.ndarray | None = None

    def take(self, idx: np.ndarray) -> Data:
        """The rows ``idx`` of every array (a mini-batch)."""
        weight = None if self.weight is None else self.weight[idx]
        return Data(self.X[idx], self.Y[idx], weight)


def prepare(
    X: np.ndarray,
    Y: np.ndarray,
    theta: np.ndarray,
    device: object = None,
    sample_weight: np.ndarray | None = None,
) -> tuple[Data, np.ndarray]:
    """Bundle the data and place them where the kernels run: here, host memory as they are.

    Parameters
    ----------
    X : ndarray, shape (n, d)
        Checked, C-contiguous, float32 or float64.
    Y : ndarray, shape (n, T)
        Kernel targets (see the module docstring), same dtype.
    theta : ndarray, shape (d + 1, K)
        Starting parameters, same dtype.
    device : None or "cpu"
        This backend runs on the CPU only.
    sample_weight : ndarray of shape (n,), optional
        Per-sample weights, same dtype; None means all ones.

    Returns
    -------
    data : Data
        ``Data(X, Y, sample_weight)``.
    theta : ndarray
        Unchanged.
    """
    if device not in (None, "cpu"):
        raise ValueError(f"device must be None or 'cpu' for the {NAME} backend, got {device!r}")
    return Data(X, Y, sample_weight), theta


def _sigmoid(p: np.ndarray) -> np.ndarray:
    """Numerically stable logistic sigmoid."""
    e = np.exp(-np.abs(p))
    return np.where(p >= 0, 1.0 / (1.0 + e), e / (1.0 + e)).astype(p.dtype, copy=False)


def _multinomial(P: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Softmax cross-entropy per row, shape (m,), and its derivative, shape (m, K)."""
    shifted = P - P.max(axis=1, keepdims=True)
    e = np.exp(shifted)
    total = e.sum(axis=1, keepdims=True)
    rows = np.arange(P.shape[0])
    codes = labels[:, 0].astype(np.intp)
    losses = np.log(total[:, 0]) - shifted[rows, codes]
    dloss = e / total
    dloss[rows, codes] -= 1
    return losses, dloss


def _loss_and_dloss(P: np.ndarray, Y: np.ndarray, model: LoweredModel):
    """Per-sample losses (m,), summed over the outputs, and d loss / d P, shape (m, K)."""
    code, eps = model.loss_code, model.loss_param
    if code == LOSS_MULTINOMIAL:
        return _multinomial(P, Y)
    if code == LOSS_LOGISTIC:
        losses, dloss = np.logaddexp(0.0, P) - Y * P, _sigmoid(P) - Y
    elif code in (LOSS_HINGE, LOSS_SQUARED_HINGE, LOSS_MODIFIED_HUBER):
        losses, dloss = _signed_label_loss(code, P, Y)
    else:
        losses, dloss = _residual_loss(code, eps, P - Y)
    return losses.sum(axis=1), dloss


def _signed_label_loss(code: int, P: np.ndarray, S: np.ndarray):
    """Margin losses of labels ``S`` = ±1 (scikit-learn's formulas), with z = s·p."""
    z = S * P
    if code == LOSS_HINGE:  # max(0, 1 - z); at z = 1 the subgradient -s, as scikit-learn
        met = z > 1
        return np.where(met, 0.0, 1 - z), np.where(met, 0.0, -S)
    if code == LOSS_SQUARED_HINGE:  # max(0, 1 - z)^2
        gap = np.maximum(1 - z, 0.0)
        return gap * gap, -2 * S * gap
    # modified Huber: 0 for z >= 1, (1 - z)^2 for -1 <= z < 1, -4z below
    gap = np.maximum(1 - z, 0.0)
    linear = z < -1
    return (
        np.where(linear, -4 * z, gap * gap),
        np.where(linear, -4 * S, -2 * S * gap),
    )


def _residual_loss(code: int, eps: float, r: np.ndarray):
    """Regression losses of the residual ``r = p − y``."""
    if code == LOSS_HUBER:
        abs_r = np.abs(r)
        return np.where(abs_r <= eps, 0.5 * r * r, eps * (abs_r - 0.5 * eps)), np.clip(r, -eps, eps)
    if code == LOSS_EPSILON_INSENSITIVE:  # max(0, |r| - eps)
        excess = np.abs(r) - eps
        return np.maximum(excess, 0.0), np.where(excess > 0, np.sign(r), 0.0)
    if code == LOSS_SQUARED_EPSILON_INSENSITIVE:  # max(0, |r| - eps)^2
        excess = np.maximum(np.abs(r) - eps, 0.0)
        return excess * excess, 2 * np.sign(r) * excess
    if code == LOSS_SQUARED:
        return 0.5 * r * r, r
    raise ValueError(f"unknown loss code {code!r}")


def _clip_dloss(dloss: np.ndarray, max_dloss: float) -> np.ndarray:
    """``dloss`` clipped to ``[-max_dloss, max_dloss]`` (NaN stays NaN); itself when
    ``max_dloss`` is inf."""
    if math.isinf(max_dloss):
        return dloss
    return np.clip(dloss, -max_dloss, max_dloss)


def loss_grad(data: Data, theta: np.ndarray, model: LoweredModel) -> tuple[float, np.ndarray]:
    """Mean (weighted) loss over a batch plus the penalty, and its gradient.

    Parameters
    ----------
    data : Data
        The batch: ``X`` (m, d), ``Y`` (m, T), ``weight`` (m,) or None; see :class:`Data`.
    theta : ndarray, shape (d + 1, K)
        Weights followed by the intercepts, same dtype as ``X``.
    model : LoweredModel
        Loss code and parameter, penalty strengths, whether the intercept is trained,
        the clip of the loss derivatives.

    Returns
    -------
    loss : float
        ``(1/m)·Σ_i s_i·Σ_k loss(p_ik, y_ik) + l2/2·‖W‖² + l1·‖W‖₁`` with
        ``P = X @ W + b`` (s_i = 1 without weights; for ``multinomial`` the per-sample
        loss is the softmax cross-entropy of the row).
    grad : ndarray, shape (d + 1, K)
        Its gradient with respect to ``theta`` (the intercept row is 0 when the
        intercept is not trained); subgradient ``sign(W)`` for the l1 term. Each
        ``d loss(p_ik, y_ik) / d p_ik`` is clipped to ``[-max_dloss, max_dloss]``
        first (a gradient of the loss only when nothing is clipped).
    """
    X, Y, weight = data
    W, b = theta[:-1], theta[-1]
    m = X.shape[0]
    P = X @ W + b
    losses, dloss = _loss_and_dloss(P, Y, model)
    dloss = _clip_dloss(dloss.astype(theta.dtype, copy=False), model.max_dloss)
    if weight is not None:
        losses = losses * weight
        dloss = dloss * weight[:, None]
    grad = np.empty_like(theta)
    grad[:-1] = (X.T @ dloss) / m + model.l2 * W + model.l1 * np.sign(W)
    grad[-1] = dloss.mean(axis=0) if model.fit_intercept else 0.0
    penalty = 0.5 * model.l2 * float(np.vdot(W, W)) + model.l1 * float(np.abs(W).sum())
    return float(losses.mean(dtype=np.float64)) + penalty, grad


def init_state(theta: np.ndarray, opt: LoweredOptimizer) -> State:
    """The optimizer state before the first update.

    Parameters
    ----------
    theta : ndarray, shape (d + 1, K)
        The initial parameters; the state takes their shape and dtype.
    opt : LoweredOptimizer
        The optimizer; AdaGrad starts its sum of squares at ``initial_accumulator_value``.

    Returns
    -------
    state : tuple (int, ndarray of shape (2, d + 1, K))
        ``(0, slots)``.
    """
    slots = np.zeros((2, *theta.shape), dtype=theta.dtype)
    if opt.code == OPT_ADAGRAD:
        slots[0] = opt.params[0]
    return 0, slots


def update(
    theta: np.ndarray, grad: np.ndarray, state: State, opt: LoweredOptimizer
) -> tuple[np.ndarray, State]:
    """One optimizer step, in place on ``theta`` and the state's slots.

    Parameters
    ----------
    theta : ndarray, shape (d + 1, K)
        Parameters (weights then intercepts); modified in place.
    grad : ndarray, shape (d + 1, K)
        Gradient at ``theta``.
    state : tuple (int, ndarray of shape (2, d + 1, K))
        From :func:`init_state` or the previous :func:`update`; its slots are modified.
    opt : LoweredOptimizer
        Optimizer code and hyper-parameters, schedule code and parameters.

    Returns
    -------
    theta, state
        The same arrays, updated, and the step count increased by one.
    """
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


def run_epochs(
    data: Data,
    theta: np.ndarray,
    state: State,
    orders: np.ndarray,
    batch_size: int,
    model: LoweredModel,
    opt: LoweredOptimizer,
) -> tuple[np.ndarray, State, np.ndarray]:
    """Run every batch of a chunk of epochs.

    Parameters
    ----------
    data : Data
        All samples, targets and weights, from :func:`prepare`.
    theta : ndarray, shape (d + 1, K)
        Starting parameters (the backend's own copy; updated in place here).
    state : tuple
        Optimizer state from :func:`init_state` or a previous call.
    orders : ndarray of int64, shape (E, n)
        Sample order of each of the E epochs; epoch e's batches are consecutive slices
        of ``orders[e]`` of ``batch_size`` samples, the last one possibly shorter.
        With ``batch_size >= n`` (full batch) the order does not matter.
    batch_size : int
        Samples per update, 1 <= batch_size <= n.
    model, opt : LoweredModel, LoweredOptimizer
        What to minimise and how.

    Returns
    -------
    theta, state
        Parameters and optimizer state after the last update.
    epoch_losses : ndarray of float64, shape (E,)
        Per epoch, the mean over its samples of the batch objective (loss + penalty)
        evaluated before each batch's update.
    """
    n_epochs, n = orders.shape
    epoch_losses = np.empty(n_epochs, dtype=np.float64)
    for e in range(n_epochs):
        if batch_size >= n:
            loss, grad = loss_grad(data, theta, model)
            theta, state = update(theta, grad, state, opt)
            epoch_losses[e] = loss
            continue
        total = 0.0
        for start in range(0, n, batch_size):
            idx = orders[e, start : start + batch_size]
            loss, grad = loss_grad(data.take(idx), theta, model)
            theta, state = update(theta, grad, state, opt)
            total += loss * idx.shape[0]
        epoch_losses[e] = total / n
    return theta, state, epoch_losses
