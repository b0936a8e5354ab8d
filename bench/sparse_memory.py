"""Resident memory while fitting a ~1.2 GB CSR matrix: it grows by less than half the CSR.

Run from the repository root: ``python bench/sparse_memory.py`` (each backend in a
subprocess of its own, a minute or two each; ``--rows`` scales the matrix). The matrix:
4,000,000 x 2^20, 25 stored values per row (sorted, unique column indices), float64
values and int32 indices: 1.2 GB. In each subprocess the matrix is built, the resident
set size (``VmRSS``) is read, then one fit runs while a thread samples ``VmRSS`` every
10 ms; the growth is the peak during the fit minus the RSS before it. Runs per backend:

- numba: per-sample SGD (hinge + l2, 1 epoch), then a full batch (2 steps);
- numpy: a full batch (2 steps) and one epoch of mini-batches of 65,536;
- jax: a full batch (2 steps) and one epoch of mini-batches of 65,536 (on the default
  device; on a CPU the CSR arrays are used in place when aligned, else copied once).

Before the measured fits, each subprocess imports the backend and runs the same fits on
a 1,000-row matrix (compiled code and the runtime's own memory stay out of the growth).
The growth includes the model's parameters and optimizer state (3 x (d + 1) float64,
25 MB) and the per-row targets (32 MB): what any fit of this problem holds.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import threading
import time

import numpy as np

D, PER_ROW = 2**20, 25

#: The fits measured, per backend: (name, fit arguments).
FITS = {
    "numba": [("per-sample, 1 epoch", dict(batch_size=1, epochs=1)),
              ("full batch, 2 steps", dict(batch_size=None, epochs=2))],
    "numpy": [("full batch, 2 steps", dict(batch_size=None, epochs=2)),
              ("mini-batch 65536, 1 epoch", dict(batch_size=65536, epochs=1))],
    "jax": [("full batch, 2 steps", dict(batch_size=None, epochs=2)),
            ("mini-batch 65536, 1 epoch", dict(batch_size=65536, epochs=1))],
}  # fmt: skip


def rss_bytes() -> int:
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def matrix(rows: int):
    """rows x 2^20 CSR, 25 sorted unique columns per row (float64, int32), and labels."""
    import scipy.sparse as sp

    rng = np.random.default_rng(0)
    nnz = rows * PER_ROW
    columns = rng.integers(1, D // PER_ROW, size=nnz, dtype=np.int32)
    columns = columns.reshape(rows, PER_ROW)
    np.cumsum(columns, axis=1, out=columns)  # strictly increasing, below D
    values = rng.random(nnz) + 0.1
    indptr = np.arange(0, nnz + 1, PER_ROW, dtype=np.int32 if nnz < 2**31 else np.int64)
    X = sp.csr_matrix((values, columns.reshape(-1), indptr), shape=(rows, D))
    y = (rng.random(rows) < 0.5).astype(np.float64)
    return X, y


def measure(backend: str, rows: int) -> dict:
    """Build the matrix, then the RSS growth of each fit of ``backend`` (in this process)."""
    import fastgd

    X, y = matrix(rows)
    small, small_y = matrix(1000)
    for _, kw in FITS[backend]:  # the backend imported and its programs compiled first
        batch = kw["batch_size"]
        fastgd.fit(small, small_y, loss="hinge", penalty="l2", alpha=1e-4, lr=0.1,
                   shuffle=False, backend=backend, epochs=1,
                   batch_size=None if batch is None else min(batch, 1000))  # fmt: skip
    csr_bytes = X.data.nbytes + X.indices.nbytes + X.indptr.nbytes
    fits = FITS[backend]
    out = {"backend": backend, "csr_bytes": csr_bytes, "fits": []}
    for name, kw in fits:
        before = rss_bytes()
        peak = [before]
        done = threading.Event()

        def sample(peak=peak, done=done):
            while not done.is_set():
                peak[0] = max(peak[0], rss_bytes())
                time.sleep(0.01)

        sampler = threading.Thread(target=sample)
        sampler.start()
        start = time.perf_counter()
        fastgd.fit(X, y, loss="hinge", penalty="l2", alpha=1e-4, lr=0.1, shuffle=False,
                   backend=backend, **kw)  # fmt: skip
        seconds = time.perf_counter() - start
        done.set()
        sampler.join()
        peak[0] = max(peak[0], rss_bytes())
        growth = peak[0] - before
        out["fits"].append({"fit": name, "growth_bytes": growth, "seconds": seconds,
                            "share_of_csr": growth / csr_bytes})  # fmt: skip
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=4_000_000)
    parser.add_argument("--backends", default="numba,numpy,jax")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.child, args.rows)))
        return
    failed = False
    for backend in args.backends.split(","):
        run = subprocess.run(
            [sys.executable, __file__, "--child", backend, "--rows", str(args.rows)],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        if run.returncode != 0:
            print(f"{backend}: failed\n{run.stderr[-2000:]}")
            failed = True
            continue
        result = json.loads(run.stdout.strip().splitlines()[-1])
        csr = result["csr_bytes"]
        print(f"{backend}: CSR {csr / 1e9:.2f} GB")
        for fit in result["fits"]:
            ok = fit["share_of_csr"] < 0.5
            failed |= not ok
            print(f"  {fit['fit']:28s} RSS growth {fit['growth_bytes'] / 1e6:8.1f} MB "
                  f"({fit['share_of_csr']:.1%} of the CSR; {fit['seconds']:.1f} s) "
                  f"{'ok' if ok else 'OVER HALF'}")  # fmt: skip
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
