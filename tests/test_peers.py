"""fastgd against the tools a user would otherwise use: scikit-learn, numpy, optax."""

from __future__ import annotations

import dataclasses
import functools
import warnings

import numpy as np
import pytest
import reference as ref
from helpers import BATCH_MODES, EPOCHS, OPTIMIZERS, SCHEDULES, problem, rel_err, theta_of

import fastgd

SEED = 5


# ----------------------------------------------------------------------- scikit-learn


def test_sgd_equals_sklearn_sgdregressor(backend):
    """Plain SGD (batch 1, constant lr, no penalty, no shuffle, zero init) is sklearn's SGD."""
    from sklearn.linear_model import SGDRegressor

    X, y, _ = fastgd.make_regression(300, 6, noise=0.3, seed=1)
    lr, epochs = 0.01, 5
    peer = SGDRegressor(penalty=None, learning_rate="constant", eta0=lr, shuffle=False,
                        tol=None, max_iter=epochs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sklearn warns that max_iter was reached
        peer.fit(X, y)
    ours = fastgd.fit(X, y, optimizer=fastgd.SGD(lr=lr), batch_size=1, epochs=epochs,
                      shuffle=False, backend=backend)
    expected = np.append(peer.coef_, peer.intercept_)
    assert rel_err(theta_of(ours), expected) <= 1e-12


def test_tol_stops_at_the_same_epoch_as_sklearn(backend):
    """scikit-learn's rule: stop after n_iter_no_change epochs without a gain of tol."""
    from sklearn.linear_model import SGDRegressor

    X, y, _ = fastgd.make_regression(200, 4, noise=1.0, seed=2)
    lr, tol = 0.02, 1e-3
    peer = SGDRegressor(penalty=None, learning_rate="constant", eta0=lr, shuffle=False,
                        tol=tol, n_iter_no_change=3, max_iter=200)
    peer.fit(X, y)
    ours = fastgd.fit(X, y, optimizer=fastgd.SGD(lr=lr), batch_size=1, epochs=200,
                      shuffle=False, tol=tol, n_iter_no_change=3, backend=backend)
    assert 3 < peer.n_iter_ < 200
    assert ours.converged
    assert ours.n_epochs == peer.n_iter_
    assert rel_err(theta_of(ours), np.append(peer.coef_, peer.intercept_)) <= 1e-12


def test_full_batch_gd_converges_to_least_squares(backend):
    X, y, _ = fastgd.make_regression(200, 5, noise=0.5, seed=3)
    result = fastgd.fit(X, y, optimizer=fastgd.SGD(lr=0.5, momentum=0.5), epochs=300,
                        backend=backend)
    A = np.hstack([X, np.ones((X.shape[0], 1))])
    expected, *_ = np.linalg.lstsq(A, y, rcond=None)
    assert rel_err(theta_of(result), expected) <= 1e-9
    assert result.n_updates == 300


def test_logistic_gd_converges_to_sklearn_logistic_regression(backend):
    """Unpenalised logistic regression (``C=inf`` is scikit-learn's ``penalty=None``)."""
    from sklearn.linear_model import LogisticRegression

    X, y, _ = fastgd.make_classification(300, 3, seed=4)
    peer = LogisticRegression(C=np.inf, tol=1e-12, max_iter=10_000).fit(X, y)
    result = fastgd.fit(X, y, loss="logistic", optimizer=fastgd.SGD(lr=2.0, momentum=0.6),
                        epochs=600, backend=backend)
    expected = np.append(peer.coef_.ravel(), peer.intercept_)
    assert rel_err(theta_of(result), expected) <= 1e-6
    np.testing.assert_array_equal(result.predict(X), peer.predict(X))


# ----------------------------------------------------------------------------- optax


def optax_transform(name: str, optimizer, schedule):
    """The optax transformation with the same formula and hyper-parameters as ``optimizer``."""
    import optax

    o = optimizer
    if name in ("sgd", "momentum", "nesterov"):
        return optax.sgd(schedule, momentum=o.momentum or None, nesterov=o.nesterov)
    if name == "adagrad":
        return optax.adagrad(schedule, initial_accumulator_value=o.initial_accumulator_value,
                             eps=o.eps)
    if name == "rmsprop":
        return optax.rmsprop(schedule, decay=o.decay, eps=o.eps)
    if name == "adam":
        return optax.adam(schedule, b1=o.b1, b2=o.b2, eps=o.eps)
    if name == "adamw":  # fastgd decays the weights only, never the intercept
        return optax.adamw(schedule, b1=o.b1, b2=o.b2, eps=o.eps,
                           weight_decay=o.weight_decay, mask={"w": True, "b": False})
    raise AssertionError(name)


def optax_schedule(spec):
    """optax counts updates from 0, fastgd from 1: fastgd's lr at t is optax's at t − 1."""
    import optax

    if isinstance(spec, fastgd.InvScaling):
        return lambda count: spec.lr0 / (count + 1.0) ** spec.power_t
    if isinstance(spec, fastgd.Exponential):
        return optax.exponential_decay(spec.lr0, transition_steps=spec.decay_steps,
                                       decay_rate=spec.decay_rate)
    if isinstance(spec, fastgd.Cosine):
        return optax.cosine_decay_schedule(spec.lr0, decay_steps=spec.decay_steps,
                                           alpha=spec.final_fraction)
    return spec.lr0


@functools.cache
def optax_fit(loss: str, name: str, optimizer, batch_size: int, epochs: int, seed: int):
    """A minibatch training loop written the usual way with optax and jax.grad.

    Runs on the shared problem of ``loss``; cached, since it does not depend on the backend.
    """
    import jax
    import jax.numpy as jnp
    import optax

    def objective(params, xb, yb):
        p = xb @ params["w"] + params["b"]
        if loss == "logistic":
            per_sample = jnp.logaddexp(0.0, p) - yb * p
        else:
            per_sample = 0.5 * (p - yb) ** 2
        return jnp.mean(per_sample)

    X, y = problem(loss)
    with jax.enable_x64(True):
        tx = optax_transform(name, optimizer, optax_schedule(optimizer.lr))
        params = {"w": jnp.zeros(X.shape[1]), "b": jnp.zeros(())}
        state = tx.init(params)
        grad = jax.grad(objective)
        for order in ref.shuffled_orders(seed, X.shape[0], epochs, True):
            for k in range(0, X.shape[0], batch_size):
                idx = order[k : k + batch_size]
                g = grad(params, jnp.asarray(X[idx]), jnp.asarray(y[idx]))
                updates, state = tx.update(g, state, params)
                params = optax.apply_updates(params, updates)
        return np.append(np.asarray(params["w"]), float(params["b"]))


@pytest.mark.parametrize("loss", ["squared", "logistic"])
@pytest.mark.parametrize("name", OPTIMIZERS)
def test_optimizer_trajectory_equals_optax(backend, name, loss):
    X, y = problem(loss)
    optimizer = OPTIMIZERS[name]
    expected = optax_fit(loss, name, optimizer, BATCH_MODES["mini"], EPOCHS, SEED)
    result = fastgd.fit(X, y, loss=loss, optimizer=optimizer, batch_size=BATCH_MODES["mini"],
                        epochs=EPOCHS, seed=SEED, backend=backend)
    assert rel_err(theta_of(result), expected) <= 1e-10



@pytest.mark.parametrize("schedule", SCHEDULES.values(), ids=SCHEDULES.keys())
@pytest.mark.parametrize("name", ["momentum", "adam"])
def test_schedule_trajectory_equals_optax(backend, name, schedule):
    X, y = problem("squared")
    optimizer = dataclasses.replace(OPTIMIZERS[name], lr=schedule)
    expected = optax_fit("squared", name, optimizer, BATCH_MODES["mini"], EPOCHS, SEED)
    result = fastgd.fit(X, y, optimizer=optimizer, batch_size=BATCH_MODES["mini"],
                        epochs=EPOCHS, seed=SEED, backend=backend)
    assert rel_err(theta_of(result), expected) <= 1e-10
