"""The numba backend: compiled loops, and a training loop compiled end to end.

The same public names and signatures as ``fastgd.backends.numpy`` (read that module first; this
one mirrors it name for name):

- :func:`prepare` — the data stay in host memory, C-contiguous, as one :class:`Data`;
- :func:`loss_grad` — mean (weighted) loss plus penalty and its gradient over a batch;
- :func:`init_state` — the optimizer's state ``(step, slots)``;
- :func:`update` — one optimizer step, in place;
- :func:`run_epochs` — every batch of a chunk of epochs in **one** compiled call.

The code, one module per concern, each building on the ones above it:

- ``jit`` — the compile flags every kernel shares (``FASTMATH``, ``_JIT``);
- ``losses`` — one sample's loss and its derivative: the one place a loss is defined;
- ``rows`` — reading rows: prefetch hints, a row's dot products with K parameter rows;
- ``batches`` — the batch gradient, summed in row blocks (serial or parallel);
- ``updates`` — optimizer steps and learning-rate schedules;
- ``sgd`` — per-sample SGD loops (one output; K outputs, scaled or dense, in output groups);
- ``epochs`` — the compiled entry points, one per loss and kernel family, and the plain
  arguments they take;
- this ``__init__`` — the backend's public functions, which call those entry points.

numba's disk cache checks only the file that defines each cached function, not the files of
the functions it calls: after editing one of these modules, clear the cache
(``NUMBA_CACHE_DIR``), or kernels compiled from the old code may still be loaded.

Parameters are a (d + 1, K) matrix ``theta`` (weights ``W``, then the K intercepts), the
data a :class:`Data` bundle ``(X, Y, weight)``; see ``fastgd.backends.numpy`` for the targets of
each loss and the weighted objective. How the kernels differ from numpy's:

- **Two kernel families, K = 1 and K > 1.** A single output (every loss but
  ``multinomial``) runs the *vector* kernels, the backend's one-output kernels as before:
  ``theta`` (d + 1, 1) and ``Y`` (n, 1) are C-contiguous, so they are passed as (d + 1,)
  and (n,) views for free, and each row is one dot product, one scalar loss and one axpy
  with no loop over outputs — the tightest loops for the most common case (one output
  through the matrix kernels would pay a transposed copy per batch and a K-loop around
  every step). K > 1 outputs (and ``multinomial``, which needs K >= 2) run the *matrix*
  kernels: the parameters are copied once per batch to a float64 (K, d + 1) transpose,
  so each output's prediction is a contiguous dot product (four outputs share each pass
  over the row) and each output's gradient a contiguous axpy, skipped where the loss
  derivative is 0. Their hot loops index arrays in 2-D rather than through row views,
  which would cost a reference count update each.
- **One read of X per batch.** Each row's K predictions, losses and loss derivatives are
  computed and the row is added into the K gradients while it is still in cache (numpy
  needs two passes: ``X @ W`` and then ``X.T @ dloss``), with no temporary of size n·K.
  Mini-batch rows are gathered through the epoch order (no copy of X).
- **Row blocks.** A batch of m rows is cut into a number of blocks that depends on m
  (and, for very wide models, on the size of a block's partial sums) only; each block
  sums into its own float64 partial and the partials are added in block order. Large
  batches run the blocks in parallel (``prange``), small ones run them in a serial loop:
  both give bit-identical results, whatever the thread count.
- **Sample weights** are one more array argument, empty when there are none: a cheap
  runtime test per row (the vector kernels multiply by the weight or by 1.0). A weight
  multiplies the row's loss and loss derivatives, so unit weights give the unweighted
  results bit for bit, and weighted fits compile nothing new.
- **The loss-derivative clip** ``max_dloss`` (scikit-learn SGD's ``MAX_DLOSS``) is one
  more runtime float: every kernel clips each per-sample derivative before weighting it
  (:func:`_clip_dloss`, two comparisons per sample: no measurable cost). ``inf`` leaves
  every number as it was and compiles nothing new.
- **Sums in float64.** Predictions, gradients and losses accumulate in float64 even for
  float32 data; parameters, gradients and optimizer slots are stored in the data's
  dtype (float32 in, float32 out).
- **Specs as numbers.** The kernels take the int codes and float parameters of
  :class:`~fastgd.specs.LoweredModel` / :class:`~fastgd.specs.LoweredOptimizer` as plain
  scalars and float64 arrays. Only the loss code is a compile-time constant (one entry
  point per loss and kernel family, see :func:`_for_each_loss`), so the training loop is
  compiled at most (8 vector + 9 matrix) losses x 2 dtypes times, lazily (a few seconds
  each), and cached on disk (``cache=True``; ``NUMBA_CACHE_DIR`` chooses where).
- **Prefetch hints.** Rows gathered through a shuffled order are prefetched a few
  kilobytes ahead (an ``llvm.prefetch`` intrinsic), which hides part of the memory
  latency of random rows.
- **fastmath without nnan/ninf.** Reassociation (vectorised sums), contraction (FMA),
  reciprocal approximation and signed-zero freedom only, so a NaN or an infinity
  produced by a diverging run still propagates to the loss that ``fit`` checks.
- **Per-sample SGD** (batch size 1, the SGD optimizer) has its own tight loops. K = 1
  fuses the dot product, the loss and the update of each sample (without momentum or
  penalty, the update of one sample and the dot product of the next share one loop).
  K > 1 without momentum and l1 keeps the weights as ``W = scale·V`` (scikit-learn's
  trick, with one scale for all outputs since they share the l2 shrink): a step
  multiplies ``scale`` by ``1 − lr·l2`` and adds ``(−lr·dloss_k / scale)·x`` to output
  k's row of ``V`` only where ``dloss_k ≠ 0``, so a step whose margins are all met costs
  just the K dot products (one-vs-rest hinge on 10 classes runs about 5.5x faster than
  scikit-learn's ``SGDClassifier``, 200,000 x 100). With momentum or l1 every step updates every
  weight. The K > 1 loop keeps the parameters in float64 within a call and rounds them
  to the dtype at its end. With several threads and n·d·K from ``_SGD_PARALLEL_MIN_WORK``
  (independent outputs: not multinomial), groups of outputs run on the threads, each
  walking every sample for its own outputs, with the serial loop's parameters bit for bit
  (:func:`_sgd_epochs_grouped`; about 1.25x faster on 2 cores for the 10 classes above).
- **Sparse X** (a scipy.sparse matrix, or a :class:`fastgd.sparse.CsrRows`): ``prepare``
  returns a :class:`SparseData` and the other functions run the CSR kernels of
  ``sparse`` (batch gradients, the loop over batches) and ``sparse_sgd`` (plain
  per-sample SGD in O(nnz of the row) per step); see those modules. Only they carry the
  model's ``intercept_decay``: a dense X with a value other than 1 raises
  NotImplementedError.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ...sparse import CsrRows, is_sparse
from ...specs import OPT_ADAGRAD, OPT_SGD, PA_SCHEDULES, LoweredModel, LoweredOptimizer
from .batches import _parallel_min_work
from .epochs import (
    _LOSS_GRAD,
    _LOSS_GRAD_MATRIX,
    _RUN_EPOCHS,
    _flat,
    _is_vector,
    _kernel_orders,
    _model_args,
    _training_loop,
    _weight_arg,
)
from .jit import FASTMATH as FASTMATH
from .sgd import _sgd_groups
from .sparse import SparseData, _csr_loss_grad_call, _prepare_sparse, _run_sparse_epochs
from .updates import _opt_args, _update_kernel

__all__ = ["NAME", "Data", "prepare", "loss_grad", "init_state", "update", "run_epochs"]

NAME = "numba"

State = tuple[int, np.ndarray]


class Data(NamedTuple):
    """The training data as the kernels read them: host arrays, C-contiguous.

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
    """Bundle the data and place them where the kernels run: host memory, C-contiguous.

    Parameters
    ----------
    X : ndarray, shape (n, d)
        Checked, float32 or float64.
    Y : ndarray, shape (n, T)
        Kernel targets (see ``fastgd.backends.numpy``), same dtype.
    theta : ndarray, shape (d + 1, K)
        Starting parameters, same dtype.
    device : None or "cpu"
        This backend runs on the CPU only.
    sample_weight : ndarray of shape (n,), optional
        Per-sample weights; None means all ones.

    Returns
    -------
    data : Data
        ``Data(X, Y, sample_weight)``, each the same array when already C-contiguous
        (the usual case), else a contiguous copy; the weights in ``X``'s dtype.
    theta : ndarray
        C-contiguous.
    """
    if device not in (None, "cpu"):
        raise ValueError(f"device must be None or 'cpu' for the {NAME} backend, got {device!r}")
    if is_sparse(X) or isinstance(X, CsrRows):
        return _prepare_sparse(X, Y, theta, sample_weight)
    weight = None
    if sample_weight is not None:
        weight = np.ascontiguousarray(sample_weight, dtype=X.dtype)
    data = Data(np.ascontiguousarray(X), np.ascontiguousarray(Y), weight)
    return data, np.ascontiguousarray(theta)


# ---------------------------------------------------------------- entry points


def _loss_grad_into(data: Data, theta, model: LoweredModel, grad, parallel_min_work: int):
    """The batch objective of ``model`` over all of ``data``; its gradient is written into
    ``grad`` (d + 1, K). The arrays must be C-contiguous."""
    code, *numbers = _model_args(model)
    X, Y, weight = data
    weight = _weight_arg(weight, X.dtype)
    if _is_vector(code, theta):
        return _LOSS_GRAD[code](
            X, _flat(Y), weight, _flat(theta), *numbers, _flat(grad), parallel_min_work
        )
    return _LOSS_GRAD_MATRIX[code](X, Y, weight, theta, *numbers, grad, parallel_min_work)


def loss_grad(data: Data, theta: np.ndarray, model: LoweredModel) -> tuple[float, np.ndarray]:
    """Mean (weighted) loss over a batch plus the penalty, and its gradient.

    Parameters
    ----------
    data : Data
        The batch: ``X`` (m, d), ``Y`` (m, T), ``weight`` (m,) or None; see :class:`Data`.
    theta : ndarray, shape (d + 1, K)
        Weights followed by the intercepts, same dtype as ``X``.
    model : LoweredModel
        Loss code and parameter, penalty strengths, whether the intercept is trained.

    Returns
    -------
    loss : float
        ``(1/m)·Σ_i s_i·Σ_k loss(p_ik, y_ik) + l2/2·‖W‖² + l1·‖W‖₁`` with
        ``P = X @ W + b`` (s_i = 1 without weights; for ``multinomial`` the per-sample
        loss is the softmax cross-entropy of the row).
    grad : ndarray, shape (d + 1, K)
        Its gradient with respect to ``theta``, in theta's dtype (the intercept row is 0
        when the intercept is not trained); subgradient ``sign(W)`` for the l1 term.
    """
    if isinstance(data, SparseData):
        return _csr_loss_grad_call(data, np.ascontiguousarray(theta), model,
                                   _parallel_min_work() < np.iinfo(np.int64).max)
    _dense_only(model)
    X, Y, weight = data
    data = Data(
        np.ascontiguousarray(X),
        np.ascontiguousarray(Y),
        None if weight is None else np.ascontiguousarray(weight),
    )
    theta = np.ascontiguousarray(theta)
    grad = np.empty_like(theta)
    loss = _loss_grad_into(data, theta, model, grad, _parallel_min_work())
    return float(loss), grad


def _dense_only(model: LoweredModel) -> None:
    """Raise NotImplementedError for what the dense kernels do not carry."""
    if model.intercept_decay != 1.0:
        raise NotImplementedError(
            f"intercept_decay={model.intercept_decay!r} is supported on a sparse X only by "
            f"the {NAME} backend"
        )


# ------------------------------------------------------------------------- updates


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
        ``(0, slots)``, the slots C-contiguous.
    """
    slots = np.zeros((3, *theta.shape), dtype=theta.dtype)
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
        Parameters (weights then intercepts), C-contiguous; modified in place.
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
    step, slots = state
    t = int(step) + 1
    grad = np.ascontiguousarray(grad, dtype=theta.dtype)
    n_decay = theta.size - theta.shape[1]
    _update_kernel(
        _flat(theta), _flat(grad), np.reshape(slots, (3, -1), copy=False), t, n_decay,
        *_opt_args(opt),
    )
    return theta, (t, slots)


# ------------------------------------------------------------------- training loop


def run_epochs(
    data: Data,
    theta: np.ndarray,
    state: State,
    orders: np.ndarray,
    batch_size: int,
    model: LoweredModel,
    opt: LoweredOptimizer,
) -> tuple[np.ndarray, State, np.ndarray]:
    """Run every batch of a chunk of epochs in one compiled call.

    Parameters
    ----------
    data : Data
        All samples, targets and weights, from :func:`prepare` (C-contiguous).
    theta : ndarray, shape (d + 1, K)
        Starting parameters (the backend's own C-contiguous copy; updated in place here).
    state : tuple
        Optimizer state from :func:`init_state` or a previous call; updated in place.
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
    if isinstance(data, SparseData):
        return _run_sparse_epochs(data, theta, state, orders, batch_size, model, opt)
    _dense_only(model)
    X, Y, weight = data
    step, slots = state
    n = X.shape[0]
    epoch_losses = np.empty(orders.shape[0], dtype=np.float64)
    loss_code, *model_numbers = _model_args(model)
    weight = _weight_arg(weight, X.dtype)
    # n = 1 is a full batch, but not with an l1 term: batches of one sample truncate it
    # (and not with a passive-aggressive schedule: its steps are per sample)
    per_sample = batch_size == 1 and opt.code == OPT_SGD and (
        n > 1 or model.l1 != 0.0 or opt.schedule_code in PA_SCHEDULES
    )
    groups = _sgd_groups(X, theta)
    rest = (
        int(step), _kernel_orders(orders, batch_size >= n and not per_sample),
        int(batch_size), *model_numbers, *_opt_args(opt), epoch_losses, _parallel_min_work(),
        groups, int(opt.average),
    )
    matrix = not _is_vector(loss_code, theta)
    loop = _training_loop(per_sample, matrix, model, opt, groups, theta.shape[1])
    if matrix:
        step = _RUN_EPOCHS[True, loop][loss_code](X, Y, weight, theta, slots, *rest)
    else:
        step = _RUN_EPOCHS[False, loop][loss_code](
            X, _flat(Y), weight, _flat(theta), np.reshape(slots, (3, -1), copy=False), *rest
        )
    return theta, (int(step), slots), epoch_losses
