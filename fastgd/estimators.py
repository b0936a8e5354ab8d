"""scikit-learn style estimators over :func:`fastgd.fit`.

They follow scikit-learn's conventions (constructor stores hyper-parameters untouched,
``fit`` returns ``self``, learned attributes end in ``_``, ``get_params``/``set_params``)
without depending on scikit-learn.
"""

from __future__ import annotations

import inspect

import numpy as np

from .api import FitResult, fit
from .data import check_X
from .specs import Logistic, Loss, resolve_loss

__all__ = ["GDRegressor", "GDClassifier"]


class _GDBase:
    """Hyper-parameter handling shared by the two estimators."""

    _default_loss = "squared"

    def __init__(
        self,
        *,
        loss=None,
        optimizer="sgd",
        lr=None,
        batch_size=None,
        epochs=100,
        penalty=None,
        alpha=1e-4,
        l1_ratio=0.15,
        fit_intercept=True,
        shuffle=True,
        seed=None,
        tol=None,
        n_iter_no_change=5,
        backend="numpy",
        device=None,
    ):
        self.loss = loss
        self.optimizer = optimizer
        self.lr = lr
        self.batch_size = batch_size
        self.epochs = epochs
        self.penalty = penalty
        self.alpha = alpha
        self.l1_ratio = l1_ratio
        self.fit_intercept = fit_intercept
        self.shuffle = shuffle
        self.seed = seed
        self.tol = tol
        self.n_iter_no_change = n_iter_no_change
        self.backend = backend
        self.device = device

    @classmethod
    def _param_names(cls) -> list[str]:
        signature = inspect.signature(cls.__init__)
        return [name for name in signature.parameters if name != "self"]

    def get_params(self, deep: bool = True) -> dict:
        """Hyper-parameters as a dict (scikit-learn's convention)."""
        return {name: getattr(self, name) for name in self._param_names()}

    def set_params(self, **params) -> _GDBase:
        """Set hyper-parameters by name; unknown names raise ``ValueError``."""
        valid = self._param_names()
        for name, value in params.items():
            if name not in valid:
                raise ValueError(f"unknown parameter {name!r}; valid ones are {valid}")
            setattr(self, name, value)
        return self

    def __repr__(self) -> str:
        changed = {
            k: v
            for k, v in self.get_params().items()
            if v != inspect.signature(type(self).__init__).parameters[k].default
        }
        args = ", ".join(f"{k}={v!r}" for k, v in changed.items())
        return f"{type(self).__name__}({args})"

    def _resolved_loss(self) -> Loss:
        """The loss spec: the estimator's default when ``loss`` is None."""
        return resolve_loss(self._default_loss if self.loss is None else self.loss)

    def _fit(self, X, y, loss) -> FitResult:
        result = fit(
            X,
            y,
            loss=loss,
            optimizer=self.optimizer,
            lr=self.lr,
            batch_size=self.batch_size,
            epochs=self.epochs,
            penalty=self.penalty,
            alpha=self.alpha,
            l1_ratio=self.l1_ratio,
            fit_intercept=self.fit_intercept,
            shuffle=self.shuffle,
            seed=self.seed,
            tol=self.tol,
            n_iter_no_change=self.n_iter_no_change,
            backend=self.backend,
            device=self.device,
        )
        self.result_ = result
        self.coef_ = result.coef
        self.intercept_ = result.intercept
        self.n_iter_ = result.n_epochs
        self.loss_history_ = result.loss_history
        self.n_features_in_ = result.coef.shape[0]
        return result

    def _check_fitted(self) -> None:
        if not hasattr(self, "result_"):
            raise RuntimeError(f"this {type(self).__name__} is not fitted yet; call fit first")

    def decision_function(self, X) -> np.ndarray:
        """``X @ coef_ + intercept_``, shape (n,)."""
        self._check_fitted()
        return self.result_.decision_function(X)


class GDRegressor(_GDBase):
    """Linear regression (squared, Huber) trained by gradient descent.

    Parameters are those of :func:`fastgd.fit`; ``loss`` is ``"squared"`` (the default, also
    meant by None), ``"huber"`` or a ``Squared``/``Huber`` spec.

    Attributes
    ----------
    coef_ : ndarray, shape (d,)
    intercept_ : float
    n_iter_ : int
        Epochs run.
    loss_history_ : ndarray, shape (n_iter_,)
    result_ : FitResult
    """

    def fit(self, X, y) -> GDRegressor:
        """Train on ``X`` (n, d) and ``y`` (n,); returns ``self``."""
        loss = self._resolved_loss()
        if isinstance(loss, Logistic):
            raise ValueError(f"loss must be a regression loss for GDRegressor, got {self.loss!r}")
        self._fit(X, y, loss)
        return self

    def predict(self, X) -> np.ndarray:
        """Predicted values, shape (n,)."""
        return self.decision_function(X)

    def score(self, X, y) -> float:
        """Coefficient of determination R² of the predictions."""
        y = np.asarray(y, dtype=np.float64)
        residual = y - self.predict(X)
        total = y - y.mean()
        return 1.0 - float(residual @ residual) / float(total @ total)


class GDClassifier(_GDBase):
    """Binary logistic regression trained by gradient descent.

    Any two distinct labels work: ``classes_`` holds them sorted, and the second is the
    positive class. The ``loss`` parameter must stay None or ``"logistic"``.

    Attributes
    ----------
    classes_ : ndarray, shape (2,)
    coef_ : ndarray, shape (d,)
    intercept_ : float
    n_iter_ : int
    loss_history_ : ndarray, shape (n_iter_,)
    result_ : FitResult
    """

    _default_loss = "logistic"

    def fit(self, X, y) -> GDClassifier:
        """Train on ``X`` (n, d) and two-class labels ``y`` (n,); returns ``self``."""
        if not isinstance(self._resolved_loss(), Logistic):
            raise ValueError(f"loss must be 'logistic' for GDClassifier, got {self.loss!r}")
        labels = np.asarray(y)
        if labels.ndim != 1:
            raise ValueError(f"y must be 1-D, got shape {labels.shape}")
        classes = np.unique(labels)
        if classes.shape[0] != 2:
            raise ValueError(f"y must hold exactly two classes, got {classes.tolist()}")
        self._fit(X, (labels == classes[1]).astype(np.float64), "logistic")
        self.classes_ = classes
        return self

    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities, shape (n, 2), columns in the order of ``classes_``."""
        self._check_fitted()
        positive = self.result_.predict_proba(X)
        return np.column_stack([1.0 - positive, positive])

    def predict(self, X) -> np.ndarray:
        """Predicted labels (from ``classes_``), shape (n,)."""
        self._check_fitted()
        return self.classes_[(self.decision_function(X) > 0).astype(int)]

    def score(self, X, y) -> float:
        """Accuracy."""
        return float(np.mean(self.predict(check_X(X)) == np.asarray(y)))
