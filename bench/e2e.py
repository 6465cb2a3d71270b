"""End to end: ``model.fit`` epoch and step time with pyoptim.keras against keras.optimizers,
over the model zoo of ``zoo.py`` (pipeline, heavy, many_small, transformer) and the
optimizers SGD (momentum 0.9), RMSprop, Adam and AdamW (hyperparameters in
``problems.HYPER``), and the sparse-gradient ``embedding`` model with Adam, RMSprop (momentum
0.9), SGD (momentum 0.9 and none) and LazyAdam (``problems.SPARSE_OPTIMIZERS``; each model's
``ModelSpec.optimizers``).  keras.optimizers has no LazyAdam: its ``keras`` and
``keras.no_update`` rows run keras.optimizers.Adam (``impl_tf.KERAS_BASELINE``; each row records
its ``optimizer_class``).

Implementations (:class:`Variant`): ``pyoptim.keras`` and ``keras`` (keras.optimizers) with
Keras' default compile settings (``jit_compile`` resolves to False for these models on CPU;
recorded), and ``keras.xla``: keras.optimizers with ``model.compile(jit_compile=True)`` (XLA
compiles the whole train step; pyoptim.keras would fall back to Keras' update there), only on
the models whose ``ModelSpec.xla`` is set; and ``keras.no_update`` (:data:`FLOOR`): the same
step with keras.optimizers classes that update nothing (``impl_tf.no_update_classes``), the
floor under any optimizer, so that ``keras / keras.no_update`` is the most that any update could
gain on that model.

A (model, optimizer) cell runs only when pyoptim.keras has that optimizer (e.g.
``pyoptim.keras.AdamW`` or ``LazyAdam`` may not exist yet): otherwise every row of the cell is
recorded with ``skipped: true`` and the reason, and nothing is timed (there would be no ratio to
report).
When pyoptim.keras is unavailable altogether the other implementations still run.

Per cell, each implementation gets its own model (same initial weights, ``shuffle=False``)
and optimizer; one warm-up epoch traces the train function; then rounds of one epoch each
alternate between the implementations (A/B interleaving).  The epoch time is measured by a
callback from ``on_epoch_begin`` to ``on_epoch_end``; the step time is the epoch time divided
by the steps per epoch.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from harness import summarize
from problems import HYPER
from zoo import ModelSpec, model_specs

PYOPTIM = "pyoptim.keras"
FLOOR = "keras.no_update"


@dataclass
class Variant:
    """One implementation of the model.fit benchmark: optimizer classes by name (absent ones
    are unavailable, ``missing`` says why), extra ``model.compile`` arguments, and whether it
    compiles with XLA (then it runs only on models with ``ModelSpec.xla``)."""

    name: str
    classes: Dict[str, Any]
    missing: Dict[str, str] = field(default_factory=dict)
    compile_kwargs: Dict[str, Any] = field(default_factory=dict)
    xla: bool = False


def e2e_plan(quick: bool, optimizers: Sequence[str], models: Sequence[str]) -> List[Tuple[str, str]]:
    """(model, optimizer) cells to run, in order: of ``optimizers``, those each model takes
    (``ModelSpec.optimizers``).  Full: all of them.  Quick: those of ``ModelSpec.quick_optimizers``
    (every optimizer on ``pipeline`` and ``embedding``, Adam on the other models: traces
    dominate).  Empty when no model takes any of ``optimizers``."""
    specs = {s.name: s for s in model_specs(quick)}
    plan = [(m, o) for m in models for o in optimizers if o in specs[m].optimizers]
    if quick:
        shrunk = [(m, o) for m, o in plan if o in specs[m].quick_optimizers]
        plan = shrunk or plan[:1]  # e.g. --e2e-optimizers sgd --e2e-models heavy
    return plan


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


def _size(model: Any) -> Tuple[int, int]:
    """(trainable variables, trainable parameters) of a built model."""
    variables = model.trainable_variables
    return len(variables), int(sum(int(v.numpy().size) for v in variables))


def _skip_reason(spec: ModelSpec, opt: str, variants: Sequence[Variant]) -> Optional[str]:
    pk = next((v for v in variants if v.name == PYOPTIM), None)
    if pk is not None and opt not in pk.classes:
        return pk.missing.get(opt, f"pyoptim.keras has no class for {opt}")
    return None


def _time_cell(keras: Any, spec: ModelSpec, opt: str, variants: Sequence[Variant], init: List[Any],
               data: Tuple[Any, Any], rounds: int) -> Dict[str, Tuple[Any, _EpochTimer]]:
    """Compile and warm up one model per variant, then time ``rounds`` interleaved epochs."""
    x, y = data
    runs: Dict[str, Tuple[Any, _EpochTimer]] = {}
    for v in variants:
        model = spec.build(keras)
        model.set_weights(init)
        model.compile(optimizer=v.classes[opt](**HYPER[opt]), loss=spec.loss, **v.compile_kwargs)
        timer = _EpochTimer(keras)
        model.fit(x, y, batch_size=spec.batch_size, epochs=1, shuffle=False, verbose=0)  # trace
        runs[v.name] = (model, timer)
    names = list(runs)
    for r in range(rounds):
        for name in names[r % len(names):] + names[: r % len(names)]:
            model, timer = runs[name]
            model.fit(x, y, batch_size=spec.batch_size, epochs=1, shuffle=False, verbose=0,
                      callbacks=[timer.callback])
    return runs


def _summary(spec: ModelSpec, opt: str, size: Tuple[int, int], rows: List[Dict[str, Any]]) -> Dict[str, Any]:
    """One (model, optimizer) line: step medians per implementation and keras / pyoptim."""
    out: Dict[str, Any] = {"model": spec.name, "optimizer": opt, "variables": size[0], "parameters": size[1],
                           "steps_per_epoch": spec.steps_per_epoch}
    timed = {r["impl"]: r for r in rows if not r.get("skipped")}
    if not timed:
        out.update(skipped=True, reason=rows[0]["reason"] if rows else "no implementation")
        return out
    for name, r in timed.items():
        out[f"{name}_step_s"] = r["step_median_s"]
    pk = timed.get(PYOPTIM)
    for name, r in timed.items():
        out[f"{name}_class"] = r["optimizer_class"]
    for name in ("keras", "keras.xla"):
        if pk and name in timed:
            out[f"{name}_over_pyoptim"] = timed[name]["step_median_s"] / pk["step_median_s"]
    if FLOOR in timed and "keras" in timed:
        out["keras_over_floor"] = timed["keras"]["step_median_s"] / timed[FLOOR]["step_median_s"]
    return out


def run_e2e(keras: Any, variants: Sequence[Variant], plan: Sequence[Tuple[str, str]], quick: bool, rounds: int,
            log: Callable[[str], None] = print) -> Dict[str, Any]:
    """Time one-epoch ``model.fit`` calls for every (model, optimizer) of ``plan``.
    Returns ``{"models": [...], "results": [one row per cell and implementation],
    "summary": [one line per cell]}``."""
    results: List[Dict[str, Any]] = []
    summary: List[Dict[str, Any]] = []
    specs = {s.name: s for s in model_specs(quick)}
    used = [specs[m] for m in dict.fromkeys(m for m, _ in plan)]
    sizes: Dict[str, Tuple[int, int]] = {}
    for spec in used:
        t_model = time.perf_counter()
        data = spec.data(spec.rows)
        keras.utils.set_random_seed(0)
        reference = spec.build(keras)
        init = reference.get_weights()
        sizes[spec.name] = size = _size(reference)
        del reference
        for model_name, opt in plan:
            if model_name != spec.name:
                continue
            base = {"model": spec.name, "optimizer": opt, "variables": size[0], "parameters": size[1],
                    "rows": spec.rows, "batch_size": spec.batch_size, "steps_per_epoch": spec.steps_per_epoch}
            here = [v for v in variants if spec.xla or not v.xla]
            reason = _skip_reason(spec, opt, here)
            cell: List[Dict[str, Any]] = []
            if reason is not None:
                for v in here:
                    cell.append({**base, "impl": v.name, "skipped": True, "reason": reason})
                log(f"  e2e {spec.name:11s} {opt:8s} skipped: {reason}")
            else:
                here = [v for v in here if opt in v.classes]
                runs = _time_cell(keras, spec, opt, here, init, data, rounds)
                for name, (model, timer) in runs.items():
                    st = summarize(timer.times, 1)
                    row = {**base, "impl": name, "skipped": False,
                           "epoch_median_s": st.median_s, "epoch_q1_s": st.q1_s, "epoch_q3_s": st.q3_s,
                           "epoch_iqr_s": st.iqr_s, "epoch_min_s": st.min_s, "epochs_timed": st.samples,
                           "step_median_s": st.median_s / spec.steps_per_epoch,
                           "final_loss": float(model.evaluate(*data, batch_size=256, verbose=0)),
                           "jit_compile": bool(model.jit_compile),
                           "optimizer_class": type(model.optimizer).__name__}
                    counts = getattr(model.optimizer, "path_counts", None)
                    if callable(counts):
                        row["path_counts"] = counts()
                    cell.append(row)
                    log(f"  e2e {spec.name:11s} {opt:8s} {name:14s} epoch median {st.median_s * 1e3:9.1f} ms, "
                        f"step {row['step_median_s'] * 1e3:8.2f} ms (IQR {st.iqr_s * 1e3:.1f} ms, "
                        f"{st.samples} epochs)")
                del runs
            results.extend(cell)
            summary.append(_summary(spec, opt, size, cell))
        log(f"  e2e {spec.name}: {time.perf_counter() - t_model:.1f} s")
    return {"models": [{"name": s.name, "description": s.description, "rows": s.rows,
                        "batch_size": s.batch_size, "steps_per_epoch": s.steps_per_epoch, "xla": s.xla,
                        "loss": s.loss, "optimizers": list(s.optimizers),
                        "variables": sizes[s.name][0], "parameters": sizes[s.name][1]} for s in used],
            "results": results, "summary": summary}
