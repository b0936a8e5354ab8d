"""The worst distance to scikit-learn's SGD over the drop-in test cases, every backend.

    python bench/sklearn_parity.py

Runs the cases of ``tests/test_pa.py`` (passive-aggressive rates), ``tests/test_oneclass.py``
(``GDOneClassSVM``) and ``tests/test_sparse_estimators.py`` (sparse X, the text corpus) and
prints, per feature and backend, the largest ``max|ours − theirs| / max|theirs|`` over
``coef_`` and the intercept (the one-class SVM: ``1 − offset_``, the intercept it trains);
``n_iter_`` and ``t_`` are asserted equal in every case. The tests assert 1e-10; this
prints what is actually reached.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import test_oneclass  # noqa: E402
import test_pa  # noqa: E402
import test_sparse_estimators  # noqa: E402
from helpers import rel_err  # noqa: E402
from sklearn.linear_model import (  # noqa: E402
    SGDClassifier,
    SGDOneClassSVM,
    SGDRegressor,
)

from fastgd import GDClassifier, GDOneClassSVM, GDRegressor  # noqa: E402

BACKENDS = ("numpy", "numba", "jax")


def _distance(ours, peer, intercept=lambda m: m.intercept_) -> float:
    assert ours.n_iter_ == peer.n_iter_ and ours.t_ == peer.t_
    return max(rel_err(ours.coef_, peer.coef_), rel_err(intercept(ours), intercept(peer)))


def passive_aggressive(backend: str) -> float:
    worst = 0.0
    for data, rate, shuffle, average, eta0, max_iter, weighted in test_pa.SKLEARN_CASES:
        X, y = test_pa._data(data)
        params = dict(learning_rate=rate, eta0=eta0, shuffle=shuffle, average=average,
                      max_iter=max_iter, random_state=4)  # fmt: skip
        weights = (np.random.default_rng(0).uniform(0.5, 2.5, X.shape[0]) if weighted
                   else None)  # fmt: skip
        if data == "diabetes":
            params["loss"] = "epsilon_insensitive"
            peer, ours = SGDRegressor(**params), GDRegressor(backend=backend, **params)
        else:
            peer, ours = SGDClassifier(**params), GDClassifier(backend=backend, **params)
        peer.fit(X, y, sample_weight=weights)
        ours.fit(X, y, sample_weight=weights)
        worst = max(worst, _distance(ours, peer))
    return worst


def one_class(backend: str) -> float:
    worst = 0.0
    for data, rate, eta0, shuffle, average, nu in test_oneclass.CASES:
        X = test_oneclass.DATA[data]
        params = dict(nu=nu, learning_rate=rate, eta0=eta0, shuffle=shuffle, average=average,
                      random_state=3)  # fmt: skip
        peer = SGDOneClassSVM(**params).fit(X)
        ours = GDOneClassSVM(backend=backend, **params).fit(X)
        worst = max(worst, _distance(ours, peer, intercept=lambda m: 1.0 - m.offset_))
    return worst


def sparse_text(backend: str) -> float:
    X, y = test_sparse_estimators.text_corpus()
    worst = 0.0
    for loss, penalty, rate, average, shuffle in test_sparse_estimators.CLASSIFIER_CASES:
        if backend != "numba" and penalty == "elasticnet":
            continue  # README's known limits: numba only
        params = dict(loss=loss, penalty=penalty, learning_rate=rate, eta0=0.05, alpha=1e-4,
                      average=average, shuffle=shuffle, random_state=1, tol=None, max_iter=4)
        for labels in (y == 0, y):
            peer = SGDClassifier(**params).fit(X, labels)
            ours = GDClassifier(backend=backend, **params).fit(X, labels)
            worst = max(worst, _distance(ours, peer))
    return worst


def main() -> None:
    warnings.simplefilter("ignore")  # scikit-learn's ConvergenceWarning at max_iter
    print(f"{'feature':<22}" + "".join(f"{b:>10}" for b in BACKENDS))
    for name, measure in (("pa1/pa2", passive_aggressive), ("GDOneClassSVM", one_class),
                          ("sparse X (text)", sparse_text)):  # fmt: skip
        print(f"{name:<22}" + "".join(f"{measure(b):>10.1e}" for b in BACKENDS), flush=True)


if __name__ == "__main__":
    main()
