"""What the two scikit-learn estimators share: :class:`_GDBase` (their parameters mapped
onto :func:`fastgd.fit`, training one pass or one output at a time, scikit-learn's row
orders, early stopping, averaging and ``partial_fit`` bookkeeping) and the small helpers
it uses. :mod:`fastgd.estimators` holds the public classes and explains the mapping."""

from __future__ import annotations

import numbers
import time

import numpy as np
import scipy.sparse as sp
from joblib import Parallel, delayed
from sklearn.base import BaseEstimator, ClassifierMixin, is_classifier, is_regressor
from sklearn.model_selection import ShuffleSplit, StratifiedShuffleSplit
from sklearn.utils.validation import _check_sample_weight, check_is_fitted, validate_data

from .api import fit
from .plan import OwnedState
from .result import FitResult
from .sklearn_shuffle import SklearnShuffle, regressor_seed
from .specs import (
    SGD,
    EpsilonInsensitive,
    Hinge,
    Huber,
    Logistic,
    ModifiedHuber,
    Multinomial,
    PassiveAggressive,
    Perceptron,
    Squared,
    SquaredEpsilonInsensitive,
    SquaredHinge,
    adaptive,
    check_average,
    invscaling,
    optimal,
    resolve_optimizer,
    resolve_penalty,
)

#: scikit-learn SGD's ``MAX_DLOSS`` (sklearn/linear_model/_sgd_fast.pyx.tp): each sample's
#: loss derivative is clipped to [-1e12, 1e12], which keeps a diverging fit finite
#: instead of raising ``DivergenceError``.
_SKLEARN_MAX_DLOSS = 1e12
_SPARSE_INTERCEPT_DECAY = 0.01  # scikit-learn SGD's damping of the intercept on sparse X

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
_LEARNING_RATES = ("constant", "optimal", "invscaling", "adaptive", "pa1", "pa2")


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
        if self.learning_rate in ("pa1", "pa2"):
            # scikit-learn's rule: the regressor's take epsilon_insensitive, the others hinge
            needed = "epsilon_insensitive" if is_regressor(self) else "hinge"
            if self.loss != needed:
                raise ValueError(f"learning_rate={self.learning_rate!r} only works with "
                                 f"loss={needed!r}, got loss={self.loss!r}")  # fmt: skip
            if self.batch_size != 1:
                raise ValueError(f"learning_rate={self.learning_rate!r} steps per sample: "
                                 f"it needs batch_size=1, got batch_size={self.batch_size!r}")
            return PassiveAggressive(self.eta0, self.learning_rate)
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
                    callback=_EpochReport(X.shape[0]) if self.verbose else None,
                    intercept_decay=_intercept_decay(X), sklearn_sparse_norms=sp.issparse(X))
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
        no_l1 = resolve_penalty(self.penalty, self.alpha, self.l1_ratio)[1] == 0.0
        if no_l1 or not isinstance(resolve_optimizer(self.optimizer), SGD):
            return step, slots  # without an l1 term the record stays 0
        if not (isinstance(slots, np.ndarray) and slots.flags.writeable):
            slots = np.array(slots, copy=True)
        slots[1] = 0.0  # the estimator's own state, replaced by this call's (no copy: with
        # 2^20 features a copy of the three slots cost 2.4 ms of a 12 ms partial_fit)
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
                             accept_sparse="csr", y_numeric=not isinstance(self, ClassifierMixin),
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
        X = validate_data(self, X, reset=False, dtype=[np.float64, np.float32],
                          accept_sparse="csr")
        scores = X @ np.atleast_2d(self.coef_).T + self.intercept_
        return scores.ravel() if scores.shape[1] == 1 else scores

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags


class _OneOutput:
    """What the regressor and the one-class SVM share: one output, trained in one pass in
    the row order scikit-learn's regressor draws for ``random_state`` (its one-class SVM
    draws the same)."""

    def _n_outputs(self) -> int:
        return 1

    def _shuffle_seeds(self, separately: bool) -> list[int]:
        return [regressor_seed(self.random_state)]

    def _orders_apart(self) -> bool:
        return False


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


def _intercept_decay(X) -> float:
    """scikit-learn SGD's damping of the intercept's updates: 0.01 on sparse X (its
    ``SPARSE_INTERCEPT_DECAY``), none on dense X."""
    return _SPARSE_INTERCEPT_DECAY if sp.issparse(X) else 1.0


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
    if theta0 is not None and state0 is not None and k is None:  # partial_fit, one pass
        return {"optimizer_state": OwnedState(state0[0], state0[1], theta0)}
    if theta0 is not None:
        part = theta0 if k is None else theta0[:, k : k + 1]
        kwargs["coef_init"] = part[:-1, 0] if single else part[:-1]
        kwargs["intercept_init"] = float(part[-1, 0]) if single else part[-1]
    if state0 is not None:
        step, slots = state0
        kwargs["optimizer_state"] = OwnedState(step, slots if k is None else slots[:, :, k : k + 1])
    return kwargs


def _theta_of(result: FitResult) -> np.ndarray:
    """A fit's parameters as one (d + 1, K) matrix."""
    coef = result.coef.reshape(result.coef.shape[0], -1)
    intercept = np.asarray(result.intercept, dtype=coef.dtype)  # one output: a float
    return np.vstack([coef, intercept.reshape(1, -1)])


def _stack_states(states: list) -> tuple[int, np.ndarray]:
    """One state for outputs trained apart: their moments side by side and the step count
    of the longest (scikit-learn's ``t_`` counts ``max(n_iter_) · n`` samples)."""
    return max(s[0] for s in states), np.concatenate([s[1] for s in states], axis=2)
