"""End to end: ``model.fit`` epoch time with pyoptim.keras against keras.optimizers.

Two models, both trained from the same initial weights with ``shuffle=False``:

* ``pipeline``: the model of ``pyoptim trace``: Input(10) -> Dense(64, ReLU) ->
  Dense(3, softmax) on 1000 rows (batch 32): tiny, the optimizer is a small part of
  each step.
* ``heavy``: an optimizer-heavy model of about 10.5M parameters:
  Input(16 token ids) -> Embedding(1000, 32) -> Flatten -> Dense(4096, ReLU) ->
  Dense(2048, ReLU) -> Dense(10, softmax), 256 rows, batch 16.  With small batches the
  forward and backward passes are cheap next to updating 10.5M parameters and two
  Adam states every step.  (The Embedding's gradient is sparse; it holds 0.3% of the
  parameters.)

Implementations: ``pyoptim.keras`` and ``keras`` (keras.optimizers) with Keras' default
compile settings (``jit_compile`` resolves to False for these models on CPU; recorded), and
``keras.xla``: keras.optimizers with ``model.compile(jit_compile=True)`` (XLA compiles the
whole train step; pyoptim.keras would fall back to Keras' update there).

Per (model, optimizer), each implementation gets its own model and optimizer; one
warm-up epoch traces the train function; then rounds of one epoch each alternate
between the implementations (A/B interleaving).  The epoch time is measured by a
callback from ``on_epoch_begin`` to ``on_epoch_end``.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Tuple

import numpy as np

from harness import summarize
from problems import HYPER


@dataclass(frozen=True)
class ModelSpec:
    name: str
    description: str
    rows: int
    batch_size: int
    build: Callable[[Any], Any]
    data: Callable[[int], Tuple[np.ndarray, np.ndarray]]


def _pipeline(keras: Any, hidden: int = 64) -> Any:
    return keras.Sequential([
        keras.Input((10,)),
        keras.layers.Dense(hidden, activation="relu"),
        keras.layers.Dense(3, activation="softmax"),
    ])


def _pipeline_data(rows: int) -> Tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    centers = rng.normal(0, 2, size=(3, 10)).astype(np.float32)
    y = rng.integers(0, 3, size=rows).astype(np.int32)
    x = (centers[y] + rng.normal(0, 1, size=(rows, 10))).astype(np.float32)
    return x, y


def _heavy(keras: Any, seq: int = 16, vocab: int = 1000, dim: int = 32, h1: int = 4096, h2: int = 2048) -> Any:
    return keras.Sequential([
        keras.Input((seq,), dtype="int32"),
        keras.layers.Embedding(vocab, dim),
        keras.layers.Flatten(),
        keras.layers.Dense(h1, activation="relu"),
        keras.layers.Dense(h2, activation="relu"),
        keras.layers.Dense(10, activation="softmax"),
    ])


def _heavy_data(rows: int, seq: int = 16, vocab: int = 1000) -> Tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(2)
    x = rng.integers(0, vocab, size=(rows, seq)).astype(np.int32)
    y = (x.sum(axis=1) % 10).astype(np.int32)
    return x, y


def model_specs(quick: bool) -> List[ModelSpec]:
    """The two models; ``quick`` shrinks the heavy one (about 1M parameters, 64 rows)
    so that the smoke test stays short."""
    pipeline = ModelSpec("pipeline", "Input(10) -> Dense(64, ReLU) -> Dense(3, softmax); 1000 rows, batch 32",
                         1000, 32, _pipeline, _pipeline_data)
    if quick:
        heavy = ModelSpec("heavy", "Input(16 ids) -> Embedding(1000, 32) -> Flatten -> Dense(1024, ReLU) -> "
                                   "Dense(512, ReLU) -> Dense(10, softmax); 64 rows, batch 16 (quick: shrunk)",
                          64, 16, lambda k: _heavy(k, h1=1024, h2=512), _heavy_data)
    else:
        heavy = ModelSpec("heavy", "Input(16 ids) -> Embedding(1000, 32) -> Flatten -> Dense(4096, ReLU) -> "
                                   "Dense(2048, ReLU) -> Dense(10, softmax); 256 rows, batch 16",
                          256, 16, _heavy, _heavy_data)
    return [pipeline, heavy]


class _EpochTimer:
    """Keras callback factory: records on_epoch_begin -> on_epoch_end times."""

    def __init__(self, keras: Any) -> None:
        times: List[float] = []
        self.times = times

        class CB(keras.callbacks.Callback):
            def on_epoch_begin(self, epoch, logs=None):
                self._t0 = time.perf_counter()

            def on_epoch_end(self, epoch, logs=None):
                times.append(time.perf_counter() - self._t0)

        self.callback = CB()


def run_e2e(keras: Any, variants: Dict[str, Tuple[Dict[str, Any], Dict[str, Any]]], optimizers: List[str],
            quick: bool, rounds: int, log: Callable[[str], None] = print) -> Dict[str, Any]:
    """Time one-epoch ``model.fit`` calls.  ``variants[impl] = (classes, compile_kwargs)``:
    ``classes[opt]`` is the optimizer class (e.g. 'keras' -> keras.optimizers.Adam) and
    ``compile_kwargs`` extra ``model.compile`` arguments (e.g. ``jit_compile=True``)."""
    results: List[Dict[str, Any]] = []
    specs = model_specs(quick)
    for spec in specs:
        t_model = time.perf_counter()
        x, y = spec.data(spec.rows)
        keras.utils.set_random_seed(0)
        init = spec.build(keras).get_weights()
        n_params = int(sum(w.size for w in init))
        for opt_name in optimizers:
            runs: Dict[str, Tuple[Any, _EpochTimer]] = {}
            for impl, (classes, compile_kwargs) in variants.items():
                model = spec.build(keras)
                model.set_weights(init)
                model.compile(optimizer=classes[opt_name](**HYPER[opt_name]),
                              loss="sparse_categorical_crossentropy", **compile_kwargs)
                timer = _EpochTimer(keras)
                model.fit(x, y, batch_size=spec.batch_size, epochs=1, shuffle=False, verbose=0)  # trace
                runs[impl] = (model, timer)
            names = list(runs)
            for r in range(rounds):
                for impl in names[r % len(names):] + names[: r % len(names)]:
                    model, timer = runs[impl]
                    model.fit(x, y, batch_size=spec.batch_size, epochs=1, shuffle=False, verbose=0,
                              callbacks=[timer.callback])
            losses = {impl: float(runs[impl][0].evaluate(x, y, batch_size=256, verbose=0)) for impl in names}
            paths = {impl: runs[impl][0].optimizer.path_counts() for impl in names
                     if callable(getattr(runs[impl][0].optimizer, "path_counts", None))}
            for impl in names:
                st = summarize(runs[impl][1].times, 1)
                results.append({
                    "model": spec.name, "optimizer": opt_name, "impl": impl, "parameters": n_params,
                    "rows": spec.rows, "batch_size": spec.batch_size,
                    "steps_per_epoch": -(-spec.rows // spec.batch_size),
                    "epoch_median_s": st.median_s, "epoch_q1_s": st.q1_s, "epoch_q3_s": st.q3_s,
                    "epoch_iqr_s": st.iqr_s, "epoch_min_s": st.min_s, "epochs_timed": st.samples,
                    "final_loss": losses[impl], "jit_compile": bool(runs[impl][0].jit_compile),
                })
                if impl in paths:
                    results[-1]["path_counts"] = paths[impl]
                log(f"  e2e {spec.name:8s} {opt_name:8s} {impl:14s} epoch median {st.median_s * 1e3:9.1f} ms "
                    f"(IQR {st.iqr_s * 1e3:.1f} ms, {st.samples} epochs)")
            del runs
        log(f"  e2e {spec.name}: {time.perf_counter() - t_model:.1f} s")
    return {"models": [{"name": s.name, "description": s.description, "rows": s.rows,
                        "batch_size": s.batch_size} for s in specs],
            "results": results}
