"""The entry points: :func:`fit`, a composition of named steps, and :func:`check_grad`.

A fit checks its arguments and describes the problem once (:func:`fastgd.plan.make_plan`),
places the data where the backend runs (:func:`fastgd.placement.place`), runs the epochs
(:func:`fastgd.training.train`) and builds the result (:func:`fastgd.result.make_result`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import numpy as np

from .backends import get_backend
from .data import check_sample_weight, check_targets, check_X
from .placement import place
from .plan import initial_theta, make_plan
from .result import DivergenceError, FitResult, make_result
from .sklearn_shuffle import SklearnShuffle
from .specs import Loss, Optimizer, Schedule, lower_model, resolve_loss, resolve_penalty
from .training import train

__all__ = ["DivergenceError", "FitResult", "fit", "check_grad"]


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
    seed: int | np.random.Generator | SklearnShuffle | None = None,
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
    relative_weights: bool = True,
    monitor: Callable[[np.ndarray, float | np.ndarray], float] | None = None,
    average: bool | int = False,
    intercept_decay: float = 1.0,
    sklearn_sparse_norms: bool = False,
) -> FitResult:
    """Train a linear model ``p = X @ w + b`` by gradient descent.

    Parameters
    ----------
    X : array-like or scipy.sparse matrix/array, shape (n, d)
        Real numeric and finite. float32 stays float32 (and so do the results), float64
        stays float64, ints and bools become float64. Never modified. A scipy.sparse X
        is never densified: CSR is read as it is, other formats are converted to CSR
        once, int/bool values to float64 once, unsorted or duplicate indices made
        canonical on a copy (see :mod:`fastgd.sparse`); every backend trains on it (the
        numba per-sample loop in O(nnz of the row) per step). It is placed whole
        (``memory_budget`` and ``devices`` are not supported with it).
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
    shuffle, seed : bool, int, Generator or SklearnShuffle
        Each epoch's sample order is a permutation drawn from
        ``numpy.random.default_rng(seed)`` (or 0..n-1 without shuffle), the same for
        every backend. ``seed=fastgd.SklearnShuffle(s)`` visits the rows in the order
        scikit-learn's SGD visits them for its 32-bit shuffle seed ``s`` (each epoch
        reshuffles the last one; see :mod:`fastgd.sklearn_shuffle`); it is not supported
        with chunked epochs (``memory_budget``).
    tol, n_iter_no_change : float or None, int
        Stop when the epoch loss has not improved by ``tol`` for ``n_iter_no_change``
        epochs in a row (scikit-learn's rule). None runs all epochs.
    coef_init, intercept_init : array-like, optional
        Starting point of the shapes of the result's ``coef`` and ``intercept``; zeros
        by default.
    backend : str
        One of :func:`fastgd.available_backends`, or ``"auto"``: the backend (and, for
        jax, the device) :mod:`fastgd.auto`'s rules pick for this problem's shape,
        batch size and epochs on this machine, decided once the inputs are checked;
        ``FitResult.backend`` names the one that ran.
    device : None, "cpu", "gpu" or a jax Device
        Where the jax backend runs (jax's default device when None); the numpy and numba
        backends run on the CPU only. ``backend="auto"`` keeps to it ("cpu": a CPU
        backend, or jax on the CPU; "gpu" or a jax Device: jax there).
    verbose, progress : bool
        Print one line per epoch / show a progress bar (tqdm's: on stderr, or a widget in
        a notebook).
    callback : callable, optional
        ``callback(epoch, loss, coef, intercept)`` after every epoch; returning True stops.
    sample_weight : array-like of shape (n,), optional
        Finite, >= 0, not all 0; rescaled to mean 1 (see ``data.check_sample_weight``),
        so a full batch weighs each sample by its share of the total weight, unless
        ``relative_weights=False``.
    optimizer_state : (int, ndarray), optional
        A previous result's ``optimizer_state``: training resumes with its moments and
        step count (which also continues the learning-rate schedule), on a copy (the
        given arrays are not modified; the estimators hand over their own state with
        ``fastgd.plan.OwnedState``, trained in place).
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
    relative_weights : bool
        True (default): ``sample_weight`` is rescaled to mean 1, each sample weighing its
        share of the total weight (doubling every weight changes nothing). False: the
        weights are used as given, each sample's loss and step multiplied by its weight,
        as scikit-learn's SGD does (doubling every weight doubles the steps). Both go
        through the same kernels: only the scale of the weights differs.
    monitor : callable, optional
        ``monitor(coef, intercept) -> float``, called after every epoch: the value the
        ``tol`` rule watches instead of the epoch loss, smaller being better (e.g. minus
        a score on held-out rows: the estimators' ``early_stopping``).
    average : bool or int, default False
        Averaged SGD (Polyak–Ruppert; scikit-learn's ``average``): from update ``a``
        (``average=a``; True is 1), counted from 1 and continuing through
        ``optimizer_state``, the running mean of the parameters after each update is
        kept, ``avg += (theta − avg) / (t − a + 1)`` after update t, and the result's
        ``coef``/``intercept`` are that mean once at least ``a`` updates were made (else
        the plain parameters). Every optimizer and batch size; per-sample SGD with an l1
        term averages after the gradient step, before the l1 truncation (scikit-learn's
        order). Resume with the same ``average``, the result's ``coef``/``intercept`` and
        its ``optimizer_state`` (which keeps the plain parameters). False (0) averages
        nothing.
    intercept_decay : float, default 1.0
        The intercept's gradient is multiplied by this factor (> 0) before each update:
        scikit-learn's SGD damps the intercept's updates by 0.01 on sparse X (its
        ``SPARSE_INTERCEPT_DECAY``). Every backend on a sparse X; on a dense X the numpy
        backend only (numba and jax raise NotImplementedError for a value other than 1).
    sklearn_sparse_norms : bool, default False
        Per-sample SGD (``batch_size=1``, the SGD optimizer without momentum) on a sparse
        X: report scikit-learn's per-sample objective, the one its ``tol`` watches, so
        that ``tol`` stops at scikit-learn's epoch. Its penalty term uses norms of the
        weights that scikit-learn keeps approximately: the full norms when the fit
        starts, scaled by each step's l2 shrink, and after each nonzero update replaced
        by the norms of the weights the row stores (the l1 truncation does not update
        them). The training itself is unchanged. False reports the exact penalty. The
        estimators set it on sparse X. No effect on a dense X or other optimizers.

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
    plan = make_plan(
        X, y, loss=loss, optimizer=optimizer, lr=lr, batch_size=batch_size, epochs=epochs,
        penalty=penalty, alpha=alpha, l1_ratio=l1_ratio, fit_intercept=fit_intercept,
        shuffle=shuffle, seed=seed, tol=tol, n_iter_no_change=n_iter_no_change,
        coef_init=coef_init, intercept_init=intercept_init, backend=backend, device=device,
        verbose=verbose, progress=progress, callback=callback, sample_weight=sample_weight,
        optimizer_state=optimizer_state, devices=devices, memory_budget=memory_budget,
        max_dloss=max_dloss, relative_weights=relative_weights,
        monitor=monitor, average=average, intercept_decay=intercept_decay,
        sklearn_sparse_norms=sklearn_sparse_norms,
    )
    kernels = get_backend(plan.backend)  # "auto" is resolved by now
    start = time.perf_counter()  # fit_time leaves the checks out
    placed = place(plan, kernels)
    trained = train(plan, kernels, placed)
    return make_result(plan, placed, trained, fit_time=time.perf_counter() - start)


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
    theta = initial_theta(coef, intercept, X.shape[1], n_outputs, single_output, X.dtype, True)
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
