#!/usr/bin/env python
"""The element-wise optimizers: Adadelta, Adagrad, Adamax, Ftrl, Lamb, Lion and Nadam.

For each optimizer (``problems.ELEMENTWISE_OPTIMIZERS``, Keras' defaults ``problems.HYPER``),
float32, and each size case (1e6, 1e7 and 100 x 1e3; ``--quick``: 10 x 1e3), one interleaved
harness cell times (``impl_elementwise``):

* ``pyoptim.fn`` and ``pyoptim.apply``: pyoptim's NumPy functional form and stateful class, for
  the optimizers pyoptim has them (looked up by name; the others are recorded unavailable with
  the reason);
* ``pyoptim.keras`` vs ``keras`` (apply_gradients inside one tf.function) and
  ``pyoptim.keras.eager`` vs ``keras.eager`` (called eagerly);
* ``torch.fused`` and ``torch.foreach``: torch.optim.Adagrad, for Adagrad only;
* ``roofline``: a C loop moving the optimizer's bytes (``roofline.TRAFFIC_ELEMENTWISE``: Lion and
  Adagrad 20 bytes/element, Adadelta, Adamax, Ftrl and Nadam 28, Lamb 40 in its op's two
  passes).

Per optimizer and case it reports keras / pyoptim.keras (tf.function, target >= 3.7x at 1e7),
keras.eager / pyoptim.keras.eager (target >= 30x at 100x1e3), the roofline fraction of
pyoptim.apply (roofline median / its median, target >= 0.85 at 1e7) and of pyoptim.keras, and
torch's Adagrad / pyoptim's.  ``bench/run.py`` runs it as its ``elementwise`` part
(``--no-elementwise`` skips it; ``--elementwise-optimizers``, ``--elementwise-sizes``).

Run only this part (any other bench/run.py option is passed on):

    python bench/elementwise.py                                   # the seven, 1e6, 1e7, 100x1e3
    python bench/elementwise.py --optimizers lion,adagrad --sizes 1e6,1e7,100x1e3
    python bench/elementwise.py --quick --out /tmp/ew              # smoke test

which is ``bench/run.py --no-micro --no-adamw --no-8bit --no-sparse --no-e2e --no-plots
--out bench/results/elementwise`` with ``--elementwise-optimizers`` / ``--elementwise-sizes``.
"""
from __future__ import annotations

import gc
import inspect
import os
import sys
import time
from typing import Any, Callable, Dict, List, Optional, Sequence

# NumPy (through these modules) loads after bench/run.py has set OMP_NUM_THREADS: ``main`` below
# imports nothing else before calling it.
if __name__ != "__main__":
    import harness
    import impl_elementwise
    import roofline
    from impl_base import Unavailable
    from problems import ELEMENTWISE_CLASSES, HYPER, Case, make_data

FULL_CASES = ("1e6", "1e7", "100x1e3")
QUICK_CASES = ("10x1e3",)
#: The targets (report.ELEMENTWISE_TARGETS): pyoptim.apply >= 0.85 of the roofline and keras /
#: pyoptim.keras >= 3.7x at 1e7, keras.eager / pyoptim.keras.eager >= 30x at 100x1e3.



def keras_defaults_check(optimizers: Sequence[str]) -> Dict[str, Any]:
    """problems.HYPER against the installed keras.optimizers' constructor defaults (recorded:
    the benchmark means "Keras' defaults")."""
    out: Dict[str, Any] = {}
    try:
        import keras
    except Exception as e:  # noqa: BLE001
        return {"error": f"keras not importable: {e}"}
    for opt in optimizers:
        cls = getattr(keras.optimizers, ELEMENTWISE_CLASSES[opt], None)
        if cls is None:
            out[opt] = {"match": None, "reason": f"keras.optimizers has no {ELEMENTWISE_CLASSES[opt]}"}
            continue
        sig = inspect.signature(cls)
        diff = {k: {"bench": v, "keras": sig.parameters[k].default if k in sig.parameters else "absent"}
                for k, v in HYPER[opt].items()
                if k not in sig.parameters or sig.parameters[k].default != v}
        out[opt] = {"match": not diff, "differences": diff}
    return out


def pyoptim_numpy_api(optimizers: Sequence[str]) -> Dict[str, Dict[str, bool]]:
    """Which of pyoptim's NumPy classes and functional forms exist in this run."""
    import pyoptim

    return {o: {"class": hasattr(pyoptim, ELEMENTWISE_CLASSES[o]), "functional": hasattr(pyoptim, f"{o}_update")}
            for o in optimizers}


def _time_cell(makers: Dict[str, Callable[[], Any]], base: Dict[str, Any], *, rounds: int, min_sample_s: float,
               budget_s: float, sample_warmup: int, log: Callable[[str], None]) -> Dict[str, Dict[str, Any]]:
    steps: Dict[str, Any] = {}
    rows: Dict[str, Dict[str, Any]] = {}
    for name, make in makers.items():
        row: Dict[str, Any] = {**base, "impl": name, "available": False}
        rows[name] = row
        if not callable(make):  # the reason it is unavailable
            row["reason"] = str(make)
            continue
        t0 = time.perf_counter()
        try:
            step, notes = make()
        except Unavailable as e:
            row["reason"] = str(e)
            continue
        except Exception as e:  # noqa: BLE001 - a broken implementation must not stop the others
            row["reason"] = f"error: {type(e).__name__}: {e}"
            log(f"  elementwise {base['optimizer']} {base['case']} {name}: {row['reason']}")
            continue
        row.update(notes)
        row["setup_s"] = round(time.perf_counter() - t0, 4)  # arrays, tracing, the first step
        steps[name] = step
    t0 = time.perf_counter()
    stats = harness.measure_interleaved(steps, rounds=rounds, min_rounds=min(3, rounds), min_sample_s=min_sample_s,
                                        warmup=3, budget_s=budget_s, sample_warmup=sample_warmup)
    for name, st in stats.items():
        rows[name].update(available=True, **st.as_dict())
    setup = ", ".join(f"{n} {r['setup_s']:.2f}" for n, r in rows.items() if "setup_s" in r)
    log(f"  elementwise {base['optimizer']} {base['case']}: setup s: {setup}; timing {time.perf_counter() - t0:.1f} s")
    return rows


def _derive(rows: Dict[str, Dict[str, Any]]) -> Dict[str, Any]:
    """GB/s, roofline fraction and time / pyoptim.apply's per row; the cell's ratios."""

    def med(name: str) -> Optional[float]:
        r = rows.get(name)
        return r["median_s"] if r and r.get("available") else None

    roof, ref = med("roofline"), med("pyoptim.apply")
    for r in rows.values():
        if not r.get("available"):
            continue
        t = r["median_s"]
        r["gbps"] = r["bytes_per_step"] / t / 1e9
        r["roofline_fraction"] = roof / t if roof else None
        r["over_pyoptim_apply"] = t / ref if ref else None

    def ratio(a: str, b: str) -> Optional[float]:
        x, y = med(a), med(b)
        return x / y if x and y else None

    torch_name = next((n for n in impl_elementwise.TORCH_IMPLS if med(n)), None)  # fused if it ran, else foreach
    cell = {
        "keras_over_pyoptim_keras": ratio("keras", "pyoptim.keras"),
        "eager_keras_over_pyoptim_keras": ratio("keras.eager", "pyoptim.keras.eager"),
        "apply_roofline_fraction": ratio("roofline", "pyoptim.apply"),
        "keras_path_roofline_fraction": ratio("roofline", "pyoptim.keras"),
        "fn_roofline_fraction": ratio("roofline", "pyoptim.fn"),
        "pyoptim_keras_over_apply": ratio("pyoptim.keras", "pyoptim.apply"),
    }
    if any(n in rows for n in impl_elementwise.TORCH_IMPLS):
        cell["torch_impl"] = torch_name
        cell["torch_over_pyoptim_apply"] = ratio(torch_name, "pyoptim.apply") if torch_name else None
        cell["torch_over_pyoptim_keras"] = ratio(torch_name, "pyoptim.keras") if torch_name else None
        cell["torch_over_pyoptim_fn"] = ratio(torch_name, "pyoptim.fn") if torch_name else None
    return cell


def run_elementwise(available: Dict[str, Optional[str]], optimizers: Sequence[str], cases: Sequence["Case"], *,
                    threads: int, roof_lib: Any, rounds: int, min_sample_s: float, budget_s: float,
                    sample_warmup: int = 1, log: Callable[[str], None] = print) -> Dict[str, Any]:
    """Time every optimizer x case; ``available`` maps each implementation of
    ``impl_elementwise.IMPLS`` taking part to None or why it cannot run at all (bench/run.py's
    setup of the same-named implementation).  Returns the ``elementwise`` JSON block."""
    impls = [i for i in impl_elementwise.IMPLS if i in available]
    rows: List[Dict[str, Any]] = []
    summary: List[Dict[str, Any]] = []
    for opt in optimizers:
        bpe = roofline.bytes_per_element_elementwise(opt)
        for case in cases:
            data = make_data(case)
            base = {"optimizer": opt, "case": case.label, "n_tensors": case.n_tensors, "tensor_size": case.size,
                    "n_elements": case.total, "bytes_per_element": bpe, "bytes_per_step": bpe * case.total}
            makers: Dict[str, Any] = {}
            for impl in impls:
                if impl in impl_elementwise.TORCH_IMPLS and opt not in impl_elementwise.TORCH_OPTIMIZERS:
                    continue  # torch is compared for Adagrad only: no row
                why = available[impl]
                makers[impl] = why if why is not None else impl_elementwise.maker(
                    impl, opt, case, data, threads=threads, roof_lib=roof_lib)
            cell_rows = _time_cell(makers, base, rounds=rounds, min_sample_s=min_sample_s, budget_s=budget_s,
                                   sample_warmup=sample_warmup, log=log)
            ratios = _derive(cell_rows)
            rows.extend(cell_rows.values())
            summary.append({"optimizer": opt, "case": case.label, **ratios})
            shown = ", ".join(f"{n} {r['median_s'] * 1e3:.3g} ms" for n, r in cell_rows.items() if r.get("available"))
            k, e = ratios["keras_over_pyoptim_keras"], ratios["eager_keras_over_pyoptim_keras"]
            log(f"  elementwise {opt:8s} {case.label:>8s}: {shown}"
                + (f"; keras/pk {k:.2f}x" if k else "") + (f", eager {e:.1f}x" if e else ""))
            del makers, cell_rows, data
            gc.collect()
    return {"optimizers": list(optimizers), "cases": [c.label for c in cases],
            "hyperparameters": {o: HYPER[o] for o in optimizers},
            "hyperparameters_vs_keras_defaults": keras_defaults_check(optimizers),
            "pyoptim_numpy_api": pyoptim_numpy_api(optimizers),
            "bytes_per_element": {o: roofline.bytes_per_element_elementwise(o) for o in optimizers},
            "rows": rows, "summary": summary}


def main(argv: Optional[List[str]] = None) -> int:
    """``bench/run.py`` with only this part: ``--optimizers`` and ``--sizes`` become
    ``--elementwise-optimizers`` and ``--elementwise-sizes``; the rest is passed on."""
    argv = list(sys.argv[1:] if argv is None else argv)
    out: List[str] = []
    it = iter(argv)
    for a in it:
        key, eq, val = a.partition("=")
        if key in ("--optimizers", "--sizes"):
            out.append(f"--elementwise-{key[2:]}")
            out.append(val if eq else next(it, ""))
        else:
            out.append(a)
    if not any(a == "--out" or a.startswith("--out=") for a in out):
        out += ["--out", os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "elementwise")]
    import run

    return run.main(["--no-micro", "--no-adamw", "--no-8bit", "--no-sparse", "--no-e2e", "--no-plots", *out])


if __name__ == "__main__":
    sys.exit(main())
