"""``pyoptim trace --example rmsprop-step``: one RMSprop step by hand, through the NumPy
API (:func:`pyoptim.rmsprop_update`), no TensorFlow.

Model ``y_hat = w*x + b`` on x = [1, 2], y = [2, 4], starting from w = b = 0, loss
``L = mean((y_hat - y)**2)``.  Gradients::

    dL/dw = mean(2 * (y_hat - y) * x) = mean([-4, -16]) = -10
    dL/db = mean(2 * (y_hat - y))     = mean([-4, -8])  = -6

RMSprop (Keras' rule, rho = 0.9, epsilon = 1e-7 inside the square root)::

    velocity = rho * 0 + (1 - rho) * g**2          -> [10, 3.6]
    w, b    -= lr * g / sqrt(velocity + epsilon)    -> each moves by ~lr / sqrt(0.1) = 0.0316

so y_hat becomes [0.0632, 0.0949] and the loss drops from 10 to 9.50.
"""
from __future__ import annotations

from typing import Dict, List

import numpy as np

import pyoptim

EXAMPLES = ("rmsprop-step",)
LEARNING_RATE = 0.01
RHO = 0.9
EPSILON = 1e-7


def _loss(w: float, b: float, x: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean((w * x + b - y) ** 2))


def rmsprop_step() -> Dict[str, object]:
    """The numbers of the example (float64)."""
    x = np.array([1.0, 2.0])
    y = np.array([2.0, 4.0])
    params = np.zeros(2)  # [w, b]
    pred = params[0] * x + params[1]
    loss_before = _loss(params[0], params[1], x, y)
    residual = pred - y
    grads = np.array([np.mean(2 * residual * x), np.mean(2 * residual)])
    velocity = np.zeros(2)
    before = params.copy()
    pyoptim.rmsprop_update(params, grads, velocity, learning_rate=LEARNING_RATE, rho=RHO, epsilon=EPSILON)
    return {
        "x": x, "y": y, "pred_before": pred, "loss_before": loss_before,
        "grads": grads, "velocity": velocity.copy(), "update": params - before, "params": params.copy(),
        "pred_after": params[0] * x + params[1], "loss_after": _loss(params[0], params[1], x, y),
    }


def _vec(a: np.ndarray, fmt: str = ".4f") -> str:
    return "[" + ", ".join(f"{v:{fmt}}" for v in a) + "]"


def rmsprop_step_text() -> str:
    r = rmsprop_step()
    g, v, u, p = r["grads"], r["velocity"], r["update"], r["params"]
    residual = r["pred_before"] - r["y"]
    sq, gw, gb = residual**2, 2 * residual * r["x"], 2 * residual
    lines: List[str] = [
        "Worked example: one RMSprop step, computed with pyoptim.rmsprop_update (NumPy API)",
        "-" * 78,
        "model       y_hat = w*x + b,  x = [1, 2],  y = [2, 4],  start w = b = 0",
        "loss        L = mean((y_hat - y)^2)",
        f"before      y_hat = {_vec(r['pred_before'], 'g')},  L = mean({_vec(sq, 'g')}) = {r['loss_before']:.2f}",
        f"gradients   dL/dw = mean(2*(y_hat - y)*x) = mean({_vec(gw, 'g')}) = {g[0]:g}",
        f"            dL/db = mean(2*(y_hat - y))   = mean({_vec(gb, 'g')})  = {g[1]:g}",
        f"            gradients (dL/dw, dL/db) = ({g[0]:g}, {g[1]:g})",
        f"RMSprop     learning_rate = {LEARNING_RATE}, rho = {RHO}, epsilon = {EPSILON:g} (rho, epsilon: Keras' defaults)",
        f"            velocity = rho*0 + (1 - rho)*g^2           = {_vec(v)}",
        f"            update   = -lr * g / sqrt(velocity + eps)   = {_vec(u)}  (added to [w, b])",
        "            (the first step moves every parameter by about lr / sqrt(1 - rho) = 0.0316,",
        "             whatever the size of its gradient)",
        f"after       w = {p[0]:.4f}, b = {p[1]:.4f},  y_hat = {_vec(r['pred_after'])}",
        f"loss after the step  L = {r['loss_after']:.2f}  (was {r['loss_before']:.2f})",
    ]
    return "\n".join(lines)
