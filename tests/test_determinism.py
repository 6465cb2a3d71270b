"""Determinism: the same bits (NaN payloads included) whatever the thread count,
the instruction set, the array's length and alignment, and the call path.

* 1, 2 and 3 threads, set with ``pyoptim.set_num_threads`` and with
  ``OMP_NUM_THREADS`` in a fresh interpreter, above the parallel threshold and
  with thread boundaries falling inside arrays of the multi-tensor path;
* every instruction set the CPU supports, with ``pyoptim.set_isa`` and with the
  ``PYOPTIM_ISA`` environment variable in a fresh interpreter;
* an element's result does not depend on the length of the array it is in
  (lengths around SIMD widths and around ``parallel_min_elements``), on the
  alignment of its first element, nor on being updated through the multi-tensor
  ``apply`` rather than the functional API.

Inputs contain infinities, signed zeros and subnormals (2 % of elements), and in a
second run NaN too.  Without NaN inputs every bit must agree (the NaNs that
invalid operations create are all x86's default NaN).  With NaN inputs the
values must agree and NaN must stay NaN, but not the NaN's sign/payload: when
two different NaNs meet (a NaN momentum buffer plus the default NaN of
sqrt(negative)), x86 returns the first operand's, and the compiler may order
the operands of a commutative add differently in the vector body and the scalar
tail; IEEE 754 leaves the choice open (TensorFlow's kernels have the same
property).
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
import subprocess
import sys
from typing import Dict, Iterator

import numpy as np
import pytest

import pyoptim
import reference as ref

CONFIG = pyoptim.config.config()
ISAS = CONFIG["isas_supported"]
PARALLEL_MIN = CONFIG["parallel_min_elements"]
VARIANTS = sorted(ref.VARIANTS)
DTYPES = [np.float32, np.float64]


@pytest.fixture
def restore_settings() -> Iterator[None]:
    isa, threads = pyoptim.get_isa(), pyoptim.get_num_threads()
    yield
    pyoptim.set_isa(isa)
    pyoptim.set_num_threads(threads)


@functools.lru_cache(maxsize=64)
def _inputs(variant: str, n: int, dtype, seed: int, nan: bool, steps: int):
    arrays = ref.variant_arrays(variant, n, dtype, seed, nan=nan)
    grads = [ref.variant_arrays(variant, n, dtype, seed + 1 + s, nan=nan)["grad"] for s in range(steps)]
    return arrays, grads


def updated(variant: str, n: int, dtype, seed: int = 0, nan: bool = False, steps: int = 2) -> Dict[str, np.ndarray]:
    """``steps`` updates of fresh copies of the cached inputs; returns the arrays."""
    start, grads = _inputs(variant, n, dtype, seed, nan, steps)
    arrays = {k: v.copy() for k, v in start.items()}
    for g in grads:
        arrays["grad"] = g
        ref.run_variant(variant, arrays)
    return arrays


def assert_identical(a: Dict[str, np.ndarray], b: Dict[str, np.ndarray], what: str, nan: bool = False) -> None:
    """Every bit equal; with NaN inputs (``nan``), NaN-equal (see the module docstring)."""
    same = ref.same_bits if nan else ref.identical_bits
    for name in a:
        assert same(a[name], b[name]), f"{what}: {name} differs: {ref.describe_difference(a[name], b[name])}"


NAN_INPUTS = pytest.mark.parametrize("nan", [False, True], ids=["no-nan-inputs", "nan-inputs"])


# ---------------------------------------------------------------- threads

THREAD_SIZES = [2 * PARALLEL_MIN + 5, 300_007]


@NAN_INPUTS
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
@pytest.mark.parametrize("variant", VARIANTS)
def test_same_bits_with_1_2_and_3_threads(variant, dtype, nan, restore_settings):
    for n in THREAD_SIZES:
        pyoptim.set_num_threads(1)
        one = updated(variant, n, dtype, nan=nan)
        for threads in (2, 3):
            pyoptim.set_num_threads(threads)
            assert_identical(one, updated(variant, n, dtype, nan=nan), f"{threads} threads, n={n}", nan)


@pytest.mark.parametrize("kind,kwargs", [
    ("SGD", {"momentum": 0.9, "nesterov": True}), ("RMSprop", {"centered": True, "momentum": 0.3}),
    ("Adam", {"amsgrad": True, "weight_decay": 0.01}),
])
def test_multi_tensor_same_bits_with_1_and_2_threads(kind, kwargs, restore_settings):
    """Thread shares cut through the middle of arrays of odd sizes."""
    sizes = [3, PARALLEL_MIN - 1, 17, PARALLEL_MIN + 9, 1, 0, 12_345]
    results = []
    for threads in (1, 2):
        pyoptim.set_num_threads(threads)
        opt = getattr(pyoptim, kind)(**kwargs)
        params = [ref.variant_arrays("sgd", n, np.float32 if i % 2 else np.float64, i, nan=False)["param"]
                  for i, n in enumerate(sizes)]
        for step in range(3):
            grads = [ref.variant_arrays("sgd", p.size, p.dtype.type, 100 * step + i, nan=False)["grad"]
                     for i, p in enumerate(params)]
            opt.apply(grads, params)
        results.append((params, opt.state_dict()["slots"]))
    (p1, s1), (p2, s2) = results
    for i, (a, b) in enumerate(zip(p1, p2)):
        assert ref.identical_bits(a, b), f"params[{i}]"
    for name in s1:
        for i, (a, b) in enumerate(zip(s1[name], s2[name])):
            assert ref.identical_bits(a, b), f"{name}[{i}]"


# Run in a fresh interpreter: every variant on both dtypes, one digest of all the bits.
DIGEST_SCRIPT = r"""
import hashlib, json, sys
sys.path.insert(0, sys.argv[1])
import numpy as np, pyoptim, reference as ref
h = hashlib.sha256()
for variant in sorted(ref.VARIANTS):
    for dtype in (np.float32, np.float64):
        for n in (7, 2 * pyoptim.config.config()["parallel_min_elements"] + 5, 300_001):
            arrays = ref.variant_arrays(variant, n, dtype, 0, nan=False)
            ref.run_variant(variant, arrays)
            for name in sorted(arrays):
                h.update(arrays[name].tobytes())
print(json.dumps({"isa": pyoptim.get_isa(), "threads": pyoptim.get_num_threads(), "digest": h.hexdigest()}))
"""


def digest_here() -> str:
    h = hashlib.sha256()
    for variant in VARIANTS:
        for dtype in DTYPES:
            for n in (7, 2 * PARALLEL_MIN + 5, 300_001):
                arrays = ref.variant_arrays(variant, n, dtype, 0, nan=False)
                ref.run_variant(variant, arrays)
                for name in sorted(arrays):
                    h.update(arrays[name].tobytes())
    return h.hexdigest()


def digest_in_subprocess(**env: str) -> dict:
    full_env = {**os.environ, **env}
    out = subprocess.run([sys.executable, "-c", DIGEST_SCRIPT, os.path.dirname(__file__)], env=full_env,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_same_bits_with_omp_num_threads_1_and_2(restore_settings):
    pyoptim.set_num_threads(1)
    here = digest_here()
    for threads in ("1", "2"):
        result = digest_in_subprocess(OMP_NUM_THREADS=threads)
        if CONFIG["openmp"]:
            assert result["threads"] == int(threads), "OMP_NUM_THREADS not honoured"
        assert result["digest"] == here, f"OMP_NUM_THREADS={threads} gives other bits"


# ---------------------------------------------------------------- instruction sets


@NAN_INPUTS
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
@pytest.mark.parametrize("variant", VARIANTS)
def test_same_bits_under_every_supported_isa(variant, dtype, nan, restore_settings):
    pyoptim.set_isa("baseline")
    sizes = list(range(1, 34)) + [255, 257, 1000, 2 * PARALLEL_MIN + 5]
    base = {n: updated(variant, n, dtype, seed=n, nan=nan) for n in sizes}
    for isa in ISAS:
        pyoptim.set_isa(isa)
        assert pyoptim.get_isa() == isa
        for n in sizes:
            assert_identical(base[n], updated(variant, n, dtype, seed=n, nan=nan), f"isa {isa}, n={n}", nan)


@pytest.mark.parametrize("isa", ISAS)
def test_same_bits_with_pyoptim_isa_environment_variable(isa, restore_settings):
    pyoptim.set_isa("baseline")
    here = digest_here()
    result = digest_in_subprocess(PYOPTIM_ISA=isa)
    assert result["isa"] == isa
    assert result["digest"] == here, f"PYOPTIM_ISA={isa} gives other bits than baseline"


def test_unsupported_or_unknown_isa_is_refused(restore_settings):
    before = pyoptim.get_isa()
    for name in set(CONFIG["isas_built"]) - set(ISAS) | {"sse9", ""}:
        with pytest.raises(ValueError, match="instruction set"):
            pyoptim.set_isa(name)
        assert pyoptim.get_isa() == before


# ---------------------------------------------------------------- length and alignment

LENGTHS = sorted(set(range(1, 41)) | {63, 64, 65, 127, 128, 129, 1023, 1025, PARALLEL_MIN - 1, PARALLEL_MIN,
                                      PARALLEL_MIN + 1, PARALLEL_MIN + 15, PARALLEL_MIN + 17,
                                      2 * PARALLEL_MIN - 1, 2 * PARALLEL_MIN, 2 * PARALLEL_MIN + 1, 70_001})
LONGEST = max(LENGTHS) + 8


@NAN_INPUTS
@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
@pytest.mark.parametrize("variant", VARIANTS)
def test_element_result_independent_of_length_and_alignment(variant, dtype, isa, nan, restore_settings):
    pyoptim.set_isa(isa)
    pyoptim.set_num_threads(2)
    inputs = ref.variant_arrays(variant, LONGEST, dtype, seed=11, nan=nan)
    full = {k: v.copy() for k, v in inputs.items()}
    ref.run_variant(variant, full)
    for n in LENGTHS:
        prefix = {k: v[:n].copy() for k, v in inputs.items()}
        ref.run_variant(variant, prefix)
        assert_identical(prefix, {k: v[:n] for k, v in full.items()}, f"prefix of length {n}", nan)
    # Start at every element offset within a 64-byte line (views of one buffer per
    # argument, so the data is misaligned for SIMD but aligned for the dtype).
    for offset in range(1, 9):
        for n in (offset, 31, PARALLEL_MIN + 3):
            window = {k: v.copy()[offset: offset + n] for k, v in inputs.items()}
            ref.run_variant(variant, window)
            assert_identical(window, {k: v[offset: offset + n] for k, v in full.items()},
                             f"offset {offset}, length {n}", nan)


@pytest.mark.parametrize("kind,kwargs,variant", [
    ("SGD", {"momentum": 0.9, "nesterov": True, "weight_decay": 0.01}, "sgd_nesterov_decay"),
    ("RMSprop", {"rho": 0.8, "momentum": 0.5, "centered": True, "weight_decay": 0.004},
     "rmsprop_centered_momentum_decay"),
    ("Adam", {"beta_1": 0.8, "amsgrad": True, "weight_decay": 0.01}, "adam_amsgrad_decay"),
])
def test_multi_tensor_element_equals_functional_element(kind, kwargs, variant, restore_settings):
    """The same element gives the same bits alone (functional API) and as part of a
    list of tensors updated in one parallel region (``apply``)."""
    pyoptim.set_num_threads(2)
    sizes = [5, PARALLEL_MIN + 7, 0, 1, 999]
    learning_rate = ref.VARIANTS[variant][2]["learning_rate"]
    opt = getattr(pyoptim, kind)(learning_rate=learning_rate, **kwargs)
    singles = [ref.variant_arrays(variant, n, np.float32, seed=i, nan=False) for i, n in enumerate(sizes)]
    params = [s["param"].copy() for s in singles]
    grads = [s["grad"] for s in singles]
    for s in singles:  # apply starts from zero states
        for name in s:
            if name not in ("param", "grad"):
                s[name][...] = 0
    opt.apply(grads, params)
    hyper = dict(ref.VARIANTS[variant][2])
    if kind == "Adam":
        hyper["step"] = 1  # the optimizer's first update
    kind_fn = getattr(pyoptim, f"{kind.lower()}_update")
    for i, s in enumerate(singles):
        if kind == "SGD":
            kind_fn(s["param"], s["grad"], s["momentum_buffer"], **hyper)
        elif kind == "RMSprop":
            kind_fn(s["param"], s["grad"], s["velocity"], momentum_buffer=s["momentum_buffer"],
                    average_grad=s["average_grad"], **hyper)
        else:
            kind_fn(s["param"], s["grad"], s["m"], s["v"], v_hat=s["v_hat"], **hyper)
        assert ref.identical_bits(params[i], s["param"]), f"params[{i}] (n={sizes[i]})"


# ---------------------------------------------------------------- thread settings


@pytest.mark.parametrize("value,exc", [
    (0, ValueError), (-3, ValueError), (10**20, ValueError), (-(10**20), ValueError),
    (2.0, TypeError), (True, TypeError), (None, TypeError), ("2", TypeError),
])
def test_set_num_threads_refuses_bad_values_and_keeps_the_setting(value, exc, restore_settings):
    pyoptim.set_num_threads(1)
    with pytest.raises(exc, match=r"\bn\b"):
        pyoptim.set_num_threads(value)
    assert pyoptim.get_num_threads() == 1


def test_set_num_threads_accepts_integer_like_values(restore_settings):
    """Any integer (operator.index), as ``step`` does: NumPy integers included."""
    pyoptim.set_num_threads(np.int64(2))
    assert pyoptim.get_num_threads() == (2 if CONFIG["openmp"] else 1)
    pyoptim.set_num_threads(1)
    assert pyoptim.get_num_threads() == 1
