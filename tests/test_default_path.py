"""scikit-learn's default path in numba's per-sample SGD, one output (``_sgd_epochs_l2``).

``SGDClassifier()``'s defaults (hinge, l2 with alpha 1e-4, ``learning_rate="optimal"``,
per-sample, shuffled) run in the numba backend as ``w = scale·v``: the l2 shrink moves
only the scale, a step whose loss derivative is 0 only the scale, and the penalty of the
epoch loss comes from ``scale²·‖v‖²``. Here: the same coefficients as ``SGDClassifier`` on
real data sets (in order through ``fit``, shuffled through ``run_epochs`` in
scikit-learn's own row order), the numpy backend's coefficients, epoch losses and trace
with the scale folded into ``v`` often, at ``lr·l2 >= 1``, where most margins are met,
with weights and in float32.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from helpers import F32_EPS, rel_err

import fastgd
from fastgd.sklearn_shuffle import SklearnShuffle, binary_seed
from fastgd.specs import SGD, lower_model, lower_optimizer, optimal, resolve_loss

pytest.importorskip("numba")
nb = fastgd.get_backend("numba")
ref = fastgd.get_backend("numpy")
sklearn_datasets = pytest.importorskip("sklearn.datasets")

EPOCHS, ALPHA = 5, 1e-4


def breast_cancer() -> tuple[np.ndarray, np.ndarray]:
    """569 x 30, standardised; labels {0, 1}."""
    X, y = sklearn_datasets.load_breast_cancer(return_X_y=True)
    return (X - X.mean(axis=0)) / X.std(axis=0), y


def digits_one_vs_rest(digit: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """1797 x 64 in [0, 1]; label 1 for one digit, 0 for the rest."""
    X, y = sklearn_datasets.load_digits(return_X_y=True)
    return X / 16.0, (y == digit).astype(np.int64)


DATASETS = {"breast_cancer": breast_cancer, "digits": digits_one_vs_rest}


def sgdclassifier(X, y, shuffle=False, random_state=0, sample_weight=None, **kwargs):
    """scikit-learn's fit, as fastgd's theta (d + 1,)."""
    from sklearn.linear_model import SGDClassifier

    params = dict(loss="hinge", penalty="l2", alpha=ALPHA, learning_rate="optimal",
                  shuffle=shuffle, tol=None, max_iter=EPOCHS, random_state=random_state)
    params.update(kwargs)
    peer = SGDClassifier(**params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # max_iter reached without tol: expected
        peer.fit(X, y, sample_weight=sample_weight)
    assert peer.classes_.tolist() == [0, 1]  # the positive class is fastgd's label 1
    return np.append(peer.coef_.ravel(), peer.intercept_)


def default_fit(X, y, backend="numba", **kwargs):
    """fastgd's spelling of SGDClassifier()'s defaults, in order."""
    params = dict(loss="hinge", penalty="l2", alpha=ALPHA, lr=optimal(ALPHA), batch_size=1,
                  optimizer="sgd", backend=backend, max_dloss=1e12, epochs=EPOCHS,
                  shuffle=False, tol=None)
    params.update(kwargs)
    res = fastgd.fit(X, y, **params)
    return np.append(res.coef, res.intercept)


def run(kernels, X, Y, orders, model, opt, weight=None, theta=None):
    """``run_epochs`` of a backend from ``theta`` (zeros): (theta, slots, epoch losses)."""
    d = X.shape[1]
    if theta is None:
        theta = np.zeros((d + 1, 1), dtype=X.dtype)
    data, theta = kernels.prepare(X, Y.reshape(-1, 1).astype(X.dtype), theta.copy(), None,
                                  weight)  # fmt: skip
    theta, (_, slots), losses = kernels.run_epochs(
        data, theta, kernels.init_state(theta, opt), orders, 1, model, opt
    )
    return np.asarray(theta).ravel(), np.asarray(slots), np.asarray(losses)


def signed(y) -> np.ndarray:
    return np.where(np.asarray(y) > 0, 1.0, -1.0)


def hinge_l2(l2=ALPHA, loss="hinge"):
    return lower_model(resolve_loss(loss), l2, 0.0, True, 1e12)


def shuffled(n, epochs=EPOCHS, random_state=0) -> np.ndarray:
    return np.ascontiguousarray(SklearnShuffle(binary_seed(random_state)).epoch_orders(n, epochs))


# ------------------------------------------------------------- against scikit-learn


@pytest.mark.parametrize("name", DATASETS)
def test_in_order_equals_sgdclassifier(name):
    X, y = DATASETS[name]()
    assert rel_err(default_fit(X, y), sgdclassifier(X, y)) <= 1e-10


@pytest.mark.parametrize("random_state", [0, 42])
@pytest.mark.parametrize("name", DATASETS)
def test_shuffled_equals_sgdclassifier_in_its_row_order(name, random_state):
    X, y = DATASETS[name]()
    opt = lower_optimizer(SGD(lr=optimal(ALPHA)))
    theta, _, _ = run(nb, X, signed(y), shuffled(len(y), random_state=random_state),
                      hinge_l2(), opt)  # fmt: skip
    expected = sgdclassifier(X, y, shuffle=True, random_state=random_state)
    assert rel_err(theta, expected) <= 1e-10


def test_sample_weights_equal_sgdclassifiers():
    # scikit-learn multiplies each step by the weight as given: relative_weights=False.
    X, y = breast_cancer()
    w = np.random.default_rng(0).uniform(0.0, 3.0, len(y))
    w[::7] = 0.0  # a weight of 0: that sample's step only shrinks
    ours = default_fit(X, y, sample_weight=w, relative_weights=False)
    assert rel_err(ours, sgdclassifier(X, y, sample_weight=w)) <= 1e-10


def test_folding_the_scale_equals_sgdclassifier():
    # A constant rate with lr·l2 = 0.5 halves the scale at every step: it falls below
    # 1e-9 every 30 steps and is folded into the weights (scikit-learn does the same);
    # without the fold it would reach 0 within ~1,100 steps (2,845 here) and divide by it.
    X, y = breast_cancer()
    ours = default_fit(X, y, lr=0.5, alpha=1.0)
    expected = sgdclassifier(X, y, learning_rate="constant", eta0=0.5, alpha=1.0)
    assert np.all(np.isfinite(ours))
    assert rel_err(ours, expected) <= 1e-10
    # a slow shrink (0.99 a step) folds once, after ~2,060 steps
    ours = default_fit(X, y, lr=0.01, alpha=1.0)
    expected = sgdclassifier(X, y, learning_rate="constant", eta0=0.01, alpha=1.0)
    assert rel_err(ours, expected) <= 1e-10


# ---------------------------------------------------------- against the numpy backend


def assert_numpy_backend(X, Y, orders, model, opt, weight=None, rtol=1e-10, theta=None):
    """numba's theta, trace and epoch losses equal the numpy backend's."""
    got = run(nb, X, Y, orders, model, opt, weight, theta)
    expected = run(ref, X, Y, orders, model, opt, weight, theta)
    for a, b in zip(got, expected, strict=True):
        assert a.dtype == b.dtype
        assert rel_err(a, b) <= rtol
    return got


@pytest.mark.parametrize("lr_l2", [0.5, 1.0, 1.5])
def test_large_shrinks_are_the_gradient_step(lr_l2):
    # lr·l2 >= 1: the factor 1 − lr·l2 is 0 or negative. scikit-learn clamps it at 0;
    # fastgd takes the gradient step w − lr·(dloss·x + l2·w) as its other backends do: the
    # scale turns 0 or negative and is folded into v once below 1e-9 in size.
    X, y = breast_cancer()
    rng = np.random.default_rng(1)
    theta = 0.1 * rng.normal(size=(X.shape[1] + 1, 1))
    model = hinge_l2(l2=lr_l2 / 0.5)
    opt = lower_optimizer(SGD(lr=0.5))
    theta_run, _, losses = assert_numpy_backend(X, signed(y), shuffled(len(y), 3), model, opt,
                                                theta=theta)  # fmt: skip
    assert np.all(np.isfinite(theta_run)) and np.all(np.isfinite(losses))


@pytest.mark.parametrize("loss", ["hinge", "squared_hinge", "modified_huber",
                                  "epsilon_insensitive", "squared_epsilon_insensitive",
                                  "logistic", "squared", "huber"])  # fmt: skip
def test_every_loss_equals_the_numpy_backend_with_weights(loss):
    X, y = digits_one_vs_rest()
    rng = np.random.default_rng(2)
    w = rng.uniform(0.2, 2.0, len(y))
    if loss in ("logistic",):
        Y = y.astype(np.float64)
    elif loss in ("hinge", "squared_hinge", "modified_huber"):
        Y = signed(y)
    else:
        Y = X @ rng.normal(size=X.shape[1]) + 0.1 * rng.normal(size=len(y))
    model = lower_model(resolve_loss(loss), 0.01, 0.0, True, 1e12)
    opt = lower_optimizer(SGD(lr=fastgd.invscaling(0.05, power_t=0.3)))
    assert_numpy_backend(X, Y, shuffled(len(y), 3), model, opt, weight=w)


def test_default_path_losses_and_trace_equal_the_numpy_backend():
    X, y = breast_cancer()
    opt = lower_optimizer(SGD(lr=optimal(ALPHA)))
    _, slots, losses = assert_numpy_backend(X, signed(y), shuffled(len(y)), hinge_l2(), opt)
    assert np.any(slots[0] != 0.0)  # the last gradient, penalty included


def test_most_margins_met_skips_the_update():
    # Separable data with a wide margin: after a few samples nearly every hinge margin
    # is met, the loss derivative is 0 and only the scale moves.
    rng = np.random.default_rng(3)
    n, d = 2000, 20
    X = rng.normal(size=(n, d))
    w_true = rng.normal(size=d)
    margin = X @ w_true
    keep = np.abs(margin) > 1.0
    X, y = X[keep], (margin[keep] > 0).astype(np.int64)
    opt = lower_optimizer(SGD(lr=optimal(ALPHA)))
    orders = shuffled(len(y))
    theta, _, _ = assert_numpy_backend(X, signed(y), orders, hinge_l2(), opt)
    met = signed(y) * (X @ theta[:-1] + theta[-1]) > 1.0
    assert met.mean() > 0.9
    expected = sgdclassifier(X, y, shuffle=True, random_state=0)
    assert rel_err(theta, expected) <= 1e-10
    assert rel_err(default_fit(X, y), sgdclassifier(X, y)) <= 1e-10


def test_epsilon_insensitive_inside_the_tube_skips_the_update():
    # Residuals inside epsilon: derivative 0 for most samples; the weights only shrink.
    X, _ = digits_one_vs_rest()
    rng = np.random.default_rng(4)
    Y = X @ rng.normal(size=X.shape[1])
    model = lower_model(resolve_loss(fastgd.EpsilonInsensitive(epsilon=0.5)), 0.01, 0.0,
                        True, 1e12)  # fmt: skip
    opt = lower_optimizer(SGD(lr=0.01))
    assert_numpy_backend(X, Y, shuffled(len(Y)), model, opt)


def test_epochs_split_over_calls_equal_one_call():
    # The scale is folded into theta at the end of each call: per-epoch calls (a
    # callback, tol) walk the same path as one call.
    X, y = breast_cancer()
    whole = default_fit(X, y, shuffle=True, seed=5)
    stepped = default_fit(X, y, shuffle=True, seed=5, callback=lambda *args: None)
    assert rel_err(stepped, whole) <= 1e-13


def test_float32_stays_float32_and_near_float64():
    X, y = breast_cancer()
    X32 = X.astype(np.float32)
    opt = lower_optimizer(SGD(lr=optimal(ALPHA)))
    orders = shuffled(len(y))
    got = run(nb, X32, signed(y), orders, hinge_l2(), opt)
    expected = run(ref, X32, signed(y), orders, hinge_l2(), opt)
    assert got[0].dtype == np.float32 and got[1].dtype == np.float32
    for a, b in zip(got, expected, strict=True):
        assert rel_err(a, b) <= 250 * F32_EPS
    f64 = run(nb, X32.astype(np.float64), signed(y), orders, hinge_l2(), opt)
    assert rel_err(got[0], f64[0]) <= 250 * F32_EPS
    assert rel_err(default_fit(X32, y), default_fit(X, y)) <= 250 * F32_EPS


@pytest.mark.parametrize("params", [
    dict(lr=None, optimizer=SGD(lr=optimal(ALPHA), momentum=0.5)),
    dict(penalty="elasticnet"),
    dict(penalty=None),
], ids=["momentum", "elasticnet", "no penalty"])
def test_the_other_paths_still_equal_the_numpy_backend(params):
    # momentum and l1 keep the dense loop, no penalty the fused one
    X, y = breast_cancer()
    got = default_fit(X, y, **params)
    assert rel_err(got, default_fit(X, y, backend="numpy", **params)) <= 1e-10
