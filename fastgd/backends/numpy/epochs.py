"""The training loop of a chunk of epochs (:func:`_train_epochs`, the body of
:func:`fastgd.backends.numpy.run_epochs`): one Python step per batch."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ...specs import LoweredModel, LoweredOptimizer
from .batches import _batch_loss_grad
from .updates import State, _step

if TYPE_CHECKING:
    from . import Data


def _train_epochs(
    data: Data, theta: np.ndarray, state: State, orders: np.ndarray, batch_size: int,
    model: LoweredModel, opt: LoweredOptimizer,
) -> tuple[np.ndarray, State, np.ndarray]:
    """Every batch of the epochs ``orders`` (one row each): the gradient of the batch, then
    the step; returns the parameters, the state and each epoch's mean batch objective.
    See :func:`fastgd.backends.numpy.run_epochs`."""
    n_epochs, n = orders.shape
    epoch_losses = np.empty(n_epochs, dtype=np.float64)
    for e in range(n_epochs):
        if batch_size >= n:
            loss, grad = _batch_loss_grad(data, theta, model)
            theta, state = _step(theta, grad, state, opt)
            epoch_losses[e] = loss
            continue
        total = 0.0
        for start in range(0, n, batch_size):
            idx = orders[e, start : start + batch_size]
            loss, grad = _batch_loss_grad(data.take(idx), theta, model)
            theta, state = _step(theta, grad, state, opt)
            total += loss * idx.shape[0]
        epoch_losses[e] = total / n
    return theta, state, epoch_losses
