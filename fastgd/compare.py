"""The accelerator comparison behind ``fastgd compare``.

The same problems (SGD with batch 1, mini-batch Adam, full-batch GD), on the same data,
run with every backend and every jax device present. For each run the report gives the
median time per epoch, samples/s, the effective bandwidth (bytes of X and y read per epoch
over the time per epoch) and its share of the machine's measured memory bandwidth, the
final loss, and the largest parameter difference from the numpy backend (the reference).

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

from . import __version__
from .api import fit
from .backends import available_backends
from .data import make_regression
from .machine import describe_machine, jax_platforms, measure_bandwidth
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
        Backend names; jax runs once per device platform present.
    repeat : int
        At most this many timed fits per cell (the median is reported) …
    budget_s : float
        … stopping early once the timed fits of a cell took this long (at least one).
    bandwidth_bytes, bandwidth_repeat : int
        Size of the array and number of passes of the bandwidth measurement.
    quick : bool
        Recorded in the report.
    """

    problems: tuple[str, ...] = tuple(PROBLEMS)
    sizes: tuple[tuple[int, int], ...] = tuple((n, DEFAULT_FEATURES) for n in DEFAULT_SIZES)
    dtypes: tuple[str, ...] = DTYPES
    backends: tuple[str, ...] = ()
    repeat: int = 5
    budget_s: float = 2.0
    bandwidth_bytes: int = 256 * 2**20
    bandwidth_repeat: int = 5
    quick: bool = False

    @classmethod
    def quick_config(cls, **overrides) -> CompareConfig:
        """The ``--quick`` settings (about 20 s on two cores), with ``overrides`` applied."""
        base = cls(
            sizes=tuple((n, DEFAULT_FEATURES) for n in QUICK_SIZES),
            repeat=3,
            budget_s=0.5,
            bandwidth_bytes=128 * 2**20,
            bandwidth_repeat=3,
            quick=True,
        )
        return dataclasses.replace(base, **overrides)


# ------------------------------------------------------------------------- running


def _device_targets(backends: Sequence[str]) -> list[tuple[str, str]]:
    """(backend, device) pairs: jax once per platform present, the others on the CPU."""
    targets = []
    for name in backends:
        if name == "jax":
            targets.extend(("jax", platform) for platform in jax_platforms() or {"cpu": []})
        else:
            targets.append((name, "cpu"))
    return targets


def _fit(problem: Problem, X: np.ndarray, y: np.ndarray, backend: str, device: str):
    """One ``fastgd.fit`` of ``problem``; the seed is fixed so every backend sees one order."""
    n = X.shape[0]
    batch = None if problem.batch_size is None else min(problem.batch_size, n)
    return fit(
        X,
        y,
        optimizer=problem.optimizer,
        batch_size=batch,
        epochs=problem.epochs,
        shuffle=problem.shuffle,
        seed=0,
        backend=backend,
        device=None if backend != "jax" else device,
    )


def _theta(result) -> np.ndarray:
    return np.append(result.coef.astype(np.float64), result.intercept)


def _time_cell(
    problem: Problem, X: np.ndarray, y: np.ndarray, backend: str, device: str, cfg: CompareConfig
) -> dict:
    """Warm up (when the backend compiles), then time up to ``cfg.repeat`` fits."""
    first_call_s = None
    if backend != "numpy":
        first_call_s = _fit(problem, X, y, backend, device).fit_time
    times: list[float] = []
    result = None
    while len(times) < cfg.repeat and (not times or sum(times) < cfg.budget_s):
        result = _fit(problem, X, y, backend, device)
        times.append(result.fit_time)
    median = float(np.median(times))
    n, d = X.shape
    per_epoch = median / problem.epochs
    bytes_per_epoch = n * (d + 1) * X.dtype.itemsize
    return {
        "times_s": times,
        "runs": len(times),
        "time_per_epoch_s": per_epoch,
        "samples_per_s": n / per_epoch,
        "bytes_per_epoch": bytes_per_epoch,
        "effective_gbs": bytes_per_epoch / per_epoch / 1e9,
        "first_call_s": first_call_s,
        "compile_s": None if first_call_s is None else max(0.0, first_call_s - median),
        "final_loss": float(result.loss_history[-1]),
        "theta": _theta(result),
    }


class _Progress:
    """A one-line progress bar on stderr (one line per step when stderr is not a terminal)."""

    def __init__(self, total: int, stream=None):
        self.total, self.done = total, 0
        self.stream = stream if stream is not None else sys.stderr
        self.start = time.perf_counter()
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()

    def step(self, label: str) -> None:
        self.done += 1
        width = 24
        filled = int(width * self.done / max(self.total, 1))
        line = (
            f"[{'#' * filled}{'.' * (width - filled)}] {self.done}/{self.total} "
            f"{time.perf_counter() - self.start:5.1f}s {label}"
        )
        if self.tty:
            self.stream.write("\r" + line.ljust(100)[:100])
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()


def _data_cells(cfg: CompareConfig) -> list[tuple[tuple[int, int], str]]:
    return [(size, dtype) for size in cfg.sizes for dtype in cfg.dtypes]


def _run_target(
    problem: Problem, X: np.ndarray, y: np.ndarray, backend: str, device: str,
    cfg: CompareConfig, bar: _Progress | None,
) -> dict:
    """One row of the report: ``problem`` timed on ``backend``/``device`` (or its error)."""
    n, d = X.shape
    row = {"problem": problem.name, "n": n, "d": d, "dtype": str(X.dtype),
           "backend": backend, "device": device, "epochs": problem.epochs}
    try:
        row.update(_time_cell(problem, X, y, backend, device, cfg))
    except Exception as exc:  # one failing backend must not hide the others
        row["error"] = f"{type(exc).__name__}: {exc}"
    if bar:
        bar.step(f"{problem.name} {n}x{d} {X.dtype} {backend}/{device}")
    return row


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
    n_runs = len(_data_cells(cfg)) * len(cfg.problems) * len(targets)
    bar = _Progress(n_runs + 1, stream) if progress else None
    bandwidth = measure_bandwidth(cfg.bandwidth_bytes, cfg.bandwidth_repeat)
    if bar:
        bar.step(f"memory bandwidth {bandwidth['bandwidth_gbs']:.1f} GB/s")
    rows = []
    ordered = sorted(targets, key=lambda t: t[0] != "numpy")
    for (n, d), dtype in _data_cells(cfg):
        X, y, _ = make_regression(n, d, dtype=np.dtype(dtype), seed=0)
        for problem_name in cfg.problems:
            problem = PROBLEMS[problem_name]
            cell_rows = [_run_target(problem, X, y, b, dev, cfg, bar) for b, dev in ordered]
            reference = next((r.get("theta") for r in cell_rows if r["backend"] == "numpy"), None)
            if reference is None and "numpy" not in backends:
                reference = _theta(_fit(problem, X, y, "numpy", "cpu"))
            _add_parity(cell_rows, reference, bandwidth["bandwidth_gbs"])
            rows.extend(cell_rows)
    if bar:
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
        "timing": "median of FitResult.fit_time over the timed fits, divided by epochs",
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
    ("time/epoch", lambda r: _fmt_time(r["time_per_epoch_s"])),
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

    One line per backend/device; the measured memory bandwidth is drawn as a dashed line.

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
                pts = sorted(
                    (r["bytes_per_epoch"] / 1e6, r["effective_gbs"])
                    for r in rows
                    if r["problem"] == problem and r["dtype"] == dtype
                    and f"{r['backend']}/{r['device']}" == target
                )
                if pts:
                    xs, ys = zip(*pts, strict=True)
                    ax.plot(xs, ys, marker="o", color=colors[k % len(colors)], label=target)
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
