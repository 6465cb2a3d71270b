"""AdamW's step against Adam's, per pyoptim API, at one size (1e7 elements; quick: 1e5).

AdamW is Adam plus ``param -= param * weight_decay * learning_rate``: the same arrays move
(28 bytes per element), so its step should cost about Adam's.  For each API -- the NumPy
functional call (``pyoptim.adam_update`` with and without ``weight_decay``), the stateful
``pyoptim.Adam(weight_decay=...).apply`` and ``pyoptim.keras.AdamW`` against
``pyoptim.keras.Adam`` (in a tf.function; only when pyoptim.keras has AdamW, otherwise the row
is recorded unavailable with the reason) -- both steps are timed in one interleaved harness
cell, and ``adamw_over_adam`` = AdamW's median / Adam's median is reported.
"""
from __future__ import annotations

from typing import Any, Callable, Dict, List, Sequence

import harness
from impl_base import Impl, Unavailable
from problems import Case, make_data

QUICK_SIZE = 10**5
FULL_SIZE = 10**7


def run_adamw(impls: Sequence[Impl], size: int, *, rounds: int, min_sample_s: float, budget_s: float,
              sample_warmup: int = 1, log: Callable[[str], None] = print) -> Dict[str, Any]:
    """Time Adam and AdamW steps of every available implementation in ``impls`` (those that
    take optimizer ``adamw``: pyoptim.fn, pyoptim.apply, pyoptim.keras) on one tensor of
    ``size`` elements, all in one interleaved cell."""
    case = Case(1, size)
    data = make_data(case)
    steps: Dict[str, Any] = {}
    rows: List[Dict[str, Any]] = []
    for impl in impls:
        for opt in ("adam", "adamw"):
            row: Dict[str, Any] = {"impl": impl.name, "optimizer": opt, "case": case.label, "n_elements": size,
                                   "available": False}
            rows.append(row)
            if impl.reason is not None:
                row["reason"] = impl.reason
                continue
            try:
                step = impl.make(opt, case, data)
            except Unavailable as e:
                row["reason"] = str(e)
                continue
            row.update(getattr(step, "_notes", {}))
            steps[f"{impl.name}/{opt}"] = step
    stats = harness.measure_interleaved(steps, rounds=rounds, min_rounds=min(3, rounds), min_sample_s=min_sample_s,
                                        warmup=3, budget_s=budget_s, sample_warmup=sample_warmup)
    for row in rows:
        st = stats.get(f"{row['impl']}/{row['optimizer']}")
        if st is not None:
            row.update(available=True, **st.as_dict())
    ratios: Dict[str, Any] = {}
    for impl in impls:
        adam, adamw = (stats.get(f"{impl.name}/{o}") for o in ("adam", "adamw"))
        ratios[impl.name] = adamw.median_s / adam.median_s if adam and adamw else None
        shown = f"{ratios[impl.name]:.3f}x" if ratios[impl.name] is not None else "not measured"
        log(f"  adamw/adam {case.label:>5s} {impl.name:<14s} {shown}")
    return {"case": case.label, "n_elements": size, "rows": rows, "adamw_over_adam": ratios}
