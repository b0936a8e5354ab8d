"""The numba backend: compiled loops, and a training loop compiled end to end.

The same public names and signatures as ``numpy_backend`` (read that module first; this
one mirrors it name for name):

- :func:`prepare` — the data stay in host memory, C-contiguous;
- :func:`loss_grad` — mean loss (plus penalty) and its gradient over a batch;
- :func:`init_state` — the optimizer's state ``(step, slots)``;
- :func:`update` — one optimizer step, in place;
- :func:`run_epochs` — every batch of a chunk of epochs in **one** compiled call.

How the kernels differ from numpy's:

- **One read of X per batch.** Each row's prediction, loss and loss derivative are
  computed and the row is added into the gradient while it is still in cache (numpy
  needs two passes: ``X @ w`` and then ``X.T @ r``), with no temporary of size n.
  Mini-batch rows are gathered through the epoch order (no copy of X).
- **Row blocks.** A batch of m rows is cut into a number of blocks that depends on m
  only; each block sums into its own float64 partial and the partials are added in
  block order. Large batches run the blocks in parallel (``prange``), small ones run
  them in a serial loop: both give bit-identical results, whatever the thread count.
- **Sums in float64.** Predictions, gradients and losses accumulate in float64 even for
  float32 data; parameters, gradients and optimizer slots are stored in the data's
  dtype (float32 in, float32 out).
- **Specs as numbers.** The kernels take the int codes and float parameters of
  :class:`~fastgd.specs.LoweredModel` / :class:`~fastgd.specs.LoweredOptimizer` as plain
  scalars and float64 arrays. Only the loss code is a compile-time constant (one entry
  point per loss, see :func:`_for_each_loss`), so the training loop is compiled at most
  3 losses x 2 dtypes times, lazily, and cached on disk (``cache=True``;
  ``NUMBA_CACHE_DIR`` chooses where).
- **Prefetch hints.** Rows gathered through a shuffled order are prefetched a few
  kilobytes ahead (an ``llvm.prefetch`` intrinsic), which hides part of the memory
  latency of random rows.
- **fastmath without nnan/ninf.** Reassociation (vectorised sums), contraction (FMA),
  reciprocal approximation and signed-zero freedom only, so a NaN or an infinity
  produced by a diverging run still propagates to the loss that ``fit`` checks.
- **Per-sample SGD** (batch size 1, the SGD optimizer) has its own tight loop that fuses
  the dot product, the loss and the update of each sample (without momentum or penalty,
  the update of one sample and the dot product of the next share one loop).
"""

from __future__ import annotations

import math

import numpy as np
from llvmlite import ir
from numba import get_num_threads, njit, prange, types
from numba.core import cgutils
from numba.extending import intrinsic

from ..specs import (
    LOSS_HUBER,
    LOSS_LOGISTIC,
    LOSS_SQUARED,
    OPT_ADAGRAD,
    OPT_ADAM,
    OPT_ADAMW,
    OPT_RMSPROP,
    OPT_SGD,
    SCHED_CONSTANT,
    SCHED_COSINE,
    SCHED_EXPONENTIAL,
    SCHED_INVSCALING,
    LoweredModel,
    LoweredOptimizer,
)

__all__ = ["NAME", "prepare", "loss_grad", "init_state", "update", "run_epochs"]

NAME = "numba"

State = tuple[int, np.ndarray]

#: fastmath flags that keep ``isnan``/``isinf`` and NaN propagation intact.
FASTMATH = {"reassoc", "contract", "arcp", "nsz"}
_JIT = {"cache": True, "nogil": True, "fastmath": FASTMATH}

#: A batch is cut into ``clip(m // _BLOCK_ROWS, 1, _MAX_BLOCKS)`` row blocks.
_BLOCK_ROWS = 512
_MAX_BLOCKS = 64
#: Batches with at least this many entries (rows x features) run their blocks in parallel:
#: on 2 cores the parallel loop wins from about 16k-32k entries (a few microseconds of
#: thread wake-up against 1.6-2x the throughput), serial wins below.
_PARALLEL_MIN_WORK = 1 << 15
#: How far ahead (in bytes of X, at least one row) gathered rows are prefetched.
_PREFETCH_BYTES = 4096
#: Row stride of the per-block partial sums, in float64: a multiple of a cache line.
_LINE = 8

_OPT_CODES = (OPT_SGD, OPT_ADAGRAD, OPT_RMSPROP, OPT_ADAM, OPT_ADAMW)
_SCHED_CODES = (SCHED_CONSTANT, SCHED_INVSCALING, SCHED_EXPONENTIAL, SCHED_COSINE)


def prepare(
    X: np.ndarray, y: np.ndarray, theta: np.ndarray, device: object = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Place the data and parameters where the kernels run: host memory, C-contiguous.

    Parameters
    ----------
    X : ndarray, shape (n, d); y : ndarray, shape (n,); theta : ndarray, shape (d + 1,)
        Checked, one float dtype.
    device : None or "cpu"
        This backend runs on the CPU only.

    Returns
    -------
    X, y, theta
        The same arrays when already C-contiguous (the usual case), else contiguous copies.
    """
    if device not in (None, "cpu"):
        raise ValueError(f"device must be None or 'cpu' for the {NAME} backend, got {device!r}")
    return np.ascontiguousarray(X), np.ascontiguousarray(y), np.ascontiguousarray(theta)


# ------------------------------------------------------------------ per-sample math


@njit(**_JIT)
def _sigmoid(p: float) -> float:
    """Numerically stable logistic sigmoid of a scalar."""
    e = math.exp(-abs(p))
    if p >= 0.0:
        return 1.0 / (1.0 + e)
    return e / (1.0 + e)


@njit(**_JIT)
def _loss_and_dloss(p: float, y: float, loss_code: int, loss_param: float):
    """Loss of one sample and its derivative with respect to the prediction ``p``."""
    if loss_code == LOSS_LOGISTIC:
        # log(1 + e^p) = max(p, 0) + log1p(e^-|p|), as numpy's logaddexp(0, p)
        return max(p, 0.0) + math.log1p(math.exp(-abs(p))) - y * p, _sigmoid(p) - y
    r = p - y
    if loss_code == LOSS_HUBER:
        eps = loss_param
        abs_r = abs(r)
        if abs_r <= eps:
            return 0.5 * r * r, r
        return eps * (abs_r - 0.5 * eps), eps if r > 0.0 else -eps
    return 0.5 * r * r, r


@njit(**_JIT)
def _sign(v: float) -> float:
    """``numpy.sign`` of a scalar: -1, 0 or 1 (NaN stays NaN)."""
    if v > 0.0:
        return 1.0
    if v < 0.0:
        return -1.0
    return v


# ------------------------------------------------------------------------ gradients


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
        # read access, high temporal locality, data cache
        builder.call(fn, [builder.bitcast(ptr, i8p), i32(0), i32(3), i32(1)])
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


@njit(**_JIT)
def _accumulate_rows(X, y, w64, b, rows, lo, hi, loss_code, loss_param, acc):
    """Add the samples at positions ``lo..hi-1`` into ``acc``, reading each row of X once.

    Parameters
    ----------
    X : ndarray, shape (n, d); y : ndarray, shape (n,)
    w64 : ndarray of float64, shape (d,); b : float
        Weights and intercept.
    rows : ndarray of int64
        Sample order (an epoch's): position k is sample ``rows[k]``; empty means position
        k is sample k. Gathered rows are prefetched a few positions ahead.
    lo, hi : int
        Positions in ``rows``.
    loss_code, loss_param : int, float
        The loss (a compile-time constant, see :func:`_for_each_loss`).
    acc : ndarray of float64, shape (>= d + 2,)
        ``acc[:d] += dloss_i · x_i``, ``acc[d] += dloss_i``, ``acc[d + 1] += loss_i``.
    """
    d = X.shape[1]
    gathered = rows.shape[0] > 0
    ahead = _prefetch_distance(X)
    loss_sum = 0.0
    dloss_sum = 0.0
    for k in range(lo, hi):
        if gathered:
            i = rows[k]
            if k + ahead < rows.shape[0]:
                _prefetch_row(X, rows[k + ahead])
        else:
            i = k
        x = X[i]
        p = 0.0
        for j in range(d):
            p += np.float64(x[j]) * w64[j]
        loss, dl = _loss_and_dloss(p + b, np.float64(y[i]), loss_code, loss_param)
        for j in range(d):
            acc[j] += dl * x[j]
        dloss_sum += dl
        loss_sum += loss
    acc[d] += dloss_sum
    acc[d + 1] += loss_sum


@njit(**_JIT)
def _sum_block(X, y, w64, b, rows, start, m, n_blocks, blk, loss_code, loss_param, partial):
    """Sum block ``blk`` of the ``n_blocks`` equal blocks of the m positions from ``start``
    into ``partial[blk]``. Serial and parallel both call it, so their partials are equal."""
    acc = partial[blk]
    acc[:] = 0.0
    lo = start + blk * m // n_blocks
    hi = start + (blk + 1) * m // n_blocks
    _accumulate_rows(X, y, w64, b, rows, lo, hi, loss_code, loss_param, acc)


@njit(**_JIT)
def _blocks_serial(X, y, w64, b, rows, start, m, n_blocks, loss_code, loss_param, partial):
    """Sum each of the ``n_blocks`` equal blocks of the m positions from ``start`` into its
    row of ``partial``, one block after the other."""
    for blk in range(n_blocks):
        _sum_block(X, y, w64, b, rows, start, m, n_blocks, blk, loss_code, loss_param, partial)


@njit(parallel=True, **_JIT)
def _blocks_parallel(X, y, w64, b, rows, start, m, n_blocks, loss_code, loss_param, partial):
    """:func:`_blocks_serial` with the blocks spread over numba's threads (same partials)."""
    for blk in prange(n_blocks):
        _sum_block(X, y, w64, b, rows, start, m, n_blocks, blk, loss_code, loss_param, partial)


@njit(**_JIT)
def _n_blocks(m: int) -> int:
    """Row blocks of a batch of m rows: a function of m only, so results never depend on
    the number of threads."""
    return min(_MAX_BLOCKS, max(1, m // _BLOCK_ROWS))


@njit(**_JIT)
def _new_scratch(d: int):
    """Scratch of a gradient kernel: the weights in float64 (d,) and the per-block partial
    sums (``_MAX_BLOCKS``, d + 2 rounded up to whole cache lines)."""
    return np.empty(d), np.empty((_MAX_BLOCKS, -(-(d + 2) // _LINE) * _LINE))


@njit(**_JIT)
def _batch_loss_grad(
    X, y, theta, rows, start, stop, loss_code, loss_param, l2, l1, fit_intercept, w64, partial,
    grad, parallel_min_work,
):
    """Mean loss plus penalty over a batch, and its gradient written into ``grad``.

    Parameters
    ----------
    X : ndarray, shape (n, d); y : ndarray, shape (n,); theta : ndarray, shape (d + 1,)
    rows : ndarray of int64, shape (n,) or (0,)
        The epoch's sample order, or empty for X's rows in order.
    start, stop : int
        The batch is positions ``start..stop-1`` of ``rows``.
    loss_code, loss_param, l2, l1, fit_intercept
        The lowered model.
    w64 : ndarray of float64, shape (d,)
        Scratch for the weights in float64.
    partial : ndarray of float64, shape (``_MAX_BLOCKS``, >= d + 2)
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
    n_blocks = _n_blocks(m)
    if n_blocks > 1 and m * d >= parallel_min_work:
        _blocks_parallel(X, y, w64, b, rows, start, m, n_blocks, loss_code, loss_param, partial)
    else:
        _blocks_serial(X, y, w64, b, rows, start, m, n_blocks, loss_code, loss_param, partial)
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


def _for_each_loss(make):
    """``{loss_code: make(loss_code)}`` for the three losses.

    The entry points made here pass their loss code to the kernels as a compile-time
    constant (a closure variable, typed as a literal), so each loss gets its own
    compiled kernel tree: the per-row loss has no branch on the code (the row loops run
    about a third faster than with a runtime switch) and the other losses' code is
    pruned. That is at most 3 losses x 2 dtypes specializations, each compiled on first
    use and cached.
    """
    return {code: make(code) for code in (LOSS_SQUARED, LOSS_HUBER, LOSS_LOGISTIC)}


def _loss_grad_kernel(loss_code: int):
    """:func:`_batch_loss_grad` over all rows of X, with its own scratch, for one loss."""

    @njit(**_JIT)
    def loss_grad_kernel(X, y, theta, loss_param, l2, l1, fit_intercept, grad, parallel_min_work):
        w64, partial = _new_scratch(X.shape[1])
        return _batch_loss_grad(
            X, y, theta, np.empty(0, dtype=np.int64), 0, X.shape[0], loss_code, loss_param,
            l2, l1, fit_intercept, w64, partial, grad, parallel_min_work,
        )

    return loss_grad_kernel


_LOSS_GRAD = _for_each_loss(_loss_grad_kernel)


def _loss_grad_into(X, y, theta, model: LoweredModel, grad, parallel_min_work: int) -> float:
    """The batch objective of ``model``; its gradient is written into ``grad``."""
    code, *numbers = _model_args(model)
    return _LOSS_GRAD[code](X, y, theta, *numbers, grad, parallel_min_work)


def _parallel_min_work() -> int:
    """``_PARALLEL_MIN_WORK``, or never parallel when numba runs one thread."""
    return _PARALLEL_MIN_WORK if get_num_threads() > 1 else np.iinfo(np.int64).max


def _model_args(model: LoweredModel) -> tuple[int, float, float, float, bool]:
    """The lowered model as the plain scalars the kernels take; unknown losses raise."""
    if model.loss_code not in (LOSS_SQUARED, LOSS_HUBER, LOSS_LOGISTIC):
        raise ValueError(f"unknown loss code {model.loss_code!r}")
    return (
        int(model.loss_code),
        float(model.loss_param),
        float(model.l2),
        float(model.l1),
        bool(model.fit_intercept),
    )


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
        Its gradient with respect to ``theta``, in theta's dtype (the intercept entry
        is 0 when the intercept is not trained); subgradient ``sign(w)`` for the l1 term.
    """
    X, y, theta = np.ascontiguousarray(X), np.ascontiguousarray(y), np.ascontiguousarray(theta)
    grad = np.empty_like(theta)
    loss = _loss_grad_into(X, y, theta, model, grad, _parallel_min_work())
    return float(loss), grad


# ------------------------------------------------------------------------- updates


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


@njit(**_JIT)
def _learning_rate(schedule_code, schedule_params, t):
    """Learning rate at update ``t`` (from 1): the formulas of ``specs.learning_rate``."""
    lr0 = schedule_params[0]
    p1 = schedule_params[1]
    p2 = schedule_params[2]
    if schedule_code == SCHED_INVSCALING:
        return lr0 / np.float64(t) ** p1
    if schedule_code == SCHED_EXPONENTIAL:
        return lr0 * p1 ** ((t - 1) / p2)
    if schedule_code == SCHED_COSINE:
        k = min(np.float64(t - 1), p1)
        return lr0 * ((1.0 - p2) * 0.5 * (1.0 + math.cos(math.pi * k / p1)) + p2)
    return lr0


@njit(**_JIT)
def _update_kernel(theta, grad, slots, t, code, params, schedule_code, schedule_params):
    """Update ``t`` (from 1) of the optimizer ``code``, in place on theta and slots.

    The expressions follow ``numpy_backend.update`` term for term (optax's formulas).
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
            if code == OPT_ADAMW and j < p - 1:
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
    t = int(step) + 1
    grad = np.ascontiguousarray(grad, dtype=theta.dtype)
    _update_kernel(theta, grad, slots, t, *_opt_args(opt))
    return theta, (t, slots)


# ------------------------------------------------------------------- training loop


@njit(**_JIT)
def _sgd_epochs(
    X, y, theta, slots, step, orders, loss_code, loss_param, l2, l1, fit_intercept,
    params, schedule_code, schedule_params, epoch_losses,
):
    """Per-sample SGD (with optional momentum): one fused pass per sample.

    For each sample: the prediction (one dot product over the row), its loss, then the
    gradient, the momentum trace and the parameter step in a second loop over the same
    row, which is still in L1. The same arithmetic as :func:`_batch_loss_grad` followed
    by :func:`_update_kernel` with m = 1. Returns the step count after the last update.

    Without momentum and penalty the step is ``θ −= (lr·dloss)·x`` (scikit-learn's
    rounding), fused with the next sample's dot product in one loop over the weights,
    and the trace, which then only holds the last gradient, is written once at the end.
    """
    n, d = X.shape
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


def _run_epochs_kernel(loss_code: int):
    """The compiled training loop for one loss code (see :func:`_for_each_loss`).

    The kernel runs every batch of ``epoch_losses.shape[0]`` epochs and returns the final
    step count. Epoch e walks ``orders[e % len(orders)]`` (an order 0, 1, 2, … reads X's
    rows directly); scratch is allocated once per call.
    """

    @njit(**_JIT)
    def run_epochs_kernel(
        X, y, theta, slots, step, orders, batch_size, loss_param, l2, l1, fit_intercept,
        code, params, schedule_code, schedule_params, epoch_losses, parallel_min_work,
    ):
        n, d = X.shape
        if batch_size == 1 and n > 1 and code == OPT_SGD:  # n = 1 is a full batch
            return _sgd_epochs(
                X, y, theta, slots, step, orders, loss_code, loss_param, l2, l1, fit_intercept,
                params, schedule_code, schedule_params, epoch_losses,
            )
        grad = np.empty(d + 1, dtype=theta.dtype)
        w64, partial = _new_scratch(d)
        in_order = np.empty(0, dtype=np.int64)
        for e in range(epoch_losses.shape[0]):
            if batch_size >= n:
                epoch_losses[e] = _batch_loss_grad(
                    X, y, theta, in_order, 0, n, loss_code, loss_param, l2, l1, fit_intercept,
                    w64, partial, grad, parallel_min_work,
                )
                step += 1
                _update_kernel(
                    theta, grad, slots, step, code, params, schedule_code, schedule_params
                )
                continue
            order = orders[e % orders.shape[0]]
            if _is_identity(order):
                order = in_order
            total = 0.0
            for start in range(0, n, batch_size):
                stop = min(start + batch_size, n)
                loss = _batch_loss_grad(
                    X, y, theta, order, start, stop, loss_code, loss_param, l2, l1,
                    fit_intercept, w64, partial, grad, parallel_min_work,
                )
                step += 1
                _update_kernel(
                    theta, grad, slots, step, code, params, schedule_code, schedule_params
                )
                total += loss * (stop - start)
            epoch_losses[e] = total / n
        return step

    return run_epochs_kernel


_RUN_EPOCHS = _for_each_loss(_run_epochs_kernel)


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
    X: np.ndarray,
    y: np.ndarray,
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
    X : ndarray, shape (n, d)
        All samples, C-contiguous, float32 or float64.
    y : ndarray, shape (n,)
        All targets, same dtype.
    theta : ndarray, shape (d + 1,)
        Starting parameters (the backend's own copy; updated in place here).
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
    step, slots = state
    n = X.shape[0]
    epoch_losses = np.empty(orders.shape[0], dtype=np.float64)
    loss_code, *model_numbers = _model_args(model)
    step = _RUN_EPOCHS[loss_code](
        X, y, theta, slots, int(step), _kernel_orders(orders, batch_size >= n),
        int(batch_size), *model_numbers, *_opt_args(opt), epoch_losses, _parallel_min_work(),
    )
    return theta, (int(step), slots), epoch_losses
