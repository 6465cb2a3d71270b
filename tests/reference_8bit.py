"""Plain NumPy transcription of Adam with 8-bit block-wise state (the test oracle for
``csrc/pyoptim/adam8bit.hpp``, written from its comment, operation by operation in the state's
dtype ``T``).

Codes: m is int8 ``q`` with value ``((q * |q|) * T(1 / 127^2)) * scale_m``; v (and v_hat) uint8
``q`` with value ``(((q * q) * (q * q)) * T(1 / 255^4)) * scale_v``.  One step, per element in
memory order: dequantise, Adam's arithmetic (Keras' order, :func:`reference.adam`), the
parameter from the new unquantised m and v; per block of ``block`` elements: scale = max |x| of
the new values (NaN when one is not finite, and then codes 0), ``inv = 1 / scale`` (0 for a zero
scale), ``q_m = sign * rint(sqrt(|m| * inv) * 127)``,
``q_v = rint(sqrt(sqrt(v) * sqrt(inv)) * 255)`` (v_hat likewise), rint half to even.
"""
from __future__ import annotations

from typing import Dict, Optional

import numpy as np

from reference import adam_alpha, maximum

_ROUND = {np.float32: np.float32(12582912.0), np.float64: np.float64(6755399441055744.0)}


def decode_signed(q: np.ndarray, T) -> np.ndarray:
    qf = q.astype(T)
    return (qf * np.abs(qf)) * T(1.0 / 16129.0)


def decode_unsigned(q: np.ndarray, T) -> np.ndarray:
    qf = q.astype(T)
    sq = qf * qf
    return (sq * sq) * T(1.0 / 4228250625.0)


def _per_element(scales: np.ndarray, n: int, block: int) -> np.ndarray:
    return np.repeat(scales, block)[:n]


def _block_max(x: np.ndarray, block: int) -> np.ndarray:
    """Per block: the largest |x| ignoring NaN (0 for an all-NaN block), and whether every
    element is finite."""
    n = x.size
    nb = -(-n // block)
    pad = np.zeros(nb * block, x.dtype)
    a = np.abs(x)
    pad[:n] = np.where(np.isnan(a), 0, a)
    finite = np.ones(nb * block, bool)
    finite[:n] = np.isfinite(x)
    return pad.reshape(nb, block).max(axis=1), finite.reshape(nb, block).all(axis=1)


def _round(x: np.ndarray, T) -> np.ndarray:
    return (x + _ROUND[T]) - _ROUND[T]  # half to even, as the kernel


def _encode_signed(m: np.ndarray, inv_e: np.ndarray, T) -> np.ndarray:
    q = _round(np.sqrt(np.abs(m) * inv_e) * T(127), T)  # |m| * inv <= 1 + 2**-23: no clamp
    q = np.copysign(q, m)
    return np.where(np.isfinite(q), q, 0).astype(np.int32).astype(np.int8)


def _encode_root(root: np.ndarray, inv_root_e: np.ndarray, T) -> np.ndarray:
    q = _round(np.sqrt(root * inv_root_e) * T(255), T)
    return np.where(np.isfinite(q), q, 0).astype(np.int32).astype(np.uint8)


def adam8bit_step(param: np.ndarray, grad: np.ndarray, state: Dict[str, np.ndarray], *, step: int,
                  block: int, learning_rate: float = 0.001, beta_1: float = 0.9,
                  beta_2: float = 0.999, epsilon: float = 1e-7,
                  weight_decay: Optional[float] = None,
                  grad_square: Optional[np.ndarray] = None) -> Dict[str, np.ndarray]:
    """One step on copies.  ``state``: ``m`` (int8), ``v`` (uint8), ``m_scale``, ``v_scale``,
    and for AMSGrad ``v_hat`` / ``v_hat_scale``.  ``param`` may be float16/bfloat16 (float32
    arithmetic, rounded back).  ``grad_square`` replaces ``grad * grad`` (a sparse gradient's
    S(g*g)).  Returns ``param`` and the new state, each array in its input's shape."""
    T = np.float64 if param.dtype == np.float64 else np.float32
    order = "F" if param.flags.f_contiguous and not param.flags.c_contiguous else "C"
    flat = lambda a: np.asarray(a).ravel(order=order)  # noqa: E731 - memory order
    n = param.size
    out: Dict[str, np.ndarray] = {}
    with np.errstate(all="ignore"):
        lr = T(learning_rate)
        alpha = adam_alpha(step, learning_rate, beta_1, beta_2, T)
        p = flat(param).astype(T)
        if weight_decay is not None:
            p = p - p * T(weight_decay) * lr
        g = flat(grad).astype(T)
        g2 = g * g if grad_square is None else flat(grad_square).astype(T)
        m0 = decode_signed(flat(state["m"]), T) * _per_element(state["m_scale"], n, block)
        v0 = decode_unsigned(flat(state["v"]), T) * _per_element(state["v_scale"], n, block)
        m = m0 + (g - m0) * T(1 - beta_1)
        v = v0 + (g2 - v0) * T(1 - beta_2)
        den = v
        amsgrad = "v_hat" in state
        if amsgrad:
            vh0 = decode_unsigned(flat(state["v_hat"]), T) * _per_element(state["v_hat_scale"], n, block)
            den = maximum(vh0, v)
        p = p - (m * alpha) / (np.sqrt(den) + T(epsilon))
        values = {"m": m, "v": v}
        if amsgrad:
            values["v_hat"] = den
        finite = None
        maxima = {}
        for k, x in values.items():
            maxima[k], fin = _block_max(x, block)
            finite = fin if finite is None else finite & fin
        for k, x in values.items():
            scale = np.where(finite, maxima[k], T(np.nan)).astype(T)
            r = T(1) / np.where(maxima[k] > 0, maxima[k], T(1))
            inv = np.where(finite & (maxima[k] > 0) & np.isfinite(r), r, T(0)).astype(T)
            if k == "m":
                codes = _encode_signed(x, _per_element(inv, n, block), T)
            else:  # the square root of v (v_hat) against sqrt(1 / scale)
                codes = _encode_root(np.sqrt(x), _per_element(np.sqrt(inv), n, block), T)
            codes = np.where(_per_element(finite, n, block), codes, 0).astype(codes.dtype)
            out[k] = codes.reshape(param.shape, order=order)
            out[k + "_scale"] = scale
        out["param"] = p.astype(param.dtype).reshape(param.shape, order=order)
    return out


def new_state(param: np.ndarray, block: int, amsgrad: bool = False) -> Dict[str, np.ndarray]:
    T = np.float64 if param.dtype == np.float64 else np.float32
    nb = -(-param.size // block)
    s = {"m": np.zeros(param.shape, np.int8), "v": np.zeros(param.shape, np.uint8),
         "m_scale": np.zeros(nb, T), "v_scale": np.zeros(nb, T)}
    if amsgrad:
        s["v_hat"] = np.zeros(param.shape, np.uint8)
        s["v_hat_scale"] = np.zeros(nb, T)
    return s
