"""The per-sample losses and the penalty, written once in jnp: the one place a loss is defined.

Every gradient of the backend is jax's derivative of these formulas, written so that it
is the subgradient the other backends use at the kinks (see the package docstring);
with a finite ``max_dloss`` the losses go through :func:`_clipped_sample_losses`, whose
custom jvp clips each loss derivative.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
from jax import lax

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
)

_HIGHEST = lax.Precision.HIGHEST


def _multinomial(P: jax.Array, codes: jax.Array) -> jax.Array:
    """Softmax cross-entropy per row, shape (m,), of scores ``P`` (m, K) and codes (m, 1).

    ``logsumexp`` is the stable one (shifted by the row maximum); the picked score is
    taken through a one-hot mask, whose derivative is the mask itself.
    """
    picked = codes == jnp.arange(P.shape[1], dtype=codes.dtype)
    return jax.nn.logsumexp(P, axis=1) - jnp.sum(jnp.where(picked, P, 0.0), axis=1)


def _signed_label_loss(code: int, P: jax.Array, S: jax.Array) -> jax.Array:
    """Margin losses of labels ``S`` = ±1 (scikit-learn's formulas), with z = s·p.

    Each branch is chosen by ``jnp.where`` on numpy's comparison, so the derivative at a
    kink is numpy's: the hinge at z = 1 and the perceptron at z = 0 give -s.
    """
    z = S * P
    if code == LOSS_HINGE:  # max(0, 1 - z)
        return jnp.where(z > 1, 0.0, 1 - z)
    if code == LOSS_PERCEPTRON:  # max(0, -z)
        return jnp.where(z > 0, 0.0, -z)
    gap = jnp.where(z < 1, 1 - z, 0.0)  # max(1 - z, 0)
    if code == LOSS_SQUARED_HINGE:
        return gap * gap
    # modified Huber: 0 for z >= 1, (1 - z)^2 for -1 <= z < 1, -4z below
    return jnp.where(z < -1, -4 * z, gap * gap)


def _residual_loss(code: int, eps: jax.Array, r: jax.Array) -> jax.Array:
    """Regression losses of the residual ``r = p − y`` (``eps``: the loss's epsilon)."""
    if code == LOSS_HUBER:
        abs_r = jnp.abs(r)
        return jnp.where(abs_r <= eps, 0.5 * r * r, eps * (abs_r - 0.5 * eps))
    if code in (LOSS_EPSILON_INSENSITIVE, LOSS_SQUARED_EPSILON_INSENSITIVE):
        excess = jnp.abs(r) - eps
        excess = jnp.where(excess > 0, excess, 0.0)  # max(0, |r| - eps), derivative 0 at 0
        return excess if code == LOSS_EPSILON_INSENSITIVE else excess * excess
    if code == LOSS_SQUARED:
        return 0.5 * r * r
    raise ValueError(f"unknown loss code {code!r}")


def _sample_losses(P: jax.Array, Y: jax.Array, loss_code: int, eps: jax.Array) -> jax.Array:
    """Per-sample losses (m,), summed over the outputs: what every gradient derives from.

    ``P`` and ``Y`` are (m, K) and (m, T) as in :class:`Data`, or (m,) and (m,) for a
    single output inside the programs (see :func:`_split`).
    """
    if loss_code == LOSS_MULTINOMIAL:
        return _multinomial(P, Y)
    if loss_code == LOSS_LOGISTIC:
        losses = jnp.logaddexp(0.0, P) - Y * P
    elif loss_code in (LOSS_HINGE, LOSS_PERCEPTRON, LOSS_SQUARED_HINGE, LOSS_MODIFIED_HUBER):
        losses = _signed_label_loss(loss_code, P, Y)
    else:
        losses = _residual_loss(loss_code, eps, P - Y)
    return losses if losses.ndim == 1 else jnp.sum(losses, axis=1)


@partial(jax.custom_jvp, nondiff_argnums=(0,))
def _clipped_sample_losses(
    loss_code: int, P: jax.Array, Y: jax.Array, eps: jax.Array, max_dloss: jax.Array
) -> jax.Array:
    """:func:`_sample_losses`, with its derivative in ``P`` clipped to ``±max_dloss``.

    The value is that of :func:`_sample_losses`; the derivative (see
    :func:`_clipped_sample_losses_jvp`) takes each d loss / d p (each of the K outputs of
    each sample) clipped to ``[-max_dloss, max_dloss]``, scikit-learn SGD's clip. Since
    the samples' weights multiply the losses afterwards, the reverse pass of
    ``jax.value_and_grad`` weights the clipped derivatives, as scikit-learn does.
    ``Y``, ``eps`` and ``max_dloss`` are not differentiated (their tangents are
    ignored).
    """
    return _sample_losses(P, Y, loss_code, eps)


@_clipped_sample_losses.defjvp
def _clipped_sample_losses_jvp(loss_code: int, primals: tuple, tangents: tuple):
    """The jvp of :func:`_clipped_sample_losses`: ``Σ_k clip(d loss / d p_k)·dp_k``.

    The per-element derivatives are the pullback of ones through the per-sample losses
    (each loss depends on its own row of ``P`` only), so they are jax's own derivatives
    of :func:`_sample_losses`, subgradients at the kinks included, then clipped.
    """
    P, Y, eps, max_dloss = primals
    losses, pullback = jax.vjp(lambda P: _sample_losses(P, Y, loss_code, eps), P)
    (dloss,) = pullback(jnp.ones_like(losses))
    terms = jnp.clip(dloss, -max_dloss, max_dloss) * tangents[0]
    return losses, terms if terms.ndim == 1 else jnp.sum(terms, axis=1)


def _penalty(W: jax.Array, l2: jax.Array, l1: jax.Array) -> jax.Array:
    """``l2/2·‖W‖² + l1·‖W‖₁`` over all entries; ``w·sign(w)`` has l1 derivative 0 at 0."""
    return 0.5 * l2 * jnp.vdot(W, W, precision=_HIGHEST) + l1 * jnp.sum(W * jnp.sign(W))
