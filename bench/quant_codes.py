#!/usr/bin/env python
"""Which 8-bit code for Adam's m and v?  Measured on real Adam states.

    python bench/quant_codes.py                  # Keras models + NumPy MLP, a minute or two
    python bench/quant_codes.py --quick          # NumPy MLP only, a few seconds (the test's run)
    python bench/quant_codes.py --sources numpy_mlp,trace_mlp --steps 50,300 --out FILE

1. **States.**  Models are trained with Adam (Keras' defaults: lr 1e-3, beta_1 0.9, beta_2 0.999,
   epsilon 1e-7) on their data, and m and v of every tensor with at least ``--min-size`` (4096,
   Adam8bit's ``min_8bit_size``: smaller tensors keep float32 state) elements are copied at each
   step of ``--steps`` (default 50 and 300: early and later training).  Real gradients, never
   synthetic ones:

   * ``trace_mlp``: the trace pipeline's data (``pyoptim.trace.data.synthetic_dataset(0)``, 1000
     rows, min-max scaled as the pipeline does) on a wider MLP, Input(10) -> Dense(512, ReLU) ->
     Dense(512, ReLU) -> Dense(3, softmax), keras.optimizers.Adam, batch 32;
   * ``heavy``: the zoo's ``heavy`` model at its quick size (Embedding(1000, 32): a sparse
     gradient, rows not in the batch get none; Dense(1024), Dense(512)), keras.optimizers.Adam,
     batch 16;
   * ``transformer``: the zoo's 2-block Transformer encoder (MultiHeadAttention, LayerNorm),
     keras.optimizers.Adam, batch 16;
   * ``numpy_mlp``: a NumPy regression MLP, 64 -> 256 (tanh) -> 256 (tanh) -> 1, squared loss
     against a fixed random teacher network, backpropagation by hand, ``pyoptim.Adam``, batch 64
     (no TensorFlow: the only source of ``--quick``, which also takes the dynamic map from a NumPy
     transcription of bitsandbytes' function instead of importing it, with torch).

2. **Round trip.**  Each tensor (flattened, C order) is cut into blocks of ``block_size`` elements
   (64, 128, 256, 512, 2048); each block is scaled by its absolute maximum, quantised and
   dequantised once with each code:

   * ``linear``: absmax int8 / uint8, ``q = rint(m / s * 127)``, ``q = rint(v / s * 255)``;
   * ``power`` (pyoptim's, exactly as ``csrc/pyoptim/adam8bit.hpp`` computes it in float32):
     ``q_m = sign(m) rint(sqrt(|m| * (1 / s)) * 127)``, ``m = ((q |q|) * (1 / 127^2)) * s``;
     ``q_v = rint(sqrt(sqrt(v) * sqrt(1 / s)) * 255)``, ``v = (((q q) (q q)) * (1 / 255^4)) * s``,
     i.e. sqrt(|m| / s) and (v / s)^(1/4) on a uniform grid (rint: half to even).  The
     transcription is checked against the kernel itself (``kernel_check``: pyoptim's codes and
     scales for the same values, which must all be equal);
   * ``dynamic``: bitsandbytes' dynamic map (``bitsandbytes.functional.create_dynamic_map``,
     signed for m, unsigned for v; the nearest of the 256 codes to ``x / s``), what
     bitsandbytes' and torchao's 8-bit Adams store.

3. **Errors**, per element, pooled over tensors and snapshots: the relative error of m (where
   m != 0), of sqrt(v) (where v > 0) and of Adam's update direction u = m / (sqrt(v) + eps)
   (eps 1e-7, where u != 0; the step is u times lr sqrt(1 - beta_2^t) / (1 - beta_1^t)) -- median,
   90th and 99th percentile; the relative L2 error of the update, ||u' - u|| / ||u||; and the
   fraction of v > 0 (and m != 0) that quantise to 0 (where v' = 0 the update is m' / eps).

Prints a table and writes JSON (default ``bench/results/quant_codes.json``).
"""
from __future__ import annotations

import os

if __name__ == "__main__":  # before NumPy loads: the small models train fastest on one BLAS / OpenMP
    for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):  # thread, and a loaded
        os.environ.setdefault(_var, "1")  # machine does not stall them (nothing here is timed)

import argparse
import json
import math
import platform
import sys
import time
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
BLOCK_SIZES = (64, 128, 256, 512, 2048)
CODES = ("linear", "power", "dynamic")
SOURCES = ("trace_mlp", "heavy", "transformer", "numpy_mlp")
EPS = 1e-7
F32 = np.float32

# (name, shape, m, v) of one tensor at one step
Snapshot = Tuple[str, Tuple[int, ...], np.ndarray, np.ndarray]


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# The codes.  Every function takes a float32 array x (one tensor, flattened) and returns its
# dequantised value after one round trip through blocks of `block` elements.
# ---------------------------------------------------------------------------------------------

def _blocks(x: np.ndarray, block: int) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """x padded with zeros to whole blocks (nb x block), the block absmax (scale, float32) and
    inv = 1 / scale (0 where the scale is 0), as the kernel's block_scale."""
    n = x.size
    nb = -(-n // block)
    pad = np.zeros(nb * block, F32)
    pad[:n] = x
    xb = pad.reshape(nb, block)
    scale = np.abs(xb).max(axis=1)
    with np.errstate(divide="ignore", over="ignore"):
        inv = np.where(scale > 0, F32(1) / np.where(scale > 0, scale, F32(1)), F32(0)).astype(F32)
    return xb, scale, inv


# A block whose largest value is below 1 / FLT_MAX (about 2.9e-39, subnormal) has inv = 1 / scale
# = inf, in the kernel as here: its codes come from casting inf and NaN to an integer (0 on x86,
# as NumPy's cast here).  Such values are far below anything Adam's update sees (eps = 1e-7);
# the warnings NumPy gives for them are silenced (np.errstate in the encoders).


def power_encode_signed(x: np.ndarray, block: int) -> Tuple[np.ndarray, np.ndarray]:
    """adam8bit.hpp's m code: ``q = copysign(rint(sqrt(|m| * inv_m) * 127), m)``, inv_m = 1 / scale
    (0 for a zero scale), float32; int8 codes and the float32 block scales."""
    xb, scale, inv = _blocks(x, block)
    with np.errstate(over="ignore", invalid="ignore"):
        q = np.rint(np.sqrt(np.abs(xb) * inv[:, None]) * F32(127))
        q = np.copysign(q, xb)
        return q.astype(np.int8).ravel()[: x.size], scale


def power_encode_unsigned(x: np.ndarray, block: int) -> Tuple[np.ndarray, np.ndarray]:
    """adam8bit.hpp's v code: ``q = rint(sqrt(sqrt(v) * inv_root) * 255)``, inv_root = sqrt(1 /
    scale) (0 for a zero scale), float32: sqrt(v) is the update's own denominator, so the code
    costs one more square root; uint8 codes and the float32 block scales."""
    xb, scale, inv = _blocks(x, block)
    with np.errstate(over="ignore", invalid="ignore"):
        inv_root = np.sqrt(inv)
        q = np.rint(np.sqrt(np.sqrt(xb) * inv_root[:, None]) * F32(255))
        return q.astype(np.uint8).ravel()[: x.size], scale


def power_decode_signed(q: np.ndarray, scale: np.ndarray, block: int) -> np.ndarray:
    """adam8bit.hpp's decode_signed(q) * scale, in float32."""
    qf = q.astype(F32)
    val = (qf * np.abs(qf)) * F32(1.0 / 16129.0)
    return val * np.repeat(scale, block)[: q.size]


def power_decode_unsigned(q: np.ndarray, scale: np.ndarray, block: int) -> np.ndarray:
    """adam8bit.hpp's decode_unsigned(q) * scale, in float32."""
    qf = q.astype(F32)
    sq = qf * qf
    val = (sq * sq) * F32(1.0 / 4228250625.0)
    return val * np.repeat(scale, block)[: q.size]


def roundtrip_power(x: np.ndarray, block: int, signed: bool) -> np.ndarray:
    if signed:
        q, s = power_encode_signed(x, block)
        return power_decode_signed(q, s, block)
    q, s = power_encode_unsigned(x, block)
    return power_decode_unsigned(q, s, block)


def roundtrip_linear(x: np.ndarray, block: int, signed: bool) -> np.ndarray:
    """Absmax linear: int8 q = rint(x / s * 127) (signed) or uint8 rint(x / s * 255) (x / s by
    division: well defined for subnormal scales too)."""
    xb, scale, _ = _blocks(x, block)
    levels = F32(127) if signed else F32(255)
    safe = np.where(scale > 0, scale, F32(1))[:, None]
    q = np.rint(np.minimum(np.abs(xb) / safe, F32(1)) * levels)
    q = np.where(xb < 0, -q, q) if signed else q
    return ((q / levels) * scale[:, None]).astype(F32).ravel()[: x.size]


def _dynamic_map_numpy(signed: bool, max_exponent_bits: int = 7, total_bits: int = 8) -> np.ndarray:
    """A NumPy transcription of bitsandbytes.functional.create_dynamic_map (used when
    bitsandbytes is not importable)."""
    data: List[float] = []
    non_sign_bits = total_bits - 1
    additional_items = 2 ** (non_sign_bits - max_exponent_bits) - 1
    i = 0
    for i in range(max_exponent_bits):
        items = int(2 ** (i + non_sign_bits - max_exponent_bits) + 1 if signed
                    else 2 ** (i + non_sign_bits - max_exponent_bits + 1) + 1)
        bounds = np.linspace(0.1, 1, items, dtype=F32)
        means = (bounds[:-1] + bounds[1:]) / F32(2.0)
        data += ((10 ** (-(max_exponent_bits - 1) + i)) * means).tolist()
        if signed:
            data += (-(10 ** (-(max_exponent_bits - 1) + i)) * means).tolist()
    if additional_items > 0:
        bounds = np.linspace(0.1, 1, additional_items + 1, dtype=F32)
        means = (bounds[:-1] + bounds[1:]) / F32(2.0)
        data += ((10 ** (-(max_exponent_bits - 1) + i)) * means).tolist()
        if signed:
            data += (-(10 ** (-(max_exponent_bits - 1) + i)) * means).tolist()
    data += [0.0, 1.0]
    data += [0.0] * (256 - len(data))
    return np.sort(np.array(data, dtype=F32))


def dynamic_maps(use_bitsandbytes: bool = True) -> Tuple[Dict[bool, np.ndarray], str]:
    """bitsandbytes' signed and unsigned dynamic maps (256 float32 values, sorted), and where
    they came from: bitsandbytes' own function, or (not importable, or ``use_bitsandbytes``
    False) the NumPy transcription (which differs from it by at most 6e-8: torch's and NumPy's
    linspace round differently)."""
    if not use_bitsandbytes:
        return {s: _dynamic_map_numpy(s) for s in (True, False)}, "NumPy transcription of create_dynamic_map"
    try:
        import bitsandbytes
        from bitsandbytes.functional import create_dynamic_map

        maps = {s: create_dynamic_map(signed=s).numpy().astype(F32) for s in (True, False)}
        return maps, f"bitsandbytes {bitsandbytes.__version__} create_dynamic_map"
    except Exception as e:  # noqa: BLE001 - the transcription stands in
        return ({s: _dynamic_map_numpy(s) for s in (True, False)},
                f"NumPy transcription of create_dynamic_map (bitsandbytes not importable: {type(e).__name__})")


def roundtrip_dynamic(x: np.ndarray, block: int, signed: bool, code: np.ndarray) -> np.ndarray:
    """The nearest value of the sorted 256-value map ``code`` to x / s (ties: the lower)."""
    xb, scale, _ = _blocks(x, block)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.where(scale[:, None] > 0, xb / np.where(scale > 0, scale, F32(1))[:, None], F32(0)).astype(F32)
    hi = np.clip(np.searchsorted(code, r), 1, code.size - 1)
    lo = hi - 1
    pick = np.where(np.abs(code[hi] - r) < np.abs(r - code[lo]), hi, lo)
    return (code[pick] * scale[:, None]).astype(F32).ravel()[: x.size]


def roundtrip(code: str, x: np.ndarray, block: int, signed: bool, maps: Dict[bool, np.ndarray]) -> np.ndarray:
    if code == "linear":
        return roundtrip_linear(x, block, signed)
    if code == "power":
        return roundtrip_power(x, block, signed)
    return roundtrip_dynamic(x, block, signed, maps[signed])


# ---------------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------------

def _rel(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """|b - a| / |a| where a != 0 (float64)."""
    a = a.astype(np.float64)
    b = b.astype(np.float64)
    nz = a != 0
    return np.abs(b[nz] - a[nz]) / np.abs(a[nz])


def _quantiles(e: np.ndarray) -> Dict[str, Optional[float]]:
    if e.size == 0:
        return {"median": None, "p90": None, "p99": None}
    q = np.quantile(e, [0.5, 0.9, 0.99])
    return {"median": float(q[0]), "p90": float(q[1]), "p99": float(q[2])}


def errors(snaps: Sequence[Snapshot], code: str, block: int, maps: Dict[bool, np.ndarray]) -> Dict[str, Any]:
    """The round trip's errors pooled over ``snaps``."""
    em, esv, eu = [], [], []
    du2 = u2 = 0.0
    v_pos = v_zero = m_nz = m_zero = n = 0
    for _, _, m, v in snaps:
        m, v = m.ravel().astype(F32), v.ravel().astype(F32)
        mq, vq = roundtrip(code, m, block, True, maps), roundtrip(code, v, block, False, maps)
        em.append(_rel(m, mq))
        esv.append(_rel(np.sqrt(v), np.sqrt(vq)))
        u = m.astype(np.float64) / (np.sqrt(v.astype(np.float64)) + EPS)
        uq = mq.astype(np.float64) / (np.sqrt(vq.astype(np.float64)) + EPS)
        eu.append(_rel(u, uq))
        du2 += float(np.sum((uq - u) ** 2))
        u2 += float(np.sum(u ** 2))
        v_pos += int(np.count_nonzero(v > 0))
        v_zero += int(np.count_nonzero((v > 0) & (vq == 0)))
        m_nz += int(np.count_nonzero(m != 0))
        m_zero += int(np.count_nonzero((m != 0) & (mq == 0)))
        n += m.size
    cat = lambda xs: np.concatenate(xs) if xs else np.zeros(0)  # noqa: E731
    return {"code": code, "block_size": block, "elements": n,
            "m_rel_error": _quantiles(cat(em)), "sqrt_v_rel_error": _quantiles(cat(esv)),
            "update_rel_error": _quantiles(cat(eu)),
            "update_l2_rel_error": math.sqrt(du2 / u2) if u2 > 0 else None,
            "v_zero_fraction": v_zero / v_pos if v_pos else None,
            "m_zero_fraction": m_zero / m_nz if m_nz else None}


# ---------------------------------------------------------------------------------------------
# The kernel check: pyoptim's own encoder against the NumPy transcription above
# ---------------------------------------------------------------------------------------------

def kernel_check(snaps: Sequence[Snapshot], blocks: Sequence[int]) -> Dict[str, Any]:
    """Run pyoptim's 8-bit kernel once with beta_1 = beta_2 = 0 and learning rate 0 from zero
    state on gradient g = m (a snapshot's m): its new m is g and its new v is g * g (float32),
    which it encodes.  Compare its codes and scales with power_encode_signed(m) and
    power_encode_unsigned(m * m), per block size, over every snapshot."""
    try:
        from pyoptim import _core

        fn = _core._adam8bit_multi
    except (ImportError, AttributeError) as e:
        return {"available": False, "reason": f"pyoptim has no 8-bit kernel ({e})"}
    out: Dict[str, Any] = {"available": True, "blocks": {}}
    for block in blocks:
        same = total = 0
        scales_equal = True
        for _, _, m, _ in snaps:
            g = np.ascontiguousarray(m.ravel(), dtype=F32)
            nb = -(-g.size // block)
            p = np.zeros_like(g)
            qm, qv = np.zeros(g.size, np.int8), np.zeros(g.size, np.uint8)
            sm, sv = np.zeros(nb, F32), np.zeros(nb, F32)
            fn([p], [g], [qm], [qv], None, [sm], [sv], None, 1, 0.0, 0.0, 0.0, EPS, None, block, None)
            wm, wsm = power_encode_signed(g, block)
            wv, wsv = power_encode_unsigned(g * g, block)
            same += int(np.count_nonzero(qm == wm)) + int(np.count_nonzero(qv == wv))
            total += 2 * g.size
            scales_equal &= bool(np.array_equal(sm, wsm) and np.array_equal(sv, wsv))
        out["blocks"][str(block)] = {"codes_equal_fraction": same / total if total else None,
                                     "scales_equal": scales_equal}
    out["all_equal"] = all(b["codes_equal_fraction"] == 1.0 and b["scales_equal"] for b in out["blocks"].values())
    return out


# ---------------------------------------------------------------------------------------------
# Sources of real Adam states
# ---------------------------------------------------------------------------------------------

class _Source:
    def __init__(self, name: str, description: str, collect: Callable[[Sequence[int], int], List[Snapshot]]):
        self.name, self.description, self.collect = name, description, collect


def _numpy_mlp(steps: Sequence[int], min_size: int, width: int = 256, batch: int = 64,
               rows: int = 4096, features: int = 64) -> List[Snapshot]:
    """A regression MLP trained with pyoptim.Adam; hand-written backpropagation, float32."""
    import pyoptim

    rng = np.random.default_rng(0)
    x = rng.standard_normal((rows, features)).astype(F32)
    t1 = rng.standard_normal((features, 32)).astype(F32) / np.sqrt(features)
    t2 = rng.standard_normal((32, 1)).astype(F32)
    y = (np.sin(2 * x @ t1) @ t2 + 0.1 * rng.standard_normal((rows, 1))).astype(F32)

    def glorot(a: int, b: int) -> np.ndarray:
        lim = np.sqrt(6.0 / (a + b))
        return rng.uniform(-lim, lim, (a, b)).astype(F32)

    params = [glorot(features, width), np.zeros(width, F32), glorot(width, width), np.zeros(width, F32),
              glorot(width, 1), np.zeros(1, F32)]
    names = ["dense_1/kernel", "dense_1/bias", "dense_2/kernel", "dense_2/bias", "dense_3/kernel", "dense_3/bias"]
    opt = pyoptim.Adam(learning_rate=1e-3, beta_1=0.9, beta_2=0.999, epsilon=EPS)
    out: List[Snapshot] = []
    want = set(steps)
    order = rng.permutation(rows)
    pos = 0
    for step in range(1, max(steps) + 1):
        if pos + batch > rows:
            order, pos = rng.permutation(rows), 0
        idx = order[pos:pos + batch]
        pos += batch
        xb, yb = x[idx], y[idx]
        w1, b1, w2, b2, w3, b3 = params
        h1 = np.tanh(xb @ w1 + b1)
        h2 = np.tanh(h1 @ w2 + b2)
        pred = h2 @ w3 + b3
        d = (F32(2.0 / batch) * (pred - yb)).astype(F32)  # d loss / d pred, loss = mean squared error
        gw3, gb3 = h2.T @ d, d.sum(0)
        d2 = (d @ w3.T) * (1 - h2 * h2)
        gw2, gb2 = h1.T @ d2, d2.sum(0)
        d1 = (d2 @ w2.T) * (1 - h1 * h1)
        gw1, gb1 = xb.T @ d1, d1.sum(0)
        opt.apply([gw1, gb1, gw2, gb2, gw3, gb3], params)
        if step in want:
            for name, p, m, v in zip(names, params, opt.slots["momentums"], opt.slots["velocities"]):
                if p.size >= min_size:
                    out.append((f"step{step}/{name}", p.shape, np.array(m, F32), np.array(v, F32)))
    return out


def _keras_states(build: Callable[[Any], Any], data: Callable[[int], Tuple[np.ndarray, np.ndarray]], rows: int,
                  batch: int, steps: Sequence[int], min_size: int) -> List[Snapshot]:
    """Train ``build(keras)`` with keras.optimizers.Adam (Keras' defaults) by model.fit on
    ``data(rows)`` and copy m and v of every variable of >= min_size elements at each step of
    ``steps``."""
    import keras

    keras.utils.set_random_seed(0)
    model = build(keras)
    opt = keras.optimizers.Adam(learning_rate=1e-3, beta_1=0.9, beta_2=0.999, epsilon=EPS)
    model.compile(optimizer=opt, loss="sparse_categorical_crossentropy", jit_compile=False)
    x, y = data(rows)
    want, last = set(steps), max(steps)
    out: List[Snapshot] = []

    class Snap(keras.callbacks.Callback):
        def on_train_batch_end(self, batch_index: int, logs: Any = None) -> None:
            step = int(opt.iterations.numpy())
            if step in want:
                for var, m, v in zip(model.trainable_variables, opt._momentums, opt._velocities):
                    if int(np.prod(var.shape)) >= min_size:
                        out.append((f"step{step}/{var.path}", tuple(var.shape), np.array(m.numpy(), F32),
                                    np.array(v.numpy(), F32)))
            if step >= last:
                self.model.stop_training = True

    epochs = -(-last // -(-rows // batch))
    model.fit(x, y, batch_size=batch, epochs=epochs, shuffle=True, verbose=0, callbacks=[Snap()])
    return out


def _trace_mlp(steps: Sequence[int], min_size: int) -> List[Snapshot]:
    from pyoptim.trace.data import synthetic_dataset

    ds = synthetic_dataset(0)
    lo, hi = ds.x_train.min(axis=0), ds.x_train.max(axis=0)
    x = ((ds.x_train - lo) / np.where(hi > lo, hi - lo, 1.0)).astype(F32)  # the pipeline's min-max scaling
    y = ds.y_train.astype(np.int32)

    def build(keras: Any) -> Any:
        return keras.Sequential([keras.Input((x.shape[1],)), keras.layers.Dense(512, activation="relu"),
                                 keras.layers.Dense(512, activation="relu"),
                                 keras.layers.Dense(ds.n_classes, activation="softmax")])

    return _keras_states(build, lambda rows: (x[:rows], y[:rows]), len(x), 32, steps, min_size)


def _zoo(name: str, rows: int, batch: int) -> Callable[[Sequence[int], int], List[Snapshot]]:
    def collect(steps: Sequence[int], min_size: int) -> List[Snapshot]:
        if HERE not in sys.path:
            sys.path.insert(0, HERE)
        import zoo

        spec = next(s for s in zoo.model_specs(quick=True) if s.name == name)
        return _keras_states(spec.build, spec.data, rows, batch, steps, min_size)

    return collect


def sources() -> Dict[str, _Source]:
    return {
        "trace_mlp": _Source("trace_mlp", "trace pipeline data (synthetic_dataset(0), min-max scaled), Input(10) -> "
                                          "Dense(512, ReLU) -> Dense(512, ReLU) -> Dense(3, softmax), "
                                          "keras.optimizers.Adam, batch 32", _trace_mlp),
        "heavy": _Source("heavy", "zoo heavy (quick): Embedding(1000, 32) -> Flatten -> Dense(1024, ReLU) -> "
                                  "Dense(512, ReLU) -> Dense(10, softmax), 1024 rows, keras.optimizers.Adam, batch 16",
                         _zoo("heavy", 1024, 16)),
        "transformer": _Source("transformer", "zoo transformer (quick): 2-block encoder, d_model 128, 256 rows, "
                                              "keras.optimizers.Adam, batch 16", _zoo("transformer", 256, 16)),
        "numpy_mlp": _Source("numpy_mlp", "NumPy regression MLP 64 -> 256 (tanh) -> 256 (tanh) -> 1 against a random "
                                          "teacher, 4096 rows, pyoptim.Adam, batch 64", _numpy_mlp),
    }


# ---------------------------------------------------------------------------------------------

def parse_args(argv: Optional[List[str]]) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="bench/quant_codes.py", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true",
                    help="numpy_mlp only, steps 20,100, the dynamic map from the NumPy transcription (a few seconds)")
    ap.add_argument("--sources", default=None, help=f"comma-separated subset of {','.join(SOURCES)} (default all)")
    ap.add_argument("--steps", default=None, help="training steps at which to copy m and v (default 50,300)")
    ap.add_argument("--block-sizes", default=",".join(map(str, BLOCK_SIZES)), help="comma-separated block sizes")
    ap.add_argument("--min-size", type=int, default=4096,
                    help="tensors with fewer elements are left out (Adam8bit's min_8bit_size; default 4096)")
    ap.add_argument("--out", default=None, help="JSON file (default bench/results/quant_codes.json)")
    return ap.parse_args(argv)


def _fmt(x: Optional[float], pct: bool = True) -> str:
    if x is None:
        return "-"
    if pct:
        return f"{100 * x:.3g}%" if x < 10 else f"{x:.3g}x"
    return f"{x:.3g}"


def table(results: List[Dict[str, Any]], default_block: int) -> str:
    head = (f"{'source':<12} {'block':>5} {'code':<8} {'m med':>8} {'m p90':>8} {'sqrtv med':>9} {'sqrtv p90':>9} "
            f"{'upd med':>8} {'upd p90':>8} {'upd L2':>8} {'v->0':>8} {'m->0':>8}")
    lines = ["== relative error after one 8-bit round trip (pooled over tensors and steps; med/p90: per element; "
             "upd L2: ||u' - u|| / ||u||; v->0, m->0: fraction of nonzero values that quantise to 0) ==", head]
    for r in results:
        if r["source"] != "all" and r["block_size"] != default_block:
            continue
        lines.append(f"{r['source']:<12} {r['block_size']:>5} {r['code']:<8} {_fmt(r['m_rel_error']['median']):>8} "
                     f"{_fmt(r['m_rel_error']['p90']):>8} {_fmt(r['sqrt_v_rel_error']['median']):>9} "
                     f"{_fmt(r['sqrt_v_rel_error']['p90']):>9} {_fmt(r['update_rel_error']['median']):>8} "
                     f"{_fmt(r['update_rel_error']['p90']):>8} {_fmt(r['update_l2_rel_error']):>8} "
                     f"{_fmt(r['v_zero_fraction']):>8} {_fmt(r['m_zero_fraction']):>8}")
    return "\n".join(lines)


def main(argv: Optional[List[str]] = None) -> int:
    t0 = time.time()
    args = parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    srcs = sources()
    names = [s.strip() for s in (args.sources or ("numpy_mlp" if args.quick else ",".join(SOURCES))).split(",")
             if s.strip()]
    bad = [n for n in names if n not in srcs]
    if bad or not names:
        print(f"error: --sources: unknown {', '.join(bad) or '(none given)'} (choose from {', '.join(SOURCES)})",
              file=sys.stderr)
        return 2
    try:
        steps = sorted({int(s) for s in (args.steps or ("20,100" if args.quick else "50,300")).split(",") if s.strip()})
        blocks = [int(b) for b in args.block_sizes.split(",") if b.strip()]
    except ValueError:
        print("error: --steps and --block-sizes take comma-separated integers", file=sys.stderr)
        return 2
    if not steps or min(steps) < 1 or not blocks or min(blocks) < 1:
        print("error: --steps and --block-sizes must be >= 1", file=sys.stderr)
        return 2
    out_path = args.out or os.path.join(HERE, "results", "quant_codes.json")
    maps, map_source = dynamic_maps(use_bitsandbytes=not args.quick)  # --quick: no torch import
    port = {s: _dynamic_map_numpy(s) for s in (True, False)}
    map_check = {("signed" if s else "unsigned"): float(np.max(np.abs(port[s] - maps[s]))) for s in (True, False)}

    collected: Dict[str, List[Snapshot]] = {}
    info: Dict[str, Any] = {}
    for name in names:
        t = time.perf_counter()
        snaps = srcs[name].collect(steps, args.min_size)
        collected[name] = snaps
        info[name] = {"description": srcs[name].description, "steps": steps,
                      "tensors": [{"name": n, "shape": list(shape), "size": int(np.prod(shape))}
                                  for n, shape, _, _ in snaps],
                      "elements": int(sum(m.size for _, _, m, _ in snaps)),
                      "seconds": round(time.perf_counter() - t, 2)}
        log(f"  {name}: {len(snaps)} tensor snapshots, {info[name]['elements']:,} elements "
            f"({info[name]['seconds']:.1f} s)")
        if not snaps:
            print(f"error: {name}: no tensor of >= {args.min_size} elements", file=sys.stderr)
            return 1

    pooled = [s for name in names for s in collected[name]]
    results: List[Dict[str, Any]] = []
    for block in blocks:
        for code in CODES:
            results.append({"source": "all", **errors(pooled, code, block, maps)})
    for name in names:
        for block in blocks:
            for code in CODES:
                if len(names) == 1:  # the pooled rows are this source's
                    pooled_row = next(r for r in results if r["source"] == "all" and r["block_size"] == block
                                      and r["code"] == code)
                    results.append({**pooled_row, "source": name})
                else:
                    results.append({"source": name, **errors(collected[name], code, block, maps)})
    check = kernel_check(pooled, blocks)

    default_block = 256 if 256 in blocks else blocks[0]
    at = {r["code"]: r for r in results if r["source"] == "all" and r["block_size"] == default_block}
    best = min(at.values(), key=lambda r: (r["update_l2_rel_error"] or math.inf))
    summary = {
        "block_size": default_block,
        "lowest_update_l2_error": best["code"],
        "update_l2_rel_error": {c: r["update_l2_rel_error"] for c, r in at.items()},
        "update_median_rel_error": {c: r["update_rel_error"]["median"] for c, r in at.items()},
        "v_zero_fraction": {c: r["v_zero_fraction"] for c, r in at.items()},
    }
    try:
        import pyoptim

        pyoptim_version = pyoptim.__version__
    except Exception:  # noqa: BLE001
        pyoptim_version = None
    doc = {
        "schema": "pyoptim-quant-codes/1",
        "settings": {"sources": names, "steps": steps, "block_sizes": blocks, "min_size": args.min_size,
                     "epsilon": EPS, "adam": {"learning_rate": 1e-3, "beta_1": 0.9, "beta_2": 0.999},
                     "codes": {"linear": "absmax, int8 rint(m/s*127), uint8 rint(v/s*255)",
                               "power": "adam8bit.hpp: m = sign(q)(q/127)^2 s, v = (q/255)^4 s",
                               "dynamic": "bitsandbytes create_dynamic_map(signed=True/False), nearest code"},
                     "dynamic_map_source": map_source, "dynamic_map_transcription_max_diff": map_check,
                     "python": platform.python_version(), "numpy": np.__version__, "pyoptim": pyoptim_version},
        "sources": info,
        "kernel_check": check,
        "results": results,
        "summary": summary,
        "duration_s": round(time.time() - t0, 2),
    }
    text = table(results, default_block)
    kc = ("kernel check: pyoptim's codes and scales equal the NumPy power code at every block size"
          if check.get("all_equal") else f"kernel check: {json.dumps(check)}")
    text += (f"\n(at block {default_block} the lowest update L2 error: {best['code']}; {kc}; "
             f"dynamic map: {map_source})")
    if check.get("available") and not check.get("all_equal"):
        text += "\nWARNING: the NumPy power code differs from pyoptim's kernel: update power_encode_* to adam8bit.hpp"
    print(text, flush=True)
    os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
    with open(out_path, "w") as f:
        json.dump(doc, f, indent=1, allow_nan=False)
    log(f"wrote {out_path} ({doc['duration_s']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
