"""Optimizer steps and learning rates, compiled: the update of SGD (with momentum),
AdaGrad, RMSProp, Adam or AdamW at step t, in place on flat views of the parameters and
the slots (:func:`_update_kernel`), with the schedule's learning rate (:func:`_learning_rate`).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

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
from .jit import _JIT

_OPT_CODES = (OPT_SGD, OPT_ADAGRAD, OPT_RMSPROP, OPT_ADAM, OPT_ADAMW)
_SCHED_CODES = (
    SCHED_CONSTANT, SCHED_INVSCALING, SCHED_EXPONENTIAL, SCHED_COSINE, SCHED_OPTIMAL,
    SCHED_PA1, SCHED_PA2,
)


# ------------------------------------------------------------------------- updates


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
    return lr0  # the passive-aggressive schedules: C, the penalty's rate


@njit(**_JIT)
def _update_kernel(theta, grad, slots, t, n_decay, code, params, schedule_code, schedule_params):
    """Update ``t`` (from 1) of the optimizer ``code``, in place on theta and slots.

    Elementwise on flat views: ``theta`` and ``grad`` (p,) and ``slots`` (>= 2, p), p =
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


@njit(**_JIT)
def _l1_norm(theta, n_decay) -> float:
    """``Σ |theta[:n_decay]|`` (the weights of a flat theta) in float64."""
    total = 0.0
    for j in range(n_decay):
        total += abs(np.float64(theta[j]))
    return total


@njit(**_JIT)
def _prox_l1(theta, n_decay, threshold) -> None:
    """The l1 proximal step on the weights of a flat theta (its first ``n_decay``
    entries), in place: ``w = sign(w)·max(|w| − threshold, 0)`` with ``threshold`` =
    lr·l1, in float64; the intercepts are untouched."""
    for j in range(n_decay):
        w = np.float64(theta[j])
        if w > 0.0:
            theta[j] = max(w - threshold, 0.0)
        elif w < 0.0:
            theta[j] = -max(-w - threshold, 0.0)


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
