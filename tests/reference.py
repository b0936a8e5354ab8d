"""A slow, obvious oracle of fastgd's mathematics, in plain Python floats.

Everything here is written from the formulas in the design notes, one sample and one
parameter at a time, with the ``math`` module and Python lists; nothing calls fastgd's
kernels. Only the integer codes of losses, optimizers and schedules are shared with the
library, because they are part of the kernel contract.

Conventions (the same as the library's):

- parameters are a list of d + 1 rows of K floats: the weights (one column per output),
  then the intercepts. A plain list of d + 1 floats is a single output (K = 1), and the
  results then come back as plain lists too;
- targets: a float per sample (K = 1), or a list of K floats per sample; binary labels
  are {0, 1} for the logistic loss and ±1 for hinge, perceptron, squared hinge and
  modified Huber; for the multinomial loss one class code per sample;
- a batch objective is ``(1/m)·Σ_i s_i·Σ_k loss(p_ik, y_ik) + l2/2·‖W‖² + l1·‖W‖₁``
  (never the intercepts), with sample weights s_i (all 1 when not given);
- optimizer state is ``(step, slots)`` with ``slots`` two parameter-shaped lists, and
  ``t = step + 1`` counts updates from 1 (schedules and Adam's bias correction use it);
  the running average of averaged SGD is kept apart (:func:`train`'s ``average``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from fastgd.specs import (
    LOSS_EPSILON_INSENSITIVE,
    LOSS_HINGE,
    LOSS_HUBER,
    LOSS_LOGISTIC,
    LOSS_MODIFIED_HUBER,
    LOSS_MULTINOMIAL,
    LOSS_PERCEPTRON,
    LOSS_SQUARED,
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
    SCHED_PA1,
    SCHED_PA2,
)

Vector = list[float]
Matrix = list[list[float]]
State = tuple[int, list[Matrix]]

# ------------------------------------------------------------------ per-sample losses


def sigmoid(p: float) -> float:
    """1 / (1 + e^-p), written so that neither branch overflows."""
    if p >= 0:
        return 1.0 / (1.0 + math.exp(-p))
    e = math.exp(p)
    return e / (1.0 + e)


def sample_loss(loss_code: int, loss_param: float, p: float, y: float) -> float:
    """Loss of one prediction ``p`` against its target ``y`` (not for multinomial)."""
    if loss_code == LOSS_SQUARED:
        return 0.5 * (p - y) ** 2
    if loss_code == LOSS_HUBER:
        r, eps = p - y, loss_param
        return 0.5 * r * r if abs(r) <= eps else eps * (abs(r) - 0.5 * eps)
    if loss_code == LOSS_LOGISTIC:
        # log(1 + e^p) = max(p, 0) + log(1 + e^-|p|), which never overflows.
        return max(p, 0.0) + math.log1p(math.exp(-abs(p))) - y * p
    if loss_code == LOSS_HINGE:  # y = ±1
        return max(0.0, 1.0 - y * p)
    if loss_code == LOSS_PERCEPTRON:  # y = ±1
        return max(0.0, -y * p)
    if loss_code == LOSS_SQUARED_HINGE:
        return max(0.0, 1.0 - y * p) ** 2
    if loss_code == LOSS_MODIFIED_HUBER:
        z = y * p
        return -4.0 * z if z < -1.0 else max(0.0, 1.0 - z) ** 2
    if loss_code == LOSS_EPSILON_INSENSITIVE:
        return max(0.0, abs(p - y) - loss_param)
    if loss_code == LOSS_SQUARED_EPSILON_INSENSITIVE:
        return max(0.0, abs(p - y) - loss_param) ** 2
    raise ValueError(f"unknown loss code {loss_code!r}")


def sample_dloss(loss_code: int, loss_param: float, p: float, y: float) -> float:
    """Derivative of :func:`sample_loss` with respect to ``p``.

    At the kinks, scikit-learn's choices: the hinge's derivative at a margin of exactly
    1 is -y, and the perceptron's at a margin of exactly 0 too; the epsilon-insensitive
    losses' at ``|p − y| = ε`` is 0.
    """
    if loss_code == LOSS_SQUARED:
        return p - y
    if loss_code == LOSS_HUBER:
        return min(max(p - y, -loss_param), loss_param)
    if loss_code == LOSS_LOGISTIC:
        return sigmoid(p) - y
    if loss_code == LOSS_HINGE:
        return -y if y * p <= 1.0 else 0.0
    if loss_code == LOSS_PERCEPTRON:
        return -y if y * p <= 0.0 else 0.0
    if loss_code == LOSS_SQUARED_HINGE:
        return -2.0 * y * max(0.0, 1.0 - y * p)
    if loss_code == LOSS_MODIFIED_HUBER:
        z = y * p
        if z >= 1.0:
            return 0.0
        return -2.0 * y * (1.0 - z) if z >= -1.0 else -4.0 * y
    if loss_code == LOSS_EPSILON_INSENSITIVE:
        return sign(p - y) if abs(p - y) > loss_param else 0.0
    if loss_code == LOSS_SQUARED_EPSILON_INSENSITIVE:
        return 2.0 * sign(p - y) * max(0.0, abs(p - y) - loss_param)
    raise ValueError(f"unknown loss code {loss_code!r}")


def softmax_loss(p: Sequence[float], label: float) -> tuple[float, Vector]:
    """Softmax cross-entropy ``log Σ_k e^{p_k} − p_label`` and its gradient in ``p``."""
    top = max(p)
    exps = [math.exp(v - top) for v in p]
    total = sum(exps)
    c = int(label)
    loss = math.log(total) + top - p[c]
    grad = [e / total - (1.0 if k == c else 0.0) for k, e in enumerate(exps)]
    return loss, grad


def row_loss(loss_code: int, loss_param: float, p: Sequence[float], y) -> tuple[float, Vector]:
    """Loss of one sample summed over its K outputs, and its gradient in ``p`` (K,)."""
    if loss_code == LOSS_MULTINOMIAL:
        return softmax_loss(p, y[0] if isinstance(y, Sequence) else y)
    targets = y if isinstance(y, Sequence) else [y]
    pairs = list(zip(p, targets, strict=True))
    total = sum(sample_loss(loss_code, loss_param, pk, yk) for pk, yk in pairs)
    return total, [sample_dloss(loss_code, loss_param, pk, yk) for pk, yk in pairs]


# ------------------------------------------------------------------------ penalties


def sign(v: float) -> float:
    """-1, 0 or 1 (the l1 subgradient picks 0 at 0)."""
    return float((v > 0) - (v < 0))


def penalty(W: Matrix, l2: float, l1: float) -> float:
    """``l2/2·Σ w² + l1·Σ |w|`` over every weight."""
    flat = [v for row in W for v in row]
    return 0.5 * l2 * sum(v * v for v in flat) + l1 * sum(abs(v) for v in flat)


def penalty_grad(W: Matrix, l2: float, l1: float) -> Matrix:
    """(Sub)gradient of :func:`penalty`: ``l2·w + l1·sign(w)``."""
    return [[l2 * v + l1 * sign(v) for v in row] for row in W]


# ---------------------------------------------------------------- batch objective


def as_matrix(theta: Sequence) -> tuple[Matrix, bool]:
    """``theta`` as rows of K floats, and whether it was a plain vector (K = 1)."""
    vector = not isinstance(theta[0], Sequence)
    return ([[float(v)] for v in theta] if vector else [list(r) for r in theta]), vector


def from_matrix(M: Matrix, vector: bool) -> list:
    """The inverse of :func:`as_matrix`."""
    return [row[0] for row in M] if vector else M


def predict(x: Sequence[float], theta: Matrix) -> Vector:
    """``Σ_j x_j·W_jk + b_k`` for one sample, for each output k."""
    d, K = len(x), len(theta[0])
    return [sum(x[j] * theta[j][k] for j in range(d)) + theta[d][k] for k in range(K)]


def loss_grad(
    X: Sequence[Sequence[float]],
    y: Sequence,
    theta: Sequence,
    model: Sequence,
    weights: Sequence[float] | None = None,
) -> tuple[float, list]:
    """Batch objective and its gradient, one sample at a time.

    Parameters
    ----------
    X : sequence of m rows of d floats
    y : sequence of m targets (a float, or a list of K floats / of one class code)
    theta : d + 1 floats, or d + 1 rows of K floats (weights, then intercepts)
    model : (loss_code, loss_param, l2, l1, fit_intercept[, max_dloss, decay, slope])
        ``max_dloss`` (inf when left out): each ``dloss_ik`` is clipped to
        ``[-max_dloss, max_dloss]`` before its weight multiplies it. ``slope`` (0 when
        left out; ``LoweredModel.intercept_slope``): the objective adds ``slope·b_k`` for
        each intercept, its gradient ``slope`` (when the intercepts are trained).
    weights : sequence of m floats, optional (all 1)

    Returns
    -------
    objective : float
        ``(1/m)·Σ_i s_i·loss_i + penalty(W)``.
    grad : same shape as theta
        ``(1/m)·Σ_i s_i·dloss_i·x_i + penalty_grad(W)``, then ``(1/m)·Σ_i s_i·dloss_i``
        for the intercepts (0 when they are not trained).
    """
    loss_code, loss_param, l2, l1, fit_intercept, *clip = model
    max_dloss = clip[0] if clip else math.inf
    slope = clip[2] if len(clip) > 2 else 0.0
    theta, vector = as_matrix(theta)
    m, d, K = len(X), len(theta) - 1, len(theta[0])
    weights = [1.0] * m if weights is None else weights
    total = 0.0
    grad_w = [[0.0] * K for _ in range(d)]
    grad_b = [0.0] * K
    for x, target, s in zip(X, y, weights, strict=True):
        value, dp = row_loss(loss_code, loss_param, predict(x, theta), target)
        dp = [min(max(v, -max_dloss), max_dloss) for v in dp]
        total += s * value
        for k in range(K):
            for j in range(d):
                grad_w[j][k] += s * dp[k] * x[j]
            grad_b[k] += s * dp[k]
    pen_grad = penalty_grad(theta[:d], l2, l1)
    grad = [[grad_w[j][k] / m + pen_grad[j][k] for k in range(K)] for j in range(d)]
    grad.append([g / m + slope if fit_intercept else 0.0 for g in grad_b])
    value = total / m + penalty(theta[:d], l2, l1) + slope * sum(theta[d])
    return value, from_matrix(grad, vector)


def objective(X, y, theta, model, weights=None) -> float:
    """Only the objective of :func:`loss_grad` (for finite differences)."""
    return loss_grad(X, y, theta, model, weights)[0]


# ------------------------------------------------------------------------ schedules


def learning_rate(schedule_code: int, schedule_params: Sequence[float], t: int) -> float:
    """Learning rate of update ``t`` (1, 2, ...).

    constant: lr; invscaling: lr0 / t^power_t; exponential: lr0·rate^((t-1)/steps);
    cosine: lr0·((1 - f)·½(1 + cos(π·min(t-1, steps)/steps)) + f);
    optimal (scikit-learn's): 1 / (alpha·(t0 + t - 1)), parameters (alpha, t0, 0);
    pa1, pa2: C (the penalty's rate; the loss's step is :func:`pa_step`'s).
    """
    lr0, a, b = schedule_params
    if schedule_code == SCHED_CONSTANT:
        return lr0
    if schedule_code == SCHED_INVSCALING:
        return lr0 / math.pow(t, a)
    if schedule_code == SCHED_EXPONENTIAL:
        return lr0 * math.pow(a, (t - 1) / b)
    if schedule_code == SCHED_COSINE:
        done = min(t - 1, a)
        return lr0 * ((1.0 - b) * 0.5 * (1.0 + math.cos(math.pi * done / a)) + b)
    if schedule_code == SCHED_OPTIMAL:
        return 1.0 / (lr0 * (a + t - 1))
    if schedule_code in (SCHED_PA1, SCHED_PA2):
        return lr0
    raise ValueError(f"unknown schedule code {schedule_code!r}")


# ----------------------------------------------------------------------- optimizers


def init_state(n_params: int, opt: Sequence, n_outputs: int | None = None) -> State:
    """``(0, [slot0, slot1])``; AdaGrad's sum of squares starts at its initial value.

    Slots are lists of ``n_params`` floats, or of ``n_params`` rows of ``n_outputs``.
    """
    code, params = opt[0], opt[1]
    first = params[0] if code == OPT_ADAGRAD else 0.0
    if n_outputs is None:
        return 0, [[first] * n_params, [0.0] * n_params]
    return 0, [[[first] * n_outputs for _ in range(n_params)],
               [[0.0] * n_outputs for _ in range(n_params)]]


def update(theta: Sequence, grad: Sequence, state: State, opt: Sequence) -> tuple[list, State]:
    """One optimizer step on new lists (the inputs are left as they are).

    Parameters
    ----------
    theta, grad : d + 1 floats, or d + 1 rows of K floats
    state : (step, [slot0, slot1]), slots shaped like theta
    opt : (code, params[4], schedule_code, schedule_params[3])

    Returns
    -------
    theta, state : the parameters and state after the step (shaped like the inputs).
    """
    theta, vector = as_matrix(theta)
    grad = as_matrix(grad)[0]
    step, slots = state
    s0, s1 = (as_matrix(slot)[0] for slot in slots)
    new_theta = []
    for j, (row, grow) in enumerate(zip(theta, grad, strict=True)):
        is_weight = j < len(theta) - 1  # AdamW decays the weights, not the intercepts
        new_theta.append([
            _update_entry(row[k], grow[k], s0[j], s1[j], k, step + 1, opt, is_weight)
            for k in range(len(row))
        ])
    slots = [from_matrix(s0, vector), from_matrix(s1, vector)]
    return from_matrix(new_theta, vector), (step + 1, slots)


def _update_entry(x, g, s0_row, s1_row, k, t, opt, is_weight) -> float:
    """One parameter's step; updates its slots ``s0_row[k]``, ``s1_row[k]`` in place."""
    code, params, schedule_code, schedule_params = opt[:4]
    lr = learning_rate(schedule_code, schedule_params, t)
    if code == OPT_SGD:
        momentum, nesterov = params[0], params[1]
        s0_row[k] = g + momentum * s0_row[k]
        u = g + momentum * s0_row[k] if nesterov else s0_row[k]
    elif code == OPT_ADAGRAD:
        eps = params[1]
        s0_row[k] = s0_row[k] + g * g
        u = g / math.sqrt(s0_row[k] + eps)
    elif code == OPT_RMSPROP:
        decay, eps = params[0], params[1]
        s0_row[k] = decay * s0_row[k] + (1.0 - decay) * g * g
        u = g / math.sqrt(s0_row[k] + eps)
    elif code in (OPT_ADAM, OPT_ADAMW):
        b1, b2, eps, weight_decay = params
        s0_row[k] = b1 * s0_row[k] + (1.0 - b1) * g
        s1_row[k] = b2 * s1_row[k] + (1.0 - b2) * g * g
        m_hat = s0_row[k] / (1.0 - b1**t)
        v_hat = s1_row[k] / (1.0 - b2**t)
        u = m_hat / (math.sqrt(v_hat) + eps)
        if code == OPT_ADAMW and is_weight:
            u += weight_decay * x
    else:
        raise ValueError(f"unknown optimizer code {code!r}")
    return x - lr * u


# -------------------------------------------------------------------- training loop


def batches(order: Sequence[int], batch_size: int) -> list[list[int]]:
    """Consecutive slices of ``order`` of ``batch_size`` samples; the last may be shorter."""
    order = [int(i) for i in order]
    return [order[k : k + batch_size] for k in range(0, len(order), batch_size)]


def l1_rule(opt: Sequence, batch_size: int, l1: float) -> str:
    """How a training step applies the l1 penalty: ``"truncated"`` (the SGD optimizer with
    batches of one sample: scikit-learn's cumulative truncation after the step),
    ``"proximal"`` (SGD with larger batches: a soft-threshold after the step), else
    ``"subgradient"`` (``l1·sign(w)`` in the gradient: the adaptive optimizers)."""
    if l1 == 0.0 or opt[0] != OPT_SGD:
        return "subgradient"
    return "truncated" if batch_size == 1 else "proximal"


def prox_l1(theta: Matrix, threshold: float) -> None:
    """``w = sign(w)·max(|w| − threshold, 0)`` on every weight (not the intercepts)."""
    for row in theta[:-1]:
        for k, w in enumerate(row):
            row[k] = sign(w) * max(abs(w) - threshold, 0.0)


def truncate_l1(theta: Matrix, q: Matrix, u: float) -> None:
    """scikit-learn's cumulative truncated l1 step (Tsuruoka et al. 2009) on every weight:
    ``u`` is Σ l1·lr over the steps so far, ``q[j][k]`` the penalty weight (j, k) received."""
    for row, q_row in zip(theta[:-1], q, strict=False):
        for k, z in enumerate(row):
            if z > 0.0:
                row[k] = max(0.0, z - (u + q_row[k]))
            elif z < 0.0:
                row[k] = min(0.0, z + (u - q_row[k]))
            q_row[k] += row[k] - z


def average_into(avg: Matrix, theta: Matrix, k: int) -> None:
    """The running average of the iterates: ``avg += (theta − avg) / k`` entry by entry,
    for the k-th iterate averaged (k = 1 copies theta)."""
    for a_row, row in zip(avg, theta, strict=True):
        for j, w in enumerate(row):
            a_row[j] += (w - a_row[j]) / k


def train_step(
    X, y, theta, state, batch_size, model, opt, weights, averaged=None
) -> tuple[float, list, State]:
    """One training step on the batch ``X``, ``y``: its objective (with the whole penalty)
    before the step, then the parameters and state after it.

    ``averaged`` = (avg, a), a matrix and the update averaging starts from: after update
    t >= a, ``avg`` takes the step's parameters into its running mean
    (:func:`average_into`): after a proximal l1 step, before the truncation.

    With the SGD optimizer and an l1 term the step's gradient leaves the l1 term out and
    the penalty is applied after the optimizer's step (see :func:`l1_rule`). The
    truncation keeps ``q`` in the second slot's weight rows and ``u`` in its intercept
    row (the same in every column): SGD uses only the first slot.
    """
    l1 = model[3]
    rule = l1_rule(opt, batch_size, l1)

    def average(M, step):
        if averaged is not None and step >= averaged[1]:
            average_into(averaged[0], M, step - averaged[1] + 1)

    if opt[2] in (SCHED_PA1, SCHED_PA2):
        value, M, vector = pa_step(X[0], y[0], theta, model, opt, weights[0])
        step = state[0] + 1
        average(M, step)
        state = (step, state[1])
        if rule == "subgradient":
            return value, from_matrix(M, vector), state
        s1 = as_matrix(state[1][1])[0]
        u = s1[-1][0] + l1 * opt[3][0]
        truncate_l1(M, s1[:-1], u)
        s1[-1] = [u] * len(s1[-1])
        return value, from_matrix(M, vector), (step, [state[1][0], from_matrix(s1, vector)])
    value, grad = loss_grad(X, y, theta, model, weights)
    if rule == "subgradient":
        theta, state = update(theta, grad, state, opt)
        average(as_matrix(theta)[0], state[0])
        return value, theta, state
    no_l1 = (*model[:3], 0.0, *model[4:])
    grad = loss_grad(X, y, theta, no_l1, weights)[1]
    theta, state = update(theta, grad, state, opt)
    step, slots = state
    lr = learning_rate(opt[2], opt[3], step)
    M, vector = as_matrix(theta)
    if rule == "proximal":
        prox_l1(M, lr * l1)
        average(M, step)
        return value, from_matrix(M, vector), state
    average(M, step)
    s1 = as_matrix(slots[1])[0]
    u = s1[-1][0] + l1 * lr
    truncate_l1(M, s1[:-1], u)
    s1[-1] = [u] * len(s1[-1])
    return value, from_matrix(M, vector), (step, [slots[0], from_matrix(s1, vector)])


def pa_step(x, target, theta, model, opt, s) -> tuple[float, Matrix, bool]:
    """scikit-learn's passive-aggressive step on one sample ``x`` of weight ``s``.

    With C = the schedule's first parameter and per output k: ``tau_k = min(C,
    loss_k/‖x‖²)`` (pa1; 0 when ‖x‖ = 0) or ``loss_k/(‖x‖² + 1/(2C))`` (pa2), the
    unweighted loss; ``u_k = −tau_k·sign(dloss_k)·s``; ``w_jk = w_jk·(1 − C·l2) +
    u_k·x_j``; ``b_k += u_k − C·slope`` when the intercepts are trained. Returns the
    sample's unweighted loss (no penalty), the new parameter matrix and whether theta was
    a vector. The value is scikit-learn's objective of pa: the unweighted loss.
    """
    loss_code, loss_param, l2, l1, fit_intercept, *rest = model
    slope = rest[2] if len(rest) > 2 else 0.0
    C = opt[3][0]
    M, vector = as_matrix(theta)
    d, K = len(M) - 1, len(M[0])
    targets = [target] if vector else list(target)
    sq = sum(v * v for v in x)
    p = predict(x, M)
    value = 0.0
    updates = []
    for k in range(K):
        loss = sample_loss(loss_code, loss_param, p[k], targets[k])
        dloss = sample_dloss(loss_code, loss_param, p[k], targets[k])
        value += loss
        if opt[2] == SCHED_PA1:
            tau = 0.0 if sq == 0.0 else min(C, loss / sq)
        else:
            tau = loss / (sq + 0.5 / C)
        updates.append(-tau * sign(dloss) * s)
    new = [[M[j][k] * (1.0 - C * l2) + updates[k] * x[j] for k in range(K)] for j in range(d)]
    new.append([M[d][k] + (updates[k] - C * slope if fit_intercept else 0.0) for k in range(K)])
    return value, new, vector


def run_epochs(
    X: Sequence[Sequence[float]],
    y: Sequence[float],
    theta: Sequence[float],
    state: State,
    orders: Sequence[Sequence[int]],
    batch_size: int,
    model: Sequence,
    opt: Sequence,
    weights: Sequence[float] | None = None,
    averaged: tuple | None = None,
) -> tuple[list, State, Vector]:
    """Every batch of every epoch in ``orders``, one :func:`train_step` per batch
    (``averaged``: see :func:`train_step`).

    Returns
    -------
    theta, state
        After the last update.
    epoch_losses : list of floats
        Per epoch, ``Σ_batches (batch size)·objective / n``, each batch objective taken
        before that batch's update.
    """
    n = len(y)
    weights = [1.0] * n if weights is None else weights
    losses = []
    for order in orders:
        weighted = 0.0
        for idx in batches(order, batch_size):
            value, theta, state = train_step(
                [X[i] for i in idx], [y[i] for i in idx], theta, state, batch_size, model, opt,
                [weights[i] for i in idx], averaged,
            )
            weighted += value * len(idx)
        losses.append(weighted / n)
    return theta, state, losses


def train(
    X: Sequence[Sequence[float]],
    y: Sequence[float],
    theta0: Sequence[float],
    orders: Sequence[Sequence[int]],
    batch_size: int,
    model: Sequence,
    opt: Sequence,
    weights: Sequence[float] | None = None,
    average: int = 0,
) -> tuple[list, Vector]:
    """A whole training run from ``theta0`` with a fresh optimizer state.

    ``average`` = a > 0: the running mean of the parameters after the updates a, a + 1, …
    is kept (:func:`train_step`) and returned instead of the last parameters once
    there were at least a updates.

    Returns
    -------
    theta : shaped like ``theta0`` (the average, when averaging)
    loss_history : list of floats, one per epoch
    """
    matrix, vector = as_matrix(theta0)
    state = init_state(len(matrix), opt, None if vector else len(matrix[0]))
    averaged = ([[0.0] * len(row) for row in matrix], average) if average else None
    theta, state, losses = run_epochs(X, y, theta0, state, orders, batch_size, model, opt,
                                      weights, averaged)  # fmt: skip
    if averaged is not None and state[0] >= average:
        theta = from_matrix(averaged[0], vector)
    return theta, losses


_MASK64 = (1 << 64) - 1


def _splitmix64(state: int) -> tuple[int, int]:
    """The next splitmix64 (state, output), in Python integers kept to 64 bits."""
    state = (state + 0x9E3779B97F4A7C15) & _MASK64
    z = state
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return state, z ^ (z >> 31)


def _uniform_below(state: int, bound: int) -> tuple[int, int]:
    """(state, j) with j uniform in [0, bound): Lemire's rule on the high 32 bits of the
    next output, drawing again while the low product falls below (2^32 − bound) % bound."""
    if bound > 1 << 32:
        threshold = ((1 << 64) - bound) % bound
        state, r = _splitmix64(state)
        while r < threshold:
            state, r = _splitmix64(state)
        return state, r % bound
    threshold = ((1 << 32) - bound) % bound
    while True:
        state, r = _splitmix64(state)
        product = (r >> 32) * bound
        if product & 0xFFFFFFFF >= threshold:
            return state, product >> 32


def fisher_yates(seed: int, n: int) -> list[int]:
    """The permutation of 0..n-1 drawn from a 64-bit seed: for i = n−1 down to 1, swap
    position i with a uniform position in [0, i]."""
    order = list(range(n))
    state = seed
    for i in range(n - 1, 0, -1):
        state, j = _uniform_below(state, i + 1)
        order[i], order[j] = order[j], order[i]
    return order


def shuffled_orders(seed: int, n: int, n_epochs: int, shuffle: bool) -> list[list[int]]:
    """Epoch orders as the library draws them: one Fisher–Yates shuffle per epoch, seeded by
    the next raw 64-bit output of ``numpy.random.default_rng(seed)``'s bit generator.

    The only numpy call of this module: the raw outputs are the documented source of
    randomness, not a piece of fastgd.
    """
    import numpy as np

    if not shuffle:
        return [list(range(n)) for _ in range(n_epochs)]
    seeds = np.random.default_rng(seed).bit_generator.random_raw(n_epochs)
    return [fisher_yates(int(s), n) for s in np.atleast_1d(seeds)]
