"""The one entry point: :func:`fit` validates once, picks the backend and runs the epoch loop."""

from __future__ import annotations

import dataclasses
import math
import numbers
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from tqdm.auto import tqdm

from .backends import get_backend
from .chunks import ChunkedRows, default_memory_budget, rows_per_chunk
from .data import (
    check_int,
    check_sample_weight,
    check_targets,
    check_X,
    epoch_orders,
)
from .specs import (
    Adaptive,
    Logistic,
    Loss,
    LoweredModel,
    LoweredOptimizer,
    ModifiedHuber,
    Multinomial,
    Optimizer,
    Schedule,
    learning_rate,
    lower_model,
    lower_optimizer,
    resolve_loss,
    resolve_optimizer,
    resolve_penalty,
    resolve_schedule,
)

__all__ = ["DivergenceError", "FitResult", "fit", "check_grad"]

#: Upper bound on the bytes of sample indices handed to a backend in one call.
_CHUNK_INDEX_BYTES = 32 * 2**20


class DivergenceError(FloatingPointError):
    """Training produced a non-finite loss or non-finite parameters.

    Attributes
    ----------
    epoch : int
        The first epoch (counted from 1) whose loss or parameters were not finite.
    lr : float
        The learning rate at the first update (the optimizer's, or its schedule's start).
    loss_history : ndarray
        The finite per-epoch losses before the divergence.
    """

    def __init__(self, epoch: int, lr: float, loss_history: np.ndarray):
        self.epoch = epoch
        self.lr = lr
        self.loss_history = loss_history
        super().__init__(
            f"training diverged at epoch {epoch} (loss or parameters not finite) with "
            f"learning rate {lr:g}; try a smaller lr. Losses so far: {loss_history.tolist()}"
        )


@dataclass
class FitResult:
    """What :func:`fit` returns.

    Attributes
    ----------
    coef : ndarray, shape (d,) or (d, K)
        Learned weights, in the dtype of ``X`` (float32 or float64): (d,) when ``y`` was
        1-D, else one column per output (per class for ``multinomial``).
    intercept : float or ndarray of shape (K,)
        Learned intercept(s) (0.0, or ``intercept_init``, when not fitted).
    loss_history : ndarray of float64, shape (n_epochs,)
        Per epoch, the mean over its samples of the batch objective (mean loss plus
        penalty) evaluated just before each batch's update.
    n_epochs : int
        Epochs run (fewer than asked when ``tol`` or the callback stopped early).
    n_updates : int
        Optimizer steps taken.
    converged : bool
        True when the ``tol`` rule or the callback stopped training.
    backend : str
        Which backend ran.
    loss : Loss
        The loss spec, used by :meth:`predict`.
    fit_time : float
        Wall-clock seconds spent in the epoch loop (including any JIT compilation).
    optimizer_state : tuple (int, ndarray of shape (2, d + 1, K))
        The optimizer's step count and moments at the end, on the host: pass it back as
        ``fit(..., optimizer_state=...)`` (with ``coef_init``/``intercept_init``) to go on
        training exactly where this run stopped.
    """

    coef: np.ndarray
    intercept: float | np.ndarray
    loss_history: np.ndarray
    n_epochs: int
    n_updates: int
    converged: bool
    backend: str
    loss: Loss = field(repr=False)
    fit_time: float = field(default=0.0, repr=False)
    optimizer_state: tuple[int, np.ndarray] | None = field(default=None, repr=False)

    def decision_function(self, X: object) -> np.ndarray:
        """Linear prediction ``X @ coef + intercept``, shape (n,) or (n, K) like ``coef``."""
        X = check_X(X, n_features=self.coef.shape[0], dtype=self.coef.dtype)
        return X @ self.coef + np.asarray(self.intercept, dtype=self.coef.dtype)

    def predict(self, X: object) -> np.ndarray:
        """Predictions: values for regression, labels {0, 1} (per output) for the binary
        classification losses, class codes (n,) for ``multinomial``."""
        p = self.decision_function(X)
        if isinstance(self.loss, Multinomial):
            return np.argmax(p, axis=1)
        if self.loss.kind == "binary":
            return (p > 0).astype(p.dtype)
        return p

    def predict_proba(self, X: object) -> np.ndarray:
        """Class probabilities, for the losses that define them.

        ``logistic``: P(y = 1 | x) = sigmoid(p); ``modified_huber``: (clip(p, −1, 1) + 1)/2,
        as scikit-learn; both of the shape of :meth:`decision_function`. ``multinomial``:
        the softmax of each row, shape (n, K).
        """
        p = self.decision_function(X)
        if isinstance(self.loss, Logistic):
            return 1.0 / (1.0 + np.exp(-p))
        if isinstance(self.loss, ModifiedHuber):
            return (np.clip(p, -1.0, 1.0) + 1.0) / 2.0
        if isinstance(self.loss, Multinomial):
            e = np.exp(p - p.max(axis=1, keepdims=True))
            return e / e.sum(axis=1, keepdims=True)
        raise ValueError(
            "predict_proba needs the logistic, modified_huber or multinomial loss, "
            f"this model has {self.loss}"
        )


def _initial_theta(
    coef_init: object,
    intercept_init: object,
    d: int,
    n_outputs: int,
    single_output: bool,
    dtype: np.dtype,
    fit_intercept: bool,
) -> np.ndarray:
    """Parameters (d + 1, K) before training: zeros unless given; a new array.

    ``coef_init`` has the shape of the fitted ``coef`` ((d,) for a 1-D ``y``, else (d, K))
    and ``intercept_init`` that of ``intercept`` (a number, or (K,)).
    """
    theta = np.zeros((d + 1, n_outputs), dtype=dtype)
    coef_shape = (d,) if single_output else (d, n_outputs)
    if coef_init is not None:
        theta[:d] = _check_init("coef_init", coef_init, coef_shape).reshape(d, n_outputs)
    if intercept_init is not None:
        if not fit_intercept:
            raise ValueError(
                f"intercept_init={intercept_init!r} needs fit_intercept=True "
                "(without an intercept the model has none to initialise)"
            )
        shape = () if single_output else (n_outputs,)
        theta[d] = _check_init("intercept_init", intercept_init, shape)
    return theta


def _check_init(name: str, value: object, shape: tuple[int, ...]) -> np.ndarray:
    """A finite real array of ``shape``, or a ``ValueError`` naming ``name``."""
    arr = np.asarray(value)
    if arr.shape != shape or arr.dtype.kind not in "biuf" or not np.isfinite(arr).all():
        what = "a finite real number" if shape == () else f"finite reals of shape {shape}"
        raise ValueError(f"{name} must be {what}, got {value!r} of shape {arr.shape}")
    return arr


def _chunk_epochs(n: int, epochs: int, per_epoch: bool, drawn: bool) -> int:
    """Epochs handed to the backend per call: 1 when Python must look at every epoch, all
    when no order is drawn (one row serves every epoch), else as many as fit in
    ``_CHUNK_INDEX_BYTES`` of sample indices."""
    if per_epoch:
        return 1
    if not drawn:
        return epochs
    return max(1, min(epochs, _CHUNK_INDEX_BYTES // (8 * n)))


class _ToleranceRule:
    """scikit-learn's stopping rule, and its ``adaptive`` learning rate.

    After ``n_iter_no_change`` epochs in a row whose loss did not beat the best so far by
    ``tol``: stop, or, with an adaptive rate still above 1e-6, divide the rate by 5 and
    start counting again. ``tol=None`` never stops (nor adapts).
    """

    def __init__(self, tol: float | None, n_iter_no_change: int, adaptive_lr: float | None):
        self.tol = tol
        self.n_iter_no_change = n_iter_no_change
        self.lr = adaptive_lr
        self.best = math.inf
        self.no_gain = 0

    def stop_after(self, loss: float) -> bool:
        """Record one epoch's loss; True means stop (``self.lr`` may have been divided)."""
        if self.tol is None:
            return False
        self.no_gain = self.no_gain + 1 if loss > self.best - self.tol else 0
        self.best = min(self.best, loss)
        if self.no_gain < self.n_iter_no_change:
            return False
        if self.lr is not None and self.lr > 1e-6:
            self.lr /= 5.0
            self.no_gain = 0
            return False
        return True


@dataclass(frozen=True)
class _Plan:
    """Everything :func:`fit` checked, ready to run."""

    X: np.ndarray
    Y: np.ndarray
    weight: np.ndarray | None
    theta: np.ndarray
    state: tuple[int, np.ndarray] | None
    adaptive_lr: float | None
    single_output: bool
    loss: Loss
    model: LoweredModel
    opt: LoweredOptimizer
    batch_size: int
    epochs: int


def _validate(
    X, y, loss, optimizer, lr, batch_size, epochs, penalty, alpha, l1_ratio, fit_intercept,
    shuffle, seed, tol, n_iter_no_change, coef_init, intercept_init, callback, sample_weight,
    optimizer_state, processes, max_dloss,
) -> _Plan:
    """Check everything once; ``processes`` > 1: each process passes its own rows (the
    batch size is checked against all of them later, weights rescaled by their mean over
    all of them)."""
    loss = resolve_loss(loss)
    optimizer = resolve_optimizer(optimizer)
    if lr is not None:
        optimizer = dataclasses.replace(optimizer, lr=resolve_schedule(lr))
    l2, l1 = resolve_penalty(penalty, alpha, l1_ratio)
    epochs = check_int("epochs", epochs, 1)
    for name, flag in (("fit_intercept", fit_intercept), ("shuffle", shuffle)):
        if not isinstance(flag, bool | np.bool_):
            raise TypeError(f"{name} must be a bool, got {flag!r}")
    if tol is not None:
        is_real = isinstance(tol, numbers.Real) and not isinstance(tol, bool | np.bool_)
        if not is_real or not math.isfinite(tol):
            raise ValueError(f"tol must be None or a finite real number, got {tol!r}")
    check_int("n_iter_no_change", n_iter_no_change, 1)
    if seed is not None and not isinstance(seed, np.random.Generator):
        check_int("seed", seed, 0)
    if callback is not None and not callable(callback):
        raise TypeError(f"callback must be callable, got {callback!r}")
    X = check_X(X)
    Y, n_outputs, single_output = check_targets(y, X, loss)
    n, d = X.shape
    weight = None
    if sample_weight is not None:
        mean = None if processes == 1 else _mean_over_processes(
            check_sample_weight(sample_weight, n, np.float64, mean=1.0)
        )
        weight = check_sample_weight(sample_weight, n, X.dtype, mean=mean)
    if batch_size is not None:
        batch_size = check_int("batch_size", batch_size, 1, n if processes == 1 else None)
    theta = _initial_theta(
        coef_init, intercept_init, d, n_outputs, single_output, X.dtype, bool(fit_intercept)
    )
    model = lower_model(loss, l2, l1, bool(fit_intercept), max_dloss=max_dloss)
    state = None if optimizer_state is None else _check_state(optimizer_state, theta)
    adaptive_lr = optimizer.lr.lr0 if isinstance(optimizer.lr, Adaptive) else None
    return _Plan(
        X, Y, weight, theta, state, adaptive_lr, single_output, loss, model,
        lower_optimizer(optimizer), batch_size, epochs,
    )


def _check_state(optimizer_state: object, theta: np.ndarray) -> tuple[int, np.ndarray]:
    """A resumable ``(step, slots)`` for parameters like ``theta``: a private copy."""
    try:
        step, slots = optimizer_state
        slots = np.array(slots, dtype=theta.dtype)
    except (TypeError, ValueError):
        raise TypeError(
            f"optimizer_state must be a (step, slots) pair from a FitResult, got "
            f"{type(optimizer_state).__name__}"
        ) from None
    step = check_int("optimizer_state step", int(np.asarray(step)), 0)
    if slots.shape != (2, *theta.shape):
        raise ValueError(
            f"optimizer_state slots must have shape {(2, *theta.shape)}, got {slots.shape}"
        )
    return step, slots


def _public_params(theta: object, plan: _Plan) -> tuple[np.ndarray, float | np.ndarray]:
    """Host ``coef`` and ``intercept`` from the backend's (d + 1, K) parameters."""
    theta_host = np.array(theta, dtype=plan.X.dtype)
    if plan.single_output:
        return theta_host[:-1, 0], float(theta_host[-1, 0])
    return theta_host[:-1], theta_host[-1]


def fit(
    X: object,
    y: object,
    *,
    loss: str | Loss = "squared",
    optimizer: str | Optimizer = "sgd",
    lr: float | Schedule | None = None,
    batch_size: int | None = None,
    epochs: int = 100,
    penalty: str | None = None,
    alpha: float = 1e-4,
    l1_ratio: float = 0.15,
    fit_intercept: bool = True,
    shuffle: bool = True,
    seed: int | np.random.Generator | None = None,
    tol: float | None = None,
    n_iter_no_change: int = 5,
    coef_init: object = None,
    intercept_init: float | None = None,
    backend: str = "numpy",
    device: object = None,
    verbose: bool = False,
    progress: bool = False,
    callback: Callable[[int, float, np.ndarray, float], bool | None] | None = None,
    sample_weight: object = None,
    optimizer_state: tuple[int, np.ndarray] | None = None,
    devices: object = None,
    memory_budget: int | None = None,
    max_dloss: float = math.inf,
) -> FitResult:
    """Train a linear model ``p = X @ w + b`` by gradient descent.

    Parameters
    ----------
    X : array-like, shape (n, d)
        Real numeric and finite. float32 stays float32 (and so do the results), float64
        stays float64, ints and bools become float64. Never modified.
    y : array-like, shape (n,) or (n, K)
        Targets, never modified. Regression losses: reals, one column per output.
        Binary classification losses: labels in {0, 1}, one column per binary model
        (one-hot columns train one-vs-rest). ``multinomial``: integer class codes
        0..K-1, shape (n,).
    loss : str or a loss spec
        ``"squared"`` (alias ``"squared_error"``), ``"huber"``, ``"epsilon_insensitive"``,
        ``"squared_epsilon_insensitive"`` (regression); ``"logistic"`` (alias
        ``"log_loss"``), ``"hinge"``, ``"squared_hinge"``, ``"modified_huber"`` (binary);
        ``"multinomial"`` (softmax). Specs set parameters: ``Huber(epsilon)``,
        ``EpsilonInsensitive(epsilon)``, ``SquaredEpsilonInsensitive(epsilon)``.
    optimizer : {"sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam", "adamw"} or spec
        Names give optax's defaults; specs (``SGD(lr=..., momentum=...)``, ``Adam(...)``…)
        set hyper-parameters.
    lr : float or schedule, optional
        Overrides the optimizer's learning rate: a positive float or
        ``invscaling(...)``, ``exponential(...)``, ``cosine(...)``.
    batch_size : int, optional
        None: full-batch GD; 1: per-sample SGD; k: mini-batches of k (the last, shorter
        batch of an epoch is used).
    epochs : int
        Passes over the data, >= 1.
    penalty : {None, "l2", "l1", "elasticnet"}
        Adds ``alpha·((1 − l1_ratio)/2·‖w‖² + l1_ratio·‖w‖₁)`` (l1_ratio 0 for "l2", 1 for
        "l1"); never on the intercept.
    alpha, l1_ratio : float
        Penalty strength (>= 0) and elastic-net mixing (in [0, 1]).
    fit_intercept : bool
        Whether to learn ``b``.
    shuffle, seed : bool, int or Generator
        Each epoch's sample order is a permutation drawn from
        ``numpy.random.default_rng(seed)`` (or 0..n-1 without shuffle), the same for
        every backend.
    tol, n_iter_no_change : float or None, int
        Stop when the epoch loss has not improved by ``tol`` for ``n_iter_no_change``
        epochs in a row (scikit-learn's rule). None runs all epochs.
    coef_init, intercept_init : array-like, optional
        Starting point of the shapes of the result's ``coef`` and ``intercept``; zeros
        by default.
    backend : str
        One of :func:`fastgd.available_backends`.
    device : None, "cpu", "gpu" or a jax Device
        Where the jax backend runs (jax's default device when None); the numpy and numba
        backends run on the CPU only.
    verbose, progress : bool
        Print one line per epoch / show a progress bar (tqdm's: on stderr, or a widget in
        a notebook).
    callback : callable, optional
        ``callback(epoch, loss, coef, intercept)`` after every epoch; returning True stops.
    sample_weight : array-like of shape (n,), optional
        Finite, >= 0, not all 0; rescaled to mean 1 (see ``data.check_sample_weight``),
        so a full batch weighs each sample by its share of the total weight.
    optimizer_state : (int, ndarray), optional
        A previous result's ``optimizer_state``: training resumes with its moments and
        step count (which also continues the learning-rate schedule).
    devices : int, "all" or a list of jax Devices, optional
        jax only: data-parallel training over several devices (a 1-D mesh; each batch's
        rows are sharded over it, the parameters replicated). Not together with
        ``device``.
    memory_budget : int, optional
        Bytes of rows (X with its targets and weights) the backend holds at once. When
        the data take more, every epoch walks chunks of at most this size (see
        :mod:`fastgd.chunks`: chunks in a shuffled order, rows shuffled within each chunk,
        each read in place, a memmap's pages asked for in order first). Default: no chunks for data
        in memory; for a ``np.memmap`` X, or a jax accelerator, half of the free host or
        device memory.
    max_dloss : float
        Clip each sample's loss derivative d loss / d p to [-max_dloss, max_dloss]
        (scikit-learn's SGD clips at 1e12; its estimators here use that). Default: no
        clip, so a diverging run raises DivergenceError.

    Returns
    -------
    FitResult

    Raises
    ------
    ValueError, TypeError
        For bad input, naming the argument and the value, before any work.
    DivergenceError
        When an epoch's loss or the parameters stop being finite.
    """
    kernels = get_backend(backend)
    file_backed = isinstance(X, np.memmap)
    processes = _process_count(devices)
    plan = _validate(
        X, y, loss, optimizer, lr, batch_size, epochs, penalty, alpha, l1_ratio, fit_intercept,
        shuffle, seed, tol, n_iter_no_change, coef_init, intercept_init, callback,
        sample_weight, optimizer_state, processes, max_dloss,
    )
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    n, d = plan.X.shape
    start = time.perf_counter()
    placement = _placement(backend, device, devices)
    chunks = _chunks(plan, memory_budget, file_backed, backend, placement, processes)
    if chunks is None:
        data, theta = kernels.prepare(plan.X, plan.Y, plan.theta, placement, plan.weight)
        if devices is not None:  # the epochs walk the rows of every process
            n = kernels.global_rows(data)
    else:
        theta = plan.theta
    batch_size = n if plan.batch_size is None else check_int("batch_size", plan.batch_size, 1, n)
    plan = dataclasses.replace(plan, batch_size=batch_size)
    state = kernels.init_state(theta, plan.opt) if plan.state is None else plan.state
    per_epoch = tol is not None or callback is not None or verbose or progress
    # a full batch does not depend on the order: nothing is drawn, nothing is built
    drawn = shuffle and plan.batch_size < n
    chunk = 1 if chunks is not None else _chunk_epochs(n, plan.epochs, per_epoch, drawn)
    opt = plan.opt
    first_step = 1 if plan.state is None else plan.state[0] + 1
    first_lr = learning_rate(opt.schedule_code, opt.schedule_params, first_step)
    rule = _ToleranceRule(tol, n_iter_no_change, plan.adaptive_lr)
    bar = tqdm(total=plan.epochs, unit="epoch", file=sys.stderr) if progress else None
    history: list[float] = []
    converged = False
    while len(history) < plan.epochs and not converged:
        n_now = min(chunk, plan.epochs - len(history))
        with np.errstate(over="ignore", invalid="ignore"):  # divergence is reported below
            if chunks is None:
                orders = epoch_orders(rng, n, n_now, drawn)
                theta, state, losses = kernels.run_epochs(
                    data, theta, state, orders, plan.batch_size, plan.model, opt
                )
            else:
                theta, state, losses = _epoch_in_chunks(
                    kernels, chunks, theta, state, rng, shuffle, plan, opt, placement
                )
        losses = np.asarray(losses, dtype=np.float64)
        bad = np.flatnonzero(~np.isfinite(losses))
        if bad.size or not np.isfinite(np.asarray(theta)).all():
            first_bad = int(bad[0]) if bad.size else n_now - 1
            history.extend(losses[:first_bad].tolist())
            raise DivergenceError(len(history) + 1, first_lr, np.array(history))
        history.extend(losses.tolist())
        if per_epoch:
            converged = _after_epoch(history, theta, plan, rule, verbose, bar, callback)
            if rule.lr is not None:  # the adaptive rate may have been divided
                opt = opt._replace(schedule_params=(rule.lr, 0.0, 0.0))
    if bar is not None:
        bar.close()
    coef, intercept = _public_params(theta, plan)
    batches_per_epoch = (-(-n // plan.batch_size) if chunks is None
                         else chunks.batches_per_epoch(plan.batch_size))
    return FitResult(
        coef=coef,
        intercept=intercept,
        loss_history=np.array(history),
        n_epochs=len(history),
        n_updates=len(history) * batches_per_epoch,
        converged=converged,
        backend=backend,
        loss=plan.loss,
        fit_time=time.perf_counter() - start,
        optimizer_state=(int(np.asarray(state[0])), np.array(state[1], dtype=plan.X.dtype)),
    )


def _chunks(plan: _Plan, memory_budget, file_backed: bool, backend: str, placement,
            processes: int):
    """The data as chunks when they exceed the memory budget, else None."""
    if memory_budget is not None:
        memory_budget = check_int("memory_budget", memory_budget, 1)
        if processes > 1:
            raise NotImplementedError(
                "memory_budget with several processes is not supported (each process's chunks "
                "would differ in number); give every process rows that fit"
            )
    X, Y, weight = plan.X, plan.Y, plan.weight
    bytes_per_row = X.itemsize * (X.shape[1] + Y.shape[1] + (weight is not None))
    if memory_budget is None:
        device_free = _accelerator_free_bytes(backend, placement)
        if not file_backed and device_free is None:
            return None  # in host memory already: nothing to gain
        memory_budget = default_memory_budget(device_free)
    rows = rows_per_chunk(memory_budget, bytes_per_row)
    return None if rows >= X.shape[0] else ChunkedRows(X, Y, weight, rows)


def _accelerator_free_bytes(backend: str, placement: object) -> int | None:
    """Free memory of the jax accelerator the data go to, or None (host memory)."""
    if backend != "jax" or placement == "cpu":
        return None
    import jax

    device = placement if isinstance(placement, jax.Device) else jax.devices()[0]
    stats = device.memory_stats() if device.platform != "cpu" else None
    if not stats or "bytes_limit" not in stats:
        return None
    return int(stats["bytes_limit"] - stats.get("bytes_in_use", 0))


def _epoch_in_chunks(kernels, chunks: ChunkedRows, theta, state, rng, shuffle, plan, opt,
                     placement):
    """One epoch over the chunks (see :mod:`fastgd.chunks`); returns theta, state and the
    epoch loss as a (1,) array."""
    n = chunks.n
    full_batch = plan.batch_size >= n
    total, grad_sum = 0.0, None
    order = chunks.chunk_order(rng, shuffle)
    for position, chunk in enumerate(order):
        following = order[position + 1] if position + 1 < len(order) else None
        X, Y, weight = chunks.load(chunk, following)
        m = X.shape[0]
        data, theta = kernels.prepare(X, Y, theta, placement, weight)
        if full_batch:  # accumulate the chunk's share of the full-batch gradient
            loss, grad = kernels.loss_grad(data, theta, plan.model)
            share = np.asarray(grad, dtype=np.float64) * (m / n)  # summed on the host
            total += float(loss) * (m / n)
            grad_sum = share if grad_sum is None else grad_sum + share
            continue
        order = (rng.permutation(m) if shuffle else np.arange(m))[None, :]
        theta, state, losses = kernels.run_epochs(
            data, theta, state, order, min(plan.batch_size, m), plan.model, opt
        )
        total += float(np.asarray(losses)[0]) * (m / n)
    if full_batch:
        theta, state = kernels.update(theta, grad_sum.astype(plan.X.dtype), state, opt)
    return theta, state, np.array([total])


def _process_count(devices: object) -> int:
    """Processes training together: jax's count when ``devices`` is given, else 1."""
    if devices is None:
        return 1
    import jax

    return jax.process_count()


def _mean_over_processes(weight: np.ndarray) -> float:
    """The mean of the sample weights over the rows of every process."""
    import jax
    from jax.experimental import multihost_utils

    with jax.enable_x64(True):
        table = multihost_utils.process_allgather(np.array([weight.sum(), weight.shape[0]]))
    total, count = np.asarray(table, dtype=np.float64).reshape(-1, 2).sum(axis=0)
    if total == 0:
        raise ValueError("sample_weight must not be all zero (over every process)")
    return float(total / count)


def _placement(backend: str, device: object, devices: object) -> object:
    """What ``prepare`` places the data on: ``device``, or the ``devices`` of a mesh."""
    if devices is None:
        return device
    if backend != "jax":
        raise ValueError(f"devices={devices!r} needs backend='jax' (got backend={backend!r})")
    if device is not None:
        raise ValueError(f"give device={device!r} or devices={devices!r}, not both")
    return devices


def _after_epoch(history, theta, plan, rule, verbose, bar, callback):
    """Report one epoch and apply the stopping rules; True means stop."""
    epoch, loss = len(history), history[-1]
    if verbose:
        print(f"epoch {epoch}: loss {loss:.10g}")
    if bar is not None:
        bar.set_postfix(loss=f"{loss:.6g}", refresh=False)
        bar.update(1)
    if callback is not None and callback(epoch, loss, *_public_params(theta, plan)):
        return True
    return rule.stop_after(loss)


def check_grad(
    X: object,
    y: object,
    coef: object,
    intercept: object = 0.0,
    *,
    loss: str | Loss = "squared",
    penalty: str | None = None,
    alpha: float = 1e-4,
    l1_ratio: float = 0.15,
    fit_intercept: bool = True,
    sample_weight: object = None,
    backend: str = "numpy",
    step: float | None = None,
) -> float:
    """Relative error between a backend's analytic gradient and central finite differences.

    Parameters
    ----------
    X, y : array-like, shapes (n, d) and (n,) or (n, K)
        Data, checked as in :func:`fit`; the dtype of X sets the precision.
    coef, intercept : array-like
        Where to evaluate the gradient, of the shapes :func:`fit` returns ((d,) and a
        number for a 1-D ``y``, else (d, K) and (K,)). Avoid zero weights with an l1
        penalty and points on a kink of a piecewise loss.
    loss, penalty, alpha, l1_ratio, fit_intercept, sample_weight, backend
        As in :func:`fit`.
    step : float, optional
        Finite-difference step; by default ``cbrt(machine epsilon) · max(1, |θᵢ|)``.

    Returns
    -------
    float
        ``‖g_analytic − g_fd‖ / max(‖g_fd‖, tiny)``.
    """
    kernels = get_backend(backend)
    loss_spec = resolve_loss(loss)
    l2, l1 = resolve_penalty(penalty, alpha, l1_ratio)
    X = check_X(X)
    Y, n_outputs, single_output = check_targets(y, X, loss_spec)
    weight = None
    if sample_weight is not None:
        weight = check_sample_weight(sample_weight, X.shape[0], X.dtype)
    theta = _initial_theta(coef, intercept, X.shape[1], n_outputs, single_output, X.dtype, True)
    model = lower_model(loss_spec, l2, l1, bool(fit_intercept))
    data, theta_b = kernels.prepare(X, Y, theta, None, weight)
    _, grad = kernels.loss_grad(data, theta_b, model)
    grad = np.asarray(grad, dtype=np.float64)
    eps = float(np.finfo(X.dtype).eps)
    numeric = np.zeros_like(grad)
    rows = theta.shape[0] if fit_intercept else theta.shape[0] - 1
    for i in np.ndindex(rows, n_outputs):
        h = step if step is not None else eps ** (1 / 3) * max(1.0, abs(float(theta[i])))
        plus, minus = theta.copy(), theta.copy()
        plus[i] += h
        minus[i] -= h
        # data.X and data.Y are already placed, so prepare() only moves the perturbed theta
        # (handing it the host X would copy X to a jax device twice per parameter)
        f_plus = kernels.loss_grad(data, kernels.prepare(data.X, data.Y, plus, None)[1],
                                   model)[0]
        f_minus = kernels.loss_grad(data, kernels.prepare(data.X, data.Y, minus, None)[1],
                                    model)[0]
        numeric[i] = (float(f_plus) - float(f_minus)) / (float(plus[i]) - float(minus[i]))
    scale = max(float(np.linalg.norm(numeric)), np.finfo(np.float64).tiny)
    return float(np.linalg.norm(grad - numeric)) / scale
