"""Chunked epochs (``memory_budget``): data larger than the budget, walked chunk by chunk."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import MINI, OPTIMIZERS, problem, rel_err, sample_weights

import fastgd
from fastgd import chunks

SEED = 21


def budget_for(X, y, rows: int, weighted: bool = False) -> int:
    """A memory budget of exactly ``rows`` rows of X, its targets and weights."""
    outputs = 1 if y.ndim == 1 else y.shape[1]
    return rows * X.itemsize * (X.shape[1] + outputs + weighted)


def fit(X, y, backend, **kwargs):
    defaults = dict(optimizer=OPTIMIZERS["adam"], epochs=3, penalty="l2", alpha=0.05,
                    seed=SEED, backend=backend)
    return fastgd.fit(X, y, **{**defaults, **kwargs})


def params(result) -> np.ndarray:
    return np.append(np.ravel(result.coef), result.intercept)


@pytest.mark.parametrize(("loss", "n_outputs", "weighted"), [
    ("squared", None, False), ("hinge", 3, True), ("multinomial", None, True),
    ("huber", None, True),
])
def test_full_batch_with_chunks_equals_full_batch_without(backend, loss, n_outputs, weighted):
    X, y = problem(loss, n_outputs=n_outputs)
    w = sample_weights(X.shape[0]) if weighted else None
    whole = fit(X, y, backend, loss=loss, sample_weight=w)
    chunked = fit(X, y, backend, loss=loss, sample_weight=w,
                  memory_budget=budget_for(X, y if loss != "multinomial" else y[:, None], 10,
                                           weighted))
    assert rel_err(params(chunked), params(whole)) <= 1e-10
    assert rel_err(chunked.loss_history, whole.loss_history) <= 1e-10
    assert chunked.n_updates == whole.n_updates == 3


def test_unshuffled_chunks_of_whole_batches_equal_no_chunks(backend):
    """Chunks of 16 rows cut the 37 rows into the same batches of 8 as one pass does."""
    X, y = problem("squared")
    whole = fit(X, y, backend, batch_size=MINI, shuffle=False)
    chunked = fit(X, y, backend, batch_size=MINI, shuffle=False,
                  memory_budget=budget_for(X, y, 16))
    assert rel_err(params(chunked), params(whole)) <= 1e-10
    assert chunked.n_updates == whole.n_updates == 3 * 5


@pytest.mark.parametrize("batch_size", [1, MINI], ids=["sgd", "mini"])
def test_shuffled_chunks_walk_the_same_batches_on_every_backend(backend, batch_size):
    X, y = problem("logistic")
    budget = budget_for(X, y, 10)
    reference = fit(X, y, "numpy", loss="logistic", batch_size=batch_size, memory_budget=budget)
    result = fit(X, y, backend, loss="logistic", batch_size=batch_size, memory_budget=budget)
    assert rel_err(params(result), params(reference)) <= 1e-9
    # batches are cut within the chunks of 10, 10, 10 and 7 rows
    per_epoch = sum(-(-m // batch_size) for m in (10, 10, 10, 7))
    assert result.n_updates == 3 * per_epoch


def test_a_memmap_is_chunked_by_default_when_memory_is_short(tmp_path, monkeypatch):
    X, y = problem("squared")
    path = tmp_path / "X.f64"
    mapped = np.memmap(path, dtype=np.float64, mode="w+", shape=X.shape)
    mapped[:] = X
    mapped.flush()
    readonly = np.memmap(path, dtype=np.float64, mode="r", shape=X.shape)
    whole = fit(X, y, "numpy", batch_size=MINI, shuffle=False)
    # half of "available" memory is 16 rows of X and y: two chunks of 16, one of 5
    monkeypatch.setattr(chunks, "_available_host_bytes", lambda: 2 * budget_for(X, y, 16))
    chunked = fit(readonly, y, "numpy", batch_size=MINI, shuffle=False)
    in_memory = fit(X, y, "numpy", batch_size=MINI, shuffle=False)
    assert chunked.n_updates == 3 * (2 + 2 + 1)  # chunks of 16, 16, 5 rows
    assert in_memory.n_updates == whole.n_updates == 3 * 5  # in memory: never chunked
    assert rel_err(params(chunked), params(whole)) <= 1e-10


@pytest.mark.parametrize("budget", [0, -5, 2.5, "1GB"])
def test_bad_memory_budget_is_named(budget):
    X, y = problem("squared")
    with pytest.raises((ValueError, TypeError), match="memory_budget"):
        fastgd.fit(X, y, memory_budget=budget)


def test_file_backed_rows_are_found_in_their_mapping(tmp_path):
    """The pages asked for are X's: the mapping and X's offset in it are right, also for a
    memmap that starts past a header and for a view of a view."""
    header = 4096 + 24
    path = tmp_path / "X.bin"
    path.write_bytes(b"\0" * header + np.arange(60, dtype=np.float64).tobytes())
    X = np.memmap(path, dtype=np.float64, mode="r", offset=header, shape=(20, 3))
    rows = np.asarray(X.view(np.ndarray)[5:])
    mapped, offset = chunks._file_map(rows)
    start = offset + 2 * rows.strides[0]  # row 7 of X
    assert np.frombuffer(mapped[start : start + 8], dtype=np.float64)[0] == 21.0
    chunked = chunks.ChunkedRows(rows, np.zeros((15, 1)), None, rows=4)
    X_rows, _, _ = chunked.load(1, following=2)  # asks for rows 4..11 of the view
    np.testing.assert_array_equal(X_rows, rows[4:8])
    assert chunks._file_map(np.zeros((3, 3))) is None


@pytest.mark.parametrize("batch_size", [None, MINI])
def test_each_chunk_asks_for_the_next_one_to_train(monkeypatch, batch_size):
    X, y = problem("squared")
    asked = []
    load = chunks.ChunkedRows.load

    def recording_load(self, chunk, following=None):
        asked.append((chunk, following))
        return load(self, chunk, following)

    monkeypatch.setattr(chunks.ChunkedRows, "load", recording_load)
    fit(X, y, "numpy", batch_size=batch_size, epochs=1, memory_budget=budget_for(X, y, 10))
    walked = [chunk for chunk, _ in asked]
    assert sorted(walked) == list(range(len(walked))) and len(walked) > 2
    assert [following for _, following in asked] == walked[1:] + [None]
