"""A batch's objective and its gradient: :func:`_batch_loss_grad`, the body of
:func:`fastgd.backends.numpy.loss_grad` (whose docstring states what it computes)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ...specs import LoweredModel
from .losses import _clip_dloss, _loss_and_dloss

if TYPE_CHECKING:
    from . import Data


def _batch_loss_grad(
    data: Data, theta: np.ndarray, model: LoweredModel
) -> tuple[float, np.ndarray]:
    """Mean (weighted) loss over the batch ``data`` plus the penalty, and its gradient with
    respect to ``theta``; see :func:`fastgd.backends.numpy.loss_grad`."""
    loss, penalty, grad, _ = _batch_terms(data, theta, model)
    return loss + penalty, grad


def _batch_terms(
    data: Data, theta: np.ndarray, model: LoweredModel
) -> tuple[float, float, np.ndarray, np.ndarray]:
    """:func:`_batch_loss_grad`'s objective in two parts and what made its gradient.

    Returns
    -------
    loss : float
        The mean weighted loss, plus the intercept slope's ``Σ slope·b``.
    penalty : float
        ``l2/2·‖W‖² + l1·‖W‖₁``.
    grad : ndarray, shape (d + 1, K)
    dloss : ndarray, shape (m, K)
        The clipped, weighted loss derivatives.
    """
    X, Y, weight = data[:3]
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
    # the intercepts' gradient, times intercept_decay (scikit-learn's damping on sparse X)
    decay = model.intercept_decay
    grad[-1] = (dloss.mean(axis=0) + model.intercept_slope) * decay if model.fit_intercept else 0.0
    penalty = 0.5 * model.l2 * float(np.vdot(W, W)) + model.l1 * float(np.abs(W).sum())
    loss = float(losses.mean(dtype=np.float64))
    if model.intercept_slope:  # the one-class SVM's nu·b
        loss += model.intercept_slope * float(b.sum(dtype=np.float64))
    return loss, penalty, grad, dloss
