"""Per-sample losses and their derivatives, vectorized over a batch's predictions.

:func:`_loss_and_dloss` picks the formula of a loss code: softmax cross-entropy
(:func:`_multinomial`), the logistic loss (with a stable :func:`_sigmoid`), the margin
losses of ±1 labels (:func:`_signed_label_loss`) or the regression losses of the residual
(:func:`_residual_loss`); :func:`_clip_dloss` clips the derivatives to ``±max_dloss``.
"""

from __future__ import annotations

import math

import numpy as np

from ...specs import (
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
    LoweredModel,
)


def _sigmoid(p: np.ndarray) -> np.ndarray:
    """Numerically stable logistic sigmoid."""
    e = np.exp(-np.abs(p))
    return np.where(p >= 0, 1.0 / (1.0 + e), e / (1.0 + e)).astype(p.dtype, copy=False)


def _multinomial(P: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Softmax cross-entropy per row, shape (m,), and its derivative, shape (m, K)."""
    shifted = P - P.max(axis=1, keepdims=True)
    e = np.exp(shifted)
    total = e.sum(axis=1, keepdims=True)
    rows = np.arange(P.shape[0])
    codes = labels[:, 0].astype(np.intp)
    losses = np.log(total[:, 0]) - shifted[rows, codes]
    dloss = e / total
    dloss[rows, codes] -= 1
    return losses, dloss


def _loss_and_dloss(P: np.ndarray, Y: np.ndarray, model: LoweredModel):
    """Per-sample losses (m,), summed over the outputs, and d loss / d P, shape (m, K)."""
    code, eps = model.loss_code, model.loss_param
    if code == LOSS_MULTINOMIAL:
        return _multinomial(P, Y)
    losses, dloss = _output_losses(P, Y, code, eps)
    return losses.sum(axis=1), dloss


def _output_losses(P: np.ndarray, Y: np.ndarray, code: int, eps: float):
    """The losses of every output, shape (m, K), and their derivatives d loss / d P, for
    the losses of independent outputs (all but multinomial)."""
    if code == LOSS_LOGISTIC:
        return np.logaddexp(0.0, P) - Y * P, _sigmoid(P) - Y
    if code in (LOSS_HINGE, LOSS_PERCEPTRON, LOSS_SQUARED_HINGE, LOSS_MODIFIED_HUBER):
        return _signed_label_loss(code, P, Y)
    return _residual_loss(code, eps, P - Y)


def _signed_label_loss(code: int, P: np.ndarray, S: np.ndarray):
    """Margin losses of labels ``S`` = ±1 (scikit-learn's formulas), with z = s·p."""
    z = S * P
    if code == LOSS_HINGE:  # max(0, 1 - z); at z = 1 the subgradient -s, as scikit-learn
        met = z > 1
        return np.where(met, 0.0, 1 - z), np.where(met, 0.0, -S)
    if code == LOSS_PERCEPTRON:  # max(0, -z); at z = 0 the subgradient -s, as scikit-learn
        met = z > 0
        return np.where(met, 0.0, -z), np.where(met, 0.0, -S)
    if code == LOSS_SQUARED_HINGE:  # max(0, 1 - z)^2
        gap = np.maximum(1 - z, 0.0)
        return gap * gap, -2 * S * gap
    # modified Huber: 0 for z >= 1, (1 - z)^2 for -1 <= z < 1, -4z below
    gap = np.maximum(1 - z, 0.0)
    linear = z < -1
    return (
        np.where(linear, -4 * z, gap * gap),
        np.where(linear, -4 * S, -2 * S * gap),
    )


def _residual_loss(code: int, eps: float, r: np.ndarray):
    """Regression losses of the residual ``r = p − y``."""
    if code == LOSS_HUBER:
        abs_r = np.abs(r)
        return np.where(abs_r <= eps, 0.5 * r * r, eps * (abs_r - 0.5 * eps)), np.clip(r, -eps, eps)
    if code == LOSS_EPSILON_INSENSITIVE:  # max(0, |r| - eps)
        excess = np.abs(r) - eps
        return np.maximum(excess, 0.0), np.where(excess > 0, np.sign(r), 0.0)
    if code == LOSS_SQUARED_EPSILON_INSENSITIVE:  # max(0, |r| - eps)^2
        excess = np.maximum(np.abs(r) - eps, 0.0)
        return excess * excess, 2 * np.sign(r) * excess
    if code == LOSS_SQUARED:
        return 0.5 * r * r, r
    raise ValueError(f"unknown loss code {code!r}")


def _clip_dloss(dloss: np.ndarray, max_dloss: float) -> np.ndarray:
    """``dloss`` clipped to ``[-max_dloss, max_dloss]`` (NaN stays NaN); itself when
    ``max_dloss`` is inf."""
    if math.isinf(max_dloss):
        return dloss
    return np.clip(dloss, -max_dloss, max_dloss)
