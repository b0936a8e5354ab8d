"""Drop-in replacements for scikit-learn's ``SGDRegressor`` and ``SGDClassifier``.

:class:`GDRegressor` and :class:`GDClassifier` take scikit-learn's parameters, with its
names, meanings and defaults, and learn the same attributes; on top they take fastgd's
``optimizer``, ``batch_size`` (1, scikit-learn's algorithm, by default), ``backend`` and
``device``. They are built on scikit-learn's ``BaseEstimator`` and mixins and validate
their input with scikit-learn's own helpers, so scikit-learn (the ``sklearn`` extra) is
needed to use them; ``import fastgd`` and :func:`fastgd.fit` work without it.

Training runs through :func:`fastgd.fit`. How the scikit-learn algorithm maps onto it:

- ``learning_rate`` ``"constant"``, ``"invscaling"``, ``"optimal"`` and ``"adaptive"`` are
  scikit-learn's formulas (``fastgd.specs.optimal`` computes its initial offset), counted
  in updates: with ``batch_size=1`` an update is a sample, as in scikit-learn.
- ``shuffle=True`` visits the rows in scikit-learn's order for the same ``random_state``
  (:mod:`fastgd.sklearn_shuffle`: its seed draws and its own xorshift shuffle), so the
  same parameters give the same model; ``partial_fit`` draws the order anew at each call,
  as scikit-learn does.
- One-vs-rest: scikit-learn trains each class's binary problem on its own, with its own
  row order when shuffling; so do the classifiers here by default (``ovr_order=
  "per_class"``), one class after the other, each equal to scikit-learn's. The K binary
  problems can also be K outputs of one model trained in one pass over X, all in one row
  order (``ovr_order="shared"``): each still exactly a binary fit in that order, a
  different model from scikit-learn's when shuffling, and faster. Classes that must stop
  at their own epochs (``tol`` set) or weigh their samples differently (``class_weight``
  with more than two classes) are always trained one after the other.
- ``partial_fit`` runs one epoch over the chunk and carries the parameters, the
  optimizer's state and its step count (which drives the learning rate; ``t_`` is the
  step count plus one, scikit-learn's count of samples seen plus one for batch size 1).
- Sample weights times the class weights multiply each sample's step as given, as
  scikit-learn's SGD does, with ``batch_size=1`` (:func:`fastgd.fit` with
  ``relative_weights=False``). With batches (``batch_size`` k or None) they are relative
  (rescaled to mean 1, :func:`fastgd.fit`'s default), so that a full batch with weight 2
  on a row is exactly the full batch with that row twice: scikit-learn's
  weight-equivalence check, which its own SGD fails, passes there.
- Each sample's loss derivative is clipped to [-1e12, 1e12] before it is weighted, as
  scikit-learn's SGD does (its ``MAX_DLOSS``; ``fit(..., max_dloss=...)``): a fit that
  diverges ends with large finite weights, as scikit-learn's, rather than an error.
"""

from __future__ import annotations

import numbers
import time

import numpy as np
from joblib import Parallel, delayed
from scipy.special import expit
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin, is_classifier
from sklearn.metrics import accuracy_score, r2_score
from sklearn.model_selection import ShuffleSplit, StratifiedShuffleSplit
from sklearn.utils.class_weight import compute_class_weight
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import _check_sample_weight, check_is_fitted, validate_data

from .api import fit
from .result import FitResult
from .sklearn_shuffle import (
    SklearnShuffle,
    binary_seed,
    one_vs_rest_seeds,
    regressor_seed,
)
from .specs import (
    SGD,
    EpsilonInsensitive,
    Hinge,
    Huber,
    Logistic,
    ModifiedHuber,
    Multinomial,
    Perceptron,
    Squared,
    SquaredEpsilonInsensitive,
    SquaredHinge,
    adaptive,
    check_average,
    invscaling,
    optimal,
    resolve_optimizer,
)

__all__ = ["GDRegressor", "GDClassifier"]

#: scikit-learn SGD's ``MAX_DLOSS`` (sklearn/linear_model/_sgd_fast.pyx.tp): each sample's
#: loss derivative is clipped to [-1e12, 1e12], which keeps a diverging fit finite
#: instead of raising ``DivergenceError``.
_SKLEARN_MAX_DLOSS = 1e12

#: scikit-learn's loss names -> fastgd loss spec factories taking ``epsilon``.
_REGRESSION_LOSSES = {
    "squared_error": lambda eps: Squared(),
    "huber": lambda eps: Huber(eps),
    "epsilon_insensitive": lambda eps: EpsilonInsensitive(eps),
    "squared_epsilon_insensitive": lambda eps: SquaredEpsilonInsensitive(eps),
}
_CLASSIFICATION_LOSSES = {
    "hinge": lambda eps: Hinge(),
    "perceptron": lambda eps: Perceptron(),
    "log_loss": lambda eps: Logistic(),
    "modified_huber": lambda eps: ModifiedHuber(),
    "squared_hinge": lambda eps: SquaredHinge(),
    "multinomial": lambda eps: Multinomial(),
    **_REGRESSION_LOSSES,
}
_LEARNING_RATES = ("constant", "optimal", "invscaling", "adaptive")


class _GDBase(BaseEstimator):
    """Parameters and training shared by the two estimators."""

    _losses: dict = {}

    # ----------------------------------------------------------------- parameters

    def _loss_spec(self):
        if self.loss not in self._losses:
            raise ValueError(
                f"loss must be one of {sorted(self._losses)} for {type(self).__name__}, "
                f"got {self.loss!r}"
            )
        return self._losses[self.loss](self.epsilon)

    def _check_unsupported(self) -> None:
        """Non-default values of the scikit-learn parameters fastgd does not implement."""
        check_average(self.average)
        if not isinstance(self.early_stopping, bool | np.bool_):
            raise TypeError(f"early_stopping must be a bool, got {self.early_stopping!r}")
        fraction = self.validation_fraction
        if not isinstance(fraction, numbers.Real) or not 0.0 < fraction < 1.0:
            raise ValueError(f"validation_fraction must be in (0, 1), got {fraction!r}")

    def _schedule(self, alpha: float):
        """The learning rate of ``learning_rate``, ``eta0``, ``power_t`` and ``alpha``."""
        if self.learning_rate not in _LEARNING_RATES:
            raise ValueError(
                f"learning_rate must be one of {list(_LEARNING_RATES)}, "
                f"got {self.learning_rate!r}"
            )
        if self.learning_rate == "optimal":
            return optimal(alpha)
        if self.learning_rate == "invscaling":
            return invscaling(self.eta0, self.power_t)
        if self.learning_rate == "adaptive":
            return adaptive(self.eta0)
        return self.eta0

    def _fit_args(self) -> dict:
        """Keyword arguments of :func:`fastgd.fit` from the estimator's parameters."""
        self._check_unsupported()
        return dict(
            optimizer=resolve_optimizer(self.optimizer),
            lr=self._schedule(self.alpha),
            batch_size=self.batch_size,
            penalty=self.penalty,
            alpha=self.alpha,
            l1_ratio=self.l1_ratio,
            fit_intercept=self.fit_intercept,
            shuffle=self.shuffle,
            n_iter_no_change=self.n_iter_no_change,
            backend=self.backend,
            device=self.device,
            max_dloss=_SKLEARN_MAX_DLOSS,
            relative_weights=self.batch_size != 1,
            average=self.average,
        )

    # ------------------------------------------------------------------- training

    def _train(self, X, Y, loss, weights, *, epochs, tol, theta0, state0, separately=False,
               held_out=None, raw_weight=None):
        """Train the (d + 1, K) parameters on kernel-ready targets ``Y``.

        Parameters
        ----------
        X : ndarray, shape (n, d)
        Y : ndarray, shape (n,) or (n, K)
            As :func:`fastgd.fit` takes them (labels in {0, 1} for the binary losses,
            class codes for multinomial).
        weights : None or ndarray of shape (n,) or (n, K)
            Per sample, or per sample and output (then the outputs train apart).
        epochs, tol
            Passes over X and the stopping tolerance.
        theta0, state0 : ndarray of shape (d + 1, K) and (step, slots), or None
            Where to start (zeros and a fresh optimizer when None).
        separately : bool
            Train each column of ``Y`` on its own (scikit-learn's one-vs-rest), so that
            each stops at its own epoch.
        held_out : None or ndarray of bool, shape (n,)
            Early stopping's validation rows: not trained on (they keep their places in
            scikit-learn's shuffled order), scored after every epoch; ``tol`` then
            watches that score.
        raw_weight : None or ndarray of shape (n,)
            The sample weights as given, which weigh the validation score.

        Returns
        -------
        theta : ndarray, shape (d + 1, K)
        n_epochs : int
            Epochs run (the most of any output).
        """
        monitors = [None] * (1 if Y.ndim == 1 else Y.shape[1])
        if held_out is not None:
            val_weight = None if raw_weight is None else raw_weight[held_out]
            monitors = self._monitors(X[held_out], Y[held_out], val_weight, separately)
            keep = ~held_out
            X, Y, weights = X[keep], Y[keep], None if weights is None else weights[keep]
        args = dict(self._fit_args(), epochs=epochs, tol=tol, loss=loss,
                    callback=_EpochReport(X.shape[0]) if self.verbose else None)
        if self.batch_size is not None:
            args["batch_size"] = min(self.batch_size, X.shape[0])
        per_output = weights is not None and weights.ndim == 2
        keep = None if held_out is None else ~held_out
        if not (separately or per_output):
            start = _start(theta0, state0, None, single=Y.ndim == 1)
            seed = self._row_orders(separately=False, keep=keep)[0]
            result = fit(X, Y, sample_weight=weights, seed=seed, monitor=monitors[0], **start,
                         **args)  # fmt: skip
            self._state = result.optimizer_state
            self.backend_ = result.backend
            self._report_convergence([result], args["callback"])
            return _theta_of(result), result.n_epochs
        seeds = self._row_orders(separately=True, keep=keep)
        # the classes in threads (n_jobs): the compiled kernels release the GIL
        columns = Parallel(n_jobs=getattr(self, "n_jobs", None), prefer="threads")(
            delayed(fit)(X, Y[:, k], sample_weight=weights[:, k] if per_output else weights,
                         seed=seeds[k % len(seeds)], monitor=monitors[k],
                         **_start(theta0, state0, k, single=True), **args)
            for k in range(Y.shape[1])
        )
        self._state = _stack_states([r.optimizer_state for r in columns])
        self.backend_ = columns[0].backend  # the same shapes: the same choice of "auto"
        self._report_convergence(columns, args["callback"])
        thetas = [_theta_of(r) for r in columns]
        average = check_average(self.average)
        if 0 < average <= self._state[0]:
            # scikit-learn reports every class's average once t_ − 1 (the longest class's
            # samples) reaches average: a class that stopped before it reports its average
            # too, its plain parameters going to the state's third slot (see fastgd.fit)
            slots = self._state[1]
            for k, r in enumerate(columns):
                if r.optimizer_state[0] < average:
                    thetas[k], slots[2][:, k : k + 1] = slots[2][:, k : k + 1].copy(), thetas[k]
        return np.hstack(thetas), max(r.n_epochs for r in columns)

    def _averaged_classifier(self) -> bool:
        """Whether scikit-learn's classifier bookkeeping of averaged intercepts applies."""
        return (is_classifier(self) and self.loss != "multinomial"
                and check_average(self.average) > 0)  # fmt: skip

    def _stale_intercepts(self, state0):
        """The state ``partial_fit`` goes on from, with scikit-learn's classifier quirk:
        once averaging has started, its ``_fit_binary`` no longer stores the plain
        intercept, and its one-vs-rest loop writes the plain intercepts over the averaged
        ones, so a call resumes from the plain intercepts of the last call that began
        before averaging started (``_standard_intercept``), kept here."""
        if not self._averaged_classifier() or state0 is None:
            return state0
        step, slots = state0
        if not 0 < check_average(self.average) <= step:
            return state0
        slots = np.array(slots, copy=True)
        slots[2][-1] = self._standard_intercept
        return step, slots

    def _reported_intercepts(self, theta, step0: int):
        """The intercepts scikit-learn's classifier reports after a call that began at
        update ``step0`` (see :meth:`_stale_intercepts`), and its ``_standard_intercept``."""
        if not self._averaged_classifier():
            return theta
        average = check_average(self.average)
        step, slots = self._state
        started = 0 < average <= step
        plain = slots[2][-1] if started else theta[-1]
        before = 0 < average <= step0
        if theta.shape[1] == 1:  # binary: kept while averaging has not started
            if not started:
                self._standard_intercept = np.array(plain, dtype=np.float64)
        elif not before:  # one-vs-rest: kept by calls that begin before averaging starts
            self._standard_intercept = np.array(plain, dtype=np.float64)
        else:  # ... and those that begin after it report the plain intercepts
            theta = theta.copy()
            theta[-1] = plain
        return theta

    def _fresh_l1_record(self) -> tuple[int, np.ndarray]:
        """The state ``partial_fit`` goes on from: scikit-learn starts its cumulative l1
        record (u and q, kept in the SGD optimizer's second slot) afresh at every call."""
        step, slots = self._state
        if not isinstance(resolve_optimizer(self.optimizer), SGD):
            return step, slots
        slots = np.array(slots, copy=True)
        slots[1] = 0.0
        return step, slots

    @staticmethod
    def _report_convergence(results: list[FitResult], report) -> None:
        """scikit-learn's closing line of a ``verbose`` fit that stopped on ``tol``."""
        for result in results:
            if report is not None and result.converged:
                print(f"Convergence after {result.n_epochs} epochs took "
                      f"{report.seconds():.2f} seconds")  # fmt: skip

    def _initial_theta(self, d: int, K: int, dtype, coef_init, intercept_init):
        """``fit``'s starting point: the given one, the last fit's (``warm_start``), or None."""
        if coef_init is None and intercept_init is None:
            warm = self.warm_start and getattr(self, "_theta", None) is not None
            if warm and self._theta.shape == (d + 1, K):
                return self._theta.astype(dtype)
            return None
        theta = np.zeros((d + 1, K), dtype=dtype)
        if coef_init is not None:
            theta[:-1] = _init_array("coef_init", coef_init, (K, d)).T
        if intercept_init is not None:
            theta[-1] = _init_array("intercept_init", intercept_init, (K,))
        return theta

    def _record(self, theta: np.ndarray, n_epochs: int) -> None:
        self._theta = theta
        self.n_iter_ = n_epochs
        self.t_ = float(self._state[0] + 1)
        self.coef_, self.intercept_ = self._public_params(theta)

    def _row_orders(self, separately: bool, keep=None) -> list[SklearnShuffle | None]:
        """The row orders of this call's fits, scikit-learn's for ``random_state``: one for
        a model trained in one pass, or one per output when they train apart (one-vs-rest
        classes each in the order scikit-learn gives it); ``keep``: the rows trained on.
        None without shuffling."""
        if not self.shuffle:
            return [None]
        return [SklearnShuffle(seed, keep) for seed in self._shuffle_seeds(separately)]

    def _monitors(self, X_val, Y_val, val_weight, separately: bool) -> list:
        """Early stopping's score of each fit on the validation rows, negated (the ``tol``
        rule of :func:`fastgd.fit` minimises it): one per column of ``Y_val`` when the
        outputs train apart, else one."""
        if Y_val.ndim == 1 or not separately:
            return [self._monitor(X_val, Y_val, val_weight)]
        return [self._monitor(X_val, Y_val[:, k], val_weight) for k in range(Y_val.shape[1])]

    def _held_out(self, y, raw_weight) -> np.ndarray | None:
        """Early stopping's validation rows (a mask), as scikit-learn draws them: a
        stratified split for the classifier, a plain one for the regressor, both from
        ``random_state``; None without early stopping."""
        if not self.early_stopping:
            return None
        splitter = StratifiedShuffleSplit if is_classifier(self) else ShuffleSplit
        cv = splitter(test_size=self.validation_fraction, random_state=self.random_state)
        train, validation = next(cv.split(np.zeros((y.shape[0], 1)), y))
        if raw_weight is not None and not np.any(raw_weight[validation] > 0):
            raise ValueError("The sample weights of the validation rows are all zero; use "
                             "another random_state or validation_fraction")  # fmt: skip
        if train.shape[0] == 0 or validation.shape[0] == 0:
            raise ValueError(
                f"validation_fraction={self.validation_fraction} splits {y.shape[0]} samples "
                f"into {train.shape[0]} to train on and {validation.shape[0]} to validate"
            )
        held_out = np.zeros(y.shape[0], dtype=bool)
        held_out[validation] = True
        return held_out

    def _fit_or_partial(self, X, y, sample_weight, *, partial, classes=None, coef_init=None,
                        intercept_init=None):
        first = not partial or getattr(self, "_theta", None) is None
        # finiteness is checked once, by fastgd.fit (one threaded pass over X)
        X, y = validate_data(self, X, y, reset=first, dtype=[np.float64, np.float32],
                             y_numeric=not isinstance(self, ClassifierMixin),
                             ensure_all_finite=False)
        weights = None
        if sample_weight is not None:
            weights = _check_sample_weight(sample_weight, X, dtype=X.dtype)
        raw_weight = weights
        Y, weights, separately = self._targets(X, y, weights, partial=partial, first=first,
                                               classes=classes)
        K = self._n_outputs()
        self._check_unsupported()
        if partial and self.early_stopping:
            raise ValueError("early_stopping should be False with partial_fit (as in "
                             "scikit-learn: it needs the whole data to hold rows out)")
        held_out = None if partial else self._held_out(y, raw_weight)
        if partial:
            theta0, state0 = (None, None) if first else (self._theta, self._fresh_l1_record())
            state0 = self._stale_intercepts(state0)
            theta, n_epochs = self._train(
                X, Y, self._loss_spec(), weights, epochs=1, tol=None, theta0=theta0,
                state0=state0, separately=self._orders_apart(),
            )
        else:
            theta0 = self._initial_theta(X.shape[1], K, X.dtype, coef_init, intercept_init)
            theta, n_epochs = self._train(
                X, Y, self._loss_spec(), weights, epochs=self.max_iter, tol=self.tol,
                theta0=theta0, state0=None, separately=separately, held_out=held_out,
                raw_weight=raw_weight,
            )
        if not partial or first:  # scikit-learn's _standard_intercept, at its allocation
            self._standard_intercept = np.zeros(K) if theta0 is None else theta0[-1].copy()
        theta = self._reported_intercepts(theta, 0 if not partial or first else state0[0])
        if held_out is not None:  # scikit-learn counts the held-out rows in t_ (and in the
            # step a later partial_fit's learning rate goes on from) too
            self._state = (n_epochs * X.shape[0], self._state[1])
        self._record(theta, n_epochs)
        return self

    def _scores(self, X) -> np.ndarray:
        """``X @ coef_.T + intercept_``: shape (n,) for one output, else (n, K)."""
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=[np.float64, np.float32])
        scores = X @ np.atleast_2d(self.coef_).T + self.intercept_
        return scores.ravel() if scores.shape[1] == 1 else scores

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = False
        return tags


class _EpochReport:
    """``verbose``: after every epoch, scikit-learn's lines (``-- Epoch``, the weights'
    norm, their non-zeros, the intercept, the samples seen ``T``, the training time), with
    fastgd's epoch objective (the mean weighted loss plus penalty, before each step) in
    place of scikit-learn's running average of the unweighted loss."""

    def __init__(self, n_rows: int):
        self.n_rows = n_rows
        self.start = time.perf_counter()

    def seconds(self) -> float:
        return time.perf_counter() - self.start

    def __call__(self, epoch: int, loss: float, coef, intercept) -> None:
        coef = np.asarray(coef)
        print(f"-- Epoch {epoch}")
        print(f"Norm: {np.linalg.norm(coef):.2f}, NNZs: {np.count_nonzero(coef)}, "
              f"Bias: {float(np.ravel(intercept)[0]):.6f}, T: {epoch * self.n_rows}, "
              f"Objective: {loss:.6f}")  # fmt: skip
        print(f"Total training time: {self.seconds():.2f} seconds.")


def _init_array(name: str, value, shape: tuple[int, ...]) -> np.ndarray:
    arr = np.asarray(value, dtype=np.float64)
    if arr.size != int(np.prod(shape)):
        raise ValueError(f"{name} must have {int(np.prod(shape))} entries {shape}, "
                         f"got shape {arr.shape}")
    return arr.reshape(shape)


def _start(theta0, state0, k: int | None, single: bool) -> dict:
    """``fit``'s ``coef_init``/``intercept_init``/``optimizer_state`` for resuming all outputs
    (``k`` None) or output ``k`` alone; ``single``: a 1-D target (coef (d,), a float)."""
    kwargs = {}
    if theta0 is not None:
        part = theta0 if k is None else theta0[:, k : k + 1]
        kwargs["coef_init"] = part[:-1, 0] if single else part[:-1]
        kwargs["intercept_init"] = float(part[-1, 0]) if single else part[-1]
    if state0 is not None:
        step, slots = state0
        kwargs["optimizer_state"] = (step, slots if k is None else slots[:, :, k : k + 1])
    return kwargs


def _theta_of(result: FitResult) -> np.ndarray:
    """A fit's parameters as one (d + 1, K) matrix."""
    coef = result.coef.reshape(result.coef.shape[0], -1)
    return np.vstack([coef, np.reshape(result.intercept, (1, -1))])


def _stack_states(states: list) -> tuple[int, np.ndarray]:
    """One state for outputs trained apart: their moments side by side and the step count
    of the longest (scikit-learn's ``t_`` counts ``max(n_iter_) · n`` samples)."""
    return max(s[0] for s in states), np.concatenate([s[1] for s in states], axis=2)


class GDRegressor(RegressorMixin, _GDBase):
    """Linear regression by gradient descent, with scikit-learn's ``SGDRegressor`` API.

    Parameters
    ----------
    loss : {"squared_error", "huber", "epsilon_insensitive", "squared_epsilon_insensitive"}
    penalty : {"l2", "l1", "elasticnet", None}
        fastgd applies the l1 part as a subgradient, not scikit-learn's cumulative
        truncation, so l1 and elastic-net runs differ from scikit-learn's.
    alpha, l1_ratio, fit_intercept, max_iter, tol, shuffle, verbose, epsilon,
    random_state, learning_rate, eta0, power_t, n_iter_no_change, warm_start
        As in scikit-learn (``learning_rate`` in {"constant", "optimal", "invscaling",
        "adaptive"}).
    early_stopping, validation_fraction
        As in scikit-learn (early stopping not with ``partial_fit``).
    average : bool or int
        As in scikit-learn: averaged SGD, ``coef_``/``intercept_`` the running average of
        the parameters after each sample from the ``average``-th one on (True: the first;
        see :func:`fastgd.fit`'s ``average``) once ``t_ − 1 >= average``, continued by
        ``partial_fit``; ``warm_start`` starts from ``coef_`` with a fresh average.
    optimizer : str or optimizer spec
        fastgd's optimizer (its learning rate is set by ``learning_rate``/``eta0``).
    batch_size : int or None
        1 (scikit-learn's per-sample SGD), k, or None for full-batch GD.
    backend, device
        As in :func:`fastgd.fit`: ``"numpy"``, ``"numba"``, ``"jax"`` or ``"auto"``.

    Attributes
    ----------
    coef_ : ndarray, shape (d,)
    intercept_ : ndarray, shape (1,)
    n_iter_ : int
        Epochs run by the last ``fit`` (1 after ``partial_fit``).
    t_ : float
        Updates done plus one (for batch size 1, scikit-learn's samples seen plus one).
    backend_ : str
        The backend that ran the last ``fit``/``partial_fit`` (with ``backend="auto"``,
        the one it chose).
    n_features_in_, feature_names_in_
    """

    _losses = _REGRESSION_LOSSES

    def __init__(
        self, loss="squared_error", *, penalty="l2", alpha=0.0001, l1_ratio=0.15,
        fit_intercept=True, max_iter=1000, tol=0.001, shuffle=True, verbose=0, epsilon=0.1,
        random_state=None, learning_rate="invscaling", eta0=0.01, power_t=0.25,
        early_stopping=False, validation_fraction=0.1, n_iter_no_change=5, warm_start=False,
        average=False, optimizer="sgd", batch_size=1, backend="numpy", device=None,
    ):  # fmt: skip
        self.loss = loss
        self.penalty = penalty
        self.alpha = alpha
        self.l1_ratio = l1_ratio
        self.fit_intercept = fit_intercept
        self.max_iter = max_iter
        self.tol = tol
        self.shuffle = shuffle
        self.verbose = verbose
        self.epsilon = epsilon
        self.random_state = random_state
        self.learning_rate = learning_rate
        self.eta0 = eta0
        self.power_t = power_t
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.warm_start = warm_start
        self.average = average
        self.optimizer = optimizer
        self.batch_size = batch_size
        self.backend = backend
        self.device = device

    def _n_outputs(self) -> int:
        return 1

    def _shuffle_seeds(self, separately: bool) -> list[int]:
        return [regressor_seed(self.random_state)]

    def _orders_apart(self) -> bool:
        return False

    def _monitor(self, X_val, y_val, val_weight):
        """Minus the R² on the validation rows, scikit-learn's validation score."""
        return lambda coef, intercept: -r2_score(y_val, X_val @ coef + intercept,
                                                 sample_weight=val_weight)  # fmt: skip

    def _targets(self, X, y, weights, *, partial, first, classes):
        return y.astype(X.dtype), weights, False

    def _public_params(self, theta):
        return theta[:-1, 0].copy(), theta[-1].copy()

    def fit(self, X, y, coef_init=None, intercept_init=None, sample_weight=None):
        """Train on X (n, d) and y (n,) for up to ``max_iter`` epochs; returns self.

        ``coef_init`` (d,) and ``intercept_init`` (1,) set the start (else zeros, or the
        last fit's parameters with ``warm_start``).
        """
        return self._fit_or_partial(X, y, sample_weight, partial=False, coef_init=coef_init,
                                    intercept_init=intercept_init)

    def partial_fit(self, X, y, sample_weight=None):
        """One epoch over X (n, d), y (n,), going on from the previous call; returns self."""
        return self._fit_or_partial(X, y, sample_weight, partial=True)

    def predict(self, X) -> np.ndarray:
        """Predicted values, shape (n,)."""
        return self._scores(X)


def _has_proba(estimator) -> bool:
    return estimator.loss in ("log_loss", "modified_huber", "multinomial")


class GDClassifier(ClassifierMixin, _GDBase):
    """Linear classifiers by gradient descent, with scikit-learn's ``SGDClassifier`` API.

    Parameters
    ----------
    loss : str
        scikit-learn's ``"hinge"`` (linear SVM), ``"log_loss"``, ``"modified_huber"``,
        ``"squared_hinge"``, ``"perceptron"``, or a regression loss on ±1 targets
        (``"squared_error"``, ``"huber"``, ``"epsilon_insensitive"``,
        ``"squared_epsilon_insensitive"``): binary, and one-vs-rest for more classes; or
        fastgd's ``"multinomial"`` (softmax).
    class_weight : dict, "balanced" or None
        Multiplies the sample weights: in one-vs-rest, class k's problem weighs its
        positives by ``class_weight[k]`` and the rest by 1, as scikit-learn.
    n_jobs : int or None
        Threads for the classes of a one-vs-rest fit trained one after the other (see
        ``ovr_order``), as scikit-learn's (joblib's convention: None is 1, -1 all cores);
        the results do not depend on it.
    ovr_order : {"per_class", "shared"}
        One-vs-rest with ``shuffle=True``: each class's binary problem walks the rows in
        its own order, scikit-learn's, the classes trained one after the other
        ("per_class", the same model as scikit-learn); or all classes are K outputs of
        one model trained in one pass over X, in one order ("shared": faster, another
        model).
    Other parameters
        As :class:`GDRegressor` (defaults as scikit-learn's classifier:
        ``learning_rate="optimal"``, ``power_t=0.5``).

    Attributes
    ----------
    classes_ : ndarray, shape (K,)
        The labels, sorted (any type, strings too).
    coef_ : ndarray, shape (1, d) for two classes, else (K, d)
        For ``multinomial`` with two classes, the difference of the two classes' rows.
    intercept_ : ndarray, shape (1,) or (K,)
    n_iter_, t_, backend_, n_features_in_, feature_names_in_
        As :class:`GDRegressor`.
    """

    _losses = _CLASSIFICATION_LOSSES

    def __init__(
        self, loss="hinge", *, penalty="l2", alpha=0.0001, l1_ratio=0.15, fit_intercept=True,
        max_iter=1000, tol=0.001, shuffle=True, verbose=0, epsilon=0.1, n_jobs=None,
        random_state=None, learning_rate="optimal", eta0=0.01, power_t=0.5,
        early_stopping=False, validation_fraction=0.1, n_iter_no_change=5, class_weight=None,
        warm_start=False, average=False, optimizer="sgd", batch_size=1, backend="numpy",
        device=None, ovr_order="per_class",
    ):  # fmt: skip
        self.loss = loss
        self.penalty = penalty
        self.alpha = alpha
        self.l1_ratio = l1_ratio
        self.fit_intercept = fit_intercept
        self.max_iter = max_iter
        self.tol = tol
        self.shuffle = shuffle
        self.verbose = verbose
        self.epsilon = epsilon
        self.n_jobs = n_jobs
        self.random_state = random_state
        self.learning_rate = learning_rate
        self.eta0 = eta0
        self.power_t = power_t
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.class_weight = class_weight
        self.warm_start = warm_start
        self.average = average
        self.optimizer = optimizer
        self.batch_size = batch_size
        self.backend = backend
        self.device = device
        self.ovr_order = ovr_order

    # ------------------------------------------------------------------- targets

    def _n_outputs(self) -> int:
        K = len(self.classes_)
        return K if (K > 2 or self.loss == "multinomial") else 1

    def _one_vs_rest(self) -> bool:
        return len(self.classes_) > 2 and self.loss != "multinomial"

    def _shuffle_seeds(self, separately: bool) -> list[int]:
        """scikit-learn's shuffle seeds: one per class in one-vs-rest trained apart, else
        its binary fit's (also the one order of a one-pass model)."""
        if separately and self._one_vs_rest() and self.ovr_order == "per_class":
            return one_vs_rest_seeds(self.random_state, len(self.classes_))
        return [binary_seed(self.random_state)]

    def _set_classes(self, y, classes, partial: bool) -> np.ndarray | None:
        """Set ``classes_``; returns the class codes of ``y`` when they came for free."""
        check_classification_targets(y)
        if partial and classes is None:
            raise ValueError("classes must be passed on the first call to partial_fit")
        codes = None
        if classes is None:
            found, codes = np.unique(y, return_inverse=True)
        else:
            found = np.unique(np.asarray(classes))
        if found.shape[0] < 2:
            raise ValueError(
                f"The number of classes has to be greater than one; got {found.shape[0]} class"
            )
        self.classes_ = found
        return codes

    def _codes(self, y) -> np.ndarray:
        """Positions of the labels ``y`` in ``classes_``; unknown labels raise."""
        codes = np.searchsorted(self.classes_, y)
        known = codes < len(self.classes_)
        known[known] = self.classes_[codes[known]] == y[known]
        if not known.all():
            raise ValueError(f"y holds labels not in classes_ {self.classes_.tolist()}: "
                             f"{y[~known][0]!r}")
        return codes

    def _targets(self, X, y, weights, *, partial, first, classes):
        """Kernel targets, weights and whether the classes train apart (see the module)."""
        codes = self._set_classes(y, classes, partial) if first else None
        if not first and classes is not None and not np.array_equal(np.unique(classes),
                                                                     self.classes_):
            raise ValueError(f"classes={classes!r} differs from the first call's "
                             f"{self.classes_.tolist()}")
        if codes is None:
            codes = self._codes(y)
        class_weights = self._class_weights(y, partial)
        K = len(self.classes_)
        if self.loss == "multinomial" or K == 2:
            Y = codes if self.loss == "multinomial" else (codes == 1)
            if class_weights is not None:
                weights = _times(weights, class_weights[codes])
            return self._signed(Y.astype(X.dtype)), weights, False
        onehot = codes[:, None] == np.arange(K)
        if class_weights is not None:  # positives of class k by its weight, the rest by 1
            per_output = np.where(onehot, class_weights, 1.0).astype(X.dtype)
            weights = per_output if weights is None else per_output * weights[:, None]
        apart = self.tol is not None or self._orders_apart()
        return self._signed(onehot.astype(X.dtype)), weights, apart

    def _orders_apart(self) -> bool:
        """Whether the classes walk rows in orders of their own (scikit-learn's shuffled
        one-vs-rest), and so train one after the other."""
        return bool(self.shuffle) and self._one_vs_rest() and self.ovr_order == "per_class"

    def _monitor(self, X_val, Y_val, val_weight):
        """Minus the accuracy on the validation rows, scikit-learn's validation score: of
        the binary problem (positives: targets 1) for one output, of the classes for
        ``multinomial``."""
        if self.loss == "multinomial":  # Y_val holds the class codes
            return lambda coef, intercept: -accuracy_score(
                Y_val, np.argmax(X_val @ coef + intercept, axis=1), sample_weight=val_weight)
        positive = Y_val == 1
        return lambda coef, intercept: -accuracy_score(
            positive, X_val @ coef + intercept > 0, sample_weight=val_weight)

    def _check_unsupported(self) -> None:
        super()._check_unsupported()
        if self.ovr_order not in ("per_class", "shared"):
            raise ValueError(
                f"ovr_order must be 'per_class' or 'shared', got {self.ovr_order!r}"
            )

    def _signed(self, Y: np.ndarray) -> np.ndarray:
        """Regression losses train on ±1 targets (as scikit-learn); the others take labels."""
        return 2 * Y - 1 if self.loss in _REGRESSION_LOSSES else Y

    def _class_weights(self, y, partial: bool) -> np.ndarray | None:
        if self.class_weight is None:
            return None
        if partial and self.class_weight == "balanced":
            raise ValueError(
                "class_weight='balanced' is not supported for partial_fit (it needs the "
                "whole data's class counts); pass a dict of class weights"
            )
        return compute_class_weight(self.class_weight, classes=self.classes_, y=y)

    def _public_params(self, theta):
        if self.loss == "multinomial" and theta.shape[1] == 2:
            diff = theta[:, 1] - theta[:, 0]  # the same model as one score
            return diff[None, :-1].copy(), diff[-1:].copy()
        return theta[:-1].T.copy(), theta[-1].copy()

    # ------------------------------------------------------------------ training

    def fit(self, X, y, coef_init=None, intercept_init=None, sample_weight=None):
        """Train on X (n, d) and labels y (n,) for up to ``max_iter`` epochs; returns self.

        ``coef_init`` ((K, d), or (1, d) for two classes) and ``intercept_init`` set the
        start (else zeros, or the last fit's parameters with ``warm_start``).
        """
        return self._fit_or_partial(X, y, sample_weight, partial=False, coef_init=coef_init,
                                    intercept_init=intercept_init)

    def partial_fit(self, X, y, classes=None, sample_weight=None):
        """One epoch over X (n, d), y (n,), going on from the previous call; returns self.

        ``classes`` (every label there will be) is required on the first call.
        """
        return self._fit_or_partial(X, y, sample_weight, partial=True, classes=classes)

    # --------------------------------------------------------------- predictions

    def decision_function(self, X) -> np.ndarray:
        """Scores ``X @ coef_.T + intercept_``: shape (n,) for two classes, else (n, K)."""
        return self._scores(X)

    def predict(self, X) -> np.ndarray:
        """Predicted labels from ``classes_``, shape (n,)."""
        scores = self.decision_function(X)
        index = (scores > 0).astype(int) if scores.ndim == 1 else np.argmax(scores, axis=1)
        return self.classes_[index]

    @available_if(_has_proba)
    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities (n, K), columns in the order of ``classes_``.

        ``log_loss``: sigmoid of the scores (one-vs-rest normalised for K > 2);
        ``modified_huber``: (clip(score, −1, 1) + 1) / 2, normalised likewise, as
        scikit-learn; ``multinomial``: the softmax.
        """
        scores = self.decision_function(X)
        if scores.ndim == 1:
            positive = (expit(scores) if self.loss != "modified_huber"
                        else (np.clip(scores, -1, 1) + 1) / 2)
            return np.column_stack([1 - positive, positive])
        if self.loss == "multinomial":
            e = np.exp(scores - scores.max(axis=1, keepdims=True))
            return e / e.sum(axis=1, keepdims=True)
        prob = expit(scores) if self.loss == "log_loss" else (np.clip(scores, -1, 1) + 1) / 2
        total = prob.sum(axis=1, keepdims=True)
        zero = total[:, 0] == 0
        prob[zero], total[zero] = 1.0, prob.shape[1]  # no class at all: uniform
        return prob / total

    @available_if(_has_proba)
    def predict_log_proba(self, X) -> np.ndarray:
        """The log of :meth:`predict_proba`."""
        return np.log(self.predict_proba(X))


def _times(weights, factors):
    return factors if weights is None else weights * factors
