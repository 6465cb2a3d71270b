#!/usr/bin/env python
"""Where a ``model.fit`` step's time goes between the floor (a step that computes every gradient
and updates nothing, ``keras.no_update``) and pyoptim.keras' step, per zoo model and optimizer
([floor]).

    python bench/step_profile.py [--models heavy,many_small,transformer,pipeline]
                                 [--optimizers sgd,rmsprop,adam,adamw] [--rounds 9]
                                 [--profile-epochs 2] [--quick] [--out bench/results/step_profile.json]

Each cell trains one model per variant from the same initial weights (bench/e2e.py's
``_time_cell``: an untimed epoch, then ``rounds`` interleaved epochs timed from on_epoch_begin to
on_epoch_end), then ``--profile-epochs`` more epochs of each under TensorFlow's profiler
(bench/tf_profile.py).  Per step it reports:

* ``step``: the timed step (median), pyoptim.keras' and the floor's, and their ratio;
* ``function``: the compiled train function's wall time under the profiler, each;
* ``kernel op``: the time of pyoptim's ``PyoptimApply*`` op(s) in pyoptim's step;
* ``other ops``: the ops on TensorFlow's compute threads that pyoptim's step runs beyond the
  floor's, by type (pyoptim's minus the floor's op time, where positive: the coefficients'
  scalar ops, reads of the slot variables, ...);
* ``unaccounted``: the train functions' difference minus the kernel op and the other ops
  (the executor's scheduling, the function call's inputs, waiting on the barrier).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any, Dict, List

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

PYOPTIM = "pyoptim.keras"


def _breakdown(mine: Dict[str, Any], floor: Dict[str, Any]) -> Dict[str, Any]:
    """pyoptim's profile against the floor's: kernel op, other extra ops by type, the rest."""
    kernel = {op: ms for op, ms in mine["op_ms"].items() if op.startswith("PyoptimApply")}
    extra = {}
    for op, ms in mine["op_ms"].items():
        if op in kernel:
            continue
        d = ms - floor["op_ms"].get(op, 0.0)
        if d > 0:
            extra[op] = d
    extra = dict(sorted(extra.items(), key=lambda kv: -kv[1]))
    gap = mine["train_function_ms"] - floor["train_function_ms"]
    return {"function_gap_ms": gap, "kernel_ms": sum(kernel.values()), "kernel_by_op": kernel,
            "other_ops_ms": sum(extra.values()), "other_ops_by_type": extra,
            "unaccounted_ms": gap - sum(kernel.values()) - sum(extra.values())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default="heavy,many_small,transformer,pipeline")
    ap.add_argument("--optimizers", default="sgd,rmsprop,adam,adamw")
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--profile-epochs", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="the zoo's shrunk models")
    ap.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    from impl_tf import init_tensorflow, keras_classes, no_update_classes

    err = init_tensorflow(args.threads)
    if err:
        sys.exit(err)
    import keras

    import pyoptim.keras as pk
    from e2e import FLOOR, Variant, _time_cell
    from harness import summarize
    from tf_profile import profile_fit
    from zoo import model_specs

    specs = {s.name: s for s in model_specs(args.quick)}
    variants = [Variant(PYOPTIM, keras_classes(pk)), Variant(FLOOR, no_update_classes(keras.optimizers))]
    cells: List[Dict[str, Any]] = []
    for model_name in args.models.split(","):
        spec = specs[model_name]
        data = spec.data(spec.rows)
        keras.utils.set_random_seed(0)
        init = spec.build(keras).get_weights()
        for opt in args.optimizers.split(","):
            if opt not in spec.optimizers:
                continue
            runs = _time_cell(keras, spec, opt, variants, init, data, args.rounds)
            steps = spec.steps_per_epoch
            step_ms = {name: summarize(timer.times, steps).median_s / steps * 1e3
                       for name, (_, timer) in runs.items()}
            profiles = {name: profile_fit(model, *data, spec.batch_size, args.profile_epochs)
                        for name, (model, _) in runs.items()}
            b = _breakdown(profiles[PYOPTIM], profiles[FLOOR])
            cell = {"model": model_name, "optimizer": opt, "step_ms": step_ms,
                    "step_over_floor": step_ms[PYOPTIM] / step_ms[FLOOR],
                    "function_ms": {n: p["train_function_ms"] for n, p in profiles.items()},
                    **b, "profiles": profiles}
            cells.append(cell)
            top = ", ".join(f"{op} {ms:.2f}" for op, ms in list(b["other_ops_by_type"].items())[:4])
            print(f"{model_name:11s} {opt:7s} step {step_ms[PYOPTIM]:7.2f} / floor {step_ms[FLOOR]:7.2f} ms "
                  f"= {cell['step_over_floor']:.2f}x | function {profiles[PYOPTIM]['train_function_ms']:7.2f} / "
                  f"{profiles[FLOOR]['train_function_ms']:7.2f} ms: gap {b['function_gap_ms']:6.2f} = kernel op "
                  f"{b['kernel_ms']:5.2f} + other ops {b['other_ops_ms']:5.2f} + unaccounted "
                  f"{b['unaccounted_ms']:5.2f} ms | other ops: {top}", flush=True)
            del runs
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"threads": args.threads, "rounds": args.rounds, "quick": args.quick,
                       "cells": cells}, f, indent=1)


if __name__ == "__main__":
    main()
