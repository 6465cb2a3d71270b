"""Sparse gradients: ``apply_gradients`` of one ``tf.IndexedSlices`` gradient to an Embedding
table, keras.optimizers against pyoptim.keras, in a tf.function and eagerly.

The case is one step of the zoo's ``embedding`` model (``zoo.py``) without the model: a
200000 x 64 float32 table and the gradient a batch of 64 rows of 20 ids gives it, 1280 rows of
64 values at Zipf-distributed ids (``zoo.zipf_ids``, seed 0: a few hundred distinct ids, many
repeated; duplicates are left in, as TensorFlow's gradient of a gather leaves them).  Per
optimizer of ``problems.SPARSE_OPTIMIZERS`` -- Adam, RMSprop (momentum 0.9), SGD (momentum 0.9),
SGD (no momentum) and LazyAdam, hyperparameters in ``problems.HYPER`` -- one interleaved harness
cell times four implementations: ``pyoptim.keras`` and ``keras`` (``apply_gradients`` in one
``tf.function``), ``pyoptim.keras.eager`` and ``keras.eager`` (called eagerly).  Each has its own
copy of the same initial table and applies the same gradient at every step.

keras.optimizers has no LazyAdam: the ``keras`` rows of ``lazyadam`` run keras.optimizers.Adam
(``impl_tf.KERAS_BASELINE``; each row records its ``optimizer_class``), so that its ratio is
what switching from Keras' Adam to pyoptim's LazyAdam gains.  While pyoptim.keras has no
``LazyAdam`` (or any other class) that row is recorded unavailable with the reason, and so is
Keras' row of the same mode (not timed: there would be no ratio); the rest runs.
``keras_over_pyoptim`` = keras' median / pyoptim.keras' median, per optimizer and mode
(tf.function, eager).
"""
from __future__ import annotations

import gc
from typing import Any, Callable, Dict, List, Optional, Sequence

import harness
import numpy as np
from impl_base import Impl
from impl_tf import _TF, CLASS_NAMES, KERAS_BASELINE, keras_step, missing_class_reason
from problems import HYPER, SPARSE_OPTIMIZERS, Data
from zoo import BATCH, DIM, SEQ, VOCAB, ZIPF_A, zipf_ids

#: The implementations of bench/run.py that take part: (keras, pyoptim.keras) per mode.
IMPLS = ("pyoptim.keras", "keras", "pyoptim.keras.eager", "keras.eager")
MODES = {"tf.function": ("keras", "pyoptim.keras"), "eager": ("keras.eager", "pyoptim.keras.eager")}
INDICES = BATCH * SEQ  # 1280 ids per batch of the embedding model


def make_case(seed: int = 0) -> Dict[str, Any]:
    """The initial table (N(0, 1)), the gradient's ids (:func:`zoo.zipf_ids`, int32 like an
    Embedding's gradient) and values (N(0, 1))."""
    rng = np.random.default_rng(seed)
    return {"table": rng.standard_normal((VOCAB, DIM), dtype=np.float32),
            "indices": zipf_ids(rng, INDICES),
            "values": rng.standard_normal((INDICES, DIM), dtype=np.float32)}


def _gradient(case: Dict[str, Any]) -> Any:
    tf = _TF["tf"]
    return tf.IndexedSlices(tf.constant(case["values"]), tf.constant(case["indices"]),
                            dense_shape=tf.constant([VOCAB, DIM], dtype=tf.int32))


def run_sparse(impls: Sequence[Impl], optimizers: Sequence[str] = SPARSE_OPTIMIZERS, *, rounds: int,
               min_sample_s: float, budget_s: float, sample_warmup: int = 1,
               log: Callable[[str], None] = print) -> Dict[str, Any]:
    """Time one sparse ``apply_gradients`` step per optimizer for every implementation of
    ``impls`` named in :data:`IMPLS` (set up by bench/run.py), one interleaved cell per
    optimizer.  Returns ``{"case": ..., "rows": [...], "keras_over_pyoptim": {opt: {mode: x}}}``."""
    case = make_case()
    unique = int(np.unique(case["indices"]).size)
    here = [i for i in impls if i.name in IMPLS]
    grad = _gradient(case) if any(i.reason is None for i in here) else None  # None: TensorFlow unavailable
    rows: List[Dict[str, Any]] = []
    ratios: Dict[str, Dict[str, Optional[float]]] = {}
    partner = dict(MODES.values())  # keras impl -> pyoptim.keras impl of the same mode
    for opt in optimizers:
        steps: Dict[str, Any] = {}
        cell: Dict[str, Dict[str, Any]] = {}
        # pyoptim.keras first: when it lacks the class, Keras' step of that mode is not timed (no ratio)
        for impl in sorted(here, key=lambda i: i.name not in partner.values()):
            row: Dict[str, Any] = {"optimizer": opt, "impl": impl.name,
                                   "mode": "eager" if getattr(impl, "eager", False) else "tf.function",
                                   "hyperparameters": HYPER[opt], "available": False}
            cell[impl.name] = row
            if impl.reason is not None:
                row["reason"] = impl.reason
                continue
            missing = cell.get(partner.get(impl.name, ""), {}).get("missing_class")
            if missing:
                row["reason"] = f"not timed: {missing}"
                continue
            cls = impl.classes().get(opt)  # type: ignore[attr-defined]
            if cls is None:
                row["reason"] = row["missing_class"] = missing_class_reason(opt)
                continue
            row["optimizer_class"] = cls.__name__
            if impl.name.startswith("keras") and KERAS_BASELINE.get(opt) == cls.__name__:
                row["stand_in_for"] = CLASS_NAMES[opt]  # lazyadam: keras.optimizers.Adam
            try:
                step = keras_step(_TF["keras"], cls, Data([case["table"]], [grad]), HYPER[opt],
                                  eager=getattr(impl, "eager", False))
            except Exception as e:  # noqa: BLE001  (a broken implementation must not stop the others)
                row["reason"] = f"error: {type(e).__name__}: {e}"
                log(f"  sparse {opt} {impl.name}: {row['reason']}")
                continue
            row.update(getattr(step, "_notes", {}))
            steps[impl.name] = step
        stats = harness.measure_interleaved(steps, rounds=rounds, min_rounds=min(3, rounds),
                                            min_sample_s=min_sample_s, warmup=3, budget_s=budget_s,
                                            sample_warmup=sample_warmup)
        for name, st in stats.items():
            cell[name].update(available=True, **st.as_dict())
        rows.extend(cell[i.name] for i in here)  # in bench/run.py's order
        ratios[opt] = {}
        for mode, (k, p) in MODES.items():
            ks, ps = stats.get(k), stats.get(p)
            if k in cell or p in cell:
                ratios[opt][mode] = ks.median_s / ps.median_s if ks and ps else None
        shown = ", ".join(f"{mode} {'-' if x is None else f'{x:.2f}x'}" for mode, x in ratios[opt].items())
        log(f"  sparse {opt:16s} keras/pyoptim: {shown}")
        del steps, stats
        gc.collect()
    return {"case": f"{VOCAB}x{DIM}", "table_shape": [VOCAB, DIM], "indices": INDICES, "unique_indices": unique,
            "index_distribution": f"zipf({ZIPF_A}) % {VOCAB}, int32, seed 0 (duplicates kept)",
            "rows": rows, "keras_over_pyoptim": ratios}
