#!/usr/bin/env python
"""model.fit step of the zoo's heavy model (10.5M parameters, bench/zoo.py) with
pyoptim.keras.Adam8bit against pyoptim.keras.Adam ([low-bit-state]'s Keras target), and the
step that updates nothing (keras.no_update, the floor under both).

    python bench/fit_8bit.py [--rounds 15] [--out bench/results/fit_8bit.json]

Timed as bench/e2e.py times the zoo (its ``_time_cell``): one model per optimizer from the same
initial weights, an untimed epoch that traces, then ``rounds`` interleaved epochs, each timed
from Keras' on_epoch_begin to on_epoch_end.  Timing the whole ``model.fit`` call instead would
add Keras' own teardown after the epoch, measured here at 0 or about 200 ms per call at random
(16 steps: up to 13 ms a step), which is larger than the difference between the two updates.

Then each model trains ``--profile-epochs`` more epochs under TensorFlow's profiler
(bench/tf_profile.py): the per-step time of the train function and of each optimizer op, so the
update's own cost is seen apart from the forward and backward passes around it.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

NAMES = {"pyoptim.keras.Adam": "Adam", "pyoptim.keras.Adam8bit": "Adam8bit"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    ap.add_argument("--profile-epochs", type=int, default=2, help="0: no profile")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    from impl_tf import init_tensorflow, no_update_classes

    err = init_tensorflow(args.threads)
    if err:
        sys.exit(err)
    import keras

    import pyoptim.keras as pk
    from e2e import FLOOR, Variant, _time_cell
    from harness import summarize
    from zoo import model_specs

    spec = next(s for s in model_specs(quick=False) if s.name == "heavy")
    variants = [Variant(name, {"adam": getattr(pk, cls)}) for name, cls in NAMES.items()]
    variants.append(Variant(FLOOR, no_update_classes(keras.optimizers)))
    data = spec.data(spec.rows)
    keras.utils.set_random_seed(0)
    init = spec.build(keras).get_weights()
    calls0 = pk.op_calls()
    runs = _time_cell(keras, spec, "adam", variants, init, data, args.rounds)
    steps = spec.steps_per_epoch
    stats = {name: summarize(timer.times, steps) for name, (_, timer) in runs.items()}
    med = {name: s.median_s / steps * 1e3 for name, s in stats.items()}
    adam, adam8, floor = med["pyoptim.keras.Adam"], med["pyoptim.keras.Adam8bit"], med[FLOOR]
    for name, m in med.items():
        s = stats[name]
        print(f"{name:24s} {m:7.2f} ms/step (median of {s.samples} epochs of {steps} steps; "
              f"IQR {s.iqr_s / steps * 1e3:.2f} ms)")
    print(f"Adam / Adam8bit step: {adam / adam8:.2f}x; above the floor: Adam {adam - floor:.2f} ms, "
          f"Adam8bit {adam8 - floor:.2f} ms")
    calls = {k: v - calls0.get(k, 0) for k, v in pk.op_calls().items()}
    profiles = {}
    if args.profile_epochs:
        from tf_profile import profile_fit

        for name, (model, _) in runs.items():
            profiles[name] = p = profile_fit(model, *data, spec.batch_size, args.profile_epochs)
            ops = {op: ms for op, ms in p["op_ms"].items() if op.startswith("PyoptimApply")}
            print(f"profile {name:24s} train function {p['train_function_ms']:6.2f} ms/step; "
                  + (", ".join(f"{op} {ms:.2f} ms" for op, ms in ops.items()) or "no pyoptim op"))
        op_ms = {name: sum(ms for op, ms in profiles[name]["op_ms"].items() if op.startswith("PyoptimApply"))
                 for name in NAMES}
        print(f"pyoptim ops per step: Adam {op_ms['pyoptim.keras.Adam']:.2f} ms, Adam8bit "
              f"{op_ms['pyoptim.keras.Adam8bit']:.2f} ms "
              f"({op_ms['pyoptim.keras.Adam'] / op_ms['pyoptim.keras.Adam8bit']:.2f}x)")
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"model": spec.name, "rows": spec.rows, "batch_size": spec.batch_size,
                       "threads": args.threads, "step_ms": med, "ratio_adam_over_adam8bit": adam / adam8,
                       "samples_epoch_s": {name: timer.times for name, (_, timer) in runs.items()},
                       "op_calls": calls, "profile": profiles}, f, indent=1)


if __name__ == "__main__":
    main()
