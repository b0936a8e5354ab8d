"""Sparse X (CSR) in the jax backend: the same program on a CPU and a GPU.

Design: the CSR arrays go to the device as they are (``indptr`` int64, column indices
int32 or int64, values float32 or float64) with the longest row's length ``L`` (static).
A batch of m rows is gathered into a padded (m, L) block: positions
``indptr[i] + 0..L-1``, masked past each row's end (the masked values are 0, their
column 0), so every batch has a static shape whatever its rows hold. The predictions are
``Σ_l values·W[columns]`` and ``jax.value_and_grad`` of the batch's loss sum scatters
the gradient back (``W[columns]``'s transpose is a scatter-add). A full batch is walked in
blocks of ``_FULL_BATCH_BLOCK_ENTRIES / L`` rows (a ``lax.fori_loop``, the last block
masked), so the temporaries stay small.

Memory: the CSR itself on the device (nnz·(itemsize + index size) + 8·(n + 1) bytes;
on a CPU device the caller's index and value arrays are read in place, from their first
64-byte boundary on, the few entries before it copied: see :func:`_aligned_split`), plus
per batch (or block) temporaries of m·L·(index size + itemsize·(1 + K)) bytes. Rows
much longer than the mean make every batch pay for the longest one.

The loop over a chunk of epochs (:func:`_sparse_epochs`) mirrors the dense program's
(``epochs._epochs``): the optimizer's step, the l1 term with the SGD optimizer
(scikit-learn's truncation of the weights the row stores for batches of one sample, its
sparse rule; a proximal step otherwise), averaging, the intercepts' gradient (with the
one-class SVM's slope) multiplied by ``intercept_decay``, passive-aggressive steps on one
row at a time (the row made dense, O(d); one sample too: a pa fit is never a full batch).
With ``sklearn_sparse_norms`` per-sample plain SGD reports scikit-learn's objective (its
running norms, carried in the program and kept in :class:`SparseData` between calls).
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from ...sparse import CsrRows, csr_rows, keeps_running_norms, kept_norms, starting_norms
from ...specs import PA_SCHEDULES, SCHED_PA1
from .batches import _join, _model_hyper, _model_static, _one_column, _split
from .devices import _resolve_device
from .epochs import _average_step
from .losses import _clipped_sample_losses, _penalty, _sample_losses
from .runtime import _x64
from .staging import _CPU_ALIGNMENT, _cpu_aligned
from .updates import (
    _l1_rule,
    _l1_step,
    _learning_rate,
    _opt_hyper,
    _opt_static,
    _pa_step,
    _update_step,
)

#: Padded entries (rows x L) per block of a full batch.
_FULL_BATCH_BLOCK_ENTRIES = 1 << 18


class SparseData:
    """A sparse fit's data on a jax device (a pytree: the arrays are its leaves, ``d``,
    ``longest`` and the split points its static part).

    The column indices and the values each travel as two pieces, ``head`` (the first
    ``k`` entries, a small copy) and ``tail`` (the rest): on a CPU device ``k`` is chosen
    so that the tail starts on a 64-byte boundary, where jax uses the caller's buffer in
    place instead of copying it (see :func:`_aligned_split`); elsewhere ``k`` is 0.

    Attributes
    ----------
    indptr : jax.Array of int64, shape (n + 1,)
    indices, values : (head, tail) pairs of jax.Array
    Y : jax.Array, shape (n, T), or (n,) inside the programs for one column
    weight : jax.Array of shape (n,) or None
    n_features : int
    longest : int
        The most values any row stores (at least 1): the padded width L.
    splits : (int, int)
        ``k`` of the indices and of the values.
    norms : ndarray of float64, shape (2, K), or None
        scikit-learn's running norms of the weights (``LoweredModel.sklearn_sparse_norms``),
        on the host: those of the starting weights at :func:`prepare`, then replaced by
        each :func:`run_epochs` call of the fit (not a leaf: the programs take them as an
        argument).
    """

    def __init__(self, indptr, indices, values, Y, weight, n_features, longest, splits,
                 norms=None):  # fmt: skip
        self.indptr, self.indices, self.values = indptr, indices, values
        self.Y, self.weight = Y, weight
        self.n_features, self.longest, self.splits = int(n_features), int(longest), splits
        self.norms = norms

    @property
    def X(self) -> CsrRows:
        """The rows as one :class:`CsrRows` (joined pieces: a copy, for ``check_grad``)."""
        indices, values = (jnp.concatenate(pair) for pair in (self.indices, self.values))
        return CsrRows(self.indptr, indices, values, self.n_features)

    def with_targets(self, Y) -> SparseData:
        """The same rows with other targets."""
        return SparseData(self.indptr, self.indices, self.values, Y, self.weight,
                          self.n_features, self.longest, self.splits)  # fmt: skip


jax.tree_util.register_pytree_node(
    SparseData,
    lambda s: ((s.indptr, s.indices, s.values, s.Y, s.weight),
               (s.n_features, s.longest, s.splits)),  # fmt: skip
    lambda aux, c: SparseData(*c, *aux),
)


def _aligned_split(a: np.ndarray, on_cpu: bool) -> tuple[np.ndarray, np.ndarray, int]:
    """``(head, tail, k)`` with ``a = head ⧺ tail`` and ``head = a[:k]`` (a copy).

    On a CPU device, ``tail`` is a view of ``a`` starting on a 64-byte boundary (jax then
    reads it in place: no copy of the caller's CSR), when ``a``'s address allows it;
    otherwise ``tail`` is an aligned copy of all of ``a`` (or ``a`` itself, off the CPU)
    and k = 0.
    """
    if not on_cpu:
        return a[:0].copy(), a, 0
    offset = a.ctypes.data % _CPU_ALIGNMENT
    if offset == 0:
        return a[:0].copy(), a, 0
    k = (_CPU_ALIGNMENT - offset) // a.itemsize
    if offset % a.itemsize or a.shape[0] <= k:
        return a[:0].copy(), _cpu_aligned(a), 0
    return a[:k].copy(), a[k:], k


def _prepare_sparse(X, Y, theta, device, sample_weight):
    """:func:`fastgd.backends.jax.prepare` for a sparse X (scipy CSR or CsrRows)."""
    rows = csr_rows(X)
    indptr = np.asarray(rows.indptr)
    longest = max(1, int(np.max(np.diff(indptr))))
    if sample_weight is not None and bool(np.all(np.asarray(sample_weight) == 1)):
        sample_weight = None
    target = _resolve_device(device)
    on_cpu = target.platform == "cpu"
    head_i, tail_i, k_i = _aligned_split(np.asarray(rows.indices), on_cpu)
    head_v, tail_v, k_v = _aligned_split(np.asarray(rows.values), on_cpu)
    small = [indptr, np.asarray(Y), None if sample_weight is None else np.asarray(sample_weight)]
    if on_cpu:
        small = [None if a is None else _cpu_aligned(a) for a in small]
    with _x64():
        placed, theta = jax.device_put(
            ((small, (head_i, tail_i), (head_v, tail_v)), theta), target
        )
    (indptr, Y, weight), indices, values = placed
    data = SparseData(indptr, indices, values, Y, weight, rows.n_features, longest, (k_i, k_v),
                      starting_norms(theta))  # fmt: skip
    return data, theta


def _take(pair, k: int, pos: jax.Array) -> jax.Array:
    """Entries ``pos`` of the array ``head ⧺ tail`` (``pos`` in bounds)."""
    head, tail = pair
    if k == 0:
        return tail[pos]
    return jnp.where(pos < k, head[jnp.minimum(pos, k - 1)], tail[jnp.maximum(pos - k, 0)])


# ------------------------------------------------------------------ a batch's gradient


def _gather(data: SparseData, rows: jax.Array, valid: jax.Array):
    """The padded block of ``rows`` (m,): columns (m, L), values (m, L) (0 where masked or
    for an invalid row), targets (m, T) and weights (m,) or None."""
    width = jnp.arange(data.longest)
    start = data.indptr[rows]
    length = jnp.where(valid, data.indptr[rows + 1] - start, 0)
    inside = width[None, :] < length[:, None]
    pos = jnp.where(inside, start[:, None] + width[None, :], 0)
    cols = jnp.where(inside, _take(data.indices, data.splits[0], pos), 0)
    vals = jnp.where(inside, _take(data.values, data.splits[1], pos), 0)
    weight = None if data.weight is None else jnp.where(valid, data.weight[rows], 0)
    return cols, vals, data.Y[rows], weight, valid


def _loss_sum(params, block, model_hyper, static):
    """Σ over the block's valid rows of the (weighted) loss; also in float64."""
    W, b = params
    if not static.fit_intercept:
        b = lax.stop_gradient(b)
    cols, vals, Y, weight, valid = block
    P = jnp.einsum("ml,ml...->m...", vals.astype(W.dtype), W[cols]) + b
    eps = model_hyper[0].astype(W.dtype)
    if static.clipped:
        losses = _clipped_sample_losses(static.loss_code, P, Y, eps, model_hyper[3].astype(W.dtype))
    else:
        losses = _sample_losses(P, Y, static.loss_code, eps)
    losses = jnp.where(valid, losses, 0)
    if weight is not None:
        losses = losses * weight
    return jnp.sum(losses), jnp.sum(losses.astype(jnp.float64))


_loss_sum_grad = jax.value_and_grad(_loss_sum, has_aux=True)


def _batch_loss_grad(params, data, rows, valid, m, model_hyper, static, decay, l1_in_grad):
    """The objective of a batch (mean weighted loss + penalty, float64) and its gradient;
    the intercepts' gradient times ``decay``. ``m`` is the batch's real size."""
    (_, total64), (gW, gb) = _loss_sum_grad(params, _gather(data, rows, valid), model_hyper, static)
    return _finish(params, total64, gW, gb, m, model_hyper, static, decay, l1_in_grad)


def _finish(params, total64, gW, gb, m, model_hyper, static, decay, l1_in_grad):
    W = params[0]
    if static.slope:  # the one-class SVM's nu·b: its slope on the intercepts, then decay
        gb = gb / m + model_hyper[4].astype(gb.dtype)
    else:
        gb = gb / m
    gW, gb = gW / m, gb * decay.astype(gb.dtype)
    report = total64 / m + _slope_term(params, model_hyper, static)
    if static.penalized:
        l2 = model_hyper[1].astype(W.dtype)
        l1 = model_hyper[2].astype(W.dtype) if l1_in_grad else jnp.zeros((), W.dtype)
        penalty, penalty_grad = jax.value_and_grad(_penalty)(W, l2, l1)
        gW = gW + penalty_grad
        report = report + 0.5 * model_hyper[1] * jnp.vdot(W, W).astype(jnp.float64)
        report = report + model_hyper[2] * jnp.sum(jnp.abs(W)).astype(jnp.float64)
    return report, (gW, gb)


def _full_batch_loss_grad(params, data, n, model_hyper, static, decay, l1_in_grad):
    """:func:`_batch_loss_grad` over every row, in blocks (see the module docstring)."""
    block = max(1, min(n, _FULL_BATCH_BLOCK_ENTRIES // data.longest))
    n_blocks = -(-n // block)

    def one(i, acc):
        rows = i * block + jnp.arange(block)
        valid = rows < n
        rows = jnp.where(valid, rows, 0)
        (_, total64), g = _loss_sum_grad(params, _gather(data, rows, valid), model_hyper, static)
        return acc[0] + total64, jax.tree.map(jnp.add, acc[1], g)

    acc = (jnp.zeros((), jnp.float64), jax.tree.map(jnp.zeros_like, params))
    total64, (gW, gb) = lax.fori_loop(0, n_blocks, one, acc)
    return _finish(params, total64, gW, gb, n, model_hyper, static, decay, l1_in_grad)


# ---------------------------------------------------------------- the loop of epochs


def _row_columns(data: SparseData, rows: jax.Array) -> jax.Array:
    """The columns (L,) of the one-row batch ``rows``, past the row's end ``d`` (out of
    range: gathers there read 0, scatters there are dropped)."""
    width = jnp.arange(data.longest)
    start = data.indptr[rows[0]]
    inside = width < data.indptr[rows[0] + 1] - start
    pos = jnp.where(inside, start + width, 0)
    return jnp.where(inside, _take(data.indices, data.splits[0], pos), data.n_features)


def _truncate_row(W, q, u, l1, lr, cols):
    """scikit-learn's cumulative l1 truncation (``updates._l1_step``'s ``"truncated"``) of
    the weights at the row's columns ``cols`` only (its sparse rule); returns W, q, u."""
    u = u + l1 * lr
    z = W.at[cols].get(mode="fill", fill_value=0).astype(jnp.float64)
    q64 = q.at[cols].get(mode="fill", fill_value=0).astype(jnp.float64)
    w = jnp.where(z > 0.0, jnp.maximum(0.0, z - (u + q64)), z)
    w = jnp.where(z < 0.0, jnp.minimum(0.0, z + (u - q64)), w).astype(W.dtype)
    q_new = (q64 + (w.astype(jnp.float64) - z)).astype(q.dtype)
    return W.at[cols].set(w, mode="drop"), q.at[cols].set(q_new, mode="drop"), u


def _sklearn_norms(norms, W, cols, moved, shrink):
    """scikit-learn's ``WeightVector`` norms (2, K) after a step on one row: scaled by
    the l2 shrink (``shrink²``, ``|shrink|``), then, for the outputs that ``moved`` (K,),
    the norms of the weights at the row's columns ``cols``."""
    row = W.at[cols].get(mode="fill", fill_value=0).astype(jnp.float64)
    row = row.reshape(row.shape[0], -1)
    scaled = norms * jnp.stack([shrink * shrink, jnp.abs(shrink)])[:, None]
    fresh = jnp.stack([jnp.sum(row * row, axis=0), jnp.sum(jnp.abs(row), axis=0)])
    return jnp.where(moved[None, :], fresh, scaled)


def _sample_loss_grad(params, data, rows, m, model_hyper, static, decay, l1_in_grad, norms):
    """One row's objective with scikit-learn's penalty term (``norms``), its gradient
    (as :func:`_batch_loss_grad`'s) and which outputs' loss derivative is nonzero (K,)."""
    block = _gather(data, rows, jnp.ones(1, dtype=bool))
    every = static._replace(fit_intercept=True)  # the intercepts' gradient: the dlosses
    (_, total64), (gW, gb) = _loss_sum_grad(params, block, model_hyper, every)
    moved = jnp.reshape(gb, (-1,)) != 0
    if not static.fit_intercept:
        gb = jnp.zeros_like(gb)
    _, grad = _finish(params, total64, gW, gb, m, model_hyper, static, decay, l1_in_grad)
    report = total64 / m + _slope_term(params, model_hyper, static)
    report = report + 0.5 * model_hyper[1] * jnp.sum(norms[0])
    return report + model_hyper[2] * jnp.sum(norms[1]), grad, moved


def _slope_term(params, model_hyper, static):
    """The objective's ``slope·Σ b`` (the one-class SVM's), float64; 0 without a slope."""
    if not static.slope:
        return 0.0
    return model_hyper[4] * jnp.sum(params[1].astype(jnp.float64))


def _sparse_pa_step(params, data, rows, model_hyper, static, opt_hyper, pa1, decay):
    """``updates._pa_step`` on the one-row batch ``rows`` (the row made dense, O(d)), the
    intercepts' step times ``decay`` (scikit-learn's sparse intercept decay)."""
    cols, vals, Y, weight, _ = _gather(data, rows, jnp.ones(1, dtype=bool))
    x = jnp.zeros((1, data.n_features), vals.dtype).at[0, cols[0]].add(vals[0])
    (W, b), report = _pa_step(params, (x, Y, weight), model_hyper, static, opt_hyper, pa1)
    b_old = params[1].astype(jnp.float64)
    b = (b_old + (b.astype(jnp.float64) - b_old) * decay).astype(params[1].dtype)
    return (W, b), report


@partial(jax.jit, static_argnames=("static", "opt", "batch_size", "track", "full"))
def _sparse_epochs(data, theta, step, slots, orders, n_epochs, model_hyper, opt_hyper, decay,
                   norms, *, static, opt, batch_size, track, full):  # fmt: skip
    """``n_epochs`` (traced) epochs on sparse rows; see :func:`run_epochs`. ``track``:
    scikit-learn's objective on sparse rows (per-sample plain SGD), its running norms
    ``norms`` (2, K) carried and returned. ``full``: one full-batch step per epoch (else
    batches of ``batch_size`` rows in the epoch's order)."""
    n = data.Y.shape[0]
    one = _one_column(theta, static)  # one column: vectors, as the dense programs
    data = data.with_targets(data.Y[:, 0] if one else data.Y)
    rule = _l1_rule(opt, batch_size, static.l1)

    pa = opt.schedule_code in PA_SCHEDULES

    def train_on(carry, rows, valid, m):
        params, step, slots, (total, u, norms) = carry
        if rows is None:
            report, grad = _full_batch_loss_grad(params, data, n, model_hyper, static, decay,
                                                 rule is None)  # fmt: skip
        elif track:
            report, grad, moved = _sample_loss_grad(params, data, rows, m, model_hyper, static,
                                                    decay, rule is None, norms)  # fmt: skip
        elif not pa:
            report, grad = _batch_loss_grad(params, data, rows, valid, m, model_hyper, static,
                                            decay, rule is None)  # fmt: skip
        if pa:  # batches of one sample (the plan refuses others), never a full batch
            params, report = _sparse_pa_step(params, data, rows, model_hyper, static, opt_hyper,
                                             opt.schedule_code == SCHED_PA1, decay)  # fmt: skip
            step, (s0, s1) = step + 1, slots[:2]
        else:
            params, step, (s0, s1) = _update_step(params, grad, step, slots[:2], opt_hyper, opt)
        avg = slots[2]
        lr = _learning_rate(opt.schedule_code, opt_hyper[4:7], step)
        cols = None if rows is None or batch_size != 1 else _row_columns(data, rows)
        if track and cols is not None:
            norms = _sklearn_norms(norms, params[0], cols, moved, 1.0 - lr * model_hyper[1])
        if rule == "proximal":
            W, q, u = _l1_step(rule, params[0], s1[0], u, model_hyper[2], lr)
            params, s1 = (W, params[1]), (q, s1[1])
        if opt.average:
            avg = _average_step(avg, params, step, opt.average)
        if rule == "truncated" and cols is not None:  # the row's features (the sparse rule)
            W, q, u = _truncate_row(params[0], s1[0], u, model_hyper[2], lr, cols)
            params, s1 = (W, params[1]), (q, s1[1])
        elif rule == "truncated":
            W, q, u = _l1_step(rule, params[0], s1[0], u, model_hyper[2], lr)
            params, s1 = (W, params[1]), (q, s1[1])
        return (params, step, (s0, s1, avg), (total + report * m, u, norms)), report

    n_full, rest = divmod(n, batch_size)

    def epoch(e, carry):
        params, step, slots, u, norms, losses = carry
        inner = (params, step, slots, (jnp.zeros((), jnp.float64), u, norms))
        if full:
            inner, epoch_loss = train_on(inner, None, None, n)
        else:
            order = orders[e]
            batches = order[: n_full * batch_size].reshape(n_full, batch_size)
            every = jnp.ones(batch_size, dtype=bool)
            inner, _ = lax.scan(lambda c, idx: train_on(c, idx, every, batch_size), inner,
                                batches)  # fmt: skip
            if rest:
                last = order[n_full * batch_size :]
                inner, _ = train_on(inner, last, jnp.ones(rest, dtype=bool), rest)
            epoch_loss = inner[3][0] / n
        params, step, slots, (_, u, norms) = inner
        return params, step, slots, u, norms, losses.at[e].set(epoch_loss)

    s1_w, s1_b = _split(slots[1], one)
    u = jnp.ravel(s1_b)[0].astype(jnp.float64)
    moments = (_split(slots[0], one), (s1_w, s1_b), _split(slots[2], one))
    losses = jnp.zeros(orders.shape[0], jnp.float64)
    carry = (_split(theta, one), step, moments, u, norms, losses)
    params, step, (s0, s1, avg), u, norms, losses = lax.fori_loop(0, n_epochs, epoch, carry)
    if rule == "truncated":
        s1 = (s1[0], jnp.full_like(s1[1], u))
    return _join(params), step, jnp.stack([_join(s0), _join(s1), _join(avg)]), losses, norms


def _run_sparse_epochs(data, theta, state, orders, batch_size, model, opt):
    """:func:`fastgd.backends.jax.run_epochs` on a :class:`SparseData`."""
    n_epochs, n = orders.shape
    step, slots = state
    batch_size = min(int(batch_size), n)
    full = batch_size >= n and opt.schedule_code not in PA_SCHEDULES  # pa: row by row
    padded = 1 << (n_epochs - 1).bit_length()
    if full:
        placed_orders = np.zeros((padded, 0), dtype=np.int32)
    else:
        placed_orders = np.zeros((padded, n), dtype=np.int32 if n < 2**31 else np.int64)
        placed_orders[:n_epochs] = orders
    # One row runs as the full batch program (``full``), whose exact norms of that one
    # step are what scikit-learn's running ones come to from the same weights.
    track = n > 1 and keeps_running_norms(model, opt, batch_size)
    norms = kept_norms(data.norms, theta)
    with _x64():
        theta, step, slots, losses, norms = _sparse_epochs(
            data, theta, jnp.asarray(step, dtype=jnp.int64), slots, placed_orders,
            np.int64(n_epochs), _model_hyper(model), _opt_hyper(opt),
            np.float64(model.intercept_decay), np.asarray(norms, dtype=np.float64),
            static=_model_static(model), opt=_opt_static(opt), batch_size=batch_size,
            track=track, full=full,
        )  # fmt: skip
        epoch_losses = np.asarray(losses, dtype=np.float64)[:n_epochs]
        if track:
            data.norms = np.asarray(norms, dtype=np.float64)
    return theta, (step, slots), epoch_losses


@partial(jax.jit, static_argnames=("static",))
def _sparse_loss_grad_program(data, theta, model_hyper, decay, *, static):
    one = _one_column(theta, static)
    data = data.with_targets(data.Y[:, 0] if one else data.Y)
    params = _split(theta, one)
    report, grad = _full_batch_loss_grad(params, data, data.Y.shape[0], model_hyper, static,
                                         decay, True)  # fmt: skip
    return report, _join(grad)


def _sparse_loss_grad(data, theta, model):
    """:func:`fastgd.backends.jax.loss_grad` on a :class:`SparseData`."""
    with _x64():
        return _sparse_loss_grad_program(
            data, theta, _model_hyper(model), np.float64(model.intercept_decay),
            static=_model_static(model),
        )
