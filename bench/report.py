"""Derived figures (GB/s, fraction of roofline, ratios), the issue's targets and the
terminal table."""
from __future__ import annotations

import math
from typing import Any, Dict, Iterable, List, Optional

from roofline import bytes_per_element

#: Reference implementation per case: the multi-tensor API for lists of tensors.
def reference_impl(n_tensors: int) -> str:
    return "pyoptim.apply" if n_tensors > 1 else "pyoptim.fn"


def add_derived(micro: List[Dict[str, Any]]) -> None:
    """Add ``gbps``, ``roofline_fraction``, ``ratio_to_reference`` (this time / the
    pyoptim reference's time: > 1 means pyoptim is faster) to every available row."""
    by_cell: Dict[tuple, Dict[str, Dict[str, Any]]] = {}
    for row in micro:
        by_cell.setdefault((row["optimizer"], row["case"]), {})[row["impl"]] = row
    for (opt, _case), rows in by_cell.items():
        roof = rows.get("roofline")
        roof_t = roof["median_s"] if roof and roof.get("available") else None
        for row in rows.values():
            if not row.get("available"):
                continue
            t = row["median_s"]
            nbytes = bytes_per_element(opt) * row["n_elements"]
            row["bytes_per_step"] = nbytes
            row["gbps"] = nbytes / t / 1e9 if t > 0 else None
            row["roofline_fraction"] = roof_t / t if roof_t and t > 0 else None
            ref = rows.get(reference_impl(row["n_tensors"]))
            row["reference"] = reference_impl(row["n_tensors"])
            row["ratio_to_reference"] = t / ref["median_s"] if ref and ref.get("available") else None


def _find(micro: Iterable[Dict[str, Any]], opt: str, case: str, impl: str) -> Optional[Dict[str, Any]]:
    for row in micro:
        if row["optimizer"] == opt and row["case"] == case and row["impl"] == impl and row.get("available"):
            return row
    return None


def _target(name: str, goal: str, measured: Optional[float], unit: str, ok: Optional[bool], detail: str = "") -> Dict[str, Any]:
    return {"name": name, "target": goal, "measured": measured, "unit": unit, "met": ok, "detail": detail}


def targets(micro: List[Dict[str, Any]], e2e: Optional[Dict[str, Any]],
            adamw: Optional[Dict[str, Any]] = None, eightbit: Optional[Dict[str, Any]] = None,
            elementwise: Optional[Dict[str, Any]] = None) -> List[Dict[str, Any]]:
    """The targets of issue 5, [fused-step], [low-bit-state] and the element-wise optimizers',
    evaluated on this run (reported, never asserted)."""
    out: List[Dict[str, Any]] = []
    r = _find(micro, "adam", "1e7", "pyoptim.fn")
    frac = r.get("roofline_fraction") if r else None
    out.append(_target("adam_1e7_roofline_fraction", ">= 0.9", frac, "fraction", None if frac is None else frac >= 0.9,
                       f"{r['gbps']:.1f} GB/s" if r else "not measured"))
    ratios = []
    for row in micro:
        if row["optimizer"] == "adam" and row["impl"] == "torch.fused" and row.get("available"):
            ref = _find(micro, "adam", row["case"], reference_impl(row["n_tensors"]))
            if ref:
                ratios.append((row["median_s"] / ref["median_s"], row["case"]))
    worst = min(ratios) if ratios else None
    out.append(_target("adam_vs_torch_fused_every_size", ">= 1.0x (torch time / pyoptim time)",
                       worst[0] if worst else None, "x", None if worst is None else worst[0] >= 1.0,
                       ", ".join(f"{c}: {x:.2f}x" for x, c in ratios) if ratios else "torch not measured"))
    for opt in ("adam", "sgd", "rmsprop"):
        r = _find(micro, opt, "1", "pyoptim.fn")
        us = r["median_s"] * 1e6 if r else None
        out.append(_target(f"{opt}_call_overhead_n1", "<= 2 us", us, "us", None if us is None else us <= 2.0))
    for opt in ("adam", "sgd", "rmsprop"):
        r = _find(micro, opt, "100x1e3", "pyoptim.apply")
        us = r["median_s"] * 1e6 if r else None
        out.append(_target(f"{opt}_multi_100x1e3", "<= 60 us", us, "us", None if us is None else us <= 60.0))
    k = _find(micro, "adam", "1e7", "keras")
    pk = _find(micro, "adam", "1e7", "pyoptim.keras")
    ratio = k["median_s"] / pk["median_s"] if k and pk else None
    kx = _find(micro, "adam", "1e7", "keras.xla")
    detail = "" if ratio is not None else "pyoptim.keras or keras not measured at 1e7"
    if kx and pk:
        detail = (detail + "; " if detail else "") + f"keras.xla / pyoptim.keras: {kx['median_s'] / pk['median_s']:.2f}x"
    out.append(_target("keras_path_adam_1e7", ">= 10x (keras.optimizers time / pyoptim.keras time)", ratio, "x",
                       None if ratio is None else ratio >= 10.0, detail))
    ratio = None
    rows: Dict[str, Dict[str, Any]] = {}
    if e2e:
        rows = {x["impl"]: x for x in e2e.get("results", []) if x["model"] == "heavy" and x["optimizer"] == "adam"
                and not x.get("skipped")}
        if "keras" in rows and "pyoptim.keras" in rows:
            ratio = rows["keras"]["epoch_median_s"] / rows["pyoptim.keras"]["epoch_median_s"]
    detail = "" if ratio is not None else "not measured"
    if e2e and "keras.xla" in rows and "pyoptim.keras" in rows:
        detail = f"keras.xla (jit_compile=True) / pyoptim.keras: " \
                 f"{rows['keras.xla']['epoch_median_s'] / rows['pyoptim.keras']['epoch_median_s']:.2f}x"
    out.append(_target("fit_epoch_heavy_adam", ">= 2x (keras epoch / pyoptim.keras epoch)", ratio, "x",
                       None if ratio is None else ratio >= 2.0, detail))
    out.append(_adamw_target(adamw))
    out.extend(eightbit_targets(eightbit))
    out.extend(elementwise_targets(elementwise))
    return out


#: The element-wise optimizers' targets: (summary key, case, goal, threshold, unit, name suffix).
ELEMENTWISE_TARGETS = (
    ("apply_roofline_fraction", "1e7", ">= 0.85 (roofline time / pyoptim.apply time)", 0.85, "fraction",
     "apply_1e7_roofline_fraction"),
    ("keras_over_pyoptim_keras", "1e7", ">= 3.7x (keras / pyoptim.keras, tf.function)", 3.7, "x",
     "keras_path_1e7"),
    ("eager_keras_over_pyoptim_keras", "100x1e3", ">= 30x (keras.eager / pyoptim.keras.eager)", 30.0, "x",
     "eager_100x1e3"),
)


def _ew_rows(ew: Dict[str, Any], opt: str, case: str) -> Dict[str, Dict[str, Any]]:
    return {r["impl"]: r for r in ew["rows"] if r["optimizer"] == opt and r["case"] == case}


def _ew_why(ew: Dict[str, Any], opt: str, case: str, impls: Iterable[str]) -> str:
    rows = _ew_rows(ew, opt, case)
    why = [f"{i}: {rows[i].get('reason')}" for i in impls if i in rows and not rows[i].get("available")]
    why += [f"{i} not in the run" for i in impls if i not in rows]
    return "; ".join(why)


_EW_PAIRS = {"apply_roofline_fraction": ("roofline", "pyoptim.apply"),
             "keras_over_pyoptim_keras": ("keras", "pyoptim.keras"),
             "eager_keras_over_pyoptim_keras": ("keras.eager", "pyoptim.keras.eager")}


def elementwise_targets(ew: Optional[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """Per element-wise optimizer: pyoptim.apply >= 0.85 of its roofline at 1e7, keras /
    pyoptim.keras >= 3.7x at 1e7 (tf.function), keras.eager / pyoptim.keras.eager >= 30x at
    100x1e3.  A run without that case (``--quick``) reports the figure it has in the detail."""
    if not ew:
        return []
    out = []
    for opt in ew["optimizers"]:
        cells = {s["case"]: s for s in ew["summary"] if s["optimizer"] == opt}
        for key, case, goal, thr, unit, suffix in ELEMENTWISE_TARGETS:
            name = f"{opt}_{suffix}"
            a, b = _EW_PAIRS[key]
            if case not in cells:
                others = ", ".join(f"{c}: {s[key]:.3g}" for c, s in cells.items() if s.get(key) is not None)
                out.append(_target(name, goal, None, unit, None,
                                   f"not measured at {case}" + (f" (measured at {others})" if others else "")))
                continue
            x = cells[case].get(key)
            rows = _ew_rows(ew, opt, case)
            if x is None:
                out.append(_target(name, goal, None, unit, None, "not measured: " + _ew_why(ew, opt, case, (a, b))))
                continue
            out.append(_target(name, goal, x, unit, x >= thr,
                               f"{fmt_time(rows[a]['median_s'])} / {fmt_time(rows[b]['median_s'])}"))
    return out


def elementwise_ratios(ew: Optional[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """Per element-wise optimizer and case: keras / pyoptim.keras (tf.function and eager), the
    roofline fraction of pyoptim.apply, and torch's Adagrad / pyoptim's."""
    if not ew:
        return []
    out: List[Dict[str, Any]] = []
    meanings = {"keras_over_pyoptim_keras": ("tf.function", "keras / pyoptim.keras, apply_gradients in tf.function (x)"),
                "eager_keras_over_pyoptim_keras": ("eager", "keras.eager / pyoptim.keras.eager (x)"),
                "apply_roofline_fraction": ("roofline_fraction", "roofline / pyoptim.apply (fraction; 1.0 = as fast "
                                            "as moving its bytes)")}
    for s in ew["summary"]:
        opt, case = s["optimizer"], s["case"]
        for key, (tag, meaning) in meanings.items():
            a, b = _EW_PAIRS[key]
            rows = _ew_rows(ew, opt, case)
            x = s.get(key)
            detail = (f"{fmt_time(rows[a]['median_s'])} / {fmt_time(rows[b]['median_s'])}" if x is not None
                      else "not measured: " + _ew_why(ew, opt, case, (a, b)))
            out.append(_ratio(f"{opt}_{case}_{tag}", x, meaning, detail))
        if "torch_impl" in s:
            t = s.get("torch_impl")
            for ref in ("pyoptim.apply", "pyoptim.keras"):
                x = s.get(f"torch_over_{ref.replace('.', '_')}")
                rows = _ew_rows(ew, opt, case)
                detail = (f"{t}: {fmt_time(rows[t]['median_s'])} / {fmt_time(rows[ref]['median_s'])}"
                          if x is not None else "not measured: " + _ew_why(
                              ew, opt, case, [i for i in ("torch.fused", "torch.foreach", ref) if i != t]))
                out.append(_ratio(f"{opt}_{case}_torch_over_{ref}", x, f"torch.optim.Adagrad / {ref} (x)", detail))
    return out


def elementwise_table(ew: Optional[Dict[str, Any]]) -> str:
    """One block per element-wise optimizer (every implementation per case, like the micro
    table), then one line per optimizer and case with the ratios the targets use."""
    if not ew:
        return ""
    lines: List[str] = []
    head = (f"{'size':>9} {'implementation':<19} {'median':>10} {'IQR':>10} {'min':>10} {'GB/s':>7} {'roofline':>8} "
            f"{'vs apply':>8}")
    for opt in ew["optimizers"]:
        lines += ["", f"== {opt} (element-wise; float32, {ew['bytes_per_element'][opt]} bytes/element; Keras' "
                  "defaults; 'vs apply' = time / pyoptim.apply's) ==", head]
        for case in ew["cases"]:
            for r in _ew_rows(ew, opt, case).values():
                if not r.get("available"):
                    lines.append(f"{case:>9} {r['impl']:<19} unavailable: {str(r.get('reason', ''))[:80]}")
                    continue
                frac = f"{100 * r['roofline_fraction']:.0f}%" if r.get("roofline_fraction") is not None else "-"
                ratio = f"{r['over_pyoptim_apply']:.2f}x" if r.get("over_pyoptim_apply") is not None else "-"
                note = "  (Keras' update: fallback)" if r.get("fast_path") is False else ""
                lines.append(f"{case:>9} {r['impl']:<19} {fmt_time(r['median_s']):>10} {fmt_time(r['iqr_s']):>10} "
                             f"{fmt_time(r['min_s']):>10} {r['gbps']:>7.2f} {frac:>8} {ratio:>8}{note}")
            lines.append("")
    lines += ["== element-wise optimizers: ratios per case (keras/pk: keras / pyoptim.keras in tf.function; "
              "eager: keras.eager / pyoptim.keras.eager; apply/roof: roofline / pyoptim.apply; torch: "
              "torch.optim.Adagrad / pyoptim.apply, else / pyoptim.keras) ==",
              f"{'optimizer':<9} {'size':>8} {'apply':>10} {'pk':>10} {'keras':>10} {'keras/pk':>9} {'pk.eager':>10} "
              f"{'k.eager':>10} {'eager':>8} {'roofline':>10} {'apply/roof':>10} {'torch':>10}"]
    for s in ew["summary"]:
        rows = _ew_rows(ew, s["optimizer"], s["case"])

        def t(name: str) -> str:
            r = rows.get(name)
            return fmt_time(r["median_s"]) if r and r.get("available") else "-"

        def x(key: str, fmt: str = "{:.2f}x") -> str:
            v = s.get(key)
            return fmt.format(v) if v is not None else "-"

        torch = "-"
        if s.get("torch_impl"):
            v = s.get("torch_over_pyoptim_apply")
            ref = "apply"
            if v is None:
                v, ref = s.get("torch_over_pyoptim_keras"), "pk"
            torch = f"{v:.2f}x/{ref}" if v is not None else "-"
        lines.append(f"{s['optimizer']:<9} {s['case']:>8} {t('pyoptim.apply'):>10} {t('pyoptim.keras'):>10} "
                     f"{t('keras'):>10} {x('keras_over_pyoptim_keras'):>9} {t('pyoptim.keras.eager'):>10} "
                     f"{t('keras.eager'):>10} {x('eager_keras_over_pyoptim_keras', '{:.1f}x'):>8} "
                     f"{t('roofline'):>10} {x('apply_roofline_fraction', '{:.2f}'):>10} {torch:>10}")
    api = ew.get("pyoptim_numpy_api") or {}
    missing = [o for o, a in api.items() if not a.get("class")]
    if missing:
        lines.append(f"(pyoptim has no NumPy class for {', '.join(missing)} in this run: their pyoptim.apply rows are "
                     "unavailable)")
    bad = [o for o, c in (ew.get("hyperparameters_vs_keras_defaults") or {}).items()
           if isinstance(c, dict) and c.get("match") is False]
    if bad:
        lines.append(f"(hyperparameters differ from this Keras' defaults for {', '.join(bad)}: see the JSON)")
    return "\n".join(lines)


def eightbit_targets(eb: Optional[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """[low-bit-state]: at 1e7, Adam8bit's step >= 1.5x faster than Adam's and >= 0.85 of the
    roofline moving its bytes; its state <= 0.27x Adam's (measured at 1e7 in every run)."""
    goals = [("adam8bit_vs_adam_1e7", ">= 1.5x (pyoptim.Adam time / Adam8bit time)", "adam_over_adam8bit", "x",
              lambda x: x >= 1.5),
             ("adam8bit_1e7_roofline_fraction", ">= 0.85 (8-bit roofline time / Adam8bit time)", "roofline_fraction",
              "fraction", lambda x: x >= 0.85)]
    out = []
    for name, goal, key, unit, ok in goals:
        if not eb:
            out.append(_target(name, goal, None, unit, None, "not measured"))
            continue
        x = eb.get(key)
        t8 = _row(eb["rows"], f"pyoptim.Adam8bit/b{eb['default_block_size']}")
        other = _row(eb["rows"], "pyoptim.Adam" if key == "adam_over_adam8bit" else "roofline.adam8bit")
        detail = (f"{fmt_time(other['median_s'])} / {fmt_time(t8['median_s'])}, block {eb['default_block_size']}"
                  if x is not None and t8 and other else
                  "not measured: " + "; ".join(f"{r['impl']}: {r.get('reason')}" for r in (t8, other)
                                               if r and not r.get("available")))
        if eb["case"] != "1e7":
            shown = f"{x:.3g}" if x is not None else "-"
            out.append(_target(name, goal, None, unit, None, f"measured at {eb['case']}: {shown} ({detail})"))
        else:
            out.append(_target(name, goal, x, unit, None if x is None else ok(x), detail))
    goal = "<= 0.27x (Adam8bit slot bytes / pyoptim.Adam's, 1e7 tensor)"
    mem = (eb or {}).get("memory")
    r = eb.get("state_over_adam") if eb else None
    if not mem or r is None:
        out.append(_target("adam8bit_state_memory_1e7", goal, None, "x", None, "not measured"))
    else:
        rows = mem["rows"]
        a, d = rows["pyoptim.Adam"], rows[f"pyoptim.Adam8bit/b{eb['default_block_size']}"]
        detail = f"{d['slot_bytes']:,} / {a['slot_bytes']:,} bytes at {mem['n_elements']:.0e}"
        if mem["n_elements"] != 10**7:
            out.append(_target("adam8bit_state_memory_1e7", goal, None, "x", None, f"measured at "
                               f"{mem['n_elements']}: {r:.4f}x ({detail})"))
        else:
            out.append(_target("adam8bit_state_memory_1e7", goal, r, "x", r <= 0.27, detail))
    return out


def _row(rows: List[Dict[str, Any]], impl: str) -> Optional[Dict[str, Any]]:
    return next((r for r in rows if r["impl"] == impl), None)


def _adamw_target(adamw: Optional[Dict[str, Any]]) -> Dict[str, Any]:
    """AdamW's step <= 1.1x Adam's at 1e7, the worst over the pyoptim APIs measured."""
    goal = "<= 1.1x (AdamW step / Adam step, worst pyoptim API)"
    if not adamw:
        return _target("adamw_vs_adam_1e7", goal, None, "x", None, "not measured")
    ratios = {k: v for k, v in adamw["adamw_over_adam"].items() if v is not None}
    missing = [k for k, v in adamw["adamw_over_adam"].items() if v is None]
    detail = ", ".join(f"{k}: {v:.3f}x" for k, v in ratios.items())
    if missing:
        detail += ("; " if detail else "") + "not measured: " + ", ".join(missing)
    if adamw["case"] != "1e7" or not ratios:
        return _target("adamw_vs_adam_1e7", goal, None, "x", None, f"measured at {adamw['case']}: {detail}")
    worst = max(ratios.values())
    return _target("adamw_vs_adam_1e7", goal, worst, "x", worst <= 1.1, detail)


def _ratio(name: str, measured: Optional[float], meaning: str, detail: str = "") -> Dict[str, Any]:
    return {"name": name, "measured": measured, "meaning": meaning, "detail": detail}


def headline_ratios(micro: List[Dict[str, Any]], e2e: Optional[Dict[str, Any]],
                    adamw: Optional[Dict[str, Any]],
                    sparse: Optional[Dict[str, Any]] = None,
                    eightbit: Optional[Dict[str, Any]] = None,
                    elementwise: Optional[Dict[str, Any]] = None) -> List[Dict[str, Any]]:
    """The ratios [fused-step] asks one run to measure (reported, no threshold):
    apply_gradients of the multi-tensor Adam case in tf.function and eagerly (keras.optimizers
    / pyoptim.keras), the Keras path against the NumPy API at the largest single tensor
    (pyoptim.keras / pyoptim.fn), AdamW / Adam per pyoptim API, apply_gradients of the sparse
    (tf.IndexedSlices) case per optimizer and mode (keras.optimizers / pyoptim.keras), and the
    model.fit step of every zoo (model, optimizer) (keras.optimizers / pyoptim.keras); and
    [low-bit-state]'s: Adam / Adam8bit, the 8-bit roofline fraction, each block size against
    the default, the state bytes, and each peer's 8-bit Adam / pyoptim.Adam8bit."""
    out: List[Dict[str, Any]] = []
    multi = sorted({(r["n_elements"], r["case"]) for r in micro if r["optimizer"] == "adam" and r["n_tensors"] > 1})
    for _, case in multi[-1:]:
        for mode, a, b in (("tf.function", "keras", "pyoptim.keras"), ("eager", "keras.eager", "pyoptim.keras.eager")):
            ka, pb = _find(micro, "adam", case, a), _find(micro, "adam", case, b)
            out.append(_ratio(f"apply_gradients_adam_{case}_{mode}", ka["median_s"] / pb["median_s"] if ka and pb else None,
                              f"{a} / {b} (x)", f"{fmt_time(ka['median_s'])} / {fmt_time(pb['median_s'])}"
                              if ka and pb else "not measured"))
    single = sorted({(r["n_elements"], r["case"]) for r in micro if r["optimizer"] == "adam" and r["n_tensors"] == 1})
    for _, case in single[-1:]:
        pk, fn = _find(micro, "adam", case, "pyoptim.keras"), _find(micro, "adam", case, "pyoptim.fn")
        out.append(_ratio(f"keras_path_vs_numpy_adam_{case}", pk["median_s"] / fn["median_s"] if pk and fn else None,
                          "pyoptim.keras / pyoptim.fn (x; 1.0 = the Keras path as fast as the NumPy API)",
                          f"{fmt_time(pk['median_s'])} / {fmt_time(fn['median_s'])}" if pk and fn else "not measured"))
    if adamw:
        for impl, r in adamw["adamw_over_adam"].items():
            why = next((x.get("reason") for x in adamw["rows"] if x["impl"] == impl and not x["available"]), None)
            out.append(_ratio(f"adamw_over_adam_{adamw['case']}_{impl}", r, "AdamW step / Adam step (x)",
                              "" if r is not None else f"not measured: {why}"))
    if sparse:
        for opt, modes in sparse["keras_over_pyoptim"].items():
            for mode, r in modes.items():
                out.append(_ratio(f"sparse_apply_{opt}_{mode}", r,
                                  "keras / pyoptim.keras, apply_gradients of one IndexedSlices (x)",
                                  _sparse_detail(sparse, opt, mode)))
    out.extend(eightbit_ratios(eightbit))
    out.extend(elementwise_ratios(elementwise))
    for s in (e2e or {}).get("summary", []):
        name = f"fit_step_{s['model']}_{s['optimizer']}"
        detail = f"{s['variables']} variables, {s['parameters']:,} parameters"
        if s.get("keras_class") and s.get("pyoptim.keras_class") and s["keras_class"] != s["pyoptim.keras_class"]:
            detail += f"; keras.optimizers.{s['keras_class']} vs pyoptim.keras.{s['pyoptim.keras_class']}"
        if s.get("skipped"):
            out.append(_ratio(name, None, "keras step / pyoptim.keras step (x)", f"skipped: {s['reason']}"))
            continue
        if "keras.xla_over_pyoptim" in s:
            detail += f"; keras.xla / pyoptim.keras {s['keras.xla_over_pyoptim']:.2f}x"
        if "keras_over_floor" in s:
            detail += f"; at most {s['keras_over_floor']:.2f}x (keras / a step without update)"
        out.append(_ratio(name, s.get("keras_over_pyoptim"), "keras step / pyoptim.keras step (x)", detail))
    return out


def eightbit_ratios(eb: Optional[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """The 8-bit part's ratios (see headline_ratios)."""
    if not eb:
        return []
    out: List[Dict[str, Any]] = []
    case, d = eb["case"], eb["default_block_size"]
    rows = eb["rows"]
    t8 = _row(rows, f"pyoptim.Adam8bit/b{d}")

    def detail(a: Optional[Dict[str, Any]], b: Optional[Dict[str, Any]]) -> str:
        if a and b and a.get("available") and b.get("available"):
            return f"{fmt_time(a['median_s'])} / {fmt_time(b['median_s'])}"
        return "not measured: " + "; ".join(f"{r['impl']}: {r.get('reason')}" for r in (a, b)
                                             if r and not r.get("available"))

    out.append(_ratio(f"adam_over_adam8bit_{case}", eb["adam_over_adam8bit"],
                      f"pyoptim.Adam / pyoptim.Adam8bit (block {d}) step (x)", detail(_row(rows, "pyoptim.Adam"), t8)))
    out.append(_ratio(f"adam8bit_roofline_fraction_{case}", eb["roofline_fraction"],
                      "8-bit roofline C loop / Adam8bit step (fraction; 1.0 = as fast as moving its bytes)",
                      detail(_row(rows, "roofline.adam8bit"), t8)))
    for b, r in eb["block_size_over_default"].items():
        if int(b) != d:
            out.append(_ratio(f"adam8bit_block{b}_over_block{d}_{case}", r,
                              f"Adam8bit step at block_size {b} / at {d} (x; < 1: faster)",
                              detail(_row(rows, f"pyoptim.Adam8bit/b{b}"), t8)))
    mem = eb.get("memory")
    if mem:
        out.append(_ratio(f"adam8bit_state_over_adam_{mem['n_elements']:.0e}".replace("+0", ""), eb["state_over_adam"],
                          f"Adam8bit (block {d}) / Adam slot bytes (x)"))
    peers = eb.get("peers")
    if peers:
        mine = _row(peers["rows"], "pyoptim.Adam8bit")
        for p, r in peers["peer_over_pyoptim"].items():
            theirs = next((x for x in peers["rows"] if x["impl"].startswith(p + ".")), None)
            extra = f", {p} {theirs['version']}" if theirs and theirs.get("version") else ""
            out.append(_ratio(f"peer_{p}_adam8bit_over_pyoptim_{case}", r,
                              f"{theirs['impl'] if theirs else p} / pyoptim.Adam8bit step, CPU, "
                              f"{peers['n_elements']:,} elements (x)", detail(theirs, mine) + extra))
    return out


def eightbit_table(eb: Optional[Dict[str, Any]]) -> str:
    """The 8-bit part: the step cell (per implementation and block size), the state bytes, the peers."""
    if not eb:
        return ""
    d = eb["default_block_size"]
    lines = ["", f"== Adam with 8-bit state, one tensor of {eb['case']} float32 elements (median step; bytes/element: "
             f"Adam {eb['bytes_per_element']['adam']}, Adam8bit 16 + 16/block; 'vs 8bit' = time / "
             f"Adam8bit (block {d})'s) ==",
             f"{'implementation':<24} {'block':>5} {'B/elem':>7} {'median':>10} {'IQR':>10} {'min':>10} {'GB/s':>7} "
             f"{'vs 8bit':>8}"]

    def line(r: Dict[str, Any], ratio_key: str = "over_adam8bit_default") -> str:
        block = str(r.get("block_size") or "-")
        bpe = r.get("bytes_per_element")
        head = f"{r['impl']:<24} {block:>5} {(f'{bpe:.4g}' if bpe else '-'):>7}"
        if not r.get("available"):
            return f"{head} unavailable: {str(r.get('reason', ''))[:90]}"
        ratio = f"{r[ratio_key]:.2f}x" if r.get(ratio_key) is not None else "-"
        gbps = f"{r['gbps']:.2f}" if r.get("gbps") is not None else "-"
        return (f"{head} {fmt_time(r['median_s']):>10} {fmt_time(r['iqr_s']):>10} {fmt_time(r['min_s']):>10} "
                f"{gbps:>7} {ratio:>8}")

    lines.extend(line(r) for r in eb["rows"])
    shown = [f"Adam / Adam8bit {eb['adam_over_adam8bit']:.2f}x" if eb["adam_over_adam8bit"] is not None else None,
             f"roofline / Adam8bit {100 * eb['roofline_fraction']:.0f}%" if eb["roofline_fraction"] is not None
             else None]
    lines.append("(" + "; ".join(x for x in shown if x) + ")" if any(shown) else "")
    mem = eb.get("memory")
    if mem:
        lines += ["", f"state bytes for one tensor of {mem['n_elements']:,} elements (opt.slots: every slot array "
                  "and scale; opt.variables adds the 8-byte iterations)",
                  f"{'optimizer':<24} {'block':>5} {'slot bytes':>12} {'B/param':>8} {'vs Adam':>8}"]
        for name, r in mem["rows"].items():
            lines.append(f"{name:<24} {str(r['block_size'] or '-'):>5} {r['slot_bytes']:>12,} "
                         f"{r['bytes_per_parameter']:>8.4f} {r['over_adam']:>8.4f}")
    peers = eb.get("peers")
    if peers:
        lines += ["", f"CPU 8-bit Adams, one tensor of {peers['n_elements']:,} elements, block 256 "
                  f"('vs pyoptim' = time / pyoptim.Adam8bit's; > 1: pyoptim faster)",
                  f"{'implementation':<28} {'version':>8} {'median':>10} {'IQR':>10} {'min':>10} {'state bytes':>12} "
                  f"{'vs pyoptim':>10}"]
        mine = _row(peers["rows"], "pyoptim.Adam8bit")
        for r in peers["rows"]:
            head = f"{r['impl']:<28} {str(r.get('version', '-')):>8}"
            if not r.get("available"):
                lines.append(f"{head} unavailable: {str(r.get('reason', ''))[:100]}")
                continue
            ratio = (f"{r['median_s'] / mine['median_s']:.2f}x" if mine and mine.get("available") else "-")
            note = f"  (first step {r['first_step_s']:.1f} s: torch.compile)" if r.get("first_step_s", 0) > 1 else ""
            lines.append(f"{head} {fmt_time(r['median_s']):>10} {fmt_time(r['iqr_s']):>10} {fmt_time(r['min_s']):>10} "
                         f"{r.get('state_bytes', 0):>12,} {ratio:>10}{note}")
    return "\n".join(lines)


def ratios_table(ratios: List[Dict[str, Any]]) -> str:
    if not ratios:
        return ""
    lines = ["", "== ratios ([fused-step], [low-bit-state], element-wise optimizers; > 1 means pyoptim faster, "
                 "except where the meaning says otherwise) =="]
    for r in ratios:
        m = "-" if r["measured"] is None else f"{r['measured']:.2f}x"
        detail = f"  [{r['detail']}]" if r.get("detail") else ""
        lines.append(f"{r['name']:<44} {m:>8}  {r['meaning']}{detail}")
    return "\n".join(lines)


_SPARSE_MODES = {"tf.function": ("keras", "pyoptim.keras"), "eager": ("keras.eager", "pyoptim.keras.eager")}


def _sparse_cell(sparse: Dict[str, Any], opt: str, mode: str) -> tuple:
    """(keras row, pyoptim.keras row) of one optimizer and mode (None when not in the run)."""
    k, p = _SPARSE_MODES[mode]
    rows = {r["impl"]: r for r in sparse["rows"] if r["optimizer"] == opt}
    return rows.get(k), rows.get(p)


def _sparse_detail(sparse: Dict[str, Any], opt: str, mode: str) -> str:
    """Both medians, the classes when they differ (LazyAdam vs Adam), whether pyoptim.keras
    ran Keras' update for the sparse gradient, or why a row is not measured."""
    k, p = _sparse_cell(sparse, opt, mode)
    parts = []
    for row in (k, p):
        if row is not None and not row.get("available"):
            parts.append(f"{row['impl']} not measured: {row.get('reason')}")
    if k and p and k.get("available") and p.get("available"):
        parts.append(f"{fmt_time(k['median_s'])} / {fmt_time(p['median_s'])}")
    if k and k.get("stand_in_for"):
        parts.append(f"keras.optimizers.{k['optimizer_class']} vs pyoptim.keras.{k['stand_in_for']}")
    if p and p.get("available") and p.get("fast_path") is False:
        parts.append("pyoptim.keras ran Keras' update (fallback)")
    return "; ".join(parts)


def sparse_table(sparse: Optional[Dict[str, Any]]) -> str:
    """Per optimizer and mode: pyoptim.keras' and keras.optimizers' median step and the ratio."""
    if not sparse:
        return ""
    title = (f"== sparse gradient: apply_gradients of one tf.IndexedSlices ({sparse['indices']} Zipf ids, "
             f"{sparse['unique_indices']} distinct) to a {sparse['case']} float32 table (median step; "
             f"'keras/pyoptim' > 1: pyoptim faster) ==")
    lines = ["", title, f"{'optimizer':<16} {'mode':<11} {'pyoptim.keras':>13} {'keras':>10} {'keras/pyoptim':>13}"]
    for opt, modes in sparse["keras_over_pyoptim"].items():
        for mode, ratio in modes.items():
            k, p = _sparse_cell(sparse, opt, mode)
            cells = [fmt_time(r["median_s"]) if r and r.get("available") else "-" for r in (p, k)]
            shown = f"{ratio:.2f}x" if ratio is not None else "-"
            if p and p.get("missing_class"):  # neither timed: no pyoptim.keras class to compare with
                notes = [f"skipped: {p['missing_class']}"]
            else:
                notes = [f"{r['impl']}: {r.get('reason')}" for r in (p, k) if r is not None and not r.get("available")]
            if k and k.get("stand_in_for"):
                notes.append(f"keras: keras.optimizers.{k['optimizer_class']}, which has no {k['stand_in_for']}")
            if p and p.get("available") and p.get("fast_path") is False:
                notes.append("pyoptim.keras: Keras' update (fallback)")
            lines.append(f"{opt:<16} {mode:<11} {cells[0]:>13} {cells[1]:>10} {shown:>13}"
                         + (f"  ({'; '.join(notes)})" if notes else ""))
    return "\n".join(lines)


def adamw_table(adamw: Optional[Dict[str, Any]]) -> str:
    if not adamw:
        return ""
    lines = ["", f"== AdamW vs Adam, one tensor of {adamw['case']} elements (median step) ==",
             f"{'implementation':<15} {'adam':>10} {'adamw':>10} {'adamw/adam':>10}"]
    for impl, ratio in adamw["adamw_over_adam"].items():
        rows = {r["optimizer"]: r for r in adamw["rows"] if r["impl"] == impl}
        cells = [fmt_time(rows[o]["median_s"]) if rows[o]["available"] else "-" for o in ("adam", "adamw")]
        shown = f"{ratio:.3f}x" if ratio is not None else "-"
        why = next((r.get("reason") for r in rows.values() if not r["available"]), None)
        lines.append(f"{impl:<15} {cells[0]:>10} {cells[1]:>10} {shown:>10}" + (f"  ({why})" if why else ""))
    return "\n".join(lines)


def fmt_time(s: Optional[float]) -> str:
    if s is None or (isinstance(s, float) and math.isnan(s)):
        return "-"
    if s < 1e-6:
        return f"{s * 1e9:.0f} ns"
    if s < 1e-3:
        return f"{s * 1e6:.2f} us" if s < 1e-5 else f"{s * 1e6:.1f} us"
    if s < 1:
        return f"{s * 1e3:.2f} ms" if s < 1e-2 else f"{s * 1e3:.1f} ms"
    return f"{s:.2f} s"


def micro_table(micro: List[Dict[str, Any]], optimizers: List[str], cases: List[str], impls: List[str]) -> str:
    """One block per optimizer; per size, one line per implementation."""
    lines: List[str] = []
    head = (f"{'size':>9} {'implementation':<19} {'median':>10} {'IQR':>10} {'min':>10} {'GB/s':>7} {'roofline':>8} "
            f"{'vs ref':>8}")
    for opt in optimizers:
        lines.append("")
        lines.append(f"== {opt} (float32, {bytes_per_element(opt)} bytes/element; 'vs ref' = time / pyoptim's time) ==")
        lines.append(head)
        for case in cases:
            rows = [r for r in micro if r["optimizer"] == opt and r["case"] == case]
            if not rows:
                continue
            order = {name: i for i, name in enumerate(impls)}
            rows.sort(key=lambda r: order.get(r["impl"], 99))
            for r in rows:
                if not r.get("available"):
                    lines.append(f"{case:>9} {r['impl']:<19} {'unavailable: ' + str(r.get('reason', ''))[:60]}")
                    continue
                gbps = f"{r['gbps']:.2f}" if r.get("gbps") is not None else "-"
                frac = f"{100 * r['roofline_fraction']:.0f}%" if r.get("roofline_fraction") is not None else "-"
                ratio = f"{r['ratio_to_reference']:.2f}x" if r.get("ratio_to_reference") is not None else "-"
                lines.append(f"{case:>9} {r['impl']:<19} {fmt_time(r['median_s']):>10} {fmt_time(r['iqr_s']):>10} "
                             f"{fmt_time(r['min_s']):>10} {gbps:>7} {frac:>8} {ratio:>8}")
            lines.append("")
    return "\n".join(lines)


def e2e_table(e2e: Optional[Dict[str, Any]]) -> str:
    if not e2e:
        return ""
    if not e2e.get("results"):
        return f"\n== model.fit epoch time: unavailable ({e2e.get('unavailable', 'no result')}) =="
    lines = ["", "== model.fit (median over epochs; step = epoch / steps; 'vs pyoptim' = time / pyoptim.keras' time) ==",
             f"{'model':<11} {'vars':>4} {'params':>11} {'optimizer':<16} {'implementation':<15} {'epoch':>10} "
             f"{'step':>10} {'IQR':>10} {'vs pyoptim':>10}"]
    res = e2e["results"]
    for r in res:
        head = f"{r['model']:<11} {r['variables']:>4} {r['parameters']:>11,} {r['optimizer']:<16} {r['impl']:<15}"
        if r.get("skipped"):
            lines.append(f"{head} skipped: {r['reason']}")
            continue
        ref = next((x for x in res if x["model"] == r["model"] and x["optimizer"] == r["optimizer"]
                    and x["impl"] == "pyoptim.keras" and not x.get("skipped")), None)
        ratio = f"{r['epoch_median_s'] / ref['epoch_median_s']:.2f}x" if ref else "-"
        lines.append(f"{head} {fmt_time(r['epoch_median_s']):>10} {fmt_time(r['step_median_s']):>10} "
                     f"{fmt_time(r['epoch_iqr_s']):>10} {ratio:>10}")
    stand_ins = {}
    for r in res:
        pk = next((x for x in res if x["model"] == r["model"] and x["optimizer"] == r["optimizer"]
                   and x["impl"] == "pyoptim.keras" and x.get("optimizer_class")), None)
        if r["impl"] == "keras" and pk and r.get("optimizer_class") and r["optimizer_class"] != pk["optimizer_class"]:
            stand_ins[r["optimizer"]] = (pk["optimizer_class"], r["optimizer_class"])
    for opt, (mine, theirs) in stand_ins.items():
        lines.append(f"({opt}: keras.optimizers has no {mine}; its keras and keras.no_update rows run "
                     f"keras.optimizers.{theirs})")
    if e2e.get("unavailable"):
        lines.append(f"(pyoptim.keras unavailable: {e2e['unavailable']})")
    return "\n".join(lines)


def targets_table(ts: List[Dict[str, Any]]) -> str:
    lines = ["", "== targets (issue 5, [fused-step], [low-bit-state] and the element-wise optimizers; reported, "
                 "not asserted) =="]
    width = max([32] + [len(t["name"]) for t in ts])
    for t in ts:
        m = t["measured"]
        ms = "-" if m is None else (f"{m:.3g} {t['unit']}")
        status = {True: "met", False: "MISSED", None: "not measured"}[t["met"]]
        detail = f"  [{t['detail']}]" if t.get("detail") else ""
        lines.append(f"{t['name']:<{width}} {t['target']:<50} {ms:>12}  {status}{detail}")
    return "\n".join(lines)
