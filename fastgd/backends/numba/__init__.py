"""The numba backend: compiled loops, and a training loop compiled end to end.

The same public names and signatures as ``fastgd.backends.numpy`` (read that module first; this
one mirrors it name for name):

- :func:`prepare` — the data stay in host memory, C-contiguous, as one :class:`Data`;
- :func:`loss_grad` — mean (weighted) loss plus penalty and its gradient over a batch;
- :func:`init_state` — the optimizer's state ``(step, slots)``;
- :func:`update` — one optimizer step, in place;
- :func:`run_epochs` — every batch of a chunk of epochs in **one** compiled call.

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
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from llvmlite import ir
from numba import get_num_threads, njit, prange, types
from numba.core import cgutils
from numba.extending import intrinsic

from ...specs import (
    LOSS_CODES,
    LOSS_EPSILON_INSENSITIVE,
    LOSS_HINGE,
    LOSS_HUBER,
    LOSS_LOGISTIC,
    LOSS_MODIFIED_HUBER,
    LOSS_MULTINOMIAL,
    LOSS_SQUARED_EPSILON_INSENSITIVE,
    LOSS_SQUARED_HINGE,
    OPT_ADAGRAD,
    OPT_ADAM,
    OPT_ADAMW,
    OPT_RMSPROP,
    OPT_SGD,
    SCHED_CONSTANT,
    SCHED_COSINE,
    SCHED_EXPONENTIAL,
    SCHED_INVSCALING,
    SCHED_OPTIMAL,
    LoweredModel,
    LoweredOptimizer,
)

__all__ = ["NAME", "Data", "prepare", "loss_grad", "init_state", "update", "run_epochs"]

NAME = "numba"

State = tuple[int, np.ndarray]

#: fastmath flags that keep ``isnan``/``isinf`` and NaN propagation intact.
FASTMATH = {"reassoc", "contract", "arcp", "nsz"}
_JIT = {"cache": True, "nogil": True, "fastmath": FASTMATH}

#: A batch is cut into ``clip(m // _BLOCK_ROWS, 1, max_blocks)`` row blocks, where
#: ``max_blocks`` is ``_MAX_BLOCKS`` unless the partial sums would pass ``_PARTIAL_ENTRIES``.
_BLOCK_ROWS = 512
_MAX_BLOCKS = 64
_PARTIAL_ENTRIES = 1 << 22
#: Batches with at least this many entries (rows x features x outputs) run their blocks in
#: parallel: on 2 cores the parallel loop wins from about 16k-32k entries (a few
#: microseconds of thread wake-up against 1.6-2x the throughput), serial wins below.
_PARALLEL_MIN_WORK = 1 << 15
#: How far ahead (in bytes of X, at least one row) rows are prefetched, into L2 (see
#: :func:`_prefetch`). Measured on 2 cores (Adam, batch 64, 200,000 x 100 float64, five
#: epochs, run_epochs alone): 4 kB ahead into L1 took 130 ms shuffled and 55 ms in order,
#: 16 kB ahead into L2 120 and 48 ms. Into L1 the hints wait on the core's few L1 miss
#: buffers; into L2, more loads are in flight at once.
_PREFETCH_BYTES = 16384
#: Row stride of the per-block scratch, in float64: a multiple of a cache line.
_LINE = 8
#: Per-sample SGD with K > 1 folds its shared weight scale into the weights below this.
_MIN_SCALE = 1e-9
#: Per-sample SGD with K > 1 runs groups of outputs on numba's threads from this many
#: entries (samples x features x outputs) per epoch, ``_SGD_CHUNK`` samples per chunk
#: (larger chunks: fewer waits at the end of each; 8192 beat 2048 by about 15%).
_SGD_PARALLEL_MIN_WORK = 1 << 20
_SGD_CHUNK = 8192

#: Loss codes of the vector (K = 1) kernels: every loss but multinomial.
_VECTOR_LOSS_CODES = tuple(code for code in LOSS_CODES if code != LOSS_MULTINOMIAL)
_OPT_CODES = (OPT_SGD, OPT_ADAGRAD, OPT_RMSPROP, OPT_ADAM, OPT_ADAMW)
_SCHED_CODES = (
    SCHED_CONSTANT, SCHED_INVSCALING, SCHED_EXPONENTIAL, SCHED_COSINE, SCHED_OPTIMAL
)


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
    weight = None
    if sample_weight is not None:
        weight = np.ascontiguousarray(sample_weight, dtype=X.dtype)
    data = Data(np.ascontiguousarray(X), np.ascontiguousarray(Y), weight)
    return data, np.ascontiguousarray(theta)


# ------------------------------------------------------------------ per-sample math


@njit(**_JIT)
def _sigmoid(p: float) -> float:
    """Numerically stable logistic sigmoid of a scalar."""
    e = math.exp(-abs(p))
    if p >= 0.0:
        return 1.0 / (1.0 + e)
    return e / (1.0 + e)


@njit(**_JIT)
def _sign(v: float) -> float:
    """``numpy.sign`` of a scalar: -1, 0 or 1 (NaN stays NaN)."""
    if v > 0.0:
        return 1.0
    if v < 0.0:
        return -1.0
    return v


@njit(**_JIT)
def _positive_part(v: float) -> float:
    """``numpy.maximum(v, 0)`` of a scalar (NaN stays NaN)."""
    return 0.0 if v < 0.0 else v


@njit(**_JIT)
def _signed_label_loss(p: float, s: float, loss_code: int):
    """Margin losses of a label ``s`` = ±1 (scikit-learn's formulas), with z = s·p."""
    z = s * p
    if loss_code == LOSS_HINGE:  # max(0, 1 - z); at z = 1 the subgradient -s, as scikit-learn
        if z > 1.0:
            return 0.0, 0.0
        return 1.0 - z, -s
    gap = _positive_part(1.0 - z)
    if loss_code == LOSS_MODIFIED_HUBER and z < -1.0:  # -4z below -1
        return -4.0 * z, -4.0 * s
    return gap * gap, -2.0 * s * gap  # squared hinge; modified Huber from -1 on


@njit(**_JIT)
def _residual_loss(r: float, loss_code: int, eps: float):
    """Regression losses of the residual ``r = p − y`` and their derivatives."""
    if loss_code == LOSS_HUBER:
        abs_r = abs(r)
        if abs_r <= eps:
            return 0.5 * r * r, r
        return eps * (abs_r - 0.5 * eps), eps if r > 0.0 else -eps
    if loss_code == LOSS_EPSILON_INSENSITIVE:  # max(0, |r| - eps); 0 at |r| = eps
        excess = abs(r) - eps
        return _positive_part(excess), _sign(r) if excess > 0.0 else 0.0
    if loss_code == LOSS_SQUARED_EPSILON_INSENSITIVE:  # max(0, |r| - eps)^2
        excess = _positive_part(abs(r) - eps)
        return excess * excess, 2.0 * _sign(r) * excess
    return 0.5 * r * r, r  # squared


@njit(**_JIT)
def _loss_and_dloss(p: float, y: float, loss_code: int, loss_param: float):
    """Loss of one output of one sample and its derivative with respect to ``p``.

    Every loss but multinomial (see :func:`_row_loss_and_dloss`); the formulas and the
    subgradients at the kinks are fastgd.backends.numpy's.
    """
    if loss_code == LOSS_LOGISTIC:
        # log(1 + e^p) = max(p, 0) + log1p(e^-|p|), as numpy's logaddexp(0, p)
        return max(p, 0.0) + math.log1p(math.exp(-abs(p))) - y * p, _sigmoid(p) - y
    if (
        loss_code == LOSS_HINGE
        or loss_code == LOSS_SQUARED_HINGE
        or loss_code == LOSS_MODIFIED_HUBER
    ):
        return _signed_label_loss(p, y, loss_code)
    return _residual_loss(p - y, loss_code, loss_param)


@njit(**_JIT)
def _clip_dloss(dl: float, max_dloss: float) -> float:
    """``dl`` clipped to ``[-max_dloss, max_dloss]``: scikit-learn SGD's clip of the loss
    derivative. NaN stays NaN, and ``max_dloss = inf`` returns ``dl`` itself."""
    if dl > max_dloss:
        return max_dloss
    if dl < -max_dloss:
        return -max_dloss
    return dl


@njit(**_JIT)
def _softmax_cross_entropy(p, label: int) -> float:
    """Softmax cross-entropy of the K logits ``p`` for class ``label``, computed stably
    (the row max subtracted); ``p`` is overwritten with ``softmax(p) − onehot(label)``."""
    K = p.shape[0]
    top = p[0]
    for k in range(1, K):
        if p[k] > top:
            top = p[k]
    z_label = p[label] - top
    total = 0.0
    for k in range(K):
        e = math.exp(p[k] - top)
        p[k] = e
        total += e
    for k in range(K):
        p[k] = p[k] / total
    p[label] -= 1.0
    return math.log(total) - z_label


@njit(**_JIT)
def _row_loss_and_dloss(p, Y, i, loss_code: int, loss_param: float, max_dloss: float) -> float:
    """Loss of sample ``i`` summed over its K outputs (targets ``Y[i]``); the predictions
    ``p`` (K,) are overwritten with d loss / d p, each clipped to ``±max_dloss``."""
    if loss_code == LOSS_MULTINOMIAL:
        loss = _softmax_cross_entropy(p, int(Y[i, 0]))
        for k in range(p.shape[0]):  # softmax − onehot is in [-1, 1]: kept for uniformity
            p[k] = _clip_dloss(p[k], max_dloss)
        return loss
    total = 0.0
    for k in range(p.shape[0]):
        loss, dl = _loss_and_dloss(p[k], np.float64(Y[i, k]), loss_code, loss_param)
        p[k] = _clip_dloss(dl, max_dloss)
        total += loss
    return total


# ----------------------------------------------------------------- row gathering


@intrinsic
def _prefetch(typingctx, arr, i, j):
    """Ask the CPU to start loading the cache line of ``arr[i, j]`` (a hint: no result)."""

    def codegen(context, builder, signature, args):
        aryty = signature.args[0]
        ary = context.make_array(aryty)(context, builder, args[0])
        ptr = cgutils.get_item_pointer(
            context, builder, aryty, ary, [args[1], args[2]], wraparound=False
        )
        i8p = ir.IntType(8).as_pointer()
        i32 = ir.IntType(32)
        fnty = ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.prefetch.p0")
        # read access, locality 1 (into L2: see _PREFETCH_BYTES), data cache
        builder.call(fn, [builder.bitcast(ptr, i8p), i32(0), i32(1), i32(1)])
        return context.get_dummy_value()

    return types.void(arr, types.intp, types.intp), codegen


@njit(**_JIT)
def _prefetch_row(X, i):
    """Prefetch every cache line of row ``i`` of X."""
    d = X.shape[1]
    for j in range(0, d, max(1, 64 // X.itemsize)):
        _prefetch(X, i, j)
    _prefetch(X, i, d - 1)


@njit(**_JIT)
def _is_identity(order) -> bool:
    """Whether ``order`` is 0, 1, 2, …: the mini-batches of such an epoch read X's rows
    directly, without gather or prefetch hints."""
    for k in range(order.shape[0]):
        if order[k] != k:
            return False
    return True


@njit(**_JIT)
def _prefetch_distance(X) -> int:
    """Rows to prefetch ahead when gathering: ``_PREFETCH_BYTES`` of X, at least one row."""
    return max(1, _PREFETCH_BYTES // (X.shape[1] * X.itemsize))


# --------------------------------------------------------------- row blocks


@njit(**_JIT)
def _max_blocks(width: int) -> int:
    """Most row blocks of a batch when each block's partial sums take ``width`` float64."""
    return min(_MAX_BLOCKS, max(1, _PARTIAL_ENTRIES // width))


@njit(**_JIT)
def _n_blocks(m: int, max_blocks: int) -> int:
    """Row blocks of a batch of m rows: a function of m (and the model's size) only, so
    results never depend on the number of threads."""
    return min(max_blocks, max(1, m // _BLOCK_ROWS))


@njit(**_JIT)
def _padded(count: int) -> int:
    """``count`` float64 rounded up to whole cache lines."""
    return -(-count // _LINE) * _LINE


# ------------------------------------------------------- gradients, K = 1 (vector)


@njit(**_JIT)
def _accumulate_rows(X, y, weight, w64, b, rows, lo, hi, loss_code, loss_param, max_dloss, acc):
    """Add the samples at positions ``lo..hi-1`` into ``acc``, reading each row of X once.

    Parameters
    ----------
    X : ndarray, shape (n, d); y : ndarray, shape (n,)
    weight : ndarray, shape (n,) or (0,)
        Sample weights, or empty for none.
    w64 : ndarray of float64, shape (d,); b : float
        Weights and intercept.
    rows : ndarray of int64
        Sample order (an epoch's): position k is sample ``rows[k]``; empty means position
        k is sample k. Rows are prefetched a few positions ahead (in order only in blocks
        shorter than ``_BLOCK_ROWS``).
    lo, hi : int
        Positions in ``rows``.
    loss_code, loss_param, max_dloss : int, float, float
        The loss (its code a compile-time constant, see :func:`_for_each_loss`), its
        parameter and the clip of its derivatives (see :func:`_clip_dloss`).
    acc : ndarray of float64, shape (>= d + 2,)
        ``acc[:d] += s_i·dloss_i·x_i``, ``acc[d] += s_i·dloss_i``, ``acc[d + 1] +=
        s_i·loss_i`` (s_i the sample's weight, 1 without weights).
    """
    d = X.shape[1]
    weighted = weight.shape[0] > 0
    gathered = rows.shape[0] > 0
    ahead = _prefetch_distance(X)
    # Rows in order are prefetched too in a small batch (the next batch's rows arrive
    # during this one and the update between them); a long block streams by itself.
    # The row choice below is written out here and in _accumulate_rows_matrix: a shared
    # helper, even inlined, kept its branches inside the loop (mini-batch Adam in order
    # 47 -> 57 ms, shuffled 123 -> 146 ms).
    hint_in_order = not gathered and hi - lo < _BLOCK_ROWS
    loss_sum = 0.0
    dloss_sum = 0.0
    for k in range(lo, hi):
        if gathered:
            i = rows[k]
            if k + ahead < rows.shape[0]:
                _prefetch_row(X, rows[k + ahead])
        else:
            i = k
            if hint_in_order and k + ahead < X.shape[0]:
                _prefetch_row(X, k + ahead)
        x = X[i]
        p = 0.0
        for j in range(d):
            p += np.float64(x[j]) * w64[j]
        loss, dl = _loss_and_dloss(p + b, np.float64(y[i]), loss_code, loss_param)
        dl = _clip_dloss(dl, max_dloss)
        s = np.float64(weight[i]) if weighted else 1.0
        loss *= s
        dl *= s
        for j in range(d):
            acc[j] += dl * x[j]
        dloss_sum += dl
        loss_sum += loss
    acc[d] += dloss_sum
    acc[d + 1] += loss_sum


@njit(**_JIT)
def _sum_block(
    X, y, weight, w64, b, rows, start, m, n_blocks, blk, loss_code, loss_param, max_dloss, partial
):
    """Sum block ``blk`` of the ``n_blocks`` equal blocks of the m positions from ``start``
    into ``partial[blk]``. Serial and parallel both call it, so their partials are equal."""
    acc = partial[blk]
    acc[:] = 0.0
    lo = start + blk * m // n_blocks
    hi = start + (blk + 1) * m // n_blocks
    _accumulate_rows(X, y, weight, w64, b, rows, lo, hi, loss_code, loss_param, max_dloss, acc)


@njit(**_JIT)
def _blocks_serial(
    X, y, weight, w64, b, rows, start, m, n_blocks, loss_code, loss_param, max_dloss, partial
):
    """Sum each of the ``n_blocks`` equal blocks of the m positions from ``start`` into its
    row of ``partial``, one block after the other."""
    for blk in range(n_blocks):
        _sum_block(
            X, y, weight, w64, b, rows, start, m, n_blocks, blk, loss_code, loss_param,
            max_dloss, partial,
        )


@njit(parallel=True, **_JIT)
def _blocks_parallel(
    X, y, weight, w64, b, rows, start, m, n_blocks, loss_code, loss_param, max_dloss, partial
):
    """:func:`_blocks_serial` with the blocks spread over numba's threads (same partials)."""
    for blk in prange(n_blocks):
        _sum_block(
            X, y, weight, w64, b, rows, start, m, n_blocks, blk, loss_code, loss_param,
            max_dloss, partial,
        )


@njit(**_JIT)
def _new_scratch(d: int):
    """Scratch of the vector gradient kernel: the weights in float64 (d,) and the
    per-block partial sums (max blocks, d + 2 rounded up to whole cache lines)."""
    width = _padded(d + 2)
    return np.empty(d), np.empty((_max_blocks(width), width))


@njit(**_JIT)
def _batch_loss_grad(
    X, y, weight, theta, rows, start, stop, loss_code, loss_param, max_dloss, l2, l1, fit_intercept,
    w64, partial, grad, parallel_min_work,
):
    """Mean (weighted) loss plus penalty over a batch, and its gradient written into ``grad``.

    Parameters
    ----------
    X : ndarray, shape (n, d); y : ndarray, shape (n,); theta : ndarray, shape (d + 1,)
    weight : ndarray, shape (n,) or (0,)
        Sample weights, or empty for none.
    rows : ndarray of int64, shape (n,) or (0,)
        The epoch's sample order, or empty for X's rows in order.
    start, stop : int
        The batch is positions ``start..stop-1`` of ``rows``.
    loss_code, loss_param, max_dloss, l2, l1, fit_intercept
        The lowered model.
    w64 : ndarray of float64, shape (d,)
        Scratch for the weights in float64.
    partial : ndarray of float64, shape (max blocks, >= d + 2)
        Scratch for the per-block sums.
    grad : ndarray, shape (d + 1,)
        Output, in theta's dtype.
    parallel_min_work : int
        Run the row blocks in parallel when ``m * d`` reaches this (the result is the
        same either way).

    Returns
    -------
    float
        The batch objective.
    """
    d = X.shape[1]
    m = stop - start
    for j in range(d):
        w64[j] = theta[j]
    b = np.float64(theta[d])
    n_blocks = _n_blocks(m, partial.shape[0])
    if n_blocks > 1 and m * d >= parallel_min_work:
        _blocks_parallel(
            X, y, weight, w64, b, rows, start, m, n_blocks, loss_code, loss_param, max_dloss,
            partial,
        )
    else:
        _blocks_serial(
            X, y, weight, w64, b, rows, start, m, n_blocks, loss_code, loss_param, max_dloss,
            partial,
        )
    ww = 0.0
    aw = 0.0
    for j in range(d):
        total = 0.0
        for blk in range(n_blocks):
            total += partial[blk, j]
        wj = w64[j]
        grad[j] = total / m + l2 * wj + l1 * _sign(wj)
        ww += wj * wj
        aw += abs(wj)
    dloss_sum = 0.0
    loss_sum = 0.0
    for blk in range(n_blocks):
        dloss_sum += partial[blk, d]
        loss_sum += partial[blk, d + 1]
    grad[d] = dloss_sum / m if fit_intercept else 0.0
    return loss_sum / m + (0.5 * l2 * ww + l1 * aw)


# ------------------------------------------------------- gradients, K > 1 (matrix)


@njit(**_JIT)
def _transpose_into(theta, theta_t):
    """``theta_t[k, j] = theta[j, k]``: (d + 1, K) in any dtype to (K, >= d + 1) float64."""
    for j in range(theta.shape[0]):
        for k in range(theta.shape[1]):
            theta_t[k, j] = theta[j, k]


@njit(**_JIT)
def _dots(X, i, v, out):
    """``out[k] = X[i] · v[k, :d]`` for the K rows of ``v`` (K, >= d), in float64.

    Four rows share each pass over ``X[i]``: four independent sums per loop (more
    instruction-level parallelism, a quarter of the loads of x) run about 1.4x faster
    than one dot product after the other. Arrays are indexed in 2-D, not through row
    views: a view per row costs a reference count update, which is as slow as a short
    dot product.
    """
    _dots_range(X, i, v, 0, v.shape[0], out)


@njit(**_JIT)
def _dots_range(X, i, v, lo, hi, out):
    """:func:`_dots` for the rows ``lo <= k < hi`` of ``v``: four rows per pass over X's
    row, then two, then one; row k's sum is the one over all rows when ``lo`` and ``hi``
    fall where those tiers start or end (see :func:`_output_groups`)."""
    d = X.shape[1]
    k = lo
    while k + 4 <= hi:
        s0 = s1 = s2 = s3 = 0.0
        for j in range(d):
            xj = np.float64(X[i, j])
            s0 += xj * v[k, j]
            s1 += xj * v[k + 1, j]
            s2 += xj * v[k + 2, j]
            s3 += xj * v[k + 3, j]
        out[k], out[k + 1], out[k + 2], out[k + 3] = s0, s1, s2, s3
        k += 4
    if k + 2 <= hi:
        s0 = s1 = 0.0
        for j in range(d):
            xj = np.float64(X[i, j])
            s0 += xj * v[k, j]
            s1 += xj * v[k + 1, j]
        out[k], out[k + 1] = s0, s1
        k += 2
    if k < hi:
        s0 = 0.0
        for j in range(d):
            s0 += np.float64(X[i, j]) * v[k, j]
        out[k] = s0


@njit(**_JIT)
def _predict(X, i, theta_t, p):
    """The K predictions of sample i: ``p[k] = X[i] · theta_t[k, :d] + theta_t[k, d]``."""
    d = X.shape[1]
    _dots(X, i, theta_t, p)
    for k in range(p.shape[0]):
        p[k] += theta_t[k, d]


@njit(**_JIT)
def _add_row(X, i, dl, acc):
    """``acc[k, :d] += dl[k]·X[i]`` and ``acc[k, d] += dl[k]`` for the outputs whose
    ``dl[k]`` is not 0 (a met margin costs nothing)."""
    d = X.shape[1]
    for k in range(dl.shape[0]):
        c = dl[k]
        if c != 0.0:
            for j in range(d):
                acc[k, j] += c * X[i, j]
            acc[k, d] += c


@njit(**_JIT)
def _accumulate_rows_matrix(
    X, Y, weight, theta_t, rows, lo, hi, loss_code, loss_param, max_dloss, p, acc
):
    """Add the samples at positions ``lo..hi-1`` into ``acc``, reading each row of X once
    for all K outputs.

    Parameters
    ----------
    X : ndarray, shape (n, d); Y : ndarray, shape (n, T)
    weight : ndarray, shape (n,) or (0,)
        Sample weights, or empty for none.
    theta_t : ndarray of float64, shape (K, >= d + 1)
        The parameters, transposed: output k's weights then its intercept.
    rows, lo, hi, loss_code, loss_param, max_dloss
        As in :func:`_accumulate_rows`.
    p : ndarray of float64, shape (K,)
        Scratch for a row's predictions and loss derivatives.
    acc : ndarray of float64, shape (K, >= d + 2)
        ``acc[k, :d] += s_i·dloss_ik·x_i``, ``acc[k, d] += s_i·dloss_ik``, ``acc[0, d + 1]
        += s_i·loss_i`` (loss_i summed over the outputs).
    """
    d = X.shape[1]
    K = p.shape[0]
    weighted = weight.shape[0] > 0
    gathered = rows.shape[0] > 0
    ahead = _prefetch_distance(X)
    hint_in_order = not gathered and hi - lo < _BLOCK_ROWS  # see _accumulate_rows
    loss_sum = 0.0
    for k in range(lo, hi):
        if gathered:
            i = rows[k]
            if k + ahead < rows.shape[0]:
                _prefetch_row(X, rows[k + ahead])
        else:
            i = k
            if hint_in_order and k + ahead < X.shape[0]:
                _prefetch_row(X, k + ahead)
        _predict(X, i, theta_t, p)
        loss = _row_loss_and_dloss(p, Y, i, loss_code, loss_param, max_dloss)
        if weighted:
            s = np.float64(weight[i])
            loss *= s
            for c in range(K):
                p[c] *= s
        _add_row(X, i, p, acc)
        loss_sum += loss
    acc[0, d + 1] += loss_sum


@njit(**_JIT)
def _sum_block_matrix(
    X, Y, weight, theta_t, rows, start, m, n_blocks, blk, loss_code, loss_param, max_dloss, p,
    partial,
):
    """:func:`_sum_block` for K outputs: block ``blk`` into ``partial[blk]``, with
    ``p[blk]`` as its scratch."""
    acc = partial[blk]
    acc[:, :] = 0.0
    lo = start + blk * m // n_blocks
    hi = start + (blk + 1) * m // n_blocks
    K = theta_t.shape[0]
    _accumulate_rows_matrix(
        X, Y, weight, theta_t, rows, lo, hi, loss_code, loss_param, max_dloss, p[blk, :K], acc
    )


@njit(**_JIT)
def _blocks_serial_matrix(
    X, Y, weight, theta_t, rows, start, m, n_blocks, loss_code, loss_param, max_dloss, p, partial
):
    """:func:`_blocks_serial` for K outputs."""
    for blk in range(n_blocks):
        _sum_block_matrix(
            X, Y, weight, theta_t, rows, start, m, n_blocks, blk, loss_code, loss_param,
            max_dloss, p, partial,
        )


@njit(parallel=True, **_JIT)
def _blocks_parallel_matrix(
    X, Y, weight, theta_t, rows, start, m, n_blocks, loss_code, loss_param, max_dloss, p, partial
):
    """:func:`_blocks_serial_matrix` with the blocks spread over numba's threads."""
    for blk in prange(n_blocks):
        _sum_block_matrix(
            X, Y, weight, theta_t, rows, start, m, n_blocks, blk, loss_code, loss_param,
            max_dloss, p, partial,
        )


@njit(**_JIT)
def _new_scratch_matrix(d: int, K: int):
    """Scratch of the matrix gradient kernel: the transposed float64 parameters (K, d + 1
    rounded up to whole cache lines), each block's row predictions (max blocks, K rounded
    up likewise) and its partial sums (max blocks, K, d + 2 rounded up likewise)."""
    width = _padded(d + 2)
    n = _max_blocks(K * width)
    theta_t = np.empty((K, _padded(d + 1)))
    return theta_t, np.empty((n, _padded(K))), np.empty((n, K, width))


@njit(**_JIT)
def _batch_loss_grad_matrix(
    X, Y, weight, theta, rows, start, stop, loss_code, loss_param, max_dloss, l2, l1, fit_intercept,
    theta_t, p, partial, grad, parallel_min_work,
):
    """:func:`_batch_loss_grad` for a (d + 1, K) ``theta`` and (n, T) targets ``Y``.

    ``theta_t``, ``p`` and ``partial`` are the scratch of :func:`_new_scratch_matrix`;
    ``grad`` (d + 1, K) receives the gradient in theta's dtype. Blocks run in parallel
    when ``m * d * K`` reaches ``parallel_min_work``. Returns the batch objective.
    """
    d = X.shape[1]
    K = theta.shape[1]
    m = stop - start
    _transpose_into(theta, theta_t)
    n_blocks = _n_blocks(m, partial.shape[0])
    if n_blocks > 1 and m * d * K >= parallel_min_work:
        _blocks_parallel_matrix(
            X, Y, weight, theta_t, rows, start, m, n_blocks, loss_code, loss_param, max_dloss,
            p, partial,
        )
    else:
        _blocks_serial_matrix(
            X, Y, weight, theta_t, rows, start, m, n_blocks, loss_code, loss_param, max_dloss,
            p, partial,
        )
    ww = 0.0
    aw = 0.0
    for k in range(K):
        w_k = theta_t[k]
        for j in range(d):
            total = 0.0
            for blk in range(n_blocks):
                total += partial[blk, k, j]
            wj = w_k[j]
            grad[j, k] = total / m + l2 * wj + l1 * _sign(wj)
            ww += wj * wj
            aw += abs(wj)
        dloss_sum = 0.0
        for blk in range(n_blocks):
            dloss_sum += partial[blk, k, d]
        grad[d, k] = dloss_sum / m if fit_intercept else 0.0
    loss_sum = 0.0
    for blk in range(n_blocks):
        loss_sum += partial[blk, 0, d + 1]
    return loss_sum / m + (0.5 * l2 * ww + l1 * aw)


# ---------------------------------------------------------------- entry points


def _for_each_loss(make, codes=LOSS_CODES):
    """``{loss_code: make(loss_code)}`` for each loss code in ``codes``.

    The entry points made here pass their loss code to the kernels as a compile-time
    constant (a closure variable, typed as a literal), so each loss gets its own
    compiled kernel tree: the per-row loss has no branch on the code (the row loops run
    about a third faster than with a runtime switch) and the other losses' code is
    pruned. That is at most 9 losses x 2 dtypes specializations per kernel family, each
    compiled on first use and cached.
    """
    return {code: make(code) for code in codes}


def _loss_grad_kernel(loss_code: int, matrix: bool):
    """The batch gradient over all rows of X, with its own scratch, for one loss: the
    matrix kernel (K outputs) when ``matrix``, else the vector one (the flag is a
    compile-time constant: the other family's code is pruned)."""

    @njit(**_JIT)
    def loss_grad_kernel(
        X, Y, weight, theta, loss_param, l2, l1, fit_intercept, max_dloss, grad,
        parallel_min_work,
    ):
        n, d = X.shape
        in_order = np.empty(0, dtype=np.int64)
        start = np.int64(0)  # typed int64, not the literal 0: run_epochs' specializations
        if matrix:
            theta_t, p, partial = _new_scratch_matrix(d, theta.shape[1])
            return _batch_loss_grad_matrix(
                X, Y, weight, theta, in_order, start, n, loss_code, loss_param, max_dloss, l2, l1,
                fit_intercept, theta_t, p, partial, grad, parallel_min_work,
            )
        w64, partial = _new_scratch(d)
        return _batch_loss_grad(
            X, Y, weight, theta, in_order, start, n, loss_code, loss_param, max_dloss, l2, l1,
            fit_intercept, w64, partial, grad, parallel_min_work,
        )

    return loss_grad_kernel


_LOSS_GRAD = _for_each_loss(lambda code: _loss_grad_kernel(code, False), _VECTOR_LOSS_CODES)
_LOSS_GRAD_MATRIX = _for_each_loss(lambda code: _loss_grad_kernel(code, True))


def _parallel_min_work() -> int:
    """``_PARALLEL_MIN_WORK``, or never parallel when numba runs one thread."""
    return _PARALLEL_MIN_WORK if get_num_threads() > 1 else np.iinfo(np.int64).max


def _sgd_groups(X: np.ndarray, theta: np.ndarray) -> int:
    """At most how many output groups per-sample SGD with K > 1 runs in parallel: numba's
    thread count from ``_SGD_PARALLEL_MIN_WORK`` entries (n·d·K) per epoch, else 1."""
    n, d = X.shape
    return get_num_threads() if n * d * theta.shape[1] >= _SGD_PARALLEL_MIN_WORK else 1


def _model_args(model: LoweredModel) -> tuple[int, float, float, float, bool, float]:
    """The lowered model as the plain scalars the kernels take, in its fields' order (the
    clip ``max_dloss`` last, inf for none); unknown losses raise."""
    if model.loss_code not in LOSS_CODES:
        raise ValueError(f"unknown loss code {model.loss_code!r}")
    return (
        int(model.loss_code),
        float(model.loss_param),
        float(model.l2),
        float(model.l1),
        bool(model.fit_intercept),
        float(model.max_dloss),
    )


def _is_vector(loss_code: int, theta: np.ndarray) -> bool:
    """Whether the vector (K = 1) kernels run: one output and not multinomial."""
    return theta.shape[1] == 1 and loss_code != LOSS_MULTINOMIAL


def _flat(a: np.ndarray) -> np.ndarray:
    """A 1-D view of a contiguous array (raises rather than copy: kernels write through)."""
    return np.reshape(a, -1, copy=False)


def _weight_arg(weight: np.ndarray | None, dtype: np.dtype) -> np.ndarray:
    """The weights as the kernels take them: an empty array when there are none."""
    if weight is None:
        return np.empty(0, dtype=dtype)
    return np.ascontiguousarray(weight, dtype=dtype)


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
    state : tuple (int, ndarray of shape (2, d + 1, K))
        ``(0, slots)``, the slots C-contiguous.
    """
    slots = np.zeros((2, *theta.shape), dtype=theta.dtype)
    if opt.code == OPT_ADAGRAD:
        slots[0] = opt.params[0]
    return 0, slots


@njit(**_JIT)
def _learning_rate(schedule_code, schedule_params, t):
    """Learning rate at update ``t`` (from 1): the formulas of ``specs.learning_rate``."""
    lr0 = schedule_params[0]
    if schedule_code == SCHED_CONSTANT:  # first: the per-sample loops ask at every step
        return lr0
    p1 = schedule_params[1]
    p2 = schedule_params[2]
    if schedule_code == SCHED_INVSCALING:
        return lr0 / np.float64(t) ** p1
    if schedule_code == SCHED_EXPONENTIAL:
        return lr0 * p1 ** ((t - 1) / p2)
    if schedule_code == SCHED_COSINE:
        k = min(np.float64(t - 1), p1)
        return lr0 * ((1.0 - p2) * 0.5 * (1.0 + math.cos(math.pi * k / p1)) + p2)
    if schedule_code == SCHED_OPTIMAL:  # lr0 is alpha, p1 is t0
        return 1.0 / (lr0 * (p1 + np.float64(t) - 1.0))
    return lr0


@njit(**_JIT)
def _update_kernel(theta, grad, slots, t, n_decay, code, params, schedule_code, schedule_params):
    """Update ``t`` (from 1) of the optimizer ``code``, in place on theta and slots.

    Elementwise on flat views: ``theta`` and ``grad`` (p,) and ``slots`` (2, p), p =
    (d + 1)·K in theta's row-major order, so AdamW's weight decay applies to the first
    ``n_decay`` = d·K entries (the weights, not the intercepts). The expressions follow
    ``fastgd.backends.numpy.update`` term for term (optax's formulas).
    """
    lr = _learning_rate(schedule_code, schedule_params, t)
    a = params[0]
    b = params[1]
    c = params[2]
    decay = params[3]
    p = theta.shape[0]
    s0 = slots[0]
    s1 = slots[1]
    if code == OPT_SGD:
        for j in range(p):
            g = grad[j]
            s0[j] = g + a * s0[j]
            u = g + a * s0[j] if b != 0.0 else s0[j]
            theta[j] -= lr * u
    elif code == OPT_ADAGRAD:
        for j in range(p):
            g = grad[j]
            s0[j] += g * g
            theta[j] -= lr * (g / math.sqrt(s0[j] + b))
    elif code == OPT_RMSPROP:
        for j in range(p):
            g = grad[j]
            s0[j] = (1.0 - a) * g * g + a * s0[j]
            theta[j] -= lr * (g / math.sqrt(s0[j] + b))
    else:  # Adam, AdamW
        correction1 = 1.0 - a ** np.float64(t)
        correction2 = 1.0 - b ** np.float64(t)
        for j in range(p):
            g = grad[j]
            s0[j] = (1.0 - a) * g + a * s0[j]
            s1[j] = (1.0 - b) * g * g + b * s1[j]
            u = (s0[j] / correction1) / (math.sqrt(s1[j] / correction2) + c)
            if code == OPT_ADAMW and j < n_decay:
                u += decay * theta[j]
            theta[j] -= lr * u


def _opt_args(opt: LoweredOptimizer) -> tuple[int, np.ndarray, int, np.ndarray]:
    """The lowered optimizer as the plain numbers the kernels take; unknown codes raise."""
    if opt.code not in _OPT_CODES:
        raise ValueError(f"unknown optimizer code {opt.code!r}")
    if opt.schedule_code not in _SCHED_CODES:
        raise ValueError(f"unknown schedule code {opt.schedule_code!r}")
    return (
        int(opt.code),
        np.asarray(opt.params, dtype=np.float64),
        int(opt.schedule_code),
        np.asarray(opt.schedule_params, dtype=np.float64),
    )


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
    t = int(step) + 1
    grad = np.ascontiguousarray(grad, dtype=theta.dtype)
    n_decay = theta.size - theta.shape[1]
    _update_kernel(
        _flat(theta), _flat(grad), np.reshape(slots, (2, -1), copy=False), t, n_decay,
        *_opt_args(opt),
    )
    return theta, (t, slots)


# ---------------------------------------------------- per-sample SGD, K = 1 (vector)


@njit(**_JIT)
def _sgd_epochs(
    X, y, weight, theta, slots, step, orders, loss_code, loss_param, max_dloss, l2, l1,
    fit_intercept, params, schedule_code, schedule_params, epoch_losses,
):
    """Per-sample SGD (with optional momentum), one output: one fused pass per sample.

    For each sample: the prediction (one dot product over the row), its (weighted) loss,
    then the gradient, the momentum trace and the parameter step in a second loop over
    the same row, which is still in L1. The same arithmetic as :func:`_batch_loss_grad`
    followed by :func:`_update_kernel` with m = 1. Returns the step count after the last
    update.

    Without momentum and penalty the step is ``θ −= (lr·dloss)·x`` (scikit-learn's
    rounding), fused with the next sample's dot product in one loop over the weights,
    and the trace, which then only holds the last gradient, is written once at the end.
    """
    n, d = X.shape
    weighted = weight.shape[0] > 0
    momentum = params[0]
    nesterov = params[1] != 0.0
    penalized = l2 != 0.0 or l1 != 0.0
    plain = momentum == 0.0 and not penalized
    ahead = _prefetch_distance(X)
    trace = slots[0]
    last_i = -1
    last_dl = 0.0
    for e in range(epoch_losses.shape[0]):
        order = orders[e % orders.shape[0]]
        total = 0.0
        p_next = np.nan  # x_next · w, when the previous step already computed it
        for k in range(n):
            i = order[k]
            if k + ahead < n:  # even in order: the hint beats the hardware's own prefetch
                _prefetch_row(X, order[k + ahead])
            x = X[i]
            step += 1
            lr = _learning_rate(schedule_code, schedule_params, step)
            if plain and k > 0:
                p = p_next
            else:
                p = 0.0
                for j in range(d):
                    p += np.float64(x[j]) * theta[j]
            loss, dl = _loss_and_dloss(p + theta[d], np.float64(y[i]), loss_code, loss_param)
            dl = _clip_dloss(dl, max_dloss)
            s = np.float64(weight[i]) if weighted else 1.0
            loss *= s
            dl *= s
            g_b = dl if fit_intercept else 0.0
            if plain:
                # the step, fused with the next sample's dot product (one pass over w)
                c = lr * dl
                x_next = X[order[min(k + 1, n - 1)]]
                p_next = 0.0
                for j in range(d):
                    theta[j] -= c * x[j]
                    p_next += np.float64(x_next[j]) * theta[j]
                theta[d] -= lr * g_b
                last_i = i
                last_dl = dl
                total += loss
                continue
            if penalized:
                ww = 0.0
                aw = 0.0
                for j in range(d):
                    wj = np.float64(theta[j])
                    ww += wj * wj
                    aw += abs(wj)
                loss += 0.5 * l2 * ww + l1 * aw
                for j in range(d):
                    wj = np.float64(theta[j])
                    g = dl * x[j] + l2 * wj + l1 * _sign(wj)
                    trace[j] = g + momentum * trace[j]
                    theta[j] -= lr * (g + momentum * trace[j] if nesterov else trace[j])
            else:
                for j in range(d):
                    g = dl * x[j]
                    trace[j] = g + momentum * trace[j]
                    theta[j] -= lr * (g + momentum * trace[j] if nesterov else trace[j])
            trace[d] = g_b + momentum * trace[d]
            theta[d] -= lr * (g_b + momentum * trace[d] if nesterov else trace[d])
            total += loss
        epoch_losses[e] = total / n
    if last_i >= 0:
        for j in range(d):
            trace[j] = last_dl * X[last_i, j]
        trace[d] = last_dl if fit_intercept else 0.0
    return step


# --------------------------------------------------- per-sample SGD, K > 1 (matrix)


@njit(**_JIT)
def _sample_loss(X, Y, weight, i, theta_t, p, loss_code, loss_param, max_dloss) -> float:
    """The K predictions of sample ``i`` from ``theta_t``, its weighted loss (returned)
    and its weighted loss derivatives (written into ``p``)."""
    _predict(X, i, theta_t, p)
    loss = _row_loss_and_dloss(p, Y, i, loss_code, loss_param, max_dloss)
    if weight.shape[0] > 0:
        s = np.float64(weight[i])
        loss *= s
        for k in range(p.shape[0]):
            p[k] *= s
    return loss


@njit(**_JIT)
def _dense_sgd_step(
    X, Y, weight, i, theta_t, trace, p, lr, l2, l1, momentum, nesterov, fit_intercept,
    loss_code, loss_param, max_dloss,
) -> float:
    """One SGD step on sample ``i`` touching every parameter: the loss and penalty at
    ``theta_t`` (K, >= d + 1, float64), then the step with momentum ``trace`` (K, d + 1).
    The arithmetic of :func:`_batch_loss_grad_matrix` and :func:`_update_kernel` with
    m = 1. Returns the sample's objective."""
    K, d = theta_t.shape[0], X.shape[1]
    loss = _sample_loss(X, Y, weight, i, theta_t, p, loss_code, loss_param, max_dloss)
    if l2 != 0.0 or l1 != 0.0:
        ww = 0.0
        aw = 0.0
        for k in range(K):
            for j in range(d):
                wj = theta_t[k, j]
                ww += wj * wj
                aw += abs(wj)
        loss += 0.5 * l2 * ww + l1 * aw
    for k in range(K):
        dl = p[k]
        for j in range(d):
            wj = theta_t[k, j]
            g = dl * X[i, j] + l2 * wj + l1 * _sign(wj)
            trace[k, j] = g + momentum * trace[k, j]
            theta_t[k, j] -= lr * (g + momentum * trace[k, j] if nesterov else trace[k, j])
        g_b = dl if fit_intercept else 0.0
        trace[k, d] = g_b + momentum * trace[k, d]
        theta_t[k, d] -= lr * (g_b + momentum * trace[k, d] if nesterov else trace[k, d])
    return loss


@njit(**_JIT)
def _squared_norm(v, d: int) -> float:
    """``‖v[:, :d]‖²``: the squared norm of the weights in ``v`` (K, >= d + 1)."""
    total = 0.0
    for k in range(v.shape[0]):
        for j in range(d):
            total += v[k, j] * v[k, j]
    return total


@njit(**_JIT)
def _unscale(v, d: int, scale: float) -> float:
    """Fold a scale into the weights, ``v[:, :d] *= scale``; returns their new ‖·‖²."""
    for k in range(v.shape[0]):
        for j in range(d):
            v[k, j] *= scale
    return _squared_norm(v, d)


@njit(inline="always", **_JIT)
def _scaled_sgd_step(
    X, Y, weight, i, v, scale, sq, dots, p, lr, l2, fit_intercept, loss_code, loss_param, max_dloss
):
    """One plain SGD step on sample ``i`` with an l2 (or no) penalty, weights kept scaled.

    The weights are ``scale·v[:, :d]`` and the intercepts ``v[:, d]``; ``sq`` tracks
    ‖v[:, :d]‖². The gradient step ``W −= lr·(dloss·x + l2·W)`` becomes ``scale *= 1 −
    lr·l2`` (O(1)) and ``v[k, :d] += (−lr·dloss_k / scale)·x`` for the outputs with
    ``dloss_k ≠ 0`` only: scikit-learn's plain SGD, with one scale for all K outputs (the
    shrink is the same for all). ``dots`` and ``p`` (K,) are scratch. Inlined into the
    loop (``inline="always"``): a call with this many arrays costs as much as the step.

    Returns
    -------
    objective : float
        The sample's loss plus penalty, at the weights before the step.
    scale, sq : float
        After the step (a scale below ``_MIN_SCALE`` is folded into ``v``).
    """
    K, d = v.shape[0], X.shape[1]
    _dots(X, i, v, dots)
    for k in range(K):
        p[k] = scale * dots[k] + v[k, d]
    s = np.float64(weight[i]) if weight.shape[0] > 0 else 1.0
    loss = _row_loss_and_dloss(p, Y, i, loss_code, loss_param, max_dloss) * s
    objective = loss + 0.5 * l2 * (scale * scale * sq)
    scale *= 1.0 - lr * l2
    if abs(scale) < _MIN_SCALE:
        sq = _unscale(v, d, scale)
        for k in range(K):
            dots[k] *= scale
        scale = 1.0
    xx = -1.0  # ‖x‖², computed on the first loss step
    for k in range(K):
        dl = p[k] * s
        if dl != 0.0:
            if xx < 0.0:
                xx = 0.0
                for j in range(d):
                    xx += np.float64(X[i, j]) * X[i, j]
            c = -lr * dl / scale
            for j in range(d):
                v[k, j] += c * X[i, j]
            sq += c * (2.0 * dots[k] + c * xx)
            if fit_intercept:
                v[k, d] -= lr * dl
    return objective, scale, sq


@njit(**_JIT)
def _output_groups(K: int, n_groups: int):
    """Cut the K outputs into at most ``n_groups`` ranges of nearly equal size, as the
    int64 bounds ``[0, …, K]``.

    Cuts fall only where :func:`_dots` starts a row tier (after each block of 4 rows,
    and after the pair that follows them), so every output's dot product, hence its
    whole step, is computed by the same loop in its group as in one pass over all K.
    """
    tiers = np.empty(K // 4 + 2, dtype=np.int64)  # the possible cuts, increasing, then K
    count = 0
    for k in range(4, K + 1, 4):
        tiers[count] = k
        count += 1
    if K - K // 4 * 4 >= 2:
        tiers[count] = K // 4 * 4 + 2
        count += 1
    if count == 0 or tiers[count - 1] != K:
        tiers[count] = K
        count += 1
    n_groups = max(1, min(n_groups, count))
    bounds = np.empty(n_groups + 1, dtype=np.int64)
    bounds[0] = 0
    used = 1
    for g in range(1, n_groups):
        target = g * K / n_groups
        best = -1
        for c in range(count - 1):  # the nearest cut above the previous one, below K
            if tiers[c] > bounds[used - 1] and (
                best < 0 or abs(tiers[c] - target) < abs(best - target)
            ):
                best = tiers[c]
        if best < 0:
            break
        bounds[used] = best
        used += 1
    bounds[used] = K
    return bounds[: used + 1]


@njit(**_JIT)
def _group_sgd_steps(
    X, Y, weight, v, order, start, m, lo, hi, lrs, scales, dots, losses, steps, slopes,
    fit_intercept, loss_code, loss_param, max_dloss,
):
    """:func:`_scaled_sgd_step` on the samples ``order[start:start + m]`` for the outputs
    ``lo <= k < hi`` only, their arithmetic unchanged.

    Step t's learning rate is ``lrs[t]``, its scale ``scales[t]`` before the shrink and
    ``scales[t + 1]`` after it (computed once, by the caller: no scale is folded in
    here). What the objective and the squared norm need is written at ``[k, t]``: the
    loss of output k in ``losses``, and the norm's change as ``steps[k, t] ·
    slopes[k, t]`` (both 0 where the margin is met); :func:`_sum_group_steps` adds them.
    """
    d = X.shape[1]
    n = order.shape[0]
    ahead = _prefetch_distance(X)
    weighted = weight.shape[0] > 0
    for t in range(m):
        pos = start + t
        i = order[pos]
        if pos + ahead < n:
            _prefetch_row(X, order[pos + ahead])
        _dots_range(X, i, v, lo, hi, dots)
        scale = scales[t]
        shrunk = scales[t + 1]  # read once, as the serial loop's (invariant) scale
        lr = lrs[t]
        s = np.float64(weight[i]) if weighted else 1.0
        xx = -1.0  # ‖x‖², computed on the first loss step
        for k in range(lo, hi):
            loss, dl = _loss_and_dloss(
                scale * dots[k] + v[k, d], np.float64(Y[i, k]), loss_code, loss_param
            )
            losses[k, t] = loss
            dl = _clip_dloss(dl, max_dloss) * s
            c = 0.0
            slope = 0.0
            if dl != 0.0:
                if xx < 0.0:
                    xx = 0.0
                    for j in range(d):
                        xx += np.float64(X[i, j]) * X[i, j]
                c = -lr * dl / shrunk
                for j in range(d):
                    v[k, j] += c * X[i, j]
                slope = 2.0 * dots[k] + c * xx
                if fit_intercept:
                    v[k, d] -= lr * dl
            steps[k, t] = c
            slopes[k, t] = slope


@njit(parallel=True, **_JIT)
def _groups_parallel(
    X, Y, weight, v, order, start, m, bounds, lrs, scales, dots, losses, steps, slopes,
    fit_intercept, loss_code, loss_param, max_dloss, cur, light, l2, done, acc,
):
    """:func:`_group_sgd_steps` for each output group into buffer ``cur`` (0 or 1) of
    ``scales``, ``losses``, ``steps`` and ``slopes``, the groups spread over numba's
    threads (each walks all m samples for its own outputs).

    The group ``light`` (the one with the fewest outputs) then sums the previous chunk's
    steps, ``done = (start, m, buffer)``, into ``acc`` (:func:`_sum_group_steps`) while the
    other groups finish theirs.
    """
    for g in prange(bounds.shape[0] - 1):
        _group_sgd_steps(
            X, Y, weight, v, order, start, m, bounds[g], bounds[g + 1], lrs, scales[cur],
            dots[g], losses[cur], steps[cur], slopes[cur], fit_intercept, loss_code,
            loss_param, max_dloss,
        )
        if g == light and done[1] > 0:
            prev = done[2]
            _sum_group_steps(
                weight, order, done[0], 0, done[1], l2, scales[prev], losses[prev],
                steps[prev], slopes[prev], acc,
            )


@njit(cache=True, nogil=True, fastmath={"contract", "arcp", "nsz"})
def _sum_group_steps(weight, order, start, t0, t1, l2, scales, losses, steps, slopes, acc):
    """The objectives of the steps ``t0 <= t < t1`` of :func:`_group_sgd_steps` from
    ``start``, added to ``acc[0]``, and the squared norm ``acc[1]`` after them: the sums of
    :func:`_scaled_sgd_step`, output by output in the same order (compiled without
    reassociation, so that they stay sequential wherever they run)."""
    K = losses.shape[0]
    weighted = weight.shape[0] > 0
    total = acc[0]
    sq = acc[1]
    for t in range(t0, t1):
        loss = 0.0
        for k in range(K):
            loss += losses[k, t]
        s = np.float64(weight[order[start + t]]) if weighted else 1.0
        scale = scales[t]
        loss *= s
        objective = loss + 0.5 * l2 * (scale * scale * sq)
        total += objective
        for k in range(K):
            c = steps[k, t]
            if c != 0.0:  # the margins met: most outputs, most steps
                sq += c * slopes[k, t]
    acc[0] = total
    acc[1] = sq


@njit(**_JIT)
def _flush_group_steps(weight, order, l2, scales, losses, steps, slopes, done, acc):
    """Sum the chunk ``done`` (start, m, buffer) not summed yet into ``acc``, if any."""
    if done[1] > 0:
        prev = done[2]
        _sum_group_steps(
            weight, order, done[0], 0, done[1], l2, scales[prev], losses[prev], steps[prev],
            slopes[prev], acc,
        )
        done[1] = 0


@njit(**_JIT)
def _sgd_epochs_matrix(
    X, Y, weight, theta, slots, step, orders, loss_code, loss_param, max_dloss, l2, l1,
    fit_intercept, params, schedule_code, schedule_params, epoch_losses,
):
    """Per-sample SGD for K outputs; returns the step count after the last update.

    The parameters and the momentum trace are worked on as float64 transposes (K, d + 1)
    and written back to ``theta`` and ``slots[0]`` at the end. With momentum or an l1
    term every step touches every parameter (:func:`_dense_sgd_step`). Without them the
    weights are kept scaled (:func:`_scaled_sgd_step`): their squared norm is recomputed
    exactly at each epoch's start, and the last step of the call is taken dense on the
    unscaled weights, so that the trace (the last gradient) is exact.
    """
    n, d = X.shape
    K = theta.shape[1]
    momentum = params[0]
    nesterov = params[1] != 0.0
    scaled = momentum == 0.0 and l1 == 0.0
    ahead = _prefetch_distance(X)
    v = np.empty((K, _padded(d + 1)))  # rows on cache-line boundaries: faster dot products
    trace = np.empty((K, d + 1))
    _transpose_into(theta, v)
    _transpose_into(slots[0], trace)
    dots = np.empty(K)
    p = np.empty(K)
    scale = 1.0
    n_epochs = epoch_losses.shape[0]
    for e in range(n_epochs):
        order = orders[e % orders.shape[0]]
        sq = _squared_norm(v, d)
        total = 0.0
        for k in range(n):
            i = order[k]
            if k + ahead < n:
                _prefetch_row(X, order[k + ahead])
            step += 1
            lr = _learning_rate(schedule_code, schedule_params, step)
            if scaled and (e < n_epochs - 1 or k < n - 1):
                loss, scale, sq = _scaled_sgd_step(
                    X, Y, weight, i, v, scale, sq, dots, p, lr, l2, fit_intercept, loss_code,
                    loss_param, max_dloss,
                )
                total += loss
                continue
            if scale != 1.0:  # the call's last step: unscale, then a dense step sets the trace
                _unscale(v, d, scale)
                scale = 1.0
            total += _dense_sgd_step(
                X, Y, weight, i, v, trace, p, lr, l2, l1, momentum, nesterov,
                fit_intercept, loss_code, loss_param, max_dloss,
            )
        epoch_losses[e] = total / n
    for j in range(d + 1):
        for k in range(K):
            theta[j, k] = v[k, j]
            slots[0, j, k] = trace[k, j]
    return step


@njit(**_JIT)
def _sgd_epochs_grouped(
    X, Y, weight, theta, slots, step, orders, loss_code, loss_param, max_dloss, l2,
    fit_intercept, params, schedule_code, schedule_params, epoch_losses, bounds,
):
    """:func:`_sgd_epochs_matrix` without momentum and l1 (scaled steps) for independent
    outputs (not multinomial), in the output groups ``bounds`` (:func:`_output_groups`,
    two or more) on numba's threads; bit for bit the serial loop's parameters.

    Each epoch runs ``_SGD_CHUNK`` samples at a time: the chunk's learning rates and
    scales are computed first (the chunk ends before a step that folds the scale, which
    is taken on all outputs at once as in the serial loop), then each group walks the
    chunk's samples for its own outputs (:func:`_groups_parallel`), while the group with
    the fewest outputs sums the previous chunk's objectives and squared norms, output by
    output in the serial loop's order (:func:`_sum_group_steps`). The call's last step
    is the serial loop's dense step.
    """
    n, d = X.shape
    K = theta.shape[1]
    momentum = params[0]  # 0, and l1 is 0: only the last step is dense
    nesterov = params[1] != 0.0
    v = np.empty((K, _padded(d + 1)))  # rows on cache-line boundaries: faster dot products
    trace = np.empty((K, d + 1))
    _transpose_into(theta, v)
    _transpose_into(slots[0], trace)
    dots = np.empty(K)
    p = np.empty(K)
    scale = 1.0
    n_epochs = epoch_losses.shape[0]
    sizes = bounds[1:] - bounds[:-1]
    light = np.argmin(sizes)
    chunk = min(n, _SGD_CHUNK)
    lrs = np.empty(chunk)
    scales = np.empty((2, chunk + 1))  # two of each: one being filled, one being summed
    losses = np.empty((2, K, chunk))
    steps = np.empty_like(losses)
    slopes = np.empty_like(losses)
    group_dots = np.empty((sizes.shape[0], _padded(K)))
    acc = np.empty(2)  # the epoch's total objective, the squared norm
    done = np.zeros(3, dtype=np.int64)  # the chunk not summed yet: (start, m, buffer)
    for e in range(n_epochs):
        order = orders[e % orders.shape[0]]
        acc[0] = 0.0
        acc[1] = _squared_norm(v, d)
        done[1] = 0
        last = e == n_epochs - 1
        end = n - 1 if last else n  # the call's last step is dense: below
        pos = 0
        while pos < end:
            buf = 1 - done[2]
            cur = scales[buf]
            cur[0] = scale
            m = 0  # the chunk's steps, up to the one that folds the scale
            while m < min(chunk, end - pos):
                lr = _learning_rate(schedule_code, schedule_params, step + m + 1)
                shrunk = cur[m] * (1.0 - lr * l2)
                if abs(shrunk) < _MIN_SCALE:
                    break
                lrs[m] = lr
                cur[m + 1] = shrunk
                m += 1
            if m > 0:
                _groups_parallel(
                    X, Y, weight, v, order, pos, m, bounds, lrs, scales, group_dots, losses,
                    steps, slopes, fit_intercept, loss_code, loss_param, max_dloss, buf, light,
                    l2, done, acc,
                )
                done[0] = pos
                done[1] = m
                done[2] = buf
                scale = cur[m]
                step += m
                pos += m
                continue
            _flush_group_steps(weight, order, l2, scales, losses, steps, slopes, done, acc)
            step += 1  # this step folds the scale: all outputs at once
            lr = _learning_rate(schedule_code, schedule_params, step)
            loss, scale, acc[1] = _scaled_sgd_step(
                X, Y, weight, order[pos], v, scale, acc[1], dots, p, lr, l2, fit_intercept,
                loss_code, loss_param, max_dloss,
            )
            acc[0] += loss
            pos += 1
        _flush_group_steps(weight, order, l2, scales, losses, steps, slopes, done, acc)
        if last:
            i = order[n - 1]
            step += 1
            lr = _learning_rate(schedule_code, schedule_params, step)
            if scale != 1.0:  # unscale, then a dense step sets the trace
                _unscale(v, d, scale)
                scale = 1.0
            acc[0] += _dense_sgd_step(
                X, Y, weight, i, v, trace, p, lr, l2, 0.0, momentum, nesterov,
                fit_intercept, loss_code, loss_param, max_dloss,
            )
        epoch_losses[e] = acc[0] / n
    for j in range(d + 1):
        for k in range(K):
            theta[j, k] = v[k, j]
            slots[0, j, k] = trace[k, j]
    return step


# ------------------------------------------------------------------- training loop


def _run_epochs_kernel(loss_code: int, matrix: bool, per_sample: bool):
    """The compiled training loop for one loss code (see :func:`_for_each_loss`), one
    kernel family (K outputs when ``matrix``, else one) and one kind of update: plain SGD
    one sample at a time when ``per_sample``, else batches (the flags are compile-time
    constants: a fit compiles only the loop it runs).

    The kernel runs every batch of ``epoch_losses.shape[0]`` epochs and returns the final
    step count. Epoch e walks ``orders[e % len(orders)]`` (an order 0, 1, 2, … reads X's
    rows directly); scratch is allocated once per call. Vector calls get ``Y`` (n,),
    ``theta`` (d + 1,) and ``slots`` (2, d + 1); matrix calls (n, T), (d + 1, K) and
    (2, d + 1, K).
    """

    @njit(**_JIT)
    def run_epochs_kernel(
        X, Y, weight, theta, slots, step, orders, batch_size, loss_param, l2, l1,
        fit_intercept, max_dloss, code, params, schedule_code, schedule_params, epoch_losses,
        parallel_min_work, sgd_groups,
    ):
        n, d = X.shape
        if per_sample:
            if matrix:
                scaled = params[0] == 0.0 and l1 == 0.0
                if sgd_groups > 1 and scaled and loss_code != LOSS_MULTINOMIAL:
                    bounds = _output_groups(theta.shape[1], sgd_groups)
                    if bounds.shape[0] > 2:
                        return _sgd_epochs_grouped(
                            X, Y, weight, theta, slots, step, orders, loss_code, loss_param,
                            max_dloss, l2, fit_intercept, params, schedule_code,
                            schedule_params, epoch_losses, bounds,
                        )
                return _sgd_epochs_matrix(
                    X, Y, weight, theta, slots, step, orders, loss_code, loss_param, max_dloss,
                    l2, l1, fit_intercept, params, schedule_code, schedule_params, epoch_losses,
                )
            return _sgd_epochs(
                X, Y, weight, theta, slots, step, orders, loss_code, loss_param, max_dloss,
                l2, l1, fit_intercept, params, schedule_code, schedule_params, epoch_losses,
            )
        grad = np.empty_like(theta)
        size = theta.size
        flat_theta = theta.reshape(size)
        flat_grad = grad.reshape(size)
        flat_slots = slots.reshape((2, size))
        if matrix:
            n_decay = size - theta.shape[1]
            theta_t, p, partial = _new_scratch_matrix(d, theta.shape[1])
        else:
            n_decay = size - 1
            w64, partial = _new_scratch(d)
        in_order = np.empty(0, dtype=np.int64)
        for e in range(epoch_losses.shape[0]):
            order = in_order
            if batch_size < n:
                order = orders[e % orders.shape[0]]
                if _is_identity(order):
                    order = in_order
            total = 0.0
            loss = 0.0
            for start in range(0, n, batch_size):
                stop = min(start + batch_size, n)
                if matrix:
                    loss = _batch_loss_grad_matrix(
                        X, Y, weight, theta, order, start, stop, loss_code, loss_param,
                        max_dloss, l2, l1, fit_intercept, theta_t, p, partial, grad,
                        parallel_min_work,
                    )
                else:
                    loss = _batch_loss_grad(
                        X, Y, weight, theta, order, start, stop, loss_code, loss_param,
                        max_dloss, l2, l1, fit_intercept, w64, partial, grad, parallel_min_work,
                    )
                step += 1
                _update_kernel(
                    flat_theta, flat_grad, flat_slots, step, n_decay, code, params,
                    schedule_code, schedule_params,
                )
                total += loss * (stop - start)
            epoch_losses[e] = total / n if batch_size < n else loss
        return step

    return run_epochs_kernel


#: The training loops, by (matrix, per_sample) and then loss code.
_RUN_EPOCHS = {
    (matrix, per_sample): _for_each_loss(
        lambda code, m=matrix, s=per_sample: _run_epochs_kernel(code, m, s),
        LOSS_CODES if matrix else _VECTOR_LOSS_CODES,
    )
    for matrix in (False, True)
    for per_sample in (False, True)
}


def _kernel_orders(orders: np.ndarray, full_batch: bool) -> np.ndarray:
    """The epoch orders as a writable C-contiguous int64 array (one compiled layout).

    A full batch ignores the order, and an order repeated every epoch (a stride-0
    broadcast) is passed once: the kernel reads epoch e's order from row e modulo rows.
    """
    if full_batch:
        return np.zeros((1, 0), dtype=np.int64)
    if orders.shape[0] > 1 and orders.strides[0] == 0:
        orders = orders[:1]
    return np.require(orders, dtype=np.int64, requirements=["C", "W"])


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
    X, Y, weight = data
    step, slots = state
    n = X.shape[0]
    epoch_losses = np.empty(orders.shape[0], dtype=np.float64)
    loss_code, *model_numbers = _model_args(model)
    weight = _weight_arg(weight, X.dtype)
    rest = (
        int(step), _kernel_orders(orders, batch_size >= n), int(batch_size), *model_numbers,
        *_opt_args(opt), epoch_losses, _parallel_min_work(), _sgd_groups(X, theta),
    )
    per_sample = batch_size == 1 and n > 1 and opt.code == OPT_SGD  # n = 1 is a full batch
    if _is_vector(loss_code, theta):
        step = _RUN_EPOCHS[False, per_sample][loss_code](
            X, _flat(Y), weight, _flat(theta), np.reshape(slots, (2, -1), copy=False), *rest
        )
    else:
        step = _RUN_EPOCHS[True, per_sample][loss_code](X, Y, weight, theta, slots, *rest)
    return theta, (int(step), slots), epoch_losses
