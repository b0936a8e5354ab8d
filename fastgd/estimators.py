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

import numpy as np
from scipy.special import expit
from sklearn.base import ClassifierMixin, RegressorMixin
from sklearn.metrics import accuracy_score, r2_score
from sklearn.utils.class_weight import compute_class_weight
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import check_classification_targets

from .estimator_base import (
    _CLASSIFICATION_LOSSES,
    _REGRESSION_LOSSES,
    _GDBase,
    _OneOutput,
)
from .sklearn_shuffle import binary_seed, one_vs_rest_seeds
from .specs import check_average

__all__ = ["GDRegressor", "GDClassifier"]

class GDRegressor(_OneOutput, RegressorMixin, _GDBase):
    """Linear regression by gradient descent, with scikit-learn's ``SGDRegressor`` API.

    Parameters
    ----------
    loss : {"squared_error", "huber", "epsilon_insensitive", "squared_epsilon_insensitive"}
    penalty : {"l2", "l1", "elasticnet", None}
        As in scikit-learn: the l1 part per sample by its cumulative truncation (with
        batches, a proximal step).
    alpha, l1_ratio, fit_intercept, max_iter, tol, shuffle, verbose, epsilon,
    random_state, learning_rate, eta0, power_t, n_iter_no_change, warm_start
        As in scikit-learn (``learning_rate`` in {"constant", "optimal", "invscaling",
        "adaptive", "pa1", "pa2"}; the passive-aggressive rates, ``eta0`` their
        aggressiveness C, take the loss ``epsilon_insensitive`` here and ``hinge`` in the
        classifier, and ``batch_size=1``: ``fastgd.specs.PassiveAggressive``).
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

    def _monitor(self, X_val, y_val, val_weight):
        """Minus the R² on the validation rows, scikit-learn's validation score."""
        return lambda coef, intercept: -r2_score(y_val, X_val @ coef + intercept,
                                                 sample_weight=val_weight)  # fmt: skip

    def _targets(self, X, y, weights, *, partial, first, classes):
        return y.astype(X.dtype), weights, False

    def _public_params(self, theta):
        return theta[:-1, 0].copy(), theta[-1].copy()

    def _initial_theta(self, d: int, K: int, dtype, coef_init, intercept_init):
        """The start of ``fit``; with ``warm_start`` and ``average`` after an earlier fit,
        scikit-learn's regressor's: it goes on from its plain parameters (not the
        reported average) with ``t_`` back at 1 and keeps its averaged weights, which its
        lazy averaging then carries as ``carry / N`` on top of the new running mean (N the
        averaged samples since this fit began; :meth:`_record`)."""
        average = check_average(self.average)
        warm = self.warm_start and getattr(self, "_theta", None) is not None
        if not (warm and average and self._theta.shape == (d + 1, K)):
            self._average_carry = None  # scikit-learn allocates its average afresh
            return super()._initial_theta(d, K, dtype, coef_init, intercept_init)
        step, slots = self._state
        started = 0 < average <= step
        carry = getattr(self, "_average_carry", None)
        self._average_carry = self.coef_.copy() if started else carry
        plain = slots[2] if started else self._theta  # see fastgd.fit's average
        return np.array(plain, dtype=dtype)

    def _record(self, theta: np.ndarray, n_epochs: int) -> None:
        super()._record(theta, n_epochs)
        carry = getattr(self, "_average_carry", None)
        average = check_average(self.average)
        if carry is not None and 0 < average <= self._state[0]:
            self.coef_ = self.coef_ + carry / (self._state[0] - average + 1)

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
