"""apply_gradients time: pyoptim.keras.Adam vs keras.optimizers.Adam vs
tf.raw_ops.ResourceApplyAdam, for ``--tensors`` float32 variables of each size, inside
tf.function (default) or called eagerly (``--eager``: a custom training loop without
tf.function).

    python bench/keras_apply.py [--sizes 1000000 10000000] [--reps 50] [--json out.json]
    python bench/keras_apply.py --tensors 100 --sizes 1000 [--eager]
    python bench/keras_apply.py --kind RMSprop --options '{"centered": true, "momentum": 0.9}'

With ``--kind SGD``, ``RMSprop`` or ``AdamW`` (and optional constructor ``--options`` as JSON)
it compares pyoptim.keras.<kind> with keras.optimizers.<kind> only; ``--kind AdamW`` needs a
pyoptim.keras that has AdamW (exit code 1 otherwise).

Each method updates its own variables (same initial values, same gradients) with one call per
step (the whole list of variables in one ``apply_gradients``); the calls are interleaved
(round-robin) so that load from other processes hits all methods alike, and the median over
``reps`` is reported, with the ratios.  ResourceApplyAdam is TensorFlow's fused C++ Adam (Eigen,
on TensorFlow's intra-op pool), one op per variable, given the same scalar inputs as Keras
computes them.  In tf.function mode the floor is a tf.function that takes the same tensors
(variables, the Keras optimizer's own variables, gradients) and does nothing with them: the
call cost that no update in such a function can avoid; ``keras/floor`` is the most any update
could gain over Keras'.  ``measure()`` returns the figures for reuse.
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
FLOOR = "floor (same tensors, no update)"


def methods(kind: str = "Adam", eager: bool = False) -> Tuple[str, ...]:
    """Names of the compared methods, pyoptim first."""
    names = (f"pyoptim.keras.{kind}", f"keras.optimizers.{kind}")
    names = names + (RAW,) if kind == "Adam" else names
    return names if eager else names + (FLOOR,)


def _compiled(fn: Callable[[], None], eager: bool) -> Callable[[], object]:
    return fn if eager else tf.function(fn, jit_compile=False)


def _keras_step(cls: type, starts: List[np.ndarray], grads: List[tf.Tensor],
                options: Dict[str, Any], eager: bool = False) -> Callable[[], object]:
    variables = [keras.Variable(s, dtype="float32") for s in starts]
    opt = cls(**{"learning_rate": 1e-3, **options})
    opt.build(variables)

    def apply() -> None:
        opt.apply_gradients(zip(grads, variables))

    return _compiled(apply, eager)  # the closure keeps the variables and the optimizer


def _floor_step(cls: type, starts: List[np.ndarray], grads: List[tf.Tensor],
                options: Dict[str, Any]) -> Callable[[], object]:
    """A tf.function whose one op (IdentityN, no computation) takes what an optimizer's step
    takes: the variables, the optimizer's own variables (slots, iteration count, learning rate)
    and the gradients.  Calling a tf.function costs time per captured tensor (TensorFlow hashes
    their types on every call): no update in such a function can be faster than this."""
    variables = [keras.Variable(s, dtype="float32") for s in starts]
    opt = cls(**{"learning_rate": 1e-3, **options})
    opt.build(variables)
    handles = [v.value.handle for v in list(variables) + list(opt.variables)]

    def touch() -> None:
        tf.raw_ops.IdentityN(input=handles + list(grads))

    step = _compiled(touch, eager=False)
    step._keep = (variables, opt)  # type: ignore[attr-defined]
    return step


def _raw_step(starts: List[np.ndarray], grads: List[tf.Tensor], eager: bool = False) -> Callable[[], object]:
    variables = [tf.Variable(s) for s in starts]
    ms = [tf.Variable(tf.zeros_like(s)) for s in starts]
    vs = [tf.Variable(tf.zeros_like(s)) for s in starts]
    t = tf.Variable(0.0)
    lr, b1, b2, eps = (tf.constant(x, tf.float32) for x in (1e-3, 0.9, 0.999, 1e-7))

    def apply() -> None:
        t.assign_add(1.0)
        b1p, b2p = tf.pow(b1, t), tf.pow(b2, t)
        for var, m, v, grad in zip(variables, ms, vs, grads):
            tf.raw_ops.ResourceApplyAdam(
                var=var.handle, m=m.handle, v=v.handle, beta1_power=b1p, beta2_power=b2p,
                lr=lr, beta1=b1, beta2=b2, epsilon=eps, grad=grad, use_locking=False)

    return _compiled(apply, eager)


#: pyoptim.keras' kernel counter (``kernel_calls()``) that each kind's fast path increments.
KERNEL = {"SGD": "sgd", "RMSprop": "rmsprop", "Adam": "adam", "AdamW": "adam"}


def measure(sizes: Sequence[int] = (1_000_000, 10_000_000), reps: int = 50, warmup: int = 5,
            kind: str = "Adam", options: Optional[Dict[str, Any]] = None, tensors: int = 1,
            eager: bool = False) -> Dict[str, Dict[str, float]]:
    """``{str(size): {method: median seconds per step, ...}}`` for each size, each step
    updating ``tensors`` variables of that size (in tf.function, or eagerly when ``eager``)."""
    options = dict(options or {})
    names = methods(kind, eager)
    rng = np.random.default_rng(0)
    results: Dict[str, Dict[str, float]] = {}
    for n in sizes:
        starts = [rng.standard_normal(n).astype(np.float32) for _ in range(tensors)]
        grads = [tf.constant(rng.standard_normal(n).astype(np.float32)) for _ in range(tensors)]
        steps = {
            names[0]: _keras_step(getattr(pyoptim.keras, kind), starts, grads, options, eager),
            names[1]: _keras_step(getattr(keras.optimizers, kind), starts, grads, options, eager),
        }
        if kind == "Adam" and not options:
            steps[RAW] = _raw_step(starts, grads, eager)
        if FLOOR in names:
            steps[FLOOR] = _floor_step(getattr(keras.optimizers, kind), starts, grads, options)
        for step in steps.values():
            for _ in range(warmup):
                step()
        before = pyoptim.keras.kernel_calls()[KERNEL[kind]]
        times: Dict[str, List[float]] = {k: [] for k in steps}
        for _ in range(reps):
            for name, step in steps.items():
                t0 = time.perf_counter()
                step()
                times[name].append(time.perf_counter() - t0)
        ran = pyoptim.keras.kernel_calls()[KERNEL[kind]] - before
        if ran < reps * tensors:
            raise RuntimeError(f"pyoptim's kernel ran {ran} times for {reps} steps: fast path not used "
                               f"({pyoptim.keras.status()})")
        results[str(n)] = {k: statistics.median(v) for k, v in times.items()}
    return results


def main(argv: List[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--tensors", type=int, default=1, help="variables of each size per step (default 1)")
    parser.add_argument("--eager", action="store_true", help="call apply_gradients eagerly, not in tf.function")
    parser.add_argument("--reps", type=int, default=50)
    parser.add_argument("--kind", choices=["SGD", "RMSprop", "Adam", "AdamW"], default="Adam")
    parser.add_argument("--options", default="{}", help="constructor arguments as JSON")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args(argv)
    options = json.loads(args.options)
    if args.tensors < 1:
        parser.error("--tensors must be >= 1")
    if not hasattr(pyoptim.keras, args.kind):
        print(f"pyoptim.keras has no {args.kind} (hasattr(pyoptim.keras, {args.kind!r}) is False)", file=sys.stderr)
        return 1
    if not pyoptim.keras.fast_path_available():
        print(f"fast path unavailable: {pyoptim.keras.status()['error']}", file=sys.stderr)
        return 1
    results = measure(args.sizes, args.reps, kind=args.kind, options=options, tensors=args.tensors, eager=args.eager)
    names = [m for m in methods(args.kind, args.eager) if m in next(iter(results.values()))]
    print(f"TensorFlow {tf.__version__}, intra-op threads "
          f"{tf.config.threading.get_intra_op_parallelism_threads() or os.cpu_count()}, "
          f"median of {args.reps} steps, ms per apply_gradients ({'eager' if args.eager else 'tf.function'}) of "
          f"{args.tensors} variable(s) per size, options {options}")
    header = f"{'elements':>10}  " + "  ".join(f"{m:>28}" for m in names) + "  keras/pyoptim"
    print(header + ("  raw/pyoptim" if RAW in names else "") + ("  keras/floor" if FLOOR in names else ""))
    for size, r in results.items():
        line = f"{int(size):>10}  " + "  ".join(f"{r[m] * 1e3:>28.3f}" for m in names)
        line += f"  {r[names[1]] / r[names[0]]:>13.1f}"
        if RAW in names:
            line += f"  {r[RAW] / r[names[0]]:>11.2f}"
        if FLOOR in names:
            line += f"  {r[names[1]] / r[FLOOR]:>11.1f}"
        print(line)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"tensorflow": tf.__version__, "kind": args.kind, "options": options,
                       "tensors": args.tensors, "mode": "eager" if args.eager else "tf.function",
                       "reps": args.reps, "seconds": results}, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
