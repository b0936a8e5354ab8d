"""Whole training runs (``fastgd.fit``) of every backend against the oracle's training loop."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import reference as ref
from helpers import (
    ALPHA,
    BATCH_MODES,
    EPOCHS,
    F32_EPS,
    L1_RATIO,
    LOSSES,
    OPTIMIZERS,
    PENALTIES,
    SCHEDULES,
    as_list,
    as_rows,
    covering_cases,
    lowered,
    model_for,
    problem,
    rel_err,
    theta_of,
)

import fastgd

SEED = 7


def oracle_fit(X, y, *, loss, optimizer, batch_size, penalty, shuffle, epochs=EPOCHS,
               fit_intercept=True, seed=SEED):
    """The oracle's version of ``fastgd.fit`` from zero weights."""
    n, d = X.shape
    orders = ref.shuffled_orders(seed, n, epochs, shuffle)
    model = model_for(loss, penalty, fit_intercept=fit_intercept)
    theta, losses = ref.train(
        as_rows(X), as_list(y), [0.0] * (d + 1), orders, batch_size or n, model,
        lowered(optimizer),
    )
    return np.array(theta), np.array(losses)


def fastgd_fit(X, y, *, loss, optimizer, batch_size, penalty, shuffle, backend, epochs=EPOCHS,
               fit_intercept=True, seed=SEED):
    return fastgd.fit(
        X, y, loss=loss, optimizer=optimizer, batch_size=batch_size, epochs=epochs,
        penalty=penalty, alpha=ALPHA, l1_ratio=L1_RATIO, shuffle=shuffle, seed=seed,
        fit_intercept=fit_intercept, backend=backend,
    )


@pytest.mark.parametrize("mode", BATCH_MODES, ids=str)
@pytest.mark.parametrize("name", OPTIMIZERS)
@pytest.mark.parametrize("penalty", PENALTIES, ids=str)
@pytest.mark.parametrize("loss", LOSSES)
def test_trajectory_matches_oracle_float64(backend, loss, penalty, name, mode):
    X, y = problem(loss)
    kwargs = dict(loss=loss, optimizer=OPTIMIZERS[name], batch_size=BATCH_MODES[mode],
                  penalty=penalty, shuffle=True)
    result = fastgd_fit(X, y, backend=backend, **kwargs)
    theta, losses = oracle_fit(X, y, **kwargs)
    assert result.coef.dtype == np.float64
    assert rel_err(theta_of(result), theta) <= 1e-10
    assert rel_err(result.loss_history, losses) <= 1e-10


#: float32 runs against the float64 oracle (fed the same float32-rounded data). Each of
#: the up to 111 updates rounds a few times at 6e-8 relative; the steps here are
#: contractions, so the errors add up rather than grow, and the numpy backend ends within
#: 7·eps of the oracle on every run of this matrix. 250·eps (3e-5) leaves room for other
#: summation orders; any wrong formula is off by orders of magnitude more.
F32_TRAJECTORY_RTOL = 250 * F32_EPS


@pytest.mark.parametrize(("loss", "name", "mode"), covering_cases())
def test_trajectory_matches_oracle_float32(backend, loss, name, mode):
    X, y = problem(loss, np.float32)
    kwargs = dict(loss=loss, optimizer=OPTIMIZERS[name], batch_size=BATCH_MODES[mode],
                  penalty="elasticnet", shuffle=True)
    result = fastgd_fit(X, y, backend=backend, **kwargs)
    theta, losses = oracle_fit(X, y, **kwargs)
    assert result.coef.dtype == np.float32
    assert rel_err(theta_of(result), theta) <= F32_TRAJECTORY_RTOL
    assert rel_err(result.loss_history, losses) <= F32_TRAJECTORY_RTOL


@pytest.mark.parametrize("mode", BATCH_MODES, ids=str)
@pytest.mark.parametrize("loss", LOSSES)
def test_unshuffled_trajectory_without_intercept_matches_oracle(backend, loss, mode):
    X, y = problem(loss)
    kwargs = dict(loss=loss, optimizer=OPTIMIZERS["nesterov"], batch_size=BATCH_MODES[mode],
                  penalty="l2", shuffle=False, fit_intercept=False)
    result = fastgd_fit(X, y, backend=backend, **kwargs)
    theta, losses = oracle_fit(X, y, **kwargs)
    assert result.intercept == 0.0
    assert rel_err(theta_of(result), theta) <= 1e-10
    assert rel_err(result.loss_history, losses) <= 1e-10



@pytest.mark.parametrize("schedule", SCHEDULES.values(), ids=SCHEDULES.keys())
@pytest.mark.parametrize("name", ["sgd", "adam"])
def test_schedule_trajectory_matches_oracle(backend, name, schedule):
    X, y = problem("huber")
    optimizer = dataclasses.replace(OPTIMIZERS[name], lr=schedule)
    kwargs = dict(loss="huber", optimizer=optimizer, batch_size=BATCH_MODES["mini"],
                  penalty=None, shuffle=True)
    result = fastgd_fit(X, y, backend=backend, **kwargs)
    theta, losses = oracle_fit(X, y, **kwargs)
    assert rel_err(theta_of(result), theta) <= 1e-10
    assert rel_err(result.loss_history, losses) <= 1e-10
