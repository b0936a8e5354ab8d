"""The tools people would otherwise use, running exactly fastgd's problems.

Each peer takes the data, the batch order of every epoch (drawn by numpy, as fastgd draws
it) and the optimizer, and returns the final parameters ``(coef..., intercept)`` so that
the benchmarks can check them against fastgd's. The objective is fastgd's: the mean over
the batch of ½ (x·w + b − y)², no penalty, zero initial parameters.
"""

from __future__ import annotations

import warnings

import numpy as np


def sklearn_sgd(X: np.ndarray, y: np.ndarray, lr: float, epochs: int) -> np.ndarray:
    """scikit-learn's ``SGDRegressor``: SGD, batch 1, constant lr, no penalty, no shuffle.

    Returns
    -------
    ndarray, shape (d + 1,)
        Weights then intercept, in X's dtype.
    """
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import SGDRegressor

    model = SGDRegressor(
        loss="squared_error", penalty=None, learning_rate="constant", eta0=lr,
        max_iter=epochs, tol=None, shuffle=False, fit_intercept=True,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(X, y)
    return np.append(model.coef_, model.intercept_).astype(X.dtype)


def naive_numpy_sgd(X: np.ndarray, y: np.ndarray, lr: float, epochs: int) -> np.ndarray:
    """SGD the way it is first written: a Python loop over samples, numpy inside.

    Returns
    -------
    ndarray, shape (d + 1,)
        Weights then intercept, in X's dtype.
    """
    n, d = X.shape
    step = X.dtype.type(lr)
    w = np.zeros(d, dtype=X.dtype)
    b = X.dtype.type(0)
    for _ in range(epochs):
        for i in range(n):
            r = X[i] @ w + b - y[i]
            w -= step * r * X[i]
            b -= step * r
    return np.append(w, b)


class OptaxLoop:
    """A jax + optax training loop written the usual way: ``jit`` around a ``lax.scan``.

    One compiled program runs every batch of every epoch: ``value_and_grad`` of the mean
    squared loss, then ``optax`` ``update`` and ``apply_updates``. Built once per problem;
    calling it trains from zero (the first call compiles).

    Parameters
    ----------
    X : ndarray, shape (n, d); y : ndarray, shape (n,)
        float32 or float64 (float64 runs under ``jax.enable_x64``).
    orders : ndarray of int, shape (E, n)
        Sample order of each epoch; n must be a multiple of ``batch_size``.
    batch_size : int
    opt : {"sgd", "adam"}
    lr : float
    n_classes : int, optional
        Train a softmax (multinomial) model of ``n_classes`` classes instead: ``y`` holds
        the class codes, the parameters are W (d, K) and b (K,), the batch loss is the mean
        of ``logsumexp(p) − p_y``.
    """

    def __init__(self, X, y, orders, batch_size: int, opt: str, lr: float,
                 n_classes: int | None = None):
        import jax
        import jax.numpy as jnp
        import optax

        n, d = X.shape
        if n % batch_size:
            raise ValueError(f"n={n} must be a multiple of batch_size={batch_size}")
        self._x64 = X.dtype == np.float64
        self._jax = jax
        with jax.enable_x64(self._x64):
            self._X, self._y = jnp.asarray(X), jnp.asarray(y)
            self._batches = jnp.asarray(orders.reshape(-1, batch_size))
            outputs = () if n_classes is None else (n_classes,)
            self._params = {"w": jnp.zeros((d, *outputs), X.dtype),
                            "b": jnp.zeros(outputs, X.dtype)}
        tx = optax.adam(lr) if opt == "adam" else optax.sgd(lr)

        def batch_loss(params, xb, yb):
            p = xb @ params["w"] + params["b"]
            if n_classes is not None:
                picked = jnp.take_along_axis(p, yb.astype(jnp.int32)[:, None], axis=1)
                return jnp.mean(jax.nn.logsumexp(p, axis=1) - picked[:, 0])
            r = p - yb
            return 0.5 * jnp.mean(r * r)

        def train(params, X, y, batches):
            def step(carry, idx):
                params, opt_state = carry
                loss, grads = jax.value_and_grad(batch_loss)(params, X[idx], y[idx])
                updates, opt_state = tx.update(grads, opt_state, params)
                return (optax.apply_updates(params, updates), opt_state), loss

            (params, _), losses = jax.lax.scan(step, (params, tx.init(params)), batches)
            return params, losses

        self._train = jax.jit(train)

    def __call__(self) -> np.ndarray:
        """Train from zero on the data already on the device.

        Returns
        -------
        ndarray, shape (d + 1,), or (d + 1, K) for a softmax model
            Weights then intercept(s) in X's dtype, on the host.
        """
        with self._jax.enable_x64(self._x64):
            return self._run(self._X, self._y, self._batches)

    def from_host(self, X: np.ndarray, y: np.ndarray, orders: np.ndarray) -> np.ndarray:
        """Train from zero on host arrays: moving X, y and the order to the device included.

        The same end-to-end work as ``fastgd.fit`` on numpy arrays (the program is the one
        compiled by the first call).

        Parameters
        ----------
        X : ndarray, shape (n, d); y : ndarray, shape (n,); orders : ndarray, shape (E, n)
            The arrays the loop was built with.

        Returns
        -------
        ndarray, shape (d + 1,)
            Weights then intercept in X's dtype, on the host.
        """
        jnp = self._jax.numpy
        with self._jax.enable_x64(self._x64):
            batches = orders.reshape(-1, self._batches.shape[1])
            return self._run(jnp.asarray(X), jnp.asarray(y), jnp.asarray(batches))

    def _run(self, X, y, batches) -> np.ndarray:
        params, losses = self._train(self._params, X, y, batches)
        losses.block_until_ready()
        w, b = np.asarray(params["w"]), np.asarray(params["b"])
        return np.vstack([w.reshape(w.shape[0], -1), b.reshape(1, -1)]).squeeze()


def torch_loop(X, y, orders, batch_size: int, opt: str, lr: float) -> np.ndarray:
    """A plain PyTorch loop: index a batch, forward, ``backward()``, ``torch.optim`` step.

    Mini-batches and single samples run with one intra-op thread (restored afterwards): a
    batch of a few thousand numbers is far too little work to share, and torch's thread
    pool, spinning between such tiny operations, makes each step several times slower on a
    busy two-core machine. Full batches keep torch's default threads.

    Returns
    -------
    ndarray, shape (d + 1,)
        Weights then intercept, in X's dtype.
    """
    import torch

    n, d = X.shape
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
    w = torch.zeros(d, dtype=Xt.dtype, requires_grad=True)
    b = torch.zeros((), dtype=Xt.dtype, requires_grad=True)
    optim = torch.optim.Adam([w, b], lr=lr) if opt == "adam" else torch.optim.SGD([w, b], lr=lr)
    index = torch.from_numpy(np.ascontiguousarray(orders))
    threads = torch.get_num_threads()
    torch.set_num_threads(threads if batch_size >= n else 1)
    try:
        _torch_epochs(Xt, yt, w, b, optim, index, batch_size)
    finally:
        torch.set_num_threads(threads)
    return np.append(w.detach().numpy(), b.detach().numpy())


def _torch_epochs(Xt, yt, w, b, optim, index, batch_size: int) -> None:
    """Every batch of every epoch of :func:`torch_loop`."""
    n = Xt.shape[0]
    for epoch in range(index.shape[0]):
        for start in range(0, n, batch_size):
            idx = index[epoch, start : start + batch_size]
            optim.zero_grad()
            r = Xt[idx] @ w + b - yt[idx]
            loss = 0.5 * (r * r).mean()
            loss.backward()
            optim.step()


def sklearn_sgd_classifier(X, codes, loss: str, alpha: float, lr: float, epochs: int,
                           n_jobs: int | None) -> np.ndarray:
    """scikit-learn's ``SGDClassifier`` one-vs-rest: batch 1, constant lr, l2, no shuffle.

    Returns
    -------
    ndarray, shape (d + 1, K)
        Weights (one column per class) then intercepts, in X's dtype.
    """
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import SGDClassifier

    model = SGDClassifier(
        loss=loss, penalty="l2", alpha=alpha, learning_rate="constant", eta0=lr,
        max_iter=epochs, tol=None, shuffle=False, n_jobs=n_jobs,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(X, codes)
    return np.vstack([model.coef_.T, model.intercept_[None, :]]).astype(X.dtype)
