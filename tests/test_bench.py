"""The benchmark suite (bench/run.py) as a smoke test: it runs, and what it writes is
well-formed.  No timing is asserted anywhere: the numbers depend on the machine."""
from __future__ import annotations

import json
import math
import os
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"
RUN = BENCH / "run.py"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _bench_import(name: str):
    sys.path.insert(0, str(BENCH))
    try:
        return __import__(name)
    finally:
        sys.path.remove(str(BENCH))


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    proc = subprocess.run([sys.executable, str(RUN), "--quick", "--out", str(out)], capture_output=True,
                          text=True, timeout=900, cwd=str(out), env=env)
    assert proc.returncode == 0, f"bench/run.py --quick failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
    return out, proc


def _finite_positive(x) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x) and x > 0


def test_quick_writes_json_with_every_cell(quick_run):
    out, _ = quick_run
    res = json.loads((out / "results.json").read_text())
    assert res["schema"] == "pyoptim-bench/1"
    s = res["settings"]
    assert s["mode"] == "quick" and s["dtype"] == "float32"
    assert s["optimizers"] == ["sgd", "rmsprop", "adam"]
    assert s["cases"] == ["1", "1e4", "1e6", "10x1e3"]
    assert s["threads"] >= 1 and s["thread_settings"]["pyoptim"] == s["threads"]
    assert s["thread_settings"]["OMP_NUM_THREADS"] == str(s["threads"])
    assert s["thread_settings"]["tensorflow"] == {"intra_op": s["threads"], "inter_op": s["threads"]}

    m = res["machine"]
    for key in ("cpu_model", "logical_cpus", "python", "packages", "env", "load_average_start", "date"):
        assert key in m, key
    assert isinstance(m["pyoptim"], dict) and "isa" in m["pyoptim"] and "num_threads" in m["pyoptim"]
    assert "OPENBLAS_CORETYPE" in m["env"] and "OPENBLAS_L2_SIZE" in m["env"]

    impls = s["implementations"]
    for must in ("pyoptim.fn", "pyoptim.apply", "keras", "keras.eager", "tf.raw_ops", "numpy", "roofline"):
        assert must in impls
        assert res["implementations"][must]["available"], res["implementations"][must]
    cells = {(r["optimizer"], r["case"], r["impl"]): r for r in res["micro"]}
    assert len(cells) == len(res["micro"]) == 3 * 4 * len(impls)
    for (opt, case, impl), r in cells.items():
        if not r["available"]:
            assert r["reason"], r  # says why
            continue
        assert _finite_positive(r["median_s"]), r
        assert r["min_s"] <= r["q1_s"] <= r["median_s"] <= r["q3_s"] <= r["max_s"], r
        assert math.isclose(r["iqr_s"], r["q3_s"] - r["q1_s"], rel_tol=1e-9, abs_tol=1e-15)
        assert r["samples"] >= 3 and r["steps_per_sample"] >= 1
        assert r["n_elements"] == r["n_tensors"] * r["tensor_size"]
        bpe = {"sgd": 20, "rmsprop": 20, "adam": 28}[opt]
        assert r["bytes_per_step"] == bpe * r["n_elements"]
        assert math.isclose(r["gbps"], r["bytes_per_step"] / r["median_s"] / 1e9, rel_tol=1e-9)
        roof = cells[(opt, case, "roofline")]
        assert math.isclose(r["roofline_fraction"], roof["median_s"] / r["median_s"], rel_tol=1e-9)
        ref = cells[(opt, case, "pyoptim.apply" if r["n_tensors"] > 1 else "pyoptim.fn")]
        assert math.isclose(r["ratio_to_reference"], r["median_s"] / ref["median_s"], rel_tol=1e-9)
    # Every pyoptim/NumPy/TF implementation ran in every cell; only torch may be absent.
    for (opt, case, impl), r in cells.items():
        if impl in ("pyoptim.fn", "pyoptim.apply", "keras", "keras.eager", "tf.raw_ops", "numpy", "roofline"):
            assert r["available"], r
    assert "pyoptim.keras.eager" in impls
    if res["implementations"]["pyoptim.keras"]["available"]:
        for (opt, case, impl), r in cells.items():
            if impl in ("pyoptim.keras", "pyoptim.keras.eager"):
                assert r["available"] and r["fast_path"] is True, r  # the kernels ran, not Keras' fallback
    if not res["implementations"]["torch.fused"]["available"]:
        assert "torch" in res["implementations"]["torch.fused"]["reason"]
    else:
        assert not cells[("rmsprop", "1", "torch.fused")]["available"]  # torch has no fused RMSprop


def _pyoptim_keras_has(res, cls: str) -> bool:
    """Whether the run's pyoptim.keras is available and has ``cls`` (asked of the installed
    package, as the benchmark does)."""
    if not res["implementations"]["pyoptim.keras"]["available"]:
        return False
    import pyoptim.keras

    return hasattr(pyoptim.keras, cls)


def test_quick_e2e_zoo(quick_run):
    out, _ = quick_run
    res = json.loads((out / "results.json").read_text())
    e2e = res["e2e"]
    models = {m["name"]: m for m in e2e["models"]}
    assert list(models) == ["pipeline", "heavy", "many_small", "transformer", "embedding"]
    # quick sizes: 10-layer MLP (2 * 10 + 2 variables), 2-block encoder (16 * 2 + 4)
    assert models["many_small"]["variables"] == 22 and models["transformer"]["variables"] == 36
    assert models["pipeline"]["parameters"] == (10 + 1) * 64 + (64 + 1) * 3 and models["pipeline"]["rows"] == 1000
    assert not models["many_small"]["xla"] and not models["transformer"]["xla"] and not models["embedding"]["xla"]
    # the sparse-gradient model: Embedding(200000, 64) + Dense(64) + Dense(1), its own optimizers and loss
    assert models["embedding"]["parameters"] == 200_000 * 64 + (64 + 1) * 64 + (64 + 1)
    assert models["embedding"]["variables"] == 5 and models["embedding"]["batch_size"] == 64
    assert models["embedding"]["loss"] == "binary_crossentropy"
    assert models["embedding"]["optimizers"] == ["adam", "rmsprop_momentum", "sgd", "sgd_no_momentum", "lazyadam"]
    assert models["heavy"]["optimizers"] == ["sgd", "rmsprop", "adam", "adamw"]
    rows = e2e["results"]
    # quick plan: every optimizer on the pipeline and the embedding model, Adam on the others;
    # pyoptim.keras and keras
    want = [("pipeline", o) for o in ("sgd", "rmsprop", "adam", "adamw")] + \
           [(m, "adam") for m in ("heavy", "many_small", "transformer")] + \
           [("embedding", o) for o in ("sgd", "adam", "sgd_no_momentum", "rmsprop_momentum", "lazyadam")]
    assert [(s["model"], s["optimizer"]) for s in e2e["summary"]] == want
    pk_available = res["implementations"]["pyoptim.keras"]["available"]
    missing = {opt: cls for opt, cls in (("adamw", "AdamW"), ("lazyadam", "LazyAdam"))
               if pk_available and not _pyoptim_keras_has(res, cls)}
    for model, opt in want:
        cell = {r["impl"]: r for r in rows if r["model"] == model and r["optimizer"] == opt}
        summary = next(s for s in e2e["summary"] if (s["model"], s["optimizer"]) == (model, opt))
        assert set(cell) == ({"pyoptim.keras", "keras", "keras.no_update"} if pk_available
                             else {"keras", "keras.no_update"}), cell
        for r in cell.values():
            assert r["variables"] == models[model]["variables"] and r["parameters"] == models[model]["parameters"]
        if opt in missing:
            # recorded, not timed: no pyoptim.keras.AdamW / LazyAdam to compare with
            assert all(r["skipped"] and missing[opt] in r["reason"] for r in cell.values()), cell
            assert summary["skipped"] and missing[opt] in summary["reason"]
            continue
        for r in cell.values():
            assert r["skipped"] is False
            assert _finite_positive(r["epoch_median_s"]) and r["epochs_timed"] >= 2
            assert r["steps_per_epoch"] == -(-r["rows"] // r["batch_size"])
            assert math.isclose(r["step_median_s"], r["epoch_median_s"] / r["steps_per_epoch"], rel_tol=1e-12)
            assert math.isfinite(r["final_loss"])
        # the floor's steps update nothing: its model ends where it started, Keras' trains
        assert cell["keras.no_update"]["final_loss"] != cell["keras"]["final_loss"]
        # keras.optimizers has no LazyAdam: its keras rows run Adam (and the floor NoUpdateAdam)
        keras_cls = {"sgd_no_momentum": "SGD", "rmsprop_momentum": "RMSprop", "lazyadam": "Adam"}.get(
            opt, {"sgd": "SGD", "rmsprop": "RMSprop", "adam": "Adam", "adamw": "AdamW"}.get(opt))
        assert cell["keras"]["optimizer_class"] == summary["keras_class"] == keras_cls
        assert cell["keras.no_update"]["optimizer_class"] == "NoUpdate" + keras_cls
        assert math.isclose(summary["keras_over_floor"],
                            cell["keras"]["step_median_s"] / cell["keras.no_update"]["step_median_s"],
                            rel_tol=1e-12)
        if pk_available:
            assert cell["pyoptim.keras"]["path_counts"]["fast"] > 0
            assert cell["pyoptim.keras"]["optimizer_class"] == ("LazyAdam" if opt == "lazyadam" else keras_cls)
            assert math.isclose(summary["keras_over_pyoptim"],
                                cell["keras"]["step_median_s"] / cell["pyoptim.keras"]["step_median_s"],
                                rel_tol=1e-12)


def test_quick_micro_eager_and_adamw(quick_run):
    out, _ = quick_run
    res = json.loads((out / "results.json").read_text())
    eager = [r for r in res["micro"] if r["impl"] in ("keras.eager", "pyoptim.keras.eager")]
    assert {(r["optimizer"], r["case"]) for r in eager if r["impl"] == "keras.eager" and r["available"]} == \
        {(o, c) for o in ("sgd", "rmsprop", "adam") for c in ("1", "1e4", "1e6", "10x1e3")}
    adamw = res["adamw"]
    assert adamw["case"] == "1e5" and res["settings"]["adamw_size"] == 10**5
    assert {(r["impl"], r["optimizer"]) for r in adamw["rows"]} == \
        {(i, o) for i in ("pyoptim.fn", "pyoptim.apply", "pyoptim.keras") for o in ("adam", "adamw")}
    for r in adamw["rows"]:
        if r["impl"] != "pyoptim.keras" or r["optimizer"] == "adam" or _pyoptim_keras_has(res, "AdamW"):
            if r["impl"] != "pyoptim.keras" or res["implementations"]["pyoptim.keras"]["available"]:
                assert r["available"] and _finite_positive(r["median_s"]), r
        else:
            assert not r["available"] and "AdamW" in r["reason"], r
    for impl, ratio in adamw["adamw_over_adam"].items():
        rows = {r["optimizer"]: r for r in adamw["rows"] if r["impl"] == impl}
        if rows["adam"]["available"] and rows["adamw"]["available"]:
            assert math.isclose(ratio, rows["adamw"]["median_s"] / rows["adam"]["median_s"], rel_tol=1e-12)
        else:
            assert ratio is None


def test_quick_sparse_apply_gradients(quick_run):
    """The sparse-gradient comparison: one tf.IndexedSlices of 1280 Zipf ids into a 200000 x 64
    table, per optimizer, keras.optimizers vs pyoptim.keras, in tf.function and eagerly."""
    out, _ = quick_run
    res = json.loads((out / "results.json").read_text())
    sp = res["sparse"]
    opts = ["adam", "rmsprop_momentum", "sgd", "sgd_no_momentum", "lazyadam"]
    assert res["settings"]["sparse_optimizers"] == opts
    assert sp["case"] == "200000x64" and sp["table_shape"] == [200_000, 64] and sp["indices"] == 64 * 20
    assert 1 < sp["unique_indices"] < sp["indices"]  # Zipf: many repeated ids
    impls = ("pyoptim.keras", "keras", "pyoptim.keras.eager", "keras.eager")
    cells = {(r["optimizer"], r["impl"]): r for r in sp["rows"]}
    assert set(cells) == {(o, i) for o in opts for i in impls} and len(cells) == len(sp["rows"])
    pk_available = res["implementations"]["pyoptim.keras"]["available"]
    has_lazy = _pyoptim_keras_has(res, "LazyAdam")
    for (opt, impl), r in cells.items():
        assert r["mode"] == ("eager" if impl.endswith(".eager") else "tf.function")
        assert r["hyperparameters"] == res["settings"]["hyperparameters"][opt]
        if opt == "lazyadam" and pk_available and not has_lazy:
            # no pyoptim.keras.LazyAdam: its rows say why, Keras' Adam is not timed (no ratio)
            assert not r["available"] and "LazyAdam" in r["reason"], r
            assert r["reason"].startswith("not timed") == impl.startswith("keras"), r
            continue
        if impl.startswith("pyoptim") and not pk_available:
            assert not r["available"] and r["reason"], r
            continue
        assert r["available"], r
        assert _finite_positive(r["median_s"]) and r["samples"] >= 3
        assert r["min_s"] <= r["q1_s"] <= r["median_s"] <= r["q3_s"] <= r["max_s"], r
        if impl.startswith("pyoptim"):
            assert isinstance(r["fast_path"], bool) and set(r["path_counts"]) >= {"fast", "fallback"}
            keras_cls = cells[(opt, "keras")]["optimizer_class"]
            assert r["optimizer_class"] == ("LazyAdam" if opt == "lazyadam" else keras_cls)
        else:  # keras.optimizers has no LazyAdam: Adam stands in
            assert r["optimizer_class"] == {"adam": "Adam", "rmsprop_momentum": "RMSprop", "sgd": "SGD",
                                            "sgd_no_momentum": "SGD", "lazyadam": "Adam"}[opt]
            assert r.get("stand_in_for") == ("LazyAdam" if opt == "lazyadam" else None)
    assert list(sp["keras_over_pyoptim"]) == opts
    for opt, modes in sp["keras_over_pyoptim"].items():
        assert list(modes) == ["tf.function", "eager"]
        for mode, ratio in modes.items():
            k, p = (("keras", "pyoptim.keras") if mode == "tf.function" else ("keras.eager", "pyoptim.keras.eager"))
            if cells[(opt, p)]["available"]:
                assert math.isclose(ratio, cells[(opt, k)]["median_s"] / cells[(opt, p)]["median_s"], rel_tol=1e-12)
            else:
                assert ratio is None
    ratios = {r["name"]: r for r in res["ratios"]}
    for opt in opts:
        for mode in ("tf.function", "eager"):
            assert ratios[f"sparse_apply_{opt}_{mode}"]["measured"] == sp["keras_over_pyoptim"][opt][mode]
    table = (out / "table.txt").read_text()
    assert "== sparse gradient: apply_gradients of one tf.IndexedSlices (1280 Zipf ids" in table
    if has_lazy:
        assert "keras: keras.optimizers.Adam, which has no LazyAdam" in table


def test_sparse_case_and_missing_class():
    """The sparse case's ids repeat (Zipf) and stay in the table; a pyoptim.keras without
    LazyAdam gives the row a reason naming it, and keras.optimizers' stand-in is Adam."""
    sparse = _bench_import("sparse_apply")
    impl_tf = _bench_import("impl_tf")
    case = sparse.make_case()
    ids = case["indices"]
    assert ids.dtype == np.int32 and ids.shape == (1280,) and ids.min() >= 0 and ids.max() < 200_000
    assert case["table"].shape == (200_000, 64) and case["values"].shape == (1280, 64)
    assert np.unique(ids).size < 640 and np.mean(ids == 1) > 0.1  # a few ids take most of the batch

    class Keras:  # stands for keras.optimizers: no LazyAdam
        SGD, RMSprop, Adam, AdamW = "SGD", "RMSprop", "Adam", "AdamW"

    class Old:  # a pyoptim.keras from before LazyAdam
        SGD, RMSprop, Adam, AdamW = "SGD", "RMSprop", "Adam", "AdamW"

    assert "lazyadam" not in impl_tf.keras_classes(Old)
    assert impl_tf.baseline_classes(Keras)["lazyadam"] == "Adam"
    assert impl_tf.keras_classes(Keras)["sgd_no_momentum"] == "SGD"
    assert "LazyAdam" in impl_tf.missing_class_reason("lazyadam")
    e2e = _bench_import("e2e")
    spec = next(s for s in _bench_import("zoo").model_specs(quick=True) if s.name == "embedding")
    why = impl_tf.missing_class_reason("lazyadam")
    old = e2e.Variant("pyoptim.keras", impl_tf.keras_classes(Old), {"lazyadam": why})
    assert "LazyAdam" in e2e._skip_reason(spec, "lazyadam", [old])
    assert e2e._skip_reason(spec, "adam", [old]) is None


def test_quick_ratios_and_targets(quick_run):
    out, _ = quick_run
    res = json.loads((out / "results.json").read_text())
    ratios = {r["name"]: r for r in res["ratios"]}
    for name in ("apply_gradients_adam_10x1e3_tf.function", "apply_gradients_adam_10x1e3_eager",
                 "keras_path_vs_numpy_adam_1e6", "adamw_over_adam_1e5_pyoptim.fn",
                 "fit_step_transformer_adam", "fit_step_many_small_adam", "fit_step_heavy_adam",
                 "fit_step_pipeline_adamw", "fit_step_embedding_adam", "fit_step_embedding_lazyadam",
                 "fit_step_embedding_sgd_no_momentum", "sparse_apply_lazyadam_tf.function",
                 "sparse_apply_adam_eager", "adam_over_adam8bit_1e5", "adam8bit_roofline_fraction_1e5",
                 "adam8bit_block64_over_block256_1e5", "adam8bit_block2048_over_block256_1e5",
                 "adam8bit_state_over_adam_1e7", "peer_bitsandbytes_adam8bit_over_pyoptim_1e5",
                 "peer_torchao_adam8bit_over_pyoptim_1e5"):
        assert name in ratios, sorted(ratios)
    micro = {(r["optimizer"], r["case"], r["impl"]): r for r in res["micro"]}
    if res["implementations"]["pyoptim.keras"]["available"]:
        want = micro[("adam", "10x1e3", "keras.eager")]["median_s"] / \
            micro[("adam", "10x1e3", "pyoptim.keras.eager")]["median_s"]
        assert math.isclose(ratios["apply_gradients_adam_10x1e3_eager"]["measured"], want, rel_tol=1e-12)
        assert _finite_positive(ratios["fit_step_transformer_adam"]["measured"])
    names = [t["name"] for t in res["targets"]]
    for name in ("adam_1e7_roofline_fraction", "fit_epoch_heavy_adam", "adamw_vs_adam_1e7", "adam8bit_vs_adam_1e7",
                 "adam8bit_1e7_roofline_fraction", "adam8bit_state_memory_1e7"):
        assert name in names
    for t in res["targets"]:
        assert t["met"] in (True, False, None)
        assert (t["measured"] is None) == (t["met"] is None)
    assert next(t for t in res["targets"] if t["name"] == "adamw_vs_adam_1e7")["met"] is None  # quick: 1e5
    for name in ("adam8bit_vs_adam_1e7", "adam8bit_1e7_roofline_fraction"):  # quick: timed at 1e5
        t = next(t for t in res["targets"] if t["name"] == name)
        assert t["met"] is None and "measured at 1e5" in t["detail"], t
    mem = next(t for t in res["targets"] if t["name"] == "adam8bit_state_memory_1e7")  # bytes: always at 1e7
    assert mem["met"] is True and math.isclose(mem["measured"], res["adam8bit"]["state_over_adam"])
    assert res["duration_s"] > 0


def test_full_zoo_models_have_many_variables():
    """The full-size zoo models (built, not trained) have the variables the issue asks for."""
    import keras

    zoo = _bench_import("zoo")
    specs = {s.name: s for s in zoo.model_specs(quick=False)}
    counts = {}
    for name in ("many_small", "transformer", "embedding"):
        model = specs[name].build(keras)
        counts[name] = (len(model.trainable_variables), sum(int(np.prod(v.shape)) for v in model.trainable_variables))
    assert counts["many_small"] == (202, 100 * (64 * 64 + 64) + 64 * 10 + 10)
    assert counts["transformer"][0] == 16 * 12 + 4 >= 150
    x, y = specs["transformer"].data(5)
    assert x.shape == (5, 32, 16) and y.shape == (5,) and x.dtype == np.float32
    assert counts["embedding"] == (5, 200_000 * 64 + 64 * 64 + 64 + 64 + 1)
    emb = specs["embedding"]
    assert (emb.rows, emb.batch_size, emb.loss, emb.xla) == (1024, 64, "binary_crossentropy", False)
    x, y = emb.data(emb.rows)
    assert x.shape == (1024, 20) and x.dtype == np.int32 and 0 <= x.min() and x.max() < 200_000
    assert np.unique(x[:64]).size < 64 * 20 // 2  # a batch's ids repeat (Zipf)
    assert set(np.unique(y)) == {0.0, 1.0}


def test_e2e_plan():
    e2e = _bench_import("e2e")
    models = ["pipeline", "heavy", "many_small", "transformer"]
    opts = ["sgd", "rmsprop", "adam", "adamw"]
    assert e2e.e2e_plan(False, opts, models) == [(m, o) for m in models for o in opts]
    assert e2e.e2e_plan(True, opts, ["heavy"]) == [("heavy", "adam")]
    assert e2e.e2e_plan(True, ["sgd"], ["heavy"]) == [("heavy", "sgd")]
    sparse_opts = ["adam", "rmsprop_momentum", "sgd", "sgd_no_momentum", "lazyadam"]
    every = opts + ["sgd_no_momentum", "rmsprop_momentum", "lazyadam"]
    # each model takes its own optimizers; the dense models' cells are as before
    assert e2e.e2e_plan(False, every, models) == [(m, o) for m in models for o in opts]
    assert e2e.e2e_plan(False, every, ["embedding"]) == \
        [("embedding", o) for o in ("sgd", "adam", "sgd_no_momentum", "rmsprop_momentum", "lazyadam")]
    assert e2e.e2e_plan(True, sparse_opts, ["heavy", "embedding"]) == \
        [("heavy", "adam")] + [("embedding", o) for o in sparse_opts]
    assert e2e.e2e_plan(True, ["adamw"], ["embedding"]) == []


def test_quick_writes_table_and_pngs(quick_run):
    out, proc = quick_run
    table = (out / "table.txt").read_text()
    assert "== adam (float32, 28 bytes/element" in table and "roofline" in table
    assert "== model.fit (median over epochs" in table and "targets" in table
    assert "== AdamW vs Adam, one tensor of 1e5 elements" in table and "== ratios" in table
    assert "transformer" in table and "many_small" in table and "keras.eager" in table
    assert "embedding" in table and "sgd_no_momentum" in table and "== sparse gradient" in table
    assert table.strip() in proc.stdout
    for name in ("time_vs_size.png", "bandwidth.png", "speedup.png", "e2e.png"):
        data = (out / name).read_bytes()
        assert data[:8] == PNG_SIGNATURE, name
        assert data[12:16] == b"IHDR"
        width, height = struct.unpack(">II", data[16:24])
        assert width >= 400 and height >= 300, (name, width, height)
        assert data[-8:-4] == b"IEND", name


def test_bad_arguments_exit_2(tmp_path):
    for argv in (["--optimizers", "adamw"], ["--sizes", "big"], ["--impls", "jax"], ["--sample-warmup", "-1"],
                 ["--e2e-models", "resnet"], ["--e2e-optimizers", "nadam"], ["--adamw-size", "0"], ["--8bit-size", "0"],
                 ["--e2e-optimizers", "adamw", "--e2e-models", "embedding"]):
        proc = subprocess.run([sys.executable, str(RUN), *argv, "--out", str(tmp_path)], capture_output=True,
                              text=True, timeout=300, cwd=str(tmp_path))
        assert proc.returncode == 2, (argv, proc.stderr[-2000:])
        assert "error: --" + argv[0][2:] in proc.stderr


def test_harness_statistics():
    harness = _bench_import("harness")
    st = harness.summarize([5.0, 1.0, 3.0, 2.0, 4.0], 7)
    assert (st.min_s, st.q1_s, st.median_s, st.q3_s, st.max_s) == (1.0, 2.0, 3.0, 4.0, 5.0)
    assert st.iqr_s == 2.0 and st.samples == 5 and st.steps_per_sample == 7
    one = harness.summarize([0.5], 1)
    assert one.median_s == one.q1_s == one.q3_s == 0.5 and one.iqr_s == 0.0

    calls = {"a": 0, "b": 0}
    order = []

    def make(name):
        def step():
            calls[name] += 1
            order.append(name)
        return step

    stats = harness.measure_interleaved({"a": make("a"), "b": make("b")}, rounds=4, min_sample_s=0.0, warmup=2,
                                        sample_warmup=0)
    assert set(stats) == {"a", "b"} and all(s.samples == 4 for s in stats.values())
    timed = order[-8:]  # the four rounds, one sample of one step each, rotating order
    assert timed == ["a", "b", "b", "a", "a", "b", "b", "a"]
    order.clear()
    harness.measure_interleaved({"a": make("a"), "b": make("b")}, rounds=4, min_sample_s=0.0, warmup=2)
    # By default one untimed step of the same implementation precedes each sample.
    assert order[-16:] == ["a", "a", "b", "b", "b", "b", "a", "a", "a", "a", "b", "b", "b", "b", "a", "a"]


@pytest.mark.parametrize("steps_per_sample", [1, 4])
def test_harness_sample_warmup_is_not_timed(monkeypatch, steps_per_sample):
    """A step that is slow right after another implementation ran (cold) and fast when it
    follows itself (steady state): with the per-sample warm-up (one untimed sample of the
    same k steps) only steady-state steps are timed; without it every sample starts with a
    cold step.  A fake clock makes this exact."""
    harness = _bench_import("harness")
    clock = {"now": 0.0, "last": None}
    warm_s = 2.0 ** -10  # exact in binary, like every sum below

    class FakeTime:
        @staticmethod
        def perf_counter():
            return clock["now"]

        @staticmethod
        def sleep(s):
            clock["now"] += s

    monkeypatch.setattr(harness, "time", FakeTime)

    def make(name):
        def step():
            clock["now"] += warm_s if clock["last"] == name else 1.0
            clock["last"] = name
        return step

    steps = {"a": make("a"), "b": make("b"), "c": make("c")}
    min_sample_s = warm_s * steps_per_sample  # the probe sees warm steps: k = steps_per_sample
    warm = harness.measure_interleaved(steps, rounds=6, min_sample_s=min_sample_s, warmup=2)
    assert all(s.steps_per_sample == steps_per_sample for s in warm.values())
    assert all(s.median_s == s.max_s == warm_s for s in warm.values())
    cold = harness.measure_interleaved(steps, rounds=6, min_sample_s=min_sample_s, warmup=2, sample_warmup=0)
    # Three implementations in rotating order: every sample follows another implementation.
    first_cold = (1.0 + (steps_per_sample - 1) * warm_s) / steps_per_sample
    assert all(s.min_s == s.median_s == first_cold for s in cold.values())


def test_case_labels():
    problems = _bench_import("problems")
    assert problems.parse_case("1e7") == problems.Case(1, 10**7)
    assert problems.parse_case("100x1e3") == problems.Case(100, 1000)
    assert [problems.Case(1, n).label for n in problems.FULL_SIZES] == ["1", "1e3", "1e4", "1e5", "1e6", "1e7"]
    assert problems.Case(100, 1000).label == "100x1e3" and problems.Case(100, 1000).total == 10**5


@pytest.mark.parametrize("optimizer", ["sgd", "rmsprop", "adam"])
@pytest.mark.parametrize("n_tensors", [1, 5])
def test_roofline_loop_moves_the_optimizer_arrays(optimizer, n_tensors):
    """The C loop reads and writes exactly the arrays it claims (checked against NumPy),
    in serial and parallel mode, over one or several tensors."""
    roofline = _bench_import("roofline")
    lib = roofline.build()
    rng = np.random.default_rng(3)
    sizes = [1, 17, 40_000, 3, 70_001][:n_tensors] if n_tensors > 1 else [70_001]
    nstate = roofline.N_STATES[optimizer]
    params = [rng.standard_normal(n, dtype=np.float32) for n in sizes]
    grads = [rng.standard_normal(n, dtype=np.float32) for n in sizes]
    states = [[rng.standard_normal(n, dtype=np.float32) for n in sizes] for _ in range(nstate)]
    a, c = np.float32(0.9), np.float32(1e-3)
    want_p, want_s = [], []
    for i in range(len(sizes)):
        p, g = params[i].copy(), grads[i]
        if nstate == 1:
            s = states[0][i] * a + g * c
            want_p.append(p + s)
            want_s.append([s])
        else:
            m = states[0][i] * a + g * c
            v = states[1][i] * a + g * g * c
            want_p.append(p - m * c + v * c)
            want_s.append([m, v])
    grads_before = [g.copy() for g in grads]
    for nt in (1, 2):
        ps = [p.copy() for p in params]
        ss = [[x.copy() for x in s] for s in states]
        step = roofline.RooflineStep(lib, optimizer, ps, grads, ss, nt)
        step.step()
        for i in range(len(sizes)):
            np.testing.assert_allclose(ps[i], want_p[i], rtol=1e-5, atol=1e-6)
            for k in range(nstate):
                np.testing.assert_allclose(ss[k][i], want_s[i][k], rtol=1e-5, atol=1e-6)
        for g, g0 in zip(grads, grads_before):
            np.testing.assert_array_equal(g, g0)
    assert roofline.bytes_per_element(optimizer) == {"sgd": 20, "rmsprop": 20, "adam": 28}[optimizer]


def test_quick_8bit(quick_run):
    """The 8-bit state part: the step cell (Adam, Adam8bit at every block size, both roofline
    loops), the state bytes at 1e7 (exact), the peers (available or saying why), the table."""
    out, _ = quick_run
    res = json.loads((out / "results.json").read_text())
    assert res["settings"]["8bit_size"] == 10**5 and res["settings"]["8bit_block_sizes"] == [64, 128, 256, 512, 2048]
    eb = res["adam8bit"]
    assert eb["case"] == "1e5" and eb["n_elements"] == 10**5 and eb["default_block_size"] == 256
    rows = {r["impl"]: r for r in eb["rows"]}
    names = ["pyoptim.Adam"] + [f"pyoptim.Adam8bit/b{b}" for b in (64, 128, 256, 512, 2048)] + \
        ["roofline.adam8bit", "roofline.adam"]
    assert list(rows) == names
    for name, r in rows.items():
        assert r["available"], r
        assert _finite_positive(r["median_s"]) and r["samples"] >= 3
        assert r["min_s"] <= r["q1_s"] <= r["median_s"] <= r["q3_s"] <= r["max_s"], r
        b = r["block_size"]
        want = 28 * 10**5 if b is None else 16 * 10**5 + 16 * -(-10**5 // b)
        assert r["bytes_per_step"] == want, r
        assert math.isclose(r["gbps"], want / r["median_s"] / 1e9, rel_tol=1e-9)
        if name.startswith("pyoptim.Adam8bit"):
            assert r["state_dtypes"] == {"momentums": "int8", "velocities": "uint8", "momentum_scales": "float32",
                                         "velocity_scales": "float32"}
    roof8 = rows["roofline.adam8bit"]
    assert roof8["block_size"] == 256 and roof8["mode"] in ("serial", "parallel")
    t8 = rows["pyoptim.Adam8bit/b256"]["median_s"]
    assert math.isclose(eb["adam_over_adam8bit"], rows["pyoptim.Adam"]["median_s"] / t8, rel_tol=1e-12)
    assert math.isclose(eb["roofline_fraction"], rows["roofline.adam8bit"]["median_s"] / t8, rel_tol=1e-12)
    for b, r in eb["block_size_over_default"].items():
        assert math.isclose(r, rows[f"pyoptim.Adam8bit/b{b}"]["median_s"] / t8, rel_tol=1e-12)
    mem = eb["memory"]
    assert mem["n_elements"] == 10**7
    assert mem["rows"]["pyoptim.Adam"]["slot_bytes"] == 8 * 10**7
    for b in (64, 128, 256, 512, 2048):
        m = mem["rows"][f"pyoptim.Adam8bit/b{b}"]
        assert m["slot_bytes"] == 2 * 10**7 + 2 * 4 * -(-10**7 // b), m
        assert m["variables_bytes"] == m["slot_bytes"] + 8  # + iterations
    assert eb["state_over_adam"] == mem["rows"]["pyoptim.Adam8bit/b256"]["over_adam"] <= 0.27
    peers = eb["peers"]
    assert peers["n_elements"] == 100_096 and peers["n_elements"] % 256 == 0
    prow = {r["impl"]: r for r in peers["rows"]}
    assert list(prow) == ["pyoptim.Adam8bit", "bitsandbytes.optim.Adam8bit", "torchao.optim.Adam8bit"]
    assert prow["pyoptim.Adam8bit"]["available"]
    for peer, impl in (("bitsandbytes", "bitsandbytes.optim.Adam8bit"), ("torchao", "torchao.optim.Adam8bit")):
        r = prow[impl]
        if not r["available"]:
            assert r["reason"] and peers["peer_over_pyoptim"][peer] is None, r
            continue
        assert r["version"] and r["state_bytes"] > 0 and "uint8" in r["state_dtypes"].values(), r
        assert math.isclose(peers["peer_over_pyoptim"][peer], r["median_s"] / prow["pyoptim.Adam8bit"]["median_s"],
                            rel_tol=1e-12)
    table = (out / "table.txt").read_text()
    assert "== Adam with 8-bit state, one tensor of 1e5 float32 elements" in table
    assert "pyoptim.Adam8bit/b2048" in table and "roofline.adam8bit" in table
    assert "CPU 8-bit Adams, one tensor of 100,096 elements" in table


@pytest.mark.parametrize("n_tensors", [1, 4])
@pytest.mark.parametrize("block", [32, 256])
def test_roofline_8bit_loop_moves_the_arrays(n_tensors, block):
    """The 8-bit roofline loop reads and writes p, g, both 1-byte codes and both scales of every
    block (short last blocks included), in serial and parallel mode (checked against NumPy)."""
    roofline = _bench_import("roofline")
    lib = roofline.build()
    rng = np.random.default_rng(5)
    sizes = [1, 300, 40_000, 70_001][:n_tensors] if n_tensors > 1 else [70_001]
    params = [rng.standard_normal(n, dtype=np.float32) for n in sizes]
    grads = [rng.standard_normal(n, dtype=np.float32) for n in sizes]
    ms = [rng.integers(-128, 128, n).astype(np.int8) for n in sizes]
    vs = [rng.integers(0, 256, n).astype(np.uint8) for n in sizes]
    sms = [rng.uniform(0, 1, roofline.num_blocks(n, block)).astype(np.float32) for n in sizes]
    svs = [rng.uniform(0, 1, roofline.num_blocks(n, block)).astype(np.float32) for n in sizes]
    c = np.float32(1e-3)
    want = []
    for p, g, m, v, sm, sv in zip(params, grads, ms, vs, sms, svs):
        am, av = sm * c, sv * c
        k = np.arange(p.size) // block
        wp = p + g * c + m.astype(np.float32) * am[k] + v.astype(np.float32) * av[k]
        want.append((wp, (m.view(np.uint8) + np.uint8(1)).view(np.int8), v + np.uint8(1), am + 1, av + 1))
    for nt in (1, 2):
        ps, ms_, vs_ = [p.copy() for p in params], [m.copy() for m in ms], [v.copy() for v in vs]
        sms_, svs_ = [x.copy() for x in sms], [x.copy() for x in svs]
        roofline.Roofline8bitStep(lib, ps, [g for g in grads], ms_, vs_, sms_, svs_, block, nt).step()
        for i, (wp, wm, wv, wsm, wsv) in enumerate(want):
            np.testing.assert_allclose(ps[i], wp, rtol=1e-5, atol=1e-5)
            np.testing.assert_array_equal(ms_[i], wm)
            np.testing.assert_array_equal(vs_[i], wv)
            np.testing.assert_allclose(sms_[i], wsm, rtol=1e-6)
            np.testing.assert_allclose(svs_[i], wsv, rtol=1e-6)
    assert roofline.bytes_per_element_8bit(256) == 16.0625
    assert roofline.bytes_per_step_8bit([10**7], 256) == 16 * 10**7 + 16 * 39063
    with pytest.raises(ValueError):  # scales of the wrong length
        roofline.Roofline8bitStep(lib, params[:1], grads[:1], ms[:1], vs[:1], [sms[0][:-1]], svs[:1], block, 1)


def test_quant_codes_quick(tmp_path):
    """bench/quant_codes.py --quick: real Adam states of the NumPy MLP, every code at every block
    size, pyoptim's kernel agreeing with the NumPy power code; JSON and table complete."""
    out = tmp_path / "qc.json"
    proc = subprocess.run([sys.executable, str(BENCH / "quant_codes.py"), "--quick", "--out", str(out)],
                          capture_output=True, text=True, timeout=300, cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = json.loads(out.read_text())
    assert doc["schema"] == "pyoptim-quant-codes/1"
    assert doc["settings"]["sources"] == ["numpy_mlp"] and doc["settings"]["block_sizes"] == [64, 128, 256, 512, 2048]
    src = doc["sources"]["numpy_mlp"]
    assert src["elements"] > 0 and all(t["size"] >= 4096 for t in src["tensors"])
    cells = {(r["source"], r["block_size"], r["code"]) for r in doc["results"]}
    for source in ("all", "numpy_mlp"):
        for b in (64, 128, 256, 512, 2048):
            for code in ("linear", "power", "dynamic"):
                assert (source, b, code) in cells
    for r in doc["results"]:
        for key in ("m_rel_error", "sqrt_v_rel_error", "update_rel_error"):
            q = r[key]
            assert 0 <= q["median"] <= q["p90"] <= q["p99"], r
        assert r["update_l2_rel_error"] >= 0 and 0 <= r["v_zero_fraction"] <= 1 and 0 <= r["m_zero_fraction"] <= 1
    assert doc["kernel_check"]["available"] and doc["kernel_check"]["all_equal"], doc["kernel_check"]
    assert "transcription" in doc["settings"]["dynamic_map_source"]  # quick: bitsandbytes (torch) not imported
    assert "== relative error after one 8-bit round trip" in proc.stdout and "power" in proc.stdout
    bad = subprocess.run([sys.executable, str(BENCH / "quant_codes.py"), "--sources", "mnist"], capture_output=True,
                         text=True, timeout=120, cwd=str(tmp_path))
    assert bad.returncode == 2 and "error: --sources" in bad.stderr


def test_quant_codes_power_code_values():
    """The power code's fixed points: the block's largest value codes to +-127 / 255 exactly;
    zero stays zero; round trip of the linear and dynamic codes keeps the block maximum."""
    qc = _bench_import("quant_codes")
    x = np.array([1.0, -1.0, 0.0, 0.25, -0.25, 1 / 16], np.float32)
    q, s = qc.power_encode_signed(x, 32)
    assert s.tolist() == [1.0] and q[:3].tolist() == [127, -127, 0]
    assert q[3] == 64 and q[4] == -64  # sqrt(0.25) * 127 = 63.5: half to even
    dec = qc.power_decode_signed(q, s, 32)
    assert dec[0] == 1.0 and dec[1] == -1.0 and dec[2] == 0.0
    v = np.array([4.0, 0.0, 4.0 / 16], np.float32)
    qv, sv = qc.power_encode_unsigned(v, 32)
    assert sv.tolist() == [4.0] and qv[0] == 255 and qv[1] == 0 and qv[2] == 128  # (1/16)^(1/4) * 255 = 127.5
    assert qc.power_decode_unsigned(qv, sv, 32)[0] == 4.0
    maps, _ = qc.dynamic_maps(use_bitsandbytes=False)
    for signed in (True, False):
        assert maps[signed].shape == (256,) and np.all(np.diff(maps[signed]) >= 0) and maps[signed][-1] == 1.0
        y = x if signed else np.abs(x)
        assert qc.roundtrip_dynamic(y, 32, signed, maps[signed])[0] == 1.0
        assert qc.roundtrip_linear(y, 32, signed)[0] == 1.0


def test_step_profile_quick(tmp_path):
    """bench/step_profile.py on the quick pipeline model with Adam: TensorFlow's profile is read
    (bench/tf_profile.py), pyoptim's step ran its op and the floor's ran none, and the breakdown
    adds up (the train functions' gap = the op + the other ops + the rest)."""
    out = tmp_path / "profile.json"
    proc = subprocess.run([sys.executable, str(BENCH / "step_profile.py"), "--quick", "--models", "pipeline",
                           "--optimizers", "adam", "--rounds", "2", "--profile-epochs", "1", "--out", str(out)],
                          capture_output=True, text=True, timeout=600, cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stderr[-3000:]
    (cell,) = json.loads(out.read_text())["cells"]
    assert (cell["model"], cell["optimizer"]) == ("pipeline", "adam")
    mine, floor = cell["profiles"]["pyoptim.keras"], cell["profiles"]["keras.no_update"]
    assert mine["steps"] == floor["steps"] == 32  # 1000 rows, batch 32, one epoch
    assert mine["op_ms"]["PyoptimApplyAdam"] > 0 and cell["kernel_by_op"] == {"PyoptimApplyAdam": mine["op_ms"]["PyoptimApplyAdam"]}
    assert not any(op.startswith("PyoptimApply") for op in floor["op_ms"])
    assert mine["train_function_ms"] > 0 and floor["train_function_ms"] > 0
    assert math.isclose(cell["function_gap_ms"],
                        cell["kernel_ms"] + cell["other_ops_ms"] + cell["unaccounted_ms"], abs_tol=1e-9)
    assert all(ms > 0 for ms in cell["other_ops_by_type"].values())
    assert cell["step_over_floor"] > 0 and "pipeline    adam" in proc.stdout


def test_quick_elementwise(quick_run):
    """The element-wise part: every optimizer, every implementation of its rows timed (the
    NumPy API, pyoptim.keras in tf.function and eagerly, Keras, the C roofline; torch's fused
    Adagrad where torch is installed), pyoptim.keras on its kernel (no fallback), and the
    bytes per element of each optimizer's pass."""
    out, _ = quick_run
    res = json.loads((out / "results.json").read_text())
    ew = res["elementwise"]
    expected = {"adadelta", "adagrad", "adamax", "ftrl", "lamb", "lion", "nadam"}
    assert set(ew["optimizers"]) == expected
    assert ew["bytes_per_element"] == {"adadelta": 28, "adagrad": 20, "adamax": 28, "ftrl": 28,
                                       "lamb": 40, "lion": 20, "nadam": 28}
    assert all(v["match"] for v in ew["hyperparameters_vs_keras_defaults"].values())
    rows = ew["rows"]
    for name in expected:
        for impl in ("pyoptim.apply", "pyoptim.keras", "keras", "pyoptim.keras.eager",
                     "keras.eager", "roofline"):
            mine = [r for r in rows if r["optimizer"] == name and r["impl"] == impl]
            assert mine and all(r["available"] for r in mine), (name, impl, mine[:1])
            assert all(_finite_positive(r["median_s"]) for r in mine), (name, impl)
        keras_rows = [r for r in rows
                      if r["optimizer"] == name and r["impl"].startswith("pyoptim.keras")]
        assert all(r.get("fast_path") for r in keras_rows), (name, keras_rows[:1])
    summary = {(s["optimizer"], s["case"]): s for s in ew["summary"]}
    assert all(_finite_positive(s["keras_over_pyoptim_keras"]) for s in summary.values())
