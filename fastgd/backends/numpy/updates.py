"""The optimizer: its state before the first update (:func:`_initial_state`) and one step
at the schedule's learning rate (:func:`_step`), the bodies of
:func:`fastgd.backends.numpy.init_state` and :func:`fastgd.backends.numpy.update`."""

from __future__ import annotations

import numpy as np

from ...specs import (
    OPT_ADAGRAD,
    OPT_ADAM,
    OPT_ADAMW,
    OPT_RMSPROP,
    OPT_SGD,
    LoweredOptimizer,
    learning_rate,
)

#: The optimizer state: the number of updates done so far and the (2, d + 1, K) moments.
State = tuple[int, np.ndarray]


def _initial_state(theta: np.ndarray, opt: LoweredOptimizer) -> State:
    """``(0, slots)``: zero moments of ``theta``'s shape and dtype, AdaGrad's sum of squares
    at ``initial_accumulator_value``; see :func:`fastgd.backends.numpy.init_state`."""
    slots = np.zeros((2, *theta.shape), dtype=theta.dtype)
    if opt.code == OPT_ADAGRAD:
        slots[0] = opt.params[0]
    return 0, slots


def _step(
    theta: np.ndarray, grad: np.ndarray, state: State, opt: LoweredOptimizer
) -> tuple[np.ndarray, State]:
    """One optimizer step at the schedule's learning rate, in place on ``theta`` and the
    slots (optax's formulas); see :func:`fastgd.backends.numpy.update`."""
    step, slots = state
    t = step + 1
    lr = theta.dtype.type(learning_rate(opt.schedule_code, opt.schedule_params, t))
    a, b, c, d = (theta.dtype.type(v) for v in opt.params)
    if opt.code == OPT_SGD:
        slots[0] = grad + a * slots[0]
        u = grad + a * slots[0] if b else slots[0]
    elif opt.code == OPT_ADAGRAD:
        slots[0] += grad * grad
        u = grad / np.sqrt(slots[0] + b)
    elif opt.code == OPT_RMSPROP:
        slots[0] = (1 - a) * grad * grad + a * slots[0]
        u = grad / np.sqrt(slots[0] + b)
    elif opt.code in (OPT_ADAM, OPT_ADAMW):
        slots[0] = (1 - a) * grad + a * slots[0]
        slots[1] = (1 - b) * grad * grad + b * slots[1]
        m_hat = slots[0] / (1 - a**t)
        v_hat = slots[1] / (1 - b**t)
        u = m_hat / (np.sqrt(v_hat) + c)
        if opt.code == OPT_ADAMW:
            u[:-1] += d * theta[:-1]
    else:
        raise ValueError(f"unknown optimizer code {opt.code!r}")
    theta -= lr * u
    return theta, (t, slots)
