"""The compiled entry points, one per specialisation, and the plain arguments they take.

Each loss code gets its own entry points (:func:`_for_each_loss`: the code is a
compile-time constant): ``_LOSS_GRAD`` and ``_LOSS_GRAD_MATRIX``, the batch gradient over
all rows of X (:func:`_loss_grad_kernel`), and ``_RUN_EPOCHS[matrix, loop]``, the
training loop of a chunk of epochs (:func:`_run_epochs_kernel`; ``loop`` from
:func:`_training_loop`). :func:`_model_args`,
:func:`_is_vector`, :func:`_flat`, :func:`_weight_arg` and :func:`_kernel_orders` turn the
backend's arguments into what the entry points take.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ...specs import (
    LOSS_CODES,
    LOSS_MULTINOMIAL,
    OPT_SGD,
    PA_SCHEDULES,
    LoweredModel,
    LoweredOptimizer,
)
from .batches import _batch_loss_grad, _batch_loss_grad_matrix, _new_scratch, _new_scratch_matrix
from .jit import _JIT
from .rows import _is_identity
from .sgd import _average_into, _output_groups, _sgd_epochs, _sgd_epochs_grouped, _sgd_epochs_matrix
from .sgd_dense import _sgd_epochs_dense
from .updates import _l1_norm, _learning_rate, _prox_l1, _update_kernel

#: Loss codes of the vector (K = 1) kernels: every loss but multinomial.
_VECTOR_LOSS_CODES = tuple(code for code in LOSS_CODES if code != LOSS_MULTINOMIAL)


# ---------------------------------------------------------------- entry points


def _for_each_loss(make, codes=LOSS_CODES):
    """``{loss_code: make(loss_code)}`` for each loss code in ``codes``.

    The entry points made here pass their loss code to the kernels as a compile-time
    constant (a closure variable, typed as a literal), so each loss gets its own
    compiled kernel tree: the per-row loss has no branch on the code (the row loops run
    about a third faster than with a runtime switch) and the other losses' code is
    pruned. That is at most 9 losses x 2 dtypes specializations per kernel family, each
    compiled on first use and cached.
    """
    return {code: make(code) for code in codes}


def _loss_grad_kernel(loss_code: int, matrix: bool):
    """The batch gradient over all rows of X, with its own scratch, for one loss: the
    matrix kernel (K outputs) when ``matrix``, else the vector one (the flag is a
    compile-time constant: the other family's code is pruned)."""

    @njit(**_JIT)
    def loss_grad_kernel(
        X, Y, weight, theta, loss_param, l2, l1, fit_intercept, max_dloss, slope, grad,
        parallel_min_work,
    ):
        n, d = X.shape
        in_order = np.empty(0, dtype=np.int64)
        start = np.int64(0)  # typed int64, not the literal 0: run_epochs' specializations
        if matrix:
            theta_t, p, partial = _new_scratch_matrix(d, theta.shape[1])
            loss = _batch_loss_grad_matrix(
                X, Y, weight, theta, in_order, start, n, loss_code, loss_param, max_dloss, l2, l1,
                fit_intercept, theta_t, p, partial, grad, parallel_min_work,
            )
        else:
            w64, partial = _new_scratch(d)
            loss = _batch_loss_grad(
                X, Y, weight, theta, in_order, start, n, loss_code, loss_param, max_dloss, l2,
                l1, fit_intercept, w64, partial, grad, parallel_min_work,
            )
        return loss + _intercept_slope(theta, grad, d, slope, fit_intercept)

    return loss_grad_kernel


_LOSS_GRAD = _for_each_loss(lambda code: _loss_grad_kernel(code, False), _VECTOR_LOSS_CODES)
_LOSS_GRAD_MATRIX = _for_each_loss(lambda code: _loss_grad_kernel(code, True))


def _model_args(model: LoweredModel) -> tuple[int, float, float, float, bool, float, float]:
    """The lowered model as the plain scalars the kernels take, in its fields' order (the
    clip ``max_dloss``, inf for none, then the ``intercept_slope``; ``intercept_decay`` is
    not taken); unknown losses raise."""
    if model.loss_code not in LOSS_CODES:
        raise ValueError(f"unknown loss code {model.loss_code!r}")
    return (
        int(model.loss_code),
        float(model.loss_param),
        float(model.l2),
        float(model.l1),
        bool(model.fit_intercept),
        float(model.max_dloss),
        float(model.intercept_slope),
    )


@njit(**_JIT)
def _intercept_slope(theta, grad, d: int, slope: float, fit_intercept: bool) -> float:
    """Add the intercept slope's gradient ``slope`` to each intercept's (when fitted) in
    ``grad`` ((d + 1,) or (d + 1, K)); return its objective ``slope·Σb`` (0 for no slope)."""
    if slope == 0.0:
        return 0.0
    b = theta[d:]  # (1,) or (1, K)
    if fit_intercept:
        grad[d:] += slope
    return slope * np.sum(b.astype(np.float64))


def _is_vector(loss_code: int, theta: np.ndarray) -> bool:
    """Whether the vector (K = 1) kernels run: one output and not multinomial."""
    return theta.shape[1] == 1 and loss_code != LOSS_MULTINOMIAL


def _flat(a: np.ndarray) -> np.ndarray:
    """A 1-D view of a contiguous array (raises rather than copy: kernels write through)."""
    return np.reshape(a, -1, copy=False)


def _weight_arg(weight: np.ndarray | None, dtype: np.dtype) -> np.ndarray:
    """The weights as the kernels take them: an empty array when there are none."""
    if weight is None:
        return np.empty(0, dtype=dtype)
    return np.ascontiguousarray(weight, dtype=dtype)


# ------------------------------------------------------------------- training loop


#: The training loops, one compiled entry each (a fit compiles only the one it runs; all
#: in one entry, a K-output per-sample fit compiled 15.6 s, this way 5.4 s): batches of
#: rows (any optimizer); per sample, scikit-learn's SGD (``sgd._sgd_epochs`` and
#: ``_sgd_epochs_matrix``), its dense steps (passive-aggressive, the intercept slope:
#: ``sgd_dense._sgd_epochs_dense``) and, with K outputs, groups of outputs in parallel
#: (``sgd._sgd_epochs_grouped``). :func:`_training_loop` picks one.
LOOP_BATCHES, LOOP_SAMPLES, LOOP_DENSE, LOOP_GROUPED = "batches", "samples", "dense", "grouped"
_VECTOR_LOOPS = (LOOP_BATCHES, LOOP_SAMPLES, LOOP_DENSE)
_MATRIX_LOOPS = (*_VECTOR_LOOPS, LOOP_GROUPED)


def _training_loop(
    per_sample: bool, matrix: bool, model: LoweredModel, opt: LoweredOptimizer, groups: int,
    n_outputs: int,
) -> str:
    """The loop a call of ``run_epochs`` runs (see ``_RUN_EPOCHS``).

    ``per_sample``: plain SGD one sample at a time (else batches); ``groups``: at most
    how many output groups may run in parallel (``sgd._sgd_groups``). The groups run
    when the step is scaled (no momentum, l1 or averaging), the loss is not the softmax
    and the K outputs cut into more than one group (:func:`.sgd._output_groups`)."""
    if not per_sample:
        return LOOP_BATCHES
    if opt.schedule_code in PA_SCHEDULES or model.intercept_slope != 0.0:
        return LOOP_DENSE
    scaled = opt.params[0] == 0.0 and model.l1 == 0.0 and opt.average == 0
    if matrix and groups > 1 and scaled and model.loss_code != LOSS_MULTINOMIAL:
        if _output_groups(n_outputs, groups).shape[0] > 2:
            return LOOP_GROUPED
    return LOOP_SAMPLES


def _run_epochs_kernel(loss_code: int, matrix: bool, loop: str):
    """The compiled training loop for one loss code (see :func:`_for_each_loss`), one
    kernel family (K outputs when ``matrix``, else one) and one ``loop`` (see
    ``LOOP_BATCHES``; the flags are compile-time constants).

    The kernel runs every batch of ``epoch_losses.shape[0]`` epochs and returns the final
    step count. Epoch e walks ``orders[e % len(orders)]`` (an order 0, 1, 2, … reads X's
    rows directly); scratch is allocated once per call. Vector calls get ``Y`` (n,),
    ``theta`` (d + 1,) and ``slots`` (3, d + 1); matrix calls (n, T), (d + 1, K) and
    (3, d + 1, K).

    The dense loop takes one output as a (d + 1, 1) view; the batch objectives add the
    intercept slope's term (:func:`_intercept_slope`). The groups are cut by
    :func:`.sgd._output_groups` into at most ``sgd_groups``.

    ``average`` > 0 keeps the running average of the parameters in ``slots[2]`` after
    each update t >= ``average`` (:func:`_average_into`; per sample, in ``sgd``'s loops).

    The l1 term with the SGD optimizer: per sample, scikit-learn's truncation after each
    step (``sgd``); in batches, the gradient without it and a proximal step after the
    update (:func:`_prox_l1`). The adaptive optimizers keep its subgradient in the
    gradient (see ``fastgd.backends.numpy.updates._l1_rule``).
    """
    samples = loop == LOOP_SAMPLES
    dense = loop == LOOP_DENSE
    grouped = loop == LOOP_GROUPED

    @njit(**_JIT)
    def run_epochs_kernel(
        X, Y, weight, theta, slots, step, orders, batch_size, loss_param, l2, l1,
        fit_intercept, max_dloss, slope, code, params, schedule_code, schedule_params,
        epoch_losses, parallel_min_work, sgd_groups, average,
    ):
        n, d = X.shape
        if dense and matrix:
            return _sgd_epochs_dense(
                X, Y, weight, theta, slots, step, orders, loss_code, loss_param, max_dloss,
                l2, l1, fit_intercept, slope, params, schedule_code, schedule_params,
                epoch_losses, average,
            )
        if dense:
            return _sgd_epochs_dense(
                X, Y.reshape((n, 1)), weight, theta.reshape((d + 1, 1)), slots.reshape(
                    (3, d + 1, 1)), step, orders, loss_code, loss_param, max_dloss, l2, l1,
                fit_intercept, slope, params, schedule_code, schedule_params, epoch_losses,
                average,
            )
        if grouped:
            return _sgd_epochs_grouped(
                X, Y, weight, theta, slots, step, orders, loss_code, loss_param, max_dloss, l2,
                fit_intercept, params, schedule_code, schedule_params, epoch_losses,
                _output_groups(theta.shape[1], sgd_groups),
            )
        if samples and matrix:
            return _sgd_epochs_matrix(
                X, Y, weight, theta, slots, step, orders, loss_code, loss_param, max_dloss, l2,
                l1, fit_intercept, params, schedule_code, schedule_params, epoch_losses, average,
            )
        if samples:
            return _sgd_epochs(
                X, Y, weight, theta, slots, step, orders, loss_code, loss_param, max_dloss, l2,
                l1, fit_intercept, params, schedule_code, schedule_params, epoch_losses, average,
            )
        grad = np.empty_like(theta)
        size = theta.size
        flat_theta = theta.reshape(size)
        flat_grad = grad.reshape(size)
        flat_slots = slots.reshape((3, size))
        if matrix:
            n_decay = size - theta.shape[1]
            theta_t, p, partial = _new_scratch_matrix(d, theta.shape[1])
        else:
            n_decay = size - 1
            w64, partial = _new_scratch(d)
        in_order = np.empty(0, dtype=np.int64)
        prox = code == OPT_SGD and l1 != 0.0  # the l1 term: a proximal step after SGD's
        grad_l1 = 0.0 if prox else l1
        for e in range(epoch_losses.shape[0]):
            order = in_order
            if batch_size < n:
                order = orders[e % orders.shape[0]]
                if _is_identity(order):
                    order = in_order
            total = 0.0
            loss = 0.0
            for start in range(0, n, batch_size):
                stop = min(start + batch_size, n)
                if matrix:
                    loss = _batch_loss_grad_matrix(
                        X, Y, weight, theta, order, start, stop, loss_code, loss_param,
                        max_dloss, l2, grad_l1, fit_intercept, theta_t, p, partial, grad,
                        parallel_min_work,
                    )
                else:
                    loss = _batch_loss_grad(
                        X, Y, weight, theta, order, start, stop, loss_code, loss_param,
                        max_dloss, l2, grad_l1, fit_intercept, w64, partial, grad,
                        parallel_min_work,
                    )
                if prox:
                    loss += l1 * _l1_norm(flat_theta, n_decay)
                loss += _intercept_slope(theta, grad, d, slope, fit_intercept)
                step += 1
                _update_kernel(
                    flat_theta, flat_grad, flat_slots, step, n_decay, code, params,
                    schedule_code, schedule_params,
                )
                if prox:
                    lr = _learning_rate(schedule_code, schedule_params, step)
                    _prox_l1(flat_theta, n_decay, lr * l1)
                if 0 < average <= step:
                    _average_into(flat_slots[2], flat_theta, step - average + 1)
                total += loss * (stop - start)
            epoch_losses[e] = total / n if batch_size < n else loss
        return step

    return run_epochs_kernel


#: The training loops, by (matrix, loop) and then loss code.
_RUN_EPOCHS = {
    (matrix, loop): _for_each_loss(
        lambda code, m=matrix, lp=loop: _run_epochs_kernel(code, m, lp),
        LOSS_CODES if matrix else _VECTOR_LOSS_CODES,
    )
    for matrix in (False, True)
    for loop in (_MATRIX_LOOPS if matrix else _VECTOR_LOOPS)
}


def _kernel_orders(orders: np.ndarray, full_batch: bool) -> np.ndarray:
    """The epoch orders as a writable C-contiguous int64 array (one compiled layout).

    A full batch ignores the order, and an order repeated every epoch (a stride-0
    broadcast) is passed once: the kernel reads epoch e's order from row e modulo rows.
    """
    if full_batch:
        return np.zeros((1, 0), dtype=np.int64)
    if orders.shape[0] > 1 and orders.strides[0] == 0:
        orders = orders[:1]
    return np.require(orders, dtype=np.int64, requirements=["C", "W"])
