"""The numpy backend: vectorized kernels, one Python step per batch.

This is the readable baseline the other two backends mirror name for name. Its public
names, with the same signatures in ``numba_backend`` and ``jax_backend``:

- :func:`prepare` — put the data where the kernels run (a device, for jax), once per fit;
- :func:`loss_grad` — mean loss (plus penalty) and its gradient over a batch;
- :func:`init_state` — the optimizer's state for a parameter vector;
- :func:`update` — one optimizer step;
- :func:`run_epochs` — all batches of a chunk of epochs.

Parameters travel as one vector ``theta`` of shape (d + 1,): ``theta[:d]`` are the
weights ``w`` and ``theta[d]`` is the intercept ``b``. Penalties and AdamW's weight
decay touch ``w`` only. The optimizer state is ``(step, slots)``: the number of updates
done so far and a (2, d + 1) array of per-parameter moments (SGD: trace; AdaGrad: sum of
squares; RMSProp: mean square; Adam/AdamW: first and second moments).
"""

from __future__ import annotations

import numpy as np

from ..specs import (
    LOSS_HUBER,
    LOSS_LOGISTIC,
    OPT_ADAGRAD,
    OPT_ADAM,
    OPT_ADAMW,
    OPT_RMSPROP,
    OPT_SGD,
    LoweredModel,
    LoweredOptimizer,
    learning_rate,
)

__all__ = ["NAME", "prepare", "loss_grad", "init_state", "update", "run_epochs"]

NAME = "numpy"

State = tuple[int, np.ndarray]


def prepare(
    X: np.ndarray, y: np.ndarray, theta: np.ndarray, device: object = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Place the data and parameters where the kernels run: here, host memory as they are.

    Parameters
    ----------
    X : ndarray, shape (n, d); y : ndarray, shape (n,); theta : ndarray, shape (d + 1,)
        Checked, C-contiguous, one float dtype.
    device : None or "cpu"
        This backend runs on the CPU only.

    Returns
    -------
    X, y, theta
        Unchanged.
    """
    if device not in (None, "cpu"):
        raise ValueError(f"device must be None or 'cpu' for the {NAME} backend, got {device!r}")
    return X, y, theta


def _sigmoid(p: np.ndarray) -> np.ndarray:
    """Numerically stable logistic sigmoid."""
    e = np.exp(-np.abs(p))
    return np.where(p >= 0, 1.0 / (1.0 + e), e / (1.0 + e)).astype(p.dtype, copy=False)


def _loss_and_dloss(p: np.ndarray, y: np.ndarray, model: LoweredModel):
    """Per-sample losses and their derivatives with respect to the prediction ``p``."""
    if model.loss_code == LOSS_LOGISTIC:
        losses = np.logaddexp(0.0, p) - y * p
        return losses, _sigmoid(p) - y
    r = p - y
    if model.loss_code == LOSS_HUBER:
        eps = model.loss_param
        abs_r = np.abs(r)
        losses = np.where(abs_r <= eps, 0.5 * r * r, eps * (abs_r - 0.5 * eps))
        return losses, np.clip(r, -eps, eps)
    return 0.5 * r * r, r


def loss_grad(
    X: np.ndarray, y: np.ndarray, theta: np.ndarray, model: LoweredModel
) -> tuple[float, np.ndarray]:
    """Mean loss over a batch plus the penalty, and its gradient.

    Parameters
    ----------
    X : ndarray, shape (m, d)
        The batch's samples, float32 or float64.
    y : ndarray, shape (m,)
        Targets (labels in {0, 1} for the logistic loss), same dtype as ``X``.
    theta : ndarray, shape (d + 1,)
        Weights followed by the intercept, same dtype as ``X``.
    model : LoweredModel
        Loss code and parameter, penalty strengths, whether the intercept is trained.

    Returns
    -------
    loss : float
        ``mean_i loss(p_i, y_i) + l2/2·‖w‖² + l1·‖w‖₁`` with ``p = X @ w + b``.
    grad : ndarray, shape (d + 1,)
        Its gradient with respect to ``theta`` (the intercept entry is 0 when the
        intercept is not trained); subgradient ``sign(w)`` for the l1 term.
    """
    w, b = theta[:-1], theta[-1]
    m = X.shape[0]
    p = X @ w + b
    losses, dloss = _loss_and_dloss(p, y, model)
    grad = np.empty_like(theta)
    grad[:-1] = (X.T @ dloss) / m + model.l2 * w + model.l1 * np.sign(w)
    grad[-1] = dloss.mean() if model.fit_intercept else 0.0
    penalty = 0.5 * model.l2 * float(w @ w) + model.l1 * float(np.abs(w).sum())
    return float(losses.mean(dtype=np.float64)) + penalty, grad


def init_state(theta: np.ndarray, opt: LoweredOptimizer) -> State:
    """The optimizer state before the first update.

    Parameters
    ----------
    theta : ndarray, shape (p,)
        The initial parameters; the state takes their shape and dtype.
    opt : LoweredOptimizer
        The optimizer; AdaGrad starts its sum of squares at ``initial_accumulator_value``.

    Returns
    -------
    state : tuple (int, ndarray of shape (2, p))
        ``(0, slots)``.
    """
    slots = np.zeros((2, theta.shape[0]), dtype=theta.dtype)
    if opt.code == OPT_ADAGRAD:
        slots[0] = opt.params[0]
    return 0, slots


def update(
    theta: np.ndarray, grad: np.ndarray, state: State, opt: LoweredOptimizer
) -> tuple[np.ndarray, State]:
    """One optimizer step, in place on ``theta`` and the state's slots.

    Parameters
    ----------
    theta : ndarray, shape (p,)
        Parameters (weights then intercept); modified in place.
    grad : ndarray, shape (p,)
        Gradient at ``theta``.
    state : tuple (int, ndarray of shape (2, p))
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
    X: np.ndarray,
    y: np.ndarray,
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
    X : ndarray, shape (n, d)
        All samples, C-contiguous, float32 or float64.
    y : ndarray, shape (n,)
        All targets, same dtype.
    theta : ndarray, shape (d + 1,)
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
            loss, grad = loss_grad(X, y, theta, model)
            theta, state = update(theta, grad, state, opt)
            epoch_losses[e] = loss
            continue
        total = 0.0
        for start in range(0, n, batch_size):
            idx = orders[e, start : start + batch_size]
            loss, grad = loss_grad(X[idx], y[idx], theta, model)
            theta, state = update(theta, grad, state, opt)
            total += loss * idx.shape[0]
        epoch_losses[e] = total / n
    return theta, state, epoch_losses
