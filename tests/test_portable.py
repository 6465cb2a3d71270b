"""pyoptim.keras on every x86-64 CPU (and beyond): the op compiles for every instruction set,
runs its kernels under each one this CPU supports with keras.optimizers' bits, and the test
oracle computes scalars the way TensorFlow does on any CPU.

Nothing here depends on which CPU runs it: the ISAs to run come from the CPU
(``pyoptim.config.config()["isas_supported"]``: baseline and avx2 on an AVX2-only machine, avx512
too on an AVX-512 one), the ISAs to compile from the compiler's target (every ISA pyoptim has
kernels for on x86-64, whether or not this CPU can run them).
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Dict, List

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from keras import ops  # noqa: E402

import pyoptim  # noqa: E402
from pyoptim.keras import _build  # noqa: E402

import reference  # noqa: E402
from test_keras import VARIANTS  # noqa: E402

SUPPORTED = pyoptim.config.config()["isas_supported"]

# --- the reference computes Adam's scalars as TensorFlow does -----------------------------------


def _pairs(count: int) -> List[tuple]:
    """(beta, step) pairs; the betas are float32 numbers, since Keras rounds a Python float
    through float32 before casting it to float64 (README, float64 note)."""
    rng = np.random.default_rng(20261130)
    betas = np.concatenate([rng.uniform(0.5, 0.99999, count - 6),
                            [0.9, 0.999, 0.99, 0.95, 0.8, 0.9999]]).astype(np.float32)
    steps = np.concatenate([rng.integers(1, 2_000_000, count // 2),
                            rng.integers(1, 300, count - count // 2)])
    return list(zip(betas.tolist(), steps.tolist()))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_reference_adam_scalars_are_tensorflows(dtype):
    """For 1500 (beta, step) pairs, the oracle's powers and alpha equal what Keras' Adam computes
    with TensorFlow ops on this CPU (scalar Pow runs libm's pow; NumPy's power may not)."""
    T = np.dtype(dtype).type
    lr, beta_1 = float(np.float32(0.001)), float(np.float32(0.9))
    powers_differ = alphas_differ = numpy_power_differs = 0
    for beta, step in _pairs(1500):
        # keras.optimizers.Adam.update_step's lines, eagerly, on scalars
        local_step = ops.cast(step, dtype)
        power = ops.power(ops.cast(beta, dtype), local_step)
        alpha = ops.cast(lr, dtype) * ops.sqrt(1 - power) / (
            1 - ops.power(ops.cast(beta_1, dtype), local_step))
        ours = reference.libm_pow(T(beta), T(step))
        powers_differ += not np.array_equal(ours, power.numpy())
        numpy_power_differs += not np.array_equal(np.power(T(beta), T(step)), power.numpy())
        alphas_differ += not np.array_equal(
            reference.adam_alpha(step, lr, beta_1, beta, T), T(alpha.numpy()))
    assert (powers_differ, alphas_differ) == (0, 0), (
        f"{powers_differ} powers, {alphas_differ} alphas differ from TensorFlow's "
        f"(NumPy's power differs in {numpy_power_differs})")


# --- the op compiles for every instruction set ----------------------------------------------------

_FUNCTION = re.compile(r"^[0-9a-f]+ <(.*)>:$")
_FMA = re.compile(r"\bvf(n)?m(add|sub)")


def _own_instructions(library: Path) -> List[str]:
    """The disassembled instructions of the op's own functions (names containing pyoptim)."""
    objdump = shutil.which("objdump")
    assert objdump, "objdump (binutils, installed with g++) is needed to inspect the op"
    listing = subprocess.run([objdump, "-d", "-C", "--no-show-raw-insn", str(library)],
                             capture_output=True, text=True, check=True).stdout
    own, keep = [], False
    for line in listing.splitlines():
        match = _FUNCTION.match(line)
        if match:
            keep = "pyoptim" in match.group(1) and "@plt" not in match.group(1)
        elif keep and "\t" in line:
            own.append(line.split("\t", 1)[1])
    return own


def test_compiler_flags_are_written_once():
    """The kernel flags and each instruction set's flags come from CMakeLists.txt alone: the
    NumPy core reports the ones it was built with, the op compiles with them (plus -DNDEBUG, and
    TensorFlow's -mfma for AVX-512), and tests/cross_aarch64.sh's reading of CMakeLists.txt
    finds the same."""
    cfg = pyoptim.config.config()
    assert list(cfg["isa_flags"]) == cfg["isas_built"]
    cmake = (Path(__file__).resolve().parents[1] / "CMakeLists.txt").read_text()
    (kernel,) = re.findall(r"^set\(PYOPTIM_KERNEL_FLAGS (.*)\)$", cmake, re.M)
    assert cfg["kernel_flags"].split() == kernel.split()
    assert _build.kernel_flags() == kernel.split() + ["-DNDEBUG"]
    assert {"-ffp-contract=off", "-fno-math-errno", "-fno-trapping-math"} <= set(kernel.split())
    assert not any("fast-math" in flag or "finite-math" in flag for flag in kernel.split())
    written = {m.group(1): m.group(2).replace('"', "").split()
               for m in re.finditer(r"^set\(PYOPTIM_ISA_FLAGS_([a-z][a-z0-9]*) *(.*)\)$", cmake, re.M)}
    for isa in cfg["isas_built"]:
        core = cfg["isa_flags"][isa].split()
        assert core == written[isa], isa
        assert _build.isa_flags(isa)[:len(core)] == core
    if "avx512" in cfg["isas_built"]:
        assert {"-mavx512f", "-mavx512vl", "-mavx512bw"} <= set(written["avx512"])
        assert "-mfma" in _build.isa_flags("avx512")


def test_failed_build_warns_in_two_lines_and_is_remembered(tmp_path):
    """A compiler that fails: the build error and the optimizer's warning say in one line
    what failed and where to look; ``python -m pyoptim.keras status`` prints the whole log.  The
    failure is remembered: the next process does not run the compiler again (and says so),
    ``python -m pyoptim.keras build --force`` does."""
    fake = tmp_path / "failing-c++"
    calls = tmp_path / "calls"
    fake.write_text("#!/bin/sh\n"
                    '[ "$1" = "--version" ] && { echo "fake c++ 1.0"; exit 0; }\n'
                    f"echo compile >> '{calls}'\n"
                    + "".join(f"echo 'noise line {i}' >&2\n" for i in range(40))
                    + "echo 'ConfigureVectorization.h:269:2: error: #error Please add -mfma' >&2\n"
                    "exit 1\n")
    fake.chmod(0o755)
    env = dict(os.environ, CXX=str(fake), PYOPTIM_CACHE_DIR=str(tmp_path / "cache"),
               TF_CPP_MIN_LOG_LEVEL="2")
    code = textwrap.dedent("""
        import json, warnings, numpy as np, keras, tensorflow as tf
        import pyoptim.keras as pk
        v, w = (keras.Variable(np.arange(5, dtype="float32")) for _ in range(2))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            pk.Adam().apply_gradients([(tf.ones(5), v)])
        keras.optimizers.Adam().apply_gradients([(tf.ones(5), w)])
        print(json.dumps({"warnings": [str(w.message) for w in caught], "v": v.numpy().tolist(),
                          "keras": w.numpy().tolist(), "status": pk.status()}))
    """)

    def run() -> Dict[str, object]:
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                env=env, timeout=600)
        assert result.returncode == 0, result.stderr[-3000:]
        return json.loads(result.stdout.strip().splitlines()[-1])

    def compiler_runs() -> int:
        return len(calls.read_text().splitlines()) if calls.exists() else 0

    for attempt in range(2):
        info = run()
        assert compiler_runs() == 1  # the second process remembers the failure
        ours = [w for w in info["warnings"] if "pyoptim.keras.Adam" in w]
        assert len(ours) == 1 and len(ours[0].splitlines()) <= 2, ours
        assert "ConfigureVectorization.h:269:2: error: #error Please add -mfma" in ours[0]
        assert "python -m pyoptim.keras status" in ours[0] and "noise line" not in ours[0]
        assert ("remembered from an earlier attempt" in ours[0]) == (attempt == 1), ours[0]
        assert info["v"] == info["keras"] and info["v"] != list(range(5))  # Keras' update ran
        status = info["status"]
        assert status["fast_path_available"] is False
        assert "noise line 0" in status["build_log"] and "noise line 39" in status["build_log"]
    cli = subprocess.run([sys.executable, "-m", "pyoptim.keras", "status"], capture_output=True,
                         text=True, env=env, timeout=600)
    assert cli.returncode == 1 and compiler_runs() == 1
    assert "noise line 39" in cli.stdout and str(fake) in cli.stdout
    forced = subprocess.run([sys.executable, "-m", "pyoptim.keras", "build", "--force"],
                            capture_output=True, text=True, env=env, timeout=600)
    assert forced.returncode == 1 and compiler_runs() == 2
    assert "noise line 39" in forced.stderr


# --- the op runs under each instruction set this CPU supports ----------------------------------

RUN_UNDER_ISA = r"""
import json, sys
import numpy as np, keras, tensorflow as tf
import pyoptim, pyoptim.keras as pk
from pyoptim.keras import _grappler

cases = json.loads(sys.argv[1])
rng = np.random.default_rng(1234)
x64 = rng.standard_normal((1000, 10))
y = rng.integers(0, 3, 1000)


ids = np.minimum(rng.zipf(1.5, (1000, 6)) - 1, 39)


def fit(module, kind, kwargs, dtype, eager, hidden, epochs, sparse=False):
    keras.utils.set_random_seed(7)
    if sparse:  # an Embedding: tf.IndexedSlices gradients with repeated rows (600 ids a batch)
        first = [keras.Input((6,), dtype="int32"), keras.layers.Embedding(40, hidden, dtype=dtype),
                 keras.layers.GlobalAveragePooling1D(dtype=dtype)]
        x, batch = ids, 100
    else:
        first = [keras.Input((10,), dtype=dtype),
                 keras.layers.Dense(hidden, activation="relu", dtype=dtype)]
        x, batch = x64.astype(dtype), 250
    model = keras.Sequential(first + [keras.layers.Dense(3, activation="softmax", dtype=dtype)])
    model.compile(optimizer=getattr(module, kind)(**kwargs), run_eagerly=eager,
                  loss="sparse_categorical_crossentropy", jit_compile=False)
    model.fit(x, y, batch_size=batch, epochs=epochs, shuffle=False, verbose=0)
    return model


out = {"core_isa": pyoptim.get_isa(), "available": pk.fast_path_available(), "cases": []}
for kind, kwargs, dtype, eager, hidden, epochs, *sparse in cases:
    before = pk.kernel_calls()[kind.lower()]
    ours = fit(pk, kind, kwargs, dtype, eager, hidden, epochs, *sparse)
    calls = pk.kernel_calls()[kind.lower()] - before
    theirs = fit(keras.optimizers, kind, kwargs, dtype, eager, hidden, epochs, *sparse)
    state = lambda m: [v.numpy() for v in m.weights] + [v.numpy() for v in m.optimizer.variables]
    same = all(np.array_equal(a, b) for a, b in zip(state(ours), state(theirs)))
    out["cases"].append({"case": [kind, kwargs, dtype, eager, hidden, *sparse], "same": same,
                         "calls": calls, "counts": ours.optimizer.path_counts()})
out["status"] = {k: v for k, v in pk.status().items() if k != "build_log"}
out["rmsprop_checks"] = [list(k) + [v] for k, v in _grappler.last_results().items()]
print(json.dumps(out))
"""

# test_keras' variants, and weight decay (in the kernel's pass; inside tf.function as Grappler
# rewrites it, which for RMSprop meets the emulated Rsqrt of each instruction set).
_VARIANTS = VARIANTS + [("Adam", {"learning_rate": 0.01, "weight_decay": 0.05}),
                        ("RMSprop", {"momentum": 0.5, "weight_decay": 0.05}),
                        ("SGD", {"momentum": 0.9, "weight_decay": 0.05})]
# Sparse gradients (an Embedding of 40 x 21: rows of 21, tails for every vector width).  Not
# centered RMSprop: on these batches Keras' own sparse division fails there ("indices[0] = 70311
# is not in [0, 601)": its union of the slices' rows with those where sqrt(d) is 0 or NaN
# mishandles repeated rows), see README "Sparse gradients".
_SPARSE = [("SGD", {"learning_rate": 0.5}), ("SGD", {"momentum": 0.9, "weight_decay": 0.05}),
           ("RMSprop", {"momentum": 0.5}), ("RMSprop", {}), ("Adam", {"amsgrad": True})]
# Every variant in graph mode (model.fit's tf.function, Grappler's rewrites) and eagerly, on a
# hidden layer of 21 units (210 + 21 + 63 + 3 elements: tails for every vector width); float64
# in graph mode; a 10 x 4099 layer (parallel blocks on TensorFlow's pool) in float32; the sparse
# variants in graph mode.
_CASES = ([[k, kw, "float32", eager, 21, 1] for k, kw in _VARIANTS for eager in (False, True)]
          + [[k, kw, "float64", False, 21, 1] for k, kw in _VARIANTS[2::2]]
          + [[k, kw, "float32", False, 4099, 1] for k, kw in _VARIANTS[3::3]]
          + [[k, kw, "float32", False, 21, 2, True] for k, kw in _SPARSE])


@pytest.fixture(scope="module")
def op_cache(tmp_path_factory) -> Path:
    """The op cache of this module's processes: each ISA's op is compiled once, by the first
    process that needs it (test_model_fit_under_each_supported_isa's, for the ISAs this CPU
    runs), and test_op_compiles_for_every_isa inspects that build."""
    return tmp_path_factory.mktemp("op-cache")


@pytest.mark.parametrize("isa", SUPPORTED)
def test_model_fit_under_each_supported_isa(isa, op_cache):
    """With PYOPTIM_ISA=<isa> and no op for it in the cache, a fresh process builds the op for
    that ISA, runs the kernels (op execution counter, no fallback; graph-mode RMSprop's
    self-test passes) and model.fit ends with keras.optimizers' bits, graph and eager, float32
    and float64."""
    env = dict(os.environ, PYOPTIM_ISA=isa, PYOPTIM_CACHE_DIR=str(op_cache),
               TF_CPP_MIN_LOG_LEVEL="2")
    env.pop("PYOPTIM_KERAS_FAST_PATH", None)
    result = subprocess.run([sys.executable, "-c", RUN_UNDER_ISA, json.dumps(_CASES)],
                            capture_output=True, text=True, env=env, timeout=900)
    assert result.returncode == 0, result.stderr[-4000:]
    assert f"compiling the TensorFlow op for this TensorFlow ({isa})" in result.stderr
    info = json.loads(result.stdout.strip().splitlines()[-1])
    assert info["core_isa"] == isa and info["available"], info["status"]
    assert info["status"]["isa"] == isa and f"-{isa}-" in Path(info["status"]["library"]).name
    assert Path(info["status"]["library"]).parent == op_cache
    failures: Dict[str, object] = {}
    for case in info["cases"]:
        counts = case["counts"]
        if not case["same"] or counts["fallback"] or not counts["fast"] or case["calls"] < 4:
            failures[json.dumps(case["case"])] = case
    assert not failures, failures
    checks = info["rmsprop_checks"]
    # float32 and float64, plain and centered, with Grappler's rsqrt rewrite: all must pass
    assert {(c[0], c[1]) for c in checks} >= {("float32", False), ("float32", True),
                                              ("float64", False)}, checks
    assert all(c[-1] for c in checks) and all(c[2] for c in checks), checks


@pytest.mark.parametrize("isa", _build.targetable_isas())
def test_op_compiles_for_every_isa(isa, op_cache, tmp_path, monkeypatch):
    """The op compiles for each ISA the compiler targets here, also ones this CPU cannot run
    (an AVX2-only machine still compiles the avx512 build: a flag problem shows anywhere).
    The kernels use that ISA's registers and no fused multiply-add (-ffp-contract=off).
    An ISA this CPU runs was built by test_model_fit_under_each_supported_isa in ``op_cache``:
    that library is the one inspected; the others are compiled here."""
    monkeypatch.setenv("PYOPTIM_CACHE_DIR", str(op_cache))
    library = _build.library_path(isa)
    if not library.is_file():
        library = tmp_path / f"op-{isa}.so"
        _build.compile_to(isa, library)
    code = _own_instructions(library)
    assert len(code) > 1000, len(code)
    fused = [line for line in code if _FMA.search(line)]
    assert not fused, fused[:5]
    text = "\n".join(code)
    if isa == "avx512":
        assert "%zmm" in text
    elif isa == "avx2":
        assert "%ymm" in text and "%zmm" not in text
    else:
        assert "%zmm" not in text


def test_status_reports_the_loaded_ops_isa():
    """The op's instruction set is fixed when it loads; switching the NumPy core afterwards
    (pyoptim.set_isa) does not make status() claim another one."""
    import pyoptim.keras as pk

    assert pk.fast_path_available(), pk.status()["error"]
    loaded = pk.status()["isa"]
    assert f"-{loaded}-" in Path(pk.status()["library"]).name
    before = pyoptim.get_isa()
    try:
        for isa in SUPPORTED:
            pyoptim.set_isa(isa)
            assert pk.status()["isa"] == loaded and pyoptim.get_isa() == isa
    finally:
        pyoptim.set_isa(before)
