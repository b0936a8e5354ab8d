"""Reading rows of X: prefetch hints for gathered rows, and a row's dot products.

Rows gathered through a shuffled order are prefetched ``_PREFETCH_BYTES`` ahead into L2
(an ``llvm.prefetch`` intrinsic, :func:`_prefetch`; :func:`_prefetch_1d` for 1-D arrays
such as a CSR matrix's index arrays), which hides part of the memory latency of random
rows; the per-sample loops also bring the rows ``_NEAR_BYTES`` ahead into L1
(:func:`_prefetch_ahead`). :func:`_dots` computes a row's dot products with K parameter
rows, four per pass over the row; :func:`_predict` and :func:`_add_row` are a sample's K
predictions and its K gradient rows.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic, overload

from .jit import _JIT

#: How far ahead (in bytes of X, at least one row) rows are prefetched, into L2 (see
#: :func:`_prefetch`). Measured on 2 cores (Adam, batch 64, 200,000 x 100 float64, five
#: epochs, run_epochs alone): 4 kB ahead into L1 took 130 ms shuffled and 55 ms in order,
#: 16 kB ahead into L2 120 and 48 ms. Into L1 the hints wait on the core's few L1 miss
#: buffers; into L2, more loads are in flight at once.
_PREFETCH_BYTES = 16384
#: How far ahead (in bytes of X, at least one row) :func:`_prefetch_ahead` brings rows on
#: into L1, after the L2 hint above, in plain per-sample SGD (``sgd._sgd_epochs_plain``)
#: over shuffled rows. 200,000 x 100 float64, a copy of that loop, one process, 9 rounds
#: interleaved: 1.46x the read-only floor with the L2 hint alone, 1.20-1.32x with an L1
#: hint 3-6 rows (2.4-4.8 kB) ahead too; ``bench/shuffled_floor.py`` in alternating
#: processes, 1.87-1.97x -> 1.61-1.73x. Measured worse elsewhere, which keep the L2 hint
#: alone: Adam batch 64 (1.64-1.91x -> 1.74-1.84x) and the l2 loop of scikit-learn's
#: default path (``bench/default_path.py``, 500,000 x 100 shuffled: 287-315 -> 382-417 ms).
_NEAR_BYTES = 4096


# ----------------------------------------------------------------- row gathering

#: Bytes of a cache line.
_LINE_BYTES = 64


def _prefetch_code(locality: int):
    """The code generator of a prefetch hint of the element ``args[0][args[1:]]``: read
    access, data cache, ``locality`` 1 (into L2: see ``_PREFETCH_BYTES``) or 3 (into L1:
    ``_NEAR_BYTES``)."""

    def emit(context, builder, signature, args):
        aryty = signature.args[0]
        ary = context.make_array(aryty)(context, builder, args[0])
        ptr = cgutils.get_item_pointer(
            context, builder, aryty, ary, list(args[1:]), wraparound=False
        )
        i8p = ir.IntType(8).as_pointer()
        i32 = ir.IntType(32)
        fnty = ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.prefetch.p0")
        builder.call(fn, [builder.bitcast(ptr, i8p), i32(0), i32(locality), i32(1)])
        return context.get_dummy_value()

    return emit


_emit_prefetch = _prefetch_code(1)
_emit_prefetch_near = _prefetch_code(3)


@intrinsic
def _prefetch(typingctx, arr, i, j):
    """Ask the CPU to start loading the cache line of ``arr[i, j]`` (a hint: no result)."""
    return types.void(arr, types.intp, types.intp), _emit_prefetch


@intrinsic
def _prefetch_near(typingctx, arr, i, j):
    """Ask the CPU to bring the cache line of ``arr[i, j]`` into L1 (a hint: no result)."""
    return types.void(arr, types.intp, types.intp), _emit_prefetch_near


@intrinsic
def _prefetch_1d(typingctx, arr, i):
    """Ask the CPU to start loading the cache line of ``arr[i]`` (a 1-D array; a hint)."""
    return types.void(arr, types.intp), _emit_prefetch


def _line_step(X) -> int:
    """Elements of X in one cache line (at least 1): a compile-time constant in compiled
    code (see its overload), so that a row's hints step by a known stride."""
    return max(1, _LINE_BYTES // X.itemsize)


@overload(_line_step, jit_options={"cache": True})
def _line_step_constant(X):
    step = max(1, _LINE_BYTES * 8 // X.dtype.bitwidth)
    return lambda X: step


@njit(**_JIT)
def _prefetch_row(X, i):
    """Prefetch every cache line of row ``i`` of X.

    The stride is a compile-time constant (:func:`_line_step`): computed from
    ``X.itemsize`` at run time, it cost two integer divisions a row, a large part of a
    row's compute (per-sample SGD over 4,000 x 100 float64 rows, in cache: 54 -> 38 ns a
    row with this and numpy's error model, ``jit.ERROR_MODEL``, together)."""
    d = X.shape[1]
    for j in range(0, d, _line_step(X)):
        _prefetch(X, i, j)
    _prefetch(X, i, d - 1)


@njit(**_JIT)
def _prefetch_row_near(X, i):
    """Bring every cache line of row ``i`` of X into L1 (stride as in :func:`_prefetch_row`)."""
    d = X.shape[1]
    for j in range(0, d, _line_step(X)):
        _prefetch_near(X, i, j)
    _prefetch_near(X, i, d - 1)


@njit(inline="always", **_JIT)
def _prefetch_ahead(X, order, k, ahead, near):
    """The hints of position ``k`` of ``order`` (rows of X): the row ``ahead`` positions on
    into L2 and, if ``near`` > 0, the row ``near`` positions on into L1 (which the first
    hint has brought near by then; ``near`` from :func:`_near_distance`)."""
    n = order.shape[0]
    if k + ahead < n:
        _prefetch_row(X, order[k + ahead])
    if near > 0 and k + near < n:
        _prefetch_row_near(X, order[k + near])


@njit(**_JIT)
def _near_distance(X, order, ahead: int) -> int:
    """Positions ahead for :func:`_prefetch_ahead`'s L1 hint in an epoch over ``order``:
    ``_NEAR_BYTES`` of X (at least one row); 0 (no L1 hint) for rows in order, which the
    CPU streams by itself, or where it would not come before the L2 hint's row."""
    if _NEAR_BYTES == 0 or _is_identity(order):
        return 0
    near = max(1, _NEAR_BYTES // (X.shape[1] * X.itemsize))
    return near if near < ahead else 0


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


# ------------------------------------------------------------- a row's dot products



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
