#!/usr/bin/env python
"""How much of an update could overlap the backward pass ([floor]): on a zoo model of Dense layers,
when does the backward pass last touch the largest kernel (its gradient computed, its last read
done), and how much of the floor's step comes after that?

    python bench/overlap_bound.py [--model heavy] [--optimizer adam] [--epochs 2]

pyoptim.keras' op runs after every gradient (one op per step), so its whole time adds to the
floor's step.  An update that started on the largest kernel as soon as the backward pass is done
with it could hide at most the rest of the step behind it (the earlier layers' backward pass):
``tail``.  Both steps are read from TensorFlow's profiler (``tf_profile.events``) per train
function call: ``step`` (its wall time), ``op`` (the PyoptimApply op's time) and ``tail``
(from the end of the last gradient MatMul of the largest kernel's layer to the end of the step's
last op).  The largest kernel's layer is found by its forward MatMul, the k-th in order of the
model's Dense layers.
"""
from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
from typing import Any, Dict

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def _scope(name: str) -> str:
    """The layer scope of a forward op name (``.../sequential_1/dense_1_2/Relu:...``)."""
    parts = name.split(":")[0].split("/")
    return parts[-2] if len(parts) >= 2 else ""


def profile(model: Any, x: Any, y: Any, batch_size: int, epochs: int, dense_index: int) -> Dict[str, float]:
    """Medians over the profiled train function calls, in ms."""
    from tf_profile import events, record_fit

    calls, ops = events(record_fit(model, x, y, batch_size, epochs))
    steps, tails, op_ms = [], [], []
    for start, end in calls:
        inside = [o for o in ops if start <= o[0] and o[1] <= end]
        forward = []
        for o in inside:
            if "gradient_tape" not in o[2] and "MatMul" in o[2].rsplit(":", 1)[1] \
                    and _scope(o[2]) not in forward:
                forward.append(_scope(o[2]))
        if len(forward) <= dense_index:
            continue
        layer = forward[dense_index]
        last = max((o[1] for o in inside if "gradient_tape" in o[2] and f"/{layer}/" in o[2]
                    and "MatMul" in o[2]), default=None)
        if last is None:
            continue
        steps.append((end - start) / 1e9)
        tails.append((max(o[1] for o in inside) - last) / 1e9)
        op_ms.append(sum(o[1] - o[0] for o in inside if "PyoptimApply" in o[2]) / 1e9)
    if not steps:
        raise SystemExit("overlap_bound: no train function call with the layer's gradient in the profile")
    return {"calls": len(steps), "step_ms": statistics.median(steps), "op_ms": statistics.median(op_ms),
            "tail_ms": statistics.median(tails), "tail_min_ms": min(tails), "tail_max_ms": max(tails)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="heavy")
    ap.add_argument("--optimizer", default="adam")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    args = ap.parse_args()
    from impl_tf import init_tensorflow, keras_classes, no_update_classes

    err = init_tensorflow(args.threads)
    if err:
        sys.exit(err)
    import keras

    import pyoptim.keras as pk
    from problems import HYPER
    from zoo import model_specs

    spec = {s.name: s for s in model_specs(False)}[args.model]
    x, y = spec.data(spec.rows)
    keras.utils.set_random_seed(0)
    init = spec.build(keras).get_weights()
    for name, cls in (("keras.no_update", no_update_classes(keras.optimizers)[args.optimizer]),
                      ("pyoptim.keras", keras_classes(pk)[args.optimizer])):
        model = spec.build(keras)
        model.set_weights(init)
        dense = [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]
        largest = max(range(len(dense)), key=lambda i: math.prod(dense[i].kernel.shape))
        model.compile(optimizer=cls(**HYPER[args.optimizer]), loss=spec.loss)
        model.fit(x, y, batch_size=spec.batch_size, epochs=1, verbose=0, shuffle=False)  # trace
        r = profile(model, x, y, spec.batch_size, args.epochs, largest)
        print(f"{args.model} {args.optimizer} {name:16s} step {r['step_ms']:6.2f} ms, op {r['op_ms']:5.2f} ms, "
              f"after the last backward MatMul of Dense #{largest + 1} "
              f"{tuple(dense[largest].kernel.shape)}: {r['tail_ms']:5.2f} ms "
              f"({r['tail_min_ms']:.2f} to {r['tail_max_ms']:.2f}) over {r['calls']} calls", flush=True)


if __name__ == "__main__":
    main()
