"""The new losses against scikit-learn: the same recurrence gives the same numbers.

scikit-learn's ``SGDClassifier`` / ``SGDRegressor`` loop over the samples one at a time;
fastgd's per-sample SGD (batch 1, no shuffle, zero start) walks the same recurrence,
so for the same learning-rate schedule and l2 penalty the coefficients agree to rounding.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from helpers import classes_problem, rel_err

import fastgd

#: scikit-learn's names of fastgd's classification and regression losses.
CLASSIFIER_LOSSES = {
    "hinge": "hinge",
    "squared_hinge": "squared_hinge",
    "modified_huber": "modified_huber",
    "logistic": "log_loss",
    "perceptron": "perceptron",
}
REGRESSOR_LOSSES = ("epsilon_insensitive", "squared_epsilon_insensitive")
EPOCHS, ALPHA, POWER_T = 4, 1e-3, 0.3
#: constant: a step that keeps every loss away from divergence on these problems;
#: invscaling: lr0 / t^power_t; optimal: 1 / (alpha·(t0 + t − 1)) (eta0 unused).
SCHEDULES = {"constant": 0.01, "invscaling": 0.05, "optimal": 0.01}
#: ``optimal`` starts at alpha^(-1/4) (5.6 here): made for the bounded derivatives of hinge,
#: perceptron, log and epsilon-insensitive losses. The squared losses' derivatives grow with
#: the error, and from such steps their runs blow up (scikit-learn clips the derivative at
#: 1e12 and carries on; fastgd raises DivergenceError) or turn chaotic, so they are not
#: compared with it.
UNBOUNDED = ("squared_hinge", "modified_huber", "squared_epsilon_insensitive")


def schedule_cases(losses) -> list[tuple[str, str]]:
    return [(loss, schedule) for loss in losses for schedule in SCHEDULES
            if not (schedule == "optimal" and loss in UNBOUNDED)]


def sklearn_fit(peer, X, y, sample_weight=None):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # max_iter reached without tol: expected
        return peer.fit(X, y, sample_weight=sample_weight)


def peer_args(schedule: str, penalty: str | None) -> dict:
    return dict(
        penalty=penalty, alpha=ALPHA, learning_rate=schedule, eta0=SCHEDULES[schedule],
        power_t=POWER_T, shuffle=False, tol=None, max_iter=EPOCHS,
    )


def our_args(schedule: str, penalty: str | None) -> dict:
    lr0 = SCHEDULES[schedule]
    lr = {
        "constant": lr0,
        "invscaling": fastgd.invscaling(lr0, power_t=POWER_T),
        "optimal": fastgd.specs.optimal(ALPHA),
    }[schedule]
    return dict(
        optimizer=fastgd.SGD(lr=lr), penalty=penalty, alpha=ALPHA, batch_size=1,
        epochs=EPOCHS, shuffle=False,
    )


def peer_theta(peer) -> np.ndarray:
    """scikit-learn's (K, d) coef_ and (K,) intercept_ as fastgd's (d + 1, K) layout."""
    return np.vstack([np.atleast_2d(peer.coef_).T, np.atleast_1d(peer.intercept_)[None, :]])


def our_theta(result) -> np.ndarray:
    coef = result.coef.reshape(result.coef.shape[0], -1)
    return np.vstack([coef, np.reshape(result.intercept, (1, -1))])


@pytest.mark.parametrize("penalty", [None, "l2"], ids=str)
@pytest.mark.parametrize(("loss", "schedule"), schedule_cases(CLASSIFIER_LOSSES))
def test_binary_sgd_equals_sgdclassifier(backend, loss, schedule, penalty):
    from sklearn.linear_model import SGDClassifier

    X, y, _ = fastgd.make_classification(200, 5, seed=7)
    peer = sklearn_fit(
        SGDClassifier(loss=CLASSIFIER_LOSSES[loss], **peer_args(schedule, penalty)), X, y
    )
    ours = fastgd.fit(X, y, loss=loss, backend=backend, **our_args(schedule, penalty))
    assert rel_err(our_theta(ours), peer_theta(peer)) <= 1e-10


@pytest.mark.parametrize("penalty", [None, "l2"], ids=str)
@pytest.mark.parametrize(("loss", "schedule"), schedule_cases(REGRESSOR_LOSSES))
def test_epsilon_insensitive_sgd_equals_sgdregressor(backend, loss, schedule, penalty):
    from sklearn.linear_model import SGDRegressor

    X, y, _ = fastgd.make_regression(200, 5, noise=0.3, seed=8)
    peer = sklearn_fit(
        SGDRegressor(loss=loss, epsilon=0.2, **peer_args(schedule, penalty)), X, y
    )
    spec = fastgd.EpsilonInsensitive if loss == "epsilon_insensitive" else (
        fastgd.SquaredEpsilonInsensitive)
    ours = fastgd.fit(X, y, loss=spec(epsilon=0.2), backend=backend,
                      **our_args(schedule, penalty))
    assert rel_err(our_theta(ours), peer_theta(peer)) <= 1e-10


@pytest.mark.parametrize("loss", ["hinge", "logistic"])
def test_one_vs_rest_equals_sgdclassifier_on_three_classes(backend, loss):
    """One-hot columns train K binary models in one pass: scikit-learn's one-vs-rest."""
    from sklearn.linear_model import SGDClassifier

    X, codes = classes_problem(240, 6, 3, np.float64, seed=9)
    peer = sklearn_fit(
        SGDClassifier(loss=CLASSIFIER_LOSSES[loss], **peer_args("invscaling", "l2")), X, codes
    )
    onehot = np.eye(3)[codes]
    ours = fastgd.fit(X, onehot, loss=loss, backend=backend, **our_args("invscaling", "l2"))
    assert ours.coef.shape == (6, 3) and ours.intercept.shape == (3,)
    assert rel_err(our_theta(ours), peer_theta(peer)) <= 1e-10


def test_perceptron_steps_from_zero_weights(backend):
    """scikit-learn's perceptron is ``Hinge(threshold=0)``: at a margin z = s·p of exactly
    0 its derivative is -s (``z <= 0``), so a fit from zero weights moves at once."""
    from fastgd.specs import Perceptron, lower_model

    kernels = fastgd.get_backend(backend)
    X = np.array([[1.0, 2.0], [-1.0, 0.5], [0.5, 1.0]])
    Y = np.array([[1.0], [-1.0], [1.0]])  # the labels s = ±1 the kernels see
    data, theta = kernels.prepare(X, Y, np.zeros((3, 1)), None)
    value, grad = kernels.loss_grad(data, theta, lower_model(Perceptron(), 0.0, 0.0, True))
    assert float(value) == 0.0
    expected = -(Y * np.hstack([X, np.ones((3, 1))])).mean(axis=0)[:, None]  # mean(-s·x)
    np.testing.assert_allclose(np.asarray(grad), expected, rtol=1e-15, atol=1e-15)
    # one sample, one step: the weights become lr·s·x
    ours = fastgd.fit(X[:1], np.array([1.0]), loss="perceptron", optimizer=fastgd.SGD(lr=0.5),
                      penalty=None, batch_size=1, epochs=1, shuffle=False, backend=backend)
    np.testing.assert_array_equal(ours.coef, [0.5, 1.0])
    assert ours.intercept == 0.5


def test_perceptron_has_no_predict_proba():
    X, y, _ = fastgd.make_classification(40, 3, seed=12)
    result = fastgd.fit(X, y, loss="perceptron", batch_size=1, epochs=1, backend="numpy")
    np.testing.assert_array_equal(result.predict(X), result.decision_function(X) > 0)
    with pytest.raises(ValueError, match="Perceptron"):
        result.predict_proba(X)


def mean_one(w: np.ndarray) -> np.ndarray:
    return w / w.mean()


@pytest.mark.parametrize("loss", ["hinge", "modified_huber"])
def test_sample_weights_equal_sklearns_when_they_average_one(backend, loss):
    """scikit-learn multiplies each sample's step by its weight as given; fastgd rescales
    the weights to mean 1. The two coincide for weights of mean 1, and fastgd's result
    does not change when every weight is multiplied by the same constant."""
    from sklearn.linear_model import SGDClassifier

    X, y, _ = fastgd.make_classification(200, 5, seed=10)
    w = mean_one(np.random.default_rng(3).uniform(0.0, 3.0, 200))
    peer = sklearn_fit(
        SGDClassifier(loss=CLASSIFIER_LOSSES[loss], **peer_args("constant", "l2")), X, y, w
    )
    ours = fastgd.fit(X, y, loss=loss, sample_weight=3.7 * w, backend=backend,
                      **our_args("constant", "l2"))
    assert rel_err(our_theta(ours), peer_theta(peer)) <= 1e-10


def test_sample_weights_equal_sgdregressor(backend):
    from sklearn.linear_model import SGDRegressor

    X, y, _ = fastgd.make_regression(200, 5, noise=0.3, seed=11)
    w = mean_one(np.random.default_rng(4).integers(0, 4, 200).astype(float))
    peer = sklearn_fit(
        SGDRegressor(loss="epsilon_insensitive", epsilon=0.1, **peer_args("invscaling", "l2")),
        X, y, w,
    )
    ours = fastgd.fit(X, y, loss="epsilon_insensitive", sample_weight=w, backend=backend,
                      **our_args("invscaling", "l2"))
    assert rel_err(our_theta(ours), peer_theta(peer)) <= 1e-10


def test_multinomial_gd_reaches_sklearn_logistic_regression_on_iris(backend):
    """Full-batch GD on (1/n)·Σ softmax loss + alpha/2·‖W‖² is LogisticRegression with
    C = 1 / (alpha·n). Softmax intercepts are fixed only up to a shared constant, so the
    comparison is on coefficients and probabilities."""
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    X, codes = load_iris(return_X_y=True)
    X = (X - X.mean(axis=0)) / X.std(axis=0)
    alpha = 0.01
    peer = LogisticRegression(C=1.0 / (alpha * X.shape[0]), tol=1e-12, max_iter=10_000)
    peer.fit(X, codes)
    ours = fastgd.fit(X, codes, loss="multinomial", penalty="l2", alpha=alpha,
                      optimizer=fastgd.SGD(lr=1.0, momentum=0.9), epochs=3000, backend=backend)
    assert ours.coef.shape == (4, 3) and ours.intercept.shape == (3,)
    assert rel_err(ours.coef, peer.coef_.T) <= 1e-4
    np.testing.assert_allclose(ours.predict_proba(X), peer.predict_proba(X), atol=1e-4)
    np.testing.assert_array_equal(ours.predict(X), peer.predict(X))
