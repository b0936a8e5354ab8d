"""Chunked epochs on a memmap of 3 GB with a 512 MB budget (``slow``: ``make bench``).

The file is written by the benchmark in a temporary folder and removed after. Measured:

- memory: the growth of the process's anonymous memory (``RssAnon`` in /proc/self/status,
  sampled every 5 ms by a thread during the fit, peak minus the value before the fit) must
  stay under the budget plus 160 MB (the (n, 1) copy of the targets, 48 MB here, and the
  backend's working arrays); the pages of the memmap are file-backed and not counted;
- agreement: numpy, numba and jax reach the same parameters (1e-9, full-batch GD);
- throughput: the chunked fit against the same fit on the memmap read in place (the file
  in the page cache), interleaved runs, medians; the chunked one must reach 70 %: full-batch
  GD (its chunks are read in place) and shuffled mini-batch Adam (each chunk copied into
  the buffer first, then visited at random).
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from benchutil import run_benchmark, set_group

import fastgd

pytestmark = pytest.mark.slow

N, D = 6_000_000, 63  # X: 3.02 GB of float64
BUDGET = 512 * 2**20
GD = dict(optimizer=fastgd.SGD(lr=0.1), epochs=2)
HEADROOM = 160 * 2**20


@pytest.fixture(scope="module")
def memmap_problem(tmp_path_factory):
    """X (N, D) float64 on disk, written block by block; y in memory."""
    path = tmp_path_factory.mktemp("chunks") / "X.f64"
    X = np.memmap(path, dtype=np.float64, mode="w+", shape=(N, D))
    rng = np.random.default_rng(0)
    coef = rng.standard_normal(D)
    y = np.empty(N)
    for start in range(0, N, 500_000):
        block = rng.standard_normal((min(500_000, N - start), D))
        X[start : start + len(block)] = block
        y[start : start + len(block)] = block @ coef + 0.1 * rng.standard_normal(len(block))
    X.flush()
    del X
    yield np.memmap(path, dtype=np.float64, mode="r", shape=(N, D)), y
    path.unlink()


def rss_anon() -> int:
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no RssAnon in /proc/self/status")


def peak_anon_growth(fn) -> tuple[object, int]:
    """``fn()`` and the peak growth of anonymous memory while it ran."""
    before = rss_anon()
    peak = before
    done = threading.Event()

    def sample():
        nonlocal peak
        while not done.is_set():
            peak = max(peak, rss_anon())
            time.sleep(0.005)

    thread = threading.Thread(target=sample)
    thread.start()
    try:
        out = fn()
    finally:
        done.set()
        thread.join()
    return out, max(peak, rss_anon()) - before


def params(result) -> np.ndarray:
    return np.append(result.coef, result.intercept)


def test_chunked_memory_and_agreement(benchmark, memmap_problem):
    X, y = memmap_problem
    results = {}
    growths = {}
    for backend in fastgd.available_backends():
        fastgd.fit(X[:1000], y[:1000], backend=backend, memory_budget=8_000, **GD)  # compile
        result, growth = peak_anon_growth(
            lambda b=backend: fastgd.fit(X, y, backend=b, memory_budget=BUDGET, **GD)
        )
        print(f"{backend}: anonymous memory grew {growth / 2**20:.0f} MiB "
              f"(budget {BUDGET / 2**20:.0f} MiB)")
        growths[backend] = growth
        results[backend] = params(result)
    benchmark.extra_info["anon_growth_mib"] = {b: g / 2**20 for b, g in growths.items()}
    set_group(benchmark, "chunks", (N, D), "float64", "memory", "fastgd[numba] chunked")
    run_benchmark(benchmark, lambda: fastgd.fit(X, y, backend="numba", memory_budget=BUDGET,
                                                **GD), heavy_seconds=2.0)
    for backend, growth in growths.items():
        assert growth < BUDGET + HEADROOM, f"{backend}: {growth / 2**20:.0f} MiB"
    for backend, theta in results.items():
        err = np.max(np.abs(theta - results["numpy"])) / np.max(np.abs(results["numpy"]))
        assert err <= 1e-9, f"{backend}: {err:.1e}"


#: Full-batch GD (chunks read in place) and shuffled mini-batch Adam (each chunk read
#: into the buffer first), one epoch each for the latter.
MODES = {"gd": GD, "mb4096": dict(optimizer=fastgd.Adam(lr=1e-3), batch_size=4096, epochs=1,
                                  seed=0)}


@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("backend", ["numba", "jax"])
def test_chunked_throughput(benchmark, memmap_problem, backend, mode):
    """Chunked against in place, interleaved: median ratio of 5 pairs (after a warm-up)."""
    X, y = memmap_problem
    kwargs = MODES[mode]
    chunked = lambda: fastgd.fit(X, y, backend=backend, memory_budget=BUDGET, **kwargs)  # noqa: E731
    in_place = lambda: fastgd.fit(X, y, backend=backend, **kwargs)  # noqa: E731
    chunked(), in_place()
    pairs = []
    for _ in range(5):
        start = time.perf_counter()
        chunked()
        mid = time.perf_counter()
        in_place()
        pairs.append((mid - start, time.perf_counter() - mid))
    chunked_s = float(np.median([p[0] for p in pairs]))
    in_place_s = float(np.median([p[1] for p in pairs]))
    benchmark.extra_info.update(chunked_median_s=chunked_s, in_place_median_s=in_place_s,
                                throughput_ratio=in_place_s / chunked_s)
    set_group(benchmark, "chunks", (N, D), "float64", mode, f"fastgd[{backend}] chunked")
    print(f"{backend} {mode}: chunked {chunked_s:.3f} s, in place {in_place_s:.3f} s, "
          f"throughput {100 * in_place_s / chunked_s:.0f}%")
    run_benchmark(benchmark, chunked, heavy_seconds=chunked_s)
    assert in_place_s / chunked_s >= 0.7
