"""The accelerator comparison behind ``fastgd compare``.

The same problems (SGD with batch 1, mini-batch Adam, full-batch GD), on the same data,
run with every backend and every jax device present, and, when jax has several devices,
data-parallel on the mesh of all of them (device ``"cpu x4"``: ``fit(devices=4)``). For
each run the report gives the median time per epoch, samples/s, the effective bandwidth
(bytes of X and y read per epoch over the time per epoch) and its share of the machine's
measured memory bandwidth, the final loss, and the largest parameter difference from the
numpy backend (the reference).

Each cell is timed as the user would run it: ``fastgd.fit``'s epoch loop
(``FitResult.fit_time``, which excludes input validation). Backends that compile (every
backend but numpy) get one untimed warm-up fit of exactly the same shapes first; its time
is reported as ``first_call_s`` and the difference to the median as ``compile_s``.

Problems small enough to stay in the CPU caches can exceed 100 % of the measured memory
bandwidth: the percentage says how far a run is from the main-memory floor, not a limit.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import math
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from . import __version__
from .api import fit
from .backends import available_backends
from .data import make_regression
from .machine import describe_machine, jax_mesh, jax_platforms, measure_bandwidth, mesh_size
from .specs import SGD, Adam, Optimizer

__all__ = [
    "PROBLEMS",
    "QUICK_SIZES",
    "DEFAULT_SIZES",
    "CompareConfig",
    "Problem",
    "figure_summary",
    "format_table",
    "run_compare",
    "save_json",
    "save_plot",
]


@dataclass(frozen=True)
class Problem:
    """One training problem of the comparison.

    Attributes
    ----------
    name : str
        Short name used on the command line and in the table.
    label : str
        Human description for the plot.
    optimizer : Optimizer
        The optimizer spec (with its learning rate).
    batch_size : int or None
        1 for SGD, k for mini-batches (capped at n), None for full batch.
    epochs : int
        Epochs per timed fit.
    shuffle : bool
        Whether each epoch's order is a fresh permutation (seed 0).
    """

    name: str
    label: str
    optimizer: Optimizer
    batch_size: int | None
    epochs: int
    shuffle: bool


PROBLEMS: dict[str, Problem] = {
    "sgd": Problem("sgd", "SGD, batch 1, lr 1e-3", SGD(lr=1e-3), 1, 1, False),
    "adam": Problem("adam", "Adam, batch 64, lr 1e-3", Adam(lr=1e-3), 64, 2, True),
    "gd": Problem("gd", "full-batch GD, lr 0.1", SGD(lr=0.1), None, 20, False),
}

#: Numbers of samples n (with ``DEFAULT_FEATURES`` features) for ``--quick`` and the default.
QUICK_SIZES = (1_024, 8_192)
DEFAULT_SIZES = (4_096, 32_768, 262_144)
DEFAULT_FEATURES = 64
DTYPES = ("float32", "float64")


@dataclass(frozen=True)
class CompareConfig:
    """What to run.

    Attributes
    ----------
    problems : tuple of str
        Keys of :data:`PROBLEMS`.
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
        """The ``--quick`` settings (about 20 s on two cores), with ``overrides`` applied."""
        base = cls(
            sizes=tuple((n, DEFAULT_FEATURES) for n in QUICK_SIZES),
            repeat=50,
            budget_s=0.6,
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


def _fit(problem: Problem, X: np.ndarray, y: np.ndarray, backend: str, device: str):
    """One ``fastgd.fit`` of ``problem``; the seed is fixed so every backend sees one order.

    ``device`` is a platform (``"cpu"``, ``"gpu"``) or, for jax, a mesh label
    (``"cpu x4"``: the first 4 of ``jax.devices()``, data-parallel).
    """
    n = X.shape[0]
    batch = None if problem.batch_size is None else min(problem.batch_size, n)
    placement: dict[str, object] = {}
    if backend == "jax":
        count = mesh_size(device)
        placement = {"device": device} if count is None else {"devices": count}
    return fit(
        X,
        y,
        optimizer=problem.optimizer,
        batch_size=batch,
        epochs=problem.epochs,
        shuffle=problem.shuffle,
        seed=0,
        backend=backend,
        **placement,
    )


def _theta(result) -> np.ndarray:
    return np.append(result.coef.astype(np.float64), result.intercept)


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


class _Cell:
    """One backend/device on one problem and data set: its warm-up, fits and figures."""

    def __init__(self, problem: Problem, X, y, backend: str, device: str):
        self.problem, self.X, self.y = problem, X, y
        self.backend, self.device = backend, device
        self.times: list[float] = []
        self.first_call_s: float | None = None
        self.result = None
        self.error: str | None = None

    def run(self, timed: bool = True) -> None:
        """One fit (a failure is recorded, not raised: it must not hide the others); the
        first of a compiled backend is its warm-up, and ``timed=False`` keeps no time."""
        try:
            result = _fit(self.problem, self.X, self.y, self.backend, self.device)
        except Exception as exc:
            self.error = f"{type(exc).__name__}: {exc}"
            return
        if self.first_call_s is None and self.backend != "numpy":  # the warm-up compiles
            self.first_call_s = result.fit_time
            return
        if timed:
            self.times.append(result.fit_time)
            self.result = result

    def row(self) -> dict:
        n, d = self.X.shape
        row = {"problem": self.problem.name, "n": n, "d": d, "dtype": str(self.X.dtype),
               "backend": self.backend, "device": self.device, "epochs": self.problem.epochs}
        if self.error is not None:
            return {**row, "error": self.error}
        row.update(_summary(self.times, self.problem.epochs))
        per_epoch = row["time_per_epoch_s"]
        bytes_per_epoch = n * (d + 1) * self.X.dtype.itemsize
        median_fit = per_epoch * self.problem.epochs
        row.update({
            "samples_per_s": n / per_epoch,
            "bytes_per_epoch": bytes_per_epoch,
            "effective_gbs": bytes_per_epoch / per_epoch / 1e9,
            "first_call_s": self.first_call_s,
            "compile_s": None if self.first_call_s is None
            else max(0.0, self.first_call_s - median_fit),
            "final_loss": float(self.result.loss_history[-1]),
            "theta": _theta(self.result),
        })
        return row


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
    :func:`_quiesce`), one untimed fit that wakes its own threads up, then up to
    :data:`BLOCK_FITS` timed fits in a row.
    """
    for cell in cells:
        if cell.backend != "numpy":
            cell.run()
    active = [c for c in cells if c.error is None]
    rounds = 0
    while active:
        shift = rounds % len(active)
        for cell in active[shift:] + active[:shift]:
            _quiesce()
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
        ``{"fastgd_version", "created", "machine", "bandwidth", "settings", "results"}``;
        each result row is a dict of plain numbers and strings (see :func:`format_table`).
    """
    backends = tuple(cfg.backends) or tuple(available_backends())
    targets = _device_targets(backends)
    n_cells = len(_data_cells(cfg)) * len(cfg.problems)
    bar = tqdm(total=n_cells + 1, unit="cell", file=stream or sys.stderr, disable=not progress)
    bandwidth = measure_bandwidth(cfg.bandwidth_bytes, cfg.bandwidth_repeat)
    bar.set_postfix_str(f"memory bandwidth {bandwidth['bandwidth_gbs']:.1f} GB/s")
    bar.update(1)
    rows = []
    ordered = sorted(targets, key=lambda t: t[0] != "numpy")
    for (n, d), dtype in _data_cells(cfg):
        X, y, _ = make_regression(n, d, dtype=np.dtype(dtype), seed=0)
        for problem_name in cfg.problems:
            problem = PROBLEMS[problem_name]
            bar.set_postfix_str(f"{problem_name} {n}x{d} {dtype}")
            cells = [_Cell(problem, X, y, b, dev) for b, dev in ordered]
            _time_interleaved(cells, cfg)
            cell_rows = [cell.row() for cell in cells]
            reference = next((r.get("theta") for r in cell_rows if r["backend"] == "numpy"), None)
            if reference is None and "numpy" not in backends:
                reference = _theta(_fit(problem, X, y, "numpy", "cpu"))
            _add_parity(cell_rows, reference, bandwidth["bandwidth_gbs"])
            rows.extend(cell_rows)
            bar.update(1)
    bar.close()
    return {
        "fastgd_version": __version__,
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": describe_machine(),
        "bandwidth": bandwidth,
        "settings": _settings(cfg, backends, targets),
        "results": rows,
    }


def _add_parity(rows: list[dict], reference: np.ndarray | None, bandwidth_gbs: float) -> None:
    """Fill in the share of bandwidth and the parameter differences from the numpy backend."""
    for row in rows:
        theta = row.pop("theta", None)
        if theta is None:
            continue
        row["pct_bandwidth"] = 100.0 * row["effective_gbs"] / bandwidth_gbs
        if reference is None:
            row["max_abs_param_diff"] = row["max_rel_param_diff"] = None
            continue
        diff = float(np.max(np.abs(theta - reference)))
        row["max_abs_param_diff"] = diff
        row["max_rel_param_diff"] = diff / max(float(np.max(np.abs(reference))), 1e-300)


def _settings(cfg: CompareConfig, backends, targets) -> dict:
    return {
        "quick": cfg.quick,
        "sizes": [list(s) for s in cfg.sizes],
        "dtypes": list(cfg.dtypes),
        "backends": list(backends),
        "targets": [f"{b}/{dev}" for b, dev in targets],
        "repeat": cfg.repeat,
        "budget_s": cfg.budget_s,
        "min_runs": cfg.min_runs,
        "stable_spread": cfg.stable_spread,
        "problems": {
            name: {
                "label": PROBLEMS[name].label,
                "optimizer": repr(PROBLEMS[name].optimizer),
                "batch_size": PROBLEMS[name].batch_size,
                "epochs": PROBLEMS[name].epochs,
                "shuffle": PROBLEMS[name].shuffle,
                "seed": 0,
            }
            for name in cfg.problems
        },
        "timing": "median of FitResult.fit_time over the timed fits, divided by epochs; the "
        "backends of a cell are warmed up, then fitted in interleaved rounds (rotating "
        "order; each round, once the threads of the previous runner are idle, one "
        f"untimed fit, then up to {BLOCK_FITS} timed ones in a row) "
        "until each has min_runs fits with spread (IQR / median) <= stable_spread, "
        "repeat fits, or budget_s seconds of fits; a spread above "
        f"{UNSTABLE_SPREAD} marks the figure unstable",
        "effective_gbs": "n*(d+1)*itemsize bytes per epoch / time per epoch, 1 GB = 1e9 B",
        "final_loss": "last entry of FitResult.loss_history (mean batch objective of the "
        "last epoch, each batch evaluated before its update)",
        "param_diff": "max |theta - theta_numpy| over weights and intercept, same dtype",
    }


# ----------------------------------------------------------------------- reporting


def _fmt_time(seconds: float) -> str:
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds / 1e-9:.3g} ns"


def _fmt_count(value: float) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if value >= scale:
            return f"{value / scale:.3g} {unit}"
    return f"{value:.3g}"


def _fmt_percent(value: float) -> str:
    """Whole percent from 10 % up, two significant digits below (in-cache runs exceed 100 %)."""
    return f"{value:.0f}%" if value >= 10 else f"{value:.2g}%"


def _fmt_optional(value: float | None, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


_COLUMNS: tuple[tuple[str, Callable[[dict], str]], ...] = (
    ("problem", lambda r: r["problem"]),
    ("n x d", lambda r: f"{r['n']}x{r['d']}"),
    ("dtype", lambda r: r["dtype"]),
    ("backend", lambda r: r["backend"]),
    ("device", lambda r: r["device"]),
    ("time/epoch", lambda r: _fmt_time(r["time_per_epoch_s"]) + (" ~" if r["unstable"] else "")),
    ("min", lambda r: _fmt_time(r["min_per_epoch_s"])),
    ("spread", lambda r: f"{100 * r['spread']:.0f}%"),
    ("runs", lambda r: str(r["runs"])),
    ("samples/s", lambda r: _fmt_count(r["samples_per_s"])),
    ("GB/s", lambda r: f"{r['effective_gbs']:.3g}"),
    ("% bw", lambda r: _fmt_percent(r["pct_bandwidth"])),
    ("final loss", lambda r: f"{r['final_loss']:.6g}"),
    ("max abs Δθ vs numpy", lambda r: _fmt_optional(r["max_abs_param_diff"], ".1e")),
)


def _cells_of(row: dict) -> list[str]:
    if "error" in row:
        head = [fn(row) for _, fn in _COLUMNS[:5]]
        return head + ["failed: " + row["error"][:60]] + [""] * (len(_COLUMNS) - 6)
    return [fn(row) for _, fn in _COLUMNS]


def format_table(report: dict, markdown: bool = False) -> str:
    """The results as a text table (or a markdown table), preceded by the bandwidth line."""
    header = [name for name, _ in _COLUMNS]
    body = [_cells_of(r) for r in report["results"]]
    bw = report["bandwidth"]
    intro = (
        f"Measured memory bandwidth: {bw['bandwidth_gbs']:.1f} GB/s "
        f"(numpy sum {bw['sum_gbs']:.1f}, BLAS gemv {bw['gemv_gbs']:.1f}) on "
        f"{report['machine']['cpu_model']}, {report['machine']['threads']['cpus_usable']} CPUs."
    )
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(cells) + " |" for cells in body]
        return intro + "\n\n" + "\n".join(lines)
    widths = [max(len(h), *(len(c[i]) for c in body)) for i, h in enumerate(header)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    lines = [fmt.format(*header), fmt.format(*("-" * w for w in widths))]
    lines += [fmt.format(*cells) for cells in body]
    return intro + "\n" + "\n".join(lines)


def save_json(report: dict, path: Path) -> None:
    """Write the report as JSON (every figure, the settings and the machine description)."""
    path.write_text(json.dumps(report, indent=2, default=_json_default) + "\n", encoding="utf-8")


def _json_default(value: object) -> object:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"cannot write {type(value).__name__} to JSON")


def save_plot(report: dict, path: Path) -> None:
    """Plot effective GB/s against the size of X, one panel per problem and dtype.

    One line per backend/device through the medians, with interquartile-range error bars
    (unstable cells hollow); the measured memory bandwidth is drawn as a dashed line.

    Raises
    ------
    ImportError
        When matplotlib is not installed (``pip install "fastgd[plot]"``).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib import ticker

    rows = [r for r in report["results"] if "error" not in r]
    problems = list(dict.fromkeys(r["problem"] for r in rows))
    dtypes = list(dict.fromkeys(r["dtype"] for r in rows))
    targets = list(dict.fromkeys(f"{r['backend']}/{r['device']}" for r in rows))
    bandwidth = report["bandwidth"]["bandwidth_gbs"]
    fig, axes = plt.subplots(
        len(dtypes), len(problems), figsize=(4.6 * len(problems) + 1, 3.6 * len(dtypes) + 1),
        squeeze=False, sharex=True, sharey=True,
    )
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, dtype in enumerate(dtypes):
        for j, problem in enumerate(problems):
            ax = axes[i][j]
            for k, target in enumerate(targets):
                cells = sorted(
                    (r for r in rows if r["problem"] == problem and r["dtype"] == dtype
                     and f"{r['backend']}/{r['device']}" == target),
                    key=lambda r: r["bytes_per_epoch"],
                )
                if cells:
                    _plot_target(ax, cells, colors[k % len(colors)], target)
            ax.axhline(bandwidth, color="black", linestyle="--", linewidth=1,
                       label=f"measured bandwidth {bandwidth:.1f} GB/s")
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.xaxis.set_major_locator(ticker.LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
            ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
            ax.xaxis.set_minor_formatter(ticker.NullFormatter())
            ax.yaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
            ax.grid(True, which="both", alpha=0.3)
            label = report["settings"]["problems"].get(problem, {}).get("label", problem)
            ax.set_title(f"{label}\n{dtype}", fontsize=10)
            if i == len(dtypes) - 1:
                ax.set_xlabel("X and y read per epoch (MB, log scale)")
            if j == 0:
                ax.set_ylabel("effective GB/s (higher is faster)")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 5), frameon=False)
    machine = report["machine"]
    fig.suptitle(
        f"fastgd {report['fastgd_version']}: throughput against problem size — "
        f"{machine['cpu_model']}, {machine['threads']['cpus_usable']} CPUs",
        fontsize=11,
    )
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plot_target(ax, cells: list[dict], color: str, label: str) -> None:
    """Median GB/s against size, the interquartile range as error bars; unstable cells
    (spread above ``UNSTABLE_SPREAD``) as hollow markers."""
    xs = np.array([r["bytes_per_epoch"] / 1e6 for r in cells])
    ys = np.array([r["effective_gbs"] for r in cells])
    low = np.array([r["bytes_per_epoch"] / r["q3_per_epoch_s"] / 1e9 for r in cells])
    high = np.array([r["bytes_per_epoch"] / r["q1_per_epoch_s"] / 1e9 for r in cells])
    ax.errorbar(xs, ys, yerr=[ys - low, high - ys], color=color, marker="o", capsize=3,
                label=label)
    unstable = np.array([r["unstable"] for r in cells])
    if unstable.any():
        ax.plot(xs[unstable], ys[unstable], linestyle="none", marker="o", markersize=9,
                markerfacecolor="white", color=color)


def figure_summary(report: dict) -> str:
    """One line per backend/device: total compile time and median samples/s."""
    by_target: dict[str, list[dict]] = {}
    for row in report["results"]:
        if "error" not in row:
            by_target.setdefault(f"{row['backend']}/{row['device']}", []).append(row)
    lines = []
    for target, rows in by_target.items():
        compile_s = sum(r["compile_s"] or 0.0 for r in rows)
        rate = math.exp(float(np.mean([math.log(r["samples_per_s"]) for r in rows])))
        lines.append(
            f"{target}: compile {compile_s:.2f} s in total, geometric-mean {_fmt_count(rate)} "
            "samples/s"
        )
    return "\n".join(lines)
