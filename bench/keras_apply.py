"""apply_gradients time inside tf.function: pyoptim.keras.Adam vs keras.optimizers.Adam vs
tf.raw_ops.ResourceApplyAdam, for one float32 variable per size.

    python bench/keras_apply.py [--sizes 1000000 10000000] [--reps 50] [--json out.json]
    python bench/keras_apply.py --kind RMSprop --options '{"centered": true, "momentum": 0.9}'

With ``--kind SGD`` or ``RMSprop`` (and optional constructor ``--options`` as JSON) it compares
pyoptim.keras.<kind> with keras.optimizers.<kind> only.

Each method updates its own variable (same initial values, same gradient) with one
``tf.function`` call per step; the calls are interleaved (round-robin) so that load from other
processes hits all methods alike, and the median over ``reps`` is reported, with the ratios.
ResourceApplyAdam is TensorFlow's fused C++ Adam (Eigen, on TensorFlow's intra-op pool), given
the same scalar inputs as Keras computes them.  ``measure()`` returns the figures for reuse.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import keras  # noqa: E402

import pyoptim.keras  # noqa: E402

RAW = "tf.raw_ops.ResourceApplyAdam"


def methods(kind: str = "Adam") -> Tuple[str, ...]:
    """Names of the compared methods, pyoptim first."""
    names = (f"pyoptim.keras.{kind}", f"keras.optimizers.{kind}")
    return names + (RAW,) if kind == "Adam" else names


def _keras_step(cls: type, start: np.ndarray, grad: tf.Tensor,
                options: Dict[str, Any]) -> Callable[[], object]:
    var = keras.Variable(start, dtype="float32")
    opt = cls(**{"learning_rate": 1e-3, **options})
    opt.build([var])

    @tf.function(jit_compile=False)
    def step():
        opt.apply_gradients([(grad, var)])

    step.pyoptim_optimizer = opt
    return step


def _raw_step(start: np.ndarray, grad: tf.Tensor) -> Callable[[], object]:
    var = tf.Variable(start)
    m = tf.Variable(tf.zeros_like(start))
    v = tf.Variable(tf.zeros_like(start))
    t = tf.Variable(0.0)
    lr, b1, b2, eps = (tf.constant(x, tf.float32) for x in (1e-3, 0.9, 0.999, 1e-7))

    @tf.function(jit_compile=False)
    def step():
        t.assign_add(1.0)
        tf.raw_ops.ResourceApplyAdam(
            var=var.handle, m=m.handle, v=v.handle,
            beta1_power=tf.pow(b1, t), beta2_power=tf.pow(b2, t),
            lr=lr, beta1=b1, beta2=b2, epsilon=eps, grad=grad, use_locking=False)

    return step


def measure(sizes: Sequence[int] = (1_000_000, 10_000_000), reps: int = 50, warmup: int = 5,
            kind: str = "Adam", options: Optional[Dict[str, Any]] = None
            ) -> Dict[str, Dict[str, float]]:
    """``{str(size): {method: median seconds per step, ...}}`` for each size."""
    options = dict(options or {})
    names = methods(kind)
    rng = np.random.default_rng(0)
    results: Dict[str, Dict[str, float]] = {}
    for n in sizes:
        start = rng.standard_normal(n).astype(np.float32)
        grad = tf.constant(rng.standard_normal(n).astype(np.float32))
        steps = {
            names[0]: _keras_step(getattr(pyoptim.keras, kind), start, grad, options),
            names[1]: _keras_step(getattr(keras.optimizers, kind), start, grad, options),
        }
        if kind == "Adam" and not options:
            steps[RAW] = _raw_step(start, grad)
        for step in steps.values():
            for _ in range(warmup):
                step()
        before = pyoptim.keras.kernel_calls()[kind.lower()]
        times: Dict[str, List[float]] = {k: [] for k in steps}
        for _ in range(reps):
            for name, step in steps.items():
                t0 = time.perf_counter()
                step()
                times[name].append(time.perf_counter() - t0)
        ran = pyoptim.keras.kernel_calls()[kind.lower()] - before
        if ran < reps:
            raise RuntimeError(f"pyoptim's kernel ran {ran} times for {reps} steps: fast path not used "
                               f"({pyoptim.keras.status()})")
        results[str(n)] = {k: statistics.median(v) for k, v in times.items()}
    return results


def main(argv: List[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--reps", type=int, default=50)
    parser.add_argument("--kind", choices=["SGD", "RMSprop", "Adam"], default="Adam")
    parser.add_argument("--options", default="{}", help="constructor arguments as JSON")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args(argv)
    options = json.loads(args.options)
    if not pyoptim.keras.fast_path_available():
        print(f"fast path unavailable: {pyoptim.keras.status()['error']}", file=sys.stderr)
        return 1
    results = measure(args.sizes, args.reps, kind=args.kind, options=options)
    names = [m for m in methods(args.kind) if m in next(iter(results.values()))]
    print(f"TensorFlow {tf.__version__}, intra-op threads "
          f"{tf.config.threading.get_intra_op_parallelism_threads() or os.cpu_count()}, "
          f"median of {args.reps} steps, ms per apply_gradients, options {options}")
    header = f"{'elements':>10}  " + "  ".join(f"{m:>28}" for m in names) + "  keras/pyoptim"
    print(header + ("  raw/pyoptim" if RAW in names else ""))
    for size, r in results.items():
        line = f"{int(size):>10}  " + "  ".join(f"{r[m] * 1e3:>28.3f}" for m in names)
        line += f"  {r[names[1]] / r[names[0]]:>13.1f}"
        if RAW in names:
            line += f"  {r[RAW] / r[names[0]]:>11.2f}"
        print(line)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"tensorflow": tf.__version__, "kind": args.kind, "options": options,
                       "reps": args.reps, "seconds": results}, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
