"""Data-parallel jax on a mesh of 4 devices equals one device: ``fit(devices=...)``.

jax fixes its device count when it starts, so the checks (``tests/jax_devices_checks.py``)
need a process started with ``XLA_FLAGS=--xla_force_host_platform_device_count=4`` (4 CPU
devices): the test here runs them in such a subprocess, so that the rest of the suite
keeps its single device. They compare 4 devices with one device and with the numpy
backend to 1e-9 for every loss, optimizer and batch mode (full, mini-batches of 8 of 37
rows, per-sample), K = 1 and 3, weights on and off; name the devices every way; check
the placement, the kernels, the compiled program's split of each batch, the errors, and
``fastgd info`` / ``fastgd compare`` with a mesh.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

pytest.importorskip("jax")

FORCED = 4
#: Seconds the subprocess may take (40-70 s on two busy cores, compilation included).
SUBPROCESS_TIMEOUT_S = 400
CHECKS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "jax_devices_checks.py")


def test_four_forced_devices_in_a_subprocess():
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    flags = env.get("XLA_FLAGS", "")
    env["XLA_FLAGS"] = f"{flags} --xla_force_host_platform_device_count={FORCED}".strip()
    root = os.path.dirname(os.path.dirname(CHECKS))
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", CHECKS]
    start = time.perf_counter()
    proc = subprocess.run(command, cwd=root, env=env, capture_output=True, text=True,
                          timeout=SUBPROCESS_TIMEOUT_S)  # fmt: skip
    output = proc.stdout[-8000:] + proc.stderr[-3000:]
    assert proc.returncode == 0, output
    summary = proc.stdout.strip().splitlines()[-1]
    assert " passed" in summary and "skipped" not in summary, output  # ran on 4 devices
    print(f"4-device checks: {summary} ({time.perf_counter() - start:.1f} s)")
