"""Optimizer steps and learning rates: optax's formulas, written in jnp.

:func:`_update_step` takes one step on the pair ``(W, b)`` with its slots;
:func:`_opt_static` and :func:`_opt_hyper` lower an optimizer to what a program depends
on and to its traced numbers.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from ...specs import (
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
    LoweredOptimizer,
)
from .batches import Params
from .losses import _sample_losses

State = tuple[jax.Array, jax.Array]


class _OptStatic(NamedTuple):
    """What the compiled program of an optimizer depends on (hashable, compared by value)."""

    code: int
    schedule_code: int
    #: SGD with a non-zero momentum; without it the trace is the gradient itself and
    #: the program skips the momentum arithmetic (measurably faster per sample).
    momentum: bool
    #: scikit-learn's ``average``: the update the running average starts from, 0 for none.
    average: int = 0


def _opt_static(opt: LoweredOptimizer) -> _OptStatic:
    momentum = opt.code == OPT_SGD and opt.params[0] != 0.0
    return _OptStatic(int(opt.code), int(opt.schedule_code), momentum, int(opt.average))


def _opt_hyper(opt: LoweredOptimizer) -> np.ndarray:
    """The optimizer's and schedule's float hyper-parameters as a (7,) float64 vector."""
    return np.array([*opt.params, *opt.schedule_params], dtype=np.float64)


def _learning_rate(schedule_code: int, sched: jax.Array, t: jax.Array) -> jax.Array:
    """Learning rate at update ``t`` (from 1), in float64, as ``specs.learning_rate``."""
    lr0, p1, p2 = sched[0], sched[1], sched[2]
    t = t.astype(jnp.float64)
    if schedule_code == SCHED_CONSTANT:
        return lr0
    if schedule_code == SCHED_INVSCALING:
        return lr0 / t**p1
    if schedule_code == SCHED_EXPONENTIAL:
        return lr0 * p1 ** ((t - 1.0) / p2)
    if schedule_code == SCHED_COSINE:
        k = jnp.minimum(t - 1.0, p1)
        return lr0 * ((1.0 - p2) * 0.5 * (1.0 + jnp.cos(jnp.pi * k / p1)) + p2)
    if schedule_code == SCHED_OPTIMAL:  # lr0 is alpha, p1 is t0
        return 1.0 / (lr0 * (p1 + t - 1.0))
    if schedule_code in (SCHED_PA1, SCHED_PA2):  # C: the penalty's rate
        return lr0
    raise ValueError(f"unknown schedule code {schedule_code!r}")


def _update_part(
    x: jax.Array,
    g: jax.Array,
    slot0: jax.Array,
    slot1: jax.Array,
    lr: jax.Array,
    hyper: tuple[jax.Array, ...],
    t: jax.Array,
    opt: _OptStatic,
    decay: bool,
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """One optimizer step on one part of the parameters (optax's formulas, elementwise).

    ``hyper`` is the optimizer's four numbers in the parameters' dtype, ``t`` the step
    number (from 1) in that dtype, ``decay`` whether AdamW's weight decay applies to this
    part (the weights, not the intercept). Returns the new part and its two slots.
    """
    a, b, c, d = hyper
    if opt.code == OPT_SGD and not opt.momentum:  # the trace is the gradient itself
        return x - lr * g, g, slot1
    if opt.code == OPT_SGD:
        trace = g + a * slot0
        u = jnp.where(b != 0, g + a * trace, trace)
        return x - lr * u, trace, slot1
    if opt.code == OPT_ADAGRAD:
        acc = slot0 + g * g
        return x - lr * (g / jnp.sqrt(acc + b)), acc, slot1
    if opt.code == OPT_RMSPROP:
        ms = (1 - a) * g * g + a * slot0
        return x - lr * (g / jnp.sqrt(ms + b)), ms, slot1
    if opt.code in (OPT_ADAM, OPT_ADAMW):
        m = (1 - a) * g + a * slot0
        v = (1 - b) * g * g + b * slot1
        u = (m / (1 - a**t)) / (jnp.sqrt(v / (1 - b**t)) + c)
        if opt.code == OPT_ADAMW and decay:
            u = u + d * x
        return x - lr * u, m, v
    raise ValueError(f"unknown optimizer code {opt.code!r}")


def _update_step(
    params: Params,
    grad: Params,
    step: jax.Array,
    slots: tuple[Params, Params],
    opt_hyper: jax.Array,
    opt: _OptStatic,
) -> tuple[Params, jax.Array, tuple[Params, Params]]:
    """One optimizer step on ``(W, b)``; returns new ``params``, ``step``, ``slots``.

    Each slot is a ``(W, b)`` pair like the parameters, so a loop carries them without
    copies.
    """
    dtype = params[0].dtype
    t = step + 1
    lr = _learning_rate(opt.schedule_code, opt_hyper[4:7], t).astype(dtype)
    hyper = tuple(opt_hyper[i].astype(dtype) for i in range(4))
    w, slot0_w, slot1_w = _update_part(
        params[0], grad[0], slots[0][0], slots[1][0], lr, hyper, t.astype(dtype), opt, True
    )
    b, slot0_b, slot1_b = _update_part(
        params[1], grad[1], slots[0][1], slots[1][1], lr, hyper, t.astype(dtype), opt, False
    )
    return (w, b), t, ((slot0_w, slot0_b), (slot1_w, slot1_b))


# ------------------------------------------------------------------ the l1 penalty's step


def _l1_rule(opt: _OptStatic, batch_size: int, l1: bool) -> str | None:
    """How a training step applies a non-zero l1 term (static): ``"truncated"`` for the
    SGD optimizer with batches of one sample (scikit-learn's cumulative truncation),
    ``"proximal"`` for SGD with larger batches (a soft-threshold), None for the adaptive
    optimizers and without l1 (the subgradient stays in the gradient). The rule of
    ``fastgd.backends.numpy.updates._l1_rule``, whose docstring says why."""
    if not l1 or opt.code != OPT_SGD:
        return None
    return "truncated" if batch_size == 1 else "proximal"


def _l1_step(
    rule: str, W: jax.Array, q: jax.Array, u: jax.Array, l1: jax.Array, lr: jax.Array
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """The l1 term applied to the weights ``W`` after the optimizer's step at learning
    rate ``lr`` (float64), by ``rule`` (see :func:`_l1_rule`); returns ``W``, ``q``, ``u``.

    ``"proximal"``: ``W = sign(W)·max(|W| − lr·l1, 0)``. ``"truncated"``: ``u += l1·lr``
    (float64, the penalty each weight could have received so far), then for each weight
    ``z`` with ``q`` the penalty it did receive: ``max(0, z − (u + q))`` if ``z > 0``,
    ``min(0, z + (u − q))`` if ``z < 0``, and ``q += W − z`` with the stored ``W``. The
    arithmetic is float64, the results in ``W``'s dtype.
    """
    z = W.astype(jnp.float64)
    if rule == "proximal":
        shrunk = jnp.sign(z) * jnp.maximum(jnp.abs(z) - lr * l1, 0.0)
        return shrunk.astype(W.dtype), q, u
    u = u + l1 * lr
    q64 = q.astype(jnp.float64)
    w = jnp.where(z > 0.0, jnp.maximum(0.0, z - (u + q64)), z)
    w = jnp.where(z < 0.0, jnp.minimum(0.0, z + (u - q64)), w).astype(W.dtype)
    q = (q64 + (w.astype(jnp.float64) - z)).astype(q.dtype)
    return w, q, u


# ------------------------------------------------------------ the passive-aggressive step


def _pa_step(params: Params, batch, model_hyper, static, opt_hyper, pa1: bool):
    """One passive-aggressive step on a batch of one sample (``specs.PassiveAggressive``);
    returns the new ``(W, b)`` and the sample's unweighted loss (float64, summed over the
    outputs: scikit-learn's objective of pa).

    Per output: ``tau = min(C, loss/‖x‖²)`` (pa1; 0 for a row of zeros) or
    ``loss/(‖x‖² + 1/(2C))`` (pa2), ``update = −tau·sign(dloss)·s``; the weights shrink by
    ``1 − C·l2``, then ``w += update·x`` and ``b += update − C·slope`` (when fitted). The
    arithmetic is float64, the results in the parameters' dtype. ``static`` is the
    model's ``_ModelStatic``.
    """
    W, b = params
    X, Y, weight = batch
    x = X[0].astype(jnp.float64)
    W64, b64 = W.astype(jnp.float64), b.astype(jnp.float64)
    P = (jnp.matmul(x, W64, precision=lax.Precision.HIGHEST) + b64).reshape(-1)
    y = Y.reshape(-1).astype(jnp.float64)
    losses, pullback = jax.vjp(
        lambda P: _sample_losses(P, y, static.loss_code, model_hyper[0]), P
    )
    (dloss,) = pullback(jnp.ones_like(losses))
    s = jnp.float64(1.0) if weight is None else weight[0].astype(jnp.float64)
    C = opt_hyper[4]
    sq = jnp.vdot(x, x, precision=lax.Precision.HIGHEST)
    if pa1:
        tau = jnp.where(sq == 0.0, 0.0, jnp.minimum(C, losses / jnp.where(sq == 0.0, 1.0, sq)))
    else:
        tau = losses / (sq + 0.5 / C)
    update = -tau * jnp.sign(dloss) * s
    step = x * update[0] if W.ndim == 1 else jnp.outer(x, update)
    W_new = W64 * (1.0 - C * model_hyper[1]) + step
    b_new = b64
    if static.fit_intercept:
        b_new = b64 + (update - C * model_hyper[4]).reshape(b.shape)
    return (W_new.astype(W.dtype), b_new.astype(b.dtype)), jnp.sum(losses)
