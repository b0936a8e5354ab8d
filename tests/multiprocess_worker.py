"""One process of a multi-process jax run, launched by ``tests/test_multiprocess.py``.

``python tests/multiprocess_worker.py COORDINATOR N_PROCESSES PROCESS_ID OUT [--exit-early]``
joins a jax distributed run over ``COORDINATOR`` (host:port on the loopback interface),
trains every case of :data:`CASES` on its own share of the rows (:func:`process_rows`)
with ``devices="all"`` and saves the parameters and loss histories to ``OUT`` (an
``.npz``). With ``--exit-early`` it dies right after joining, without a word to the
others (``os._exit``), to show that the others then fail instead of waiting forever.

The cases and the data are defined here, so that the test computes its one-process
references from the same definitions.
"""

from __future__ import annotations

import os
import sys
from typing import NamedTuple

import numpy as np

#: Rows of the problems and where process 0's rows end: the processes hold 22 and 15.
N, D, SPLIT = 37, 5, 22
EPOCHS = 4
#: Seconds: joining the run, and without a heartbeat before a process counts as dead.
INIT_TIMEOUT_S, HEARTBEAT_TIMEOUT_S = 30, 10


class Case(NamedTuple):
    """One training run: through ``fastgd.fit``, or through the backend's kernels."""

    name: str
    loss: str
    optimizer: str
    #: K outputs (None: a 1-D y); ``multinomial`` always has K_MULTI classes.
    n_outputs: int | None
    #: None: full batch.
    batch_size: int | None
    weighted: bool
    #: "fit": ``fastgd.fit`` (shuffled from the same seed on every process); "kernels":
    #: prepare/init_state/run_epochs with epoch orders over all N rows.
    via: str


CASES = (
    Case("fit-squared-adam", "squared", "adam", None, None, False, "fit"),
    Case("fit-multinomial-momentum", "multinomial", "momentum", None, None, False, "fit"),
    Case("fit-hinge-k3-nesterov", "hinge", "nesterov", 3, None, False, "fit"),
    Case("fit-huber-k3-mini-weighted", "huber", "adamw", 3, 8, True, "fit"),
    Case("fit-logistic-sgd1", "logistic", "sgd", None, 1, False, "fit"),
    Case("kernels-logistic-weighted-full", "logistic", "rmsprop", None, None, True, "kernels"),
    Case("kernels-huber-k3-mini", "huber", "adamw", 3, 8, True, "kernels"),
    Case("kernels-squared-sgd1", "squared", "adagrad", None, 1, False, "kernels"),
)


def process_rows(process: int | None) -> slice:
    """The rows of ``process`` (0 or 1) of a two-process run; None: all of them."""
    if process is None:
        return slice(None)
    return slice(0, SPLIT) if process == 0 else slice(SPLIT, N)


def run_case(case: Case, rows: slice, devices: object) -> tuple[np.ndarray, np.ndarray]:
    """Train ``case`` on ``rows`` of its problem; returns theta (d + 1, K) and the losses.

    ``devices=None`` runs on jax's default device, ``"all"`` on every device of every
    process (each process passing its own rows).
    """
    from helpers import OPTIMIZERS, problem, sample_weights

    import fastgd
    from fastgd.data import check_sample_weight, check_targets, epoch_orders
    from fastgd.specs import lower_model, lower_optimizer, resolve_loss

    X, y = problem(case.loss, n=N, d=D, n_outputs=case.n_outputs)
    if case.via == "fit":  # raw weights: fit rescales them by their mean over all processes
        weight = sample_weights(N)[rows] if case.weighted else None
        res = fastgd.fit(X[rows], y[rows], loss=case.loss, optimizer=OPTIMIZERS[case.optimizer],
                         batch_size=case.batch_size, epochs=EPOCHS, penalty="l2", alpha=0.05,
                         seed=7, sample_weight=weight, backend="jax", devices=devices)  # fmt: skip
        theta = np.vstack([res.coef.reshape(D, -1), np.reshape(res.intercept, (1, -1))])
        return theta, res.loss_history
    kernels = fastgd.get_backend("jax")
    spec = resolve_loss(case.loss)
    Y, n_outputs, _ = check_targets(y, X, spec)
    weight = check_sample_weight(sample_weights(N), N, X.dtype) if case.weighted else None
    model = lower_model(spec, 0.05, 0.0, True)
    opt = lower_optimizer(OPTIMIZERS[case.optimizer])
    theta0 = np.zeros((D + 1, n_outputs))
    local = None if weight is None else weight[rows]
    data, theta = kernels.prepare(X[rows], Y[rows], theta0, devices, local)
    state = kernels.init_state(theta, opt)
    if case.batch_size is None:  # a full batch: every process its own (unused) orders
        n_local = X[rows].shape[0]
        orders, batch_size = epoch_orders(None, n_local, EPOCHS, False), n_local
    else:  # the same orders over all N rows on every process
        orders = epoch_orders(np.random.default_rng(7), N, EPOCHS, True)
        batch_size = case.batch_size
    theta, state, losses = kernels.run_epochs(data, theta, state, orders, batch_size, model, opt)
    return np.asarray(theta, dtype=np.float64), np.asarray(losses, dtype=np.float64)


def global_rows(rows: slice) -> int:
    """The backend's count of the rows placed by all processes together (N)."""
    import fastgd

    kernels = fastgd.get_backend("jax")
    X = np.zeros((N, D))[rows]
    data, _ = kernels.prepare(X, X[:, :1], np.zeros((D + 1, 1)), "all")
    return kernels.global_rows(data)


def main(argv: list[str]) -> int:
    coordinator, n_processes, process, out = argv[:4]
    n_processes, process = int(n_processes), int(process)
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # helpers
    import jax

    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(
        coordinator_address=coordinator, num_processes=n_processes, process_id=process,
        cluster_detection_method="deactivate", initialization_timeout=INIT_TIMEOUT_S,
        heartbeat_timeout_seconds=HEARTBEAT_TIMEOUT_S, shutdown_timeout_seconds=10,
    )  # fmt: skip
    if "--exit-early" in argv:
        os._exit(3)  # a crash: no goodbye to the coordinator, no atexit handlers
    results = {}
    for case in CASES:
        theta, losses = run_case(case, process_rows(process), "all")
        results[f"{case.name}/theta"], results[f"{case.name}/losses"] = theta, losses
    results["global-rows"] = np.array(global_rows(process_rows(process)))
    np.savez(out, **results)
    jax.distributed.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
