"""The jax backend: ``jax.value_and_grad`` of one jnp objective, a scanned training loop.

The same public names, signatures and semantics as ``numpy_backend``:

- :func:`prepare` — move the data and parameters to a jax device, once per fit;
- :func:`loss_grad` — mean loss (plus penalty) and its gradient, by ``jax.value_and_grad``;
- :func:`init_state` — the optimizer's state ``(step, slots)``, on the parameters' device;
- :func:`update` — one optimizer step (optax's formulas, written in jnp);
- :func:`run_epochs` — all batches of a chunk of epochs as one compiled program.

Design notes
------------
* **One definition of the mathematics.** Each loss and penalty is written once in jnp
  (:func:`_sample_losses`, :func:`_penalty`); every gradient comes from
  ``jax.value_and_grad`` of :func:`_objective`. The l1 term is written ``w · sign(w)``
  so that its derivative at ``w = 0`` is 0, the subgradient the other backends use
  (``jnp.abs`` would give 1 there). The intercept enters through ``stop_gradient``
  when it is not fitted, so its gradient is exactly 0.
* **Static configuration is small.** A compiled program depends only on the int codes
  (loss, optimizer, schedule), ``fit_intercept``, ``batch_size``, the array shapes and
  the dtype. Every float hyper-parameter (Huber's epsilon, penalty strengths, optimizer
  and schedule parameters) is a traced input, so refits with other hyper-parameters
  reuse the program. The number of epochs in a chunk is rounded up to a power of two
  (the extra rows are never run), so chunks of different lengths share programs too.
* **One program per chunk.** :func:`run_epochs` is a single ``jax.jit`` call: a
  ``lax.fori_loop`` over epochs around a ``lax.scan`` over the full batches of each
  epoch, then the short last batch (its size ``n % batch_size`` is static, so it is a
  fixed piece of the same program, never a recompile). The batch order drawn by numpy
  comes in as an index array; nothing returns to the host until the chunk is done.
* **Precision.** float64 inputs run under ``jax.enable_x64(True)`` for the duration of
  each call of this module only (never switched on globally); float32 inputs stay
  float32, while the reported losses are accumulated in float64 (cheap: one scalar per
  batch). Matrix products use ``Precision.HIGHEST``, so float32 products on a GPU are
  true float32, not TF32-rounded.
* **Devices.** The code is device-agnostic: the same program runs on the CPU or a GPU,
  wherever :func:`prepare` put the data.
* **Compilation cache.** On import, if the user has not configured jax's persistent
  compilation cache, it is pointed at ``$FASTGD_JAX_CACHE_DIR`` (default
  ``~/.cache/fastgd/jax``) with no minimum compile time, so a new process reuses the
  programs compiled by earlier ones.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from ..specs import (
    LOSS_HUBER,
    LOSS_LOGISTIC,
    OPT_ADAGRAD,
    OPT_ADAM,
    OPT_ADAMW,
    OPT_RMSPROP,
    OPT_SGD,
    SCHED_CONSTANT,
    SCHED_COSINE,
    SCHED_EXPONENTIAL,
    SCHED_INVSCALING,
    LoweredModel,
    LoweredOptimizer,
)

__all__ = ["NAME", "prepare", "loss_grad", "init_state", "update", "run_epochs"]

NAME = "jax"

State = tuple[jax.Array, jax.Array]

_HIGHEST = lax.Precision.HIGHEST

# The traced hyper-parameter vector (float64) of run_epochs: the model's three numbers
# (see _model_hyper), then the optimizer's four and the schedule's three (see _opt_hyper).
_N_MODEL_HYPER = 3


# ----------------------------------------------------------------- configuration


def _configure_compilation_cache() -> None:
    """Turn on jax's persistent compilation cache unless the user configured one."""
    if jax.config.jax_compilation_cache_dir:
        return
    default = os.path.join(os.path.expanduser("~"), ".cache", "fastgd", "jax")
    jax.config.update("jax_compilation_cache_dir", os.environ.get("FASTGD_JAX_CACHE_DIR", default))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    # jax decides once, at its first compilation, whether the cache is in use; start over
    # in case something was compiled before this module was imported.
    from jax.experimental.compilation_cache import compilation_cache

    compilation_cache.reset_cache()


_configure_compilation_cache()


@contextmanager
def _x64() -> Iterator[None]:
    """64-bit types for the duration of one call of this module, restored afterwards."""
    with jax.enable_x64(True):
        yield


def _default_device() -> jax.Device:
    """jax's default device: ``jax_default_device`` if the user set it, else the first one."""
    chosen = jax.config.jax_default_device
    if isinstance(chosen, jax.Device):
        return chosen
    return jax.devices(chosen)[0] if isinstance(chosen, str) else jax.devices()[0]


def _resolve_device(device: object) -> jax.Device:
    """The jax device called ``device`` (None: jax's default), or ``ValueError``."""
    if device is None:
        return _default_device()
    if isinstance(device, jax.Device):
        return device
    if isinstance(device, str) and device in ("cpu", "gpu"):
        try:
            found = jax.devices(device)
        except RuntimeError:
            found = []
        if found:
            return found[0]
        raise ValueError(
            f"device {device!r} is not available to jax on this machine "
            f"(jax sees {[str(d) for d in jax.devices()]})"
        )
    raise ValueError(f"device must be None, 'cpu', 'gpu' or a jax.Device, got {device!r}")


def _device_of(a: object) -> jax.Device:
    """The device holding ``a`` if it is a single-device jax array, else jax's default."""
    if isinstance(a, jax.Array):
        devices = a.devices()
        if len(devices) == 1:
            return next(iter(devices))
    return _default_device()


def _model_hyper(model: LoweredModel) -> np.ndarray:
    """The model's float hyper-parameters as a (3,) float64 vector."""
    return np.array([model.loss_param, model.l2, model.l1], dtype=np.float64)


def _opt_hyper(opt: LoweredOptimizer) -> np.ndarray:
    """The optimizer's and schedule's float hyper-parameters as a (7,) float64 vector."""
    return np.array([*opt.params, *opt.schedule_params], dtype=np.float64)


# ------------------------------------------------------------------- mathematics


def _sample_losses(p: jax.Array, y: jax.Array, loss_code: int, epsilon: jax.Array) -> jax.Array:
    """Per-sample losses, shape (m,): the single definition every gradient derives from."""
    if loss_code == LOSS_LOGISTIC:
        return jnp.logaddexp(0.0, p) - y * p
    r = p - y
    if loss_code == LOSS_HUBER:
        abs_r = jnp.abs(r)
        return jnp.where(abs_r <= epsilon, 0.5 * r * r, epsilon * (abs_r - 0.5 * epsilon))
    return 0.5 * r * r


def _penalty(w: jax.Array, l2: jax.Array, l1: jax.Array) -> jax.Array:
    """``l2/2·‖w‖² + l1·‖w‖₁``; ``w·sign(w)`` makes the l1 derivative 0 at w = 0."""
    return 0.5 * l2 * jnp.dot(w, w, precision=_HIGHEST) + l1 * jnp.sum(w * jnp.sign(w))


def _objective(
    theta: jax.Array,
    X: jax.Array,
    y: jax.Array,
    model_hyper: jax.Array,
    loss_code: int,
    fit_intercept: bool,
) -> tuple[jax.Array, jax.Array]:
    """Batch objective (mean loss + penalty) in the data's dtype, and its float64 report.

    Returns
    -------
    objective : 0-d array, dtype of ``theta``
        What is differentiated.
    report : 0-d float64 array
        The same quantity with the mean and the penalty summed in float64, as the numpy
        backend reports it.
    """
    dtype = theta.dtype
    epsilon, l2, l1 = (model_hyper[i].astype(dtype) for i in range(3))
    w = theta[:-1]
    b = theta[-1] if fit_intercept else lax.stop_gradient(theta[-1])
    p = jnp.matmul(X, w, precision=_HIGHEST) + b
    losses = _sample_losses(p, y, loss_code, epsilon)
    penalty = _penalty(w, l2, l1)
    report = (
        jnp.mean(losses.astype(jnp.float64))
        + 0.5 * model_hyper[1] * jnp.dot(w, w, precision=_HIGHEST).astype(jnp.float64)
        + model_hyper[2] * jnp.sum(jnp.abs(w)).astype(jnp.float64)
    )
    return jnp.mean(losses) + penalty, report


_value_and_grad = jax.value_and_grad(_objective, has_aux=True)


def _batch_loss_grad(theta, X, y, model_hyper, loss_code, fit_intercept):
    """(float64 report, gradient of shape (d + 1,)) for one batch."""
    (_, report), grad = _value_and_grad(theta, X, y, model_hyper, loss_code, fit_intercept)
    return report, grad


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
    raise ValueError(f"unknown schedule code {schedule_code!r}")


def _update_step(
    theta: jax.Array,
    grad: jax.Array,
    step: jax.Array,
    slots: jax.Array,
    opt_hyper: jax.Array,
    opt_code: int,
    schedule_code: int,
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """One optimizer step (optax's formulas); returns new ``theta``, ``step``, ``slots``."""
    dtype = theta.dtype
    t = step + 1
    lr = _learning_rate(schedule_code, opt_hyper[4:7], t).astype(dtype)
    a, b, c, d = (opt_hyper[i].astype(dtype) for i in range(4))
    if opt_code == OPT_SGD:
        trace = grad + a * slots[0]
        u = jnp.where(b != 0, grad + a * trace, trace)
        slots = slots.at[0].set(trace)
    elif opt_code == OPT_ADAGRAD:
        acc = slots[0] + grad * grad
        u = grad / jnp.sqrt(acc + b)
        slots = slots.at[0].set(acc)
    elif opt_code == OPT_RMSPROP:
        ms = (1 - a) * grad * grad + a * slots[0]
        u = grad / jnp.sqrt(ms + b)
        slots = slots.at[0].set(ms)
    elif opt_code in (OPT_ADAM, OPT_ADAMW):
        m = (1 - a) * grad + a * slots[0]
        v = (1 - b) * grad * grad + b * slots[1]
        tf = t.astype(dtype)
        u = (m / (1 - a**tf)) / (jnp.sqrt(v / (1 - b**tf)) + c)
        if opt_code == OPT_ADAMW:
            u = u.at[:-1].add(d * theta[:-1])
        slots = jnp.stack([m, v])
    else:
        raise ValueError(f"unknown optimizer code {opt_code!r}")
    return theta - lr * u, t, slots


# ------------------------------------------------------------- compiled programs


@partial(jax.jit, static_argnames=("loss_code", "fit_intercept"))
def _loss_grad_program(X, y, theta, model_hyper, *, loss_code, fit_intercept):
    return _batch_loss_grad(theta, X, y, model_hyper, loss_code, fit_intercept)


@partial(jax.jit, static_argnames=("opt_code", "schedule_code"))
def _update_program(theta, grad, step, slots, opt_hyper, *, opt_code, schedule_code):
    return _update_step(theta, grad, step, slots, opt_hyper, opt_code, schedule_code)


@partial(
    jax.jit,
    static_argnames=("loss_code", "opt_code", "schedule_code", "fit_intercept", "batch_size"),
)
def _epochs_program(
    X, y, theta, step, slots, orders, n_epochs, hyper,
    *, loss_code, opt_code, schedule_code, fit_intercept, batch_size,
):  # fmt: skip
    """Run ``n_epochs`` (traced, <= orders.shape[0]) epochs; see :func:`run_epochs`."""
    n = X.shape[0]
    model_hyper, opt_hyper = hyper[:_N_MODEL_HYPER], hyper[_N_MODEL_HYPER:]

    def train_on(carry, Xb, yb):
        theta, step, slots, total = carry
        report, grad = _batch_loss_grad(theta, Xb, yb, model_hyper, loss_code, fit_intercept)
        theta, step, slots = _update_step(
            theta, grad, step, slots, opt_hyper, opt_code, schedule_code
        )
        return (theta, step, slots, total + report * Xb.shape[0]), report

    def train_on_indices(carry, idx):
        Xb = X.at[idx].get(mode="promise_in_bounds")
        yb = y.at[idx].get(mode="promise_in_bounds")
        return train_on(carry, Xb, yb)

    n_full, rest = divmod(n, batch_size)

    def epoch(e, carry):
        theta, step, slots, losses = carry
        inner = (theta, step, slots, jnp.zeros((), jnp.float64))
        if batch_size >= n:
            inner, report = train_on(inner, X, y)
            epoch_loss = report
        else:
            order = orders[e]
            batches = order[: n_full * batch_size].reshape(n_full, batch_size)
            inner, _ = lax.scan(train_on_indices, inner, batches)
            if rest:
                inner, _ = train_on_indices(inner, order[n_full * batch_size :])
            epoch_loss = inner[3] / n
        theta, step, slots, _ = inner
        return theta, step, slots, losses.at[e].set(epoch_loss)

    losses = jnp.zeros(orders.shape[0], jnp.float64)
    theta, step, slots, losses = lax.fori_loop(0, n_epochs, epoch, (theta, step, slots, losses))
    return theta, step, slots, losses


# ------------------------------------------------------------------ public names


def prepare(
    X: np.ndarray, y: np.ndarray, theta: np.ndarray, device: object = None
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Move the data and parameters to a jax device, once per fit.

    Parameters
    ----------
    X : ndarray, shape (n, d); y : ndarray, shape (n,); theta : ndarray, shape (d + 1,)
        Checked, C-contiguous, one float dtype (float32 or float64, kept as is).
    device : None, "cpu", "gpu" or jax.Device
        Where to run; None means jax's default device.

    Returns
    -------
    X, y, theta : jax.Array
        The same values and dtype, on the device.

    Raises
    ------
    ValueError
        If ``device`` is not one of the above or not present on this machine.
    """
    target = _resolve_device(device)
    with _x64():
        return tuple(jax.device_put(a, target) for a in (X, y, theta))


def loss_grad(
    X: jax.Array, y: jax.Array, theta: jax.Array, model: LoweredModel
) -> tuple[jax.Array, jax.Array]:
    """Mean loss over a batch plus the penalty, and its gradient (``jax.value_and_grad``).

    Parameters
    ----------
    X : array, shape (m, d)
        The batch's samples, float32 or float64.
    y : array, shape (m,)
        Targets (labels in {0, 1} for the logistic loss), same dtype as ``X``.
    theta : array, shape (d + 1,)
        Weights followed by the intercept, same dtype as ``X``.
    model : LoweredModel
        Loss code and parameter, penalty strengths, whether the intercept is trained.

    Returns
    -------
    loss : 0-d float64 jax.Array
        ``mean_i loss(p_i, y_i) + l2/2·‖w‖² + l1·‖w‖₁`` with ``p = X @ w + b``
        (``float(loss)`` gives the Python number).
    grad : jax.Array, shape (d + 1,), dtype of ``theta``
        Its gradient with respect to ``theta``; the intercept entry is 0 when the intercept
        is not trained; the l1 term contributes ``l1·sign(w)`` (0 at w = 0).
    """
    with _x64():
        return _loss_grad_program(
            X, y, theta, _model_hyper(model),
            loss_code=int(model.loss_code), fit_intercept=bool(model.fit_intercept),
        )  # fmt: skip


def init_state(theta: jax.Array, opt: LoweredOptimizer) -> State:
    """The optimizer state before the first update, on ``theta``'s device.

    Parameters
    ----------
    theta : array, shape (p,)
        The initial parameters; the state takes their shape and dtype.
    opt : LoweredOptimizer
        The optimizer; AdaGrad starts its sum of squares at ``initial_accumulator_value``.

    Returns
    -------
    state : tuple (0-d int64 jax.Array, jax.Array of shape (2, p))
        ``(0, slots)``.
    """
    with _x64():
        dtype = np.dtype(theta.dtype)
        slots = np.zeros((2, theta.shape[0]), dtype=dtype)
        if opt.code == OPT_ADAGRAD:
            slots[0] = opt.params[0]
        device = _device_of(theta)
        return jax.device_put(np.int64(0), device), jax.device_put(slots, device)


def update(
    theta: jax.Array, grad: jax.Array, state: State, opt: LoweredOptimizer
) -> tuple[jax.Array, State]:
    """One optimizer step; jax arrays are immutable, so new ones are returned.

    Parameters
    ----------
    theta : array, shape (p,)
        Parameters (weights then intercept).
    grad : array, shape (p,)
        Gradient at ``theta``.
    state : tuple (int or 0-d int array, array of shape (2, p))
        From :func:`init_state` or the previous :func:`update`.
    opt : LoweredOptimizer
        Optimizer code and hyper-parameters, schedule code and parameters.

    Returns
    -------
    theta, state
        The updated parameters and state, the step count increased by one.
    """
    step, slots = state
    with _x64():
        theta, step, slots = _update_program(
            theta, grad, jnp.asarray(step, dtype=jnp.int64), slots, _opt_hyper(opt),
            opt_code=int(opt.code), schedule_code=int(opt.schedule_code),
        )  # fmt: skip
    return theta, (step, slots)


def _padded_epochs(orders: np.ndarray, full_batch: bool) -> np.ndarray:
    """``orders`` as int32 with its epoch count rounded up to a power of two.

    The padding rows repeat the first epoch and are never run; with a full batch the
    order is not used, so only a (E', 0) placeholder travels to the device.
    """
    n_epochs, n = orders.shape
    padded = 1 << (n_epochs - 1).bit_length()
    if full_batch:
        return np.zeros((padded, 0), dtype=np.int32)
    out = np.empty((padded, n), dtype=np.int32 if n < 2**31 else np.int64)
    out[:n_epochs] = orders
    out[n_epochs:] = orders[0]
    return out


def run_epochs(
    X: jax.Array,
    y: jax.Array,
    theta: jax.Array,
    state: State,
    orders: np.ndarray,
    batch_size: int,
    model: LoweredModel,
    opt: LoweredOptimizer,
) -> tuple[jax.Array, State, np.ndarray]:
    """Run every batch of a chunk of epochs as one compiled program.

    Parameters
    ----------
    X : array, shape (n, d)
        All samples, float32 or float64, ideally already on the device (:func:`prepare`).
    y : array, shape (n,)
        All targets, same dtype.
    theta : array, shape (d + 1,)
        Starting parameters.
    state : tuple
        Optimizer state from :func:`init_state` or a previous call.
    orders : ndarray of int64, shape (E, n)
        Sample order of each of the E epochs; epoch e's batches are consecutive slices
        of ``orders[e]`` of ``batch_size`` samples, the last one possibly shorter.
        With ``batch_size >= n`` (full batch) the order does not matter.
    batch_size : int
        Samples per update, 1 <= batch_size <= n.
    model, opt : LoweredModel, LoweredOptimizer
        What to minimise and how.

    Returns
    -------
    theta : jax.Array, shape (d + 1,)
        Parameters after the last update, dtype of ``X``.
    state : tuple (0-d int64 jax.Array, jax.Array of shape (2, d + 1))
        Optimizer state after the last update.
    epoch_losses : ndarray of float64, shape (E,)
        Per epoch, the mean over its samples of the batch objective (loss + penalty)
        evaluated before each batch's update.
    """
    n_epochs, n = orders.shape
    step, slots = state
    hyper = np.concatenate([_model_hyper(model), _opt_hyper(opt)])
    batch_size = min(int(batch_size), n)
    with _x64():
        # Commit every array to one device, so that the compiled program is looked up
        # with the same signature whether an input came from prepare() or from a
        # previous call (a no-op for arrays already there).
        X, y, theta, step, slots = jax.device_put(
            (X, y, theta, np.int64(step) if isinstance(step, int) else step, slots),
            _device_of(X),
        )
        theta, step, slots, losses = _epochs_program(
            X, y, theta, step, slots,
            _padded_epochs(orders, batch_size >= n), np.int64(n_epochs), hyper,
            loss_code=int(model.loss_code), opt_code=int(opt.code),
            schedule_code=int(opt.schedule_code), fit_intercept=bool(model.fit_intercept),
            batch_size=batch_size,
        )  # fmt: skip
        epoch_losses = np.asarray(losses, dtype=np.float64)[:n_epochs]
    return theta, (step, slots), epoch_losses
