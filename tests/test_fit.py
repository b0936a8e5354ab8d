"""Behaviour of ``fastgd.fit`` and ``FitResult``: batching, stopping, reporting, divergence."""

from __future__ import annotations

import math

import numpy as np
import pytest
import reference as ref
from helpers import as_list, as_rows, lowered, model_for, problem, rel_err, theta_of

import fastgd
import fastgd.backends.numpy as numpy_backend


@pytest.mark.parametrize(("batch_size", "per_epoch"), [(None, 1), (37, 1), (8, 5), (1, 37)])
def test_updates_per_epoch_follow_the_batch_size(backend, batch_size, per_epoch):
    X, y = problem("squared")
    result = fastgd.fit(X, y, batch_size=batch_size, epochs=3, seed=0, backend=backend)
    assert result.n_epochs == 3 and len(result.loss_history) == 3
    assert result.n_updates == 3 * per_epoch
    assert not result.converged
    assert result.backend == backend


def test_full_batch_equals_batch_size_n(backend):
    X, y = problem("huber")
    a = fastgd.fit(X, y, loss="huber", optimizer="adam", epochs=4, seed=1, backend=backend)
    b = fastgd.fit(X, y, loss="huber", optimizer="adam", epochs=4, batch_size=X.shape[0],
                   seed=2, backend=backend)
    np.testing.assert_array_equal(theta_of(a), theta_of(b))


def test_seed_makes_runs_repeatable_and_shuffling_matters(backend):
    X, y = problem("squared")
    kwargs = dict(optimizer="momentum", batch_size=4, epochs=2, backend=backend)
    a = fastgd.fit(X, y, seed=5, **kwargs)
    b = fastgd.fit(X, y, seed=np.random.default_rng(5), **kwargs)
    c = fastgd.fit(X, y, seed=6, **kwargs)
    d = fastgd.fit(X, y, shuffle=False, **kwargs)
    np.testing.assert_array_equal(theta_of(a), theta_of(b))
    assert rel_err(theta_of(a), theta_of(c)) > 1e-6
    assert rel_err(theta_of(a), theta_of(d)) > 1e-6


def test_initial_values_are_the_starting_point(backend):
    X, y = problem("squared")
    coef_init, intercept_init = np.array([0.3, -0.2, 0.1, 0.0, 1.0]), -0.7
    result = fastgd.fit(X, y, optimizer="adagrad", batch_size=5, epochs=2, seed=4,
                        coef_init=coef_init, intercept_init=intercept_init, backend=backend)
    orders = ref.shuffled_orders(4, X.shape[0], 2, True)
    theta, losses = ref.train(as_rows(X), as_list(y), [*coef_init, intercept_init], orders, 5,
                              model_for("squared"), lowered(fastgd.AdaGrad()))
    assert rel_err(theta_of(result), theta) <= 1e-10
    assert rel_err(result.loss_history, losses) <= 1e-10


def test_without_intercept_the_intercept_stays_zero(backend):
    X, y = problem("squared")
    result = fastgd.fit(X, y, optimizer="adamw", epochs=3, fit_intercept=False, backend=backend)
    assert result.intercept == 0.0
    np.testing.assert_allclose(result.predict(X), X @ result.coef, rtol=1e-15)


def first_stop(history, tol, n_iter_no_change):
    """Epoch (from 1) at which scikit-learn's rule stops, written out plainly."""
    best, bad = math.inf, 0
    for epoch, loss in enumerate(history, start=1):
        bad = bad + 1 if loss > best - tol else 0
        best = min(best, loss)
        if bad >= n_iter_no_change:
            return epoch
    return None


def test_tol_stops_after_n_iter_no_change_epochs_without_gain(backend):
    X, y = problem("squared")
    kwargs = dict(optimizer=fastgd.SGD(lr=0.02), batch_size=1, seed=0, backend=backend)
    full = fastgd.fit(X, y, epochs=60, **kwargs)
    tol = 1e-3
    stop = first_stop(full.loss_history, tol, 4)
    assert stop is not None and 4 < stop < 60
    early = fastgd.fit(X, y, epochs=60, tol=tol, n_iter_no_change=4, **kwargs)
    assert early.converged and early.n_epochs == stop
    assert early.n_updates == stop * X.shape[0]
    np.testing.assert_allclose(early.loss_history, full.loss_history[:stop], rtol=1e-12)


def test_tol_none_runs_every_epoch(backend):
    X, y = problem("squared")
    result = fastgd.fit(X, y, optimizer=fastgd.SGD(lr=0.02), epochs=12, tol=None,
                        backend=backend)
    assert result.n_epochs == 12 and not result.converged


def test_callback_sees_every_epoch_and_can_stop(backend):
    X, y = problem("squared")
    seen = []

    def callback(epoch, loss, coef, intercept):
        seen.append((epoch, loss, coef.copy(), intercept))
        return epoch == 3

    result = fastgd.fit(X, y, optimizer="adam", batch_size=8, epochs=10, seed=0,
                        callback=callback, backend=backend)
    assert [s[0] for s in seen] == [1, 2, 3]
    assert result.n_epochs == 3 and result.converged
    assert [s[1] for s in seen] == result.loss_history.tolist()
    np.testing.assert_array_equal(seen[-1][2], result.coef)
    assert seen[-1][3] == result.intercept
    assert isinstance(seen[0][3], float) and seen[0][2].dtype == np.float64
    plain = fastgd.fit(X, y, optimizer="adam", batch_size=8, epochs=3, seed=0, backend=backend)
    assert rel_err(theta_of(plain), theta_of(result)) <= 1e-12


def test_verbose_prints_one_line_per_epoch(backend, capsys):
    X, y = problem("squared")
    result = fastgd.fit(X, y, epochs=4, verbose=True, backend=backend)
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 4
    for epoch, (line, loss) in enumerate(zip(lines, result.loss_history, strict=True), 1):
        assert line.startswith(f"epoch {epoch}")
        assert float(line.split()[-1]) == pytest.approx(loss, rel=1e-9)


def test_progress_bar_goes_to_stderr(backend, capsys):
    X, y = problem("squared")
    fastgd.fit(X, y, epochs=5, progress=True, backend=backend)
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "5/5" in captured.err and "epoch" in captured.err


@pytest.mark.parametrize("per_epoch", [False, True], ids=["chunked", "per_epoch"])
def test_divergence_raises_with_epoch_and_history(backend, dtype, per_epoch):
    X, y = problem("squared", dtype)
    callback = (lambda *args: None) if per_epoch else None
    with pytest.raises(fastgd.DivergenceError) as info:
        fastgd.fit(X, y, optimizer=fastgd.SGD(lr=50.0), epochs=400, callback=callback,
                   backend=backend)
    err = info.value
    assert 2 <= err.epoch <= 400
    assert err.lr == 50.0
    assert len(err.loss_history) == err.epoch - 1
    assert np.isfinite(err.loss_history).all()
    assert np.all(np.diff(err.loss_history) > 0)  # it really was blowing up
    assert f"epoch {err.epoch}" in str(err) and "50" in str(err)
    assert isinstance(err, FloatingPointError)


def test_divergence_epoch_does_not_depend_on_chunking(backend):
    X, y = problem("squared")
    epochs = []
    for callback in (None, lambda *args: None):
        with pytest.raises(fastgd.DivergenceError) as info:
            fastgd.fit(X, y, optimizer=fastgd.SGD(lr=50.0), epochs=400, callback=callback,
                       backend=backend)
        epochs.append(info.value.epoch)
    assert epochs[0] == epochs[1]


def test_fit_result_predicts(backend):
    X, y = problem("squared")
    result = fastgd.fit(X, y, epochs=5, backend=backend)
    assert result.coef.shape == (X.shape[1],)
    assert isinstance(result.intercept, float)
    assert result.loss_history.shape == (5,) and result.loss_history.dtype == np.float64
    assert result.fit_time > 0
    np.testing.assert_allclose(result.predict(X), X @ result.coef + result.intercept,
                               rtol=1e-14)
    np.testing.assert_allclose(result.decision_function(X[:3]), result.predict(X[:3]))


def test_logistic_fit_result_predicts_labels_and_probabilities(backend):
    X, y = problem("logistic")
    result = fastgd.fit(X, y, loss="logistic", optimizer=fastgd.SGD(lr=1.0), epochs=50,
                        backend=backend)
    p = X @ result.coef + result.intercept
    np.testing.assert_array_equal(result.predict(X), (p > 0).astype(np.float64))
    np.testing.assert_allclose(result.predict_proba(X), 1 / (1 + np.exp(-p)), rtol=1e-12)
    assert np.mean(result.predict(X) == y) > 0.7


def test_loss_history_decreases_for_gentle_full_batch_gd(backend):
    X, y = problem("huber")
    result = fastgd.fit(X, y, loss="huber", optimizer=fastgd.SGD(lr=0.1), epochs=30,
                        backend=backend)
    assert np.all(np.diff(result.loss_history) < 0)


def test_check_grad_is_small_for_every_loss(backend):
    X, y = problem("logistic")
    coef = np.linspace(-1, 1, X.shape[1]) + 0.05
    for loss in ("squared", "huber", "logistic"):
        err = fastgd.check_grad(X, y, coef, 0.3, loss=loss, penalty="elasticnet", alpha=0.1,
                                backend=backend)
        assert err < 1e-7


def test_check_grad_catches_a_wrong_gradient(monkeypatch):
    """check_grad must notice when the analytic gradient is not the objective's derivative."""
    X, y = problem("squared")
    coef = np.linspace(-1, 1, X.shape[1])
    assert fastgd.check_grad(X, y, coef, 0.3) < 1e-7
    right = numpy_backend.loss_grad

    def off_by_a_tenth(data, theta, model):
        value, grad = right(data, theta, model)
        return value, grad * 1.1

    monkeypatch.setattr(numpy_backend, "loss_grad", off_by_a_tenth)
    assert fastgd.check_grad(X, y, coef, 0.3) == pytest.approx(0.1, rel=1e-4)


def test_check_grad_without_intercept_ignores_the_intercept(backend):
    X, y = problem("squared")
    coef = np.linspace(-1, 1, X.shape[1])
    assert fastgd.check_grad(X, y, coef, 0.0, fit_intercept=False, backend=backend) < 1e-7


@pytest.mark.parametrize("batch_size", [None, 1], ids=["full", "sgd"])
@pytest.mark.parametrize("name", ["sgd", "momentum", "adam"])
def test_a_single_sample_and_feature(backend, name, batch_size):
    """n = 1, d = 1: one update per epoch, whatever the batch mode."""
    X, y = np.array([[2.0]]), np.array([3.0])
    optimizer = {"sgd": fastgd.SGD(lr=0.1), "momentum": fastgd.SGD(lr=0.1, momentum=0.5),
                 "adam": fastgd.Adam(lr=0.1)}[name]
    result = fastgd.fit(X, y, optimizer=optimizer, batch_size=batch_size, epochs=3, seed=0,
                        backend=backend)
    theta, losses = ref.train([[2.0]], [3.0], [0.0, 0.0], [[0]] * 3, 1, model_for("squared"),
                              lowered(optimizer))
    assert result.n_updates == 3
    assert rel_err(theta_of(result), theta) <= 1e-12
    assert rel_err(result.loss_history, losses) <= 1e-12


def test_the_tol_rule_watches_the_monitor_instead_of_the_loss(backend):
    X, y, _ = fastgd.make_regression(64, 3, seed=1)
    seen = []

    def flat_score(coef, intercept):
        seen.append((coef.copy(), intercept))
        return 0.0  # never improves: stop after n_iter_no_change + 1 epochs

    res = fastgd.fit(X, y, lr=0.05, epochs=50, tol=1e-9, n_iter_no_change=3,
                     monitor=flat_score, backend=backend)  # fmt: skip
    assert res.n_epochs == 4 and res.converged and len(seen) == 4
    np.testing.assert_array_equal(seen[-1][0], res.coef)  # called with the epoch's params
    free = fastgd.fit(X, y, lr=0.05, epochs=50, tol=1e-9, n_iter_no_change=3, backend=backend)
    assert free.n_epochs > 4  # the loss itself kept improving
    with pytest.raises(TypeError, match="monitor must be callable"):
        fastgd.fit(X, y, monitor=1.0)


def test_a_resumed_state_is_copied_unless_handed_over(backend):
    # fit trains on a copy of a (step, slots) pair, leaving the caller's slots as they
    # were; an OwnedState (the estimators' own state between partial_fit calls) is
    # trained on in place where the backend updates in place (numba), with the same result
    from fastgd.plan import OwnedState

    X, y, _ = fastgd.make_regression(64, 5, seed=3)
    args = dict(optimizer="adam", batch_size=8, epochs=2, shuffle=False, backend=backend)
    first = fastgd.fit(X, y, **args)
    step, slots = first.optimizer_state
    slots = np.array(slots)
    resume = dict(coef_init=first.coef, intercept_init=first.intercept)
    kept = slots.copy()
    copied = fastgd.fit(X, y, optimizer_state=(step, kept), **resume, **args)
    np.testing.assert_array_equal(kept, slots)
    handed = fastgd.fit(X, y, optimizer_state=OwnedState(step, kept), **resume, **args)
    np.testing.assert_array_equal(theta_of(handed), theta_of(copied))
    np.testing.assert_array_equal(np.asarray(handed.optimizer_state[1]),
                                  np.asarray(copied.optimizer_state[1]))  # fmt: skip
    if backend == "numba":
        assert not np.array_equal(kept, slots)  # trained in place
    # the parameters handed over too, in place of coef_init and intercept_init
    theta = np.append(first.coef, first.intercept).reshape(-1, 1)
    whole = fastgd.fit(X, y, optimizer_state=OwnedState(step, slots.copy(), theta), **args)
    np.testing.assert_array_equal(theta_of(whole), theta_of(copied))
    if backend == "numba":
        np.testing.assert_array_equal(theta.ravel(), theta_of(whole))  # trained in place
    with pytest.raises(ValueError, match="replaces coef_init"):
        fastgd.fit(X, y, optimizer_state=OwnedState(step, slots, theta), **resume, **args)
