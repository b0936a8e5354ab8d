"""The comparison behind ``fastgd compare``: backends, devices and peers side by side.

The same problems (:mod:`fastgd.compare_problems`: five model families — squared error,
hinge, logistic, softmax over 10 classes, sparse logistic — each trained by per-sample
SGD, mini-batch Adam or full-batch GD), on the same data, run with every backend and
every jax device present, data-parallel on the mesh of all jax devices when there are
several (device ``"cpu x4"``: ``fit(devices=4)``), and with the peers that run the same
algorithm (:mod:`fastgd.compare_runners`: scikit-learn's SGD, an optax loop, PyTorch).
For each run the report gives the median time per epoch, samples/s, the effective
bandwidth (bytes of X and y read per epoch over the time per epoch) and its share of
the machine's measured memory bandwidth, the training objective at the end, and the
largest parameter difference from fastgd's numpy backend (the reference): the answer
check, which fails a row whose relative difference exceeds :data:`CHECK_RTOL`.

Each fastgd cell is timed as the user would run it: ``fastgd.fit``'s epoch loop
(``FitResult.fit_time``, which excludes input validation). Runners that compile get one
untimed warm-up fit of exactly the same shapes first; its time is reported as
``first_call_s`` and the difference to the median as ``compile_s``.

Time to a model: on one data set per family (:func:`curve_cell`) every runner of every
problem of the family also trains ``curve_epochs`` epochs recording the parameters after
each epoch; the objective is evaluated afterwards, outside the clock
(:mod:`fastgd.compare_report` defines the time to within 1e-3 of the best objective).

Problems small enough to stay in the CPU caches can exceed 100 % of the measured memory
bandwidth: the percentage says how far a run is from the main-memory floor, not a limit.
"""

from __future__ import annotations

import dataclasses
import datetime
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from tqdm.auto import tqdm

from . import __version__
from .api import fit
from .backends import available_backends
from .compare_problems import FAMILIES, PROBLEMS, Problem, make_data, objective
from .compare_report import (
    add_time_to_target,
    figure_summary,
    format_table,
    save_json,
    save_plot,
)
from .compare_runners import PEERS, Runner, available_peers, make_runners
from .machine import describe_machine, jax_mesh, jax_platforms, measure_bandwidth

__all__ = [
    "CHECK_RTOL",
    "FAMILIES",
    "PEERS",
    "PROBLEMS",
    "QUICK_SIZES",
    "DEFAULT_SIZES",
    "CompareConfig",
    "Problem",
    "curve_cell",
    "figure_summary",
    "format_table",
    "run_compare",
    "save_json",
    "save_plot",
    "sparse_support",
]

#: Numbers of samples n (with ``DEFAULT_FEATURES`` features) for ``--quick`` and the default.
QUICK_SIZES = (4_096,)
DEFAULT_SIZES = (4_096, 32_768, 262_144)
DEFAULT_FEATURES = 64
DTYPES = ("float32", "float64")
#: The answer check: a row fails when its largest parameter difference from the numpy
#: backend, relative to the largest reference parameter, exceeds this (per dtype). The
#: peers compute in float64 whatever X's dtype (scikit-learn converts float32 X).
CHECK_RTOL = {"float32": 1e-3, "float64": 1e-8}
#: float32 rows whose parameters are further than CHECK_RTOL pass when their objective is
#: within this of the reference's (relative): over many float32 steps of a non-smooth loss
#: (hinge), runners that round differently (scikit-learn and numba accumulate in float64)
#: cross the kink on different samples and their paths part (6 % apart in the parameters
#: after one epoch of 262,144 hinge steps, 1 % apart in the objective).
CHECK_OBJECTIVE_RTOL = 1e-2
#: The curves' data set: the largest size with at most this many rows (else the smallest).
CURVE_MAX_N = 65_536


@dataclass(frozen=True)
class CompareConfig:
    """What to run.

    Attributes
    ----------
    problems : tuple of str
        Keys of :data:`PROBLEMS`.
    peers : tuple of str or None
        Out of :data:`PEERS`; None means every peer whose library imports.
    curves : bool
        Whether to record the time-to-a-model curves.
    curve_budget_s : float
        A curve stops after the first epoch that ends this long after its start (it then
        has fewer than ``curve_epochs`` epochs).
    curve_repeat : int
        Times each curve is recorded (its times: the fastest, epoch by epoch).
    sizes : tuple of (n, d)
        Problem shapes.
    dtypes : tuple of str
        ``"float32"`` and/or ``"float64"``.
    backends : tuple of str
        Backend names; jax runs once per device platform present, and once on the mesh
        of all its devices when it has several.
    repeat : int
        At most this many timed fits per cell (the median is reported) …
    budget_s : float
        … stopping early once the timed fits of a cell took this long (at least one) …
    min_runs : int
        … or once a cell has at least this many fits and its spread (interquartile range
        over median) is at most ``stable_spread``.
    stable_spread : float
        The spread below which a cell's figure counts as stable.
    bandwidth_bytes, bandwidth_repeat : int
        Size of the array and number of passes of the bandwidth measurement.
    quick : bool
        Recorded in the report.
    """

    problems: tuple[str, ...] = tuple(PROBLEMS)
    peers: tuple[str, ...] | None = None
    curves: bool = True
    curve_budget_s: float = 10.0
    curve_repeat: int = 3
    sizes: tuple[tuple[int, int], ...] = tuple((n, DEFAULT_FEATURES) for n in DEFAULT_SIZES)
    dtypes: tuple[str, ...] = DTYPES
    backends: tuple[str, ...] = ()
    repeat: int = 60
    budget_s: float = 3.0
    min_runs: int = 5
    stable_spread: float = 0.05
    bandwidth_bytes: int = 256 * 2**20
    bandwidth_repeat: int = 5
    quick: bool = False

    @classmethod
    def quick_config(cls, **overrides) -> CompareConfig:
        """The ``--quick`` settings (under a minute on two cores), with ``overrides``."""
        base = cls(
            sizes=tuple((n, DEFAULT_FEATURES) for n in QUICK_SIZES),
            dtypes=("float64",),
            repeat=30,
            budget_s=0.3,
            curve_budget_s=0.5,
            curve_repeat=2,
            bandwidth_bytes=128 * 2**20,
            bandwidth_repeat=3,
            quick=True,
        )
        return dataclasses.replace(base, **overrides)


# ------------------------------------------------------------------------- running


def _device_targets(backends: Sequence[str]) -> list[tuple[str, str]]:
    """(backend, device) pairs: jax once per platform present, and once more on the mesh
    of all its devices when there are several (device ``"cpu x4"``: ``devices="all"``);
    the others on the CPU."""
    targets = []
    for name in backends:
        if name == "jax":
            targets.extend(("jax", platform) for platform in jax_platforms() or {"cpu": []})
            mesh = jax_mesh()
            if mesh is not None and len(mesh["devices"]) > 1:
                targets.append(("jax", mesh["label"]))
        else:
            targets.append((name, "cpu"))
    return targets


#: A cell whose interquartile range exceeds this fraction of its median is marked unstable.
UNSTABLE_SPREAD = 0.2


def _summary(times: list[float], epochs: int) -> dict:
    """Order statistics of a cell's fit times, per epoch: min, quartiles, median, spread."""
    q1, median, q3 = (float(v) / epochs for v in np.percentile(times, [25, 50, 75]))
    spread = (q3 - q1) / median if median > 0 else 0.0
    return {
        "times_s": list(times),
        "runs": len(times),
        "time_per_epoch_s": median,
        "min_per_epoch_s": min(times) / epochs,
        "q1_per_epoch_s": q1,
        "q3_per_epoch_s": q3,
        "spread": spread,
        "unstable": spread > UNSTABLE_SPREAD,
    }


def _settled(times: list[float], cfg: CompareConfig, epochs: int) -> bool:
    """Whether a cell needs no more fits: enough stable runs, the cap, or its budget."""
    if len(times) >= cfg.repeat or sum(times) >= cfg.budget_s:
        return True
    if len(times) < min(cfg.min_runs, cfg.repeat):
        return False
    return _summary(times, epochs)["spread"] <= cfg.stable_spread


def _bytes_per_epoch(X, y: np.ndarray) -> int:
    """Bytes of X (a CSR matrix's values, column indices and row pointers) and y."""
    if hasattr(X, "indptr"):
        return int(X.data.nbytes + X.indices.nbytes + X.indptr.nbytes + y.nbytes)
    n, d = X.shape
    return n * (d + 1) * X.dtype.itemsize


class _Cell:
    """One runner on one problem and data set: its warm-up, fits and figures."""

    def __init__(self, runner: Runner):
        self.runner = runner
        self.problem = runner.problem
        self.times: list[float] = []
        self.first_call_s: float | None = None
        self.theta: np.ndarray | None = None
        self.error: str | None = None
        self.unsupported = False  # the error is a NotImplementedError: a documented gap
        self.last_s: float | None = None

    @property
    def compiles(self) -> bool:
        return self.runner.compiles

    def run(self, timed: bool = True) -> None:
        """One fit (a failure is recorded, not raised: it must not hide the others); the
        first of a compiling runner is its warm-up, and ``timed=False`` keeps no time."""
        try:
            theta, seconds = self.runner.fit()
        except Exception as exc:
            self.error = f"{type(exc).__name__}: {exc}"
            self.unsupported = isinstance(exc, NotImplementedError)
            return
        self.last_s = seconds
        if self.first_call_s is None and self.compiles:  # the warm-up compiles
            self.first_call_s = seconds
            return
        if timed:
            self.times.append(seconds)
            self.theta = theta

    def row(self) -> dict:
        runner = self.runner
        X, y = runner.X, runner.y
        n, d = X.shape
        row = {"problem": self.problem.name, "family": self.problem.family, "n": n, "d": d,
               "dtype": str(X.dtype), "backend": runner.backend, "device": runner.device,
               "peer": runner.peer, "epochs": self.problem.epochs}
        if runner.peer:
            row["version"] = _version(runner.backend)
        try:
            row["runner"] = runner.describe()
        except Exception as exc:
            row["runner"] = f"{runner.backend} ({type(exc).__name__})"
        if self.error is not None:
            return {**row, "error": self.error, "unsupported": self.unsupported}
        row.update(_summary(self.times, self.problem.epochs))
        per_epoch = row["time_per_epoch_s"]
        bytes_per_epoch = _bytes_per_epoch(X, y)
        median_fit = per_epoch * self.problem.epochs
        row.update({
            "samples_per_s": n / per_epoch,
            "bytes_per_epoch": bytes_per_epoch,
            "effective_gbs": bytes_per_epoch / per_epoch / 1e9,
            "first_call_s": self.first_call_s,
            "compile_s": None if self.first_call_s is None
            else max(0.0, self.first_call_s - median_fit),
            "objective": objective(self.problem.family, X, y, self.theta),
            "theta": self.theta,
        })
        return row


def _version(peer: str) -> str:
    """The installed version of a peer's library."""
    from .machine import library_versions

    name = {"sklearn": "scikit-learn"}.get(peer, peer)
    return library_versions().get(name) or _module_version(peer)


def _module_version(module: str) -> str:
    try:
        return str(__import__(module).__version__)
    except Exception:
        return "?"


#: A cell whose last fit took longer than this gets no untimed wake-up fit.
WAKE_UP_LIMIT_S = 0.05
#: Timed fits a cell runs in a row each round.
BLOCK_FITS = 3


def _quiesce(step_s: float = 0.005, idle_cpu_s: float = 0.0005, max_s: float = 0.5) -> None:
    """Wait until this process's threads are idle: until a sleep of ``step_s`` costs the
    process less than ``idle_cpu_s`` of CPU time (at most ``max_s``).

    Worker threads keep spinning on the cores for a while after their last task: on the
    2-core machine fastgd is developed on, OpenBLAS's (numpy's products) for about 100 ms,
    numba's OpenMP threads for about 10 ms, XLA's not at all. A fit that starts among
    them runs on fewer cores, and a parallel one waits for its descheduled workers: fits
    of a few hundred microseconds took up to six times as long.
    """
    deadline = time.perf_counter() + max_s
    while time.perf_counter() < deadline:
        cpu = time.process_time()
        time.sleep(step_s)
        if time.process_time() - cpu < idle_cpu_s:
            return


def _time_interleaved(cells: list[_Cell], cfg: CompareConfig) -> None:
    """Warm every cell up, then fit them in rounds until each is settled: the runners
    share the machine's noisy moments alike, and the order rotates from round to round
    so that no runner always follows the same one.

    Each round a cell runs, once the previous cell's threads are idle (see
    :func:`_quiesce`), one untimed fit that wakes its own threads up (not when its
    last fit took over :data:`WAKE_UP_LIMIT_S`: threads idle for so short a time against
    so long a fit cost nothing), then up to :data:`BLOCK_FITS` timed fits in a row.
    """
    for cell in cells:
        if cell.compiles:
            cell.run()
    active = [c for c in cells if c.error is None]
    rounds = 0
    while active:
        shift = rounds % len(active)
        for cell in active[shift:] + active[:shift]:
            _quiesce()
            if cell.last_s is None or cell.last_s <= WAKE_UP_LIMIT_S:
                cell.run(timed=False)  # wakes the cell's own threads up
            for _ in range(BLOCK_FITS):
                if cell.error is not None or _settled(cell.times, cfg, cell.problem.epochs):
                    break
                cell.run()
        active = [c for c in active
                  if c.error is None and not _settled(c.times, cfg, c.problem.epochs)]
        rounds += 1


def _data_cells(cfg: CompareConfig) -> list[tuple[tuple[int, int], str]]:
    return [(size, dtype) for size in cfg.sizes for dtype in cfg.dtypes]


def sparse_support() -> str | None:
    """None when ``fastgd.fit`` trains on a ``scipy.sparse`` CSR X, else why not."""
    try:
        import scipy.sparse as sp

        X = sp.csr_matrix(np.eye(4))
        fit(X, np.array([0.0, 1.0, 0.0, 1.0]), loss="logistic", batch_size=1, epochs=1,
            shuffle=False, backend="numpy")
    except Exception as exc:
        return f"fastgd.fit does not accept sparse X yet ({type(exc).__name__}: {exc})"
    return None


def curve_cell(cfg: CompareConfig) -> tuple[tuple[int, int], str] | None:
    """The data set (size, dtype) of the time-to-a-model curves, None without curves: the
    largest size with at most :data:`CURVE_MAX_N` rows (else the smallest), float64 when
    it is compared (else the first dtype)."""
    if not cfg.curves or not cfg.sizes:
        return None
    small = [s for s in cfg.sizes if s[0] <= CURVE_MAX_N]
    size = max(small) if small else min(cfg.sizes)
    return size, "float64" if "float64" in cfg.dtypes else cfg.dtypes[0]


def _record_curves(cells: list[_Cell], X, y, cfg: CompareConfig) -> list[dict]:
    """Each runner's objective after each of ``curve_epochs`` epochs against its training
    seconds, from 0 at the start (zero parameters).

    A compiling runner first runs one untimed epoch (the curve's programs may differ from
    the timed fit's). The curves are recorded ``cfg.curve_repeat`` times, in rounds over
    the runners (as the timed fits are); the times are the fastest of the repeats epoch
    by epoch (a busy machine only ever adds time), the objectives the first repeat's.
    """
    live = [c for c in cells if c.error is None]
    runs: dict[int, list] = {id(c): [] for c in live}
    errors: dict[int, str] = {}
    for cell in live:
        if cell.compiles:
            _guarded(errors, cell, lambda c: c.runner.curve(1))
    for rep in range(cfg.curve_repeat):
        shift = rep % max(len(live), 1)
        for cell in live[shift:] + live[:shift]:
            if id(cell) not in errors:
                _quiesce()
                run = _guarded(errors, cell, lambda c: c.runner.curve(
                    c.problem.curve_epochs, cfg.curve_budget_s))
                if run is not None:
                    runs[id(cell)].append(run)
    return [_curve_entry(c, X, y, runs[id(c)], errors.get(id(c))) for c in live]


def _guarded(errors: dict[int, str], cell: _Cell, call):
    """``call(cell)``, or None with its error recorded in ``errors``."""
    try:
        return call(cell)
    except Exception as exc:
        errors[id(cell)] = f"{type(exc).__name__}: {exc}"
        return None


def _curve_entry(cell: _Cell, X, y, runs: list, error: str | None) -> dict:
    runner, problem = cell.runner, cell.problem
    n, d = X.shape
    entry = {"problem": problem.name, "family": problem.family, "n": n, "d": d,
             "dtype": str(X.dtype), "backend": runner.backend, "device": runner.device,
             "max_epochs": problem.curve_epochs}
    if error is not None or not runs:
        return {**entry, "error": error or "no curve recorded"}
    epochs = min(len(times) for times, _ in runs)
    times = np.min([np.asarray(t[:epochs], dtype=float) for t, _ in runs], axis=0)
    thetas = runs[0][1][:epochs]
    start = np.zeros_like(thetas[0])
    values = [objective(problem.family, X, y, th) for th in [start, *thetas]]
    return {**entry, "epochs": epochs, "repeats": len(runs),
            "times_s": [0.0, *map(float, times)], "objective": values,
            "repeat_times_s": [[float(v) for v in t[:epochs]] for t, _ in runs]}


def _targets_and_peers(cfg: CompareConfig) -> tuple[tuple[str, ...], list, tuple[str, ...]]:
    backends = tuple(cfg.backends) or tuple(available_backends())
    peers = available_peers() if cfg.peers is None else tuple(cfg.peers)
    return backends, _device_targets(backends), peers


def _run_problem(problem: Problem, X, y, cfg: CompareConfig, runner_args: tuple,
                 with_curves: bool) -> tuple[list[dict], list[dict]]:
    """Time every runner of one problem on one data set: (result rows, curves)."""
    cells = [_Cell(r) for r in make_runners(problem, X, y, *runner_args)]
    _time_interleaved(cells, cfg)
    curves = _record_curves(cells, X, y, cfg) if with_curves else []
    rows = [cell.row() for cell in cells]
    reference, whose = _reference(problem, X, y, rows)
    target = None if reference is None else objective(problem.family, X, y, reference)
    _add_checks(rows, reference, whose, target)
    return rows, curves


def _reference(problem: Problem, X, y, rows: list[dict]) -> tuple[np.ndarray | None, str]:
    """The parameters the answer checks compare with, and whose: the numpy backend's (run
    here when it is not compared), else, where numpy fails (a feature it lacks), the
    first fastgd backend that ran."""
    numpy_row = next((r for r in rows if r["backend"] == "numpy" and not r["peer"]), None)
    if numpy_row is None:
        try:
            return make_runners(problem, X, y, [("numpy", "cpu")], (), ())[0].fit()[0], "numpy"
        except Exception:
            pass
    elif "theta" in numpy_row:
        return numpy_row["theta"], "numpy"
    ran = next((r for r in rows if not r["peer"] and "theta" in r), None)
    return (None, "") if ran is None else (ran["theta"], f"{ran['backend']}/{ran['device']}")


def run_compare(cfg: CompareConfig, progress: bool = True, stream=None) -> dict:
    """Run the comparison and return the report (machine, bandwidth, one row per run).

    Parameters
    ----------
    cfg : CompareConfig
        What to run; an empty ``backends`` means every available backend.
    progress : bool
        Draw a progress bar on ``stream`` (stderr by default).

    Returns
    -------
    dict
        ``{"fastgd_version", "created", "machine", "bandwidth", "settings", "results",
        "curves", "best_objective", "skipped"}``; each result row and each curve is a
        dict of plain numbers and strings (see :func:`format_table`).
    """
    backends, targets, peers = _targets_and_peers(cfg)
    platforms = tuple(jax_platforms()) if "optax" in peers else ()
    runner_args = (sorted(targets, key=lambda t: t[0] != "numpy"), peers, platforms)
    problems, skipped = _supported(cfg.problems)
    n_cells = len(_data_cells(cfg)) * len(problems)
    bar = tqdm(total=n_cells + 1, unit="cell", file=stream or sys.stderr, disable=not progress)
    bandwidth = measure_bandwidth(cfg.bandwidth_bytes, cfg.bandwidth_repeat)
    bar.set_postfix_str(f"memory bandwidth {bandwidth['bandwidth_gbs']:.1f} GB/s")
    bar.update(1)
    rows, curves = [], []
    curve_at = curve_cell(cfg)
    for (n, d), dtype in _data_cells(cfg):
        for family in dict.fromkeys(PROBLEMS[p].family for p in problems):
            X, y = make_data(family, n, d, dtype)
            for name in (p for p in problems if PROBLEMS[p].family == family):
                bar.set_postfix_str(f"{name} {n}x{X.shape[1]} {dtype}")
                problem_rows, problem_curves = _run_problem(
                    PROBLEMS[name], X, y, cfg, runner_args, curve_at == ((n, d), dtype))
                rows.extend(_with_bandwidth(problem_rows, bandwidth["bandwidth_gbs"]))
                curves.extend(problem_curves)
                bar.update(1)
    bar.close()
    best = add_time_to_target([c for c in curves if "error" not in c], rows)
    return {
        "fastgd_version": __version__,
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": describe_machine(),
        "bandwidth": bandwidth,
        "settings": _settings(cfg, backends, targets, peers, curve_at),
        "results": rows,
        "curves": curves,
        "best_objective": best,
        "skipped": skipped,
    }


def _supported(names: Sequence[str]) -> tuple[list[str], list[dict]]:
    """The problems to run, and those skipped with the reason (sparse X while ``fit``
    does not accept it)."""
    sparse = [p for p in names if FAMILIES[PROBLEMS[p].family].sparse]
    reason = sparse_support() if sparse else None
    if reason is None:
        return list(names), []
    return [p for p in names if p not in sparse], [{"problem": p, "reason": reason}
                                                   for p in sparse]


def _with_bandwidth(rows: list[dict], bandwidth_gbs: float) -> list[dict]:
    for row in rows:
        if "effective_gbs" in row:
            row["pct_bandwidth"] = 100.0 * row["effective_gbs"] / bandwidth_gbs
    return rows


def _add_checks(rows: list[dict], reference: np.ndarray | None, whose: str,
                reference_objective: float | None = None) -> None:
    """The answer checks: each row's parameter differences from the reference (the numpy
    backend's, see :func:`_reference`), and ``check``: "ok", "ok (objective)" (float32
    only: see :data:`CHECK_OBJECTIVE_RTOL`), "n/a" (no reference) or why it failed (see
    :data:`CHECK_RTOL`)."""
    for row in rows:
        theta = row.pop("theta", None)
        if theta is None:
            continue
        row["reference"] = whose or None
        if reference is None:
            row["max_abs_param_diff"] = row["max_rel_param_diff"] = None
            row["check"] = "n/a"
            continue
        diff = float(np.max(np.abs(theta - reference)))
        rel = diff / max(float(np.max(np.abs(reference))), 1e-300)
        row["max_abs_param_diff"], row["max_rel_param_diff"] = diff, rel
        tol = CHECK_RTOL[row["dtype"]]
        gap = None if reference_objective is None else abs(
            row["objective"] - reference_objective) / max(abs(reference_objective), 1e-300)
        if rel <= tol:
            row["check"] = "ok"
        elif row["dtype"] == "float32" and gap is not None and gap <= CHECK_OBJECTIVE_RTOL:
            row["check"] = "ok (objective)"
        else:
            row["check"] = f"parameters differ from {whose}'s by {rel:.2g} (relative) > {tol:g}"


def _settings(cfg: CompareConfig, backends, targets, peers, curve_at) -> dict:
    return {
        "quick": cfg.quick,
        "sizes": [list(s) for s in cfg.sizes],
        "dtypes": list(cfg.dtypes),
        "backends": list(backends),
        "targets": [f"{b}/{dev}" for b, dev in targets],
        "peers": list(peers),
        "repeat": cfg.repeat,
        "budget_s": cfg.budget_s,
        "min_runs": cfg.min_runs,
        "stable_spread": cfg.stable_spread,
        "families": {name: dataclasses.asdict(f) for name, f in FAMILIES.items()
                     if any(PROBLEMS[p].family == name for p in cfg.problems)},
        "problems": {
            name: {
                "family": PROBLEMS[name].family,
                "label": PROBLEMS[name].label,
                "optimizer": repr(PROBLEMS[name].optimizer),
                "batch_size": PROBLEMS[name].batch_size,
                "epochs": PROBLEMS[name].epochs,
                "curve_epochs": PROBLEMS[name].curve_epochs,
                "shuffle": PROBLEMS[name].shuffle,
                "seed": 0,
            }
            for name in cfg.problems
        },
        "curve_data": None if curve_at is None else {
            "size": list(curve_at[0]), "dtype": curve_at[1]},
        "timing": "median of the timed fits' seconds (fastgd: FitResult.fit_time; peers: "
        "their training call, see fastgd.compare_runners), divided by epochs; the "
        "runners of a cell are warmed up, then fitted in interleaved rounds (rotating "
        "order; each round, once the threads of the previous runner are idle, one "
        f"untimed fit, then up to {BLOCK_FITS} timed ones in a row) "
        "until each has min_runs fits with spread (IQR / median) <= stable_spread, "
        "repeat fits, or budget_s seconds of fits; a spread above "
        f"{UNSTABLE_SPREAD} marks the figure unstable",
        "effective_gbs": "n*(d+1)*itemsize bytes per epoch (CSR: values, indices, row "
        "pointers and y) / time per epoch, 1 GB = 1e9 B",
        "objective": "the family's training objective (mean loss + alpha/2 |w|^2) at the "
        "final parameters, float64",
        "param_diff": "max |theta - theta_numpy| over weights and intercepts, same dtype; "
        f"check fails above {CHECK_RTOL} relative to max |theta_numpy|, except float32 "
        f"rows whose objective is within {CHECK_OBJECTIVE_RTOL} (relative) of the "
        "reference's: 'ok (objective)'",
        "curve_budget_s": cfg.curve_budget_s,
        "curve_repeat": cfg.curve_repeat,
        "curves": "one data set per family (curve_data); every runner trains curve_epochs "
        "epochs (fewer once curve_budget_s has passed), the parameters are copied after "
        "each epoch and the objective evaluated afterwards; times are training seconds, "
        "the copies left out, the fastest of curve_repeat recordings epoch by epoch",
    }
