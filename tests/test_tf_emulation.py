"""The two TensorFlow kernels pyoptim reproduces bit for bit (for Ftrl's powers and Lamb's
norms), against TensorFlow itself: csrc/pyoptim/tf_pow.hpp (tf.pow: Eigen's packet pow on a
tensor's whole packets, std::pow on its last n % P elements) and csrc/pyoptim/tf_reduce.hpp
(tf.reduce_sum's order, its thread split included).  Each header is compiled into a small
library with the kernels' flags for every instruction set this CPU runs (the results must not
depend on it) and called through ctypes; special values (zeros, subnormals, inf, NaN, negative
bases) are in the inputs.
"""
from __future__ import annotations

import ctypes
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402

import pyoptim  # noqa: E402
from pyoptim.keras import _build  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
ISAS = pyoptim.config.config()["isas_supported"]

SOURCE = r"""
#include "pyoptim/tf_pow.hpp"
#include "pyoptim/tf_reduce.hpp"
using namespace pyoptim;
extern "C" {
void pow_f32(const float* x, float y, float* out, long n) { TfDenormalScope s; tf_pow_array(x, y, out, n); }
void pow_f64(const double* x, double y, double* out, long n) { TfDenormalScope s; tf_pow_array(x, y, out, n); }
float sum_f32(const float* x, long n, int threads) { return tf_sum(x, n, threads); }
double sum_f64(const double* x, long n, int threads) { return tf_sum(x, n, threads); }
}
"""


@pytest.fixture(scope="module", params=ISAS)
def lib(request, tmp_path_factory):
    work = tmp_path_factory.mktemp(f"tf_emulation_{request.param}")
    (work / "emulation.cpp").write_text(SOURCE)
    out = work / "emulation.so"
    build = subprocess.run(_build.compiler() + ["-std=c++17", "-shared", "-fPIC"]
                           + _build.kernel_flags() + _build.isa_flags(request.param)
                           + [f"-I{ROOT / 'csrc'}", str(work / "emulation.cpp"), "-o", str(out)],
                           capture_output=True, text=True, timeout=600)
    assert build.returncode == 0, build.stderr[-3000:]
    so = ctypes.CDLL(str(out))
    for name, ct in (("f32", ctypes.c_float), ("f64", ctypes.c_double)):
        getattr(so, "pow_" + name).argtypes = [ctypes.c_void_p, ct, ctypes.c_void_p, ctypes.c_long]
        getattr(so, "sum_" + name).argtypes = [ctypes.c_void_p, ctypes.c_long, ctypes.c_int]
        getattr(so, "sum_" + name).restype = ct
    return so


def _bits(a: np.ndarray) -> np.ndarray:
    return a.view(np.uint32 if a.dtype == np.float32 else np.uint64)


def _inputs(rng: np.random.Generator, n: int, dtype: type) -> np.ndarray:
    x = np.concatenate([rng.random(n // 2) * 10, rng.standard_normal(n - n // 2) * 3])
    x = x.astype(dtype)
    fi = np.finfo(dtype)
    specials = np.array([0.0, -0.0, fi.tiny, fi.tiny / 8, fi.smallest_subnormal, fi.max, np.inf,
                         -np.inf, np.nan, 1.0, -1.0, 2.0, -2.5], dtype)
    hit = rng.random(n) < 0.1
    x[hit] = rng.choice(specials, int(hit.sum()))
    return rng.permutation(x)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_pow_equals_tensorflows(lib, dtype):
    rng = np.random.default_rng(11)
    name = "f32" if dtype == np.float32 else "f64"
    ct = ctypes.c_float if dtype == np.float32 else ctypes.c_double
    differing = compared = 0
    for y in (0.5, 0.6, 2.0, 1.3, 3.0, 0.25, -0.5, 1.0, 0.0):
        for n in (1, 7, 8, 9, 31, 100, 1003, 100003):
            x = _inputs(rng, n, dtype)
            ref = tf.pow(tf.constant(x), tf.constant(y, dtype=dtype)).numpy()
            out = np.empty_like(x)
            getattr(lib, "pow_" + name)(x.ctypes.data, ct(y), out.ctypes.data, n)
            differing += int((_bits(out) != _bits(ref)).sum())
            compared += n
    assert compared > 800_000 and differing == 0, f"{differing} of {compared} elements differ"


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_reduce_sum_equals_tensorflows(lib, dtype):
    """With this process's intra-op threads (the thread split applies from 108388 float32 and
    54194 float64 elements on; tests/test_keras_elementwise.py runs Lamb with 1 and 3 threads)."""
    threads = tf.config.threading.get_intra_op_parallelism_threads() or len(os.sched_getaffinity(0))
    rng = np.random.default_rng(5)
    name = "f32" if dtype == np.float32 else "f64"
    sizes = [1, 7, 8, 33, 1000, 8191, 8200, 54193, 54194, 108387, 108388, 160001, 211613, 10**6 + 3]
    for n in sizes:
        x = (rng.standard_normal(n) * np.exp2(rng.integers(-6, 6, n))).astype(dtype)
        ref = tf.reduce_sum(tf.constant(x)).numpy()
        got = getattr(lib, "sum_" + name)(x.ctypes.data, n, threads)
        assert _bits(np.array([got], dtype))[0] == _bits(np.array([ref], dtype))[0], (n, got, ref)
