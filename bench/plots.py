"""PNG plots with matplotlib's Agg backend (no display needed)."""
from __future__ import annotations

import os
from typing import Any, Dict, List, Optional

STYLE = {  # implementation -> (color, linestyle, marker)
    "pyoptim.fn": ("#d62728", "-", "o"),
    "pyoptim.apply": ("#ff7f0e", "-", "s"),
    "pyoptim.keras": ("#e377c2", "-", "D"),
    "numpy": ("#7f7f7f", "-", "v"),
    "tf.raw_ops": ("#2ca02c", "-", "^"),
    "keras": ("#17becf", "-", "<"),
    "pyoptim.keras.eager": ("#f7b6d2", ":", "d"),
    "keras.eager": ("#9edae5", ":", "<"),
    "keras.xla": ("#8c564b", "-", "X"),
    "keras.no_update": ("#c7c7c7", "-", None),
    "torch.foreach": ("#1f77b4", "-", ">"),
    "torch.fused": ("#9467bd", "-", "P"),
    "roofline": ("#000000", "--", None),
}


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _rows(micro, opt, impl, multi: bool):
    rows = [r for r in micro if r["optimizer"] == opt and r["impl"] == impl and r.get("available")
            and (r["n_tensors"] > 1) == multi]
    return sorted(rows, key=lambda r: r["n_elements"])


def _multi_label(micro: List[Dict[str, Any]]) -> str:
    labels = sorted({r["case"] for r in micro if r["n_tensors"] > 1})
    return ", ".join(labels) if labels else ""


def _legend_below(fig, axes) -> None:
    handles = {}  # one handle per label, the first axes' that has it
    for ax in axes:
        for h, label in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(label, h)
    fig.legend(list(handles.values()), list(handles.keys()), loc="lower center", ncol=min(9, len(handles)),
               fontsize=8, frameon=False)


def _finish(fig, path: str, suptitle: str, legend_axes=None, bottom: float = 0.08) -> None:
    """Title, layout (leaving ``bottom`` for the shared legend below ``legend_axes``'
    lines, when given), then write ``path`` and close the figure."""
    if legend_axes is not None:
        _legend_below(fig, legend_axes)
    fig.suptitle(suptitle, fontsize=9)
    fig.tight_layout(rect=(0, bottom, 1, 1) if legend_axes is not None else None)
    fig.savefig(path, dpi=110)
    _plt().close(fig)


def plot_time_vs_size(micro: List[Dict[str, Any]], optimizers: List[str], impls: List[str], path: str,
                      title: str) -> None:
    """Time per step against elements, log-log, one line per implementation, one panel
    per optimizer; the multi-tensor case (100 tensors) as hollow markers at its total."""
    plt = _plt()
    fig, axes = plt.subplots(1, len(optimizers), figsize=(5.2 * len(optimizers), 4.6), squeeze=False)
    for ax, opt in zip(axes[0], optimizers):
        for impl in impls:
            color, ls, marker = STYLE.get(impl, ("#bcbd22", "-", "x"))
            rows = _rows(micro, opt, impl, False)
            if rows:
                ax.plot([r["n_elements"] for r in rows], [r["median_s"] for r in rows], color=color, ls=ls,
                        marker=marker, ms=4, label=impl, lw=1.5 if impl != "roofline" else 1.2)
            multi = _rows(micro, opt, impl, True)
            if multi:
                ax.plot([r["n_elements"] for r in multi], [r["median_s"] for r in multi], ls="none",
                        marker=marker or "_", ms=8, mfc="none", mec=color, mew=1.5)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("float32 elements per step")
        ax.set_ylabel("time per step (s)")
        ax.set_title(opt)
        ax.grid(True, which="both", alpha=0.25)
    multi = _multi_label(micro)
    _finish(fig, path, title + "\nlines: one tensor" + (f"; hollow markers: {multi} tensors (multi-tensor), at "
                                                         "their total size" if multi else ""),
            legend_axes=axes[0], bottom=0.07)


def plot_bandwidth(micro: List[Dict[str, Any]], optimizers: List[str], impls: List[str], path: str,
                   title: str) -> None:
    """Effective GB/s (the optimizer's traffic / time) against elements, one tensor."""
    plt = _plt()
    fig, axes = plt.subplots(1, len(optimizers), figsize=(5.2 * len(optimizers), 4.2), squeeze=False)
    for ax, opt in zip(axes[0], optimizers):
        for impl in impls:
            color, ls, marker = STYLE.get(impl, ("#bcbd22", "-", "x"))
            rows = [r for r in _rows(micro, opt, impl, False) if r.get("gbps")]
            if rows:
                ax.plot([r["n_elements"] for r in rows], [r["gbps"] for r in rows], color=color, ls=ls,
                        marker=marker, ms=4, label=impl)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("float32 elements per step")
        ax.set_ylabel("effective GB/s")
        ax.set_title(opt)
        ax.grid(True, which="both", alpha=0.25)
    _finish(fig, path, title + "\neffective GB/s = the optimizer's bytes moved per step / time per step",
            legend_axes=axes[0])


def plot_speedup(micro: List[Dict[str, Any]], optimizers: List[str], cases: List[str], impls: List[str],
                 path: str, title: str) -> None:
    """Bars: each implementation's time / pyoptim's time (pyoptim.fn for one tensor,
    pyoptim.apply for 100 tensors), per size; pyoptim.keras is compared with keras."""
    import numpy as np

    plt = _plt()
    others = [i for i in impls if not i.startswith("pyoptim") and i != "roofline"]
    fig, axes = plt.subplots(len(optimizers), 1, figsize=(max(8, 1.3 * len(cases) + 3), 3.3 * len(optimizers)),
                             squeeze=False)
    for ax, opt in zip(axes[:, 0], optimizers):
        x = np.arange(len(cases))
        pairs = [p for p in ("keras/pyoptim.keras", "keras.xla/pyoptim.keras", "keras.eager/pyoptim.keras.eager")
                 if p.split("/")[0] in impls]
        series = others + pairs
        width = 0.8 / max(1, len(series))
        for k, impl in enumerate(series):
            vals = []
            for case in cases:
                if "/" in impl:
                    a = _one(micro, opt, case, impl.split("/")[0])
                    b = _one(micro, opt, case, impl.split("/")[1])
                    vals.append(a["median_s"] / b["median_s"] if a and b else np.nan)
                else:
                    a = _one(micro, opt, case, impl)
                    vals.append(a.get("ratio_to_reference") if a and a.get("ratio_to_reference") else np.nan)
            color = STYLE.get(impl.split("/")[0], ("#e377c2", "-", None))[0]
            ax.bar(x + (k - (len(series) - 1) / 2) * width, vals, width,
                   label=impl.replace("/", " vs ") if "/" in impl else impl, color=color,
                   hatch="//" if "/" in impl else None,
                   edgecolor="white" if "/" not in impl else "black", lw=0.5)
        ax.axhline(1.0, color="black", lw=0.8)
        ax.set_yscale("log")
        ax.set_xticks(x)
        ax.set_xticklabels(cases)
        ax.set_ylabel("speedup of pyoptim (x)")
        ax.set_title(opt, fontsize=10)
        ax.grid(True, axis="y", which="both", alpha=0.25)
    axes[0][0].legend(fontsize=7, ncol=4, loc="upper left")
    _finish(fig, path, title + "\nbar = other's time / pyoptim's time (> 1: pyoptim faster)")


def _one(micro, opt, case, impl) -> Optional[Dict[str, Any]]:
    for r in micro:
        if r["optimizer"] == opt and r["case"] == case and r["impl"] == impl and r.get("available"):
            return r
    return None


#: Tick labels of the zoo's optimizers whose names are long (the embedding model's).
E2E_TICKS = {"sgd_no_momentum": "sgd\n(no momentum)", "rmsprop_momentum": "rmsprop\n(momentum)",
             "lazyadam": "lazyadam\n(keras: Adam)"}


def plot_e2e(e2e: Dict[str, Any], path: str, title: str) -> None:
    """Bars: median model.fit step time (epoch / steps) per model and optimizer, per
    implementation; skipped cells (e.g. no pyoptim.keras.AdamW) are left out."""
    import numpy as np

    plt = _plt()
    res = [r for r in e2e.get("results", []) if not r.get("skipped")]
    models = list(dict.fromkeys(r["model"] for r in res))
    cols = min(2, len(models))  # the zoo's five models on a grid of 2 columns
    nrows = -(-len(models) // cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(6 * cols, 3.6 * nrows + 0.6), squeeze=False)
    for ax in axes.flat[len(models):]:
        ax.set_visible(False)
    for ax, model in zip(axes.flat, models):
        rows = [r for r in res if r["model"] == model]
        opts = list(dict.fromkeys(r["optimizer"] for r in rows))
        impls = list(dict.fromkeys(r["impl"] for r in rows))
        x = np.arange(len(opts))
        width = 0.8 / max(1, len(impls))
        for k, impl in enumerate(impls):
            picked = [next((r for r in rows if r["optimizer"] == o and r["impl"] == impl), None) for o in opts]
            per = [1e3 / r["steps_per_epoch"] if r else 0.0 for r in picked]  # epoch s -> step ms
            vals = [r["epoch_median_s"] * f if r else np.nan for r, f in zip(picked, per)]
            err = [[(r["epoch_median_s"] - r["epoch_q1_s"]) * f if r else 0 for r, f in zip(picked, per)],
                   [(r["epoch_q3_s"] - r["epoch_median_s"]) * f if r else 0 for r, f in zip(picked, per)]]
            ax.bar(x + (k - (len(impls) - 1) / 2) * width, vals, width, yerr=err, capsize=3,
                   error_kw={"elinewidth": 0.8},
                   label=impl + (" (jit_compile=True)" if impl == "keras.xla" else ""),
                   color=STYLE.get(impl, ("#bcbd22",))[0])
        ax.set_xticks(x)
        ax.set_xticklabels([E2E_TICKS.get(o, o) for o in opts], fontsize=8 if len(opts) > 4 else None)
        ax.set_ylabel("step time (ms)")
        params = rows[0]["parameters"] if rows else 0
        nvars = rows[0].get("variables", 0) if rows else 0
        ax.set_title(f"{model} ({nvars} variables, {params:,} parameters)", fontsize=10)
        ax.grid(True, axis="y", alpha=0.25)
    _finish(fig, path, title + "\nbars: median step time (epoch time / steps); whiskers: quartiles",
            legend_axes=list(axes.flat[:len(models)]), bottom=0.06)


def write_all(results: Dict[str, Any], out_dir: str) -> List[str]:
    """Write every plot that has data into ``out_dir``; return the file names."""
    micro = results.get("micro", [])
    s = results["settings"]
    m = results["machine"]
    title = (f"pyoptim bench ({s['mode']}), {m.get('cpu_model')}, {s['threads']} threads, "
             f"{m.get('date', '')[:10]}")
    opts, cases, impls = s["optimizers"], s["cases"], s["implementations"]
    written = []
    if micro:
        for name, fn in (("time_vs_size.png", lambda p: plot_time_vs_size(micro, opts, impls, p, title)),
                         ("bandwidth.png", lambda p: plot_bandwidth(micro, opts, impls, p, title)),
                         ("speedup.png", lambda p: plot_speedup(micro, opts, cases, impls, p, title))):
            fn(os.path.join(out_dir, name))
            written.append(name)
    if results.get("e2e") and any(not r.get("skipped") for r in results["e2e"].get("results", [])):
        plot_e2e(results["e2e"], os.path.join(out_dir, "e2e.png"), title)
        written.append("e2e.png")
    return written
