"""Sums in TensorFlow's order (CPU), for Keras' gradient clipping.

``tf.reduce_sum`` of a float tensor on the CPU is Eigen's full reduction: a tree
that halves the range (at a packet boundary) while it holds more than
``1024`` packets, and on each leaf four packet accumulators run over blocks of
four packets, are combined as ``((a0 + a1) + a2) + a3``, take the remaining
whole packets, and the leftover elements go to a scalar accumulator that is
finally added to the horizontal sum of the packet (lanes added in halves).
Every addition is in the tensor's dtype.  The packet is 32 bytes (AVX: 8
float32, 4 float64) on x86-64, as TensorFlow's x86-64 wheels are built, and 16
bytes (NEON) on aarch64.

Above about 100 000 elements TensorFlow may split the sum between threads, in
blocks that depend on its thread pool; :func:`tf_sum` does not model that.
"""
from __future__ import annotations

import platform

import numpy as np

LEAF_PACKETS = 1024
PACKET_BYTES = 16 if platform.machine().lower() in ("aarch64", "arm64") else 32


def _predux(p: np.ndarray):
    while p.size > 1:
        h = p.size // 2
        p = p[:h] + p[h:]
    return p[0]


def _leaf(x: np.ndarray, P: int):
    T = x.dtype.type
    n = x.size
    start = 0
    pacc = np.zeros(P, x.dtype)
    if n >= 4 * P:
        v4 = (n // (4 * P)) * (4 * P)
        # Along axis 0 of a C-contiguous array NumPy adds row after row (no
        # pairwise summation): lane j of accumulator k is sequential.
        acc = np.add.reduce(x[:v4].reshape(-1, 4, P), axis=0)
        pacc = ((acc[0] + acc[1]) + acc[2]) + acc[3]
        start = v4
    while start + P <= n:
        pacc = pacc + x[start:start + P]
        start += P
    s = T(0)
    for i in range(start, n):
        s = T(s + x[i])
    return T(s + _predux(pacc))


def _tree(x: np.ndarray, P: int, first: int, n: int):
    T = x.dtype.type
    if n > P * LEAF_PACKETS:
        split = P * -(-(first + -(-n // 2)) // P)
        n_left = min(split - first, n)
        acc = T(T(0) + _tree(x, P, first, n_left))
        if n_left < n:
            acc = T(acc + _tree(x, P, split, n - n_left))
        return acc
    return _leaf(x[first:first + n], P)


def tf_sum(x: np.ndarray):
    """The sum of every element of the float32 or float64 array ``x``, as a NumPy
    scalar of its dtype, added in the order of TensorFlow's CPU ``reduce_sum``."""
    x = np.ascontiguousarray(x).reshape(-1)
    if x.size == 0:
        return x.dtype.type(0)
    P = PACKET_BYTES // x.dtype.itemsize
    return _tree(x, P, 0, x.size)
