"""64-bit indexing: updates of more than 2**31 elements.

The cheapest update (plain SGD: reads param and grad, writes param) runs on a
float32 array of 2**31 + 17 elements, and a multi-tensor SGD ``apply`` on two
arrays whose total passes 2**31 (the thread shares then cross the 2**31 mark
inside the virtual concatenation).  Memory: the param is written, so it costs
its full size (8 GiB); the gradient is a zero-filled allocation of which only
a few pages are written, and reading untouched anonymous pages maps the shared
zero page, so it costs almost nothing.  Non-zero values are planted at the
start, around index 2**31 (and 2**32 - 2**31 for the pair) and at the end; those
elements are compared with the reference and every other element must still be
zero afterwards (a wrapped 32-bit index would leave the planted elements
untouched or write elsewhere).

Both tests share one pair of buffers (a module fixture), so the 8 GiB are
faulted in once.  An exclusive lock (/tmp/pyoptim-large-tests.lock) keeps two
pytest runs on one machine from allocating them at the same time.  The tests
skip, saying why, only when /proc/meminfo's MemAvailable is below what they
need (8 GiB + 2 GiB headroom), or when PYOPTIM_SKIP_LARGE_TESTS=1 (for quick
local runs: on this VM the first touch of 8 GiB takes 40-90 s under load).
"""
from __future__ import annotations

import fcntl
import gc
import os
from typing import Iterator, List, Tuple

import numpy as np
import pytest

import pyoptim
import reference as ref

GIB = 1 << 30
HEADROOM = 2 * GIB


def mem_available() -> int:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def require_memory(nbytes: int) -> None:
    have = mem_available()
    if have < nbytes + HEADROOM:
        pytest.skip(f"needs {(nbytes + HEADROOM) / GIB:.1f} GiB available memory "
                    f"(param {nbytes / GIB:.1f} GiB + {HEADROOM / GIB:.0f} GiB headroom); "
                    f"MemAvailable is {have / GIB:.1f} GiB")


def planted_windows(n: int, marks: List[int], width: int = 40) -> List[Tuple[int, int]]:
    wins = [(0, width), (n - width, n)] + [(max(0, m - width), min(n, m + width)) for m in marks]
    return sorted(wins)


def plant(a: np.ndarray, windows, seed: int) -> None:
    rng = np.random.default_rng(seed)
    for lo, hi in windows:
        a[lo:hi] = rng.standard_normal(hi - lo).astype(a.dtype)


N = 2**31 + 17
PAIR = [2**30 + 5, 2**30 + 13]  # total 2**31 + 18: global offsets pass 2**31 inside the second array


@pytest.fixture(scope="module")
def buffers() -> Iterator[Tuple[np.ndarray, np.ndarray]]:
    """Zero-filled float32 param and grad buffers of max(N, sum(PAIR)) elements."""
    if os.environ.get("PYOPTIM_SKIP_LARGE_TESTS") == "1":
        pytest.skip("PYOPTIM_SKIP_LARGE_TESTS=1")
    n = max(N, sum(PAIR))
    with open("/tmp/pyoptim-large-tests.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        require_memory(n * 4)
        p = np.zeros(n, np.float32)
        g = np.zeros(n, np.float32)
        threads = pyoptim.get_num_threads()
        pyoptim.set_num_threads(2)
        try:
            yield p, g
        finally:
            pyoptim.set_num_threads(threads)
            del p, g
            gc.collect()


def check(p: np.ndarray, p_before_windows, g: np.ndarray, windows, lr: float) -> None:
    for (lo, hi), before in zip(windows, p_before_windows):
        want = ref.sgd(before, g[lo:hi], learning_rate=lr)["param"]
        assert ref.same_bits(p[lo:hi], want), f"elements [{lo}, {hi}): {ref.describe_difference(p[lo:hi], want)}"


def zero(arrays, windows) -> None:
    for a, w in zip(arrays, windows):
        for lo, hi in w:
            a[lo:hi] = 0


def test_sgd_update_past_2_31_elements(buffers):
    p, g = (b[:N] for b in buffers)
    windows = planted_windows(N, [2**31 - 1, 2**31, N // 2, N // 2 + 16])
    plant(p, windows, 1)
    plant(g, windows, 2)
    before = [p[lo:hi].copy() for lo, hi in windows]
    try:
        pyoptim.sgd_update(p, g, learning_rate=0.25)
        check(p, before, g, windows, 0.25)
        assert np.count_nonzero(p) <= sum(hi - lo for lo, hi in windows), "elements outside the planted windows changed"
    finally:
        zero([p, g], [windows, windows])


def test_multi_tensor_apply_past_2_31_elements_in_total(buffers):
    bp, bg = buffers
    params = [bp[:PAIR[0]], bp[PAIR[0]: PAIR[0] + PAIR[1]]]
    grads = [bg[:PAIR[0]], bg[PAIR[0]: PAIR[0] + PAIR[1]]]
    wins = [planted_windows(PAIR[0], [PAIR[0] // 2]),
            planted_windows(PAIR[1], [2**31 - PAIR[0], PAIR[1] // 2])]
    for i, (p, g) in enumerate(zip(params, grads)):
        plant(p, wins[i], 10 + i)
        plant(g, wins[i], 20 + i)
    before = [[p[lo:hi].copy() for lo, hi in w] for p, w in zip(params, wins)]
    try:
        pyoptim.SGD(learning_rate=0.25).apply(grads, params)
        for i in range(2):
            check(params[i], before[i], grads[i], wins[i], 0.25)
        planted = sum(hi - lo for w in wins for lo, hi in w)
        assert np.count_nonzero(bp) <= planted, "elements outside the planted windows changed"
    finally:
        zero(params + grads, wins + wins)
