"""The estimators on sparse X: scikit-learn's model on the same CSR.

scikit-learn's SGD on a sparse X differs from its dense path in one way a user sees: the
intercept's updates are damped by 0.01 (its ``SPARSE_INTERCEPT_DECAY``). The estimators
pass that to :func:`fastgd.fit` on sparse X. Compared on a real text corpus (docstrings of
Python's standard library, hashed) and on data sets shipped with scikit-learn made sparse;
``coef_``, ``intercept_``, ``n_iter_`` and ``t_`` as in the dense drop-in tests.
"""

from __future__ import annotations

import importlib
import inspect

import numpy as np
import pytest
import scipy.sparse as sp
from helpers import rel_err
from test_estimators import assert_same_model, quietly
from test_sklearn_dropin import breast_cancer, diabetes

import fastgd

pytest.importorskip("sklearn")
from sklearn.feature_extraction.text import HashingVectorizer  # noqa: E402
from sklearn.linear_model import SGDClassifier, SGDRegressor  # noqa: E402

#: Modules whose docstrings make the corpus; a document's class is its module's group.
_GROUPS = (
    ("json", "csv", "pickle", "configparser", "plistlib", "shelve"),
    ("email.message", "http.client", "http.server", "urllib.request", "urllib.parse",
     "smtplib", "ftplib"),
    ("unittest.case", "logging", "logging.handlers", "doctest", "pdb"),
)


def _docstrings(module_name: str) -> list[str]:
    """The docstrings (over 40 characters) of a module's functions, classes and their
    methods, in a fixed order."""
    module = importlib.import_module(module_name)
    docs = []
    for _, obj in sorted(vars(module).items()):
        if getattr(obj, "__module__", None) != module.__name__:
            continue
        members = [obj] + ([m for _, m in sorted(vars(obj).items()) if callable(m)]
                           if inspect.isclass(obj) else [])  # fmt: skip
        docs += [m.__doc__ for m in members if isinstance(m.__doc__, str)
                 and len(m.__doc__) > 40]  # fmt: skip
    return docs


def text_corpus(dtype=np.float64) -> tuple[sp.csr_matrix, np.ndarray]:
    """Docstrings of the standard library, hashed to 2**12 l2-normalised features; the
    class (0, 1, 2) is the group of the module a docstring comes from."""
    texts, labels = [], []
    for label, group in enumerate(_GROUPS):
        for name in group:
            docs = _docstrings(name)
            texts += docs
            labels += [label] * len(docs)
    vectorizer = HashingVectorizer(n_features=2**12, alternate_sign=False, dtype=dtype)
    return vectorizer.transform(texts).tocsr(), np.array(labels)


def sparsified(X: np.ndarray) -> sp.csr_matrix:
    """X with its small entries set to 0, as a CSR (about half the entries stored)."""
    X = X.copy()
    X[np.abs(X) < 0.6] = 0.0
    return sp.csr_matrix(X)


def _corpus_is_real():
    X, y = text_corpus()
    assert X.shape[0] > 150 and np.bincount(y).min() > 20
    assert X.nnz / X.shape[0] > 10  # real documents, not one-word ones


def test_the_corpus_is_real_text():
    _corpus_is_real()


#: Without elastic net and averaging together (README's known limits: scikit-learn's
#: averaged weights absorb the l1 truncation in a way fastgd does not reproduce yet) and
#: without modified_huber at the ``optimal`` rate shuffled, a chaotic trajectory on this
#: corpus: see test_chaotic_case_stays_within_scikit_learns_own_spread.
CLASSIFIER_CASES = [
    (loss, penalty, rate, average, shuffle)
    for loss in ("hinge", "log_loss", "modified_huber")
    for penalty in (None, "l2", "elasticnet")
    for rate in ("constant", "optimal")
    for average in (False, True)
    for shuffle in (False, True)
    if not (penalty == "elasticnet" and average)
    and not (loss == "modified_huber" and rate == "optimal" and shuffle)
]


@pytest.mark.parametrize(("loss", "penalty", "rate", "average", "shuffle"), CLASSIFIER_CASES)
def test_text_classifier_equals_sgdclassifier_on_the_same_csr(loss, penalty, rate, average,
                                                               shuffle):
    X, y = text_corpus()
    params = dict(loss=loss, penalty=penalty, learning_rate=rate, eta0=0.05, alpha=1e-4,
                  average=average, shuffle=shuffle, random_state=1, tol=None, max_iter=4)
    for labels in (y == 0, y):  # binary, then one-vs-rest over 3 classes
        peer = quietly(SGDClassifier(**params), X, labels)
        ours = fastgd.GDClassifier(backend="numba", **params).fit(X, labels)
        assert_same_model(ours, peer)


@pytest.mark.parametrize("penalty", [None, "l2", "elasticnet"])
@pytest.mark.parametrize("labels", ["binary", "one_vs_rest"])
def test_chaotic_case_stays_within_scikit_learns_own_spread(penalty, labels):
    """modified_huber at the ``optimal`` rate, shuffled, on the corpus: scikit-learn's own
    coefficients move by up to 1e-1 (relative) after 2 epochs when a stored value in two
    moves by 1e-15 (measured: 1e-7 to 1.5e-1 over these six cases). fastgd is held within
    the largest of three such perturbations of scikit-learn's run."""
    X, y = text_corpus()
    y = y == 0 if labels == "binary" else y
    params = dict(loss="modified_huber", penalty=penalty, learning_rate="optimal",
                  alpha=1e-4, random_state=1, tol=None, max_iter=2)
    peer = quietly(SGDClassifier(**params), X, y)
    spread = 0.0
    for factor in (1 + 1e-15, 1 - 1e-15, 1 + 2e-15):
        moved = X.copy()
        moved.data[::2] *= factor
        spread = max(spread, rel_err(quietly(SGDClassifier(**params), moved, y).coef_,
                                     peer.coef_))  # fmt: skip
    ours = fastgd.GDClassifier(backend="numba", **params).fit(X, y)
    assert rel_err(ours.coef_, peer.coef_) <= spread
    assert ours.n_iter_ == peer.n_iter_ and ours.t_ == peer.t_


@pytest.mark.parametrize("backend", ["numpy", "jax"])
@pytest.mark.parametrize("average", [False, True])
@pytest.mark.parametrize("loss", ["hinge", "log_loss"])
def test_other_backends_equal_sgdclassifier_on_the_same_csr(backend, loss, average):
    X, y = text_corpus()
    params = dict(loss=loss, penalty="l2", average=average, random_state=2, tol=None,
                  max_iter=3)
    peer = quietly(SGDClassifier(**params), X, y)
    ours = fastgd.GDClassifier(backend=backend, **params).fit(X, y)
    assert_same_model(ours, peer)


@pytest.mark.parametrize(("penalty", "average"), [(None, False), ("l2", False),
                                                  ("elasticnet", False), (None, True),
                                                  ("l2", True)])  # fmt: skip
def test_regressor_equals_sgdregressor_on_the_same_csr(penalty, average):
    X, y = diabetes()
    Xs = sparsified(X)
    params = dict(loss="squared_error", penalty=penalty, average=average, random_state=0,
                  tol=None, max_iter=5, eta0=0.005)
    peer = quietly(SGDRegressor(**params), Xs, y)
    ours = fastgd.GDRegressor(backend="numba", **params).fit(Xs, y)
    assert_same_model(ours, peer)


def test_the_intercept_is_damped_on_sparse_x_only():
    X, y = breast_cancer()
    Xs = sparsified(X)
    dense = sparsified(X).toarray()
    params = dict(random_state=0, tol=None, max_iter=3)
    on_sparse = fastgd.GDClassifier(backend="numba", **params).fit(Xs, y)
    on_dense = fastgd.GDClassifier(backend="numba", **params).fit(dense, y)
    assert_same_model(on_sparse, quietly(SGDClassifier(**params), Xs, y))
    assert_same_model(on_dense, quietly(SGDClassifier(**params), dense, y))
    assert abs(on_sparse.intercept_[0] - on_dense.intercept_[0]) > 1e-3


def test_predictions_on_sparse_equal_those_on_dense():
    X, y = text_corpus()
    model = fastgd.GDClassifier(loss="log_loss", backend="numba", random_state=0,
                                max_iter=3, tol=None).fit(X, y)
    dense = X.toarray()
    np.testing.assert_allclose(model.decision_function(X), model.decision_function(dense),
                               rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(model.predict(X), model.predict(dense))
    np.testing.assert_allclose(model.predict_proba(X), model.predict_proba(dense), rtol=1e-12)


def test_partial_fit_on_sparse_equals_sgdclassifier():
    X, y = text_corpus()
    params = dict(random_state=0, alpha=1e-4)
    peer, ours = SGDClassifier(**params), fastgd.GDClassifier(backend="numba", **params)
    for half in np.array_split(np.arange(X.shape[0]), 2):
        peer.partial_fit(X[half], y[half], classes=np.unique(y))
        ours.partial_fit(X[half], y[half], classes=np.unique(y))
    assert_same_model(ours, peer)


def test_other_sparse_formats_and_float32_are_taken():
    X, y = text_corpus()
    reference = fastgd.GDClassifier(backend="numba", random_state=0, max_iter=2,
                                    tol=None).fit(X, y)  # fmt: skip
    for converted in (X.tocsc(), X.tocoo(), sp.csr_array(X)):
        model = fastgd.GDClassifier(backend="numba", random_state=0, max_iter=2,
                                    tol=None).fit(converted, y)  # fmt: skip
        np.testing.assert_array_equal(model.coef_, reference.coef_)
    X32 = X.astype(np.float32)
    single = fastgd.GDClassifier(backend="numba", random_state=0, max_iter=2,
                                 tol=None).fit(X32, y)  # fmt: skip
    dense = fastgd.GDClassifier(backend="numba", random_state=0, max_iter=2,
                                tol=None).fit(X32.toarray(), y)  # fmt: skip
    assert single.coef_.dtype == dense.coef_.dtype
    np.testing.assert_allclose(single.coef_, reference.coef_, rtol=1e-3, atol=1e-4)
