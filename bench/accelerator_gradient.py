"""A full-batch gradient on a GPU-sized problem, against the device's memory bandwidth.

Usage: ``python bench/accelerator_gradient.py OUT.json`` (``bench/accelerator_check.sh``
runs it). X is 2 GiB of float64 (``FASTGD_GRADIENT_ROWS`` rows x 64, default 2**22), made
on jax's default device; the bandwidth probe is a jitted sum over X (one read). The
gradient of the jax backend is timed after a warm-up (best and median of 10 calls) and
checked against numpy on the host.
"""

from __future__ import annotations

import json
import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

import fastgd.backends.jax as jb
from fastgd.specs import Squared, lower_model

D = 64
REPEAT = 10


def timed(fn) -> list[float]:
    jax.block_until_ready(fn())  # warm-up: compiles
    times = []
    for _ in range(REPEAT):
        start = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - start)
    return times


def main(out: str) -> None:
    n = int(os.environ.get("FASTGD_GRADIENT_ROWS", 2**22))
    with jax.enable_x64(True):
        device = jax.devices()[0]
        kx, ky = jax.random.split(jax.random.key(0))
        X = jax.device_put(jax.random.normal(kx, (n, D), jnp.float64), device)
        Y = jax.device_put(jax.random.normal(ky, (n, 1), jnp.float64), device)
        theta = jax.device_put(jnp.linspace(-1.0, 1.0, D + 1).reshape(D + 1, 1), device)
        data = jb.Data(X, Y, None)
        model = lower_model(Squared(), 0.0, 0.0, True)
        total = jax.jit(jnp.sum)
        probe = timed(lambda: total(X))
        grad_times = timed(lambda: jb.loss_grad(data, theta, model))
        _, grad = jb.loss_grad(data, theta, model)
        Xh, yh, th = np.asarray(X), np.asarray(Y)[:, 0], np.asarray(theta)[:, 0]
    r = Xh @ th[:-1] + th[-1] - yh
    expected = np.append(Xh.T @ r, r.sum()) / n
    rel = float(np.max(np.abs(np.asarray(grad)[:, 0] - expected)) / np.max(np.abs(expected)))
    read = (X.size + Y.size) * 8
    bandwidth = X.size * 8 / min(probe)
    report = {
        "device": str(device), "platform": device.platform, "n": n, "d": D,
        "bytes_read": read, "probe_sum_best_s": min(probe),
        "measured_bandwidth_gbs": bandwidth / 1e9,
        "gradient_best_s": min(grad_times), "gradient_median_s": float(np.median(grad_times)),
        "gradient_gbs": read / min(grad_times) / 1e9,
        "pct_bandwidth": 100 * read / min(grad_times) / bandwidth,
        "max_rel_error_vs_numpy": rel,
    }
    print(json.dumps(report, indent=2))
    with open(out, "w", encoding="utf-8") as f:
        json.dump(report, f, indent=2)
    if not rel <= 1e-10:
        sys.exit(f"gradient differs from numpy's: relative error {rel:.2e}")


if __name__ == "__main__":
    main(sys.argv[1])
