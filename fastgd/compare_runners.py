"""The runners of ``fastgd compare``: fastgd's backends and the peers people use instead.

Every runner trains one problem (:mod:`fastgd.compare_problems`) on one data set from zero
and gives back its parameters ``theta`` (weights then intercepts, shape (d + 1, K), float64)
and the seconds it took (:meth:`Runner.fit`), or the parameters after every epoch of a
longer run with the seconds spent training up to each (:meth:`Runner.curve`). The peers
run the same algorithm as the fastgd rows (same loss, penalty, learning rate, batches in
the same order, zero start), so their parameters must agree with fastgd's numpy backend:
that is their answer check (see :mod:`fastgd.compare`).

- fastgd: ``fastgd.fit`` on a backend and device; the time is ``FitResult.fit_time``
  (input checks left out). Curves: ``fit(callback=...)``, which records the time and a
  copy of the parameters after each epoch; the callbacks' own time is subtracted.
- scikit-learn: ``SGDClassifier`` / ``SGDRegressor`` on the per-sample problems
  (``learning_rate="constant"``, ``shuffle=False``, ``tol=None``: the recurrence fastgd's
  per-sample SGD walks), ``fit()`` timed under ``assume_finite=True`` (its finiteness
  check left out, as fastgd's checks are). Curves: one ``partial_fit`` per epoch.
- optax: ``jit`` of a ``lax.scan`` over every batch of every epoch, X, y and the
  epochs' batch orders laid out on the device beforehand, on the mini-batch and
  full-batch problems, once per jax platform. Curves: the one-epoch program, called
  once per epoch (and waited for).
- PyTorch, when it is installed: a plain loop (index a batch, forward, ``backward()``,
  ``torch.optim`` step) on the CPU, on the mini-batch and full-batch problems.
"""

from __future__ import annotations

import time
import warnings

import numpy as np

from .api import fit
from .compare_problems import Problem
from .data import epoch_orders
from .machine import mesh_size
from .specs import Adam

__all__ = ["PEERS", "Runner", "FastgdRunner", "available_peers", "make_runners", "theta_of"]

#: The peers, in the order of their rows.
PEERS = ("sklearn", "optax", "torch")


def theta_of(coef: object, intercept: object) -> np.ndarray:
    """Weights (d,) or (d, K) and intercept(s) as one float64 array of shape (d + 1, K)."""
    coef = np.asarray(coef, dtype=np.float64)
    coef = coef.reshape(coef.shape[0], -1)
    return np.vstack([coef, np.reshape(np.asarray(intercept, np.float64), (1, -1))])


def available_peers() -> tuple[str, ...]:
    """The peers whose libraries import here (optax needs jax too)."""
    found = []
    for name, modules in (("sklearn", ("sklearn",)), ("optax", ("jax", "optax")),
                          ("torch", ("torch",))):
        try:
            for module in modules:
                __import__(module)
        except ImportError:
            continue
        found.append(name)
    return tuple(found)


def _is_adam(problem: Problem) -> bool:
    """Whether the problem trains with Adam (else plain SGD, no momentum)."""
    return isinstance(problem.optimizer, Adam)


class Runner:
    """One way to train a problem. Subclasses set the attributes and the two methods.

    Attributes
    ----------
    backend : str
        fastgd's backend, or the peer's name (``"sklearn"``, ``"optax"``, ``"torch"``).
    device : str
        ``"cpu"``, a jax platform or a jax mesh label (``"cpu x4"``).
    peer : bool
        Whether this is another library.
    compiles : bool
        Whether its first call compiles (it then gets an untimed warm-up).
    """

    backend = ""
    device = "cpu"
    peer = False
    compiles = False

    def __init__(self, problem: Problem, X, y: np.ndarray):
        self.problem, self.X, self.y = problem, X, y

    def describe(self) -> str:
        """What runs: library, version, settings."""
        raise NotImplementedError

    def fit(self) -> tuple[np.ndarray, float]:
        """Train ``problem.epochs`` epochs from zero: (theta of shape (d + 1, K), seconds)."""
        raise NotImplementedError

    def curve(self, epochs: int, budget_s: float = np.inf) -> tuple[np.ndarray, list]:
        """Train ``epochs`` epochs from zero, or fewer: stop after the first epoch that
        ends ``budget_s`` seconds or more after the start. Returns the seconds of training
        up to the end of each epoch run (shape (epochs run,)) and theta after each."""
        raise NotImplementedError


# --------------------------------------------------------------------------- fastgd


class FastgdRunner(Runner):
    """``fastgd.fit`` on one backend and device (a platform, or a jax mesh label)."""

    compiles = True

    def __init__(self, problem: Problem, X, y: np.ndarray, backend: str, device: str):
        super().__init__(problem, X, y)
        self.backend, self.device = backend, device
        self.compiles = backend != "numpy"

    def describe(self) -> str:
        from . import __version__

        return f"fastgd {__version__} fit(backend={self.backend!r}) on {self.device}"

    def _fit(self, epochs: int, callback=None):
        problem, family = self.problem, self.problem.spec
        n = self.X.shape[0]
        batch = None if problem.batch_size is None else min(problem.batch_size, n)
        extra: dict[str, object] = {}
        if family.intercept_decay != 1.0:
            extra["intercept_decay"] = family.intercept_decay
        if self.backend == "jax":
            count = mesh_size(self.device)
            extra.update({"device": self.device} if count is None else {"devices": count})
        return fit(
            self.X, self.y, loss=family.loss, penalty=family.penalty, alpha=family.alpha,
            optimizer=problem.optimizer, batch_size=batch, epochs=epochs,
            shuffle=problem.shuffle, seed=0, backend=self.backend, callback=callback,
            **extra,
        )

    def fit(self) -> tuple[np.ndarray, float]:
        result = self._fit(self.problem.epochs)
        return theta_of(result.coef, result.intercept), result.fit_time

    def curve(self, epochs: int, budget_s: float = np.inf) -> tuple[np.ndarray, list]:
        """Epoch by epoch through ``fit``'s callback: it notes the time and copies the
        parameters; the time spent in the callbacks is subtracted, and the start is
        ``fit_time`` before ``fit`` returned (its input checks left out). The callback
        stops the fit once ``budget_s`` have passed since ``fit`` was called."""
        marks: list[float] = []
        thetas: list[np.ndarray] = []
        spent = [0.0]
        called = time.perf_counter()

        def record(epoch, loss, coef, intercept):
            now = time.perf_counter()
            marks.append(now - spent[0])
            thetas.append(theta_of(coef, intercept))
            spent[0] += time.perf_counter() - now
            return now - called >= budget_s

        result = self._fit(epochs, callback=record)
        start = time.perf_counter() - result.fit_time
        return np.array(marks) - start, thetas


# ---------------------------------------------------------------------- scikit-learn

_SKLEARN_LOSSES = {"squared": "squared_error", "hinge": "hinge", "logistic": "log_loss"}


class SklearnRunner(Runner):
    """scikit-learn's ``SGDRegressor`` (squared) or ``SGDClassifier`` (binary losses)."""

    backend = "sklearn"
    peer = True

    def _settings(self, max_iter: int) -> dict:
        problem, family = self.problem, self.problem.spec
        return dict(
            loss=_SKLEARN_LOSSES[family.loss], penalty=family.penalty,
            alpha=family.alpha if family.penalty else 1e-4, learning_rate="constant",
            eta0=problem.lr, max_iter=max_iter, tol=None, shuffle=False, fit_intercept=True,
        )

    def _model(self, max_iter: int):
        from sklearn.linear_model import SGDClassifier, SGDRegressor

        cls = SGDRegressor if self.problem.spec.loss == "squared" else SGDClassifier
        return cls(**self._settings(max_iter))

    def describe(self) -> str:
        import sklearn

        model = type(self._model(1)).__name__
        args = ", ".join(f"{k}={v!r}" for k, v in self._settings(self.problem.epochs).items())
        return f"scikit-learn {sklearn.__version__} {model}({args}).fit, assume_finite"

    def _timed(self, call, *args, **kwargs) -> float:
        import sklearn
        from sklearn.exceptions import ConvergenceWarning

        with warnings.catch_warnings(), sklearn.config_context(assume_finite=True):
            warnings.simplefilter("ignore", ConvergenceWarning)
            start = time.perf_counter()
            call(*args, **kwargs)
            return time.perf_counter() - start

    def fit(self) -> tuple[np.ndarray, float]:
        model = self._model(self.problem.epochs)
        seconds = self._timed(model.fit, self.X, self.y)
        return theta_of(np.atleast_2d(model.coef_).T, model.intercept_), seconds

    def curve(self, epochs: int, budget_s: float = np.inf) -> tuple[np.ndarray, list]:
        model = self._model(1)
        extra = {} if self.problem.spec.loss == "squared" else {"classes": np.unique(self.y)}
        elapsed, times, thetas = 0.0, [], []
        while len(times) < epochs and elapsed < budget_s:
            elapsed += self._timed(model.partial_fit, self.X, self.y, **extra)
            times.append(elapsed)
            thetas.append(theta_of(np.atleast_2d(model.coef_).T, model.intercept_))
        return np.array(times), thetas


# ----------------------------------------------------------------------------- optax


class OptaxRunner(Runner):
    """An optax training loop on one jax platform: ``jit`` + ``lax.scan``, data and batch
    orders on the device before the clock starts."""

    backend = "optax"
    peer = True
    compiles = True

    def __init__(self, problem: Problem, X, y: np.ndarray, platform: str):
        import jax

        super().__init__(problem, X, y)
        self.device = platform
        self._jax = jax
        self._x64 = X.dtype == np.float64
        n = X.shape[0]
        self._batch = n if problem.batch_size is None else min(problem.batch_size, n)
        epochs = max(problem.epochs, problem.curve_epochs)
        drawn = problem.shuffle and self._batch < n
        orders = np.asarray(epoch_orders(np.random.default_rng(0), n, epochs, drawn))
        with jax.enable_x64(self._x64):
            where = jax.devices(platform)[0]
            self._X = jax.device_put(X, where)
            ydtype = np.int32 if problem.spec.loss == "multinomial" else X.dtype
            self._y = jax.device_put(y.astype(ydtype), where)
            self._orders = jax.device_put(orders[: problem.epochs].astype(np.int32), where)
            self._epoch_orders = [jax.device_put(o[None].astype(np.int32), where)
                                  for o in orders[: problem.curve_epochs]]
            self._start = jax.device_put(self._zeros(), where)
            self._program = jax.jit(self._build())

    def describe(self) -> str:
        import optax

        opt = "adam" if _is_adam(self.problem) else "sgd"
        return (f"optax {optax.__version__} (jax {self._jax.__version__}) optax.{opt}"
                f"(lr={self.problem.lr:g}) in jit(lax.scan) over batches of "
                f"{self._batch}, data on {self.device}")

    def _zeros(self) -> dict:
        d = self.X.shape[1]
        outputs = (int(self.y.max()) + 1,) if self.problem.spec.loss == "multinomial" else ()
        return {"w": np.zeros((d, *outputs), self.X.dtype),
                "b": np.zeros(outputs, self.X.dtype)}

    def _loss(self):
        import jax
        import jax.numpy as jnp

        family = self.problem.spec
        alpha = family.alpha if family.penalty == "l2" else 0.0

        def batch_loss(params, xb, yb):
            p = xb @ params["w"] + params["b"]
            if family.loss == "multinomial":
                picked = jnp.take_along_axis(p, yb[:, None], axis=1)[:, 0]
                terms = jax.nn.logsumexp(p, axis=1) - picked
            elif family.loss == "squared":
                terms = 0.5 * (p - yb) ** 2
            else:
                z = (2 * yb - 1) * p
                terms = jnp.maximum(0, 1 - z) if family.loss == "hinge" else jnp.logaddexp(0, -z)
            return jnp.mean(terms) + 0.5 * alpha * jnp.sum(params["w"] ** 2)

        return batch_loss

    def _build(self):
        """``program(carry, X, y, orders) -> carry``: every epoch of ``orders`` (E, n),
        carry being (params, optimizer state) or params alone (a fresh state)."""
        import jax
        import optax

        problem = self.problem
        tx = optax.adam(problem.lr) if _is_adam(problem) else optax.sgd(problem.lr)
        grad = jax.grad(self._loss())
        batch, n = self._batch, self.X.shape[0]
        full, whole = batch * (n // batch), n // batch

        def step(carry, xb, yb):
            params, state = carry
            updates, state = tx.update(grad(params, xb, yb), state, params)
            return optax.apply_updates(params, updates), state

        def epoch(carry, order, X, y):
            if batch == n:  # full batch: no gather
                return step(carry, X, y), None
            carry, _ = jax.lax.scan(lambda c, idx: (step(c, X[idx], y[idx]), None), carry,
                                    order[:full].reshape(whole, batch))
            if full < n:  # the last, shorter batch
                carry = step(carry, X[order[full:]], y[order[full:]])
            return carry, None

        def program(carry, X, y, orders):
            if not isinstance(carry, tuple):
                carry = (carry, tx.init(carry))
            carry, _ = jax.lax.scan(lambda c, o: epoch(c, o, X, y), carry, orders)
            return carry

        self._init_state = tx.init
        return program

    def fit(self) -> tuple[np.ndarray, float]:
        with self._jax.enable_x64(self._x64):
            start = time.perf_counter()
            params, _ = self._program(self._start, self._X, self._y, self._orders)
            theta = theta_of(np.asarray(params["w"]), np.asarray(params["b"]))
            return theta, time.perf_counter() - start

    def curve(self, epochs: int, budget_s: float = np.inf) -> tuple[np.ndarray, list]:
        """The one-epoch program, called once per epoch and waited for, the optimizer's
        state made before the clock starts; the copies of the parameters to the host are
        left out of the time."""
        elapsed, times, thetas = 0.0, [], []
        with self._jax.enable_x64(self._x64):
            carry = (self._start, self._init_state(self._start))  # one program every epoch
            for e in range(epochs):
                if elapsed >= budget_s:
                    break
                start = time.perf_counter()
                carry = self._program(carry, self._X, self._y, self._epoch_orders[e])
                self._jax.block_until_ready(carry)
                elapsed += time.perf_counter() - start
                times.append(elapsed)
                thetas.append(theta_of(np.asarray(carry[0]["w"]), np.asarray(carry[0]["b"])))
        return np.array(times), thetas


# ----------------------------------------------------------------------------- torch


class TorchRunner(Runner):
    """A plain PyTorch loop on the CPU.

    Mini-batches run with one intra-op thread (restored afterwards): a batch of a few
    thousand numbers is too little work to share, and torch's pool spinning between such
    tiny operations makes each step several times slower on a busy machine. Full batches
    keep torch's default threads.
    """

    backend = "torch"
    peer = True
    compiles = True  # the first call builds torch's kernels and caches

    def __init__(self, problem: Problem, X, y: np.ndarray):
        import torch

        super().__init__(problem, X, y)
        self._torch = torch
        n = X.shape[0]
        self._batch = n if problem.batch_size is None else min(problem.batch_size, n)
        drawn = problem.shuffle and self._batch < n
        epochs = max(problem.epochs, problem.curve_epochs)
        orders = np.asarray(epoch_orders(np.random.default_rng(0), n, epochs, drawn))
        self._orders = torch.from_numpy(np.ascontiguousarray(orders))
        self._X = torch.from_numpy(np.ascontiguousarray(X))
        multinomial = problem.spec.loss == "multinomial"
        self._y = torch.from_numpy(y.astype(np.int64) if multinomial else y)
        self._outputs = (int(y.max()) + 1,) if multinomial else ()

    def describe(self) -> str:
        opt = "Adam" if _is_adam(self.problem) else "SGD"
        threads = "default threads" if self._batch == self.X.shape[0] else "1 thread"
        return (f"PyTorch {self._torch.__version__} torch.optim.{opt}(lr="
                f"{self.problem.lr:g}), batches of {self._batch}, {threads}, CPU")

    def _loss(self, p, yb, w):
        functional = self._torch.nn.functional
        family = self.problem.spec
        if family.loss == "multinomial":
            value = functional.cross_entropy(p, yb)
        elif family.loss == "squared":
            value = 0.5 * ((p - yb) ** 2).mean()
        else:
            z = (2 * yb - 1) * p
            terms = (1 - z).clamp(min=0) if family.loss == "hinge" else functional.softplus(-z)
            value = terms.mean()
        if family.penalty == "l2":
            value = value + 0.5 * family.alpha * (w * w).sum()
        return value

    def _train(self, epochs: int, on_epoch=None) -> tuple:
        """``epochs`` epochs from zero; ``on_epoch(w, b)`` after each, True stops."""
        torch = self._torch
        d = self.X.shape[1]
        w = torch.zeros((d, *self._outputs), dtype=self._X.dtype, requires_grad=True)
        b = torch.zeros(self._outputs, dtype=self._X.dtype, requires_grad=True)
        adam = _is_adam(self.problem)
        optim = (torch.optim.Adam if adam else torch.optim.SGD)([w, b], lr=self.problem.lr)
        n, batch = self._X.shape[0], self._batch
        threads = torch.get_num_threads()
        torch.set_num_threads(threads if batch >= n else 1)
        try:
            for epoch in range(epochs):
                for begin in range(0, n, batch):
                    if batch >= n:
                        xb, yb = self._X, self._y
                    else:
                        idx = self._orders[epoch, begin: begin + batch]
                        xb, yb = self._X[idx], self._y[idx]
                    optim.zero_grad()
                    self._loss(xb @ w + b, yb, w).backward()
                    optim.step()
                if on_epoch is not None and on_epoch(w, b):
                    break
        finally:
            torch.set_num_threads(threads)
        return w, b

    @staticmethod
    def _theta(w, b) -> np.ndarray:
        return theta_of(w.detach().numpy(), b.detach().numpy())

    def fit(self) -> tuple[np.ndarray, float]:
        start = time.perf_counter()
        w, b = self._train(self.problem.epochs)
        theta = self._theta(w, b)
        return theta, time.perf_counter() - start

    def curve(self, epochs: int, budget_s: float = np.inf) -> tuple[np.ndarray, list]:
        marks, thetas, spent = [], [], [0.0]
        start = time.perf_counter()

        def record(w, b):
            now = time.perf_counter()
            marks.append(now - spent[0])
            thetas.append(self._theta(w, b))
            spent[0] += time.perf_counter() - now
            return now - start >= budget_s

        self._train(epochs, record)
        return np.array(marks) - start, thetas


# --------------------------------------------------------------------------- choice


class FailedRunner(Runner):
    """A runner that could not be set up: every call raises its error (a failed row)."""

    def __init__(self, problem: Problem, X, y, backend: str, device: str, error: Exception):
        super().__init__(problem, X, y)
        self.backend, self.device, self.peer, self.error = backend, device, True, error

    def describe(self) -> str:
        return f"{self.backend}: could not be set up"

    def fit(self) -> tuple[np.ndarray, float]:
        raise self.error

    def curve(self, epochs: int, budget_s: float = np.inf) -> tuple[np.ndarray, list]:
        raise self.error


def _build(cls, problem: Problem, X, y, *args) -> Runner:
    """``cls(problem, X, y, *args)``, or a :class:`FailedRunner` carrying its error."""
    try:
        return cls(problem, X, y, *args)
    except Exception as exc:  # a peer that fails must not hide the other rows
        device = args[0] if args else "cpu"
        return FailedRunner(problem, X, y, cls.backend, device, exc)


def _peer_runners(problem: Problem, X, y, peers: tuple[str, ...],
                  platforms: tuple[str, ...]) -> list[Runner]:
    """The peers that run ``problem``'s algorithm: scikit-learn the per-sample problems
    (binary and squared losses: its SGD has no softmax), optax and PyTorch the mini-batch
    and full-batch problems on dense X."""
    runners: list[Runner] = []
    family = problem.spec
    if "sklearn" in peers and problem.kind == "sample" and family.loss in _SKLEARN_LOSSES:
        runners.append(_build(SklearnRunner, problem, X, y))
    if problem.kind != "sample" and not family.sparse:
        if "optax" in peers:
            runners.extend(_build(OptaxRunner, problem, X, y, p) for p in platforms)
        if "torch" in peers:
            runners.append(_build(TorchRunner, problem, X, y))
    return runners


def make_runners(problem: Problem, X, y: np.ndarray, targets: list[tuple[str, str]],
                 peers: tuple[str, ...], platforms: tuple[str, ...]) -> list[Runner]:
    """fastgd's (backend, device) targets, then the peers that run ``problem``.

    Parameters
    ----------
    targets : list of (backend, device)
    peers : tuple of str
        Out of :data:`PEERS`, those to run (each only where it runs the same algorithm).
    platforms : tuple of str
        The jax platforms the optax loop runs on.
    """
    runners: list[Runner] = [FastgdRunner(problem, X, y, b, dev) for b, dev in targets]
    return runners + _peer_runners(problem, X, y, peers, platforms)
