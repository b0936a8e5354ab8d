"""The compiled programs: one gradient, one update, and the scan over a chunk of epochs.

:func:`_epochs` is the training loop of :func:`run_epochs` (a ``lax.fori_loop`` over
epochs around a ``lax.scan`` over the batches), compiled as a single native CPU function
for mini-batches on a CPU (:func:`_single_kernel_program`) or as a plain program
(:func:`_portable_program`); :func:`_run_program` picks one and remembers the
configurations XLA:CPU refused as a single kernel (:data:`_single_kernel_refused`).
:func:`_run_epochs_on_mesh` runs the loop on data spread over a mesh.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.experimental.xla_metadata import set_xla_metadata

from ...specs import SCHED_PA1, SCHED_PA2, LoweredModel, LoweredOptimizer
from .batches import (
    _batch_loss_grad,
    _columns,
    _join,
    _model_hyper,
    _model_static,
    _one_column,
    _split,
)
from .devices import (
    _check_batches,
    _MeshData,
    _orders_on_mesh,
    _replicate,
    _replicated,
    _round_up,
    _spread_rows,
)
from .runtime import _x64
from .staging import _padded_epochs
from .updates import (
    State,
    _l1_rule,
    _l1_step,
    _learning_rate,
    _opt_hyper,
    _opt_static,
    _pa_step,
    _update_step,
)

# The traced hyper-parameter vector (float64) of run_epochs: the model's five numbers
# (see _model_hyper), then the optimizer's four and the schedule's three (see _opt_hyper).
_N_MODEL_HYPER = 5


@partial(jax.jit, static_argnames=("static", "block_rows", "spread"))
def _loss_grad_program(data, theta, model_hyper, *, static, block_rows, spread=None):
    one = _one_column(theta, static)
    params, data = _split(theta, one), _spread_rows(_columns(data, one), spread)
    rows = None if spread is None else spread.rows
    report, grad = _batch_loss_grad(params, data, model_hyper, static, block_rows, rows)
    return _replicate((report, _join(grad)), spread)


@partial(jax.jit, static_argnames=("opt",))
def _update_program(theta, grad, step, slots, opt_hyper, *, opt):
    moments = (_split(slots[0]), _split(slots[1]))
    params, step, (s0, s1) = _update_step(
        _split(theta), _split(grad), step, moments, opt_hyper, opt
    )
    return _join(params), step, jnp.stack([_join(s0), _join(s1), slots[2]])


_EPOCHS_STATIC = ("static", "opt", "batch_size", "block_rows", "spread")


def _epochs(
    data, theta, step, slots, orders, n_epochs, hyper,
    *, static, opt, batch_size, block_rows, spread=None,
):  # fmt: skip
    """Run ``n_epochs`` (traced, <= orders.shape[0]) epochs; see :func:`run_epochs`.

    ``block_rows`` < n evaluates a full batch block by block (see
    :func:`_blocked_loss_sum_grad`). With ``spread`` (data on a mesh, see
    :func:`_run_epochs_on_mesh`) the n real rows are among padding rows of weight 0,
    each batch of the orders is padded to a multiple of the devices (see
    :func:`_orders_on_mesh`) and its rows are split over the mesh, the parameters and
    the optimizer state are whole on every device; without, the program is the
    single-device one.

    An l1 term with the SGD optimizer is left out of the step's gradient and applied
    after the step (:func:`_l1_step`): scikit-learn's truncation when ``batch_size`` is
    1, its ``q`` in the weights' second slot (unused by SGD) and its ``u`` carried in
    float64 and stored in the intercepts' second slot at the end; else a proximal step.

    A passive-aggressive schedule (batches of one sample) takes its own step
    (:func:`fastgd.backends.jax.updates._pa_step`) instead of the gradient's; the epoch's
    objective is then the mean unweighted loss alone (scikit-learn's).

    ``opt.average`` = a > 0 keeps the running average of the parameters in the third
    slot after each update t >= a (:func:`_average_step`): after a proximal step, before
    the truncation.
    """
    n = data.X.shape[0] if spread is None else spread.rows
    one = _one_column(theta, static)
    data = _columns(data, one)
    model_hyper, opt_hyper = hyper[:_N_MODEL_HYPER], hyper[_N_MODEL_HYPER:]
    rule = _l1_rule(opt, batch_size, static.l1)
    # with a rule, the step's gradient leaves the l1 term out; it is applied after the step
    grad_hyper = model_hyper if rule is None else model_hyper.at[2].set(0.0)

    def _l1_after(rule, params, s1, u, step):
        lr = _learning_rate(opt.schedule_code, opt_hyper[4:7], step)
        q, s1_b = s1
        W, q, u = _l1_step(rule, params[0], q, u, model_hyper[2], lr)
        return (W, params[1]), (q, s1_b), u

    pa = opt.schedule_code in (SCHED_PA1, SCHED_PA2)

    def train_on(carry, batch, rows):
        params, step, slots, (total, u) = carry
        batch = _spread_rows(batch, spread)
        if pa:  # batches of one sample (checked by fit)
            pa1 = opt.schedule_code == SCHED_PA1
            params, report = _pa_step(params, batch, model_hyper, static, opt_hyper, pa1)
            step, (s0, s1) = step + 1, slots[:2]
        else:
            report, grad = _batch_loss_grad(params, batch, grad_hyper, static, block_rows, rows)
            if rule is not None:
                W = params[0]
                report = report + model_hyper[2] * jnp.sum(jnp.abs(W).astype(jnp.float64))
            params, step, (s0, s1) = _update_step(params, grad, step, slots[:2], opt_hyper, opt)
        avg = slots[2]
        if rule == "proximal":
            params, s1, u = _l1_after(rule, params, s1, u, step)
        if opt.average:
            avg = _average_step(avg, params, step, opt.average)
        if rule == "truncated":
            params, s1, u = _l1_after(rule, params, s1, u, step)
        slots = (s0, s1, avg)
        params, slots = _replicate((params, slots), spread)
        return (params, step, slots, (total + report * rows, u)), report

    n_full, rest = divmod(n, batch_size)
    devices = 1 if spread is None else spread.mesh.size
    width, rest_width = _round_up(batch_size, devices), _round_up(rest, devices)

    def train_on_indices(carry, idx, rows=batch_size):
        return train_on(carry, data.take(idx), rows)

    def epoch(e, carry):
        params, step, slots, u, losses = carry
        inner = (params, step, slots, (jnp.zeros((), jnp.float64), u))
        if batch_size >= n:
            inner, report = train_on(inner, data, n)
            epoch_loss = report
        else:
            order = orders[e]
            batches = order[: n_full * width].reshape(n_full, width)
            inner, _ = lax.scan(train_on_indices, inner, batches)
            if rest:
                last = order[n_full * width : n_full * width + rest_width]
                inner, _ = train_on_indices(inner, last, rest)
            epoch_loss = inner[3][0] / n
        params, step, slots, (_, u) = inner
        return params, step, slots, u, losses.at[e].set(epoch_loss)

    losses = jnp.zeros(orders.shape[0], jnp.float64)
    s1_w, s1_b = _split(slots[1], one)
    # the l1 truncation's u (float64 within the call) lives in the intercepts' second slot
    u = jnp.ravel(s1_b)[0].astype(jnp.float64)
    moments = (_split(slots[0], one), (s1_w, s1_b), _split(slots[2], one))
    carry = (_split(theta, one), step, moments, u, losses)
    params, step, (s0, s1, avg), u, losses = lax.fori_loop(0, n_epochs, epoch, carry)
    if rule == "truncated":
        s1 = (s1[0], jnp.full_like(s1[1], u))
    new_slots = jnp.stack([_join(s0), _join(s1), _join(avg)])
    return _replicate((_join(params), step, new_slots, losses), spread)


def _average_step(avg, params, step, average: int):
    """The running average ``avg += (params − avg) / (t − average + 1)`` after update
    ``t = step`` >= ``average`` (float64 arithmetic, stored in avg's dtype), else ``avg``."""
    started = step >= average
    k = jnp.maximum(step - average + 1, 1).astype(jnp.float64)

    def mean(a, p):
        a64 = a.astype(jnp.float64)
        return jnp.where(started, a64 + (p.astype(jnp.float64) - a64) / k, a64).astype(a.dtype)

    return tuple(mean(a, p) for a, p in zip(avg, params, strict=True))


_epochs_call = jax.jit(_epochs, static_argnames=_EPOCHS_STATIC)

#: XLA:CPU options of the single-kernel program: no YNNPACK fusions. XLA:CPU hands a
#: matrix-matrix product (a mini-batch of K > 1 outputs) to YNNPACK as a custom fusion,
#: which the single-kernel emitter does not support ("Fusion kind not implemented on
#: CPU"); without it the product is emitted inline like the other operations. Measured
#: (2 cores, float64, Adam, 3 epochs of 100,000 samples, K = 3): batch 8 and d = 10,
#: 12 ms against 300 ms for the plain program; batch 64 and d = 100, 124 against 124 ms.
_SINGLE_KERNEL_OPTIONS = {"xla_cpu_experimental_ynn_fusion_type": ""}


@partial(jax.jit, static_argnames=_EPOCHS_STATIC)
def _portable_program(*args, **static):
    """:func:`_epochs` as one compiled program, each operation its own kernel."""
    return _epochs(*args, **static)


@partial(jax.jit, static_argnames=_EPOCHS_STATIC, compiler_options=_SINGLE_KERNEL_OPTIONS)
def _single_kernel_program(*args, **static):
    """:func:`_epochs` as one compiled program whose loop is one native CPU function."""
    with set_xla_metadata(xla_cpu_small_call="true", inlineable="false"):
        return _epochs_call(*args, **static)


def _epochs_program(*args, single_cpu_kernel: bool, **static):
    """:func:`_epochs` as one compiled program.

    With ``single_cpu_kernel`` (set for mini-batches on a CPU device) the whole loop is
    an outlined call that XLA:CPU compiles into a single native function (the call is
    tagged ``xla_cpu_small_call``, and ``inlineable="false"`` keeps XLA from inlining it
    first; see :data:`_SINGLE_KERNEL_OPTIONS` for K > 1). Otherwise XLA:CPU runs every
    operation of every step as a separately dispatched kernel, whose overhead (some
    0.1 µs each) dominates small batches: on this project's benchmarks the single kernel
    is 2.4x (Adam, batch 64) to 4x (per-sample SGD) faster, with bit-identical results.
    Should a future XLA ignore the tag, the call is run as an ordinary one: slower, not
    different. GPU programs are compiled without it.
    """
    program = _single_kernel_program if single_cpu_kernel else _portable_program
    return program(*args, **static)


def _run_epochs_on_mesh(
    data: _MeshData,
    theta: jax.Array,
    state: State,
    orders: np.ndarray,
    batch_size: int,
    model: LoweredModel,
    opt: LoweredOptimizer,
) -> tuple[jax.Array, State, np.ndarray]:
    """:func:`run_epochs` on data that :func:`prepare` spread over a mesh.

    The orders index the global rows (process 0's first). A full batch is every row
    (``batch_size`` >= the orders' length; with several processes each process may pass
    orders of its own length then, as ``fit`` does); mini-batches need the orders over
    all N rows, the same on every process.
    """
    layout = data.layout
    mesh, n = layout.mesh, layout.rows
    n_epochs, n_orders = orders.shape
    full_batch = int(batch_size) >= n_orders
    _check_batches(full_batch, int(batch_size), orders, n)
    if full_batch:
        batch_size, placed_orders = n, _padded_epochs(orders, True)
    else:
        placed_orders = _orders_on_mesh(orders, int(batch_size), layout)
    step, slots = state
    hyper = np.concatenate([_model_hyper(model), _opt_hyper(opt)])
    with _x64():
        step = np.int64(step) if isinstance(step, int) else step
        replicated = (
            _replicated(a, mesh)
            for a in (theta, step, slots, placed_orders, np.int64(n_epochs), hyper)
        )
        static = dict(
            static=_model_static(model), opt=_opt_static(opt), batch_size=int(batch_size),
            block_rows=None, spread=layout.spread,
        )  # fmt: skip
        theta, step, slots, losses = _epochs_program(
            data, *replicated, **static, single_cpu_kernel=False
        )
        epoch_losses = np.asarray(losses, dtype=np.float64)[:n_epochs]
    return theta, (step, slots), epoch_losses


#: Largest mini-batch run as a single CPU kernel. Beyond it the dispatch overhead the
#: single kernel saves is small next to the batch's own work, and the plain program keeps
#: XLA:CPU's library kernels for the products.
_SINGLE_KERNEL_MAX_BATCH = 1024

#: Configurations whose single-kernel compilation XLA:CPU refused (run as plain programs).
_single_kernel_refused: set[tuple] = set()


def _run_program(args: tuple, static: dict, mini_batch_on_cpu: bool):
    """Call :func:`_epochs_program`, as a single CPU kernel when that is possible."""
    shapes = tuple(None if a is None else (a.shape, str(a.dtype)) for a in args[0])
    key = (tuple(static.items()), shapes)  # shapes: the data's, weights (or None) among them
    single = (
        mini_batch_on_cpu
        and static["batch_size"] <= _SINGLE_KERNEL_MAX_BATCH
        and key not in _single_kernel_refused
    )
    if single:
        try:
            return _epochs_program(*args, **static, single_cpu_kernel=True)
        except jax.errors.JaxRuntimeError as exc:  # raised by the compiler, before any work
            message = str(exc)  # an unsupported fusion, or an XLA without the option
            if "UNIMPLEMENTED" not in message and "No such compile option" not in message:
                raise
            _single_kernel_refused.add(key)
    return _epochs_program(*args, **static, single_cpu_kernel=False)
