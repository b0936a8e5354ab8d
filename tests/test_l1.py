"""The l1 penalty's training step: scikit-learn's cumulative truncation per sample, a
proximal step in batches, the subgradient for the adaptive optimizers.

Per-sample SGD with ``penalty="l1"``/``"elasticnet"`` walks scikit-learn SGD's recurrence
(Tsuruoka, Tsujii and Ananiadou 2009: ``u`` accumulates ``l1·lr``, each weight's ``q``
records the penalty it received), so it equals ``SGDClassifier``/``SGDRegressor`` on real
data sets; mini-batches and full batches take the proximal (soft-threshold) step, tested
against the oracle (``tests/reference.py``).
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import reference as ref
from helpers import (
    F32_EPS,
    OPTIMIZERS,
    as_list,
    as_rows,
    lowered,
    model_for,
    problem,
    rel_err,
    theta_of,
)
from sklearn.datasets import load_breast_cancer, load_diabetes, load_wine
from sklearn.linear_model import SGDClassifier, SGDRegressor
from sklearn.preprocessing import StandardScaler

import fastgd
from fastgd.estimators import GDClassifier

EPOCHS, ALPHA, L1_RATIO, POWER_T = 3, 2e-3, 0.4, 0.3
#: eta0 per schedule (optimal's rate comes from alpha).
SCHEDULES = {"constant": 0.01, "invscaling": 0.05, "optimal": 0.01}
PENALTIES = ("l1", "elasticnet")


def _standardised(loader):
    X, y = loader(return_X_y=True)
    return np.ascontiguousarray(StandardScaler().fit_transform(X)), y


def _weights(n: int) -> np.ndarray:
    """Absolute weights averaging about 2 (scikit-learn's convention: not rescaled)."""
    return np.random.default_rng(4).uniform(0.5, 3.5, n)


def _lr(schedule: str):
    lr0 = SCHEDULES[schedule]
    return {
        "constant": lr0,
        "invscaling": fastgd.invscaling(lr0, power_t=POWER_T),
        "optimal": fastgd.specs.optimal(ALPHA),
    }[schedule]


def _peer_fit(peer, X, y, w):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # max_iter reached without tol: expected
        return peer.fit(X, y, sample_weight=w)


def _peer_args(penalty: str, schedule: str) -> dict:
    return dict(
        penalty=penalty, alpha=ALPHA, l1_ratio=L1_RATIO, learning_rate=schedule,
        eta0=SCHEDULES[schedule], power_t=POWER_T, shuffle=False, tol=None, max_iter=EPOCHS,
    )


def _ours(X, y, backend, penalty, schedule, w, loss, **kwargs):
    return fastgd.fit(
        X, y, loss=loss, optimizer=fastgd.SGD(lr=_lr(schedule)), penalty=penalty, alpha=ALPHA,
        l1_ratio=L1_RATIO, batch_size=1, epochs=EPOCHS, shuffle=False, backend=backend,
        sample_weight=w, relative_weights=False, **kwargs,
    )


# ------------------------------------------------------------- against scikit-learn


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("schedule", SCHEDULES)
@pytest.mark.parametrize("penalty", PENALTIES)
def test_per_sample_binary_equals_sgdclassifier(backend, penalty, schedule, weighted):
    X, y = _standardised(load_breast_cancer)
    w = _weights(len(y)) if weighted else None
    peer = _peer_fit(SGDClassifier(loss="hinge", **_peer_args(penalty, schedule)), X, y, w)
    ours = _ours(X, y, backend, penalty, schedule, w, "hinge")
    assert rel_err(ours.coef, peer.coef_.ravel()) <= 1e-10
    assert rel_err(ours.intercept, peer.intercept_[0]) <= 1e-10
    assert np.array_equal(ours.coef == 0.0, peer.coef_.ravel() == 0.0)


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("schedule", ["constant", "invscaling"])
@pytest.mark.parametrize("penalty", PENALTIES)
def test_per_sample_regression_equals_sgdregressor(backend, penalty, schedule, weighted):
    X, y = _standardised(load_diabetes)
    y = (y - y.mean()) / y.std()
    w = _weights(len(y)) if weighted else None
    peer = _peer_fit(
        SGDRegressor(loss="squared_error", **_peer_args(penalty, schedule)), X, y, w
    )
    ours = _ours(X, y, backend, penalty, schedule, w, "squared")
    assert rel_err(ours.coef, peer.coef_) <= 1e-10
    assert rel_err(ours.intercept, peer.intercept_[0]) <= 1e-10


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("schedule", SCHEDULES)
@pytest.mark.parametrize("penalty", PENALTIES)
def test_one_vs_rest_gdclassifier_equals_sgdclassifier(backend, penalty, schedule, weighted):
    """K = 3 outputs: each class's column its own q, one u for all."""
    X, y = _standardised(load_wine)
    w = _weights(len(y)) if weighted else None
    args = dict(loss="log_loss", **_peer_args(penalty, schedule))
    peer = _peer_fit(SGDClassifier(**args), X, y, w)
    ours = _peer_fit(GDClassifier(**args, backend=backend), X, y, w)
    assert rel_err(ours.coef_, peer.coef_) <= 1e-10
    assert rel_err(ours.intercept_, peer.intercept_) <= 1e-10
    assert np.array_equal(ours.coef_ == 0.0, peer.coef_ == 0.0)


def test_truncation_gives_exact_zeros_the_subgradient_does_not(backend):
    """The point of the truncation: weights the l1 term pushes across 0 stop at 0."""
    X, y = _standardised(load_breast_cancer)
    alpha = 0.02
    peer = SGDClassifier(loss="hinge", penalty="l1", alpha=alpha, learning_rate="constant",
                         eta0=0.01, shuffle=False, tol=None, max_iter=EPOCHS)
    peer = _peer_fit(peer, X, y, None)
    ours = fastgd.fit(X, y, loss="hinge", optimizer=fastgd.SGD(lr=0.01), penalty="l1",
                      alpha=alpha, batch_size=1, epochs=EPOCHS, shuffle=False, backend=backend)
    zeros = int(np.sum(ours.coef == 0.0))
    assert zeros >= 5
    assert zeros == int(np.sum(peer.coef_ == 0.0))
    # Adam keeps the subgradient: it oscillates around 0 and hits it exactly nowhere
    adam = fastgd.fit(X, y, loss="hinge", optimizer=fastgd.Adam(lr=0.01), penalty="l1",
                      alpha=alpha, batch_size=1, epochs=EPOCHS, shuffle=False, backend=backend)
    assert int(np.sum(adam.coef == 0.0)) == 0


# ------------------------------------------------- the truncation's state carries over


@pytest.mark.parametrize("n_outputs", [None, 3])
def test_truncation_resumed_epoch_by_epoch_equals_one_call(backend, dtype, n_outputs):
    """A callback makes fit call the backend once per epoch: u and q must carry over in
    the optimizer state; and a fit resumed from a state continues the truncation."""
    X, y = problem("hinge", dtype=dtype, n_outputs=n_outputs)
    kw = dict(loss="hinge", optimizer=OPTIMIZERS["sgd"], penalty="elasticnet", alpha=0.05,
              l1_ratio=L1_RATIO, batch_size=1, seed=3, backend=backend)
    whole = fastgd.fit(X, y, epochs=4, **kw)
    per_epoch = fastgd.fit(X, y, epochs=4, callback=lambda *args: False, **kw)
    # float32: u is stored in the slots' dtype between calls (float64 within one)
    tol = 1e-12 if dtype == np.float64 else 50 * F32_EPS
    assert rel_err(theta_of(per_epoch), theta_of(whole)) <= tol
    assert np.sum(theta_of(whole) == 0.0) > 0
    # two fits of two epochs, the second resumed from the first's state: one of four
    unshuffled = {**kw, "shuffle": False}
    once = fastgd.fit(X, y, epochs=4, **unshuffled)
    first = fastgd.fit(X, y, epochs=2, **unshuffled)
    second = fastgd.fit(X, y, epochs=2, coef_init=first.coef, intercept_init=first.intercept,
                        optimizer_state=first.optimizer_state, **unshuffled)
    assert rel_err(theta_of(second), theta_of(once)) <= tol
    _, slots = whole.optimizer_state
    slots = np.asarray(slots)
    assert np.all(slots[1][-1] == slots[1][-1].flat[0]) and slots[1][-1].flat[0] > 0


def test_state_holds_u_and_q(backend):
    """``slots[1]``: q at the weights (minus the penalty each received, for positive
    weights), u at the intercepts' row: Σ l1·lr over the steps, the same as the oracle's."""
    X, y = problem("squared")
    n, d = X.shape
    result = fastgd.fit(X, y, loss="squared", optimizer=fastgd.SGD(lr=0.02), penalty="l1",
                        alpha=0.05, batch_size=1, epochs=2, shuffle=False, backend=backend)
    _, slots = result.optimizer_state
    slots = np.asarray(slots)
    assert slots[1][d, 0] == pytest.approx(0.05 * 0.02 * 2 * n, rel=1e-12)
    model = model_for("squared", "l1", alpha=0.05)
    opt = lowered(fastgd.SGD(lr=0.02))
    theta, state = [0.0] * (d + 1), ref.init_state(d + 1, opt)
    theta, state, _ = ref.run_epochs(as_rows(X), as_list(y), theta, state,
                                     [list(range(n))] * 2, 1, model, opt)
    assert rel_err(slots[1][:, 0], state[1][1]) <= 1e-10
    assert rel_err(theta_of(result), theta) <= 1e-10


# ------------------------------------------------------------ against the oracle


def _oracle(X, y, optimizer, batch_size, penalty, n_outputs, epochs=3, seed=5):
    n, d = X.shape
    orders = ref.shuffled_orders(seed, n, epochs, True)
    model = model_for("logistic", penalty)
    theta0 = [0.0] * (d + 1) if n_outputs is None else [[0.0] * n_outputs for _ in range(d + 1)]
    Y = as_list(y) if n_outputs is None else [list(map(float, row)) for row in y]
    theta, losses = ref.train(as_rows(X), Y, theta0, orders, batch_size or n, model,
                              lowered(optimizer))
    return np.array(theta), np.array(losses)


@pytest.mark.parametrize("n_outputs", [None, 3])
@pytest.mark.parametrize("batch_size", [1, 8, None], ids=["sample", "mini", "full"])
@pytest.mark.parametrize("name", ["sgd", "momentum", "nesterov", "adam"])
def test_l1_steps_match_the_oracle(backend, dtype, name, batch_size, n_outputs):
    """Truncation (batch 1, momentum and Nesterov too), proximal step (mini and full
    batches), subgradient (Adam), one output and three, float32 and float64."""
    X, y = problem("logistic", dtype=dtype, n_outputs=n_outputs)
    result = fastgd.fit(X, y, loss="logistic", optimizer=OPTIMIZERS[name], batch_size=batch_size,
                        epochs=3, penalty="elasticnet", alpha=0.05, l1_ratio=L1_RATIO, seed=5,
                        backend=backend)
    theta, losses = _oracle(X.astype(np.float64), y, OPTIMIZERS[name], batch_size,
                            "elasticnet", n_outputs)
    tol = 1e-10 if dtype == np.float64 else 250 * F32_EPS
    ours = np.vstack([result.coef.reshape(X.shape[1], -1), np.reshape(result.intercept, (1, -1))])
    assert rel_err(ours.reshape(theta.shape), theta) <= tol
    assert rel_err(result.loss_history, losses) <= tol


def test_proximal_step_is_the_soft_threshold():
    """One full-batch SGD step: the gradient step without the l1 term, then
    sign(w)·max(|w| − lr·l1, 0)."""
    X, y = problem("squared", n=12, d=4)
    theta0 = np.array([0.3, -0.02, 0.01, -0.4, 0.1])
    model = model_for("squared", "l1", alpha=0.5)
    opt = lowered(fastgd.SGD(lr=0.1))
    rows, targets = as_rows(X), as_list(y)
    _, grad = ref.loss_grad(rows, targets, list(theta0), model._replace(l1=0.0))
    step = theta0 - 0.1 * np.array(grad)
    expected = np.append(np.sign(step[:-1]) * np.maximum(np.abs(step[:-1]) - 0.1 * 0.5, 0),
                         step[-1])
    _, new, _ = ref.train_step(rows, targets, list(theta0), ref.init_state(5, opt), 12, model,
                               opt, [1.0] * 12)
    assert rel_err(new, expected) <= 1e-14
    assert np.array_equal(np.array(new) == 0.0, expected == 0.0)


@pytest.mark.parametrize("name", ["sgd", "adam"])
def test_full_batch_over_chunks_equals_full_batch(backend, name):
    """The chunked full batch: chunk gradients without the l1 term, one update, then the
    proximal step on the host (SGD); Adam keeps the subgradient."""
    X, y = problem("logistic")
    kw = dict(loss="logistic", optimizer=OPTIMIZERS[name], epochs=4, penalty="elasticnet",
              alpha=0.05, l1_ratio=L1_RATIO, backend=backend)
    whole = fastgd.fit(X, y, **kw)
    chunked = fastgd.fit(X, y, memory_budget=10 * X.itemsize * (X.shape[1] + 1), **kw)
    assert rel_err(theta_of(chunked), theta_of(whole)) <= 1e-10
    assert rel_err(chunked.loss_history, whole.loss_history) <= 1e-10
