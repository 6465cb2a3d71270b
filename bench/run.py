#!/usr/bin/env python
"""pyoptim's benchmark suite: one command.

    python bench/run.py                 # full suite (several minutes), results in bench/results/
    python bench/run.py --quick         # smoke test, about a minute (what CI runs)
    python bench/run.py --out DIR       # results.json, table.txt and PNG plots in DIR

Per optimizer (SGD with momentum, RMSprop, Adam), float32, per size (1, 1e3 ... 1e7
elements, and 100 tensors x 1e3), it times pyoptim's NumPy API (functional and
stateful multi-tensor), pyoptim.keras and keras.optimizers (apply_gradients in a
tf.function, and eagerly), TF's fused kernels (tf.raw_ops.ResourceApply*), plain NumPy,
torch.optim (foreach and fused, if torch is installed) and the memory roofline (a C loop
with the same traffic, compiled here); then AdamW's step against Adam's per pyoptim API;
then the element-wise optimizers (Adadelta, Adagrad, Adamax, Ftrl, Lamb, Lion, Nadam: pyoptim's NumPy
API, pyoptim.keras vs keras.optimizers in tf.function and eagerly, torch's Adagrad, their roofline);
then Adam with 8-bit block-wise state (pyoptim.Adam8bit against pyoptim.Adam, the roofline of
its 16 bytes/element, block sizes 64-2048, state bytes, bitsandbytes' and torchao's CPU 8-bit
Adams); then apply_gradients of a sparse gradient (tf.IndexedSlices, 1280 Zipf ids into a 200000 x 64
table) with pyoptim.keras and keras.optimizers (Adam, RMSprop and SGD with momentum, SGD,
LazyAdam vs Adam); then model.fit epoch and step times with pyoptim.keras and
keras.optimizers over the model zoo (pipeline, heavy, many_small, transformer) x (SGD,
RMSprop, Adam, AdamW) and the embedding model x the sparse optimizers.  See
bench/README.md for the method and every column.

Only the sparse-gradient parts, quickly:

    python bench/run.py --quick --no-micro --no-adamw --e2e-models embedding

Only the element-wise optimizers (also: python bench/elementwise.py --optimizers lion,adagrad):

    python bench/run.py --no-micro --no-adamw --no-8bit --no-sparse --no-e2e --no-plots \
        --elementwise-optimizers lion,adagrad --elementwise-sizes 1e6,1e7,100x1e3

Only the 8-bit state part, at 1e7:

    python bench/run.py --no-micro --no-adamw --no-sparse --no-e2e --no-elementwise --no-plots
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import time
from typing import Any, Dict, List, Optional


def parse_args(argv: Optional[List[str]]) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="bench/run.py", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true",
                    help="smoke test: sizes 1, 1e4, 1e6 and 10x1e3, few rounds, AdamW-vs-Adam and 8-bit at 1e5, the "
                         "element-wise optimizers at 10x1e3, shrunk zoo (every optimizer on pipeline and embedding, "
                         "Adam on the others)")
    ap.add_argument("--out", metavar="DIR", default=None,
                    help="directory for results.json, table.txt and the PNGs (default: bench/results)")
    ap.add_argument("--threads", type=int, default=None,
                    help="threads for every implementation (default: $OMP_NUM_THREADS, else the usable CPUs)")
    ap.add_argument("--optimizers", default="sgd,rmsprop,adam", help="comma-separated subset of sgd,rmsprop,adam")
    ap.add_argument("--sizes", default=None,
                    help="comma-separated cases, e.g. '1,1e3,1e7,100x1e3' (default: all, or the quick set)")
    ap.add_argument("--impls", default=None, help="comma-separated subset of the implementations")
    ap.add_argument("--rounds", type=int, default=None, help="interleaved rounds per cell (default 30; quick 5)")
    ap.add_argument("--min-sample-ms", type=float, default=None,
                    help="minimum duration of one timed sample (default 2 ms; quick 0.5 ms)")
    ap.add_argument("--cell-budget", type=float, default=None,
                    help="seconds of timing per cell before stopping early (default 20; quick 2)")
    ap.add_argument("--settle-ms", type=float, default=0.0,
                    help="idle time before each timed sample, so that other implementations' spinning worker "
                         "threads go to sleep first (default 0)")
    ap.add_argument("--sample-warmup", type=int, default=1,
                    help="untimed samples of the same implementation right before each timed sample, so "
                         "that samples see the implementation's steady state, not the previous one's "
                         "spinning threads (default 1; 0 times each sample right after the previous "
                         "implementation)")
    ap.add_argument("--omp-wait-policy", choices=("default", "passive", "active"), default="default",
                    help="set OMP_WAIT_POLICY for every OpenMP runtime (pyoptim, the C loop, torch); 'default' "
                         "leaves the environment as it is.  On a busy machine 'passive' avoids multi-millisecond "
                         "stalls of parallel regions (see README)")
    ap.add_argument("--e2e-rounds", type=int, default=None, help="timed epochs per implementation (default 9; quick 2)")
    ap.add_argument("--e2e-models", default=None,
                    help="comma-separated subset of the model.fit zoo: pipeline,heavy,many_small,transformer,"
                         "embedding (default: all)")
    ap.add_argument("--e2e-optimizers", default=None,
                    help="comma-separated subset of sgd,rmsprop,adam,adamw (the dense models) and "
                         "sgd,adam,sgd_no_momentum,rmsprop_momentum,lazyadam (embedding) for the model.fit zoo "
                         "(default: all; quick runs every optimizer on pipeline and embedding and Adam on the "
                         "other models)")
    ap.add_argument("--adamw-size", type=float, default=None,
                    help="elements of the AdamW-vs-Adam step comparison (default 1e7; quick 1e5)")
    ap.add_argument("--no-adamw", action="store_true", help="skip the AdamW-vs-Adam step comparison")
    ap.add_argument("--8bit-size", dest="eightbit_size", type=float, default=None,
                    help="elements of the 8-bit state part (pyoptim.Adam8bit vs Adam, its roofline, block sizes, "
                         "bitsandbytes / torchao; default 1e7; quick 1e5)")
    ap.add_argument("--no-8bit", dest="no_8bit", action="store_true",
                    help="skip the 8-bit state part (Adam8bit)")
    ap.add_argument("--no-8bit-peers", dest="no_8bit_peers", action="store_true",
                    help="in the 8-bit part, skip bitsandbytes' and torchao's 8-bit Adams")
    ap.add_argument("--elementwise-optimizers", default=None,
                    help="comma-separated subset of adadelta,adagrad,adamax,ftrl,lamb,lion,nadam for the "
                         "element-wise part (default: all)")
    ap.add_argument("--elementwise-sizes", default=None,
                    help="size cases of the element-wise part (default '1e6,1e7,100x1e3'; quick '10x1e3')")
    ap.add_argument("--no-elementwise", action="store_true",
                    help="skip the element-wise optimizers' part (Adadelta ... Nadam)")
    ap.add_argument("--no-sparse", action="store_true",
                    help="skip the sparse-gradient (tf.IndexedSlices) apply_gradients comparison")
    ap.add_argument("--no-e2e", action="store_true", help="skip the model.fit benchmark")
    ap.add_argument("--no-micro", action="store_true", help="skip the per-step benchmark")
    ap.add_argument("--no-plots", action="store_true", help="write no PNG")
    args = ap.parse_args(argv)
    return args


def _default_threads() -> int:
    env = os.environ.get("OMP_NUM_THREADS", "")
    if env.strip().isdigit() and int(env) > 0:
        return int(env)
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def main(argv: Optional[List[str]] = None) -> int:
    t_start = time.time()
    args = parse_args(argv)
    threads = args.threads or _default_threads()
    if threads < 1:
        print("error: --threads must be >= 1", file=sys.stderr)
        return 2
    if args.sample_warmup < 0:
        print("error: --sample-warmup must be >= 0", file=sys.stderr)
        return 2
    # Before any OpenMP runtime or TensorFlow is loaded:
    os.environ["OMP_NUM_THREADS"] = str(threads)
    if args.omp_wait_policy != "default":
        os.environ["OMP_WAIT_POLICY"] = args.omp_wait_policy.upper()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("TORCHINDUCTOR_COMPILE_THREADS", "1")  # torchao's step: compile in-process
    here = os.path.dirname(os.path.abspath(__file__))
    if here not in sys.path:
        sys.path.insert(0, here)

    import numpy as np  # noqa: F401  (after OMP_NUM_THREADS)

    import harness
    import machine
    import plots
    import problems
    import report
    from impl_base import Unavailable
    from impl_numpy import NumpyPlain, PyoptimFunctional, PyoptimStateful, Roofline
    from impl_tf import (KerasEager, KerasOptimizers, KerasXLA, PyoptimKeras, PyoptimKerasEager, TFRawOps,
                         baseline_classes, init_tensorflow, keras_classes, missing_class_reason, no_update_classes,
                         tf_threads)
    from impl_torch import TorchOptim, torch_threads

    import pyoptim

    pyoptim.set_num_threads(threads)

    quick = args.quick
    optimizers = [o.strip().lower() for o in args.optimizers.split(",") if o.strip()]
    bad = [o for o in optimizers if o not in problems.OPTIMIZERS]
    if bad:
        print(f"error: --optimizers: unknown {', '.join(bad)} (choose from sgd, rmsprop, adam)", file=sys.stderr)
        return 2
    e2e_opts = [o.strip().lower() for o in (args.e2e_optimizers or ",".join(problems.E2E_OPTIMIZERS)).split(",")
                if o.strip()]
    bad = [o for o in e2e_opts if o not in problems.E2E_OPTIMIZERS]
    if bad or not e2e_opts:
        print(f"error: --e2e-optimizers: unknown {', '.join(bad) or '(none given)'} "
              f"(choose from {', '.join(problems.E2E_OPTIMIZERS)})", file=sys.stderr)
        return 2
    import zoo

    e2e_models = [m.strip() for m in (args.e2e_models or ",".join(zoo.MODEL_NAMES)).split(",") if m.strip()]
    bad = [m for m in e2e_models if m not in zoo.MODEL_NAMES]
    if bad or not e2e_models:
        print(f"error: --e2e-models: unknown {', '.join(bad) or '(none given)'} "
              f"(choose from {', '.join(zoo.MODEL_NAMES)})", file=sys.stderr)
        return 2
    from e2e import e2e_plan

    plan = e2e_plan(quick, e2e_opts, e2e_models)
    if not plan and not args.no_e2e:
        print(f"error: --e2e-optimizers: none of {', '.join(e2e_opts)} runs on {', '.join(e2e_models)} "
              "(" + "; ".join(f"{s.name}: {', '.join(s.optimizers)}" for s in zoo.model_specs(quick)
                               if s.name in e2e_models) + ")", file=sys.stderr)
        return 2
    if args.adamw_size is not None and args.adamw_size < 1:
        print("error: --adamw-size must be >= 1", file=sys.stderr)
        return 2
    if args.eightbit_size is not None and args.eightbit_size < 1:
        print("error: --8bit-size must be >= 1", file=sys.stderr)
        return 2
    import adam8bit as eightbit_bench
    import adamw as adamw_bench
    import elementwise as elementwise_bench

    ew_opts = [o.strip().lower() for o in (args.elementwise_optimizers or ",".join(problems.ELEMENTWISE_OPTIMIZERS))
               .split(",") if o.strip()]
    bad = [o for o in ew_opts if o not in problems.ELEMENTWISE_OPTIMIZERS]
    if bad or not ew_opts:
        print(f"error: --elementwise-optimizers: unknown {', '.join(bad) or '(none given)'} "
              f"(choose from {', '.join(problems.ELEMENTWISE_OPTIMIZERS)})", file=sys.stderr)
        return 2
    try:
        ew_cases = [problems.parse_case(s) for s in (args.elementwise_sizes or ",".join(
            elementwise_bench.QUICK_CASES if quick else elementwise_bench.FULL_CASES)).split(",") if s.strip()]
    except ValueError:
        ew_cases = []
    if not ew_cases or any(c.size < 1 or c.n_tensors < 1 for c in ew_cases):
        print(f"error: --elementwise-sizes: cannot parse {args.elementwise_sizes!r} (e.g. 1e6,1e7,100x1e3)",
              file=sys.stderr)
        return 2

    adamw_size = int(args.adamw_size) if args.adamw_size else (adamw_bench.QUICK_SIZE if quick else adamw_bench.FULL_SIZE)
    eightbit_size = int(args.eightbit_size) if args.eightbit_size else \
        (eightbit_bench.QUICK_SIZE if quick else eightbit_bench.FULL_SIZE)
    if args.sizes:
        try:
            cases = [problems.parse_case(s) for s in args.sizes.split(",") if s.strip()]
        except ValueError:
            print(f"error: --sizes: cannot parse {args.sizes!r} (e.g. 1,1e3,100x1e3)", file=sys.stderr)
            return 2
    else:
        sizes = problems.QUICK_SIZES if quick else problems.FULL_SIZES
        multi = problems.QUICK_MULTI if quick else problems.MULTI
        cases = [problems.Case(1, n) for n in sizes] + [problems.Case(*multi)]
    rounds = args.rounds or (5 if quick else 30)
    min_sample_s = (args.min_sample_ms or (0.5 if quick else 2.0)) / 1e3
    budget = args.cell_budget or (2.0 if quick else 20.0)
    e2e_rounds = args.e2e_rounds or (2 if quick else 9)
    out_dir = args.out or os.path.join(here, "results")
    os.makedirs(out_dir, exist_ok=True)

    info = machine.machine_info()
    log(f"pyoptim bench ({'quick' if quick else 'full'}): {info['cpu_model']}, {threads} threads, "
        f"load average {info['load_average_start']}")

    impls = [PyoptimFunctional(), PyoptimStateful(), PyoptimKeras(threads), KerasOptimizers(threads),
             PyoptimKerasEager(threads), KerasEager(threads),
             KerasXLA(threads), TFRawOps(threads), TorchOptim(threads, fused=True),
             TorchOptim(threads, fused=False), NumpyPlain(), Roofline(threads)]
    if args.impls:
        wanted = {x.strip() for x in args.impls.split(",") if x.strip()}
        unknown = wanted - {i.name for i in impls}
        if unknown:
            print(f"error: --impls: unknown {', '.join(sorted(unknown))} "
                  f"(choose from {', '.join(i.name for i in impls)})", file=sys.stderr)
            return 2
        impls = [i for i in impls if i.name in wanted]
    elif quick:  # XLA compiles each cell's update: seconds the smoke test does without
        impls = [i for i in impls if i.name != "keras.xla"]
    # TensorFlow first: its thread pools must be configured before anything starts it.
    phases: Dict[str, float] = {}
    t_phase = time.perf_counter()
    if not args.no_e2e or any(i.group == "tensorflow" or i.name == "pyoptim.keras" for i in impls):
        init_tensorflow(threads)
        log(f"  import tensorflow {time.perf_counter() - t_phase:6.2f} s")
    for impl in impls:
        t0 = time.perf_counter()
        impl.setup()
        state = "ok" if impl.reason is None else f"unavailable: {impl.reason}"
        log(f"  setup {impl.name:<14} {time.perf_counter() - t0:6.2f} s  {state}")

    phases["setup_s"] = time.perf_counter() - t_phase
    t_phase = time.perf_counter()
    micro: List[Dict[str, Any]] = []
    if not args.no_micro:
        for opt in optimizers:
            for case in cases:
                data = problems.make_data(case)
                steps: Dict[str, Any] = {}
                rows: Dict[str, Dict[str, Any]] = {}
                t_cell = time.perf_counter()
                for impl in impls:
                    row = {"optimizer": opt, "case": case.label, "n_tensors": case.n_tensors,
                           "tensor_size": case.size, "n_elements": case.total, "impl": impl.name,
                           "available": False}
                    rows[impl.name] = row
                    if impl.reason is not None:
                        row["reason"] = impl.reason
                        continue
                    try:
                        steps[impl.name] = impl.make(opt, case, data)
                        row.update(getattr(steps[impl.name], "_notes", {}))
                    except Unavailable as e:
                        row["reason"] = str(e)
                    except Exception as e:  # a broken implementation must not stop the others
                        row["reason"] = f"error: {type(e).__name__}: {e}"
                        log(f"  {opt} {case.label} {impl.name}: {row['reason']}")
                stats = harness.measure_interleaved(steps, rounds=rounds, min_rounds=min(3, rounds),
                                                    min_sample_s=min_sample_s, warmup=3, budget_s=budget,
                                                    settle_s=args.settle_ms / 1e3,
                                                    sample_warmup=args.sample_warmup)
                for name, st in stats.items():
                    rows[name].update(available=True, **st.as_dict())
                micro.extend(rows.values())
                best = {n: report.fmt_time(s.median_s) for n, s in stats.items()}
                log(f"  {opt:8s} {case.label:>8s} ({time.perf_counter() - t_cell:5.1f} s): "
                    + ", ".join(f"{n} {t}" for n, t in best.items()))
                del steps, data, stats
                gc.collect()
        report.add_derived(micro)

    phases["micro_s"] = time.perf_counter() - t_phase
    t_phase = time.perf_counter()
    adamw_result = None
    if not args.no_adamw:
        adamw_impls = [i for i in impls if i.name in ("pyoptim.fn", "pyoptim.apply", "pyoptim.keras")]
        if adamw_impls:
            adamw_result = adamw_bench.run_adamw(adamw_impls, adamw_size, rounds=rounds, min_sample_s=min_sample_s,
                                                 budget_s=budget, sample_warmup=args.sample_warmup, log=log)
        gc.collect()
    phases["adamw_s"] = time.perf_counter() - t_phase
    t_phase = time.perf_counter()
    eightbit_result = None
    if not args.no_8bit:
        roof_impl = next((i for i in impls if i.name == "roofline"), None)
        if roof_impl is None:
            roof_impl = Roofline(threads)
            roof_impl.setup()
        eightbit_result = eightbit_bench.run_8bit(
            eightbit_size, threads=threads, roof_lib=roof_impl.lib, roof_reason=roof_impl.reason, rounds=rounds,
            min_sample_s=min_sample_s, budget_s=budget, sample_warmup=args.sample_warmup,
            peers=() if args.no_8bit_peers else eightbit_bench.PEERS, log=log)
        gc.collect()
    phases["8bit_s"] = time.perf_counter() - t_phase
    t_phase = time.perf_counter()
    elementwise_result = None
    if not args.no_elementwise:
        import impl_elementwise

        ew_available = {i.name: i.reason for i in impls if i.name in impl_elementwise.IMPLS}
        if ew_available:
            roof_impl = next((i for i in impls if i.name == "roofline"), None)
            elementwise_result = elementwise_bench.run_elementwise(
                ew_available, ew_opts, ew_cases, threads=threads, roof_lib=roof_impl.lib if roof_impl else None,
                rounds=rounds, min_sample_s=min_sample_s, budget_s=budget, sample_warmup=args.sample_warmup, log=log)
        gc.collect()
    phases["elementwise_s"] = time.perf_counter() - t_phase
    t_phase = time.perf_counter()
    sparse_result = None
    if not args.no_sparse:
        import sparse_apply as sparse_bench

        sparse_impls = [i for i in impls if i.name in sparse_bench.IMPLS]
        if sparse_impls:
            sparse_result = sparse_bench.run_sparse(sparse_impls, rounds=rounds, min_sample_s=min_sample_s,
                                                    budget_s=budget, sample_warmup=args.sample_warmup, log=log)
        gc.collect()
    phases["sparse_s"] = time.perf_counter() - t_phase
    t_phase = time.perf_counter()
    e2e = None
    if not args.no_e2e:
        err = init_tensorflow(threads)
        if err:
            e2e = {"results": [], "unavailable": err}
        else:
            import keras

            from e2e import FLOOR, Variant, run_e2e

            variants: List[Any] = []
            pk_impl = next((i for i in impls if i.name == "pyoptim.keras"), None) or PyoptimKeras(threads)
            if pk_impl.reason is None and not hasattr(pk_impl, "_pk"):
                pk_impl.setup()
            if pk_impl.reason is None:
                pk_classes = keras_classes(pk_impl._pk)
                missing = {o: missing_class_reason(o) for o in problems.E2E_OPTIMIZERS if o not in pk_classes}
                variants.append(Variant("pyoptim.keras", pk_classes, missing))
            variants.append(Variant("keras", baseline_classes(keras.optimizers)))  # lazyadam: Adam
            variants.append(Variant(FLOOR, no_update_classes(keras.optimizers)))
            if not quick:
                variants.append(Variant("keras.xla", keras_classes(keras.optimizers),
                                        compile_kwargs={"jit_compile": True}, xla=True))
            e2e = run_e2e(keras, variants, plan, quick, e2e_rounds, log=log)
            if pk_impl.reason is not None:
                e2e["unavailable"] = pk_impl.reason

    phases["e2e_s"] = time.perf_counter() - t_phase
    impl_names = [i.name for i in impls]
    results: Dict[str, Any] = {
        "schema": "pyoptim-bench/1",
        "settings": {
            "mode": "quick" if quick else "full",
            "threads": threads,
            "thread_settings": {"OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
                                "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY"),
                                "pyoptim": pyoptim.get_num_threads(), "tensorflow": tf_threads(),
                                "torch": torch_threads(), "roofline_c_loop": threads},
            "dtype": "float32",
            "optimizers": optimizers,
            "cases": [c.label for c in cases],
            "implementations": impl_names,
            "hyperparameters": problems.HYPER,
            "rounds": rounds,
            "min_sample_s": min_sample_s,
            "cell_budget_s": budget,
            "settle_s": args.settle_ms / 1e3,
            "warmup_steps": 3,
            "sample_warmup_samples": args.sample_warmup,
            "e2e_rounds": e2e_rounds,
            "e2e_models": e2e_models,
            "e2e_optimizers": e2e_opts,
            "adamw_size": None if args.no_adamw else adamw_size,
            "8bit_size": None if args.no_8bit else eightbit_size,
            "8bit_block_sizes": None if args.no_8bit else list(eightbit_bench.BLOCK_SIZES),
            "sparse_optimizers": None if args.no_sparse else list(problems.SPARSE_OPTIMIZERS),
            "elementwise_optimizers": None if args.no_elementwise else ew_opts,
            "elementwise_cases": None if args.no_elementwise else [c.label for c in ew_cases],
            "method": "warm-up; samples of >= min_sample_s (batched steps), each preceded by sample_warmup "
                      "untimed samples of the same implementation; round-robin interleaving of all "
                      "implementations per round with rotating order; median, quartiles, IQR",
        },
        "machine": info,
        "implementations": {i.name: i.info() for i in impls},
        "micro": micro,
        "adamw": adamw_result,
        "adam8bit": eightbit_result,
        "elementwise": elementwise_result,
        "sparse": sparse_result,
        "e2e": e2e,
    }
    results["targets"] = report.targets(micro, e2e, adamw_result, eightbit_result, elementwise_result)
    results["ratios"] = report.headline_ratios(micro, e2e, adamw_result, sparse_result, eightbit_result,
                                               elementwise_result)
    results["machine"]["load_average_end"] = machine.load_average()
    results["duration_s"] = round(time.time() - t_start, 2)
    results["phases_s"] = {k: round(v, 2) for k, v in phases.items()}

    table = "\n".join([
        report.micro_table(micro, optimizers, [c.label for c in cases], impl_names) if micro else "",
        report.adamw_table(adamw_result),
        report.eightbit_table(eightbit_result),
        report.elementwise_table(elementwise_result),
        report.sparse_table(sparse_result),
        report.e2e_table(e2e),
        report.ratios_table(results["ratios"]),
        report.targets_table(results["targets"]),
        "",
        f"threads: {threads} for every implementation; load average {info['load_average_start']} -> "
        f"{results['machine']['load_average_end']}; {results['duration_s']:.0f} s "
        f"({', '.join(f'{k[:-2]} {v:.0f} s' for k, v in phases.items())})",
    ])
    print(table, flush=True)
    with open(os.path.join(out_dir, "table.txt"), "w") as f:
        f.write(table + "\n")
    written: List[str] = []
    if not args.no_plots:
        t_phase = time.perf_counter()
        try:
            written = plots.write_all(results, out_dir)
        except ImportError as e:
            log(f"no plots: matplotlib not importable ({e}); `pip install matplotlib`")
        results["phases_s"]["plots_s"] = round(time.perf_counter() - t_phase, 2)
    results["duration_s"] = round(time.time() - t_start, 2)
    with open(os.path.join(out_dir, "results.json"), "w") as f:
        json.dump(results, f, indent=1, default=_json_default, allow_nan=False)
    log(f"wrote {os.path.join(out_dir, 'results.json')}, table.txt" + (", " + ", ".join(written) if written else "")
        + f" ({results['duration_s']:.0f} s in all)")
    return 0


def _json_default(x: Any) -> Any:
    try:
        import numpy as np

        if isinstance(x, np.generic):
            return x.item()
    except ImportError:
        pass
    return str(x)


if __name__ == "__main__":
    sys.exit(main())
