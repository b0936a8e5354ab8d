"""What :func:`fastgd.fit` hands back: a :class:`FitResult`, or a :class:`DivergenceError`
when training stopped being finite; and :func:`make_result`, the last step of a fit."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from .data import check_X
from .specs import Logistic, Loss, ModifiedHuber, Multinomial

if TYPE_CHECKING:
    from .placement import Placed
    from .plan import Plan
    from .training import Trained

__all__ = ["DivergenceError", "FitResult", "make_result", "public_params"]


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
        1-D, else one column per output (per class for ``multinomial``). With
        ``fit(average=a)`` and at least ``a`` updates: the average of the parameters
        after the updates a, a + 1, …, the last (the plain last ones are in
        ``optimizer_state``'s third slot).
    intercept : float or ndarray of shape (K,)
        Learned intercept(s) (0.0, or ``intercept_init``, when not fitted); averaged as
        ``coef`` is.
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
        Which backend ran: with ``backend="auto"``, the one it chose (never ``"auto"``).
    loss : Loss
        The loss spec, used by :meth:`predict`.
    fit_time : float
        Wall-clock seconds spent in the epoch loop (including any JIT compilation).
    optimizer_state : tuple (int, ndarray of shape (3, d + 1, K))
        The optimizer's step count and slots at the end, on the host: pass it back as
        ``fit(..., optimizer_state=...)`` (with ``coef_init``/``intercept_init`` set to
        this result's ``coef``/``intercept``, and the same ``average``) to go on training
        exactly where this run stopped. Slots 0 and 1 are the optimizer's moments (SGD:
        the momentum trace and the l1 truncation's record), slot 2 the averaging's: the
        running average of the parameters while ``fit(average=...)`` has not started
        averaging (or is off), and once it has, the plain (last, not averaged)
        parameters, since ``coef``/``intercept`` then report the average.
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
        """Linear prediction ``X @ coef + intercept``, shape (n,) or (n, K) like ``coef``
        (X dense or scipy.sparse, checked as :func:`fastgd.fit` checks it)."""
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


def _owned(a: object, dtype: np.dtype) -> np.ndarray:
    """``a`` itself when it is a writable host array of ``dtype`` (the fit's own, at its
    end), else a host copy in ``dtype``: a K = 20 model on 2^20 features is 168 MB of
    parameters and 500 MB of optimizer state, not worth copying once more."""
    if isinstance(a, np.ndarray) and a.dtype == dtype and a.flags.writeable:
        return a
    return np.array(a, dtype=dtype)


def public_params(
    theta: object, dtype: np.dtype, single_output: bool, copy: bool = True
) -> tuple[np.ndarray, float | np.ndarray]:
    """Host ``coef`` and ``intercept`` from a backend's (d + 1, K) parameters.

    Parameters
    ----------
    theta : array, shape (d + 1, K)
        Weights then intercepts, on the host or a device.
    dtype : numpy dtype
        The data's dtype, which the results keep.
    single_output : bool
        Whether ``y`` was 1-D: then ``coef`` is (d,) and ``intercept`` a float.
    copy : bool
        True: always a new array (what a callback gets while training goes on); False:
        views of ``theta`` itself when it is a writable host array of ``dtype``.

    Returns
    -------
    coef : ndarray, shape (d,) or (d, K)
    intercept : float or ndarray of shape (K,)
    """
    theta_host = np.array(theta, dtype=dtype) if copy else _owned(theta, dtype)
    if single_output:
        return theta_host[:-1, 0], float(theta_host[-1, 0])
    return theta_host[:-1], theta_host[-1]


def make_result(plan: Plan, placed: Placed, trained: Trained, fit_time: float) -> FitResult:
    """The :class:`FitResult` of a finished training.

    Parameters
    ----------
    plan : Plan
        What was trained (the data's dtype, the shape of ``y``, the loss, the backend).
    placed : Placed
        How the epochs walked the rows (for the count of updates).
    trained : Trained
        The parameters, optimizer state and losses at the end.
    fit_time : float
        Seconds spent placing the data and training.

    Returns
    -------
    FitResult
    """
    theta, state = trained.theta, trained.state
    step, slots = int(np.asarray(state[0])), _owned(state[1], plan.X.dtype)
    if 0 < plan.opt.average <= step:
        # the average is reported; the plain parameters go to the state's third slot, where
        # make_plan takes them back from when training resumes
        theta, slots[2] = slots[2].copy(), np.asarray(theta)
    coef, intercept = public_params(theta, plan.X.dtype, plan.single_output, copy=False)
    return FitResult(
        coef=coef,
        intercept=intercept,
        loss_history=trained.history,
        n_epochs=len(trained.history),
        n_updates=len(trained.history) * placed.batches_per_epoch(),
        converged=trained.converged,
        backend=plan.backend,
        loss=plan.loss,
        fit_time=fit_time,
        optimizer_state=(step, slots),
    )
