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

Modules
-------
This file holds the public names; the rest lives in one module per concern:

- ``losses`` — the per-sample losses and the penalty in jnp, the one place a loss is
  defined (with the clipped-derivative variant);
- ``batches`` — the :class:`Data` bundle, theta as the pair ``(W, b)`` inside the
  programs, the objective of a batch and its gradient (in row blocks for a large full
  batch on a CPU), the model lowered to static flags and traced numbers;
- ``updates`` — the optimizer steps and the learning-rate schedules, the optimizer
  lowered likewise;
- ``epochs`` — the compiled programs (one gradient, one update, the loop over a chunk of
  epochs as a single CPU kernel or a plain program) and the calls that run them;
- ``devices`` — one device or a mesh: placement, the rows of several processes, the
  sharding constraints and the processes' agreement checks;
- ``staging`` — host-side copies and padding in numpy (aligned copies for a CPU device,
  padded rows and epoch orders);
- ``runtime`` — the 64-bit scope of each call and the persistent compilation cache.

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
* **Sparse X** (a scipy.sparse matrix, or a :class:`fastgd.sparse.CsrRows`): ``prepare``
  returns a ``sparse.SparseData`` (the CSR arrays on the device) and ``loss_grad`` and
  ``run_epochs`` run the programs of ``sparse`` (padded row blocks gathered per batch;
  its docstring states the memory cost). Only they carry the model's
  ``intercept_decay``: a dense X with a value other than 1 raises NotImplementedError.
* **Compilation cache.** On import, if the user has not configured jax's persistent
  compilation cache, it is pointed at ``$FASTGD_JAX_CACHE_DIR`` (default
  ``~/.cache/fastgd/jax``) with no minimum compile time, so a new process reuses the
  programs compiled by earlier ones.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh

from ...sparse import CsrRows, is_sparse
from ...specs import OPT_ADAGRAD, LoweredModel, LoweredOptimizer
from .batches import Data, _block_rows, _model_hyper, _model_static
from .devices import (
    _device_of,
    _layout_of,
    _mesh_of,
    _placement,
    _prepare_on_mesh,
    _replicated,
)
from .epochs import _loss_grad_program, _run_epochs_on_mesh, _run_program, _update_program
from .runtime import _x64
from .sparse import SparseData, _prepare_sparse, _run_sparse_epochs, _sparse_loss_grad
from .staging import _cpu_aligned, _padded_epochs
from .updates import State, _opt_hyper, _opt_static

__all__ = ["NAME", "Data", "prepare", "loss_grad", "init_state", "update", "run_epochs"]

NAME = "jax"


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
    if is_sparse(X) or isinstance(X, CsrRows):
        return _prepare_sparse(X, Y, theta, device, sample_weight)
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


def global_rows(data: Data) -> int:
    """The rows a bundle from :func:`prepare` trains on: those of every process.

    Not one of the backend contract's names: what ``fit`` needs to draw epoch orders
    over all the rows when several processes each placed their own (the n of
    :func:`run_epochs`'s orders). On one device, or several in one process, the bundle's
    own row count.
    """
    layout = _layout_of(data)
    return data.X.shape[0] if layout is None else layout.rows


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
    if isinstance(data, SparseData):
        return _sparse_loss_grad(data, theta, model)
    _dense_only(model)
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


def _dense_only(model: LoweredModel) -> None:
    """Raise NotImplementedError for what the dense programs do not carry."""
    if model.intercept_decay != 1.0:
        raise NotImplementedError(
            f"intercept_decay={model.intercept_decay!r} is supported on a sparse X only by "
            f"the {NAME} backend"
        )


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
    state : tuple (0-d int64 jax.Array, jax.Array of shape (3, d + 1, K))
        ``(0, slots)``.
    """
    with _x64():
        slots = np.zeros((3, *theta.shape), dtype=np.dtype(theta.dtype))
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
    state : tuple (int or 0-d int array, array of shape (3, d + 1, K))
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
    state : tuple (0-d int64 jax.Array, jax.Array of shape (3, d + 1, K))
        Optimizer state after the last update.
    epoch_losses : ndarray of float64, shape (E,)
        Per epoch, the mean over its samples of the batch objective (loss + penalty)
        evaluated before each batch's update.
    """
    if isinstance(data, SparseData):
        return _run_sparse_epochs(data, theta, state, orders, batch_size, model, opt)
    _dense_only(model)
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
