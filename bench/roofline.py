"""The memory roofline: a plain C loop with an optimizer's memory traffic.

Each optimizer step reads the parameter, the gradient and the state arrays and
writes the parameter and the states.  For float32 (4 bytes) with Keras' defaults:

* SGD with momentum: read p, g, m; write p, m            -> 5 x 4 = 20 bytes/element
* RMSprop (rho, no momentum): read p, g, v; write p, v   -> 5 x 4 = 20 bytes/element
* Adam: read p, g, m, v; write p, m, v                   -> 7 x 4 = 28 bytes/element

* Adam8bit (8-bit block-wise m and v, block B): read p, g, m (1 byte), v (1 byte);
  write p, m, v; per block read and write the two float32 scales
                                                  -> 16 + 16 / B bytes/element
                                                     (16.0625 at B = 256)

* The element-wise optimizers (bench/elementwise.py, csrc/pyoptim/<name>.hpp), one pass each
  except Lamb: Lion and Adagrad read p, g, s and write p, s (20 bytes/element, ``roof_states1``);
  Adadelta, Adamax, Nadam and Ftrl read p, g and two slots and write p and both (28,
  ``roof_states2``); Lamb's op makes two passes: update m and v inside the two norm sums (read
  p, g, m, v, write m, v), then the step (read p, m, v, write p)
                                                  -> 24 + 16 = 40 bytes/element
  (``roof_lamb``: the same two passes, each its own parallel region, with trivial arithmetic;
  with weight decay the first pass also writes p: 28 + 16).

(Written lines were read first, so write-allocate adds no traffic.)  The C loops
below move exactly those arrays with trivial arithmetic (no division, no square
root), so their time is the memory system's limit for that traffic.  They are
compiled by the benchmark at run time with the C compiler on PATH (``cc``, ``gcc``
or ``clang``, ``-O3 -march=native -fopenmp``, with fallbacks) and called through
ctypes on the NumPy buffers.  Threads: an explicit ``num_threads`` clause with the
benchmark's thread count (OMP_NUM_THREADS is set to the same value).  Like the
kernels, a list of arrays is split as one virtual array into one contiguous share
per thread; for each size the loop is timed once single-threaded and once with all
threads and keeps the faster mode, so the roofline is the best of the two.
"""
from __future__ import annotations

import atexit
import ctypes
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence

import numpy as np

#: Arrays read / written per element by each optimizer (float32 keras defaults).
TRAFFIC = {
    "sgd": {"read": ("param", "grad", "momentum"), "write": ("param", "momentum")},
    "rmsprop": {"read": ("param", "grad", "velocity"), "write": ("param", "velocity")},
    "adam": {"read": ("param", "grad", "m", "v"), "write": ("param", "m", "v")},
}

#: Adam with 8-bit block-wise state (pyoptim.Adam8bit, csrc/pyoptim/adam8bit.hpp): bytes per element
#: (reads + writes) and per block (the two states' float32 scales, read and written).
TRAFFIC_8BIT = {
    "read": {"param": 4, "grad": 4, "m_code": 1, "v_code": 1},
    "write": {"param": 4, "m_code": 1, "v_code": 1},
    "per_block_read": {"m_scale": 4, "v_scale": 4},
    "per_block_write": {"m_scale": 4, "v_scale": 4},
}


#: The element-wise optimizers' traffic per element, float32, as the kernels move it: one entry
#: per pass over the arrays (csrc/pyoptim/<name>.hpp; Lamb: kTensorNorms, two passes).  Keys
#: are bench/problems.py's ELEMENTWISE_OPTIMIZERS.
TRAFFIC_ELEMENTWISE: Dict[str, List[Dict[str, tuple]]] = {
    "adadelta": [{"read": ("param", "grad", "accumulated_grad", "accumulated_delta_var"),
                  "write": ("param", "accumulated_grad", "accumulated_delta_var")}],
    "adagrad": [{"read": ("param", "grad", "accumulator"), "write": ("param", "accumulator")}],
    "adamax": [{"read": ("param", "grad", "m", "u"), "write": ("param", "m", "u")}],
    "ftrl": [{"read": ("param", "grad", "accumulator", "linear"), "write": ("param", "accumulator", "linear")}],
    "lamb": [{"pass": "update m, v and the norm sums: sum(p^2), sum(u^2) with u from m, v",
              "read": ("param", "grad", "m", "v"), "write": ("m", "v")},
             {"pass": "step: p -= ratio * lr * u", "read": ("param", "m", "v"), "write": ("param",)}],
    "lion": [{"read": ("param", "grad", "momentum"), "write": ("param", "momentum")}],
    "nadam": [{"read": ("param", "grad", "m", "v"), "write": ("param", "m", "v")}],
}

#: Which C loop moves each element-wise optimizer's traffic: 1 or 2 state arrays in one pass
#: (``roof_states1`` / ``roof_states2``, the SGD/RMSprop and Adam loops) or Lamb's three passes.
ELEMENTWISE_LOOP: Dict[str, str] = {"adadelta": "states2", "adagrad": "states1", "adamax": "states2",
                                    "ftrl": "states2", "lamb": "lamb", "lion": "states1", "nadam": "states2"}


def bytes_per_element_elementwise(optimizer: str, itemsize: int = 4) -> int:
    """Bytes per element of one step of an element-wise optimizer, every pass:
    Lion and Adagrad 20, Adadelta, Adamax, Ftrl and Nadam 28, Lamb 40 (float32)."""
    return sum(len(p["read"]) + len(p["write"]) for p in TRAFFIC_ELEMENTWISE[optimizer]) * itemsize


def num_blocks(size: int, block_size: int) -> int:
    """Blocks (scales per state) of a tensor of ``size`` elements: ceil(size / block_size)."""
    return -(-int(size) // int(block_size))


def bytes_per_element_8bit(block_size: int) -> float:
    """Adam8bit's bytes per element: 16 (p 8, g 4, m 2, v 2) + 16 / block_size (scales)."""
    t = TRAFFIC_8BIT
    per_elem = sum(t["read"].values()) + sum(t["write"].values())
    per_block = sum(t["per_block_read"].values()) + sum(t["per_block_write"].values())
    return per_elem + per_block / block_size


def bytes_per_step_8bit(sizes: Sequence[int], block_size: int) -> int:
    """Adam8bit's bytes moved by one step over tensors of ``sizes`` elements (each tensor has
    ceil(n / block_size) blocks, the last one possibly short)."""
    t = TRAFFIC_8BIT
    per_elem = sum(t["read"].values()) + sum(t["write"].values())
    per_block = sum(t["per_block_read"].values()) + sum(t["per_block_write"].values())
    return sum(per_elem * n + per_block * num_blocks(n, block_size) for n in sizes)


#: Number of state arrays per optimizer.
N_STATES = {"sgd": 1, "rmsprop": 1, "adam": 2}


def bytes_per_element(optimizer: str, itemsize: int = 4) -> int:
    """(reads + writes) x itemsize: 20 for SGD-momentum and RMSprop, 28 for Adam (float32)."""
    t = TRAFFIC[optimizer]
    return (len(t["read"]) + len(t["write"])) * itemsize


C_SOURCE = r"""
#include <stdint.h>
#ifdef _OPENMP
#include <omp.h>
#endif
typedef int64_t i64;

/* Split a list of segments (one virtual array of `total` elements) into one
   contiguous, 16-element aligned share per thread, as the kernels do. */
#define SHARE_LOOP(BODY)                                                        \
  i64 total = 0;                                                                \
  for (int k = 0; k < nseg; ++k) total += n[k];                                 \
  if (nt > 1) {                                                                 \
    _Pragma("omp parallel num_threads(nt)")                                     \
    {                                                                           \
      i64 nth = 1, tid = 0;                                                     \
      ROOF_THREAD_IDS                                                           \
      i64 share = (total + nth - 1) / nth;                                      \
      share = (share + 15) / 16 * 16;                                           \
      i64 lo = tid * share < total ? tid * share : total;                       \
      i64 hi = lo + share < total ? lo + share : total;                         \
      i64 off = 0;                                                              \
      for (int k = 0; k < nseg && off < hi; ++k) {                              \
        i64 b = lo > off ? lo - off : 0;                                        \
        i64 e = hi < off + n[k] ? hi - off : n[k];                              \
        if (b < e) { BODY }                                                     \
        off += n[k];                                                            \
      }                                                                         \
    }                                                                           \
  } else {                                                                      \
    for (int k = 0; k < nseg; ++k) { i64 b = 0, e = n[k]; BODY }                \
  }

#ifdef _OPENMP
#define ROOF_THREAD_IDS nth = omp_get_num_threads(); tid = omp_get_thread_num();
#else
#define ROOF_THREAD_IDS
#endif

/* read p, g, s; write p, s  (SGD momentum, RMSprop) */
static void run1(float* restrict p, const float* restrict g, float* restrict s,
                 i64 b, i64 e, float a, float c) {
#pragma omp simd
  for (i64 i = b; i < e; ++i) {
    float si = s[i] * a + g[i] * c;
    s[i] = si;
    p[i] = p[i] + si;
  }
}

/* read p, g, s1, s2; write p, s1, s2  (Adam) */
static void run2(float* restrict p, const float* restrict g, float* restrict s1,
                 float* restrict s2, i64 b, i64 e, float a, float c) {
#pragma omp simd
  for (i64 i = b; i < e; ++i) {
    float gi = g[i];
    float mi = s1[i] * a + gi * c;
    float vi = s2[i] * a + gi * gi * c;
    s1[i] = mi;
    s2[i] = vi;
    p[i] = p[i] - mi * c + vi * c;
  }
}

void roof_states1(float** p, float** g, float** s, const i64* n, int nseg, int nt) {
  SHARE_LOOP(run1(p[k], g[k], s[k], b, e, 0.9f, 1e-3f);)
}

void roof_states2(float** p, float** g, float** s1, float** s2, const i64* n, int nseg, int nt) {
  SHARE_LOOP(run2(p[k], g[k], s1[k], s2[k], b, e, 0.9f, 1e-3f);)
}

/* Adam8bit's traffic: per block of `block` elements read the two float32 scales, read p, g,
   the 1-byte m and v codes; write p, m, v and the two scales (one pass, as the kernel).
   Blocks [kb, ke) of one tensor of n elements (the last block may be short). */
static void run8(float* restrict p, const float* restrict g, uint8_t* restrict m,
                 uint8_t* restrict v, float* restrict sm, float* restrict sv, i64 n, i64 block,
                 i64 kb, i64 ke, float c) {
  for (i64 k = kb; k < ke; ++k) {
    const i64 b = k * block, e = b + block < n ? b + block : n;
    const float am = sm[k] * c, av = sv[k] * c;
#pragma omp simd
    for (i64 i = b; i < e; ++i) {
      const uint8_t qm = m[i], qv = v[i];
      p[i] = p[i] + g[i] * c + (float)(int8_t)qm * am + (float)qv * av;
      m[i] = (uint8_t)(qm + 1u);
      v[i] = (uint8_t)(qv + 1u);
    }
    sm[k] = am + 1.0f;
    sv[k] = av + 1.0f;
  }
}

/* Like SHARE_LOOP, but the virtual array is the list's blocks: each thread takes one
   contiguous share of whole blocks, as the 8-bit kernel does (for_each_block). */
void roof_adam8bit(float** p, float** g, uint8_t** m, uint8_t** v, float** sm, float** sv,
                   const i64* n, int nseg, i64 block, int nt) {
  i64 total = 0;
  for (int k = 0; k < nseg; ++k) total += (n[k] + block - 1) / block;
  if (nt > 1) {
#pragma omp parallel num_threads(nt)
    {
      i64 nth = 1, tid = 0;
      ROOF_THREAD_IDS
      i64 share = (total + nth - 1) / nth;
      i64 lo = tid * share < total ? tid * share : total;
      i64 hi = lo + share < total ? lo + share : total;
      i64 off = 0;
      for (int k = 0; k < nseg && off < hi; ++k) {
        i64 nb = (n[k] + block - 1) / block;
        i64 b = lo > off ? lo - off : 0;
        i64 e = hi < off + nb ? hi - off : nb;
        if (b < e) run8(p[k], g[k], m[k], v[k], sm[k], sv[k], n[k], block, b, e, 1e-3f);
        off += nb;
      }
    }
  } else {
    for (int k = 0; k < nseg; ++k)
      run8(p[k], g[k], m[k], v[k], sm[k], sv[k], n[k], block, 0, (n[k] + block - 1) / block, 1e-3f);
  }
}

/* Lamb's two passes (as its op without weight decay, each a parallel region over one share per
   thread):
   1. read p, g, m, v; write m, v      (the update of m and v, and the two sums per tensor:
                                        sums[2k], sums[2k + 1])
   2. read p, m, v; write p            (p -= scale_k * u, scale_k from tensor k's sums) */
static void lamb_sums(const float* restrict p, const float* restrict g, float* restrict m,
                      float* restrict v, i64 b, i64 e, float* sums, int k) {
  float sp = 0.0f, su = 0.0f;
#pragma omp simd reduction(+ : sp, su)
  for (i64 i = b; i < e; ++i) {
    m[i] = m[i] + (g[i] - m[i]) * 0.1f;
    v[i] = v[i] + (g[i] * g[i] - v[i]) * 1e-3f;
    sp += p[i] * p[i];
    su += m[i] * 1e-3f + v[i];
  }
#pragma omp atomic
  sums[2 * k] += sp;
#pragma omp atomic
  sums[2 * k + 1] += su;
}

static void lamb_step(float* restrict p, const float* restrict m, const float* restrict v,
                      i64 b, i64 e, float s) {
#pragma omp simd
  for (i64 i = b; i < e; ++i) p[i] = p[i] - s * (m[i] + v[i] * 1e-3f);
}

void roof_lamb(float** p, float** g, float** m, float** v, const i64* n, int nseg, int nt,
               float* sums, float* scale) {
  for (int k = 0; k < nseg; ++k) sums[2 * k] = sums[2 * k + 1] = 0.0f;
  { SHARE_LOOP(lamb_sums(p[k], g[k], m[k], v[k], b, e, sums, k);) }
  for (int k = 0; k < nseg; ++k)
    scale[k] = sums[2 * k] > 0.0f && sums[2 * k + 1] > 0.0f ? 1e-6f : 1e-3f;
  { SHARE_LOOP(lamb_step(p[k], m[k], v[k], b, e, scale[k]);) }
}

int roof_openmp(void) {
#ifdef _OPENMP
  return 1;
#else
  return 0;
#endif
}
"""

FLAG_SETS: Sequence[Sequence[str]] = (
    ("-O3", "-march=native", "-fopenmp"),
    ("-O3", "-fopenmp"),
    ("-O3", "-march=native"),
    ("-O3",),
)


@dataclass
class RooflineLib:
    """The compiled roofline loops and how they were built."""

    lib: ctypes.CDLL
    compiler: str
    compiler_version: str
    flags: List[str]
    openmp: bool
    workdir: str

    def info(self) -> Dict[str, object]:
        return {
            "available": True,
            "compiler": self.compiler,
            "compiler_version": self.compiler_version,
            "flags": self.flags,
            "openmp": self.openmp,
            "bytes_per_element": {k: bytes_per_element(k) for k in TRAFFIC},
            "traffic": {k: {"read": list(v["read"]), "write": list(v["write"])} for k, v in TRAFFIC.items()},
            "traffic_8bit": TRAFFIC_8BIT,
            "bytes_per_element_8bit": "16 + 16 / block_size",
            "bytes_per_element_elementwise": {k: bytes_per_element_elementwise(k) for k in TRAFFIC_ELEMENTWISE},
            "traffic_elementwise": {k: [{kk: list(vv) if isinstance(vv, tuple) else vv for kk, vv in p.items()}
                                        for p in v] for k, v in TRAFFIC_ELEMENTWISE.items()},
            "loop_elementwise": ELEMENTWISE_LOOP,
        }


def find_compiler() -> Optional[str]:
    """$CC if set, else the first of cc, gcc, clang on PATH."""
    cc = os.environ.get("CC")
    if cc and shutil.which(cc):
        return shutil.which(cc)
    for name in ("cc", "gcc", "clang"):
        path = shutil.which(name)
        if path:
            return path
    return None


def build(workdir: Optional[str] = None) -> RooflineLib:
    """Compile :data:`C_SOURCE` into a shared library and load it.  Tries the flag
    sets of :data:`FLAG_SETS` in order.  Raises RuntimeError with the compiler's
    message when no compiler is found or nothing compiles."""
    cc = find_compiler()
    if cc is None:
        raise RuntimeError("no C compiler on PATH (looked for $CC, cc, gcc, clang)")
    if workdir is None:
        workdir = tempfile.mkdtemp(prefix="pyoptim-roofline-")
        # The loaded library stays mapped after its file is removed.
        atexit.register(shutil.rmtree, workdir, ignore_errors=True)
    src = os.path.join(workdir, "roofline.c")
    with open(src, "w") as f:
        f.write(C_SOURCE)
    try:
        version = subprocess.run([cc, "--version"], capture_output=True, text=True, timeout=30).stdout.splitlines()[0]
    except (OSError, IndexError, subprocess.SubprocessError):
        version = "unknown"
    errors = []
    for i, flags in enumerate(FLAG_SETS):
        out = os.path.join(workdir, f"roofline{i}.so")
        cmd = [cc, *flags, "-std=c99", "-fPIC", "-shared", src, "-o", out]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        if proc.returncode != 0:
            errors.append(f"{' '.join(cmd)}: {proc.stderr.strip()[:400]}")
            continue
        lib = ctypes.CDLL(out)
        pp = ctypes.POINTER(ctypes.c_void_p)
        lib.roof_states1.argtypes = [pp, pp, pp, ctypes.c_void_p, ctypes.c_int, ctypes.c_int]
        lib.roof_states2.argtypes = [pp, pp, pp, pp, ctypes.c_void_p, ctypes.c_int, ctypes.c_int]
        lib.roof_adam8bit.argtypes = [pp, pp, pp, pp, pp, pp, ctypes.c_void_p, ctypes.c_int, ctypes.c_int64,
                                      ctypes.c_int]
        lib.roof_lamb.argtypes = [pp, pp, pp, pp, ctypes.c_void_p, ctypes.c_int, ctypes.c_int, ctypes.c_void_p,
                                  ctypes.c_void_p]
        lib.roof_states1.restype = lib.roof_states2.restype = lib.roof_adam8bit.restype = None
        lib.roof_lamb.restype = None
        lib.roof_openmp.restype = ctypes.c_int
        return RooflineLib(lib, cc, version, list(flags), bool(lib.roof_openmp()), workdir)
    raise RuntimeError("could not compile the roofline loop:\n" + "\n".join(errors))


def _ptrs(arrays: Sequence[np.ndarray]) -> ctypes.Array:
    return (ctypes.c_void_p * len(arrays))(*[a.ctypes.data for a in arrays])


class RooflineStep:
    """One roofline step over a list of float32 arrays: ``step()`` runs the C loop.

    Holds references to the arrays (the C side gets raw pointers).  ``mode`` is
    'serial' or 'parallel' (all threads); :meth:`calibrate` picks the faster.
    """

    def __init__(self, roof: RooflineLib, optimizer: str, params: List[np.ndarray], grads: List[np.ndarray],
                 states: List[List[np.ndarray]], threads: int) -> None:
        for a in [*params, *grads, *[x for s in states for x in s]]:
            if a.dtype != np.float32 or not a.flags.c_contiguous or not a.flags.writeable:
                raise ValueError("roofline arrays must be writeable, C-contiguous float32")
        self._keep = (params, grads, states)
        self._p, self._g = _ptrs(params), _ptrs(grads)
        self._s = [_ptrs(s) for s in states]
        self._n = np.array([a.size for a in params], dtype=np.int64)
        self._nptr = ctypes.c_void_p(self._n.ctypes.data)
        self._nseg = len(params)
        self._threads = max(1, int(threads))
        self._two = N_STATES[optimizer] == 2
        self._lib = roof.lib
        self.nt = self._threads
        self.mode = "parallel" if self._threads > 1 else "serial"

    def step(self) -> None:
        if self._two:
            self._lib.roof_states2(self._p, self._g, self._s[0], self._s[1], self._nptr, self._nseg, self.nt)
        else:
            self._lib.roof_states1(self._p, self._g, self._s[0], self._nptr, self._nseg, self.nt)

    def calibrate(self, probe_s: float = 0.02) -> Dict[str, float]:
        """Time the serial and the parallel mode alternately for about ``probe_s``
        each and keep the faster.  Returns the two median step times."""
        if self._threads == 1:
            self.nt, self.mode = 1, "serial"
            return {}
        found: Dict[str, List[float]] = {"serial": [], "parallel": []}
        for _ in range(3):
            for mode, nt in (("serial", 1), ("parallel", self._threads)):
                self.nt = nt
                self.step()
        deadline = time.perf_counter() + 2 * probe_s
        while time.perf_counter() < deadline or min(len(v) for v in found.values()) < 5:
            for mode, nt in (("serial", 1), ("parallel", self._threads)):
                self.nt = nt
                k = 1
                t0 = time.perf_counter()
                self.step()
                dt = time.perf_counter() - t0
                if dt < 1e-4:  # batch tiny steps so the clock resolves them
                    k = 50
                    t0 = time.perf_counter()
                    for _ in range(k):
                        self.step()
                    dt = (time.perf_counter() - t0) / k
                found[mode].append(dt)
            if min(len(v) for v in found.values()) >= 200:
                break
        med = {m: statistics.median(v) for m, v in found.items()}
        self.mode = min(med, key=med.get)
        self.nt = 1 if self.mode == "serial" else self._threads
        return med


class Roofline8bitStep(RooflineStep):
    """The roofline of Adam8bit's step (``roof_adam8bit``): float32 params and grads, uint8 (or
    int8) m and v codes of the same sizes, float32 scales of ceil(n / block_size) elements per
    tensor.  ``step()`` runs the C loop; :meth:`calibrate` picks serial or parallel."""

    def __init__(self, roof: RooflineLib, params: List[np.ndarray], grads: List[np.ndarray],
                 m_codes: List[np.ndarray], v_codes: List[np.ndarray], m_scales: List[np.ndarray],
                 v_scales: List[np.ndarray], block_size: int, threads: int) -> None:
        for a in [*params, *grads, *m_scales, *v_scales]:
            if a.dtype != np.float32 or not a.flags.c_contiguous or not a.flags.writeable:
                raise ValueError("roofline params, grads and scales must be writeable, C-contiguous float32")
        for a in [*m_codes, *v_codes]:
            if a.dtype.itemsize != 1 or a.dtype.kind not in "iu" or not a.flags.c_contiguous or not a.flags.writeable:
                raise ValueError("roofline codes must be writeable, C-contiguous int8 or uint8")
        nb = [num_blocks(p.size, block_size) for p in params]
        if [a.size for a in m_codes] != [p.size for p in params] or [a.size for a in v_codes] != \
                [p.size for p in params] or [a.size for a in m_scales] != nb or [a.size for a in v_scales] != nb:
            raise ValueError("roofline codes must have the params' sizes, scales ceil(n / block_size)")
        self._keep = (params, grads, m_codes, v_codes, m_scales, v_scales)
        self._p, self._g = _ptrs(params), _ptrs(grads)
        self._m, self._v, self._sm, self._sv = _ptrs(m_codes), _ptrs(v_codes), _ptrs(m_scales), _ptrs(v_scales)
        self._n = np.array([a.size for a in params], dtype=np.int64)
        self._nptr = ctypes.c_void_p(self._n.ctypes.data)
        self._nseg = len(params)
        self._block = int(block_size)
        self._threads = max(1, int(threads))
        self._lib = roof.lib
        self.nt = self._threads
        self.mode = "parallel" if self._threads > 1 else "serial"

    def step(self) -> None:
        self._lib.roof_adam8bit(self._p, self._g, self._m, self._v, self._sm, self._sv, self._nptr, self._nseg,
                                self._block, self.nt)


class RooflineElementwiseStep(RooflineStep):
    """The roofline of an element-wise optimizer's step (:data:`TRAFFIC_ELEMENTWISE`): the one-pass
    loops of SGD/RMSprop (one state array) or Adam (two), or Lamb's three passes (``roof_lamb``).
    ``states`` holds the optimizer's state arrays (one list per slot, one array per tensor)."""

    def __init__(self, roof: RooflineLib, optimizer: str, params: List[np.ndarray], grads: List[np.ndarray],
                 states: List[List[np.ndarray]], threads: int) -> None:
        loop = ELEMENTWISE_LOOP[optimizer]
        want = 1 if loop == "states1" else 2
        if len(states) != want:
            raise ValueError(f"{optimizer}'s roofline loop takes {want} state arrays per tensor, got {len(states)}")
        super().__init__(roof, "sgd" if want == 1 else "adam", params, grads, states, threads)
        self._lamb = loop == "lamb"
        if self._lamb:
            self._work = np.zeros(2 * len(params), np.float32)
            self._scale = np.zeros(len(params), np.float32)
            self._wptr = ctypes.c_void_p(self._work.ctypes.data)
            self._sptr = ctypes.c_void_p(self._scale.ctypes.data)

    def step(self) -> None:
        if self._lamb:
            self._lib.roof_lamb(self._p, self._g, self._s[0], self._s[1], self._nptr, self._nseg, self.nt,
                                self._wptr, self._sptr)
        else:
            super().step()
