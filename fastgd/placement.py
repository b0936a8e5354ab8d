"""Placing the data of a fit: whole, where the backend's kernels run, or as chunks of rows
when they exceed the memory budget (see :mod:`fastgd.chunks`)."""

from __future__ import annotations

from types import ModuleType
from typing import NamedTuple

from .chunks import ChunkedRows, default_memory_budget, rows_per_chunk
from .data import check_int
from .plan import Plan
from .sklearn_shuffle import SklearnShuffle
from .sparse import is_sparse

__all__ = ["Placed", "place"]


class Placed(NamedTuple):
    """The data and parameters where the backend reads them, and the epoch they make.

    Attributes
    ----------
    data : the backend's ``Data``, or None
        All the rows, placed by the backend's ``prepare``; None when they go in chunks.
    chunks : ChunkedRows or None
        The rows as chunks (each placed when its turn comes), or None.
    theta : array, shape (d + 1, K)
        The starting parameters, the backend's own (on its device).
    state : tuple (int, array of shape (3, d + 1, K))
        The starting optimizer state: the plan's, or the backend's ``init_state``.
    n : int
        Rows an epoch walks (those of every process, on a mesh).
    batch_size : int
        Samples per update, 1 <= batch_size <= n (n for the full batch).
    """

    data: object
    chunks: ChunkedRows | None
    theta: object
    state: tuple
    n: int
    batch_size: int

    def batches_per_epoch(self) -> int:
        """Updates per epoch: batches of ``batch_size`` rows (cut within each chunk)."""
        if self.chunks is not None:
            return self.chunks.batches_per_epoch(self.batch_size)
        return -(-self.n // self.batch_size)


def place(plan: Plan, kernels: ModuleType) -> Placed:
    """Put the plan's data, parameters and optimizer state where ``kernels`` run.

    Parameters
    ----------
    plan : Plan
        The checked problem.
    kernels : module
        The backend (see :mod:`fastgd.backends`).

    Returns
    -------
    Placed

    Raises
    ------
    ValueError
        For a device the backend cannot use, or (several processes) a batch size larger
        than the rows of all of them.
    NotImplementedError
        For scikit-learn's shuffle on data walked in chunks.
    """
    chunks = _chunks(plan)
    if chunks is not None and plan.shuffle and isinstance(plan.rng, SklearnShuffle):
        raise NotImplementedError(
            f"seed={plan.rng!r} (scikit-learn's row order) is not supported with chunked "
            "epochs (memory_budget, or a memmap X); pass an int seed or shuffle=False"
        )
    if chunks is None:
        data, theta = kernels.prepare(plan.X, plan.Y, plan.theta, plan.placement, plan.weight)
        n = kernels.global_rows(data) if plan.on_mesh else plan.X.shape[0]
    else:
        data, theta, n = None, plan.theta, plan.X.shape[0]
    batch_size = n if plan.batch_size is None else check_int("batch_size", plan.batch_size, 1, n)
    state = kernels.init_state(theta, plan.opt) if plan.state is None else plan.state
    return Placed(data, chunks, theta, state, n, batch_size)


def _chunks(plan: Plan) -> ChunkedRows | None:
    """The data as chunks when they exceed the memory budget, else None.

    Without a budget the data in host memory stay whole; a ``np.memmap`` X, or data for a
    jax accelerator, get half of the free host or device memory. A sparse X stays whole.
    """
    X, Y, weight = plan.X, plan.Y, plan.weight
    if is_sparse(X):  # placed whole (plan.make_plan refuses a memory_budget)
        return None
    bytes_per_row = X.itemsize * (X.shape[1] + Y.shape[1] + (weight is not None))
    memory_budget = plan.memory_budget
    if memory_budget is None:
        device_free = _accelerator_free_bytes(plan.backend, plan.placement)
        if not plan.file_backed and device_free is None:
            return None  # in host memory already: nothing to gain
        memory_budget = default_memory_budget(device_free)
    rows = rows_per_chunk(memory_budget, bytes_per_row)
    return None if rows >= X.shape[0] else ChunkedRows(X, Y, weight, rows)


def _accelerator_free_bytes(backend: str, placement: object) -> int | None:
    """Free memory of the jax accelerator the data go to, or None (host memory)."""
    if backend != "jax" or placement == "cpu":
        return None
    import jax

    device = placement if isinstance(placement, jax.Device) else jax.devices()[0]
    stats = device.memory_stats() if device.platform != "cpu" else None
    if not stats or "bytes_limit" not in stats:
        return None
    return int(stats["bytes_limit"] - stats.get("bytes_in_use", 0))
