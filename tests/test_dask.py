"""Data beyond one machine's memory on an existing engine: dask-ml's ``Incremental``.

``Incremental`` calls ``partial_fit`` block after block, on the workers of a dask cluster,
shipping the (pickled) estimator from task to task. The test starts a ``LocalCluster``
of one worker process on the loopback interface, bounds every wait, and closes it.
"""

from __future__ import annotations

import numpy as np
import pytest
from helpers import rel_err

import fastgd

da = pytest.importorskip("dask.array")
pytest.importorskip("dask_ml")
distributed = pytest.importorskip("distributed")

BLOCK = 40


def wine():
    from sklearn.datasets import load_wine

    X, y = load_wine(return_X_y=True)
    return (X - X.mean(axis=0)) / X.std(axis=0), y


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_incremental_on_a_local_cluster_equals_sequential_partial_fit(backend):
    import dask
    from dask_ml.wrappers import Incremental

    X, y = wine()
    classes = np.unique(y)
    params = dict(loss="log_loss", optimizer="adam", learning_rate="constant", eta0=0.02,
                  batch_size=8, shuffle=False, backend=backend)
    timeouts = {"distributed.comm.timeouts.connect": "20s", "distributed.comm.timeouts.tcp": "20s",
                "distributed.deploy.lost-worker-timeout": "20s"}
    with (
        dask.config.set(timeouts),
        distributed.LocalCluster(
            n_workers=1, threads_per_worker=1, processes=True, host="127.0.0.1",
            dashboard_address=None, death_timeout=30,
        ) as cluster,
        distributed.Client(cluster, timeout="30s") as client,
    ):
        Xd = da.from_array(X, chunks=(BLOCK, X.shape[1]))
        yd = da.from_array(y, chunks=BLOCK)
        model = Incremental(fastgd.GDClassifier(**params), shuffle_blocks=False)
        model.fit(Xd, yd, classes=classes)
        fitted = model.estimator_
        assert client.scheduler_info()["workers"]  # it ran on the cluster's worker
    sequential = fastgd.GDClassifier(**params)
    for start in range(0, len(y), BLOCK):
        sequential.partial_fit(X[start : start + BLOCK], y[start : start + BLOCK],
                               classes=classes)
    assert fitted.t_ == sequential.t_
    assert rel_err(fitted.coef_, sequential.coef_) <= 1e-12
    assert rel_err(fitted.intercept_, sequential.intercept_) <= 1e-12
    assert (fitted.predict(X) == y).mean() > 0.9


def test_incremental_on_sparse_blocks_equals_sequential_partial_fit():
    """dask arrays whose blocks are scipy.sparse CSR matrices (text features, say): each
    block reaches ``partial_fit`` sparse, and the model is that of sequential calls on
    the same CSR blocks. The synchronous scheduler: the blocks' path, not the cluster's
    (tested above)."""
    import dask
    import scipy.sparse as sp
    from dask_ml.wrappers import Incremental

    X, y = wine()
    X[np.abs(X) < 0.5] = 0.0
    Xs = sp.csr_matrix(X)
    classes = np.unique(y)
    params = dict(loss="log_loss", learning_rate="constant", eta0=0.02, shuffle=False,
                  backend="numpy")
    with dask.config.set(scheduler="synchronous"):
        Xd = da.from_array(Xs, chunks=(BLOCK, X.shape[1]), asarray=False)
        assert sp.issparse(Xd.blocks[0].compute())
        model = Incremental(fastgd.GDClassifier(**params), shuffle_blocks=False)
        model.fit(Xd, da.from_array(y, chunks=BLOCK), classes=classes)
    sequential = fastgd.GDClassifier(**params)
    for start in range(0, len(y), BLOCK):
        sequential.partial_fit(Xs[start : start + BLOCK], y[start : start + BLOCK],
                               classes=classes)
    fitted = model.estimator_
    assert fitted.t_ == sequential.t_ == len(y) + 1
    assert rel_err(fitted.coef_, sequential.coef_) <= 1e-12
    assert rel_err(fitted.intercept_, sequential.intercept_) <= 1e-12
