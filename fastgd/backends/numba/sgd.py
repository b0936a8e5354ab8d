"""Per-sample SGD (batch size 1, the SGD optimizer): every step of an epoch in one loop.

One output (:func:`_sgd_epochs`) fuses each sample's dot product, loss and update; with
an l2 penalty and neither momentum nor l1 (scikit-learn's default path) it keeps the
weights as ``scale·v`` and skips the update where the loss derivative is 0
(:func:`_sgd_epochs_l2`). K outputs (:func:`_sgd_epochs_matrix`) step densely with
momentum or l1 (:func:`_dense_sgd_step`), else keep the weights as ``scale·V`` with one
scale for all outputs (:func:`_scaled_sgd_step`); with several threads and independent
outputs, groups of outputs run on the threads, bit for bit the serial loop
(:func:`_sgd_epochs_grouped`, :func:`_output_groups`, :func:`_sgd_groups`).
"""

from __future__ import annotations

import numpy as np
from numba import get_num_threads, njit, prange

from .batches import _padded
from .jit import _JIT, ERROR_MODEL
from .losses import _clip_dloss, _loss_and_dloss, _row_loss_and_dloss
from .rows import (
    _dots,
    _dots_range,
    _near_distance,
    _predict,
    _prefetch_ahead,
    _prefetch_distance,
    _prefetch_row,
    _transpose_into,
)
from .updates import _learning_rate

#: Per-sample SGD folds its weight scale into the weights below this (scikit-learn: 1e-9).
_MIN_SCALE = 1e-9
#: Per-sample SGD with K > 1 runs groups of outputs on numba's threads from this many
#: entries (samples x features x outputs) per epoch, ``_SGD_CHUNK`` samples per chunk
#: (larger chunks: fewer waits at the end of each; 8192 beat 2048 by about 15%).
_SGD_PARALLEL_MIN_WORK = 1 << 20
_SGD_CHUNK = 8192
#: Samples ahead of :func:`_sgd_epochs_l2`'s L2 hint (``bench/default_path.py --sweep``, ms
#: 500,000 x 100 shuffled, 1-32 ahead, none: 347, 303, 278, 273, 282, 277, 364).
_SGD_PREFETCH_ROWS = 8


@njit(inline="always", **_JIT)
def _truncate_l1(w, q, d: int, u: float) -> None:
    """scikit-learn's cumulative truncated l1 penalty (Tsuruoka, Tsujii and Ananiadou
    2009) on the weights ``w[:d]``, in place, after a per-sample step.

    ``u`` is the penalty each weight could have received so far (Σ_t l1·lr_t, this step
    included) and ``q[j]`` the penalty weight j did receive (signed): a positive weight
    ``z`` becomes ``max(0, z − (u + q[j]))``, a negative one ``min(0, z + (u − q[j]))``,
    and ``q[j] += w[j] − z`` with the stored ``w[j]``. O(d) per step, as scikit-learn's on
    dense rows (every feature of a dense row is "in" it). The arithmetic is float64.
    """
    for j in range(d):
        _truncate_weight(w, q, j, u)


@njit(inline="always", **_JIT)
def _truncate_weight(w, q, j: int, u: float) -> None:
    """scikit-learn's cumulative l1 truncation of the weight ``w[j]`` (see
    :func:`_truncate_l1`), in place, float64 arithmetic."""
    z = np.float64(w[j])
    if z > 0.0:
        w[j] = max(0.0, z - (u + q[j]))
    elif z < 0.0:
        w[j] = min(0.0, z + (u - q[j]))
    q[j] += np.float64(w[j]) - z


@njit(inline="always", **_JIT)
def _average_into(avg, theta, k) -> None:
    """The running average of the iterates, in place: ``avg += (theta − avg) / k`` for
    the k-th iterate averaged (k = t − average + 1 after update t; k = 1 copies theta),
    elementwise over the flat ``avg`` and ``theta`` (the arithmetic in float64)."""
    for j in range(avg.shape[0]):
        a = np.float64(avg[j])
        avg[j] = a + (np.float64(theta[j]) - a) / k


# ---------------------------------------------------- per-sample SGD, K = 1 (vector)


@njit(**_JIT)
def _sgd_epochs(
    X, y, weight, theta, slots, step, orders, loss_code, loss_param, max_dloss, l2, l1,
    fit_intercept, params, schedule_code, schedule_params, epoch_losses, average,
):
    """Per-sample SGD (with optional momentum), one output: one fused pass per sample.

    For each sample: the prediction (one dot product over the row), its (weighted) loss,
    then the gradient, the momentum trace and the parameter step in a second loop over
    the same row, which is still in L1. The same arithmetic as :func:`_batch_loss_grad`
    followed by :func:`_update_kernel` with m = 1. Returns the step count after the last
    update.

    Without momentum, penalty and averaging :func:`_sgd_epochs_plain` runs instead; with
    l2 and neither momentum nor l1 nor averaging, :func:`_sgd_epochs_l2`.

    An l1 term is not in the step's gradient: after each step (momentum's included)
    scikit-learn's cumulative truncation (:func:`_truncate_l1`) applies it, with ``u``
    (float64 within the call) and ``q`` kept in ``slots[1]`` (``q`` at the weights, ``u``
    at the intercept's place), which the SGD optimizer does not use otherwise.

    ``average`` > 0: after each step t >= ``average`` (before the l1 truncation, as
    scikit-learn), the running average of the parameters in ``slots[2]``
    (:func:`_average_into`); the steps are then the dense ones of this loop.
    """
    n, d = X.shape
    weighted = weight.shape[0] > 0
    momentum = params[0]
    nesterov = params[1] != 0.0
    if momentum == 0.0 and l1 == 0.0 and l2 != 0.0 and average == 0:  # the default path
        return _sgd_epochs_l2(
            X, y, weight, theta, slots, step, orders, loss_code, loss_param, max_dloss, l2,
            fit_intercept, schedule_code, schedule_params, epoch_losses, _SGD_PREFETCH_ROWS,
        )
    if momentum == 0.0 and l1 == 0.0 and l2 == 0.0 and average == 0:  # plain SGD
        return _sgd_epochs_plain(
            X, y, weight, theta, slots, step, orders, loss_code, loss_param, max_dloss,
            fit_intercept, schedule_code, schedule_params, epoch_losses, _prefetch_distance(X),
        )
    penalized = l2 != 0.0 or l1 != 0.0
    ahead = _prefetch_distance(X)
    trace = slots[0]
    q = slots[1]  # the l1 truncation's q (weights) and u (at d); see _truncate_l1
    avg = slots[2]
    u = np.float64(q[d])
    for e in range(epoch_losses.shape[0]):
        order = orders[e % orders.shape[0]]
        total = 0.0
        for k in range(n):
            i = order[k]
            if k + ahead < n:  # even in order: the hint beats the hardware's own prefetch
                _prefetch_row(X, order[k + ahead])
            x = X[i]
            step += 1
            lr = _learning_rate(schedule_code, schedule_params, step)
            p = 0.0
            for j in range(d):
                p += np.float64(x[j]) * theta[j]
            loss, dl = _loss_and_dloss(p + theta[d], np.float64(y[i]), loss_code, loss_param)
            dl = _clip_dloss(dl, max_dloss)
            s = np.float64(weight[i]) if weighted else 1.0
            loss *= s
            dl *= s
            g_b = dl if fit_intercept else 0.0
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
                    g = dl * x[j] + l2 * wj  # l1: truncated after the step
                    trace[j] = g + momentum * trace[j]
                    theta[j] -= lr * (g + momentum * trace[j] if nesterov else trace[j])
            else:
                for j in range(d):
                    g = dl * x[j]
                    trace[j] = g + momentum * trace[j]
                    theta[j] -= lr * (g + momentum * trace[j] if nesterov else trace[j])
            trace[d] = g_b + momentum * trace[d]
            theta[d] -= lr * (g_b + momentum * trace[d] if nesterov else trace[d])
            if 0 < average <= step:
                _average_into(avg, theta, step - average + 1)
            if l1 != 0.0:
                u += l1 * lr
                _truncate_l1(theta, q, d, u)
            total += loss
        epoch_losses[e] = total / n
    if l1 != 0.0:
        q[d] = u
    return step


@njit(**_JIT)
def _sgd_epochs_plain(
    X, y, weight, theta, slots, step, orders, loss_code, loss_param, max_dloss,
    fit_intercept, schedule_code, schedule_params, epoch_losses, ahead,
):
    """Plain per-sample SGD (no momentum, penalty or averaging), one output: the step
    ``θ −= (lr·dloss)·x`` (scikit-learn's rounding), fused with the next sample's dot
    product in one loop over the weights. The trace, which then only holds the last
    gradient, is written once at the end. A loop of its own, so that the compiled hot
    loop carries none of the other paths' code (measured 5% faster than as a branch).

    Rows are prefetched ``ahead`` rows on into L2 (``_prefetch_distance(X)``; 4 to 32 rows
    alike, ``bench/shuffled_floor.py --sweep``) and, shuffled, 4 kB on into L1."""
    n, d = X.shape
    weighted = weight.shape[0] > 0
    trace = slots[0]
    last_i = -1
    last_dl = 0.0
    for e in range(epoch_losses.shape[0]):
        order = orders[e % orders.shape[0]]
        near = _near_distance(X, order, ahead)
        total = 0.0
        p_next = np.nan  # x_next · w, computed by the previous step
        for k in range(n):
            i = order[k]
            _prefetch_ahead(X, order, k, ahead, near)  # in order too (L2): beats the CPU's own
            x = X[i]
            step += 1
            lr = _learning_rate(schedule_code, schedule_params, step)
            if k > 0:
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
        epoch_losses[e] = total / n
    if last_i >= 0:
        for j in range(d):
            trace[j] = last_dl * X[last_i, j]
        trace[d] = last_dl if fit_intercept else 0.0
    return step


@njit(**_JIT)
def _sgd_epochs_l2(
    X, y, weight, theta, slots, step, orders, loss_code, loss_param, max_dloss, l2,
    fit_intercept, schedule_code, schedule_params, epoch_losses, ahead,
):
    """Per-sample SGD with an l2 penalty, no momentum and no l1, one output: the weights
    kept as ``w = scale·v`` (scikit-learn's ``WeightVector``); returns the step count.

    The step ``w −= lr·(dloss·x + l2·w)`` becomes ``scale *= 1 − lr·l2`` (O(1)) and
    ``v += (−lr·dloss / scale)·x``, skipped where the loss derivative is 0 (a met hinge,
    squared hinge or modified Huber margin, a residual inside epsilon): such a step costs
    one dot product. A factor ``1 − lr·l2`` <= 0 (lr·l2 >= 1) is kept, as the gradient
    step of the other backends has it (scikit-learn clamps it at 0): the scale may turn
    negative or 0; one below ``_MIN_SCALE`` in size is folded into ``v``, as scikit-learn
    does below 1e-9. ``v`` and the intercept are float64 within the call, rounded to
    theta's dtype at its end.

    The objective's penalty ``0.5·l2·‖w‖²`` (before each step) is ``0.5·l2·scale²·‖v‖²``:
    ``‖v‖²`` only changes where ``v`` does, and the loop that updates ``v`` sums the new
    squares, so it is exact at every step, with no drift and no extra pass over the
    weights. (The incremental ``‖v‖² + 2c(v·x) + c²‖x‖²`` costs the same FMA per weight
    and drifts: by up to 1.4e-14 relative over the 2.5 million steps of
    ``bench/default_path.py``'s problem, and without bound relative to a ``‖v‖²`` that a
    step nearly cancels.)

    Rows are prefetched ``ahead`` samples ahead along the epoch's order, in order too.
    On the call's last step the gradient ``dloss·x + l2·w`` is written to the trace
    (``slots[0]``) before the step, as the dense loop leaves it.
    """
    n, d = X.shape
    weighted = weight.shape[0] > 0
    v = np.empty(d)
    sq = 0.0
    for j in range(d):
        v[j] = theta[j]
        sq += v[j] * v[j]
    b = np.float64(theta[d])
    scale = 1.0
    n_epochs = epoch_losses.shape[0]
    for e in range(n_epochs):
        order = orders[e % orders.shape[0]]
        total = 0.0
        for k in range(n):
            i = order[k]
            if k + ahead < n:
                _prefetch_row(X, order[k + ahead])
            step += 1
            lr = _learning_rate(schedule_code, schedule_params, step)
            dot = 0.0
            for j in range(d):
                dot += np.float64(X[i, j]) * v[j]
            loss, dl = _loss_and_dloss(scale * dot + b, np.float64(y[i]), loss_code, loss_param)
            dl = _clip_dloss(dl, max_dloss)
            s = np.float64(weight[i]) if weighted else 1.0
            total += loss * s + 0.5 * l2 * (scale * scale * sq)
            update = -lr * dl * s  # scikit-learn's rounding: (−eta·dloss)·sample_weight
            if e == n_epochs - 1 and k == n - 1:  # the trace: the last gradient, exact
                trace = slots[0]
                for j in range(d):
                    trace[j] = dl * s * X[i, j] + l2 * (scale * v[j])
                trace[d] = dl * s if fit_intercept else 0.0
            scale *= 1.0 - lr * l2
            if abs(scale) < _MIN_SCALE:
                sq = 0.0
                for j in range(d):
                    v[j] *= scale
                    sq += v[j] * v[j]
                scale = 1.0
            if update != 0.0:
                c = update / scale
                sq = 0.0
                for j in range(d):
                    vj = v[j] + np.float64(X[i, j]) * c
                    v[j] = vj
                    sq += vj * vj
                if fit_intercept:
                    b += update
        epoch_losses[e] = total / n
    for j in range(d):
        theta[j] = scale * v[j]
    theta[d] = b
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
    m = 1, without the l1 term in the gradient (the caller truncates after the step,
    :func:`_truncate_l1`; ``l1`` is in the objective). Returns the sample's objective."""
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
            g = dl * X[i, j] + l2 * wj  # l1: truncated after the step (the caller)
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


@njit(cache=True, nogil=True, error_model=ERROR_MODEL, fastmath={"contract", "arcp", "nsz"})
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
    fit_intercept, params, schedule_code, schedule_params, epoch_losses, average,
):
    """Per-sample SGD for K outputs; returns the step count after the last update.

    The parameters and the momentum trace are worked on as float64 transposes (K, d + 1)
    and written back to ``theta`` and ``slots[0]`` at the end. With momentum or an l1
    term every step touches every parameter (:func:`_dense_sgd_step`); an l1 term is then
    applied after each step by scikit-learn's truncation (:func:`_truncate_l1`), each
    output's column with its own ``q``, all with one ``u`` (the learning rate is shared),
    kept as float64 (K, d + 1) within the call and in ``slots[1]`` between calls (``q``
    at the weights' rows, ``u`` at the intercepts' row). Without them the
    weights are kept scaled (:func:`_scaled_sgd_step`): their squared norm is recomputed
    exactly at each epoch's start, and the last step of the call is taken dense on the
    unscaled weights, so that the trace (the last gradient) is exact.

    ``average`` > 0: every step is dense, and after each step t >= ``average`` (before
    the l1 truncation) the running average of the parameters is updated, kept as a
    float64 (K, d + 1) transpose within the call and in ``slots[2]`` between calls.
    """
    n, d = X.shape
    K = theta.shape[1]
    momentum = params[0]
    nesterov = params[1] != 0.0
    scaled = momentum == 0.0 and l1 == 0.0 and average == 0
    ahead = _prefetch_distance(X)
    v = np.empty((K, _padded(d + 1)))  # rows on cache-line boundaries: faster dot products
    trace = np.empty((K, d + 1))
    _transpose_into(theta, v)
    _transpose_into(slots[0], trace)
    q = np.empty((K, d + 1))  # the l1 truncation's q per output and u (at d)
    _transpose_into(slots[1], q)
    u = q[0, d]
    avg = np.empty((K, d + 1))
    _transpose_into(slots[2], avg)
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
            if 0 < average <= step:
                for c in range(K):
                    _average_into(avg[c], v[c, : d + 1], step - average + 1)
            if l1 != 0.0:
                u += l1 * lr
                for c in range(K):
                    _truncate_l1(v[c], q[c], d, u)
        epoch_losses[e] = total / n
    for j in range(d + 1):
        for k in range(K):
            theta[j, k] = v[k, j]
            slots[0, j, k] = trace[k, j]
    if average > 0:
        for j in range(d + 1):
            for k in range(K):
                slots[2, j, k] = avg[k, j]
    if l1 != 0.0:
        for k in range(K):
            q[k, d] = u
        for j in range(d + 1):
            for k in range(K):
                slots[1, j, k] = q[k, j]
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


def _sgd_groups(X: np.ndarray, theta: np.ndarray) -> int:
    """At most how many output groups per-sample SGD with K > 1 runs in parallel: numba's
    thread count from ``_SGD_PARALLEL_MIN_WORK`` entries (n·d·K) per epoch, else 1."""
    n, d = X.shape
    return get_num_threads() if n * d * theta.shape[1] >= _SGD_PARALLEL_MIN_WORK else 1
