"""The jax backend: ``jax.value_and_grad`` of one jnp objective, a scanned training loop.

One device, or several (a data-parallel mesh, across processes too; see "Several
devices" and "Several processes" below).

The same public names, signatures and semantics as ``fastgd.backends.numpy`` (whose docstrings
define the contract: parameters ``theta`` of shape (d + 1, K), data as one :class:`Data`
bundle ``(X, Y, weight)``, targets in the form the loss's formula uses):

- :func:`prepare` — move the data and parameters to a jax device, once per fit;
- :func:`loss_grad` — mean (weighted) loss plus penalty and its gradient, by
  ``jax.value_and_grad``;
- :func:`init_state` — the optimizer's state ``(step, slots)``, on the parameters' device;
- :func:`update` — one optimizer step (optax's formulas, written in jnp);
- :func:`run_epochs` — all batches of a chunk of epochs as one compiled program.

Design notes
------------
* **One definition of the mathematics.** Each loss and the penalty are written once in
  jnp (:func:`_sample_losses`, :func:`_penalty`); every gradient comes from
  ``jax.value_and_grad`` of the batch's (weighted) loss sum, divided by the batch size
  afterwards as numpy does, and of the penalty (:func:`_batch_loss_grad`). The formulas
  are written so that their jax derivative is the subgradient the other backends use
  at the kinks: the l1 term is ``w · sign(w)`` (derivative 0 at ``w = 0``, where
  ``jnp.abs`` would give 1), and the piecewise losses pick their branch with
  ``jnp.where`` on the same strict or non-strict comparison as numpy's derivative
  (``jnp.maximum`` would split the gradient at a tie: the hinge at a margin of exactly
  1 must give -s, scikit-learn's choice). The intercepts enter through
  ``stop_gradient`` when they are not fitted, so their gradient is exactly 0.
* **The loss-derivative clip.** With a finite ``max_dloss`` (scikit-learn SGD's
  ``MAX_DLOSS``) the per-sample losses go through :func:`_clipped_sample_losses`, a
  ``jax.custom_jvp`` whose derivative clips each d loss / d p before the samples'
  weights multiply it, so every gradient ``jax.value_and_grad`` takes (mini-batches,
  full and blocked full batches, on a mesh) is the clipped one; the reported loss is
  not clipped. Without a clip the programs are unchanged.
* **K outputs and sample weights.** The K outputs are the K columns of one (d, K) weight
  matrix; the per-sample loss is summed over them (or is the softmax cross-entropy of
  the row, for ``multinomial``). A batch objective is ``(1/m)·Σ_i weight_i·loss_i +
  penalty``; without weights :class:`Data` carries None, an empty subtree, so the
  unweighted program is a different compiled program with no multiplication at all.
  Weights that are all 1 are dropped by :func:`prepare`, so that they give bit for bit
  the numbers of no weights.
* **Static configuration is small.** A compiled program depends on the int codes (loss,
  optimizer, schedule), ``fit_intercept``, ``batch_size``, the array shapes (K among
  them), whether there are weights, the dtype and three booleans that let the program
  skip dead arithmetic: "some penalty is non-zero", "SGD has momentum" and "the loss
  derivatives are clipped". Every float hyper-parameter (the loss's epsilon, the
  penalty strengths, the clip, optimizer and schedule parameters) is a traced input, so
  refits with other values reuse the program. The number of epochs in a chunk is
  rounded up to a power of two (the extra rows are never run), so chunks of different
  lengths mostly share programs too.
* **Weights and intercepts apart.** The public functions take and return one matrix
  ``theta = [W; b]``, like the other backends; inside the compiled programs it travels
  as the pair ``(W, b)`` of shapes (d, K) and (1, K) (:func:`_split`, :func:`_join`),
  and so do the optimizer's slots, which spares every step the slicing and
  re-assembling of theta (about 15% of a per-sample SGD step on a CPU). A single output
  (K = 1) travels as vectors, ``W`` (d,), ``b`` (1,) and ``Y`` (n,) (:func:`_one_column`),
  which XLA:CPU runs faster per step than (d, 1) matrices. The arithmetic is the same,
  element by element.
* **One program per chunk.** :func:`run_epochs` is a single ``jax.jit`` call: a
  ``lax.fori_loop`` over epochs around a ``lax.scan`` over the full batches of each
  epoch, then the short last batch (its size ``n % batch_size`` is static, so it is a
  fixed piece of the same program, never a recompile). The batch order drawn by numpy
  comes in as an index array; nothing returns to the host until the chunk is done.
* **CPU specifics.** On a CPU, the mini-batch loop is compiled by XLA into one native
  function instead of one dispatched kernel per operation per step (see
  :func:`_epochs_program`), and a large full batch is evaluated in row blocks that stay
  in cache between the forward and the backward product (:func:`_blocked_loss_sum_grad`).
  Other platforms get the plain program. Host arrays handed to a CPU device are
  64-byte aligned first (:func:`_cpu_aligned`), so jax uses them in place instead of
  making its own, slower copy.
* **Precision.** float64 inputs run under ``jax.enable_x64(True)`` for the duration of
  each call of this module only (never switched on globally); float32 inputs stay
  float32, while the reported losses are accumulated in float64 (cheap: one scalar per
  batch). Matrix products use ``Precision.HIGHEST``, so float32 products on a GPU are
  true float32, not TF32-rounded.
* **Devices.** The code is device-agnostic: the same program runs on the CPU or a GPU,
  wherever :func:`prepare` put the data.
* **Several devices are a property of the placed data, not of the kernels.**
  ``prepare(..., device=N | "all" | [jax.Device, ...])`` (what ``fit(devices=...)``
  passes) builds a 1-D ``jax.sharding.Mesh`` (axis ``"rows"``) over the first N of
  ``jax.devices()``, all of them or those listed, and places the rows split over it
  (:func:`_prepare_on_mesh`); the parameters and the optimizer state are copies on every
  device. The programs are the single-device ones with two kinds of sharding
  constraints (:func:`_spread_rows`, :func:`_replicate`): each batch's rows split over
  the mesh, the parameters and slots whole on every device. The rest is XLA's: each
  device takes the loss and gradient of its share of the batch and XLA sums the
  devices' partial gradients (an all-reduce; no hand-written collective); gathering a
  mini-batch out of rows held by different devices becomes a local gather on each device
  and an all-reduce of the (m, d) batch, never a copy of ``X``. Uneven sizes are exact:
  the placed rows are padded with zero rows of weight 0, and each batch's indices up to
  a multiple of the devices with one of those padding rows (:func:`_orders_on_mesh`);
  the mean divides by the real batch size, a number fixed in the program, so no sample
  is dropped or counted twice. On a mesh the data always carry weights (1 without sample
  weights; multiplying by 1 rounds nothing), so the per-sample numbers are those of one
  device and only the order of the sums differs: the results agree with one device to
  rounding (measured 4e-15 relative at most, tested to 1e-9). A mesh of one device in one
  process is that device, run by the single-device programs; on a mesh the CPU specifics
  above (single kernel, row blocks) are left out.
* **Several processes.** After ``jax.distributed.initialize(...)`` every process calls
  ``fit(X_local, y_local, backend="jax", devices="all", ...)`` (or the kernels) with its
  own rows, any number of them, and the same everything else. The global rows are
  process 0's rows, then process 1's, and so on (``jax.process_index()`` order).
  :func:`prepare` exchanges the row counts with a tiny all-gather (checking that the
  features, outputs and dtype agree), pads each process's rows to a common block (a
  multiple of its devices) and assembles the global arrays with
  ``jax.make_array_from_process_local_data``: each process's rows stay on its own
  devices; the mesh holds the same number of devices of every process. Every process
  ends with the same parameters.

  - A full batch is every row of every process: equal to one process on the
    concatenated rows (tested to 1e-9).
  - Mini-batches: :func:`run_epochs` takes epoch orders over all N global rows, the same
    on every process, which numpy draws from the same seed on every process without any
    communication. Epoch e's batch j is the global rows ``orders[e, j·b : (j + 1)·b]``,
    wherever they live, and shuffling permutes all N rows, so a batch mixes the rows of
    every process: exactly the batches one process walks on the concatenated rows with
    the same orders (tested to 1e-9). Before each chunk the processes compare the batch
    size and a checksum of their orders (a tiny all-gather) and all raise if they
    differ, rather than wait for each other in different programs. ``fit`` draws its
    orders over :func:`global_rows` rows, from ``seed``: every process must pass the
    same seed (and the same other arguments).
  - Sample weights reach the kernels as given; ``fit`` rescales them to mean 1 over the
    rows of every process (one more tiny all-gather).
  - A process that dies is noticed by jax's coordination service (heartbeats): the
    others are terminated by jax instead of waiting forever.
* **Compilation cache.** On import, if the user has not configured jax's persistent
  compilation cache, it is pointed at ``$FASTGD_JAX_CACHE_DIR`` (default
  ``~/.cache/fastgd/jax``) with no minimum compile time, so a new process reuses the
  programs compiled by earlier ones.
"""

from __future__ import annotations

import numbers
import os
import zlib
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.experimental import multihost_utils
from jax.experimental.xla_metadata import set_xla_metadata
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from ..._rows import map_row_ranges, staging_buffer
from ...specs import (
    LOSS_EPSILON_INSENSITIVE,
    LOSS_HINGE,
    LOSS_HUBER,
    LOSS_LOGISTIC,
    LOSS_MODIFIED_HUBER,
    LOSS_MULTINOMIAL,
    LOSS_SQUARED,
    LOSS_SQUARED_EPSILON_INSENSITIVE,
    LOSS_SQUARED_HINGE,
    OPT_ADAGRAD,
    OPT_ADAM,
    OPT_ADAMW,
    OPT_RMSPROP,
    OPT_SGD,
    SCHED_CONSTANT,
    SCHED_COSINE,
    SCHED_EXPONENTIAL,
    SCHED_INVSCALING,
    SCHED_OPTIMAL,
    LoweredModel,
    LoweredOptimizer,
)

__all__ = ["NAME", "Data", "prepare", "loss_grad", "init_state", "update", "run_epochs"]

NAME = "jax"

State = tuple[jax.Array, jax.Array]

#: Inside the compiled programs: weights (d, K) and intercepts (1, K); (d,) and (1,) for K = 1.
Params = tuple[jax.Array, jax.Array]

_HIGHEST = lax.Precision.HIGHEST

# The traced hyper-parameter vector (float64) of run_epochs: the model's four numbers
# (see _model_hyper), then the optimizer's four and the schedule's three (see _opt_hyper).
_N_MODEL_HYPER = 4


class Data(NamedTuple):
    """The training data as the kernels read them (jax arrays on one device, or split by
    rows over a mesh: see :class:`_MeshData`).

    A NamedTuple is a jax pytree, so the bundle goes into the compiled programs as one
    argument; a ``weight`` of None is an empty subtree, which makes "weighted or not"
    part of the program's static structure.

    Attributes
    ----------
    X : jax.Array, shape (n, d)
        Samples, float32 or float64.
    Y : jax.Array, shape (n, T)
        Targets in ``X``'s dtype: T = K outputs, or T = 1 column of class codes for the
        multinomial loss.
    weight : jax.Array of shape (n,) or None
        Per-sample weights in ``X``'s dtype; None means all ones.
    """

    X: jax.Array
    Y: jax.Array
    weight: jax.Array | None = None

    def take(self, idx: jax.Array) -> Data:
        """The rows ``idx`` of every array (a mini-batch); ``idx`` must be in bounds.

        Also used inside the compiled programs, where the promise spares the bounds
        handling of each gather.
        """
        return jax.tree.map(lambda a: a.at[idx].get(mode="promise_in_bounds"), self)


# ----------------------------------------------------------------- configuration


def _configure_compilation_cache() -> None:
    """Turn on jax's persistent compilation cache unless the user configured one."""
    if jax.config.jax_compilation_cache_dir:
        return
    default = os.path.join(os.path.expanduser("~"), ".cache", "fastgd", "jax")
    jax.config.update("jax_compilation_cache_dir", os.environ.get("FASTGD_JAX_CACHE_DIR", default))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    # jax decides once, at its first compilation, whether the cache is in use; start over
    # in case something was compiled before this module was imported.
    from jax.experimental.compilation_cache import compilation_cache

    compilation_cache.reset_cache()


_configure_compilation_cache()


@contextmanager
def _x64() -> Iterator[None]:
    """64-bit types for the duration of one call of this module, restored afterwards."""
    with jax.enable_x64(True):
        yield


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


# ---------------------------------------------------------------- several devices

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


def _padded_rows(a: np.ndarray, block: int) -> np.ndarray:
    """``a`` followed by zero rows up to ``block`` rows."""
    out = np.zeros((block, *a.shape[1:]), dtype=a.dtype)
    out[: a.shape[0]] = a
    return out


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


def global_rows(data: Data) -> int:
    """The rows a bundle from :func:`prepare` trains on: those of every process.

    Not one of the backend contract's names: what ``fit`` needs to draw epoch orders
    over all the rows when several processes each placed their own (the n of
    :func:`run_epochs`'s orders). On one device, or several in one process, the bundle's
    own row count.
    """
    layout = _layout_of(data)
    return data.X.shape[0] if layout is None else layout.rows


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


class _ModelStatic(NamedTuple):
    """What the compiled program of a model depends on (hashable, compared by value).

    Whether the samples are weighted is static too, but travels as the structure of the
    :class:`Data` argument (a weight of None is an empty subtree).
    """

    loss_code: int
    fit_intercept: bool
    #: Whether any penalty strength is non-zero; without one, the program leaves the
    #: penalty out (a measurable saving per step for small batches). The strengths
    #: themselves stay traced, so all penalised fits share one program.
    penalized: bool
    #: Whether the loss derivatives are clipped (``max_dloss`` finite); without a clip
    #: the program is the unclipped one, operation for operation. The bound itself is
    #: traced (see :func:`_clipped_sample_losses`).
    clipped: bool = False


def _model_static(model: LoweredModel) -> _ModelStatic:
    penalized = model.l2 != 0.0 or model.l1 != 0.0
    clipped = bool(np.isfinite(model.max_dloss))
    return _ModelStatic(int(model.loss_code), bool(model.fit_intercept), penalized, clipped)


class _OptStatic(NamedTuple):
    """What the compiled program of an optimizer depends on (hashable, compared by value)."""

    code: int
    schedule_code: int
    #: SGD with a non-zero momentum; without it the trace is the gradient itself and
    #: the program skips the momentum arithmetic (measurably faster per sample).
    momentum: bool


def _opt_static(opt: LoweredOptimizer) -> _OptStatic:
    momentum = opt.code == OPT_SGD and opt.params[0] != 0.0
    return _OptStatic(int(opt.code), int(opt.schedule_code), momentum)


def _model_hyper(model: LoweredModel) -> np.ndarray:
    """The model's float hyper-parameters as a (4,) float64 vector: the loss's epsilon,
    the penalty strengths l2 and l1, the clip ``max_dloss`` (inf for none)."""
    return np.array(
        [model.loss_param, model.l2, model.l1, model.max_dloss], dtype=np.float64
    )


def _opt_hyper(opt: LoweredOptimizer) -> np.ndarray:
    """The optimizer's and schedule's float hyper-parameters as a (7,) float64 vector."""
    return np.array([*opt.params, *opt.schedule_params], dtype=np.float64)


# ------------------------------------------------------------------- mathematics


def _multinomial(P: jax.Array, codes: jax.Array) -> jax.Array:
    """Softmax cross-entropy per row, shape (m,), of scores ``P`` (m, K) and codes (m, 1).

    ``logsumexp`` is the stable one (shifted by the row maximum); the picked score is
    taken through a one-hot mask, whose derivative is the mask itself.
    """
    picked = codes == jnp.arange(P.shape[1], dtype=codes.dtype)
    return jax.nn.logsumexp(P, axis=1) - jnp.sum(jnp.where(picked, P, 0.0), axis=1)


def _signed_label_loss(code: int, P: jax.Array, S: jax.Array) -> jax.Array:
    """Margin losses of labels ``S`` = ±1 (scikit-learn's formulas), with z = s·p.

    Each branch is chosen by ``jnp.where`` on numpy's comparison, so the derivative at a
    kink is numpy's: the hinge at z = 1 gives -s.
    """
    z = S * P
    if code == LOSS_HINGE:  # max(0, 1 - z)
        return jnp.where(z > 1, 0.0, 1 - z)
    gap = jnp.where(z < 1, 1 - z, 0.0)  # max(1 - z, 0)
    if code == LOSS_SQUARED_HINGE:
        return gap * gap
    # modified Huber: 0 for z >= 1, (1 - z)^2 for -1 <= z < 1, -4z below
    return jnp.where(z < -1, -4 * z, gap * gap)


def _residual_loss(code: int, eps: jax.Array, r: jax.Array) -> jax.Array:
    """Regression losses of the residual ``r = p − y`` (``eps``: the loss's epsilon)."""
    if code == LOSS_HUBER:
        abs_r = jnp.abs(r)
        return jnp.where(abs_r <= eps, 0.5 * r * r, eps * (abs_r - 0.5 * eps))
    if code in (LOSS_EPSILON_INSENSITIVE, LOSS_SQUARED_EPSILON_INSENSITIVE):
        excess = jnp.abs(r) - eps
        excess = jnp.where(excess > 0, excess, 0.0)  # max(0, |r| - eps), derivative 0 at 0
        return excess if code == LOSS_EPSILON_INSENSITIVE else excess * excess
    if code == LOSS_SQUARED:
        return 0.5 * r * r
    raise ValueError(f"unknown loss code {code!r}")


def _sample_losses(P: jax.Array, Y: jax.Array, loss_code: int, eps: jax.Array) -> jax.Array:
    """Per-sample losses (m,), summed over the outputs: what every gradient derives from.

    ``P`` and ``Y`` are (m, K) and (m, T) as in :class:`Data`, or (m,) and (m,) for a
    single output inside the programs (see :func:`_split`).
    """
    if loss_code == LOSS_MULTINOMIAL:
        return _multinomial(P, Y)
    if loss_code == LOSS_LOGISTIC:
        losses = jnp.logaddexp(0.0, P) - Y * P
    elif loss_code in (LOSS_HINGE, LOSS_SQUARED_HINGE, LOSS_MODIFIED_HUBER):
        losses = _signed_label_loss(loss_code, P, Y)
    else:
        losses = _residual_loss(loss_code, eps, P - Y)
    return losses if losses.ndim == 1 else jnp.sum(losses, axis=1)


@partial(jax.custom_jvp, nondiff_argnums=(0,))
def _clipped_sample_losses(
    loss_code: int, P: jax.Array, Y: jax.Array, eps: jax.Array, max_dloss: jax.Array
) -> jax.Array:
    """:func:`_sample_losses`, with its derivative in ``P`` clipped to ``±max_dloss``.

    The value is that of :func:`_sample_losses`; the derivative (see
    :func:`_clipped_sample_losses_jvp`) takes each d loss / d p (each of the K outputs of
    each sample) clipped to ``[-max_dloss, max_dloss]``, scikit-learn SGD's clip. Since
    the samples' weights multiply the losses afterwards, the reverse pass of
    ``jax.value_and_grad`` weights the clipped derivatives, as scikit-learn does.
    ``Y``, ``eps`` and ``max_dloss`` are not differentiated (their tangents are
    ignored).
    """
    return _sample_losses(P, Y, loss_code, eps)


@_clipped_sample_losses.defjvp
def _clipped_sample_losses_jvp(loss_code: int, primals: tuple, tangents: tuple):
    """The jvp of :func:`_clipped_sample_losses`: ``Σ_k clip(d loss / d p_k)·dp_k``.

    The per-element derivatives are the pullback of ones through the per-sample losses
    (each loss depends on its own row of ``P`` only), so they are jax's own derivatives
    of :func:`_sample_losses`, subgradients at the kinks included, then clipped.
    """
    P, Y, eps, max_dloss = primals
    losses, pullback = jax.vjp(lambda P: _sample_losses(P, Y, loss_code, eps), P)
    (dloss,) = pullback(jnp.ones_like(losses))
    terms = jnp.clip(dloss, -max_dloss, max_dloss) * tangents[0]
    return losses, terms if terms.ndim == 1 else jnp.sum(terms, axis=1)


def _penalty(W: jax.Array, l2: jax.Array, l1: jax.Array) -> jax.Array:
    """``l2/2·‖W‖² + l1·‖W‖₁`` over all entries; ``w·sign(w)`` has l1 derivative 0 at 0."""
    return 0.5 * l2 * jnp.vdot(W, W, precision=_HIGHEST) + l1 * jnp.sum(W * jnp.sign(W))


def _one_column(theta: jax.Array, static: _ModelStatic) -> bool:
    """Whether a program carries its single output as vectors (see :func:`_split`).

    A model of one output (K = 1, never the multinomial loss) runs on weights (d,), an
    intercept (1,) and targets (n,) inside the programs, as before there were K outputs:
    XLA:CPU's (d, 1) products and (n, 1) gathers cost more per step (per-sample SGD with
    d = 10: 15% more time, bit-identical results).
    """
    return theta.shape[1] == 1 and static.loss_code != LOSS_MULTINOMIAL


def _split(theta: jax.Array, one_column: bool = False) -> Params:
    """``theta`` (d + 1, K) as the pair (weights (d, K), intercepts (1, K)).

    With ``one_column`` (K = 1), the pair (weights (d,), intercept (1,)).
    """
    if one_column:
        theta = theta[:, 0]
    return theta[:-1], theta[-1:]


def _join(params: Params) -> jax.Array:
    """The inverse of :func:`_split`: theta of shape (d + 1, K)."""
    theta = jnp.concatenate(params)
    return theta[:, None] if theta.ndim == 1 else theta


def _columns(data: Data, one_column: bool) -> Data:
    """``data`` with ``Y`` as a vector (n,) when the program runs on one column."""
    return data._replace(Y=data.Y[:, 0]) if one_column else data


def _loss_sum(
    params: Params, data: Data, model_hyper: jax.Array, static: _ModelStatic
) -> tuple[jax.Array, jax.Array]:
    """Sum over the rows of ``data`` of the (weighted) per-sample loss of ``P = X @ W + b``.

    ``params`` is the pair ``(W, b)`` of shapes (d, K) and (1, K), or (d,) and (1,) with
    ``Y`` of shape (m,) for one output (see :func:`_split`): inside the compiled programs
    the weights and the intercepts travel separately, which spares every step the
    slicing and re-assembling of theta (about 15% of a per-sample SGD step on a CPU).

    Returns
    -------
    total : 0-d array, dtype of ``W``
        ``Σ_i weight_i·loss_i``, what is differentiated; ``b`` gets no gradient when the
        intercept is not fitted.
    total64 : 0-d float64 array
        The same sum accumulated in float64 (``total`` itself for float64 data).
    """
    W, b = params
    if not static.fit_intercept:
        b = lax.stop_gradient(b)
    X, Y, weight = data
    P = jnp.matmul(X, W, precision=_HIGHEST) + b
    eps = model_hyper[0].astype(W.dtype)
    if static.clipped:
        max_dloss = model_hyper[3].astype(W.dtype)
        losses = _clipped_sample_losses(static.loss_code, P, Y, eps, max_dloss)
    else:
        losses = _sample_losses(P, Y, static.loss_code, eps)
    if weight is not None:
        losses = losses * weight
    total = jnp.sum(losses)
    if W.dtype == jnp.float64:
        return total, total
    return total, jnp.sum(losses.astype(jnp.float64))


def _penalty_term(W: jax.Array, model_hyper: jax.Array) -> tuple[jax.Array, jax.Array]:
    """The penalty on the weights ``W`` in their dtype, and in float64 for the report."""
    l2, l1 = model_hyper[1].astype(W.dtype), model_hyper[2].astype(W.dtype)
    penalty = _penalty(W, l2, l1)
    if W.dtype == jnp.float64:
        return penalty, penalty
    report = 0.5 * model_hyper[1] * jnp.vdot(W, W, precision=_HIGHEST).astype(
        jnp.float64
    ) + model_hyper[2] * jnp.sum(jnp.abs(W)).astype(jnp.float64)
    return penalty, report


_loss_sum_value_and_grad = jax.value_and_grad(_loss_sum, has_aux=True)
_penalty_value_and_grad = jax.value_and_grad(_penalty_term, has_aux=True)

#: Bytes of ``X`` per row block of the blocked full-batch gradient on a CPU: small enough
#: that the block is still in the last-level cache when the backward pass reads it again,
#: large enough that XLA:CPU's per-block work (it copies the block into a scratch buffer,
#: then runs two multi-threaded products on it, each a dispatch and a join of its
#: threads) stays small next to reading the block from memory. Measured
#: on a 2-core AMD EPYC with 32 MiB of L3, gradient of 2,000,000 x 32 float64, each size
#: in a fresh process: 1-4 MiB 50-62 ms, 5-6 MiB 40-47 ms, 8 MiB 44-49 ms, 24 MiB 63-71 ms
#: (numpy's ``X @ w``: 20-24 ms).
_BLOCK_BYTES = 5 * 2**20


def _block_rows(n: int, d: int, itemsize: int, on_cpu: bool) -> int:
    """Rows per block for a full batch of n rows (n itself: not blocked)."""
    rows = max(64, _BLOCK_BYTES // (d * itemsize))
    return rows if on_cpu and n >= 4 * rows else n


def _batch_loss_grad(params, data, model_hyper, static, block_rows=None, rows=None):
    """Batch objective (mean weighted loss + penalty) and its gradient.

    The gradient is ``jax.value_and_grad`` of the loss sum (:func:`_loss_sum`), divided
    by the batch size afterwards as numpy divides ``Xᵀ·dloss``, plus that of the penalty
    (:func:`_penalty_term`). Dividing after differentiating keeps the samples' weights
    the only factor of the sum, so that a weight of 1 changes no rounding of
    :func:`loss_grad` (a constant 1/m folded into each sample's derivative was rounded
    differently with and without weights).

    Parameters
    ----------
    params : (W, b)
        See :func:`_split`.
    data : Data
        The batch, m rows.
    model_hyper : array, shape (4,)
        Epsilon, the penalty strengths and the derivative clip (float64; see
        :func:`_model_hyper`).
    static : _ModelStatic
        Loss code, whether the intercept is trained, whether there is a penalty, whether
        the loss derivatives are clipped.
    block_rows : int, optional
        Fewer than m rows: the loss sum is taken block by block (large full batches on a
        CPU, see :func:`_block_rows`).
    rows : int, optional
        The real batch size, the divisor of the mean: m unless the batch was padded with
        rows of weight 0 (on a mesh).

    Returns
    -------
    report : 0-d float64 array
        The objective, with the mean and the penalty summed in float64 as the numpy
        backend reports it.
    grad : (W, b) pair
        Its gradient, in the parameters' dtype.
    """
    m = data.X.shape[0]
    if block_rows is not None and block_rows < m:
        total64, grad = _blocked_loss_sum_grad(params, data, model_hyper, static, block_rows)
    else:
        (_, total64), grad = _loss_sum_value_and_grad(params, data, model_hyper, static)
    m = m if rows is None else rows
    if m != 1:
        grad = jax.tree.map(lambda g: g / m, grad)
    if not static.penalized:
        return total64 / m, grad
    (_, penalty64), penalty_grad = _penalty_value_and_grad(params[0], model_hyper)
    return total64 / m + penalty64, (grad[0] + penalty_grad, grad[1])


def _blocked_loss_sum_grad(params, data, model_hyper, static, block_rows):
    """The loss sum (float64) and its gradient, one row block at a time.

    ``jax.value_and_grad`` of :func:`_loss_sum` is taken block by block (forward and
    backward pass on a block while it is in cache, so ``X`` is read from memory once)
    and the blocks' sums are added up: the same as on all rows at once; only the order
    of the additions differs.
    """
    n = data.X.shape[0]
    n_blocks, rest = divmod(n, block_rows)

    def block(start, rows, acc):
        rows_of = jax.tree.map(lambda a: lax.dynamic_slice_in_dim(a, start, rows), data)
        (_, total64), grad = _loss_sum_value_and_grad(params, rows_of, model_hyper, static)
        return acc[0] + total64, jax.tree.map(jnp.add, acc[1], grad)

    acc = (jnp.zeros((), jnp.float64), jax.tree.map(jnp.zeros_like, params))
    acc = lax.fori_loop(0, n_blocks, lambda i, acc: block(i * block_rows, block_rows, acc), acc)
    if rest:
        acc = block(n_blocks * block_rows, rest, acc)
    return acc


def _learning_rate(schedule_code: int, sched: jax.Array, t: jax.Array) -> jax.Array:
    """Learning rate at update ``t`` (from 1), in float64, as ``specs.learning_rate``."""
    lr0, p1, p2 = sched[0], sched[1], sched[2]
    t = t.astype(jnp.float64)
    if schedule_code == SCHED_CONSTANT:
        return lr0
    if schedule_code == SCHED_INVSCALING:
        return lr0 / t**p1
    if schedule_code == SCHED_EXPONENTIAL:
        return lr0 * p1 ** ((t - 1.0) / p2)
    if schedule_code == SCHED_COSINE:
        k = jnp.minimum(t - 1.0, p1)
        return lr0 * ((1.0 - p2) * 0.5 * (1.0 + jnp.cos(jnp.pi * k / p1)) + p2)
    if schedule_code == SCHED_OPTIMAL:  # lr0 is alpha, p1 is t0
        return 1.0 / (lr0 * (p1 + t - 1.0))
    raise ValueError(f"unknown schedule code {schedule_code!r}")


def _update_part(
    x: jax.Array,
    g: jax.Array,
    slot0: jax.Array,
    slot1: jax.Array,
    lr: jax.Array,
    hyper: tuple[jax.Array, ...],
    t: jax.Array,
    opt: _OptStatic,
    decay: bool,
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """One optimizer step on one part of the parameters (optax's formulas, elementwise).

    ``hyper`` is the optimizer's four numbers in the parameters' dtype, ``t`` the step
    number (from 1) in that dtype, ``decay`` whether AdamW's weight decay applies to this
    part (the weights, not the intercept). Returns the new part and its two slots.
    """
    a, b, c, d = hyper
    if opt.code == OPT_SGD and not opt.momentum:  # the trace is the gradient itself
        return x - lr * g, g, slot1
    if opt.code == OPT_SGD:
        trace = g + a * slot0
        u = jnp.where(b != 0, g + a * trace, trace)
        return x - lr * u, trace, slot1
    if opt.code == OPT_ADAGRAD:
        acc = slot0 + g * g
        return x - lr * (g / jnp.sqrt(acc + b)), acc, slot1
    if opt.code == OPT_RMSPROP:
        ms = (1 - a) * g * g + a * slot0
        return x - lr * (g / jnp.sqrt(ms + b)), ms, slot1
    if opt.code in (OPT_ADAM, OPT_ADAMW):
        m = (1 - a) * g + a * slot0
        v = (1 - b) * g * g + b * slot1
        u = (m / (1 - a**t)) / (jnp.sqrt(v / (1 - b**t)) + c)
        if opt.code == OPT_ADAMW and decay:
            u = u + d * x
        return x - lr * u, m, v
    raise ValueError(f"unknown optimizer code {opt.code!r}")


def _update_step(
    params: Params,
    grad: Params,
    step: jax.Array,
    slots: tuple[Params, Params],
    opt_hyper: jax.Array,
    opt: _OptStatic,
) -> tuple[Params, jax.Array, tuple[Params, Params]]:
    """One optimizer step on ``(W, b)``; returns new ``params``, ``step``, ``slots``.

    Each slot is a ``(W, b)`` pair like the parameters, so a loop carries them without
    copies.
    """
    dtype = params[0].dtype
    t = step + 1
    lr = _learning_rate(opt.schedule_code, opt_hyper[4:7], t).astype(dtype)
    hyper = tuple(opt_hyper[i].astype(dtype) for i in range(4))
    w, slot0_w, slot1_w = _update_part(
        params[0], grad[0], slots[0][0], slots[1][0], lr, hyper, t.astype(dtype), opt, True
    )
    b, slot0_b, slot1_b = _update_part(
        params[1], grad[1], slots[0][1], slots[1][1], lr, hyper, t.astype(dtype), opt, False
    )
    return (w, b), t, ((slot0_w, slot0_b), (slot1_w, slot1_b))


# ------------------------------------------------------------- compiled programs


@partial(jax.jit, static_argnames=("static", "block_rows", "spread"))
def _loss_grad_program(data, theta, model_hyper, *, static, block_rows, spread=None):
    one = _one_column(theta, static)
    params, data = _split(theta, one), _spread_rows(_columns(data, one), spread)
    rows = None if spread is None else spread.rows
    report, grad = _batch_loss_grad(params, data, model_hyper, static, block_rows, rows)
    return _replicate((report, _join(grad)), spread)


@partial(jax.jit, static_argnames=("opt",))
def _update_program(theta, grad, step, slots, opt_hyper, *, opt):
    slots = (_split(slots[0]), _split(slots[1]))
    params, step, (s0, s1) = _update_step(_split(theta), _split(grad), step, slots, opt_hyper, opt)
    return _join(params), step, jnp.stack([_join(s0), _join(s1)])


_EPOCHS_STATIC = ("static", "opt", "batch_size", "block_rows", "spread")


def _epochs(
    data, theta, step, slots, orders, n_epochs, hyper,
    *, static, opt, batch_size, block_rows, spread=None,
):  # fmt: skip
    """Run ``n_epochs`` (traced, <= orders.shape[0]) epochs; see :func:`run_epochs`.

    ``block_rows`` < n evaluates a full batch block by block (see
    :func:`_blocked_loss_sum_grad`). With ``spread`` (data on a mesh, see
    :func:`_run_epochs_on_mesh`) the n real rows are among padding rows of weight 0,
    each batch of the orders is padded to a multiple of the devices (see
    :func:`_orders_on_mesh`) and its rows are split over the mesh, the parameters and
    the optimizer state are whole on every device; without, the program is the
    single-device one.
    """
    n = data.X.shape[0] if spread is None else spread.rows
    one = _one_column(theta, static)
    data = _columns(data, one)
    model_hyper, opt_hyper = hyper[:_N_MODEL_HYPER], hyper[_N_MODEL_HYPER:]

    def train_on(carry, batch, rows):
        params, step, slots, total = carry
        batch = _spread_rows(batch, spread)
        report, grad = _batch_loss_grad(params, batch, model_hyper, static, block_rows, rows)
        params, step, slots = _update_step(params, grad, step, slots, opt_hyper, opt)
        params, slots = _replicate((params, slots), spread)
        return (params, step, slots, total + report * rows), report

    n_full, rest = divmod(n, batch_size)
    devices = 1 if spread is None else spread.mesh.size
    width, rest_width = _round_up(batch_size, devices), _round_up(rest, devices)

    def train_on_indices(carry, idx, rows=batch_size):
        return train_on(carry, data.take(idx), rows)

    def epoch(e, carry):
        params, step, slots, losses = carry
        inner = (params, step, slots, jnp.zeros((), jnp.float64))
        if batch_size >= n:
            inner, report = train_on(inner, data, n)
            epoch_loss = report
        else:
            order = orders[e]
            batches = order[: n_full * width].reshape(n_full, width)
            inner, _ = lax.scan(train_on_indices, inner, batches)
            if rest:
                last = order[n_full * width : n_full * width + rest_width]
                inner, _ = train_on_indices(inner, last, rest)
            epoch_loss = inner[3] / n
        params, step, slots, _ = inner
        return params, step, slots, losses.at[e].set(epoch_loss)

    losses = jnp.zeros(orders.shape[0], jnp.float64)
    carry = (_split(theta, one), step, (_split(slots[0], one), _split(slots[1], one)), losses)
    params, step, (s0, s1), losses = lax.fori_loop(0, n_epochs, epoch, carry)
    return _replicate((_join(params), step, jnp.stack([_join(s0), _join(s1)]), losses), spread)


_epochs_call = jax.jit(_epochs, static_argnames=_EPOCHS_STATIC)

#: XLA:CPU options of the single-kernel program: no YNNPACK fusions. XLA:CPU hands a
#: matrix-matrix product (a mini-batch of K > 1 outputs) to YNNPACK as a custom fusion,
#: which the single-kernel emitter does not support ("Fusion kind not implemented on
#: CPU"); without it the product is emitted inline like the other operations. Measured
#: (2 cores, float64, Adam, 3 epochs of 100,000 samples, K = 3): batch 8 and d = 10,
#: 12 ms against 300 ms for the plain program; batch 64 and d = 100, 124 against 124 ms.
_SINGLE_KERNEL_OPTIONS = {"xla_cpu_experimental_ynn_fusion_type": ""}


@partial(jax.jit, static_argnames=_EPOCHS_STATIC)
def _portable_program(*args, **static):
    """:func:`_epochs` as one compiled program, each operation its own kernel."""
    return _epochs(*args, **static)


@partial(jax.jit, static_argnames=_EPOCHS_STATIC, compiler_options=_SINGLE_KERNEL_OPTIONS)
def _single_kernel_program(*args, **static):
    """:func:`_epochs` as one compiled program whose loop is one native CPU function."""
    with set_xla_metadata(xla_cpu_small_call="true", inlineable="false"):
        return _epochs_call(*args, **static)


def _epochs_program(*args, single_cpu_kernel: bool, **static):
    """:func:`_epochs` as one compiled program.

    With ``single_cpu_kernel`` (set for mini-batches on a CPU device) the whole loop is
    an outlined call that XLA:CPU compiles into a single native function (the call is
    tagged ``xla_cpu_small_call``, and ``inlineable="false"`` keeps XLA from inlining it
    first; see :data:`_SINGLE_KERNEL_OPTIONS` for K > 1). Otherwise XLA:CPU runs every
    operation of every step as a separately dispatched kernel, whose overhead (some
    0.1 µs each) dominates small batches: on this project's benchmarks the single kernel
    is 2.4x (Adam, batch 64) to 4x (per-sample SGD) faster, with bit-identical results.
    Should a future XLA ignore the tag, the call is run as an ordinary one: slower, not
    different. GPU programs are compiled without it.
    """
    program = _single_kernel_program if single_cpu_kernel else _portable_program
    return program(*args, **static)


# ------------------------------------------------------------------ public names


def prepare(
    X: np.ndarray,
    Y: np.ndarray,
    theta: np.ndarray,
    device: object = None,
    sample_weight: np.ndarray | None = None,
) -> tuple[Data, jax.Array]:
    """Bundle the data and move them and the parameters to a jax device, once per fit.

    Parameters
    ----------
    X : ndarray, shape (n, d)
        Checked, C-contiguous, float32 or float64 (kept as is). With several processes:
        this process's rows.
    Y : ndarray, shape (n, T)
        Kernel targets (see :class:`Data`), same dtype.
    theta : ndarray, shape (d + 1, K)
        Starting parameters, same dtype (the same on every process).
    device : None, "cpu", "gpu", jax.Device, int, "all" or list of jax.Device
        Where to run. One device: None means jax's default device. Several (what
        ``fit(devices=...)`` passes): the first N of ``jax.devices()``, "all" of them, or
        those listed, as a 1-D mesh whose devices each hold a share of the rows (see the
        module docstring); a mesh of one device in one process is that device.
    sample_weight : ndarray of shape (n,), optional
        Per-sample weights, same dtype; None means all ones.

    Returns
    -------
    data : Data
        ``Data(X, Y, sample_weight)``: the same values and dtype, on the device; weights
        that are all 1 become None. Unit weights are then no weights bit for bit: the
        unweighted program runs (two different XLA programs may round differently, as
        XLA:CPU fuses operations and contracts products and sums into FMAs by itself).
        On a mesh: the rows of every process, padded, split by rows over the devices,
        with weights (1 without ``sample_weight``, 0 on the padding rows).
    theta : jax.Array, shape (d + 1, K)
        The same values and dtype, on the device (on a mesh: on every device).

    Raises
    ------
    ValueError
        If ``device`` is not one of the above or not present on this machine, or if the
        processes' data differ in features, outputs or dtype.
    """
    target = _placement(device)
    if isinstance(target, Mesh):
        return _prepare_on_mesh(target, X, Y, theta, sample_weight)
    if sample_weight is not None and bool(np.all(np.asarray(sample_weight) == 1)):
        sample_weight = None
    arrays = (Data(X, Y, sample_weight), theta)
    if target.platform == "cpu":
        arrays = jax.tree.map(_cpu_aligned, arrays)
    with _x64():
        return jax.device_put(arrays, target)


#: Alignment (bytes) at which jax on a CPU uses a numpy buffer as it is instead of copying.
_CPU_ALIGNMENT = 64


def _cpu_aligned(a: np.ndarray) -> np.ndarray:
    """``a`` itself if jax can use its buffer on a CPU, else an aligned copy of it.

    ``jax.device_put`` of a numpy array that is not 64-byte aligned (large numpy arrays
    usually start 16 bytes past a page) makes jax copy it into a buffer of its own;
    copying it here with numpy into an aligned buffer, which jax then uses as it is, is
    several times faster (measured on a 160 MB float64 ``X`` and 2 cores: 19 ms, split by
    rows across threads, against 85 ms or more). The copy is private to the fit, so later
    changes to ``a`` cannot reach it.
    """
    if not isinstance(a, np.ndarray) or a.ctypes.data % _CPU_ALIGNMENT == 0:
        return a
    out = staging_buffer(a.shape, a.dtype)
    map_row_ranges(lambda start, stop: np.copyto(out[start:stop], a[start:stop]), a)
    return out


def loss_grad(data: Data, theta: jax.Array, model: LoweredModel) -> tuple[jax.Array, jax.Array]:
    """Mean (weighted) loss over a batch plus the penalty, and its gradient.

    The gradient is ``jax.value_and_grad`` of the objective.

    Parameters
    ----------
    data : Data
        The batch: ``X`` (m, d), ``Y`` (m, T), ``weight`` (m,) or None; see :class:`Data`.
    theta : array, shape (d + 1, K)
        Weights followed by the intercepts, same dtype as ``X``.
    model : LoweredModel
        Loss code and parameter, penalty strengths, whether the intercept is trained.

    Returns
    -------
    loss : 0-d float64 jax.Array
        ``(1/m)·Σ_i s_i·Σ_k loss(p_ik, y_ik) + l2/2·‖W‖² + l1·‖W‖₁`` with
        ``P = X @ W + b`` (s_i = 1 without weights; for ``multinomial`` the per-sample
        loss is the softmax cross-entropy of the row). ``float(loss)`` gives the number.
    grad : jax.Array, shape (d + 1, K), dtype of ``theta``
        Its gradient with respect to ``theta``; the intercept row is 0 when the intercept
        is not trained; the l1 term contributes ``l1·sign(W)`` (0 at w = 0).
    """
    n, d = data.X.shape
    layout = _layout_of(data)
    if layout is not None:
        with _x64():
            theta, hyper = (_replicated(a, layout.mesh) for a in (theta, _model_hyper(model)))
            return _loss_grad_program(
                data, theta, hyper, static=_model_static(model), block_rows=None,
                spread=layout.spread,
            )  # fmt: skip
    on_cpu = _device_of(data.X).platform == "cpu"
    with _x64():
        return _loss_grad_program(
            data, theta, _model_hyper(model), static=_model_static(model),
            block_rows=_block_rows(n, d, np.dtype(data.X.dtype).itemsize, on_cpu),
        )  # fmt: skip


def init_state(theta: jax.Array, opt: LoweredOptimizer) -> State:
    """The optimizer state before the first update, on ``theta``'s device.

    Parameters
    ----------
    theta : array, shape (d + 1, K)
        The initial parameters; the state takes their shape and dtype.
    opt : LoweredOptimizer
        The optimizer; AdaGrad starts its sum of squares at ``initial_accumulator_value``.

    Returns
    -------
    state : tuple (0-d int64 jax.Array, jax.Array of shape (2, d + 1, K))
        ``(0, slots)``.
    """
    with _x64():
        slots = np.zeros((2, *theta.shape), dtype=np.dtype(theta.dtype))
        if opt.code == OPT_ADAGRAD:
            slots[0] = opt.params[0]
        mesh = _mesh_of(theta)
        if mesh is not None:
            return _replicated(np.int64(0), mesh), _replicated(slots, mesh)
        device = _device_of(theta)
        return jax.device_put(np.int64(0), device), jax.device_put(slots, device)


def update(
    theta: jax.Array, grad: jax.Array, state: State, opt: LoweredOptimizer
) -> tuple[jax.Array, State]:
    """One optimizer step; jax arrays are immutable, so new ones are returned.

    Parameters
    ----------
    theta : array, shape (d + 1, K)
        Parameters (weights then intercepts).
    grad : array, shape (d + 1, K)
        Gradient at ``theta``.
    state : tuple (int or 0-d int array, array of shape (2, d + 1, K))
        From :func:`init_state` or the previous :func:`update`.
    opt : LoweredOptimizer
        Optimizer code and hyper-parameters, schedule code and parameters.

    Returns
    -------
    theta, state
        The updated parameters and state, the step count increased by one.
    """
    step, slots = state
    mesh = _mesh_of(theta)
    with _x64():
        if mesh is not None:  # every operand whole on every device of the mesh
            theta, grad, step, slots, hyper = (
                _replicated(a, mesh)
                for a in (theta, grad, np.int64(step) if isinstance(step, int) else step,
                          slots, _opt_hyper(opt))
            )  # fmt: skip
            theta, step, slots = _update_program(
                theta, grad, step, slots, hyper, opt=_opt_static(opt)
            )
            return theta, (step, slots)
        theta, step, slots = _update_program(
            theta, grad, jnp.asarray(step, dtype=jnp.int64), slots, _opt_hyper(opt),
            opt=_opt_static(opt),
        )  # fmt: skip
    return theta, (step, slots)


def _padded_epochs(orders: np.ndarray, full_batch: bool) -> np.ndarray:
    """``orders`` as int32 with its epoch count rounded up to a power of two.

    The padding rows are never run: their contents are whatever the staging buffer held
    (see :func:`staging_buffer`), and nothing writes or reads them. The buffer is aligned,
    so on a CPU jax uses it in place. With a full batch the order is not used, so only a
    (E', 0) placeholder travels to the device.
    """
    n_epochs, n = orders.shape
    padded = 1 << (n_epochs - 1).bit_length()
    if full_batch:
        return np.zeros((padded, 0), dtype=np.int32)
    dtype = np.int32 if n < 2**31 else np.int64
    out = staging_buffer((padded, n), dtype)
    out[:n_epochs] = orders
    return out


def run_epochs(
    data: Data,
    theta: jax.Array,
    state: State,
    orders: np.ndarray,
    batch_size: int,
    model: LoweredModel,
    opt: LoweredOptimizer,
) -> tuple[jax.Array, State, np.ndarray]:
    """Run every batch of a chunk of epochs as one compiled program.

    Parameters
    ----------
    data : Data
        All samples, targets and weights, ideally already on the device (:func:`prepare`).
    theta : array, shape (d + 1, K)
        Starting parameters.
    state : tuple
        Optimizer state from :func:`init_state` or a previous call.
    orders : ndarray of int64, shape (E, n)
        Sample order of each of the E epochs; epoch e's batches are consecutive slices
        of ``orders[e]`` of ``batch_size`` samples, the last one possibly shorter.
        With ``batch_size >= n`` (full batch) the order does not matter. Data placed
        over several processes: the global row indices (process 0's rows first), the
        same on every process; for a full batch each process may pass its own n.
    batch_size : int
        Samples per update, 1 <= batch_size <= n.
    model, opt : LoweredModel, LoweredOptimizer
        What to minimise and how.

    Returns
    -------
    theta : jax.Array, shape (d + 1, K)
        Parameters after the last update, dtype of ``X``.
    state : tuple (0-d int64 jax.Array, jax.Array of shape (2, d + 1, K))
        Optimizer state after the last update.
    epoch_losses : ndarray of float64, shape (E,)
        Per epoch, the mean over its samples of the batch objective (loss + penalty)
        evaluated before each batch's update.
    """
    if _layout_of(data) is not None:
        return _run_epochs_on_mesh(data, theta, state, orders, batch_size, model, opt)
    n_epochs, n = orders.shape
    step, slots = state
    hyper = np.concatenate([_model_hyper(model), _opt_hyper(opt)])
    batch_size = min(int(batch_size), n)
    device = _device_of(data.X)
    on_cpu = device.platform == "cpu"
    with _x64():
        # Commit every array to one device, so that the compiled program is looked up
        # with the same signature whether an input came from prepare() or from a
        # previous call (a no-op for arrays already there).
        data, theta, step, slots = jax.device_put(
            (data, theta, np.int64(step) if isinstance(step, int) else step, slots), device
        )
        args = (
            data, theta, step, slots,
            _padded_epochs(orders, batch_size >= n), np.int64(n_epochs), hyper,
        )  # fmt: skip
        static = dict(
            static=_model_static(model), opt=_opt_static(opt), batch_size=batch_size,
            block_rows=_block_rows(n, data.X.shape[1], np.dtype(data.X.dtype).itemsize, on_cpu),
        )  # fmt: skip
        theta, step, slots, losses = _run_program(args, static, on_cpu and batch_size < n)
        epoch_losses = np.asarray(losses, dtype=np.float64)[:n_epochs]
    return theta, (step, slots), epoch_losses


def _run_epochs_on_mesh(
    data: _MeshData,
    theta: jax.Array,
    state: State,
    orders: np.ndarray,
    batch_size: int,
    model: LoweredModel,
    opt: LoweredOptimizer,
) -> tuple[jax.Array, State, np.ndarray]:
    """:func:`run_epochs` on data that :func:`prepare` spread over a mesh.

    The orders index the global rows (process 0's first). A full batch is every row
    (``batch_size`` >= the orders' length; with several processes each process may pass
    orders of its own length then, as ``fit`` does); mini-batches need the orders over
    all N rows, the same on every process.
    """
    layout = data.layout
    mesh, n = layout.mesh, layout.rows
    n_epochs, n_orders = orders.shape
    full_batch = int(batch_size) >= n_orders
    _check_batches(full_batch, int(batch_size), orders, n)
    if full_batch:
        batch_size, placed_orders = n, _padded_epochs(orders, True)
    else:
        placed_orders = _orders_on_mesh(orders, int(batch_size), layout)
    step, slots = state
    hyper = np.concatenate([_model_hyper(model), _opt_hyper(opt)])
    with _x64():
        step = np.int64(step) if isinstance(step, int) else step
        replicated = (
            _replicated(a, mesh)
            for a in (theta, step, slots, placed_orders, np.int64(n_epochs), hyper)
        )
        static = dict(
            static=_model_static(model), opt=_opt_static(opt), batch_size=int(batch_size),
            block_rows=None, spread=layout.spread,
        )  # fmt: skip
        theta, step, slots, losses = _epochs_program(
            data, *replicated, **static, single_cpu_kernel=False
        )
        epoch_losses = np.asarray(losses, dtype=np.float64)[:n_epochs]
    return theta, (step, slots), epoch_losses


#: Largest mini-batch run as a single CPU kernel. Beyond it the dispatch overhead the
#: single kernel saves is small next to the batch's own work, and the plain program keeps
#: XLA:CPU's library kernels for the products.
_SINGLE_KERNEL_MAX_BATCH = 1024

#: Configurations whose single-kernel compilation XLA:CPU refused (run as plain programs).
_single_kernel_refused: set[tuple] = set()


def _run_program(args: tuple, static: dict, mini_batch_on_cpu: bool):
    """Call :func:`_epochs_program`, as a single CPU kernel when that is possible."""
    shapes = tuple(None if a is None else (a.shape, str(a.dtype)) for a in args[0])
    key = (tuple(static.items()), shapes)  # shapes: the data's, weights (or None) among them
    single = (
        mini_batch_on_cpu
        and static["batch_size"] <= _SINGLE_KERNEL_MAX_BATCH
        and key not in _single_kernel_refused
    )
    if single:
        try:
            return _epochs_program(*args, **static, single_cpu_kernel=True)
        except jax.errors.JaxRuntimeError as exc:  # raised by the compiler, before any work
            message = str(exc)  # an unsupported fusion, or an XLA without the option
            if "UNIMPLEMENTED" not in message and "No such compile option" not in message:
                raise
            _single_kernel_refused.add(key)
    return _epochs_program(*args, **static, single_cpu_kernel=False)
