"""One sample's loss and its derivative: the one place the numba backend defines a loss.

Scalar kernels for one output (:func:`_loss_and_dloss`: every loss but multinomial), the
softmax cross-entropy of K logits (:func:`_softmax_cross_entropy`) and the loss of the K
outputs of one sample (:func:`_row_loss_and_dloss`), each derivative clipped to
``±max_dloss`` (:func:`_clip_dloss`). The formulas and the subgradients at the kinks are
``fastgd.backends.numpy``'s.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from ...specs import (
    LOSS_EPSILON_INSENSITIVE,
    LOSS_HINGE,
    LOSS_HUBER,
    LOSS_LOGISTIC,
    LOSS_MODIFIED_HUBER,
    LOSS_MULTINOMIAL,
    LOSS_PERCEPTRON,
    LOSS_SQUARED_EPSILON_INSENSITIVE,
    LOSS_SQUARED_HINGE,
)
from .jit import _JIT

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
    if loss_code == LOSS_PERCEPTRON:  # max(0, -z); at z = 0 the subgradient -s, as scikit-learn
        if z > 0.0:
            return 0.0, 0.0
        return -z, -s
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
        or loss_code == LOSS_PERCEPTRON
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
