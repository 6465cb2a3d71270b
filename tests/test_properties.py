"""Property-based tests (hypothesis) of pyoptim's NumPy API.

For random shapes (0-d, empty, odd lengths, around SIMD widths and the parallel
threshold), dtypes (float32/float64 and wrong ones: ints, complex,
big-endian, object), hyperparameters in and out of their domain, aliasing (the
same array twice, overlapping views), layouts (non-contiguous views, Fortran
order, unaligned, read-only) and non-array inputs (lists, scalars), every call of
``sgd_update`` / ``rmsprop_update`` / ``adam_update`` and of ``SGD/RMSprop/Adam.apply``

* either matches ``reference.py`` (a NumPy transcription of Keras' formulas) to
  the bit (NaN == NaN, signed zeros must agree), with the gradient untouched,
* or raises TypeError/ValueError of the kind the contract of issue 2 predicts
  (``expected_problems`` below), naming an offending argument, with every input
  array unchanged (compared byte for byte with copies taken before the call).

The contract model: shape mismatch, layout (non-contiguous, unaligned, mixed
C/Fortran order), read-only written arrays, memory shared with an updated array
and values out of a hyperparameter's domain are ValueErrors; non-arrays, non-float
or byte-swapped dtypes, dtype mismatch with the param and non-numeric
hyperparameters are TypeErrors; a missing momentum buffer when momentum > 0 is a
ValueError.  When several problems are present, any of their kinds may be raised.

Run ``pytest tests/test_properties.py --hypothesis-show-statistics`` to see the
number of examples and the ``event`` tallies (which faults and variants ran).
"""
from __future__ import annotations

import math
import re
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import pyoptim
import reference as ref

SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

Problem = Tuple[type, str]  # (exception class, argument name it concerns)

# ---------------------------------------------------------------- value generation

SPECIAL = {
    np.float32: [np.nan, np.inf, -np.inf, 0.0, -0.0, 1e-45, -1e-45, 1.1754942e-38, 3.4028235e38, -3.4028235e38],
    np.float64: [np.nan, np.inf, -np.inf, 0.0, -0.0, 5e-324, -5e-324, 2.2250738585072e-308, 1.7976931348623157e308],
}


def make_values(seed: int, mode: str, shape: Tuple[int, ...], dtype) -> np.ndarray:
    """Random values: 'normal', 'wide' (magnitudes over the dtype's whole range,
    random signs) or 'special' (normal values with NaN, inf, signed zeros,
    subnormals and extremes mixed in)."""
    rng = np.random.default_rng(seed)
    n = int(np.prod(shape, dtype=np.int64))
    if mode == "normal":
        x = rng.standard_normal(n)
    elif mode == "wide":
        top = 38 if dtype == np.float32 else 300
        x = np.sign(rng.standard_normal(n)) * 10.0 ** rng.uniform(-top - 6, top, n)
    else:
        x = rng.standard_normal(n)
        if n:
            specials = np.array(SPECIAL[dtype])
            where = rng.random(n) < 0.3
            x[where] = specials[rng.integers(0, len(specials), where.sum())]
    with np.errstate(over="ignore", under="ignore"):
        return x.astype(dtype).reshape(shape)


SHAPES = st.one_of(
    st.sampled_from([(), (0,), (0, 3), (3, 0), (1,), (1, 1)]),
    st.tuples(st.integers(1, 70)),
    st.tuples(st.sampled_from([127, 128, 129, 255, 257, 1000, 4095, 4097, 32767, 32768, 32769, 32785, 40003])),
    st.tuples(st.integers(1, 9), st.integers(1, 9)),
    st.tuples(st.integers(1, 4), st.integers(1, 4), st.integers(1, 5)),
)

# ---------------------------------------------------------------- hyperparameters
# Each strategy mixes values inside the domain with values outside it; the model
# below decides which is which (it does not trust the strategy's intent).

NON_NUMBERS = [None, "0.1", b"1", [0.1], object()]
NAN, INF = float("nan"), float("inf")

# name -> (values inside the domain, values outside it); the model below decides
# which is which (it does not trust these lists).
HYPER_VALUES = {
    "learning_rate": ([0.01, 0.001, 0.5, 0.0, -0.1, 3.0, 1e39, 1e-30, np.float32(0.01), np.float64(0.2), 1],
                      [NAN, INF, -INF]),
    "momentum": ([0.0, -0.0, 0.5, 0.9, 0.99, 1.0, 1e-50, np.float32(0.9)], [-0.1, 1.0000001, 2.0, NAN, INF, -INF]),
    "rho": ([0.0, 0.5, 0.9, 0.99, 0.999, 1 - 1e-9, 1e-50, np.float64(0.95)], [1.0, -1e-9, 1.5, NAN, INF, -INF]),
    "epsilon": ([1e-7, 0.0, 1e-45, 1.0, 1e39, 1e-3], [-1e-7, NAN, INF, -INF]),
    "weight_decay": ([None, None, None, 0.0, 0.01, 0.004, -0.5, 2.0], [NAN, INF, -INF]),
    "nesterov": ([False, True, np.bool_(True), np.bool_(False)], [1, 0, None, "yes"]),
    "step": ([1, 2, 3, 10, 57, 1000, 2**24 + 1, 2**62, np.int64(7), np.int32(3)],
             [0, -1, 2**63, 2**64, 1.0, True, None, "1", np.float32(2)]),
}
HYPER_VALUES["beta_1"] = HYPER_VALUES["beta_2"] = HYPER_VALUES["rho"]
HYPER_NAMES = {
    "sgd": ["learning_rate", "momentum", "nesterov", "weight_decay"],
    "rmsprop": ["learning_rate", "rho", "epsilon", "momentum", "weight_decay"],
    "adam": ["step", "learning_rate", "beta_1", "beta_2", "epsilon", "weight_decay"],
}


@st.composite
def hyperparameters(draw, kind: str) -> Dict[str, Any]:
    """Values from each domain; in about a quarter of the draws one or two of
    them are replaced by a value outside the domain or a non-number."""
    h = {n: draw(st.sampled_from(HYPER_VALUES[n][0])) for n in HYPER_NAMES[kind]}
    for _ in range(draw(st.sampled_from([0, 0, 0, 0, 0, 0, 1, 1, 2]))):
        name = draw(st.sampled_from(HYPER_NAMES[kind]))
        bad = HYPER_VALUES[name][1] + ([] if name in ("nesterov", "step") else NON_NUMBERS)
        h[name] = draw(st.sampled_from(bad))
    return h


def number_problem(x: Any, name: str, ok) -> Optional[Problem]:
    """TypeError for a non-number, ValueError when ``ok(float(x))`` is false."""
    if x is None or isinstance(x, (str, bytes, list)):
        return (TypeError, name)
    try:
        d = float(x)
    except (TypeError, ValueError):
        return (TypeError, name)
    return None if ok(d) else (ValueError, name)


def finite(d: float) -> bool:
    return math.isfinite(d)


def closed_unit(d: float) -> bool:
    return 0.0 <= d <= 1.0


def open_unit(d: float) -> bool:
    return 0.0 <= d < 1.0


def nonnegative(d: float) -> bool:
    return math.isfinite(d) and d >= 0.0


def step_problem(step: Any) -> Optional[Problem]:
    if isinstance(step, (bool, np.bool_, float, np.floating)) or not isinstance(step, (int, np.integer)):
        return (TypeError, "step")
    return None if 1 <= int(step) < 2**63 else (ValueError, "step")


def hyper_problems(kind: str, h: Dict[str, Any]) -> List[Problem]:
    checks = {
        "learning_rate": finite, "momentum": closed_unit, "rho": open_unit, "beta_1": open_unit,
        "beta_2": open_unit, "epsilon": nonnegative,
    }
    out = []
    for name, value in h.items():
        if name in checks:
            p = number_problem(value, name, checks[name])
        elif name == "weight_decay":
            p = None if value is None else number_problem(value, name, finite)
        elif name == "nesterov":
            p = None if isinstance(value, (bool, np.bool_)) else (TypeError, name)
        elif name == "step":
            p = step_problem(value)
        else:
            raise AssertionError(name)
        if p:
            out.append(p)
    return out


# ---------------------------------------------------------------- array model

WRITTEN = {"param", "momentum_buffer", "velocity", "average_grad", "m", "v", "v_hat"}
ARGS = {
    "sgd": ["param", "grad", "momentum_buffer"],
    "rmsprop": ["param", "grad", "velocity", "momentum_buffer", "average_grad"],
    "adam": ["param", "grad", "m", "v", "v_hat"],
}
OPTIONAL = {"momentum_buffer", "average_grad", "v_hat"}


def array_problem(a: Any, name: str, written: bool) -> Optional[Problem]:
    """The checks every array goes through on its own."""
    if not isinstance(a, np.ndarray):
        return (TypeError, name)
    if a.dtype not in (np.dtype(np.float32), np.dtype(np.float64)) or not a.dtype.isnative:
        return (TypeError, name)
    if written and not a.flags.writeable:
        return (ValueError, name)
    if not a.flags.aligned:
        return (ValueError, name)
    if not (a.flags.c_contiguous or a.flags.f_contiguous):
        return (ValueError, name)
    return None


def pairing_problem(x: np.ndarray, xname: str, p: np.ndarray) -> Optional[Problem]:
    """The checks of an array against the param (both individually valid)."""
    if x.dtype != p.dtype:
        return (TypeError, xname)
    if x.shape != p.shape:
        return (ValueError, xname)
    if not ((x.flags.c_contiguous and p.flags.c_contiguous) or (x.flags.f_contiguous and p.flags.f_contiguous)):
        return (ValueError, xname)
    return None


def arrays_problems(groups: List[List[Tuple[str, Any, bool]]]) -> List[Problem]:
    """``groups``: per tensor, [(name, array, written)], param first.  Includes
    memory shared between two arrays when one of them is written."""
    out: List[Problem] = []
    valid: List[Tuple[str, np.ndarray, bool]] = []
    for group in groups:
        pname, p, pw = group[0]
        pp = array_problem(p, pname, pw)
        if pp:
            out.append(pp)
        for name, a, w in group[1:]:
            prob = array_problem(a, name, w)
            if prob:
                out.append(prob)
            elif not pp:
                prob = pairing_problem(a, name, p)
                if prob:
                    out.append(prob)
        valid += [(n, a, w) for n, a, w in group if array_problem(a, n, w) is None]
    for i, (n1, a1, w1) in enumerate(valid):
        for n2, a2, w2 in valid[i + 1:]:
            if (w1 or w2) and np.shares_memory(a1, a2):
                out += [(ValueError, n1), (ValueError, n2)]
    return out


def core_gradient(g: Any, p: Any, clipvalue: Optional[float]) -> Tuple[Any, Optional[Problem]]:
    """What a stateful optimizer's apply hands the core for gradient ``g`` of param
    ``p`` (pyoptim.optimizers' contract): NumPy arrays and scalars keep their dtype,
    other array-likes and integer/bool arrays take the param's; anything that is
    not real numbers is a TypeError naming grads; clipping runs in the gradient's
    dtype; then the gradient is cast to the param's dtype and memory order (a new
    array only when needed).  Returns (array or None, problem or None)."""
    if g is None:
        return None, None
    target = p.dtype if isinstance(p, np.ndarray) else None
    try:
        a = np.asarray(g) if isinstance(g, (np.ndarray, np.generic)) else np.asarray(g, dtype=target)
    except (TypeError, ValueError):
        return None, (TypeError, "grads")
    if a.dtype.kind in "biu" and target is not None:
        a = a.astype(target)
    elif a.dtype.kind != "f" and a.dtype.name != "bfloat16":
        return None, (TypeError, "grads")
    if clipvalue:
        with np.errstate(invalid="ignore"):
            a = np.asarray(np.clip(a, a.dtype.type(-clipvalue), a.dtype.type(clipvalue)), dtype=a.dtype)
    if target is None:
        return a, None
    if a.dtype != target or not a.flags.aligned:
        a = a.astype(target)
    if p.flags.c_contiguous:
        a = a if a.flags.c_contiguous else np.ascontiguousarray(a)
    elif p.flags.f_contiguous and not a.flags.f_contiguous:
        a = np.asfortranarray(a)
    return a, None


def names_argument(message: str, names: Sequence[str]) -> bool:
    return any(re.search(rf"(?<![\w.]){re.escape(n)}(?![\w])", message) for n in names)


def snapshot(x: Any) -> Any:
    if isinstance(x, np.ndarray):
        return x.copy(order="K")
    return x


def unchanged(before: Any, after: Any) -> bool:
    if isinstance(after, np.ndarray):
        return ref.identical_bits(before, after)
    return True  # lists and scalars are not touched by design (they are refused)


# ---------------------------------------------------------------- faults

FAULTS = ["wrong_dtype", "byteswap", "readonly", "noncontig", "fortran", "wrong_shape", "as_list",
          "unaligned", "alias", "overlap", "other_float", "reversed"]
# (float16 is a valid parameter dtype with float32 state, tested in test_half.py.)
WRONG_DTYPES = [np.int32, np.int64, np.complex64, np.complex128, np.bool_, object, np.uint8]


def layout_array(values: np.ndarray, fault: Optional[str], rng: np.random.Generator, dtype) -> Any:
    """An array holding ``values`` with the requested defect (or none)."""
    shape = values.shape
    if fault is None:
        return values
    if fault == "wrong_dtype":
        with np.errstate(all="ignore"):
            return values.astype(WRONG_DTYPES[rng.integers(len(WRONG_DTYPES))])
    if fault == "byteswap":
        return values.astype(values.dtype.newbyteorder(">"))
    if fault == "readonly":
        values.flags.writeable = False
        return values
    if fault == "noncontig":
        base = np.zeros(shape[:-1] + (2 * shape[-1],) if shape else (2,), values.dtype)
        view = base[..., ::2] if shape else base[::2].reshape(())
        view[...] = values
        return view
    if fault == "fortran":
        return np.asfortranarray(values)
    if fault == "wrong_shape":
        choices = [shape + (1,), shape[:-1] if shape else (1,), (int(values.size) + 1,), tuple(reversed(shape)) + (2,)]
        new = choices[rng.integers(len(choices))]
        return make_values(int(rng.integers(2**31)), "normal", new, values.dtype.type)
    if fault == "as_list":
        return values.tolist()
    if fault == "unaligned":
        raw = np.zeros(values.nbytes + 1, np.uint8)[1:]
        view = raw.view(values.dtype).reshape(shape)
        view[...] = values
        return view
    if fault == "other_float":
        with np.errstate(over="ignore"):
            return values.astype(np.float64 if dtype == np.float32 else np.float32)
    if fault == "reversed":
        return values[::-1] if values.ndim else values
    raise AssertionError(fault)


@st.composite
def functional_calls(draw):
    kind = draw(st.sampled_from(sorted(ARGS)))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    shape = draw(SHAPES)
    order = draw(st.sampled_from(["C", "C", "F"]))
    mode = draw(st.sampled_from(["normal", "wide", "special"]))
    seed = draw(st.integers(0, 2**32 - 1))
    hyper = draw(hyperparameters(kind))
    wants_buffer = number_problem(hyper.get("momentum"), "momentum", closed_unit) is None and float(hyper["momentum"]) > 0
    present = [n for n in ARGS[kind] if n not in OPTIONAL or draw(
        st.sampled_from([True] * 9 + [False]) if (n == "momentum_buffer" and wants_buffer) else st.booleans())]
    nfaults = draw(st.sampled_from([0, 0, 0, 1, 1, 2]))
    faults = []
    for _ in range(nfaults):
        fault = draw(st.sampled_from(FAULTS))
        target = draw(st.sampled_from(present))
        other = draw(st.sampled_from([n for n in present if n != target]))
        faults.append((fault, target, other))
    return kind, dtype, shape, order, mode, seed, hyper, present, faults


def in_order(a: np.ndarray, order: str) -> np.ndarray:
    """``a`` in Fortran order when asked (np.asfortranarray would make a 0-d array 1-d)."""
    return np.asfortranarray(a) if order == "F" and a.ndim >= 2 else a


def build_arrays(dtype, shape, order, mode, seed, present, faults) -> Dict[str, Any]:
    rng = np.random.default_rng(seed)
    arrays: Dict[str, Any] = {}
    for i, name in enumerate(present):
        a = make_values(seed + i, mode, shape, dtype)
        arrays[name] = in_order(a, order)
    for fault, target, other in faults:
        if fault == "alias":
            arrays[target] = arrays[other]
        elif fault == "overlap":
            a = arrays[other]
            if not isinstance(a, np.ndarray) or a.ndim == 0:
                continue
            flat = np.zeros(a.size + 1 + a.size // 2, dtype)
            shift = int(rng.integers(0, a.size // 2 + 2))
            arrays[other] = flat[: a.size].reshape(a.shape)
            arrays[target] = flat[shift: shift + a.size].reshape(a.shape)
            flat[...] = make_values(seed + 99, mode, flat.shape, dtype)
        else:
            a = arrays[target]
            if isinstance(a, np.ndarray) and a.dtype in (np.float32, np.float64) and a.dtype.isnative:
                arrays[target] = layout_array(a.copy(order="K"), fault, rng, dtype)
    return arrays


CALL = {"sgd": pyoptim.sgd_update, "rmsprop": pyoptim.rmsprop_update, "adam": pyoptim.adam_update}
REF = {"sgd": ref.sgd, "rmsprop": ref.rmsprop, "adam": ref.adam}
POSITIONAL = {"sgd": ["param", "grad", "momentum_buffer"], "rmsprop": ["param", "grad", "velocity"],
              "adam": ["param", "grad", "m", "v"]}


def invoke(fn, kind: str, arrays: Dict[str, Any], hyper: Dict[str, Any]):
    args = [arrays.get(n) for n in POSITIONAL[kind]]
    kw = {n: a for n, a in arrays.items() if n not in POSITIONAL[kind]}
    return fn(*args, **kw, **hyper)


def expected_problems(kind: str, arrays: Dict[str, Any], hyper: Dict[str, Any]) -> List[Problem]:
    probs = hyper_problems(kind, hyper)
    mom = hyper.get("momentum")
    if kind in ("sgd", "rmsprop") and number_problem(mom, "momentum", closed_unit) is None:
        if float(mom) > 0 and arrays.get("momentum_buffer") is None:
            probs.append((ValueError, "momentum_buffer"))
    group = [(n, arrays[n], n in WRITTEN) for n in ARGS[kind] if n in arrays]
    return probs + arrays_problems([group])


@settings(max_examples=2000, **SETTINGS)
@given(functional_calls())
def test_functional_api_matches_reference_or_refuses_cleanly(case):
    kind, dtype, shape, order, mode, seed, hyper, present, faults = case
    arrays = build_arrays(dtype, shape, order, mode, seed, present, faults)
    problems = expected_problems(kind, arrays, hyper)
    before = {n: snapshot(a) for n, a in arrays.items()}
    event(f"{kind} {'valid' if not problems else 'invalid'}")
    for fault, _, _ in faults:
        event(f"fault {fault}")

    if not problems:
        expected = invoke(REF[kind], kind, before, hyper)
        result = invoke(CALL[kind], kind, arrays, hyper)
        assert result is None
        for name, a in arrays.items():
            want = expected.get(name, before[name])
            assert ref.same_bits(a, want), f"{name}: {ref.describe_difference(a, want)}"
        return

    kinds = tuple({t for t, _ in problems})
    with pytest.raises((TypeError, ValueError)) as info:
        invoke(CALL[kind], kind, arrays, hyper)
    assert isinstance(info.value, kinds), f"raised {info.value!r}, expected one of {problems}"
    names = [n for t, n in problems if isinstance(info.value, t)]
    assert names_argument(str(info.value), names), f"{info.value!r} names none of {names}"
    event(f"refused with {type(info.value).__name__}")
    for name, a in arrays.items():
        assert unchanged(before[name], a), f"{name} was modified by a refused call"


# ---------------------------------------------------------------- functional API, focused properties


@settings(max_examples=150, **SETTINGS)
@given(kind=st.sampled_from(sorted(ARGS)), dtype=st.sampled_from([np.float32, np.float64]),
       shape=SHAPES, mode=st.sampled_from(["normal", "wide", "special"]), seed=st.integers(0, 2**32 - 1),
       steps=st.integers(1, 5))
def test_repeated_valid_updates_match_reference(kind, dtype, shape, mode, seed, steps):
    """Several consecutive updates with state carried over, every option on."""
    names = ARGS[kind]
    arrays = {n: make_values(seed + i, mode if n != "param" else "normal", shape, dtype) for i, n in enumerate(names)}
    expected = {n: a.copy() for n, a in arrays.items()}
    rng = np.random.default_rng(seed)
    for t in range(1, steps + 1):
        g = make_values(seed + 1000 + t, mode, shape, dtype)
        arrays["grad"] = g
        expected["grad"] = g
        if kind == "sgd":
            hyper = dict(learning_rate=0.05, momentum=0.9, nesterov=bool(rng.integers(2)), weight_decay=0.01)
        elif kind == "rmsprop":
            hyper = dict(learning_rate=0.01, rho=0.8, epsilon=1e-6, momentum=0.5, weight_decay=0.01)
        else:
            hyper = dict(step=t, learning_rate=0.01, beta_1=0.8, beta_2=0.99, epsilon=1e-6, weight_decay=0.01)
        out = invoke(REF[kind], kind, expected, hyper)
        expected.update(out)
        invoke(CALL[kind], kind, arrays, hyper)
    for n in names:
        assert ref.same_bits(arrays[n], expected[n]), n


# ---------------------------------------------------------------- stateful API

OPT_CONFIGS = {
    "SGD": st.fixed_dictionaries({"momentum": st.sampled_from([0.0, 0.5, 0.9, 1.0]), "nesterov": st.booleans()}),
    "RMSprop": st.fixed_dictionaries({"rho": st.sampled_from([0.0, 0.9, 0.5]), "momentum": st.sampled_from([0.0, 0.3]),
                                      "epsilon": st.sampled_from([1e-7, 0.0, 1e-3]), "centered": st.booleans()}),
    "Adam": st.fixed_dictionaries({"beta_1": st.sampled_from([0.9, 0.0, 0.5]), "beta_2": st.sampled_from([0.999, 0.9]),
                                   "epsilon": st.sampled_from([1e-7, 0.0]), "amsgrad": st.booleans()}),
}


@st.composite
def stateful_runs(draw):
    kind = draw(st.sampled_from(sorted(OPT_CONFIGS)))
    config = draw(OPT_CONFIGS[kind])
    lr_kind = draw(st.sampled_from(["float", "callable"]))
    base_lr = draw(st.sampled_from([0.01, 0.1, 1e-3]))
    config["weight_decay"] = draw(st.sampled_from([None, None, 0.0, 0.01]))
    clipvalue = draw(st.sampled_from([None, None, 0.5]))
    nparams = draw(st.integers(1, 4))
    specs = [(draw(SHAPES), draw(st.sampled_from([np.float32, np.float64])), draw(st.sampled_from(["C", "F"])))
             for _ in range(nparams)]
    steps = []
    for _ in range(draw(st.integers(1, 4))):
        none_mask = [draw(st.sampled_from([False, False, False, True])) for _ in range(nparams)]
        fault = draw(st.sampled_from([None, None, None] + FAULTS + ["short_grads", "readonly_param", "shared_grad"]))
        target = draw(st.integers(0, nparams - 1))
        other = draw(st.integers(0, nparams - 1))
        steps.append((none_mask, fault, target, other))
    mode = draw(st.sampled_from(["normal", "special"]))
    seed = draw(st.integers(0, 2**32 - 1))
    return kind, config, lr_kind, base_lr, clipvalue, specs, steps, mode, seed


def slot_arrays(opt: pyoptim.Optimizer) -> Dict[str, List[np.ndarray]]:
    return opt.state_dict()["slots"] or {}


@settings(max_examples=500, **SETTINGS)
@given(stateful_runs())
def test_stateful_apply_matches_reference_or_refuses_cleanly(run):
    kind, config, lr_kind, base_lr, clipvalue, specs, steps, mode, seed = run
    lr = base_lr if lr_kind == "float" else (lambda it, b=base_lr: b * 0.5 ** it)
    opt = getattr(pyoptim, kind)(learning_rate=lr, clipvalue=clipvalue, **config)
    # The reference gets the gradients as the core does (core_gradient clips them).
    reference_opt = ref.REFERENCE_CLASSES[kind](learning_rate=lr, clipvalue=None, **config)
    params = []
    for i, (shape, dtype, order) in enumerate(specs):
        p = make_values(seed + i, "normal", shape, dtype)
        params.append(in_order(p, order))
    ref_params = [p.copy(order="K") for p in params]
    rng = np.random.default_rng(seed)
    event(f"{kind} {lr_kind} lr, clipvalue={clipvalue}")
    for t, (none_mask, fault, target, other) in enumerate(steps):
        grads: List[Any] = []
        for i, (p, (shape, dtype, order)) in enumerate(zip(params, specs)):
            g = make_values(seed + 100 * (t + 1) + i, mode, shape, dtype)
            grads.append(None if none_mask[i] and fault not in ("alias", "readonly_param") else in_order(g, order))
        call_params = list(params)
        if fault == "short_grads":
            grads = grads[:-1]
        elif fault == "readonly_param":
            call_params[target] = params[target].copy(order="K")
            call_params[target].flags.writeable = False
        elif fault == "alias":
            call_params[target] = call_params[other]
        elif fault == "overlap":
            grads[target] = params[other]  # a gradient that is also an updated param
        elif fault == "shared_grad":
            grads[target] = grads[other]  # two params read one gradient: allowed when shapes match
        elif fault is not None and grads[target] is not None:
            grads[target] = layout_array(grads[target].copy(order="K"), fault, rng, specs[target][1])
        event(f"stateful fault {fault}")

        # What the core receives (see core_gradient): gradients read, clipped in
        # their dtype, cast to the param's dtype and memory order.
        problems: List[Problem] = []
        eff = []
        for g, p in zip(grads, call_params):
            e, problem = core_gradient(g, p, clipvalue)
            eff.append(e)
            if problem:
                problems.append(problem)
        if len(grads) != len(call_params):
            problems.append((ValueError, "grads"))
        else:
            slots = opt._slots if opt.built else {
                s: [np.zeros_like(p) for p in call_params] for s in reference_opt.slot_names}
            groups = []
            for i, (p, g) in enumerate(zip(call_params, eff)):
                if g is None:
                    continue
                groups.append([(f"params[{i}]", p, True), (f"grads[{i}]", g, False)] +
                              [(f"{s}[{i}]", arrs[i], True) for s, arrs in slots.items()])
            # the optimizer's own state arrays never alias the caller's arrays
            problems += [pr for pr in arrays_problems(groups)]
        state_before = opt.state_dict()
        params_before = [p.copy(order="K") for p in params]
        if not problems:
            ref_grads = [snapshot(g) for g in eff]  # a gradient may be a param (then clipped to a copy)
            opt.apply(grads, call_params)
            reference_opt.apply(ref_grads, ref_params)
            event("stateful step applied")
        else:
            with pytest.raises((TypeError, ValueError)) as info:
                opt.apply(grads, call_params)
            assert isinstance(info.value, tuple({t for t, _ in problems})), (info.value, problems)
            # The argument's name without its index: the index is checked by
            # test_stateful_error_names_the_callers_index (None gradients shift it).
            names = [n.split("[")[0] for tp, n in problems if isinstance(info.value, tp)]
            assert names_argument(re.sub(r"\[\d+\]", "", str(info.value)), names), \
                f"{info.value!r} names none of {names}"
            for p, b in zip(params, params_before):
                assert ref.identical_bits(p, b), "a refused apply modified a parameter"
            state_after = opt.state_dict()
            assert state_after["iterations"] == state_before["iterations"]
            assert (state_after["slots"] is None) == (state_before["slots"] is None)
            for s, arrs in (state_before["slots"] or {}).items():
                for a, b in zip(arrs, state_after["slots"][s]):
                    assert ref.identical_bits(a, b), f"a refused apply modified slot {s}"
            event("stateful step refused")
        assert opt.iterations == reference_opt.iterations
        for i, (p, q) in enumerate(zip(params, ref_params)):
            assert ref.same_bits(p, q), f"params[{i}] after step {t + 1}"
    if reference_opt.slots is not None:
        mine = slot_arrays(opt)
        assert set(mine) == set(reference_opt.slots)
        for s, arrs in reference_opt.slots.items():
            for i, (a, b) in enumerate(zip(mine[s], arrs)):
                assert ref.same_bits(a, b), f"slot {s}[{i}]"


@st.composite
def constructor_calls(draw):
    kind = draw(st.sampled_from(["SGD", "RMSprop", "Adam"]))
    kwargs = draw(hyperparameters(kind.lower()))
    kwargs.pop("step", None)
    if draw(st.booleans()):  # more refusals than the functional mix: half the draws get a bad value
        name = draw(st.sampled_from(sorted(kwargs)))
        kwargs[name] = draw(st.sampled_from(HYPER_VALUES[name][1] + ([] if name == "nesterov" else NON_NUMBERS)))
    return kind, kwargs


@settings(max_examples=300, **SETTINGS)
@given(constructor_calls())
def test_stateful_constructor_refuses_out_of_domain_hyperparameters(case):
    """Bad hyperparameters are refused when the optimizer is made, not at the first
    apply; good ones give an optimizer whose first update matches the reference."""
    kind, kwargs = case
    fkind = {"SGD": "sgd", "RMSprop": "rmsprop", "Adam": "adam"}[kind]
    problems = hyper_problems(fkind, kwargs)
    if problems:
        event(f"{kind} constructor refused")
        with pytest.raises((TypeError, ValueError)) as info:
            getattr(pyoptim, kind)(**kwargs)
        assert isinstance(info.value, tuple({t for t, _ in problems})), (info.value, problems)
        return
    event(f"{kind} constructor accepted")
    opt = getattr(pyoptim, kind)(**kwargs)
    reference_opt = ref.REFERENCE_CLASSES[kind](**kwargs)
    p = make_values(1, "normal", (37,), np.float32)
    g = make_values(2, "special", (37,), np.float32)
    q = p.copy()
    opt.apply([g], [p])
    reference_opt.apply([g], [q])
    assert ref.same_bits(p, q)


@pytest.mark.parametrize("kind", ["SGD", "RMSprop", "Adam"])
def test_stateful_error_names_the_callers_index(kind):
    """With a None gradient before the bad one, the error must still name the
    caller's index (grads[2]), not the index in the filtered list (grads[1])."""
    opt = getattr(pyoptim, kind)(**({"momentum": 0.9} if kind == "SGD" else {}))
    params = [np.zeros(3, np.float32), np.zeros(4, np.float32), np.zeros(5, np.float32)]
    grads = [np.ones(3, np.float32), None, np.ones(6, np.float32)]
    with pytest.raises(ValueError) as info:
        opt.apply(grads, params)
    assert names_argument(str(info.value), ["grads[2]", "params[2]"]), str(info.value)
