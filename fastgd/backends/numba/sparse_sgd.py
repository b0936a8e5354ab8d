"""Per-sample SGD on CSR rows (batch size 1, the SGD optimizer without momentum): each step
costs O(nnz of the row · K), not O(d).

:func:`_sparse_sgd_epochs` (one output, K a compile-time 1) and
:func:`_sparse_sgd_epochs_matrix` (K outputs in one pass) run the same loop
(:func:`_sgd_kernel`):

- **Weights as ``scale·V``** (scikit-learn's ``WeightVector``): ``V`` (d + 1, K) float64,
  a feature's K outputs contiguous, the intercepts in its last row; one scale for every
  output (they share the learning rate and the l2 shrink). A step multiplies ``scale``
  by ``1 − lr·l2`` and adds ``(−lr·dloss_k·s / scale)·x`` to the row's entries of
  output k (the K outputs of a stored value in one contiguous pass), skipped when every
  ``dloss_k`` is 0. A scale below 1e-9 in size is folded into ``V`` (O(d·K), rare). The
  objective's penalty uses ``‖V‖²`` (updated as ``‖v + c·x‖² = ‖v‖² + c·(2·v·x +
  c·‖x‖²)``) and, with l1, ``Σ|V|`` (updated at the entries a step changes); both are
  recomputed exactly at each epoch's start.
- **l1: scikit-learn's cumulative truncation on the features the row stores**, after
  the step (its sparse rule: a weight whose feature a row does not store is truncated
  when its feature next appears, so on sparse X the result differs from the dense rule,
  which truncates every weight after every step). ``u`` (shared) and ``q`` (d, K) live
  in ``slots[1]`` as on dense X.
- **Averaging in a lazy form**, exact: the running average of the weights after update
  t is ``g·(P + c·V)``, with ``g`` and ``c`` two numbers updated per step (O(1)) and
  ``P`` (d, K) changed only where ``V`` changes (``P −= c·ΔV``); the intercepts are
  averaged directly. The average is formed at the end of the call into ``slots[2]``.
- ``intercept_decay`` multiplies the intercepts' steps (scikit-learn: 0.01 on sparse X).
- The one-class SVM's intercept ``slope``: ``slope·b`` in the objective, ``−lr·slope``
  added to each intercept's step (scikit-learn: ``(update − eta·nu)·decay``).
- Passive-aggressive schedules (``SCHED_PA1``/``SCHED_PA2``, ``lr`` = C): the step
  ``−tau·sign(dloss)·s`` of the dense loop (``sgd_dense._pa_size``, ``tau`` from the row's
  squared norm), the objective the unweighted losses alone.
- **Prefetch in stages** along the epoch's order: the row pointer of the sample
  ``3·ahead`` ahead, every cache line of the column indices and values of the row
  ``2·ahead`` ahead (whose pointer the first stage brought in), and the entries of ``V``
  at the columns of the row ``ahead`` ahead (whose indices the second stage brought
  in). An epoch in order skips the first two stages (the CPU streams the CSR arrays by
  itself; the hints cost 3–10 % there). Prefetching only the first line of a row's
  arrays left a shuffled epoch at 1.12x scikit-learn's; every line, 1.68–1.75x
  (``bench/sparse_text.py``).

With ``sk_norms``, the objective's penalty uses scikit-learn's approximate norms of the
weights instead (see ``LoweredModel.sklearn_sparse_norms``), one pair per output, read
from and written back to ``norms`` (2, K) so that they carry across the calls of a fit.

The call's last step writes its gradient into the trace (``slots[0]``), as the dense
loops leave it.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ...specs import SCHED_PA1, SCHED_PA2
from .jit import _JIT
from .losses import _clip_dloss, _loss_and_dloss, _row_loss_and_dloss
from .rows import _is_identity, _prefetch, _prefetch_1d
from .sgd_dense import _pa_size
from .updates import _learning_rate

#: The weights' scale is folded into them below this size (scikit-learn: 1e-9).
_MIN_SCALE = 1e-9
#: Samples ahead whose entries of V are prefetched (the rows' indices: twice as far).
#: Measured with ``bench/sparse_text.py --sweep`` (see the README's sparse section).
_SPARSE_PREFETCH_ROWS = 4


@njit(inline="always", **_JIT)
def _prefetch_row_arrays(indptr, indices, values, i):
    """Prefetch every cache line of row ``i``'s column indices and stored values."""
    lo = indptr[i]
    hi = indptr[i + 1]
    if hi <= lo:
        return
    for pos in range(lo, hi, 64 // indices.itemsize):
        _prefetch_1d(indices, pos)
    _prefetch_1d(indices, hi - 1)
    for pos in range(lo, hi, 64 // values.itemsize):
        _prefetch_1d(values, pos)
    _prefetch_1d(values, hi - 1)


@njit(**_JIT)
def _norms(V, d):
    """``(Σ V[:d]², Σ |V[:d]|)`` in float64."""
    sq = 0.0
    ab = 0.0
    for j in range(d):
        for k in range(V.shape[1]):
            sq += V[j, k] * V[j, k]
            ab += abs(V[j, k])
    return sq, ab


@njit(**_JIT)
def _write_trace(
    trace, indptr, indices, values, i, V, scale, dl, l2, fit_intercept, decay, slope
):
    """The gradient of the step on sample ``i`` at ``w = scale·V`` into ``trace`` (d + 1, K):
    ``dl_k·x + l2·w``, the intercepts' ``decay·(dl_k + slope)`` (0 without an intercept)."""
    d = V.shape[0] - 1
    K = trace.shape[1]
    for j in range(d):
        for k in range(K):
            trace[j, k] = l2 * (scale * V[j, k])
    for pos in range(indptr[i], indptr[i + 1]):
        j = indices[pos]
        for k in range(K):
            trace[j, k] += dl[k] * values[pos]
    for k in range(K):
        trace[d, k] = decay * (dl[k] + slope) if fit_intercept else 0.0


@njit(inline="always", **_JIT)
def _row_norms(indices, lo, hi, V, scale, p, sk_sq, sk_ab):
    """scikit-learn's ``WeightVector.add``'s norms: for each output k whose step ``p[k]``
    is nonzero, ``sk_sq[k] = scale²·Σ V[j, k]²`` and ``sk_ab[k] = |scale|·Σ |V[j, k]|``
    over the row's columns j (its entries only, not the whole vector)."""
    for k in range(p.shape[0]):
        if p[k] != 0.0:
            sq = 0.0
            ab = 0.0
            for pos in range(lo, hi):
                v = V[indices[pos], k]
                sq += v * v
                ab += abs(v)
            sk_sq[k] = sq * (scale * scale)
            sk_ab[k] = ab * abs(scale)


@njit(**_JIT)
def _pa_steps(p, Y, i, loss_code, loss_param, max_dloss, xx, pa1, C, s, steps) -> float:
    """Passive-aggressive steps of sample ``i`` (predictions ``p`` (K,), squared norm
    ``xx``): ``steps[k] = −tau_k·sign(dloss_k)·s`` (``sgd_dense._pa_size``, at ``C``); ``p``
    is overwritten with the clipped loss derivatives (unweighted, as
    ``_row_loss_and_dloss`` leaves them). Returns the unweighted loss summed over the K
    outputs."""
    total = 0.0
    for k in range(p.shape[0]):
        loss, g = _loss_and_dloss(p[k], np.float64(Y[i, k]), loss_code, loss_param)
        g = _clip_dloss(g, max_dloss)
        total += loss
        tau = _pa_size(loss, xx, pa1, C) if loss > 0.0 else 0.0
        steps[k] = -tau * np.sign(g) * s
        p[k] = g
    return total


@njit(inline="always", **_JIT)
def _add_row_with_norms(indices, values, lo, hi, V, coef, scale, p, sk_sq, sk_ab, new_sq,
                        new_ab):  # fmt: skip
    """``V[j, :] += x_j·coef`` at the row's entries (every output: a zero step adds 0) and,
    for the outputs whose step ``p[k]`` is nonzero, scikit-learn's norms of those entries
    (as :func:`_row_norms`), summed in the same pass; ``new_sq``/``new_ab`` (K,) scratch."""
    K = coef.shape[0]
    if K == 1:  # one output: scalar sums (no stores to the scratch per entry)
        c = coef[0]
        sq = 0.0
        ab = 0.0
        for pos in range(lo, hi):
            j = indices[pos]
            v = V[j, 0] + np.float64(values[pos]) * c
            V[j, 0] = v
            sq += v * v
            ab += abs(v)
        if p[0] != 0.0:
            sk_sq[0] = sq * (scale * scale)
            sk_ab[0] = ab * abs(scale)
        return
    for k in range(K):
        new_sq[k] = 0.0
        new_ab[k] = 0.0
    for pos in range(lo, hi):
        j = indices[pos]
        x = np.float64(values[pos])
        for k in range(K):
            v = V[j, k] + x * coef[k]
            V[j, k] = v
            new_sq[k] += v * v
            new_ab[k] += abs(v)
    for k in range(K):
        if p[k] != 0.0:
            sk_sq[k] = new_sq[k] * (scale * scale)
            sk_ab[k] = new_ab[k] * abs(scale)


def _sgd_kernel(vector: bool):
    """The per-sample loop; ``vector`` (a compile-time constant) fixes K = 1.

    ``V`` (d + 1, K) float64 holds the parameters: theta itself for float64 data (worked
    on in place, the scale folded back in at the end), else a float64 copy that the
    caller rounds back into theta.
    """

    @njit(**_JIT)
    def sparse_sgd_epochs(
        indptr, indices, values, Y, weight, V, slots, step, orders, loss_code, loss_param,
        max_dloss, l2, l1, fit_intercept, intercept_decay, schedule_code, schedule_params,
        epoch_losses, average, ahead, sk_norms, norms, slope,
    ):
        n = indptr.shape[0] - 1
        d = V.shape[0] - 1
        K = 1 if vector else V.shape[1]
        weighted = weight.shape[0] > 0
        scale = 1.0
        truncate = l1 != 0.0
        q = np.empty((d if truncate else 0, K))
        u = 0.0
        if truncate:
            for j in range(d):
                for k in range(K):
                    q[j, k] = slots[1, j, k]
            u = np.float64(slots[1, d, 0])
        averaging = average > 0
        P = np.empty((d if averaging else 0, K))
        avg_b = np.empty(K)
        g_avg = 1.0
        c_avg = 0.0
        if averaging and step >= average:  # averaging started before this call
            for j in range(d):
                for k in range(K):
                    P[j, k] = slots[2, j, k]
            for k in range(K):
                avg_b[k] = slots[2, d, k]
        sk_sq = np.empty(K)  # scikit-learn's norms of w (sk_norms), carried in ``norms``
        sk_ab = np.empty(K)
        new_sq = np.empty(K)
        new_ab = np.empty(K)
        for k in range(K):
            sk_sq[k] = norms[0, k]
            sk_ab[k] = norms[1, k]
        pa = schedule_code == SCHED_PA1 or schedule_code == SCHED_PA2
        pa1 = schedule_code == SCHED_PA1
        steps = np.empty(K)  # the passive-aggressive steps
        p = np.empty(K)
        dots = np.empty(K)
        coef = np.empty(K)
        n_epochs = epoch_losses.shape[0]
        for e in range(n_epochs):
            order = orders[e % orders.shape[0]]
            scattered = not _is_identity(order)  # in order, the CPU streams the CSR arrays
            # V's exact norms for the objective's penalty, unless scikit-learn's running
            # ones stand in for them (a pass over the d·K weights that they spare)
            sq, ab = (0.0, 0.0) if sk_norms else _norms(V, d)
            total = 0.0
            for t in range(n):
                i = order[t]
                if scattered and t + 3 * ahead < n:  # stage 0: where the furthest row starts
                    _prefetch_1d(indptr, order[t + 3 * ahead])
                if scattered and t + 2 * ahead < n:  # stage 1: a further row's arrays
                    _prefetch_row_arrays(indptr, indices, values, order[t + 2 * ahead])
                if t + ahead < n:  # stage 2: the weights at the columns of a nearer row
                    near = order[t + ahead]
                    for pos in range(indptr[near], indptr[near + 1]):
                        j = indices[pos]
                        for k in range(0, K, 8):  # every cache line of the K outputs
                            _prefetch(V, j, k)
                        if K > 8:
                            _prefetch(V, j, K - 1)
                step += 1
                lr = _learning_rate(schedule_code, schedule_params, step)
                lo = indptr[i]
                hi = indptr[i + 1]
                for k in range(K):
                    dots[k] = 0.0
                xx = 0.0
                for pos in range(lo, hi):
                    j = indices[pos]
                    x = np.float64(values[pos])
                    xx += x * x
                    for k in range(K):
                        dots[k] += x * V[j, k]
                for k in range(K):
                    p[k] = scale * dots[k] + V[d, k]
                s = np.float64(weight[i]) if weighted else 1.0
                if pa:  # the unweighted losses alone in the objective (scikit-learn's)
                    total += _pa_steps(p, Y, i, loss_code, loss_param, max_dloss, xx, pa1, lr,
                                       s, steps)  # fmt: skip
                else:
                    loss = _row_loss_and_dloss(p, Y, i, loss_code, loss_param, max_dloss)
                    if sk_norms:
                        penalty = 0.0
                        for k in range(K):
                            penalty += 0.5 * l2 * sk_sq[k] + l1 * sk_ab[k]
                    else:
                        penalty = 0.5 * l2 * (scale * scale * sq) + l1 * (abs(scale) * ab)
                    total += loss * s + penalty
                    if slope != 0.0:  # the one-class SVM's slope·b, before the step
                        for k in range(K):
                            total += slope * V[d, k]
                if e == n_epochs - 1 and t == n - 1:  # the call's last gradient: the trace
                    for k in range(K):
                        p[k] *= s
                    _write_trace(
                        slots[0], indptr, indices, values, i, V, scale, p, l2, fit_intercept,
                        intercept_decay, slope,
                    )
                    for k in range(K):
                        p[k] = steps[k] if pa else -lr * p[k]
                else:
                    for k in range(K):  # scikit-learn's rounding: (−eta·dloss)·weight
                        p[k] = steps[k] if pa else -lr * p[k] * s
                shrink = 1.0 - lr * l2
                scale *= shrink
                if sk_norms:
                    for k in range(K):
                        sk_sq[k] *= shrink * shrink
                        sk_ab[k] *= abs(shrink)
                if abs(scale) < _MIN_SCALE:  # fold the scale into V (O(d·K), rare)
                    for j in range(d):
                        for k in range(K):
                            V[j, k] *= scale
                    c_avg /= scale
                    for k in range(K):
                        dots[k] *= scale
                    sq, ab = (0.0, 0.0) if sk_norms else _norms(V, d)
                    scale = 1.0
                averaged = averaging and step >= average
                moved = False
                for k in range(K):
                    moved = moved or p[k] != 0.0
                if moved and truncate:  # Σ|V| is needed: entry by entry
                    for pos in range(lo, hi):
                        j = indices[pos]
                        x = np.float64(values[pos])
                        for k in range(K):
                            if p[k] != 0.0:
                                old = V[j, k]
                                delta = x * (p[k] / scale)
                                new = old + delta
                                V[j, k] = new
                                sq += new * new - old * old
                                ab += abs(new) - abs(old)
                                if averaged:
                                    P[j, k] -= c_avg * delta
                elif moved:  # the K outputs of each stored value at once (a zero step adds 0)
                    for k in range(K):
                        coef[k] = p[k] / scale
                        sq += coef[k] * (2.0 * dots[k] + coef[k] * xx)  # ‖v + c·x‖²
                    if sk_norms:  # the add, summing scikit-learn's norms of the row's entries
                        _add_row_with_norms(indices, values, lo, hi, V, coef, scale, p,
                                            sk_sq, sk_ab, new_sq, new_ab)  # fmt: skip
                    else:
                        for pos in range(lo, hi):
                            j = indices[pos]
                            x = np.float64(values[pos])
                            for k in range(K):
                                V[j, k] += x * coef[k]
                    if averaged:
                        for pos in range(lo, hi):
                            j = indices[pos]
                            x = np.float64(values[pos])
                            for k in range(K):
                                P[j, k] -= c_avg * (x * coef[k])
                if moved and sk_norms and truncate:  # scikit-learn's: the row's entries' norms
                    _row_norms(indices, lo, hi, V, scale, p, sk_sq, sk_ab)
                if fit_intercept and (moved or slope != 0.0):
                    for k in range(K):  # scikit-learn: (update − eta·nu)·decay, when not 0
                        step_b = p[k] - lr * slope
                        if step_b != 0.0:
                            V[d, k] += step_b * intercept_decay
                if averaged:
                    kth = step - average + 1
                    if kth == 1:  # the first averaged update: the average is w itself
                        for j in range(d):
                            for k in range(K):
                                P[j, k] = 0.0
                        g_avg = 1.0
                        c_avg = scale
                        for k in range(K):
                            avg_b[k] = V[d, k]
                    else:
                        mu = 1.0 / kth
                        g_avg *= 1.0 - mu
                        c_avg += mu * scale / g_avg
                        for k in range(K):
                            avg_b[k] += (V[d, k] - avg_b[k]) / kth
                if truncate:
                    u += l1 * lr
                    for pos in range(lo, hi):
                        j = indices[pos]
                        for k in range(K):
                            z = V[j, k]
                            if scale * z > 0.0:
                                V[j, k] = max(0.0, z - (u + q[j, k]) / scale)
                            elif scale * z < 0.0:
                                V[j, k] = min(0.0, z + (u - q[j, k]) / scale)
                            new = V[j, k]
                            if new != z:
                                q[j, k] += scale * (new - z)
                                sq += new * new - z * z
                                ab += abs(new) - abs(z)
                                if averaged:
                                    P[j, k] -= c_avg * (new - z)
            epoch_losses[e] = total / n
        if truncate:
            for j in range(d):
                for k in range(K):
                    slots[1, j, k] = q[j, k]
            for k in range(K):
                slots[1, d, k] = u
        if averaging and step >= average:
            for j in range(d):
                for k in range(K):
                    slots[2, j, k] = g_avg * (P[j, k] + c_avg * V[j, k])
            for k in range(K):
                slots[2, d, k] = avg_b[k]
        for k in range(K):
            norms[0, k] = sk_sq[k]
            norms[1, k] = sk_ab[k]
        for j in range(d):  # the weights themselves: the scale folded in, last
            for k in range(K):
                V[j, k] *= scale
        return step

    return sparse_sgd_epochs


_sparse_sgd_epochs = _sgd_kernel(True)
_sparse_sgd_epochs_matrix = _sgd_kernel(False)
