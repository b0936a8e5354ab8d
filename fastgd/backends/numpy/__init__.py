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
state is ``(step, slots)``: the number of updates done so far and a (3, d + 1, K) array:
slots 0 and 1 the per-parameter moments (SGD: trace, and with an l1 term per sample the
truncation's record: ``q`` at the weights and ``u`` at the intercepts of ``slots[1]``, see
``epochs``; AdaGrad: sum of squares; RMSProp: mean square; Adam/AdamW: first and second
moments), slot 2 the running average of the parameters when ``opt.average`` > 0 (kept by
:func:`run_epochs` after each update t >= ``opt.average``: ``avg += (theta − avg) / (t −
average + 1)``; :func:`update` leaves it alone).
:func:`update` applies the gradient it is given; :func:`run_epochs` applies an l1 term
with the SGD optimizer after each step (truncated per sample, proximal in batches).

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

Modules
-------
This file holds the contract: the public names and their docstrings. The code lives in
one module per concern, each building on the ones above it:

- ``losses`` — the per-sample losses and their derivatives (and the derivative clip);
- ``batches`` — a batch's objective and its gradient, the body of :func:`loss_grad`;
- ``updates`` — the optimizer state and one step at the schedule's learning rate, the
  bodies of :func:`init_state` and :func:`update`;
- ``epochs`` — the loop over the batches of a chunk of epochs, the body of
  :func:`run_epochs`.

A sparse X (a scipy CSR matrix from :func:`fastgd.sparse.check_sparse_X`) runs the same
code: ``X @ W``, ``X.T @ dloss`` and ``X[idx]`` are scipy.sparse products and row
selections, never a dense copy of X (every update stays O(d·K), as on dense X);
:func:`prepare` returns a :class:`SparseData`, which adds scikit-learn's running norms of
the weights (``LoweredModel.sklearn_sparse_norms``). Per-sample l1 truncates the weights
the row stores (scikit-learn's sparse rule); a passive-aggressive step makes its row dense.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ...sparse import is_sparse, starting_norms
from ...specs import LoweredModel, LoweredOptimizer
from .batches import _batch_loss_grad
from .epochs import _train_epochs
from .updates import State, _initial_state, _step

__all__ = ["NAME", "Data", "prepare", "loss_grad", "init_state", "update", "run_epochs"]

NAME = "numpy"


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


class SparseData(NamedTuple):
    """A sparse fit's data: :class:`Data`'s fields (X a scipy CSR matrix) and ``norms``.

    Attributes
    ----------
    X, Y, weight
        As in :class:`Data`.
    norms : ndarray of float64, shape (2, K)
        The running scikit-learn norms of the weights (``‖w‖²``, ``‖w‖₁`` per output, see
        ``LoweredModel.sklearn_sparse_norms``): those of the starting weights at
        :func:`prepare`, then kept by :func:`run_epochs` across the calls of one fit.
    """

    X: object
    Y: np.ndarray
    weight: np.ndarray | None
    norms: np.ndarray

    def take(self, idx: np.ndarray) -> Data:
        """The rows ``idx`` of X, Y and the weights (a mini-batch, as a :class:`Data`)."""
        return Data(*self[:3]).take(idx)


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
        ``Data(X, Y, sample_weight)``; a :class:`SparseData` for a sparse X.
    theta : ndarray
        Unchanged.
    """
    if device not in (None, "cpu"):
        raise ValueError(f"device must be None or 'cpu' for the {NAME} backend, got {device!r}")
    if is_sparse(X):
        return SparseData(X, Y, sample_weight, starting_norms(theta)), theta
    return Data(X, Y, sample_weight), theta


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
    return _batch_loss_grad(data, theta, model)


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
    state : tuple (int, ndarray of shape (3, d + 1, K))
        ``(0, slots)``.
    """
    return _initial_state(theta, opt)


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
    state : tuple (int, ndarray of shape (3, d + 1, K))
        From :func:`init_state` or the previous :func:`update`; its slots are modified.
    opt : LoweredOptimizer
        Optimizer code and hyper-parameters, schedule code and parameters.

    Returns
    -------
    theta, state
        The same arrays, updated, and the step count increased by one.
    """
    return _step(theta, grad, state, opt)


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
    return _train_epochs(data, theta, state, orders, batch_size, model, opt)
