"""Several processes: ``jax.distributed`` over the loopback interface, each its own rows.

Two worker processes (``tests/multiprocess_worker.py``, 2 CPU devices each: a mesh of 4
devices over 2 processes) join a run coordinated at 127.0.0.1 on a free port and train
every case of ``multiprocess_worker.CASES`` on 22 and 15 of its 37 rows with
``devices="all"``: through ``fastgd.fit`` (full batches, weighted mini-batches of 8 and
per-sample SGD, shuffled from one seed) and through the kernels with epoch orders over
all rows. Both must end with the same parameters, equal to one process training on all
the rows to 1e-9. A worker
that dies must make the other fail within its time limit, not hang. Each worker runs
under a time limit and is killed, if still running, when its test ends.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import multiprocess_worker as worker
import numpy as np
import pytest
from helpers import rel_err

pytest.importorskip("jax")

WORKER = Path(worker.__file__).resolve()
N_PROCESSES = 2
#: Seconds the two workers of a run may take in all (a run takes 15-25 s here).
RUN_TIMEOUT_S = 120
#: Seconds the survivor of a dead worker may take to fail: the heartbeat timeout (after
#: which jax's coordination service declares the dead worker gone) and a margin.
FAILURE_TIMEOUT_S = worker.HEARTBEAT_TIMEOUT_S + 40


def _free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _run_workers(tmp_path: Path, timeout_s: float, exit_early: tuple[int, ...] = ()):
    """Run the workers to their end or ``timeout_s`` seconds, whichever comes first.

    Returns each worker's exit status (None: killed at the deadline), its log and the
    seconds the run took. Workers still running at the end are killed (only these).
    """
    coordinator = f"127.0.0.1:{_free_port()}"
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    flags = env.get("XLA_FLAGS", "")
    env["XLA_FLAGS"] = f"{flags} --xla_force_host_platform_device_count=2".strip()
    procs, logs, codes = [], [], []
    start = time.monotonic()
    try:
        for process in range(N_PROCESSES):
            log = tmp_path / f"worker{process}.log"
            logs.append(log)
            command = [sys.executable, str(WORKER), coordinator, str(N_PROCESSES), str(process),
                       str(tmp_path / f"worker{process}.npz")]  # fmt: skip
            if process in exit_early:
                command.append("--exit-early")
            with open(log, "w") as out:
                procs.append(subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT,
                                              env=env, cwd=WORKER.parent.parent))  # fmt: skip
        for proc in procs:
            try:
                codes.append(proc.wait(timeout=max(0.1, start + timeout_s - time.monotonic())))
            except subprocess.TimeoutExpired:
                codes.append(None)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
    texts = [log.read_text(errors="replace")[-4000:] for log in logs]
    return codes, texts, time.monotonic() - start


def test_two_processes_equal_one_process_on_all_rows(tmp_path):
    codes, logs, seconds = _run_workers(tmp_path, RUN_TIMEOUT_S)
    assert codes == [0] * N_PROCESSES, "\n".join(logs)
    results = [np.load(tmp_path / f"worker{p}.npz") for p in range(N_PROCESSES)]
    for case in worker.CASES:
        theta, losses = worker.run_case(case, worker.process_rows(None), None)
        for result in results:
            assert rel_err(result[f"{case.name}/theta"], theta) <= 1e-9, case.name
            assert rel_err(result[f"{case.name}/losses"], losses) <= 1e-9, case.name
        for key in ("theta", "losses"):  # every process ends with the same numbers
            np.testing.assert_array_equal(*(r[f"{case.name}/{key}"] for r in results))
    assert [int(r["global-rows"]) for r in results] == [worker.N] * 2
    print(f"two-process run: {seconds:.1f} s")


def test_a_dead_process_makes_the_other_fail_not_hang(tmp_path):
    codes, logs, seconds = _run_workers(tmp_path, FAILURE_TIMEOUT_S, exit_early=(1,))
    assert codes[1] == 3, logs[1]  # died on purpose, right after joining
    # The survivor waits for its partner in the first collective of prepare(), until jax's
    # coordination service misses the partner's heartbeats and terminates it (an abort,
    # status < 0 or 1); at worst our deadline kills it. It never saves results.
    assert codes[0] != 0, logs[0]
    assert not (tmp_path / "worker0.npz").exists()
    assert seconds <= FAILURE_TIMEOUT_S + 15
    print(f"survivor: status {codes[0]} after {seconds:.1f} s")
