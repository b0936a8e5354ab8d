"""The batch gradient: mean (weighted) loss plus penalty and its gradient over a batch.

A batch of m rows is cut into row blocks whose number depends on m (and the model's size)
only (:func:`_n_blocks`); each block sums its rows into its own float64 partial, reading
each row of X once for all outputs, and the partials are added in block order, so the
serial and the parallel loop over the blocks give the same bits. Two kernel families:
one output (*vector*: :func:`_batch_loss_grad`) and K outputs (*matrix*:
:func:`_batch_loss_grad_matrix`), each with its scratch (:func:`_new_scratch`,
:func:`_new_scratch_matrix`), allocated by the caller.
"""

from __future__ import annotations

import numpy as np
from numba import get_num_threads, njit, prange

from .jit import _JIT, ERROR_MODEL
from .losses import _clip_dloss, _loss_and_dloss, _row_loss_and_dloss, _sign
from .rows import _add_row, _predict, _prefetch_distance, _prefetch_row, _transpose_into

#: A batch is cut into ``clip(m // _BLOCK_ROWS, 1, max_blocks)`` row blocks, where
#: ``max_blocks`` is ``_MAX_BLOCKS`` unless the partial sums would pass ``_PARTIAL_ENTRIES``.
_BLOCK_ROWS = 512
_MAX_BLOCKS = 64
_PARTIAL_ENTRIES = 1 << 22
#: Batches with at least this many entries (rows x features x outputs) run their blocks in
#: parallel: on 2 cores the parallel loop wins from about 16k-32k entries (a few
#: microseconds of thread wake-up against 1.6-2x the throughput), serial wins below.
_PARALLEL_MIN_WORK = 1 << 15
#: Row stride of the per-block scratch, in float64: a multiple of a cache line.
_LINE = 8
#: The vector gradient kernel takes a block's rows by chunks of this many (see
#: :func:`_accumulate_rows`): 16 rows of 100 float64 take 12.8 kB of L1.
_CHUNK_ROWS = 16


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


def _parallel_min_work() -> int:
    """``_PARALLEL_MIN_WORK``, or never parallel when numba runs one thread."""
    return _PARALLEL_MIN_WORK if get_num_threads() > 1 else np.iinfo(np.int64).max


# ------------------------------------------------------- gradients, K = 1 (vector)


@njit(**_JIT)
def _accumulate_rows(X, y, weight, w64, b, rows, lo, hi, loss_code, loss_param, max_dloss, acc):
    """Add the samples at positions ``lo..hi-1`` into ``acc``, reading each row of X once
    from memory.

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

    Notes
    -----
    The positions go by chunks of ``_CHUNK_ROWS``: first each row's prediction and loss
    derivative, then the chunk's rows added to ``acc`` four at a time
    (:func:`_add_rows`), while they are still in L1. Each ``acc[j]`` receives the rows'
    terms one after the other in position order, as a row-by-row loop adds them: the
    same bits, with a quarter of the loads and stores of ``acc``, and the predictions of
    a chunk are independent of each other (200,000 x 100 float64, Adam with batch 64,
    shuffled: about 10% faster, ``bench/shuffled_floor.py``).
    """
    d = X.shape[1]
    weighted = weight.shape[0] > 0
    gathered = rows.shape[0] > 0
    ahead = _prefetch_distance(X)
    n_hinted = rows.shape[0] if gathered else X.shape[0]
    # Rows in order are prefetched too in a small batch (the next batch's rows arrive
    # during this one and the update between them); a long block streams by itself.
    # The two row choices are two loops around inlined rows (:func:`_four_rows`,
    # :func:`_one_row`): a shared helper for the choice kept its branches inside the loop
    # (mini-batch Adam in order 47 -> 57 ms, shuffled 123 -> 146 ms); one loop with both
    # choices inside cost 4% shuffled (200,000 x 100 float64, batches of 64). Gathered
    # rows go four at a time, so that their cache misses overlap; rows in order stream
    # by themselves, and four at a time measured slower there (the full batch of
    # 2,000,000 x 32 in one process: 25.5 -> 31.0 ms).
    hint_in_order = hi - lo < _BLOCK_ROWS
    dls = np.empty((2, _CHUNK_ROWS))  # the chunk's loss derivatives, then its losses
    loss_sum = 0.0
    dloss_sum = 0.0
    for chunk in range(lo, hi, _CHUNK_ROWS):
        stop = min(chunk + _CHUNK_ROWS, hi)
        k = chunk
        if gathered:
            while k + 4 <= stop:
                for t in range(k + ahead, min(k + 4 + ahead, n_hinted)):
                    _prefetch_row(X, rows[t])
                dloss_sum = _four_rows(
                    X, y, weight, weighted, w64, b, rows[k], rows[k + 1], rows[k + 2],
                    rows[k + 3], loss_code, loss_param, max_dloss, dls, k - chunk, dloss_sum,
                )
                k += 4
            while k < stop:
                if k + ahead < n_hinted:
                    _prefetch_row(X, rows[k + ahead])
                dloss_sum = _one_row(
                    X, y, weight, weighted, w64, b, rows[k], loss_code, loss_param, max_dloss,
                    dls, k - chunk, dloss_sum,
                )
                k += 1
        else:
            while k < stop:
                if hint_in_order and k + ahead < n_hinted:
                    _prefetch_row(X, k + ahead)
                dloss_sum = _one_row(
                    X, y, weight, weighted, w64, b, k, loss_code, loss_param, max_dloss, dls,
                    k - chunk, dloss_sum,
                )
                k += 1
        loss_sum = _add_rows(X, rows, chunk, stop, dls, acc, loss_sum)
    acc[d] += dloss_sum
    acc[d + 1] += loss_sum


@njit(inline="always", **_JIT)
def _four_rows(
    X, y, weight, weighted, w64, b, i0, i1, i2, i3, loss_code, loss_param, max_dloss, dls, t,
    dloss_sum,
):
    """Samples i0..i3's predictions in one pass over the weights, then their weighted
    losses and loss derivatives into ``dls[:, t:t + 4]`` (as :func:`_one_row` each);
    returns ``dloss_sum`` plus the four derivatives, added in that order.

    Four independent sums over four rows: the rows' cache misses overlap each other and
    the weights are loaded once for four (a copy of the batch loop, 200,000 x 100
    float64 shuffled, batches of 64: 97 -> 80 ns a row, the read-only floor 75; in
    cache 31 -> 28)."""
    p0 = p1 = p2 = p3 = 0.0
    for j in range(X.shape[1]):
        wj = w64[j]
        p0 += np.float64(X[i0, j]) * wj
        p1 += np.float64(X[i1, j]) * wj
        p2 += np.float64(X[i2, j]) * wj
        p3 += np.float64(X[i3, j]) * wj
    dloss_sum = _sample_into(y, weight, weighted, p0 + b, i0, loss_code, loss_param,
                             max_dloss, dls, t, dloss_sum)  # fmt: skip
    dloss_sum = _sample_into(y, weight, weighted, p1 + b, i1, loss_code, loss_param,
                             max_dloss, dls, t + 1, dloss_sum)  # fmt: skip
    dloss_sum = _sample_into(y, weight, weighted, p2 + b, i2, loss_code, loss_param,
                             max_dloss, dls, t + 2, dloss_sum)  # fmt: skip
    return _sample_into(y, weight, weighted, p3 + b, i3, loss_code, loss_param, max_dloss,
                        dls, t + 3, dloss_sum)  # fmt: skip


@njit(inline="always", **_JIT)
def _one_row(
    X, y, weight, weighted, w64, b, i, loss_code, loss_param, max_dloss, dls, t, dloss_sum
):
    """Sample i's prediction at the weights ``w64`` (float64) and intercept ``b``, then
    its weighted loss and loss derivative into ``dls[:, t]``; returns ``dloss_sum`` plus
    the derivative."""
    p = 0.0
    for j in range(X.shape[1]):
        p += np.float64(X[i, j]) * w64[j]
    return _sample_into(y, weight, weighted, p + b, i, loss_code, loss_param, max_dloss, dls, t,
                        dloss_sum)  # fmt: skip


@njit(inline="always", **_JIT)
def _sample_into(y, weight, weighted, z, i, loss_code, loss_param, max_dloss, dls, t, dloss_sum):
    """Sample i's loss and clipped loss derivative at the prediction ``z``, times its
    weight (1 when not ``weighted``), into ``dls[1, t]`` and ``dls[0, t]``; returns
    ``dloss_sum`` plus the derivative."""
    loss, dl = _loss_and_dloss(z, np.float64(y[i]), loss_code, loss_param)
    dl = _clip_dloss(dl, max_dloss)
    s = np.float64(weight[i]) if weighted else 1.0
    dls[0, t] = dl * s
    dls[1, t] = loss * s
    return dloss_sum + dl * s


@njit(cache=True, nogil=True, error_model=ERROR_MODEL, fastmath={"contract", "arcp", "nsz"})
def _add_rows(X, rows, lo, hi, dls, acc, loss_sum):
    """``acc[:d] += dls[0, k − lo]·X[rows[k]]`` for the positions ``lo <= k < hi``
    (position k is row k when ``rows`` is empty), four rows per pass over ``acc``; returns
    ``loss_sum`` plus the losses ``dls[1, :hi − lo]``, added one after the other.

    Each ``acc[j]`` still adds the rows' terms one at a time, in position order:
    compiled without reassociation, so that the four terms are not summed first (the
    result is bit for bit the row-by-row loop's). The losses are added here, not beside
    their weighting in the caller's loop, where ``loss·s`` would be fused into the sum
    (one rounding instead of the row-by-row loop's two)."""
    for t in range(hi - lo):
        loss_sum += dls[1, t]
    d = X.shape[1]
    gathered = rows.shape[0] > 0
    k = lo
    while k + 4 <= hi:
        if gathered:
            i0, i1, i2, i3 = rows[k], rows[k + 1], rows[k + 2], rows[k + 3]
        else:
            i0, i1, i2, i3 = k, k + 1, k + 2, k + 3
        t = k - lo
        c0, c1, c2, c3 = dls[0, t], dls[0, t + 1], dls[0, t + 2], dls[0, t + 3]
        for j in range(d):
            a = acc[j]
            a += c0 * X[i0, j]
            a += c1 * X[i1, j]
            a += c2 * X[i2, j]
            a += c3 * X[i3, j]
            acc[j] = a
        k += 4
    while k < hi:
        i = rows[k] if gathered else k
        c = dls[0, k - lo]
        for j in range(d):
            acc[j] += c * X[i, j]
        k += 1
    return loss_sum


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
    sums = partial[0]  # block 0's sums, then (several blocks) all of them
    if n_blocks > 1 and m * d >= parallel_min_work:
        _blocks_parallel(
            X, y, weight, w64, b, rows, start, m, n_blocks, loss_code, loss_param, max_dloss,
            partial,
        )
    elif n_blocks > 1:
        _blocks_serial(
            X, y, weight, w64, b, rows, start, m, n_blocks, loss_code, loss_param, max_dloss,
            partial,
        )
    else:  # one block (a batch below 2 x _BLOCK_ROWS rows): no call layers in between
        for j in range(d + 2):
            sums[j] = 0.0
        _accumulate_rows(
            X, y, weight, w64, b, rows, start, stop, loss_code, loss_param, max_dloss, sums
        )
    if n_blocks > 1:
        _add_partials(partial, n_blocks, d + 2)
    penalty = 0.0
    if l2 != 0.0 or l1 != 0.0:
        ww = 0.0
        aw = 0.0
        for j in range(d):
            wj = w64[j]
            grad[j] = sums[j] / m + l2 * wj + l1 * _sign(wj)
            ww += wj * wj
            aw += abs(wj)
        penalty = 0.5 * l2 * ww + l1 * aw
    else:
        for j in range(d):
            grad[j] = sums[j] / m
    grad[d] = sums[d] / m if fit_intercept else 0.0
    return sums[d + 1] / m + penalty


@njit(**_JIT)
def _add_partials(partial, n_blocks: int, width: int) -> None:
    """``partial[0, :width] += partial[blk, :width]`` for blk = 1 … n_blocks − 1, in
    block order (each entry's sum is the one a loop over the blocks makes)."""
    for blk in range(1, n_blocks):
        for j in range(width):
            partial[0, j] += partial[blk, j]


# ------------------------------------------------------- gradients, K > 1 (matrix)


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
