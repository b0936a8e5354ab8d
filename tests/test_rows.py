"""Host passes split by rows across threads: the finite check and jax's aligned copy.

Large arrays (at least ``MIN_PARALLEL_BYTES`` per thread) take the threaded path; these
tests use arrays just big enough for it, and force two or more ranges even on a
single-core machine, so the threaded path is what is tested everywhere.
"""

from __future__ import annotations

import os
import time
import warnings

import numpy as np
import pytest

import fastgd
from fastgd import _rows
from fastgd.data import check_X, check_X_y

ROWS_FOR_TWO_RANGES = 2 * _rows.MIN_PARALLEL_BYTES // (8 * 8) + 3  # float64, 8 columns


@pytest.fixture
def four_cpus(monkeypatch):
    """Pretend the machine has four usable cores, so large arrays are split."""
    monkeypatch.setattr(_rows, "usable_cpus", lambda: 4)


def _large(n_rows: int = ROWS_FOR_TWO_RANGES, d: int = 8) -> np.ndarray:
    return np.random.default_rng(0).standard_normal((n_rows, d))


@pytest.mark.parametrize("n_rows", [1, 2, 7, 1000])
def test_small_arrays_are_one_range(n_rows):
    assert _rows.row_ranges(np.zeros((n_rows, 3))) == [(0, n_rows)]


@pytest.mark.usefixtures("four_cpus")
@pytest.mark.parametrize("extra_rows", [0, 1, 5 * 2**20])
def test_ranges_cover_every_row_once_in_order(extra_rows):
    a = np.zeros((ROWS_FOR_TWO_RANGES + extra_rows, 8))
    ranges = _rows.row_ranges(a)
    assert 2 <= len(ranges) <= 4
    assert ranges[0][0] == 0 and ranges[-1][1] == a.shape[0]
    for (_, stop), (start, _) in zip(ranges[:-1], ranges[1:], strict=True):
        assert stop == start
    assert all(stop > start for start, stop in ranges)
    assert all((stop - start) * a[0].nbytes >= _rows.MIN_PARALLEL_BYTES for start, stop in ranges)


def test_one_range_per_core_at_most(monkeypatch):
    monkeypatch.setattr(_rows, "usable_cpus", lambda: 1)
    assert len(_rows.row_ranges(np.zeros((10 * ROWS_FOR_TWO_RANGES, 8)))) == 1


@pytest.mark.usefixtures("four_cpus")
def test_map_row_ranges_runs_every_range_and_keeps_the_order():
    a = _large()
    results = _rows.map_row_ranges(lambda start, stop: (start, stop), a)
    assert results == _rows.row_ranges(a) and len(results) >= 2


@pytest.mark.usefixtures("four_cpus")
def test_map_row_ranges_propagates_errors():
    def fail_on_second(start: int, stop: int) -> None:
        if start > 0:
            raise RuntimeError(f"rows {start}:{stop}")

    with pytest.raises(RuntimeError, match="rows"):
        _rows.map_row_ranges(fail_on_second, _large())


@pytest.mark.usefixtures("four_cpus")
@pytest.mark.parametrize("where", ["first", "middle", "last"])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_finite_check_finds_a_bad_entry_in_any_range(where, bad):
    X = _large()
    row = {"first": 0, "middle": X.shape[0] // 2 + 1, "last": X.shape[0] - 1}[where]
    X[row, 3] = bad
    with pytest.raises(ValueError) as info:
        check_X(X)
    assert "X must be finite" in str(info.value) and f"({row}, 3)" in str(info.value)
    assert repr(float(bad)) in str(info.value)


@pytest.mark.usefixtures("four_cpus")
def test_finite_check_passes_huge_finite_values_whose_sum_overflows():
    X = _large()
    X[:, 0] = np.finfo(np.float64).max  # the sum is inf, every entry is finite
    X_checked, y_checked = check_X_y(X, np.zeros(X.shape[0]))
    assert X_checked is X and y_checked.shape == (X.shape[0],)


@pytest.mark.usefixtures("four_cpus")
def test_finite_check_of_a_large_y():
    y = _large().ravel()
    y[-2] = np.nan
    message = r"y must be finite \(no NaN or inf\), found nan at index \("
    with pytest.raises(ValueError, match=message):
        check_X_y(np.zeros((y.shape[0], 1)), y)


@pytest.mark.usefixtures("four_cpus")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_jax_aligned_copy_of_a_large_array_is_exact(dtype):
    pytest.importorskip("jax")
    from fastgd.backends.jax import staging as jax_staging

    raw = np.empty(ROWS_FOR_TWO_RANGES * 8 * 8 + 128, dtype=np.uint8)
    start = (-raw.ctypes.data % 64) + 16
    a = raw[start : start + ROWS_FOR_TWO_RANGES * 8 * np.dtype(dtype).itemsize]
    a = a.view(dtype).reshape(ROWS_FOR_TWO_RANGES, 8)
    a[...] = _large().astype(dtype)
    if a.nbytes >= 2 * _rows.MIN_PARALLEL_BYTES:
        assert len(_rows.row_ranges(a)) >= 2
    copy = jax_staging._cpu_aligned(a)
    assert copy.ctypes.data % 64 == 0 and copy is not a
    np.testing.assert_array_equal(copy, a)


@pytest.mark.parametrize("backend", ["numpy", "jax"])
def test_fit_on_a_large_problem_is_unchanged_by_the_threads(monkeypatch, backend):
    """The same fit with one and with four worker ranges: bit-identical parameters.

    With jax, the unaligned X is copied by the worker threads before the fit.
    """
    if backend not in fastgd.available_backends():
        pytest.skip(f"{backend} is not installed")
    X, y, _ = fastgd.make_regression(ROWS_FOR_TWO_RANGES, 8, seed=3)
    X = X[:, :7]  # a strided view: check_X makes it contiguous, jax then copies it aligned
    results = []
    for cpus in (1, 4):
        monkeypatch.setattr(_rows, "usable_cpus", lambda cpus=cpus: cpus)
        fit = fastgd.fit(X, y, optimizer="adam", batch_size=4096, epochs=1, seed=0, backend=backend)
        results.append(fit.coef)
    np.testing.assert_array_equal(*results)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
@pytest.mark.usefixtures("four_cpus")
def test_threaded_check_works_in_a_forked_child():
    """A child forked after the pool started gets a new pool (the old threads are gone)."""
    X = _large()
    check_X(X)  # the parent's worker threads now exist
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # jax warns about forking a multithreaded process
        pid = os.fork()
    if pid == 0:  # the child: exit 0 only if both checks behave
        code = 1
        try:
            check_X(X)
            X[X.shape[0] - 1, 1] = np.nan
            try:
                check_X(X)
            except ValueError:
                code = 0
        finally:
            os._exit(code)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            assert os.waitstatus_to_exitcode(status) == 0
            return
        time.sleep(0.05)
    os.kill(pid, 9)
    os.waitpid(pid, 0)
    pytest.fail("the finite check hung in a forked child")


# ------------------------------------------------------------ staging buffers

STAGED_SHAPE = (_rows.MIN_MAPPED_BYTES // 8 // 16 + 1, 16)  # just above the mapped size


@pytest.fixture
def empty_pool():
    _rows.release_staging()
    yield
    _rows.release_staging()


@pytest.mark.usefixtures("empty_pool")
def test_staging_buffer_is_page_aligned_and_reused_once_free():
    first = _rows.staging_buffer(STAGED_SHAPE, np.float64)
    assert first.shape == STAGED_SHAPE and first.dtype == np.float64
    assert first.ctypes.data % 4096 == 0 and first.flags.c_contiguous and first.flags.writeable
    address = first.ctypes.data
    del first
    again = _rows.staging_buffer(STAGED_SHAPE, np.float64)
    assert again.ctypes.data == address, "a free buffer of the same size is handed out again"


@pytest.mark.usefixtures("empty_pool")
def test_staging_buffer_in_use_is_never_handed_out_twice():
    first = _rows.staging_buffer(STAGED_SHAPE, np.float64)
    view = first[3:5]  # a view alone keeps the buffer in use
    del first
    second = _rows.staging_buffer(STAGED_SHAPE, np.float64)
    second[:] = 2.0
    view[:] = 1.0
    assert np.all(second == 2.0) and np.all(view == 1.0)


@pytest.mark.usefixtures("empty_pool")
def test_staging_pool_keeps_at_most_its_limit_of_free_buffers():
    kept = [_rows.staging_buffer(STAGED_SHAPE, np.float64) for _ in range(_rows.STAGING_KEEP + 2)]
    del kept
    _rows.staging_buffer((STAGED_SHAPE[0] + 1, 16), np.float64)
    assert len(_rows._staging) == _rows.STAGING_KEEP
    fastgd.release_staging_buffers()
    assert _rows._staging == []


def test_small_staging_buffers_are_zeros_from_numpy():
    small = _rows.staging_buffer((3, 5), np.float32)
    assert small.shape == (3, 5) and small.ctypes.data % 64 == 0 and np.all(small == 0)


def _misaligned(shape: tuple[int, int], value: float) -> np.ndarray:
    """A float64 array of ``value`` starting 16 bytes past a 64-byte boundary."""
    nbytes = shape[0] * shape[1] * 8
    raw = np.empty(nbytes + 128, dtype=np.uint8)
    start = (-raw.ctypes.data % 64) + 16
    a = raw[start : start + nbytes].view(np.float64).reshape(shape)
    a[...] = value
    assert a.ctypes.data % 64 == 16
    return a


def _wait_until_a_staging_buffer_is_free(timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not _rows._free_positions():
        assert time.monotonic() < deadline, "no staging buffer was freed"
        time.sleep(0.001)


@pytest.mark.usefixtures("empty_pool")
def test_jax_data_keep_their_values_when_another_fit_reuses_the_pool():
    jax = pytest.importorskip("jax")
    import fastgd.backends.jax as jb

    X1, X2 = _misaligned(STAGED_SHAPE, 1.0), _misaligned(STAGED_SHAPE, 3.0)  # so: copied
    y = np.zeros((X1.shape[0], 1))
    theta = np.zeros((17, 1))
    data1, _ = jb.prepare(X1, y, theta, device="cpu")
    data2, _ = jb.prepare(X2, y, theta, device="cpu")
    assert np.all(np.asarray(data1.X) == 1.0) and np.all(np.asarray(data2.X) == 3.0)
    address = data1.X.unsafe_buffer_pointer()
    del data1
    # jax lets go of the numpy buffer behind a deleted array at its next transfer
    jax.device_put(np.zeros(1)).block_until_ready()
    _wait_until_a_staging_buffer_is_free()
    data3, _ = jb.prepare(X2, y, theta, device="cpu")
    assert data3.X.unsafe_buffer_pointer() == address, "the freed copy is reused"
    assert np.all(np.asarray(data2.X) == 3.0) and np.all(np.asarray(data3.X) == 3.0)
