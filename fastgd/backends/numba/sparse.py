"""Sparse X (CSR) in the numba backend: the data bundle, the batch gradient and the loop of
a chunk of epochs, beside the dense rows.

A sparse fit's :class:`SparseData` holds X as a :class:`fastgd.sparse.CsrRows` (``indptr``
int64, column indices int32 or int64, float32 or float64 values, read in place). The
loss code is a runtime argument here (one compiled kernel per dtype and index type, not
per loss).

- :func:`_csr_loss_grad`: a batch's objective and gradient. The rows' K predictions,
  losses and clipped, weighted loss derivatives are computed first (in parallel over
  row blocks for a large batch: reading W at the rows' columns is the cost), then the
  derivatives are scattered into the gradient (O(nnz of the batch · K)): in row blocks
  on the threads, each into its own partial (d + 1, K), when the batch is large and the
  partials small enough (:func:`_scatter_blocks`), the partials added in block order;
  the penalty's gradient costs O(d·K). Results do not depend on the thread count.
- :func:`_csr_run_epochs`: every batch of a chunk of epochs with the backend's dense
  optimizer update (:func:`_update_kernel`): O(d·K) per update, as on dense X (every
  optimizer but plain per-sample SGD; measured in ``bench/sparse_text.py``). The l1 term
  with the SGD optimizer: a proximal step after each batch's update, or (batches of one
  sample, with momentum) scikit-learn's truncation of the weights the row stores (its
  sparse rule, as the plain per-sample loop).
  Plain per-sample SGD runs :mod:`.sparse_sgd` instead, in O(nnz of the row) per step.
- The intercept's gradient is multiplied by ``intercept_decay`` (the model's).
- The one-class SVM's intercept slope: ``slope·Σb`` in the objective, ``slope`` on the
  intercepts' gradient (before ``intercept_decay``). Passive-aggressive steps: in the
  per-sample loop only (NotImplementedError otherwise).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import get_num_threads, njit, prange

from ...sparse import CsrRows, csr_rows
from ...specs import OPT_SGD, PA_SCHEDULES
from . import sparse_sgd
from .epochs import _is_vector, _kernel_orders
from .jit import _JIT
from .losses import _row_loss_and_dloss
from .sgd import _average_into, _truncate_weight
from .sparse_sgd import _sparse_sgd_epochs, _sparse_sgd_epochs_matrix
from .updates import _l1_norm, _learning_rate, _opt_args, _prox_l1, _update_kernel

#: Rows per block of the parallel pass over a batch's rows (the predictions and losses).
_BLOCK_ROWS = 2048
#: Batches of at least this many stored values compute their rows' losses in parallel.
_PARALLEL_MIN_NNZ = 1 << 16
#: The gradient's scatter: a row block per ``_SCATTER_BLOCK_NNZ`` stored values, at most
#: ``_MAX_SCATTER_BLOCKS``, their partial sums at most ``_SCATTER_PARTIAL_ENTRIES`` float64.
_SCATTER_BLOCK_NNZ = 1 << 18
_MAX_SCATTER_BLOCKS = 8
_SCATTER_PARTIAL_ENTRIES = 1 << 23


class SparseData(NamedTuple):
    """A sparse fit's training data: X as CSR arrays, the targets and weights dense.

    Attributes
    ----------
    X : CsrRows
        The checked CSR matrix (``indptr`` int64, sorted unique column indices, values
        float32 or float64), read in place.
    Y : ndarray, shape (n, T)
        Targets in X's dtype (see ``fastgd.backends.numpy``).
    weight : ndarray of shape (n,) or None
        Per-sample weights in X's dtype; None means all ones.
    norms : ndarray of float64, shape (2, K)
        scikit-learn's running ``‖w‖²`` and ``‖w‖₁`` of each output (``sklearn_sparse_norms``):
        NaN at :func:`prepare`, those of the weights when a per-sample loop first needs
        them (:func:`_running_norms`), then kept by the loop across the calls of one fit.
    """

    X: CsrRows
    Y: np.ndarray
    weight: np.ndarray | None = None
    norms: np.ndarray | None = None


def _prepare_sparse(X, Y, theta, sample_weight) -> tuple[SparseData, np.ndarray]:
    """:func:`fastgd.backends.numba.prepare` for a sparse X (scipy CSR or CsrRows)."""
    rows = csr_rows(X)
    weight = None
    if sample_weight is not None:
        weight = np.ascontiguousarray(sample_weight, dtype=rows.dtype)
    norms = np.full((2, theta.shape[1]), np.nan)  # computed when first needed
    data = SparseData(rows, np.ascontiguousarray(Y), weight, norms)
    return data, np.ascontiguousarray(theta)


def _running_norms(data: SparseData, V: np.ndarray, wanted: bool) -> np.ndarray:
    """The (2, K) norms the per-sample loop reads and keeps (``SparseData.norms``): when
    ``wanted`` (``sklearn_sparse_norms``) and not known yet, those of the weights ``V``
    (d + 1, K) float64 (:func:`_weight_norms`), the start of scikit-learn's running ones."""
    norms = data.norms
    if norms is None or norms.shape != (2, V.shape[1]):
        norms = np.full((2, V.shape[1]), np.nan)
    if wanted and np.isnan(norms).any():
        _weight_norms(V, norms)
    return norms


@njit(**_JIT)
def _weight_norms(V, out):
    """``out[0, k] = Σ_j V[j, k]²`` and ``out[1, k] = Σ_j |V[j, k]|`` over the d weights
    (not the intercepts' row), in one pass (numpy's three took 1.0 ms at 2^20 x 1 and
    58 ms at 2^20 x 20, this 0.1 and 5.5 ms, the weights in cache)."""
    d = V.shape[0] - 1
    K = V.shape[1]
    if K == 1:  # two scalar sums
        sq = 0.0
        ab = 0.0
        for j in range(d):
            sq += V[j, 0] * V[j, 0]
            ab += abs(V[j, 0])
        out[0, 0] = sq
        out[1, 0] = ab
        return
    out[:] = 0.0
    for j in range(d):
        for k in range(K):
            out[0, k] += V[j, k] * V[j, k]
            out[1, k] += abs(V[j, k])


# ---------------------------------------------------------------- the batch gradient


@njit(**_JIT)
def _row_predict(indptr, indices, values, i, theta, p):
    """``p[k] = x_i · W[:, k] + b[k]`` for sample i (theta (d + 1, K), float64 sums)."""
    d = theta.shape[0] - 1
    K = theta.shape[1]
    if K == 1:  # one output: a scalar sum (no store of p per stored value)
        total = 0.0
        for pos in range(indptr[i], indptr[i + 1]):
            total += np.float64(values[pos]) * theta[indices[pos], 0]
        p[0] = total + theta[d, 0]
        return
    for k in range(K):
        p[k] = 0.0
    for pos in range(indptr[i], indptr[i + 1]):
        j = indices[pos]
        x = np.float64(values[pos])
        for k in range(K):
            p[k] += x * theta[j, k]
    for k in range(K):
        p[k] += theta[d, k]


@njit(**_JIT)
def _rows_dloss(
    indptr, indices, values, Y, weight, theta, order, lo, hi, start, loss_code, loss_param,
    max_dloss, dls, losses,
):
    """The weighted loss (``losses[k - start]``) and clipped, weighted loss derivatives
    (``dls[k - start, :]``) of the samples at positions ``lo..hi-1`` of ``order`` (empty:
    position k is sample k)."""
    K = theta.shape[1]
    p = np.empty(K)
    gathered = order.shape[0] > 0
    weighted = weight.shape[0] > 0
    for k in range(lo, hi):
        i = order[k] if gathered else k
        _row_predict(indptr, indices, values, i, theta, p)
        loss = _row_loss_and_dloss(p, Y, i, loss_code, loss_param, max_dloss)
        s = np.float64(weight[i]) if weighted else 1.0
        losses[k - start] = loss * s
        for c in range(K):
            dls[k - start, c] = p[c] * s


@njit(parallel=True, **_JIT)
def _rows_dloss_parallel(
    indptr, indices, values, Y, weight, theta, order, start, stop, loss_code, loss_param,
    max_dloss, dls, losses,
):
    """:func:`_rows_dloss` over ``start..stop-1`` in row blocks on numba's threads."""
    n_blocks = -(-(stop - start) // _BLOCK_ROWS)
    for b in prange(n_blocks):
        lo = start + b * _BLOCK_ROWS
        hi = min(lo + _BLOCK_ROWS, stop)
        _rows_dloss(
            indptr, indices, values, Y, weight, theta, order, lo, hi, start, loss_code,
            loss_param, max_dloss, dls, losses,
        )


@njit(**_JIT)
def _scatter_blocks(nnz, d, K):
    """Row blocks the gradient's scatter is cut into: a function of the batch's stored
    values and the model's size only (the results never depend on the thread count)."""
    by_work = nnz // _SCATTER_BLOCK_NNZ
    by_memory = _SCATTER_PARTIAL_ENTRIES // ((d + 1) * K)
    return max(1, min(_MAX_SCATTER_BLOCKS, by_work, by_memory))


@njit(**_JIT)
def _scatter_rows(indptr, indices, values, order, start, lo, hi, dls, acc):
    """``acc[:d] += dl_k·x_k`` and ``acc[d] += dl_k`` for the positions ``lo..hi-1``."""
    d = acc.shape[0] - 1
    K = acc.shape[1]
    gathered = order.shape[0] > 0
    for k in range(lo, hi):
        i = order[k] if gathered else k
        if K == 1:  # one output
            dl = dls[k - start, 0]
            if dl != 0.0:  # a met margin adds nothing
                for pos in range(indptr[i], indptr[i + 1]):
                    acc[indices[pos], 0] += dl * np.float64(values[pos])
            acc[d, 0] += dl
            continue
        for pos in range(indptr[i], indptr[i + 1]):
            j = indices[pos]
            x = np.float64(values[pos])
            for c in range(K):
                acc[j, c] += dls[k - start, c] * x
        for c in range(K):
            acc[d, c] += dls[k - start, c]


@njit(parallel=True, **_JIT)
def _scatter_parallel(indptr, indices, values, order, start, stop, dls, partials):
    """:func:`_scatter_rows` in ``partials.shape[0]`` row blocks on numba's threads, each
    into its own partial sum."""
    n_blocks = partials.shape[0]
    per_block = -(-(stop - start) // n_blocks)
    for b in prange(n_blocks):
        lo = start + b * per_block
        hi = min(lo + per_block, stop)
        _scatter_rows(indptr, indices, values, order, start, lo, hi, dls, partials[b])


@njit(**_JIT)
def _csr_loss_grad(
    indptr, indices, values, Y, weight, theta, order, start, stop, loss_code, loss_param,
    max_dloss, l2, l1, fit_intercept, intercept_decay, grad, dls, losses, partials, parallel,
    slope,
):
    """The objective of the batch ``order[start:stop]`` (mean weighted loss + penalty) and
    its gradient, written into ``grad`` (d + 1, K) in theta's dtype; returns the objective.

    ``dls`` (>= m, K) and ``losses`` (>= m,) are float64 scratch; ``partials`` (B, d + 1,
    K) float64 zeros with B >= :func:`_scatter_blocks` of the batch, the scatter's sums,
    left zero again (a scratch kept across batches: no fresh pages per update). The
    gradient is
    ``(1/m)·Σ_i dl_i·x_i + l2·W + l1·sign(W)`` and ``intercept_decay·((1/m)·Σ_i dl_i +
    slope)`` (0 without an intercept), with the sums in float64 in the batch's order; the
    objective adds ``slope·Σ b`` (the one-class SVM's intercept slope).
    """
    d = theta.shape[0] - 1
    K = theta.shape[1]
    m = stop - start
    gathered = order.shape[0] > 0
    nnz = 0
    for k in range(start, stop):
        i = order[k] if gathered else k
        nnz += indptr[i + 1] - indptr[i]
    if parallel and nnz >= _PARALLEL_MIN_NNZ and m > _BLOCK_ROWS:
        _rows_dloss_parallel(
            indptr, indices, values, Y, weight, theta, order, start, stop, loss_code,
            loss_param, max_dloss, dls, losses,
        )
    else:
        _rows_dloss(
            indptr, indices, values, Y, weight, theta, order, start, stop, start, loss_code,
            loss_param, max_dloss, dls, losses,
        )
    total = 0.0
    for k in range(start, stop):
        total += losses[k - start]
    n_blocks = _scatter_blocks(nnz, d, K)
    if n_blocks == 1:
        _scatter_rows(indptr, indices, values, order, start, start, stop, dls, partials[0])
    else:
        _scatter_parallel(indptr, indices, values, order, start, stop, dls, partials[:n_blocks])
    ww = 0.0
    aw = 0.0
    bs = 0.0
    for j in range(d + 1):
        for c in range(K):
            a = partials[0, j, c]
            partials[0, j, c] = 0.0
            for b in range(1, n_blocks):  # in block order: the same bits on any thread count
                a += partials[b, j, c]
                partials[b, j, c] = 0.0
            if j == d:
                grad[d, c] = intercept_decay * (a / m + slope) if fit_intercept else 0.0
                bs += np.float64(theta[d, c])
                continue
            w = np.float64(theta[j, c])
            ww += w * w
            aw += abs(w)
            sign = 1.0 if w > 0.0 else (-1.0 if w < 0.0 else 0.0)
            grad[j, c] = a / m + l2 * w + l1 * sign
    return total / m + 0.5 * l2 * ww + l1 * aw + slope * bs


def _csr_loss_grad_call(data: SparseData, theta: np.ndarray, model, parallel: bool):
    """The batch objective of ``model`` over every row of ``data`` and its gradient."""
    rows = data.X
    n = rows.shape[0]
    grad = np.empty_like(theta)
    weight = np.empty(0, rows.dtype) if data.weight is None else data.weight
    K = theta.shape[1]
    loss = _csr_loss_grad(
        rows.indptr, rows.indices, rows.values, data.Y, weight, theta,
        np.empty(0, np.int64), 0, n, int(model.loss_code), float(model.loss_param),
        float(model.max_dloss), float(model.l2), float(model.l1), bool(model.fit_intercept),
        float(model.intercept_decay), grad, np.empty((n, K)), np.empty(n),
        _partials(rows.values.shape[0], theta), parallel, float(model.intercept_slope),
    )  # fmt: skip
    return float(loss), grad


def _partials(nnz: int, theta: np.ndarray) -> np.ndarray:
    """Zeroed scatter scratch for batches of at most ``nnz`` stored values."""
    d, K = theta.shape[0] - 1, theta.shape[1]
    return np.zeros((_scatter_blocks(nnz, d, K), d + 1, K))


# ------------------------------------------------------------ the loop over batches


@njit(**_JIT)
def _truncate_row_l1(w, q, indices, lo, hi, u) -> None:
    """``sgd._truncate_l1``'s rule on the weights ``w[indices[lo:hi]]`` only (the features
    a sparse row stores: scikit-learn's sparse rule), in place, float64 arithmetic."""
    for pos in range(lo, hi):
        _truncate_weight(w, q, indices[pos], u)


@njit(**_JIT)
def _csr_run_epochs(
    indptr, indices, values, Y, weight, theta, slots, step, orders, batch_size, loss_code,
    loss_param, max_dloss, l2, l1, fit_intercept, intercept_decay, code, params,
    schedule_code, schedule_params, epoch_losses, parallel, average, partials, slope,
):
    """Every batch of ``epoch_losses.shape[0]`` epochs on CSR rows with the optimizer
    ``code``; returns the step count. Epoch e walks ``orders[e % len(orders)]`` (a full
    batch reads the rows in order). theta (d + 1, K) and slots (3, d + 1, K) are
    updated in place.

    The l1 term with the SGD optimizer is left out of the gradient: a proximal step
    after each update of a batch of several samples, scikit-learn's truncation of the
    weights the sample's row stores (each output with its ``q`` in ``slots[1]``, ``u`` at
    the intercepts' row) after each update of one sample. ``average`` > 0 keeps the
    running average of the parameters in ``slots[2]`` after each update t >= ``average``
    (before a truncation).
    """
    n = indptr.shape[0] - 1
    d = theta.shape[0] - 1
    K = theta.shape[1]
    size = theta.size
    grad = np.empty_like(theta)
    flat_theta = theta.reshape(size)
    flat_grad = grad.reshape(size)
    flat_slots = slots.reshape((3, size))
    n_decay = size - K
    m_max = min(batch_size, n)
    dls = np.empty((m_max, K))
    losses = np.empty(m_max)
    l1_rule = 0 if (code != 0 or l1 == 0.0) else (2 if batch_size == 1 else 1)
    grad_l1 = l1 if l1_rule == 0 else 0.0
    in_order = np.empty(0, dtype=np.int64)
    q = np.empty((K, d + 1))  # the truncation's q per output, u at d (float64)
    u = 0.0
    if l1_rule == 2:
        for j in range(d + 1):
            for c in range(K):
                q[c, j] = slots[1, j, c]
        u = q[0, d]
    for e in range(epoch_losses.shape[0]):
        order = in_order if batch_size >= n else orders[e % orders.shape[0]]
        total = 0.0
        loss = 0.0
        for start in range(0, n, batch_size):
            stop = min(start + batch_size, n)
            loss = _csr_loss_grad(
                indptr, indices, values, Y, weight, theta, order, start, stop, loss_code,
                loss_param, max_dloss, l2, grad_l1, fit_intercept, intercept_decay, grad, dls,
                losses, partials, parallel, slope,
            )
            if l1_rule != 0:
                loss += l1 * _l1_norm(flat_theta, n_decay)
            step += 1
            _update_kernel(
                flat_theta, flat_grad, flat_slots, step, n_decay, code, params, schedule_code,
                schedule_params,
            )
            lr = _learning_rate(schedule_code, schedule_params, step)
            if l1_rule == 1:
                _prox_l1(flat_theta, n_decay, lr * l1)
            if 0 < average <= step:
                _average_into(flat_slots[2], flat_theta, step - average + 1)
            if l1_rule == 2:  # the features the row stores (scikit-learn's sparse rule)
                u += l1 * lr
                i = order[start] if order.shape[0] > 0 else start
                for c in range(K):
                    _truncate_row_l1(theta[:, c], q[c], indices, indptr[i], indptr[i + 1], u)
            total += loss * (stop - start)
        epoch_losses[e] = total / n if batch_size < n else loss
    if l1_rule == 2:
        for j in range(d):
            for c in range(K):
                slots[1, j, c] = q[c, j]
        for c in range(K):
            slots[1, d, c] = u
    return step


# ----------------------------------------------------------------- the entry points


def _check_supported(opt, per_sample: bool) -> None:
    """Raise NotImplementedError for what the sparse kernels do not carry: passive-aggressive
    steps outside the per-sample loop."""
    if not per_sample and opt.schedule_code in PA_SCHEDULES:
        raise NotImplementedError(
            "passive-aggressive steps (pa1/pa2) on a sparse X are supported by the numba "
            "backend in its per-sample loop only (batch_size=1)"
        )


def _run_sparse_epochs(data: SparseData, theta, state, orders, batch_size, model, opt):
    """:func:`fastgd.backends.numba.run_epochs` on a :class:`SparseData`: plain per-sample
    SGD in :mod:`.sparse_sgd`'s loop, every other case in :func:`_csr_run_epochs`."""
    rows = data.X
    n = rows.shape[0]
    step, slots = state
    epoch_losses = np.empty(orders.shape[0], dtype=np.float64)
    weight = np.empty(0, rows.dtype) if data.weight is None else data.weight
    code, params, schedule_code, schedule_params = _opt_args(opt)
    # n = 1 is a full batch, but not with l1 or pa: their steps are per-sample rules
    one_row_rule = model.l1 != 0.0 or opt.schedule_code in PA_SCHEDULES
    per_sample = batch_size == 1 and code == OPT_SGD and params[0] == 0.0 and (
        n > 1 or one_row_rule
    )
    _check_supported(opt, per_sample)
    csr = (rows.indptr, rows.indices, rows.values, data.Y, weight, theta, slots, int(step))
    model_numbers = (
        int(model.loss_code), float(model.loss_param), float(model.max_dloss), float(model.l2),
        float(model.l1), bool(model.fit_intercept), float(model.intercept_decay),
    )  # fmt: skip (the kernels' order: the loss, its clip, the penalty, the intercept)
    if per_sample:
        kernel = _sparse_sgd_epochs if _is_vector(model.loss_code, theta) else (
            _sparse_sgd_epochs_matrix
        )
        V = theta if theta.dtype == np.float64 else theta.astype(np.float64)
        step = kernel(
            *csr[:5], V, *csr[6:], _kernel_orders(orders, False), *model_numbers, schedule_code,
            schedule_params, epoch_losses, int(opt.average), sparse_sgd._SPARSE_PREFETCH_ROWS,
            bool(model.sklearn_sparse_norms),
            _running_norms(data, V, bool(model.sklearn_sparse_norms)),
            float(model.intercept_slope),
        )  # fmt: skip
        if V is not theta:
            theta[...] = V
    else:
        step = _csr_run_epochs(
            *csr, _kernel_orders(orders, batch_size >= n), int(batch_size), *model_numbers,
            code, params, schedule_code, schedule_params, epoch_losses,
            get_num_threads() > 1, int(opt.average), _partials(rows.values.shape[0], theta),
            float(model.intercept_slope),
        )  # fmt: skip
    return theta, (int(step), slots), epoch_losses
