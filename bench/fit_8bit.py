#!/usr/bin/env python
"""model.fit step of the zoo's heavy model (10.5M parameters, bench/zoo.py) with
pyoptim.keras.Adam8bit against pyoptim.keras.Adam ([low-bit-state]'s Keras target).

    python bench/fit_8bit.py [--rounds 9] [--out bench/results/fit_8bit.json]

Each round times one epoch (16 steps of batch 16) of each optimizer, interleaved, after an
untimed warm-up epoch; the report gives the median step time of each and the ratio.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    import pyoptim.keras as pk
    from zoo import heavy, heavy_data

    x, y = heavy_data(256)
    keras.utils.set_random_seed(0)
    init = heavy(keras).get_weights()
    models = {}
    for name, cls in (("pyoptim.keras.Adam", pk.Adam), ("pyoptim.keras.Adam8bit", pk.Adam8bit)):
        model = heavy(keras)
        model.set_weights(init)
        model.compile(optimizer=cls(learning_rate=1e-3), loss="sparse_categorical_crossentropy")
        model.fit(x, y, batch_size=16, epochs=1, verbose=0)  # trace and build
        models[name] = model
    times = {name: [] for name in models}
    for _ in range(args.rounds):
        for name, model in models.items():
            t = time.perf_counter()
            model.fit(x, y, batch_size=16, epochs=1, verbose=0)
            times[name].append((time.perf_counter() - t) / 16 * 1e3)
    med = {name: float(np.median(t)) for name, t in times.items()}
    ratio = med["pyoptim.keras.Adam"] / med["pyoptim.keras.Adam8bit"]
    for name, m in med.items():
        print(f"{name:24s} {m:7.2f} ms/step (median of {args.rounds})")
    print(f"Adam / Adam8bit step: {ratio:.2f}x; op calls {pk.op_calls()}")
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"step_ms": med, "ratio_adam_over_adam8bit": ratio, "samples_ms": times,
                       "op_calls": pk.op_calls()}, f, indent=1)


if __name__ == "__main__":
    main()
