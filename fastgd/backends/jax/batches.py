"""The data bundle and the objective of a batch: mean weighted loss plus penalty, and its gradient.

:class:`Data` is what the kernels read. Inside the compiled programs theta travels as the
pair ``(W, b)`` (:func:`_split`, :func:`_join`), as vectors for a single output
(:func:`_one_column`); :func:`_batch_loss_grad` takes ``jax.value_and_grad`` of the
batch's loss sum (:func:`_loss_sum`) and of the penalty, a large full batch on a CPU row
block by row block (:func:`_blocked_loss_sum_grad`). :func:`_model_static` and
:func:`_model_hyper` lower a model to what a program depends on and to its traced numbers.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from ...specs import LOSS_MULTINOMIAL, LoweredModel
from .losses import _HIGHEST, _clipped_sample_losses, _penalty, _sample_losses

#: Inside the compiled programs: weights (d, K) and intercepts (1, K); (d,) and (1,) for K = 1.
Params = tuple[jax.Array, jax.Array]


class Data(NamedTuple):
    """The training data as the kernels read them (jax arrays on one device, or split by
    rows over a mesh: see :class:`_MeshData`).

    A NamedTuple is a jax pytree, so the bundle goes into the compiled programs as one
    argument; a ``weight`` of None is an empty subtree, which makes "weighted or not"
    part of the program's static structure.

    Attributes
    ----------
    X : jax.Array, shape (n, d)
        Samples, float32 or float64.
    Y : jax.Array, shape (n, T)
        Targets in ``X``'s dtype: T = K outputs, or T = 1 column of class codes for the
        multinomial loss.
    weight : jax.Array of shape (n,) or None
        Per-sample weights in ``X``'s dtype; None means all ones.
    """

    X: jax.Array
    Y: jax.Array
    weight: jax.Array | None = None

    def take(self, idx: jax.Array) -> Data:
        """The rows ``idx`` of every array (a mini-batch); ``idx`` must be in bounds.

        Also used inside the compiled programs, where the promise spares the bounds
        handling of each gather.
        """
        return jax.tree.map(lambda a: a.at[idx].get(mode="promise_in_bounds"), self)


class _ModelStatic(NamedTuple):
    """What the compiled program of a model depends on (hashable, compared by value).

    Whether the samples are weighted is static too, but travels as the structure of the
    :class:`Data` argument (a weight of None is an empty subtree).
    """

    loss_code: int
    fit_intercept: bool
    #: Whether any penalty strength is non-zero; without one, the program leaves the
    #: penalty out (a measurable saving per step for small batches). The strengths
    #: themselves stay traced, so all penalised fits share one program.
    penalized: bool
    #: Whether the loss derivatives are clipped (``max_dloss`` finite); without a clip
    #: the program is the unclipped one, operation for operation. The bound itself is
    #: traced (see :func:`_clipped_sample_losses`).
    clipped: bool = False
    #: Whether the l1 strength is non-zero: with the SGD optimizer the training program
    #: then applies it after each step rather than in the gradient (see
    #: :func:`fastgd.backends.jax.updates._l1_step`).
    l1: bool = False
    #: Whether the objective has an intercept slope (the one-class SVM's ``nu·b``, see
    #: ``LoweredModel.intercept_slope``); its value is traced.
    slope: bool = False


def _model_static(model: LoweredModel) -> _ModelStatic:
    penalized = model.l2 != 0.0 or model.l1 != 0.0
    clipped = bool(np.isfinite(model.max_dloss))
    return _ModelStatic(
        int(model.loss_code), bool(model.fit_intercept), penalized, clipped, model.l1 != 0.0,
        model.intercept_slope != 0.0,
    )


def _model_hyper(model: LoweredModel) -> np.ndarray:
    """The model's float hyper-parameters as a (5,) float64 vector: the loss's epsilon,
    the penalty strengths l2 and l1, the clip ``max_dloss`` (inf for none), the
    ``intercept_slope``."""
    return np.array(
        [model.loss_param, model.l2, model.l1, model.max_dloss, model.intercept_slope],
        dtype=np.float64,
    )


def _one_column(theta: jax.Array, static: _ModelStatic) -> bool:
    """Whether a program carries its single output as vectors (see :func:`_split`).

    A model of one output (K = 1, never the multinomial loss) runs on weights (d,), an
    intercept (1,) and targets (n,) inside the programs, as before there were K outputs:
    XLA:CPU's (d, 1) products and (n, 1) gathers cost more per step (per-sample SGD with
    d = 10: 15% more time, bit-identical results).
    """
    return theta.shape[1] == 1 and static.loss_code != LOSS_MULTINOMIAL


def _split(theta: jax.Array, one_column: bool = False) -> Params:
    """``theta`` (d + 1, K) as the pair (weights (d, K), intercepts (1, K)).

    With ``one_column`` (K = 1), the pair (weights (d,), intercept (1,)).
    """
    if one_column:
        theta = theta[:, 0]
    return theta[:-1], theta[-1:]


def _join(params: Params) -> jax.Array:
    """The inverse of :func:`_split`: theta of shape (d + 1, K)."""
    theta = jnp.concatenate(params)
    return theta[:, None] if theta.ndim == 1 else theta


def _columns(data: Data, one_column: bool) -> Data:
    """``data`` with ``Y`` as a vector (n,) when the program runs on one column."""
    return data._replace(Y=data.Y[:, 0]) if one_column else data


def _loss_sum(
    params: Params, data: Data, model_hyper: jax.Array, static: _ModelStatic
) -> tuple[jax.Array, jax.Array]:
    """Sum over the rows of ``data`` of the (weighted) per-sample loss of ``P = X @ W + b``.

    ``params`` is the pair ``(W, b)`` of shapes (d, K) and (1, K), or (d,) and (1,) with
    ``Y`` of shape (m,) for one output (see :func:`_split`): inside the compiled programs
    the weights and the intercepts travel separately, which spares every step the
    slicing and re-assembling of theta (about 15% of a per-sample SGD step on a CPU).

    Returns
    -------
    total : 0-d array, dtype of ``W``
        ``Σ_i weight_i·loss_i``, what is differentiated; ``b`` gets no gradient when the
        intercept is not fitted.
    total64 : 0-d float64 array
        The same sum accumulated in float64 (``total`` itself for float64 data).
    """
    W, b = params
    if not static.fit_intercept:
        b = lax.stop_gradient(b)
    X, Y, weight = data
    P = jnp.matmul(X, W, precision=_HIGHEST) + b
    eps = model_hyper[0].astype(W.dtype)
    if static.clipped:
        max_dloss = model_hyper[3].astype(W.dtype)
        losses = _clipped_sample_losses(static.loss_code, P, Y, eps, max_dloss)
    else:
        losses = _sample_losses(P, Y, static.loss_code, eps)
    if weight is not None:
        losses = losses * weight
    total = jnp.sum(losses)
    if W.dtype == jnp.float64:
        return total, total
    return total, jnp.sum(losses.astype(jnp.float64))


def _penalty_term(W: jax.Array, model_hyper: jax.Array) -> tuple[jax.Array, jax.Array]:
    """The penalty on the weights ``W`` in their dtype, and in float64 for the report."""
    l2, l1 = model_hyper[1].astype(W.dtype), model_hyper[2].astype(W.dtype)
    penalty = _penalty(W, l2, l1)
    if W.dtype == jnp.float64:
        return penalty, penalty
    report = 0.5 * model_hyper[1] * jnp.vdot(W, W, precision=_HIGHEST).astype(
        jnp.float64
    ) + model_hyper[2] * jnp.sum(jnp.abs(W)).astype(jnp.float64)
    return penalty, report


_loss_sum_value_and_grad = jax.value_and_grad(_loss_sum, has_aux=True)
_penalty_value_and_grad = jax.value_and_grad(_penalty_term, has_aux=True)

#: Bytes of ``X`` per row block of the blocked full-batch gradient on a CPU: small enough
#: that the block is still in the last-level cache when the backward pass reads it again,
#: large enough that XLA:CPU's per-block work (it copies the block into a scratch buffer,
#: then runs two multi-threaded products on it, each a dispatch and a join of its
#: threads) stays small next to reading the block from memory. Measured
#: on a 2-core AMD EPYC with 32 MiB of L3, gradient of 2,000,000 x 32 float64, each size
#: in a fresh process: 1-4 MiB 50-62 ms, 5-6 MiB 40-47 ms, 8 MiB 44-49 ms, 24 MiB 63-71 ms
#: (numpy's ``X @ w``: 20-24 ms).
_BLOCK_BYTES = 5 * 2**20


def _block_rows(n: int, d: int, itemsize: int, on_cpu: bool) -> int:
    """Rows per block for a full batch of n rows (n itself: not blocked)."""
    rows = max(64, _BLOCK_BYTES // (d * itemsize))
    return rows if on_cpu and n >= 4 * rows else n


def _batch_loss_grad(params, data, model_hyper, static, block_rows=None, rows=None):
    """Batch objective (mean weighted loss + penalty) and its gradient.

    The gradient is ``jax.value_and_grad`` of the loss sum (:func:`_loss_sum`), divided
    by the batch size afterwards as numpy divides ``Xᵀ·dloss``, plus that of the penalty
    (:func:`_penalty_term`). Dividing after differentiating keeps the samples' weights
    the only factor of the sum, so that a weight of 1 changes no rounding of
    :func:`loss_grad` (a constant 1/m folded into each sample's derivative was rounded
    differently with and without weights).

    Parameters
    ----------
    params : (W, b)
        See :func:`_split`.
    data : Data
        The batch, m rows.
    model_hyper : array, shape (5,)
        Epsilon, the penalty strengths, the derivative clip and the intercept slope
        (float64; see :func:`_model_hyper`).
    static : _ModelStatic
        Loss code, whether the intercept is trained, whether there is a penalty, whether
        the loss derivatives are clipped.
    block_rows : int, optional
        Fewer than m rows: the loss sum is taken block by block (large full batches on a
        CPU, see :func:`_block_rows`).
    rows : int, optional
        The real batch size, the divisor of the mean: m unless the batch was padded with
        rows of weight 0 (on a mesh).

    Returns
    -------
    report : 0-d float64 array
        The objective, with the mean and the penalty summed in float64 as the numpy
        backend reports it.
    grad : (W, b) pair
        Its gradient, in the parameters' dtype.
    """
    m = data.X.shape[0]
    if block_rows is not None and block_rows < m:
        total64, grad = _blocked_loss_sum_grad(params, data, model_hyper, static, block_rows)
    else:
        (_, total64), grad = _loss_sum_value_and_grad(params, data, model_hyper, static)
    m = m if rows is None else rows
    if m != 1:
        grad = jax.tree.map(lambda g: g / m, grad)
    report = total64 / m
    if static.slope:  # the one-class SVM's nu·b: unweighted, on the intercepts
        slope = model_hyper[4]
        report = report + slope * jnp.sum(params[1].astype(jnp.float64))
        if static.fit_intercept:
            grad = (grad[0], grad[1] + slope.astype(grad[1].dtype))
    if not static.penalized:
        return report, grad
    (_, penalty64), penalty_grad = _penalty_value_and_grad(params[0], model_hyper)
    return report + penalty64, (grad[0] + penalty_grad, grad[1])


def _blocked_loss_sum_grad(params, data, model_hyper, static, block_rows):
    """The loss sum (float64) and its gradient, one row block at a time.

    ``jax.value_and_grad`` of :func:`_loss_sum` is taken block by block (forward and
    backward pass on a block while it is in cache, so ``X`` is read from memory once)
    and the blocks' sums are added up: the same as on all rows at once; only the order
    of the additions differs.
    """
    n = data.X.shape[0]
    n_blocks, rest = divmod(n, block_rows)

    def block(start, rows, acc):
        rows_of = jax.tree.map(lambda a: lax.dynamic_slice_in_dim(a, start, rows), data)
        (_, total64), grad = _loss_sum_value_and_grad(params, rows_of, model_hyper, static)
        return acc[0] + total64, jax.tree.map(jnp.add, acc[1], grad)

    acc = (jnp.zeros((), jnp.float64), jax.tree.map(jnp.zeros_like, params))
    acc = lax.fori_loop(0, n_blocks, lambda i, acc: block(i * block_rows, block_rows, acc), acc)
    if rest:
        acc = block(n_blocks * block_rows, rest, acc)
    return acc
