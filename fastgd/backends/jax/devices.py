"""Placement: one device, or a data-parallel mesh over several, across processes too.

The device or mesh :func:`prepare` places the data on (:func:`_placement`), the rows of
every process assembled into padded global arrays (:func:`_prepare_on_mesh`, with their
:class:`_Layout`), the sharding constraints of the programs on a mesh
(:func:`_spread_rows`, :func:`_replicate`), mini-batch orders as placed rows
(:func:`_orders_on_mesh`), and the tiny all-gathers by which the processes check that
they agree (:func:`_process_rows`, :func:`_check_batches`). See "Several devices" and
"Several processes" in the package docstring.
"""

from __future__ import annotations

import numbers
import zlib
from collections import Counter
from typing import NamedTuple

import jax
import numpy as np
from jax import lax
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from .batches import Data
from .runtime import _x64
from .staging import _padded_rows


def _default_device() -> jax.Device:
    """jax's default device: ``jax_default_device`` if the user set it, else the first one."""
    chosen = jax.config.jax_default_device
    if isinstance(chosen, jax.Device):
        return chosen
    return jax.devices(chosen)[0] if isinstance(chosen, str) else jax.devices()[0]


def _resolve_device(device: object) -> jax.Device:
    """The jax device called ``device`` (None: jax's default), or ``ValueError``."""
    if device is None:
        return _default_device()
    if isinstance(device, jax.Device):
        return device
    if isinstance(device, str) and device in ("cpu", "gpu"):
        try:
            found = jax.devices(device)
        except RuntimeError:
            found = []
        if found:
            return found[0]
        raise ValueError(
            f"device {device!r} is not available to jax on this machine "
            f"(jax sees {[str(d) for d in jax.devices()]})"
        )
    raise ValueError(f"device must be None, 'cpu', 'gpu' or a jax.Device, got {device!r}")


def _device_of(a: object) -> jax.Device:
    """The device holding ``a`` if it is a single-device jax array, else jax's default."""
    if isinstance(a, jax.Array):
        devices = a.devices()
        if len(devices) == 1:
            return next(iter(devices))
    return _default_device()


#: The one axis of a data-parallel mesh: the rows of the data and of every batch.
_ROWS = "rows"


class _Spread(NamedTuple):
    """What a compiled program on a mesh depends on (hashable, compared by value)."""

    mesh: Mesh
    #: The real rows of the data over all processes (the placed arrays have more: padding).
    rows: int


class _Layout(NamedTuple):
    """Where the rows of data spread over a mesh lie (see :func:`_prepare_on_mesh`).

    The placed arrays are ``P`` blocks of ``block`` rows, one per process in process
    order: process p's rows, then padding rows (zeros, weight 0) to the end of its block.
    Every block has at least one padding row; :attr:`pad_row`, the last row of process
    0's block, is the row that padded batches point to.
    """

    mesh: Mesh
    #: Real rows over all processes, N.
    rows: int
    #: Rows per process block: a multiple of the process's devices in the mesh.
    block: int
    #: Global index of the first row of each process, then N: P + 1 numbers.
    starts: tuple[int, ...]

    @property
    def spread(self) -> _Spread:
        return _Spread(self.mesh, self.rows)

    @property
    def pad_row(self) -> int:
        return self.block - 1

    def positions(self, index: np.ndarray) -> np.ndarray:
        """The placed row of each global row ``index`` (process 0's rows first)."""
        starts = np.asarray(self.starts, dtype=np.int64)
        process = np.searchsorted(starts, index, side="right") - 1
        return process * self.block + (index - starts[process])


class _MeshData(Data):
    """A :class:`Data` bundle spread over a mesh: padded global arrays and their layout.

    The layout is a plain attribute, not a field, so that the bundle is still the pytree
    of its three arrays (with a weight always: 0 on the padding rows). A bundle rebuilt
    by jax (``jax.tree.map``, :meth:`Data.take`) has no layout and all its rows count.
    """

    layout: _Layout | None = None


def _round_up(k: int, multiple: int) -> int:
    """The smallest multiple of ``multiple`` that is >= ``k``."""
    return -(-k // multiple) * multiple


def _requested_devices(devices: object) -> list[jax.Device]:
    """The devices of ``devices``: N (the first N of ``jax.devices()``), "all" or a list."""
    every = jax.devices()
    if isinstance(devices, str) and devices == "all":
        return list(every)
    if isinstance(devices, numbers.Integral) and not isinstance(devices, bool):
        if not 1 <= devices <= len(every):
            raise ValueError(
                f"devices={devices} asks for more devices than jax sees ({len(every)}: "
                f"{[str(d) for d in every]}) or fewer than 1"
            )
        return list(every[: int(devices)])
    if isinstance(devices, list | tuple) and devices:
        if not all(isinstance(d, jax.Device) for d in devices):
            raise ValueError(f"devices must list jax.Device objects, got {devices!r}")
        if len(set(devices)) != len(devices):
            raise ValueError(f"devices lists a device twice: {[str(d) for d in devices]}")
        return list(devices)
    raise ValueError(
        "device must be None, 'cpu', 'gpu' or a jax.Device, and devices an int, 'all' or "
        f"a non-empty list of jax.Device; got {devices!r}"
    )


def _mesh(devices: list[jax.Device]) -> Mesh:
    """A 1-D mesh over ``devices`` (axis ``"rows"``), each process's devices together.

    With several processes the mesh must hold the same number (>= 1) of devices of
    every process: each process places its own rows on its own devices.
    """
    platforms = sorted({d.platform for d in devices})
    if len(platforms) > 1:
        raise ValueError(f"devices must be of one platform, got {platforms}")
    if jax.process_count() > 1:
        devices = sorted(devices, key=lambda d: (d.process_index, d.id))
        per_process = Counter(d.process_index for d in devices)
        if len(per_process) != jax.process_count() or len(set(per_process.values())) != 1:
            raise ValueError(
                f"with {jax.process_count()} processes, devices must hold the same number of "
                f"devices of every process (devices='all' does); got {dict(per_process)} "
                "devices per process"
            )
    return Mesh(np.array(devices), (_ROWS,))


def _placement(device: object) -> jax.Device | Mesh:
    """The one device (``device`` None, "cpu", "gpu" or a jax.Device) or the mesh
    (``device`` N, "all" or a list of devices) that :func:`prepare` places the data on.

    A mesh of a single device, in a single process, is that device: the programs are
    then exactly those of ``device=None``.
    """
    if device is None or isinstance(device, jax.Device) or (
        isinstance(device, str) and device in ("cpu", "gpu")
    ):
        return _resolve_device(device)
    devices = _requested_devices(device)
    if len(devices) == 1 and jax.process_count() == 1:
        return devices[0]
    return _mesh(devices)


def _mesh_of(a: object) -> Mesh | None:
    """The mesh ``a`` is spread or replicated over (placed by this module), else None."""
    if isinstance(a, jax.Array) and isinstance(a.sharding, NamedSharding):
        mesh = a.sharding.mesh
        if isinstance(mesh, Mesh) and mesh.axis_names == (_ROWS,):
            return mesh
    return None


def _replicated(value: object, mesh: Mesh) -> jax.Array:
    """``value`` (a host array, a number or a jax array) as a copy on every device of ``mesh``.

    With several processes each process passes its own copy of the same value (the
    parameters, the epoch orders drawn from the same seed).
    """
    sharding = NamedSharding(mesh, PartitionSpec())
    if isinstance(value, jax.Array):
        if value.sharding.is_equivalent_to(sharding, value.ndim):
            return value
        if not value.is_fully_addressable:
            return jax.device_put(value, sharding)
    host = np.asarray(value)
    return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])


def _spread_rows(tree, spread: _Spread | None):
    """Inside a program: every array of ``tree`` with its rows split over the mesh."""
    if spread is None:
        return tree
    rows = NamedSharding(spread.mesh, PartitionSpec(_ROWS))
    return jax.tree.map(lambda a: lax.with_sharding_constraint(a, rows), tree)


def _replicate(tree, spread: _Spread | None):
    """Inside a program: every array of ``tree`` whole on every device of the mesh."""
    if spread is None:
        return tree
    whole = NamedSharding(spread.mesh, PartitionSpec())
    return jax.tree.map(lambda a: lax.with_sharding_constraint(a, whole), tree)


def _gather_from_processes(values: list[int]) -> np.ndarray:
    """``values`` of every process, one row per process in process order (P, len(values)).

    A tiny all-gather across the processes (their first collective); in a single
    process, just ``values``.
    """
    mine = np.array(values, dtype=np.int64)
    if jax.process_count() == 1:
        return mine[None, :]
    with _x64():
        table = multihost_utils.process_allgather(mine)
    return np.asarray(table, dtype=np.int64).reshape(jax.process_count(), mine.size)


def _process_rows(X: np.ndarray, Y: np.ndarray, theta: np.ndarray) -> np.ndarray:
    """Every process's row count (P,), once all agree on the rest of the data's shape."""
    shape = [X.shape[1], Y.shape[1], np.shape(theta)[1], np.dtype(X.dtype).itemsize]
    table = _gather_from_processes([X.shape[0], *shape])
    if (table[:, 1:] != table[0, 1:]).any():
        raise ValueError(
            "the processes' data disagree: (features, target columns, outputs, bytes per "
            f"value) per process: {table[:, 1:].tolist()}"
        )
    return table[:, 0]


def _prepare_on_mesh(
    mesh: Mesh, X: np.ndarray, Y: np.ndarray, theta: object, weight: np.ndarray | None
) -> tuple[_MeshData, jax.Array]:
    """:func:`prepare` on a mesh: this process's rows on its devices, theta everywhere.

    Each process pads its rows to a common ``block`` (a multiple of its devices, at least
    one padding row) with zero rows of weight 0, and the global arrays are assembled
    from the processes' blocks by ``jax.make_array_from_process_local_data``: split by
    rows over the mesh, process 0's block first.
    """
    counts = _process_rows(X, Y, theta)
    n_processes = counts.size
    block = _round_up(int(counts.max()) + 1, mesh.size // n_processes)
    if weight is None:
        weight = np.ones(X.shape[0], dtype=X.dtype)
    local = Data(*(_padded_rows(np.asarray(a), block) for a in (X, Y, weight)))
    rows = NamedSharding(mesh, PartitionSpec(_ROWS))
    with _x64():
        placed = jax.tree.map(
            lambda a: jax.make_array_from_process_local_data(
                rows, a, (n_processes * block, *a.shape[1:])
            ),
            local,
        )
        theta = _replicated(theta, mesh)
    data = _MeshData(*placed)
    starts = np.concatenate([[0], np.cumsum(counts)])
    data.layout = _Layout(mesh, int(counts.sum()), block, tuple(int(s) for s in starts))
    return data, theta


def _layout_of(data: Data) -> _Layout | None:
    """The layout of a bundle :func:`prepare` placed on a mesh, else None."""
    return getattr(data, "layout", None)


def _orders_on_mesh(orders: np.ndarray, batch_size: int, layout: _Layout) -> np.ndarray:
    """Mini-batch orders as placed rows, each batch padded to a multiple of the devices.

    Epoch e's batch j, the global rows ``orders[e, j·b : (j + 1)·b]``, becomes the j-th
    run of ``width = round_up(b, devices)`` entries: the placed rows of its samples, then
    the padding row (weight 0) up to ``width``; the short last batch likewise, up to a
    multiple of the devices. The epoch count is rounded up to a power of two as in
    :func:`_padded_epochs` (the extra rows are never run).
    """
    n_epochs, n = orders.shape
    devices = layout.mesh.size
    n_full, rest = divmod(n, batch_size)
    width, rest_width = _round_up(batch_size, devices), _round_up(rest, devices)
    placed = layout.positions(np.asarray(orders))
    full = np.full((n_epochs, n_full, width), layout.pad_row, dtype=np.int64)
    full[:, :, :batch_size] = placed[:, : n_full * batch_size].reshape(n_epochs, n_full, -1)
    padded = 1 << (n_epochs - 1).bit_length()
    dtype = np.int32 if layout.mesh.size * layout.block < 2**31 else np.int64
    out = np.full((padded, n_full * width + rest_width), layout.pad_row, dtype=dtype)
    out[:n_epochs, : n_full * width] = full.reshape(n_epochs, -1)
    out[:n_epochs, n_full * width : n_full * width + rest] = placed[:, n_full * batch_size :]
    return out


def _check_batches(full_batch: bool, batch_size: int, orders: np.ndarray, rows: int) -> None:
    """Raise, on every process alike, unless all run the same batches over all ``rows``.

    Each process shares whether it runs a full batch, its batch size, the length of its
    epoch orders and a checksum of them (a tiny all-gather; nothing to share in a single
    process), and all take the same decision from the same table: a process raising
    alone would leave the others waiting for it in a collective. Mini-batches need
    orders over all the rows, the same on every process.
    """
    several = jax.process_count() > 1
    if full_batch:
        mine = [1, 0, 0, 0]
    else:
        orders = np.ascontiguousarray(orders, dtype=np.int64) if several else orders
        checksum = zlib.crc32(orders.tobytes()) if several else 0
        mine = [0, batch_size, orders.shape[1], checksum]
    table = _gather_from_processes(mine)
    mini = table[table[:, 0] == 0]
    if (mini[:, 2] != rows).any():
        raise NotImplementedError(
            f"mini-batches over data placed by {table.shape[0]} process(es) need epoch "
            f"orders over all their {rows} rows, the same on every process; got orders over "
            f"{sorted(set(mini[:, 2].tolist()))} rows: call run_epochs with orders over "
            "global_rows(data) rows"
        )
    if (table != table[0]).any():
        raise ValueError(
            "the processes disagree on the batches (full batch, batch size, epoch order "
            f"length, order checksum) per process: {table.tolist()}; every process must "
            "pass the same batch size and the same epoch orders over the global rows"
        )
