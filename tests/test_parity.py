"""Cross-backend parity: every backend walks the numpy backend's trajectory.

The sample order of every epoch is drawn once in numpy from the seed and handed to the
backend, so for the same seed all backends take the same batches in the same order and
must end at the same parameters up to rounding.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
from helpers import (
    ALPHA,
    BACKENDS,
    BATCH_MODES,
    EPOCHS,
    F32_EPS,
    K_MULTI,
    L1_RATIO,
    LOSSES,
    NEW_LOSSES,
    OPTIMIZERS,
    PENALTIES,
    covering_cases,
    problem,
    rel_err,
    sample_weights,
    theta_of,
)

import fastgd

OTHERS = [name for name in BACKENDS if name != "numpy"]

#: float64 tolerance per backend (issues 3 and 4): numba's loops and jax's XLA reductions
#: sum in other orders than numpy's BLAS; jax's differentiated loss adds a few roundings.
F64_RTOL = {"numba": 1e-10, "jax": 1e-9}
#: float32: both runs sit within ~7·eps of the exact trajectory on this matrix (see
#: test_trajectories), so two backends differ by at most twice that plus the reordering of
#: the 37-term means; 250·eps (3e-5) keeps a wide margin against noise and is still far
#: below what any wrong formula produces.
F32_RTOL = 250 * F32_EPS
SEED = 11


@functools.cache
def run(backend, loss, penalty, name, mode, shuffle, dtype_name):
    """One fit of the shared small problem; cached so numpy runs once per configuration."""
    X, y = problem(loss, np.dtype(dtype_name).type)
    result = fastgd.fit(
        X, y, loss=loss, optimizer=OPTIMIZERS[name], batch_size=BATCH_MODES[mode],
        epochs=EPOCHS, penalty=penalty, alpha=ALPHA, l1_ratio=L1_RATIO, shuffle=shuffle,
        seed=SEED, backend=backend,
    )
    assert result.coef.dtype == np.dtype(dtype_name)
    return theta_of(result), result.loss_history.copy(), result.n_updates


@pytest.mark.parametrize("shuffle", [True, False], ids=["shuffle", "ordered"])
@pytest.mark.parametrize("mode", BATCH_MODES, ids=str)
@pytest.mark.parametrize("name", OPTIMIZERS)
@pytest.mark.parametrize("penalty", PENALTIES, ids=str)
@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("other", OTHERS)
def test_float64_parity_with_numpy(other, loss, penalty, name, mode, shuffle):
    theta, losses, updates = run(other, loss, penalty, name, mode, shuffle, "float64")
    ref_theta, ref_losses, ref_updates = run("numpy", loss, penalty, name, mode, shuffle,
                                             "float64")
    assert updates == ref_updates
    assert rel_err(theta, ref_theta) <= F64_RTOL.get(other, 1e-10)
    assert rel_err(losses, ref_losses) <= F64_RTOL.get(other, 1e-10)


@pytest.mark.parametrize(("loss", "name", "mode"), covering_cases())
@pytest.mark.parametrize("other", OTHERS)
def test_float32_parity_with_numpy(other, loss, name, mode):
    theta, losses, _ = run(other, loss, "elasticnet", name, mode, True, "float32")
    ref_theta, ref_losses, _ = run("numpy", loss, "elasticnet", name, mode, True, "float32")
    assert rel_err(theta, ref_theta) <= F32_RTOL
    assert rel_err(losses, ref_losses) <= F32_RTOL


@pytest.mark.parametrize("other", OTHERS)
def test_parity_over_many_chunks(other):
    """Python takes control after every epoch (a callback): state must carry over exactly."""
    X, y = problem("squared")
    kwargs = dict(optimizer=OPTIMIZERS["adam"], batch_size=BATCH_MODES["mini"], epochs=4,
                  penalty="l1", alpha=ALPHA, seed=SEED)
    stepped = fastgd.fit(X, y, backend=other, callback=lambda *args: None, **kwargs)
    whole = fastgd.fit(X, y, backend="numpy", **kwargs)
    assert rel_err(theta_of(stepped), theta_of(whole)) <= F64_RTOL.get(other, 1e-10)
    assert rel_err(stepped.loss_history, whole.loss_history) <= F64_RTOL.get(other, 1e-10)


def new_loss_cases() -> list[tuple[str, int | None, bool, str, str]]:
    """(loss, outputs, weighted, batch mode, optimizer) for every new loss x K x weights x
    mode; the optimizers cycle along the list (72 cases, 7 optimizers), so each meets
    every loss, and K = None is a 1-D y (K = 1; for multinomial 2 classes)."""
    names = list(OPTIMIZERS)
    cases = [
        (loss, k, weighted, mode)
        for loss in NEW_LOSSES
        for k in (None, K_MULTI)
        for weighted in (False, True)
        for mode in BATCH_MODES
    ]
    return [(*case, names[i % len(names)]) for i, case in enumerate(cases)]


@functools.cache
def run_new(backend, loss, n_outputs, weighted, mode, name, dtype_name="float64"):
    if loss == "multinomial":  # 1-D labels either way: 2 or 3 classes
        X, y = problem(loss, np.dtype(dtype_name).type, n_outputs=n_outputs or 2)
    else:
        X, y = problem(loss, np.dtype(dtype_name).type, n_outputs=n_outputs)
    result = fastgd.fit(
        X, y, loss=loss, optimizer=OPTIMIZERS[name], batch_size=BATCH_MODES[mode],
        epochs=EPOCHS, penalty="elasticnet", alpha=ALPHA, l1_ratio=L1_RATIO, seed=SEED,
        sample_weight=sample_weights(X.shape[0]) if weighted else None, backend=backend,
    )
    assert result.coef.dtype == np.dtype(dtype_name)
    theta = np.vstack([result.coef.reshape(X.shape[1], -1), np.reshape(result.intercept, (1, -1))])
    return theta, result.loss_history.copy()


@pytest.mark.parametrize(("loss", "n_outputs", "weighted", "mode", "name"), new_loss_cases())
@pytest.mark.parametrize("other", OTHERS)
def test_new_losses_outputs_and_weights_parity(other, loss, n_outputs, weighted, mode, name):
    theta, losses = run_new(other, loss, n_outputs, weighted, mode, name)
    ref_theta, ref_losses = run_new("numpy", loss, n_outputs, weighted, mode, name)
    assert rel_err(theta, ref_theta) <= F64_RTOL.get(other, 1e-10)
    assert rel_err(losses, ref_losses) <= F64_RTOL.get(other, 1e-10)


@pytest.mark.parametrize("loss", NEW_LOSSES)
@pytest.mark.parametrize("other", OTHERS)
def test_new_losses_float32_parity(other, loss):
    theta, losses = run_new(other, loss, K_MULTI, True, "mini", "adam", "float32")
    ref_theta, ref_losses = run_new("numpy", loss, K_MULTI, True, "mini", "adam", "float32")
    assert rel_err(theta, ref_theta) <= F32_RTOL
    assert rel_err(losses, ref_losses) <= F32_RTOL
