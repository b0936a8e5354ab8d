"""The plan of a fit: every argument of :func:`fastgd.fit` checked, lowered and decided once.

:func:`make_plan` checks the arguments in a fixed order (the first bad one raises, before
any work), lowers the specs the backends read (:class:`~fastgd.specs.LoweredModel`,
:class:`~fastgd.specs.LoweredOptimizer`), builds the starting parameters and optimizer
state, and decides where the data go; the :class:`Plan` it returns is all that the steps
after it (placing the data, the epochs, the result) read.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from .auto import check_backend_name, resolve_backend
from .data import all_finite, check_int, check_sample_weight, check_targets, check_X
from .sklearn_shuffle import SklearnShuffle
from .sparse import is_sparse
from .specs import (
    Adaptive,
    Loss,
    LoweredModel,
    LoweredOptimizer,
    Optimizer,
    Schedule,
    check_average,
    check_passive_aggressive,
    lower_model,
    lower_optimizer,
    resolve_loss,
    resolve_optimizer,
    resolve_penalty,
    resolve_schedule,
)

__all__ = ["Plan", "initial_theta", "make_plan"]


@dataclass(frozen=True)
class Plan:
    """Everything :func:`fastgd.fit` checked and decided, ready to place and run.

    Attributes
    ----------
    X : ndarray or scipy.sparse CSR matrix, shape (n, d)
        The checked samples (this process's rows), float32 or float64; a sparse X in
        canonical CSR form (:func:`fastgd.sparse.check_sparse_X`).
    Y : ndarray, shape (n, T)
        Kernel targets (see :func:`fastgd.data.kernel_targets`), in ``X``'s dtype.
    weight : ndarray of shape (n,) or None
        Sample weights in ``X``'s dtype: rescaled to mean 1 (over every process), or as
        given with ``relative_weights=False``.
    theta : ndarray, shape (d + 1, K)
        Starting parameters (weights, then the intercepts), in ``X``'s dtype.
    state : tuple (int, ndarray of shape (3, d + 1, K)) or None
        A resumed optimizer state (a private copy), or None to start afresh. With
        averaging started, ``theta`` holds the plain parameters and the state's third
        slot the average (swapped back from the result's).
    single_output : bool
        Whether ``y`` was 1-D (the result's ``coef`` is then (d,)).
    loss : Loss
        The loss spec (the result predicts with it).
    model, opt : LoweredModel, LoweredOptimizer
        What the backends minimise and how.
    adaptive_lr : float or None
        The starting rate of an ``adaptive`` schedule, which the tolerance rule divides;
        None for the other schedules.
    batch_size : int or None
        Samples per update; None for the full batch. With several processes it is
        checked against the rows of all of them once the data are placed.
    epochs : int
        Epochs to run at most.
    shuffle : bool
        Whether each epoch draws a new sample order.
    rng : numpy.random.Generator or SklearnShuffle
        Source of the sample orders: numpy's generator, or scikit-learn SGD's shuffle
        (a fresh stream for this fit).
    tol, n_iter_no_change : float or None, int
        The stopping rule (see :class:`fastgd.training.ToleranceRule`).
    callback : callable or None
        Called after every epoch; True stops.
    monitor : callable or None
        ``monitor(coef, intercept) -> float`` after every epoch: what the tolerance rule
        watches instead of the epoch loss (smaller is better); None watches the loss.
    verbose, progress : bool
        Print a line per epoch; show a progress bar.
    backend : str
        The backend that runs: the one given, or the one ``backend="auto"`` chose
        (:mod:`fastgd.auto`); never ``"auto"``.
    placement : object
        What the backend's ``prepare`` places the data on: ``device``, or the
        ``devices`` of a mesh.
    on_mesh : bool
        Whether ``devices`` was given (the epochs then walk the rows of every process).
    processes : int
        Processes training together (1 unless ``devices`` is given).
    memory_budget : int or None
        The checked budget of bytes of rows the backend holds at once, or None for the
        default (see :func:`fastgd.placement.place`).
    file_backed : bool
        Whether ``X`` was a ``np.memmap`` (its rows are then read in chunks by default).
    """

    X: np.ndarray
    Y: np.ndarray
    weight: np.ndarray | None
    theta: np.ndarray
    state: tuple[int, np.ndarray] | None
    single_output: bool
    loss: Loss
    model: LoweredModel
    opt: LoweredOptimizer
    adaptive_lr: float | None
    batch_size: int | None
    epochs: int
    shuffle: bool
    rng: np.random.Generator | SklearnShuffle
    tol: float | None
    n_iter_no_change: int
    callback: Callable[[int, float, np.ndarray, float], bool | None] | None
    monitor: Callable[[np.ndarray, float | np.ndarray], float] | None
    verbose: bool
    progress: bool
    backend: str
    placement: object
    on_mesh: bool
    processes: int
    memory_budget: int | None
    file_backed: bool

    @property
    def per_epoch(self) -> bool:
        """Whether Python looks at every epoch (a stopping rule, a callback or a report)."""
        return (
            self.tol is not None or self.callback is not None or self.monitor is not None
            or self.verbose or self.progress
        )


def make_plan(
    X: object,
    y: object,
    *,
    loss: str | Loss,
    optimizer: str | Optimizer,
    lr: float | Schedule | None,
    batch_size: int | None,
    epochs: int,
    penalty: str | None,
    alpha: float,
    l1_ratio: float,
    fit_intercept: bool,
    shuffle: bool,
    seed: int | np.random.Generator | SklearnShuffle | None,
    tol: float | None,
    n_iter_no_change: int,
    coef_init: object,
    intercept_init: object,
    backend: str,
    device: object,
    verbose: bool,
    progress: bool,
    callback: Callable[[int, float, np.ndarray, float], bool | None] | None,
    sample_weight: object,
    optimizer_state: object,
    devices: object,
    memory_budget: int | None,
    max_dloss: float,
    relative_weights: bool,
    monitor: Callable[[np.ndarray, float | np.ndarray], float] | None,
    average: bool | int = False,
    intercept_decay: float = 1.0,
    sklearn_sparse_norms: bool = False,
) -> Plan:
    """Check every argument of :func:`fastgd.fit` once and describe the problem.

    Parameters
    ----------
    X, y : array-like
        The data, as :func:`fastgd.fit` takes them.
    **arguments
        Every other argument of :func:`fastgd.fit` (keyword-only here), of the same name
        and meaning; ``backend="auto"`` is resolved here, once X, y and ``batch_size``
        are checked (:func:`fastgd.auto.resolve_backend`), into the plan's backend and
        device; with a sparse X, ``"auto"`` is the numba backend (numpy where numba is
        not installed).

    Returns
    -------
    Plan

    Raises
    ------
    ValueError, TypeError
        For the first bad argument, naming it and its value.
    NotImplementedError
        For ``memory_budget`` with several processes or a sparse X; for
        ``intercept_decay`` other than 1 on a dense X with the numba or jax backend; for
        a sparse X on several devices.
    """
    backend = check_backend_name(backend)
    file_backed = isinstance(X, np.memmap)
    processes = _process_count(devices)
    loss = resolve_loss(loss)
    optimizer = _resolve_optimizer(optimizer, lr)
    l2, l1 = resolve_penalty(penalty, alpha, l1_ratio)
    epochs = check_int("epochs", epochs, 1)
    _check_options(fit_intercept, shuffle, tol, n_iter_no_change, seed, callback,
                   relative_weights)
    if monitor is not None and not callable(monitor):
        raise TypeError(f"monitor must be callable, got {monitor!r}")
    X = check_X(X)
    Y, n_outputs, single_output = check_targets(y, X, loss)
    weight = _checked_weight(sample_weight, X, processes, relative_weights)
    if batch_size is not None:  # several processes: checked against all their rows later
        batch_size = check_int("batch_size", batch_size, 1, X.shape[0] if processes == 1 else None)
    check_passive_aggressive(optimizer, loss, batch_size)
    owned = optimizer_state.theta if isinstance(optimizer_state, OwnedState) else None
    if owned is not None and (coef_init is not None or intercept_init is not None):
        raise ValueError("an OwnedState with parameters replaces coef_init and intercept_init")
    if owned is not None:
        theta = _owned_theta(owned, X.shape[1], n_outputs, X.dtype)
    else:
        theta = initial_theta(
            coef_init, intercept_init, X.shape[1], n_outputs, single_output, X.dtype,
            bool(fit_intercept),
        )
    model = lower_model(loss, l2, l1, bool(fit_intercept), max_dloss=max_dloss)
    model = model._replace(intercept_decay=_check_intercept_decay(intercept_decay))
    if not isinstance(sklearn_sparse_norms, bool | np.bool_):
        raise TypeError(f"sklearn_sparse_norms must be a bool, got {sklearn_sparse_norms!r}")
    model = model._replace(sklearn_sparse_norms=bool(sklearn_sparse_norms))
    average = check_average(average)
    state = None if optimizer_state is None else _check_state(optimizer_state, theta)
    if state is not None and 0 < average <= state[0]:
        # averaging has started: the result reported the average and kept the plain
        # parameters in the state's third slot (result.make_result); swap them back
        theta, state[1][2] = state[1][2].copy(), theta
    adaptive_lr = optimizer.lr.lr0 if isinstance(optimizer.lr, Adaptive) else None
    opt = lower_optimizer(optimizer, average)
    rng = _order_source(seed)
    sparse = is_sparse(X)
    if sparse and backend == "auto":
        backend = _sparse_auto_backend()
    backend, device = resolve_backend(backend, *X.shape, n_outputs, batch_size, epochs,
                                      X.dtype, device, devices)  # fmt: skip
    placement = _placement(backend, device, devices)
    memory_budget = _check_memory_budget(memory_budget, processes)
    _check_sparse_options(sparse, model, backend, memory_budget, devices)
    return Plan(
        X=X, Y=Y, weight=weight, theta=theta, state=state, single_output=single_output,
        loss=loss, model=model, opt=opt, adaptive_lr=adaptive_lr, batch_size=batch_size,
        epochs=epochs, shuffle=shuffle, rng=rng, tol=tol, n_iter_no_change=n_iter_no_change,
        callback=callback, monitor=monitor, verbose=verbose, progress=progress, backend=backend,
        placement=placement, on_mesh=devices is not None, processes=processes,
        memory_budget=memory_budget, file_backed=file_backed,
    )


def _check_intercept_decay(intercept_decay: object) -> float:
    """``intercept_decay`` as a finite float > 0, or a ``ValueError`` naming it."""
    is_real = isinstance(intercept_decay, numbers.Real) and not isinstance(
        intercept_decay, bool | np.bool_
    )
    value = float(intercept_decay) if is_real else math.nan
    if not (math.isfinite(value) and value > 0.0):
        raise ValueError(f"intercept_decay must be a finite number > 0, got {intercept_decay!r}")
    return value


def _sparse_auto_backend() -> str:
    """``backend="auto"`` for a sparse X: numba (its O(nnz) per-sample loops), else numpy."""
    from .backends import get_backend

    try:
        get_backend("numba")
    except ImportError:
        return "numpy"
    return "numba"


def _check_sparse_options(
    sparse: bool, model: LoweredModel, backend: str, memory_budget: int | None, devices: object
) -> None:
    """What a sparse X, or ``intercept_decay`` on a dense one, does not support.

    Raises
    ------
    NotImplementedError
        ``memory_budget`` or ``devices`` with a sparse X (it is placed whole, on one
        device); ``intercept_decay`` != 1 on a dense X with the numba or jax backend (their
        dense loops do not carry it; numpy's does, and every backend's sparse kernels).
    """
    if sparse and memory_budget is not None:
        raise NotImplementedError(
            f"memory_budget={memory_budget!r} is not supported with a sparse X (it is "
            "placed whole: its stored values are what the kernels read)"
        )
    if sparse and devices is not None:
        raise NotImplementedError(
            f"devices={devices!r} is not supported with a sparse X; use one device"
        )
    if model.intercept_decay != 1.0 and not sparse and backend != "numpy":
        raise NotImplementedError(
            f"intercept_decay={model.intercept_decay!r} on a dense X is supported by the "
            f"numpy backend only, not {backend!r} (every backend supports it on a sparse X)"
        )


def _resolve_optimizer(optimizer: str | Optimizer, lr: float | Schedule | None) -> Optimizer:
    """The optimizer spec, with its learning rate replaced by ``lr`` when given."""
    optimizer = resolve_optimizer(optimizer)
    if lr is not None:
        optimizer = dataclasses.replace(optimizer, lr=resolve_schedule(lr))
    return optimizer


def _check_options(
    fit_intercept: object,
    shuffle: object,
    tol: object,
    n_iter_no_change: object,
    seed: object,
    callback: object,
    relative_weights: object,
) -> None:
    """Check the flags, the stopping rule, the seed and the callback, in that order.

    Raises
    ------
    TypeError
        For a flag that is not a bool or a callback that is not callable.
    ValueError
        For a ``tol`` that is not None or a finite real, an ``n_iter_no_change`` below 1,
        a negative ``seed``.
    """
    flags = (("fit_intercept", fit_intercept), ("shuffle", shuffle),
             ("relative_weights", relative_weights))
    for name, flag in flags:
        if not isinstance(flag, bool | np.bool_):
            raise TypeError(f"{name} must be a bool, got {flag!r}")
    if tol is not None:
        is_real = isinstance(tol, numbers.Real) and not isinstance(tol, bool | np.bool_)
        if not is_real or not math.isfinite(tol):
            raise ValueError(f"tol must be None or a finite real number, got {tol!r}")
    check_int("n_iter_no_change", n_iter_no_change, 1)
    if seed is not None and not isinstance(seed, np.random.Generator | SklearnShuffle):
        check_int("seed", seed, 0)
    if callback is not None and not callable(callback):
        raise TypeError(f"callback must be callable, got {callback!r}")


def _checked_weight(
    sample_weight: object, X: np.ndarray, processes: int, relative: bool
) -> np.ndarray | None:
    """The sample weights in ``X``'s dtype, or None without weights: rescaled to mean 1
    over the rows of every process when ``relative``, else as given."""
    if sample_weight is None:
        return None
    n = X.shape[0]
    if not relative:
        weight = check_sample_weight(sample_weight, n, X.dtype, mean=1.0)
        if not weight.any():
            raise ValueError("sample_weight must not be all zero")
        return weight
    mean = None if processes == 1 else _mean_over_processes(
        check_sample_weight(sample_weight, n, np.float64, mean=1.0)
    )
    return check_sample_weight(sample_weight, n, X.dtype, mean=mean)


def _order_source(
    seed: int | np.random.Generator | SklearnShuffle | None,
) -> np.random.Generator | SklearnShuffle:
    """Where this fit's sample orders come from: the caller's Generator (advanced), a
    fresh ``default_rng(seed)``, or a fresh stream of scikit-learn's shuffle."""
    if isinstance(seed, np.random.Generator):
        return seed
    if isinstance(seed, SklearnShuffle):
        return seed.restarted()
    return np.random.default_rng(seed)


def initial_theta(
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
    if arr.shape != shape or arr.dtype.kind not in "biuf" or not all_finite(arr):
        what = "a finite real number" if shape == () else f"finite reals of shape {shape}"
        raise ValueError(f"{name} must be {what}, got {value!r} of shape {arr.shape}")
    return arr


class OwnedState(NamedTuple):
    """A training state handed over to :func:`fastgd.fit`, which trains on it in place
    instead of on copies: the estimators' own parameters and optimizer state between
    ``partial_fit`` calls, which nothing else holds (with 2^20 features and one output,
    copying them took 3 ms of a 12 ms call). A fit that raises (``DivergenceError``)
    leaves them part-trained, as scikit-learn's in-place training leaves its arrays. A
    plain ``(step, slots)`` pair and ``coef_init``/``intercept_init`` are always copied.

    Attributes
    ----------
    step : int
    slots : ndarray, shape (3, d + 1, K)
        As a :class:`~fastgd.FitResult`'s ``optimizer_state``.
    theta : ndarray of shape (d + 1, K), or None
        The parameters to start from (the weights, then the intercepts' row), in place of
        ``coef_init`` and ``intercept_init``.
    """

    step: int
    slots: np.ndarray
    theta: np.ndarray | None = None


def _owned_theta(owned: np.ndarray, d: int, n_outputs: int, dtype: np.dtype) -> np.ndarray:
    """An :class:`OwnedState`'s parameters as the fit's theta: the array itself when it is
    C-contiguous in X's dtype, else a converted copy."""
    if owned.shape != (d + 1, n_outputs):
        raise ValueError(f"the handed-over parameters have shape {owned.shape}, the fit's "
                         f"{(d + 1, n_outputs)}")  # fmt: skip
    return np.ascontiguousarray(owned, dtype=dtype)


def _check_state(optimizer_state: object, theta: np.ndarray) -> tuple[int, np.ndarray]:
    """A resumable ``(step, slots)`` for parameters like ``theta``: a private copy (the
    slots themselves when an :class:`OwnedState`'s are C-contiguous and of theta's dtype)."""
    owned = isinstance(optimizer_state, OwnedState)
    try:
        step, slots = optimizer_state[:2] if owned else optimizer_state
        slots = (np.ascontiguousarray if owned else np.array)(slots, dtype=theta.dtype)
    except (TypeError, ValueError):
        raise TypeError(
            f"optimizer_state must be a (step, slots) pair from a FitResult, got "
            f"{type(optimizer_state).__name__}"
        ) from None
    step = check_int("optimizer_state step", int(np.asarray(step)), 0)
    if slots.shape != (3, *theta.shape):
        raise ValueError(
            f"optimizer_state slots must have shape {(3, *theta.shape)}, got {slots.shape}"
        )
    return step, slots


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


def _check_memory_budget(memory_budget: object, processes: int) -> int | None:
    """``memory_budget`` as an int >= 1, or None for the default.

    Raises
    ------
    NotImplementedError
        With several processes (each process's chunks would differ in number).
    """
    if memory_budget is None:
        return None
    memory_budget = check_int("memory_budget", memory_budget, 1)
    if processes > 1:
        raise NotImplementedError(
            "memory_budget with several processes is not supported (each process's chunks "
            "would differ in number); give every process rows that fit"
        )
    return memory_budget
