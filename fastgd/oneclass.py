"""Drop-in replacement for scikit-learn's ``SGDOneClassSVM``: :class:`GDOneClassSVM`.

scikit-learn solves the linear one-class SVM by SGD on labels all +1: the hinge
``max(0, 1 − (w·x + b))``, the l2 penalty with ``alpha = nu``, and the term ``nu·b`` on
its intercept ``b = 1 − offset`` (see ``fastgd.specs.OneClassHinge``). The estimator here
trains that objective through :func:`fastgd.fit` with the machinery of the other two
(:class:`fastgd.estimator_base._GDBase`): scikit-learn's learning rates counted in
samples, its shuffled order for ``random_state`` (the regressor's seed draw, which
``SGDOneClassSVM`` shares), absolute sample weights, ``average``, ``partial_fit`` and
``warm_start``. The intercept starts at 1 (an offset of 0), as scikit-learn's.

With ``batch_size`` k or None the same objective is minimised by mini-batch or full-batch
gradient steps (the slope ``nu`` on the intercept's gradient, the samples' weights
relative): the principled counterpart, not scikit-learn's algorithm.
"""

from __future__ import annotations

import numbers

import numpy as np
from sklearn.base import OutlierMixin
from sklearn.utils.validation import _check_sample_weight, check_is_fitted, validate_data

from .estimator_base import _GDBase, _init_array, _OneOutput
from .specs import OneClassHinge

__all__ = ["GDOneClassSVM"]

#: scikit-learn's ``SGDOneClassSVM`` lists pa1/pa2 as hidden options but refuses them
#: (they need its regression loss there); so does this estimator.
_ONE_CLASS_RATES = ("constant", "optimal", "invscaling", "adaptive")


class GDOneClassSVM(_OneOutput, OutlierMixin, _GDBase):
    """Linear one-class SVM by gradient descent, with scikit-learn's ``SGDOneClassSVM`` API.

    Parameters
    ----------
    nu : float in (0, 1]
        An upper bound on the fraction of training errors and a lower bound on the
        fraction of support vectors; the penalty strength (``alpha = nu``) and the slope
        on the intercept.
    fit_intercept : bool
        True only: scikit-learn's ``fit_intercept=False`` keeps the intercept fixed at
        ``1 − offset`` (1 by default), which :func:`fastgd.fit` (an intercept of 0 when
        not fitted) cannot express; it raises ``NotImplementedError``.
    max_iter, tol, shuffle, verbose, random_state, learning_rate, eta0, power_t,
    warm_start, average
        As in scikit-learn (``learning_rate`` in {"constant", "optimal", "invscaling",
        "adaptive"}).
    optimizer : str or optimizer spec
        fastgd's optimizer (its learning rate is set by ``learning_rate``/``eta0``).
    batch_size : int or None
        1 (scikit-learn's per-sample SGD), k, or None for full-batch GD of the same
        objective.
    backend, device
        As in :func:`fastgd.fit`: ``"numpy"``, ``"numba"``, ``"jax"`` or ``"auto"``.

    Attributes
    ----------
    coef_ : ndarray, shape (d,)
    offset_ : ndarray, shape (1,)
        ``decision_function = X @ coef_ − offset_`` (``offset_ = 1 − b``).
    n_iter_ : int
        Epochs run by the last ``fit`` (1 after ``partial_fit``).
    t_ : float
        Updates done plus one (for batch size 1, scikit-learn's samples seen plus one).
    backend_ : str
        The backend that ran the last ``fit``/``partial_fit``.
    n_features_in_, feature_names_in_
    """

    def __init__(
        self, nu=0.5, fit_intercept=True, max_iter=1000, tol=1e-3, shuffle=True, verbose=0,
        random_state=None, learning_rate="optimal", eta0=0.01, power_t=0.5, warm_start=False,
        average=False, optimizer="sgd", batch_size=1, backend="numpy", device=None,
    ):  # fmt: skip
        self.nu = nu
        self.fit_intercept = fit_intercept
        self.max_iter = max_iter
        self.tol = tol
        self.shuffle = shuffle
        self.verbose = verbose
        self.random_state = random_state
        self.learning_rate = learning_rate
        self.eta0 = eta0
        self.power_t = power_t
        self.warm_start = warm_start
        self.average = average
        self.optimizer = optimizer
        self.batch_size = batch_size
        self.backend = backend
        self.device = device

    # scikit-learn's fixed settings of the one-class SVM, as the shared machinery reads them
    loss = "hinge"
    penalty = "l2"
    l1_ratio = 0.0
    epsilon = 0.1
    early_stopping = False
    validation_fraction = 0.1
    n_iter_no_change = 5

    @property
    def alpha(self) -> float:
        """The penalty strength: ``nu``."""
        return self.nu

    def _loss_spec(self) -> OneClassHinge:
        return OneClassHinge(self._checked_nu())

    def _checked_nu(self) -> float:
        nu = self.nu
        if not isinstance(nu, numbers.Real) or isinstance(nu, bool) or not 0.0 < nu <= 1.0:
            raise ValueError(f"nu must be a real number in (0, 1], got {nu!r}")
        return float(nu)

    def _check_unsupported(self) -> None:
        super()._check_unsupported()
        self._checked_nu()
        if not self.fit_intercept:
            raise NotImplementedError(
                "GDOneClassSVM(fit_intercept=False) is not implemented: scikit-learn then "
                "keeps the intercept fixed at 1 - offset (1 by default), and fastgd.fit "
                "trains without an intercept only at 0"
            )
        if self.learning_rate not in _ONE_CLASS_RATES:
            raise ValueError(f"learning_rate must be one of {list(_ONE_CLASS_RATES)}, "
                             f"got {self.learning_rate!r}")  # fmt: skip

    # -------------------------------------------------------------------- training

    def fit(self, X, y=None, coef_init=None, offset_init=None, sample_weight=None):
        """Train on X (n, d) for up to ``max_iter`` epochs; returns self.

        ``coef_init`` (d,) and ``offset_init`` (1,) set the start (else zeros and an
        offset of 0, or the last fit's with ``warm_start``). ``y`` is ignored.
        """
        return self._fit_one_class(X, sample_weight, partial=False, coef_init=coef_init,
                                   offset_init=offset_init)  # fmt: skip

    def partial_fit(self, X, y=None, sample_weight=None):
        """One epoch over X (n, d), going on from the previous call; returns self."""
        return self._fit_one_class(X, sample_weight, partial=True)

    def _fit_one_class(self, X, sample_weight, *, partial, coef_init=None, offset_init=None):
        first = not partial or getattr(self, "_theta", None) is None
        # finiteness is checked once, by fastgd.fit
        X = validate_data(self, X, reset=first, dtype=[np.float64, np.float32],
                          ensure_all_finite=False, accept_sparse="csr")  # fmt: skip
        weights = None
        if sample_weight is not None:
            weights = _check_sample_weight(sample_weight, X, dtype=X.dtype)
        self._check_unsupported()
        loss = self._loss_spec()
        Y = np.ones(X.shape[0], dtype=X.dtype)
        if partial:
            theta0, state0 = (None, None) if first else (self._theta, self._fresh_l1_record())
            if theta0 is None:
                theta0 = _start_theta(X.shape[1], X.dtype)
            theta, n_epochs = self._train(X, Y, loss, weights, epochs=1, tol=None,
                                          theta0=theta0, state0=state0)  # fmt: skip
        else:
            if self.warm_start and getattr(self, "_theta", None) is not None:
                coef_init = self.coef_ if coef_init is None else coef_init
                offset_init = self.offset_ if offset_init is None else offset_init
            theta0 = _start_theta(X.shape[1], X.dtype)
            if coef_init is not None:
                theta0[:-1, 0] = _init_array("coef_init", coef_init, (X.shape[1],))
            if offset_init is not None:
                theta0[-1] = 1.0 - _init_array("offset_init", offset_init, (1,))
            theta, n_epochs = self._train(X, Y, loss, weights, epochs=self.max_iter,
                                          tol=self.tol, theta0=theta0, state0=None)  # fmt: skip
        self._record(theta, n_epochs)
        return self

    def _record(self, theta: np.ndarray, n_epochs: int) -> None:
        self._theta = theta
        self.n_iter_ = n_epochs
        self.t_ = float(self._state[0] + 1)
        self.coef_ = theta[:-1, 0].copy()
        self.offset_ = 1.0 - theta[-1].copy()

    # ------------------------------------------------------------------ prediction

    def decision_function(self, X) -> np.ndarray:
        """``X @ coef_ − offset_``, shape (n,): positive for inliers."""
        check_is_fitted(self, "coef_")
        X = validate_data(self, X, reset=False, dtype=[np.float64, np.float32],
                          accept_sparse="csr")  # fmt: skip
        return (X @ self.coef_ - self.offset_).ravel()

    def score_samples(self, X) -> np.ndarray:
        """``X @ coef_``, shape (n,): the decision function plus the offset."""
        return self.decision_function(X) + self.offset_

    def predict(self, X) -> np.ndarray:
        """+1 for inliers (decision function >= 0), -1 for outliers, shape (n,)."""
        labels = (self.decision_function(X) >= 0).astype(np.int32)
        labels[labels == 0] = -1
        return labels


def _start_theta(d: int, dtype) -> np.ndarray:
    """scikit-learn's start: weights 0, intercept 1 (an offset of 0)."""
    theta = np.zeros((d + 1, 1), dtype=dtype)
    theta[-1] = 1.0
    return theta
