"""Lion, Adamax and Nadam (the element-wise kernels, csrc/pyoptim/elementwise.hpp) against
keras.optimizers themselves: the same bits in every parameter and slot, float32 and float64,
several tensors of odd lengths in one call, under every instruction set this CPU supports.
Keras runs are shared by a module-scoped cache."""
from __future__ import annotations

import functools
import re

import keras
import ml_dtypes
import numpy as np
import pytest
import tensorflow as tf

import pyoptim
from pyoptim import _core
from test_core import assert_same_bits

KINDS = ("Lion", "Adamax", "Nadam")
# Keras' slot attributes, in pyoptim's slot order.
SLOT_ATTRS = {
    "Lion": {"momentums": "_momentums"},
    "Adamax": {"momentums": "_m", "norms": "_u"},
    "Nadam": {"momentums": "_momentums", "velocities": "_velocities"},
}
LENGTHS = (1, 7, 1003, 100003)
# Norm clipping sums each gradient in TensorFlow's order (pyoptim._tfsum), which is not modelled
# where TensorFlow splits a sum between threads (float64 above about 100 000 elements).
CLIP_LENGTHS = (1, 7, 1003, 30011)
STEPS = 4

# Named configurations: pyoptim/Keras keyword arguments, plus test-only keys
# ("exclude": parameter indices excluded from weight decay).
CONFIGS = {
    "defaults": {},
    "hyper": {"learning_rate": 0.01, "beta_1": 0.8, "beta_2": 0.95},
    "weight_decay": {"learning_rate": 0.003, "weight_decay": 0.05},
    "schedule": {"learning_rate": "schedule"},
    "clipnorm": {"learning_rate": 0.002, "clipnorm": 0.5},
    "exclude": {"learning_rate": 0.002, "weight_decay": 0.1, "exclude": (1, 3)},
}


def _schedule():
    return keras.optimizers.schedules.ExponentialDecay(0.01, decay_steps=2, decay_rate=0.5)


def _kwargs(config):
    kw = {k: v for k, v in CONFIGS[config].items() if k != "exclude"}
    if kw.get("learning_rate") == "schedule":
        kw["learning_rate"] = _schedule()
    return kw


def lengths(config):
    return CLIP_LENGTHS if "clipnorm" in CONFIGS[config] else LENGTHS


@functools.lru_cache(maxsize=None)
def data(dtype_name, seed=7, sizes=LENGTHS):
    dtype = np.dtype(dtype_name)
    rng = np.random.default_rng(seed)
    params = [rng.standard_normal(n).astype(dtype) for n in sizes]
    params.append(rng.standard_normal((5, 3)).astype(dtype))
    grads = []
    for _ in range(STEPS):
        step = []
        for p in params:
            g = (rng.standard_normal(p.shape) * 10.0 ** rng.integers(-3, 2, p.shape)).astype(dtype)
            g.reshape(-1)[::7] = 0  # exact zeros: sign(0), |0|, sqrt(0) + eps
            step.append(g)
        grads.append(step)
    return params, grads


@functools.lru_cache(maxsize=None)
def keras_run(kind, config, dtype_name):
    """keras.optimizers.<kind> run eagerly; (params, {slot: arrays}, extra variables)."""
    params, grads = data(dtype_name, sizes=lengths(config))
    opt = getattr(keras.optimizers, kind)(**_kwargs(config))
    variables = [keras.Variable(p.copy(), dtype=dtype_name) for p in params]
    exclude = CONFIGS[config].get("exclude")
    if exclude:
        opt.exclude_from_weight_decay(var_list=[variables[i] for i in exclude])
    for step in grads:
        opt.apply([tf.constant(g) for g in step], variables)
    slots = {name: [np.asarray(v.numpy()) for v in getattr(opt, attr)]
             for name, attr in SLOT_ATTRS[kind].items()}
    u_product = np.asarray(opt._u_product.numpy()) if kind == "Nadam" else None
    all_vars = [np.asarray(v.numpy()) for v in opt.variables if "learning_rate" not in v.path]
    return [np.asarray(v.numpy()) for v in variables], slots, u_product, all_vars


def ours_run(kind, config, dtype_name, steps=STEPS):
    params, grads = data(dtype_name, sizes=lengths(config))
    opt = getattr(pyoptim, kind)(**_kwargs(config))
    ps = [p.copy() for p in params]
    exclude = CONFIGS[config].get("exclude")
    if exclude:
        opt.exclude_from_weight_decay(indices=list(exclude))
    for step in grads[:steps]:
        opt.apply(step, ps)
    return opt, ps


def assert_matches_keras(kind, config, dtype_name, opt, ps, what=""):
    kp, kslots, ku, kvars = keras_run(kind, config, dtype_name)
    assert opt.iterations == STEPS
    for i, (a, b) in enumerate(zip(ps, kp)):
        assert np.array_equal(a, b, equal_nan=True), f"params[{i}] {what}"
        assert_same_bits(a, b, f"params[{i}] {what}")
    slots = opt.state_dict()["slots"]
    assert list(slots) == list(kslots)
    for name in kslots:
        for i, (a, b) in enumerate(zip(slots[name], kslots[name])):
            assert_same_bits(a, b, f"{name}[{i}] {what}")
    if kind == "Nadam":
        u = opt.state_dict()["u_product"]
        assert np.asarray(u).dtype == ku.dtype and np.asarray(u).tobytes() == ku.tobytes(), (u, ku)
    # variables: Keras' order (iterations, the slots, Nadam's u_product), learning rate aside.
    ours = opt.variables
    assert len(ours) == len(kvars)
    for i, (a, b) in enumerate(zip(ours, kvars)):
        assert a.shape == b.shape and a.tobytes() == b.astype(a.dtype).tobytes(), f"variables[{i}]"


@pytest.fixture
def all_isas():
    before = pyoptim.get_isa()
    yield pyoptim.config.config()["isas_supported"]
    pyoptim.set_isa(before)


@pytest.mark.parametrize("dtype_name", ["float32", "float64"])
@pytest.mark.parametrize("config", list(CONFIGS))
@pytest.mark.parametrize("kind", KINDS)
def test_matches_keras_bitwise(kind, config, dtype_name, all_isas):
    for isa in all_isas:
        pyoptim.set_isa(isa)
        opt, ps = ours_run(kind, config, dtype_name)
        assert_matches_keras(kind, config, dtype_name, opt, ps, f"({isa})")


@pytest.mark.parametrize("kind", KINDS)
def test_nan_and_inf_gradients_like_keras(kind, all_isas):
    rng = np.random.default_rng(3)
    p0 = rng.standard_normal(37).astype(np.float32)
    grads = [rng.standard_normal(37).astype(np.float32) for _ in range(3)]
    grads[0][3], grads[1][5], grads[2][9], grads[1][0] = np.nan, np.inf, -np.inf, 0.0
    opt = getattr(keras.optimizers, kind)()
    var = keras.Variable(p0.copy())
    for g in grads:
        opt.apply([tf.constant(g)], [var])
    for isa in all_isas:
        pyoptim.set_isa(isa)
        ours = getattr(pyoptim, kind)()
        p = p0.copy()
        for g in grads:
            ours.apply([g], [p])
        assert np.array_equal(p, var.numpy(), equal_nan=True), isa
        assert_same_bits(p, var.numpy(), f"param ({isa})")


def test_many_steps_nadam_and_adamax_match_keras():
    """The powers (0.96**t, beta**t) and Nadam's running u_product over many steps."""
    rng = np.random.default_rng(5)
    p0 = rng.standard_normal(33).astype(np.float32)
    grads = [rng.standard_normal(33).astype(np.float32) for _ in range(40)]
    for kind in ("Adamax", "Nadam"):
        opt = getattr(keras.optimizers, kind)(learning_rate=0.003)
        var = keras.Variable(p0.copy())
        ours = getattr(pyoptim, kind)(learning_rate=0.003)
        p = p0.copy()
        for g in grads:
            opt.apply([tf.constant(g)], [var])
            ours.apply([g], [p])
        assert_same_bits(p, var.numpy(), f"{kind} after 40 steps")
        if kind == "Nadam":
            assert np.float32(ours.u_product) == opt._u_product.numpy()


def test_functional_forms_equal_the_classes():
    params, grads = data("float32")
    p0 = params[2]
    for kind in KINDS:
        opt = getattr(pyoptim, kind)(learning_rate=0.01, weight_decay=0.01)
        a = p0.copy()
        b = p0.copy()
        s = [np.zeros_like(b) for _ in opt._slot_names]
        u = 1.0
        for t, step in enumerate(grads, start=1):
            opt.apply([step[2]], [a])
            if kind == "Lion":
                assert pyoptim.lion_update(b, step[2], s[0], learning_rate=0.01, weight_decay=0.01) is None
            elif kind == "Adamax":
                pyoptim.adamax_update(b, step[2], s[0], s[1], step=t, learning_rate=0.01, weight_decay=0.01)
            else:
                u = pyoptim.nadam_update(b, step[2], s[0], s[1], step=t, u_product=u,
                                         learning_rate=0.01, weight_decay=0.01)
        assert_same_bits(b, a, f"{kind} functional")
        for name, arr in zip(opt._slot_names, s):
            assert_same_bits(arr, opt.slots[name][0], f"{kind} {name}")
        if kind == "Nadam":
            assert u == opt.state_dict()["u_product"] and type(u) is np.float32


def test_functional_nadam_matches_keras_u_product():
    _, kslots, ku, _ = keras_run("Nadam", "defaults", "float64")
    params, grads = data("float64")
    p, m, v, u = params[0].copy(), np.zeros_like(params[0]), np.zeros_like(params[0]), 1.0
    for t, step in enumerate(grads, start=1):
        u = pyoptim.nadam_update(p, step[0], m, v, step=t, u_product=u)
    assert u.dtype == ku.dtype and u == ku
    assert_same_bits(m, kslots["momentums"][0], "m")
    assert_same_bits(p, keras_run("Nadam", "defaults", "float64")[0][0], "param")


@pytest.mark.parametrize("kind", KINDS)
def test_state_dict_round_trip_is_bit_exact(kind):
    _, straight = ours_run(kind, "weight_decay", "float32")
    params, grads = data("float32")
    first = getattr(pyoptim, kind)(**_kwargs("weight_decay"))
    ps = [p.copy() for p in params]
    for step in grads[:2]:
        first.apply(step, ps)
    state = first.state_dict()
    second = getattr(pyoptim, kind)(**_kwargs("weight_decay"))
    second.load_state_dict(state)
    assert second.iterations == 2
    if kind == "Nadam":
        assert second.u_product == first.u_product and second.u_product != 1.0
    for step in grads[2:]:
        second.apply(step, ps)
    for i, (a, b) in enumerate(zip(ps, straight)):
        assert_same_bits(a, b, f"resumed params[{i}]")


def test_nadam_load_state_dict_refuses_a_bad_u_product():
    opt = pyoptim.Nadam()
    opt.apply([np.ones(3, np.float32)], [np.ones(3, np.float32)])
    state = opt.state_dict()
    fresh = pyoptim.Nadam()
    with pytest.raises(TypeError, match=r"u_product"):
        fresh.load_state_dict({**state, "u_product": "x"})
    with pytest.raises(ValueError, match=r"u_product"):
        fresh.load_state_dict({**state, "u_product": None})
    assert not fresh.built and fresh.u_product is None


def test_none_gradient_skips_its_tensor_and_nadam_counts_only_real_steps():
    params, grads = data("float32")
    for kind in KINDS:
        opt = getattr(pyoptim, kind)()
        ps = [p.copy() for p in params]
        gs = list(grads[0])
        gs[1] = None
        opt.apply(gs, ps)
        assert_same_bits(ps[1], params[1], f"{kind} skipped param")
        assert not any(opt.slots[n][1].any() for n in opt._slot_names)
        assert not np.array_equal(ps[2], params[2])
    opt = pyoptim.Nadam()
    p = np.ones(3, np.float32)
    opt.apply([None], [p])  # Keras: no gradient, no update step, u_product unchanged
    assert opt.iterations == 1 and opt.u_product == 1.0


def _half_dtype(half: str) -> np.dtype:
    """float16, or bfloat16 from ml_dtypes (a test dependency: pyproject's [test] extra)."""
    return np.dtype(ml_dtypes.bfloat16 if half == "bfloat16" else np.float16)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("half", ["float16", "bfloat16"])
def test_half_params_run_in_float32_and_round_once(kind, half, isa):
    """float16/bfloat16 params: float32 state and arithmetic, the param rounded when stored,
    i.e. the float32 kernel on the widened param, narrowed after each step."""
    hdt = _half_dtype(half)
    rng = np.random.default_rng(11)
    p = rng.standard_normal(1003).astype(hdt)
    grads = [rng.standard_normal(1003).astype(hdt) for _ in range(3)]
    ours = getattr(pyoptim, kind)(learning_rate=0.01, weight_decay=0.01)
    ref = getattr(pyoptim, kind)(learning_rate=0.01, weight_decay=0.01)
    q = p.astype(np.float32)
    for g in grads:
        ours.apply([g], [p])
        ref.apply([g.astype(np.float32)], [q])
        q = q.astype(hdt).astype(np.float32)
        assert p.dtype == hdt
        assert_same_bits(p.astype(np.float32), q, f"{half} param")
        for name in ours._slot_names:
            assert ours.slots[name][0].dtype == np.float32
            assert_same_bits(ours.slots[name][0], ref.slots[name][0], f"{half} {name}")


def test_mixed_dtypes_in_one_call():
    p32, p64 = data("float32")[0][2].copy(), data("float64")[0][2].copy()
    g32, g64 = data("float32")[1][0][2], data("float64")[1][0][2]
    for kind in KINDS:
        both = getattr(pyoptim, kind)()
        a, b = p32.copy(), p64.copy()
        both.apply([g32, g64], [a, b])
        one32, one64 = getattr(pyoptim, kind)(), getattr(pyoptim, kind)()
        c, d = p32.copy(), p64.copy()
        one32.apply([g32], [c])
        one64.apply([g64], [d])
        if kind != "Nadam":  # Nadam's u_product is in the first param's dtype (Keras)
            assert_same_bits(a, c, f"{kind} float32")
            assert_same_bits(b, d, f"{kind} float64")
        else:
            assert_same_bits(a, c, "Nadam float32 first")
            assert type(both._u_product) is np.float32


# ---------------------------------------------------------------- the binding and bad input

def lion_args(n=5, dtype=np.float32):
    p = np.arange(n, dtype=dtype)
    return p, np.ones(n, dtype), np.zeros(n, np.float64 if dtype == np.float64 else np.float32)


COEFFS = {"lion": [0.1, 0.9, 0.1, 0.99, 0.01], "adamax": [0.1] * 5, "nadam": [0.1] * 9}


def test_kernel_list_and_config():
    names = _core.elementwise_kernels()
    assert {"adamax", "lion", "nadam"} <= set(names) and len(set(names)) == len(names)
    assert pyoptim.config.config()["elementwise_kernels"] == names
    info = {k["name"]: k for k in _core._build_info()["elementwise_kernels"]}
    assert (info["lion"]["slots"], info["lion"]["coefficients"]) == (1, 5)
    assert (info["adamax"]["slots"], info["adamax"]["coefficients"]) == (2, 5)
    assert (info["nadam"]["slots"], info["nadam"]["coefficients"]) == (2, 9)


def test_unknown_kernel_lists_the_known_ones():
    p, g, m = lion_args()
    known = re.escape(", ".join(_core.elementwise_kernels()))
    with pytest.raises(ValueError, match=rf"unknown element-wise kernel 'adafactor' \(known: {known}\)"):
        _core.elementwise_multi("adafactor", [p], [g], [[m]], COEFFS["lion"], None)
    with pytest.raises(TypeError, match=r"kernel must be a str"):
        _core.elementwise_multi(3, [p], [g], [[m]], COEFFS["lion"], None)


@pytest.mark.parametrize(
    "change,error,pattern",
    [
        (dict(slots=[]), ValueError, r"slots has 0 lists but kernel 'lion' has 1 slot"),
        (dict(slots="x"), TypeError, r"slots must be a list"),
        (dict(coefficients_f32=[0.1] * 4), ValueError, r"coefficients_f32 has 4 values but kernel 'lion' takes 5"),
        (dict(coefficients_f32=[0.1, 0.9, "a", 0.99, 0.01]), TypeError, r"coefficients_f32\[2\] must be a real number"),
        (dict(coefficients_f32=None), ValueError, r"coefficients_f32 is None but a float32"),
        (dict(decay_f32=(0.1,)), TypeError, r"decay_f32 must be None or a pair"),
        (dict(decay_f32=(np.inf, 0.1)), ValueError, r"decay_f32\[0\] must be finite"),
        (dict(variant=1), ValueError, r"variant must be in \[0, 1\)"),
        (dict(no_decay=(True,)), ValueError, r"no_decay must be None or a tuple of 2 bools"),
    ],
)
def test_binding_refuses_bad_arguments_and_modifies_nothing(change, error, pattern):
    p, g, m = lion_args()
    p2, g2, m2 = lion_args()
    before = [p.copy(), m.copy(), p2.copy(), m2.copy()]
    kw = dict(kernel="lion", params=[p, p2], grads=[g, g2], slots=[[m, m2]],
              coefficients_f32=COEFFS["lion"], coefficients_f64=None)
    kw.update(change)
    with pytest.raises(error, match=pattern):
        _core.elementwise_multi(**kw)
    for a, b in zip([p, m, p2, m2], before):
        assert_same_bits(a, b, "untouched")


@pytest.mark.parametrize(
    "bad,error,pattern",
    [
        ("param_int", TypeError, r"params\[1\] must have dtype float32, float64, float16 or bfloat16"),
        ("grad_shape", ValueError, r"grads\[1\] has shape \(4,\) but params\[1\] has shape \(5,\)"),
        ("read_only", ValueError, r"params\[1\] is read-only"),
        ("slot_dtype", TypeError, r"slots\[0\]\[1\] has dtype float64 but params\[1\] has dtype float32"),
        ("slot_count", ValueError, r"slots\[1\] has 1 arrays but params has 2"),
        ("f64_coeffs", ValueError, r"coefficients_f64 is None but a float64 parameter"),
    ],
)
def test_bad_arrays_name_the_argument_and_modify_nothing(bad, error, pattern):
    p, g, m = lion_args()
    p2, g2, m2 = lion_args()
    v, v2 = np.zeros_like(m), np.zeros_like(m2)
    slots = [[m, m2], [v, v2]]
    if bad == "param_int":
        p2 = np.arange(5, dtype=np.int32)
    elif bad == "grad_shape":
        g2 = np.ones(4, np.float32)
    elif bad == "read_only":
        p2.flags.writeable = False
    elif bad == "slot_dtype":
        slots[0][1] = np.zeros(5)
    elif bad == "slot_count":
        slots[1] = [v]
    elif bad == "f64_coeffs":
        p2, g2 = np.arange(5.0), np.ones(5)
        slots = [[m, np.zeros(5)], [v, np.zeros(5)]]
    before = [p.copy(), m.copy(), v.copy()]
    with pytest.raises(error, match=pattern):
        _core.elementwise_multi("adamax", [p, p2], [g, g2], slots, COEFFS["adamax"], None)
    for a, b in zip([p, m, v], before):
        assert_same_bits(a, b, "first tensor untouched")


def test_functional_errors_name_the_functional_arguments():
    p, g, m = lion_args()
    m.flags.writeable = False
    with pytest.raises(ValueError, match=r"^momentum is read-only"):
        pyoptim.lion_update(p, g, m)
    with pytest.raises(TypeError, match=r"^grad has dtype float64 but param has dtype float32"):
        pyoptim.adamax_update(p, np.ones(5), np.zeros(5, np.float32), np.zeros(5, np.float32), step=1)
    with pytest.raises(ValueError, match=r"^v has shape \(4,\)"):
        pyoptim.nadam_update(p, g, np.zeros(5, np.float32), np.zeros(4, np.float32), step=1)
    with pytest.raises(TypeError, match=r"step must be an integer"):
        pyoptim.adamax_update(p, g, np.zeros(5, np.float32), np.zeros(5, np.float32), step=1.0)
    with pytest.raises(ValueError, match=r"step must be the 1-based"):
        pyoptim.nadam_update(p, g, np.zeros(5, np.float32), np.zeros(5, np.float32), step=0)
    assert_same_bits(p, np.arange(5, dtype=np.float32), "param untouched")


@pytest.mark.parametrize(
    "kind,kwargs,error,pattern",
    [
        ("Lion", {"beta_1": 0.0}, ValueError, r"Argument `beta_1` must be in the \[0, 1\] range"),
        ("Lion", {"beta_1": 1.5}, ValueError, r"beta_1"),
        ("Lion", {"beta_1": "0.9"}, TypeError, r"beta_1 must be a real number"),
        ("Lion", {"beta_2": 1.5}, ValueError, r"beta_2 must be in \[0, 1\]"),
        ("Adamax", {"beta_1": 1.0}, ValueError, r"beta_1 must be in \[0, 1\)"),
        ("Adamax", {"epsilon": -1e-7}, ValueError, r"epsilon must be finite and >= 0"),
        ("Adamax", {"learning_rate": float("nan")}, ValueError, r"learning_rate must be finite"),
        ("Nadam", {"beta_2": None}, TypeError, r"beta_2 must be a real number"),
        ("Nadam", {"weight_decay": float("inf")}, ValueError, r"weight_decay must be finite"),
        ("Nadam", {"learning_rate": "x"}, TypeError, r"learning_rate must be a float"),
        ("Nadam", {"clipnorm": -1.0}, ValueError, r"clipnorm"),
    ],
)
def test_bad_hyperparameters(kind, kwargs, error, pattern):
    with pytest.raises(error, match=pattern):
        getattr(pyoptim, kind)(**kwargs)


def test_hyperparameter_assignment_is_checked_and_reverted():
    opt = pyoptim.Lion()
    p = np.ones(3, np.float32)
    opt.apply([np.ones(3, np.float32)], [p])
    with pytest.raises(ValueError, match=r"beta_1"):
        opt.beta_1 = 0.0
    assert opt.beta_1 == 0.9
    nadam = pyoptim.Nadam()
    nadam.apply([np.ones(3, np.float32)], [p])
    u = nadam.u_product
    nadam.beta_1 = 0.8  # checking the new value runs the binding on empty arrays
    assert nadam.u_product == u and nadam.iterations == 1


@pytest.mark.parametrize("kind", KINDS)
def test_defaults_and_config_match_keras(kind):
    ours = getattr(pyoptim, kind)().get_config()
    theirs = getattr(keras.optimizers, kind)().get_config()
    for key, value in ours.items():
        if key != "name":
            assert theirs[key] == pytest.approx(value) if value is not None else theirs[key] is None, key
    assert ours["name"] == kind
    assert getattr(pyoptim, kind).from_config(ours).get_config() == ours


# ---------------------------------------------------------------- Adagrad, Adadelta, Ftrl, Lamb
# The same comparisons for the kernels with initial accumulators (Adagrad, Ftrl), TensorFlow's
# position-dependent Pow (Ftrl, Lamb: Eigen's packet pow on whole AVX packets, libm's on the
# tensor's last n % P elements) and whole-tensor norms in TensorFlow's reduce_sum order (Lamb).

KINDS2 = ("Adagrad", "Adadelta", "Ftrl", "Lamb")
SLOT_ATTRS.update({
    "Adagrad": {"accumulators": "_accumulators"},
    "Adadelta": {"accumulated_grads": "_accumulated_grads",
                 "accumulated_delta_vars": "_accumulated_delta_vars"},
    "Ftrl": {"accumulators": "_accumulators", "linears": "_linears"},
    "Lamb": {"momentums": "_momentums", "velocities": "_velocities"},
})
# Lamb: a float32 tensor above 108388 elements (and float64 above 54194), whose reduce_sum
# TensorFlow splits between its intra-op threads.
LAMB_LENGTHS = (1, 7, 1003, 120011)
_REGS = {"l1_regularization_strength": 0.01, "l2_regularization_strength": 0.02,
         "l2_shrinkage_regularization_strength": 0.03, "beta": 0.5}
_DECAY = {"weight_decay": 0.05, "exclude": (1, 3)}
CONFIGS2 = {
    "Adagrad": {
        "defaults": {},
        "hyper": {"learning_rate": 0.05, "initial_accumulator_value": 0.3, "epsilon": 1e-3},
        "decay": {"learning_rate": 0.01, **_DECAY},
        "schedule": {"learning_rate": "schedule", "initial_accumulator_value": 1.0},
        "clipnorm": {"learning_rate": 0.01, "clipnorm": 0.5},
    },
    "Adadelta": {
        "defaults": {},
        "hyper": {"learning_rate": 1.0, "rho": 0.8, "epsilon": 1e-5},
        "decay": {"learning_rate": 0.5, **_DECAY},
        "schedule": {"learning_rate": "schedule", "rho": 0.9},
    },
    "Ftrl": {
        "defaults": {},  # learning_rate_power -0.5
        "power_0.6": {"learning_rate": 0.05, "learning_rate_power": -0.6,
                      "initial_accumulator_value": 0.2, **_REGS},
        "power_1": {"learning_rate": 0.05, "learning_rate_power": -1.0, **_REGS},
        "power_0": {"learning_rate": 0.05, "learning_rate_power": 0.0, **_REGS},
        "decay": {"learning_rate": 0.05, **_REGS, **_DECAY},
        "clipvalue": {"learning_rate": 0.01, "l2_regularization_strength": 0.01, "clipvalue": 0.1},
    },
    "Lamb": {
        "defaults": {},
        "hyper": {"learning_rate": 0.01, "beta_1": 0.8, "beta_2": 0.95, "epsilon": 1e-6},
        "decay": {"learning_rate": 0.01, **_DECAY},
        "schedule": {"learning_rate": "schedule"},
    },
}
CASES2 = [(k, c) for k in KINDS2 for c in CONFIGS2[k]]


def _kwargs2(kind, config):
    kw = {k: v for k, v in CONFIGS2[kind][config].items() if k != "exclude"}
    if kw.get("learning_rate") == "schedule":
        kw["learning_rate"] = _schedule()
    return kw


def lengths2(kind, config):
    """Lamb's defaults and decay runs have a tensor TensorFlow sums in shards; Ftrl's Pow and
    the other Lamb runs need no tensor above 30011 elements (the Pow emulation is scalar code,
    the slow part of this file)."""
    if kind == "Lamb" and config in ("defaults", "decay"):
        return LAMB_LENGTHS
    if kind in ("Ftrl", "Lamb") or "clipnorm" in CONFIGS2[kind][config]:
        return CLIP_LENGTHS
    return LENGTHS


@functools.lru_cache(maxsize=None)
def keras_run2(kind, config, dtype_name):
    """keras.optimizers.<kind> run eagerly (default threading); (params, slots, variables)."""
    params, grads = data(dtype_name, sizes=lengths2(kind, config))
    opt = getattr(keras.optimizers, kind)(**_kwargs2(kind, config))
    variables = [keras.Variable(p.copy(), dtype=dtype_name) for p in params]
    exclude = CONFIGS2[kind][config].get("exclude")
    if exclude:
        opt.exclude_from_weight_decay(var_list=[variables[i] for i in exclude])
    for step in grads:
        opt.apply([tf.constant(g) for g in step], variables)
    slots = {name: [np.asarray(v.numpy()) for v in getattr(opt, attr)]
             for name, attr in SLOT_ATTRS[kind].items()}
    all_vars = [np.asarray(v.numpy()) for v in opt.variables if "learning_rate" not in v.path]
    return [np.asarray(v.numpy()) for v in variables], slots, all_vars


def ours_run2(kind, config, dtype_name, steps=STEPS, **extra):
    params, grads = data(dtype_name, sizes=lengths2(kind, config))
    opt = getattr(pyoptim, kind)(**_kwargs2(kind, config), **extra)
    ps = [p.copy() for p in params]
    exclude = CONFIGS2[kind][config].get("exclude")
    if exclude:
        opt.exclude_from_weight_decay(indices=list(exclude))
    for step in grads[:steps]:
        opt.apply(step, ps)
    return opt, ps


def assert_matches_keras2(kind, config, dtype_name, opt, ps, what=""):
    kp, kslots, kvars = keras_run2(kind, config, dtype_name)
    assert opt.iterations == STEPS
    for i, (a, b) in enumerate(zip(ps, kp)):
        assert_same_bits(a, b, f"params[{i}] {what}")
    slots = opt.state_dict()["slots"]
    assert list(slots) == list(kslots)
    for name in kslots:
        for i, (a, b) in enumerate(zip(slots[name], kslots[name])):
            assert_same_bits(a, b, f"{name}[{i}] {what}")
    ours = opt.variables  # Keras' order: iterations, then the slots interleaved per variable
    assert len(ours) == len(kvars)
    for i, (a, b) in enumerate(zip(ours, kvars)):
        assert a.shape == b.shape and a.tobytes() == b.astype(a.dtype).tobytes(), f"variables[{i}]"


@pytest.mark.parametrize("dtype_name", ["float32", "float64"])
@pytest.mark.parametrize("kind,config", CASES2)
def test_matches_keras_bitwise_2(kind, config, dtype_name, all_isas):
    for isa in all_isas:
        pyoptim.set_isa(isa)
        opt, ps = ours_run2(kind, config, dtype_name)
        assert_matches_keras2(kind, config, dtype_name, opt, ps, f"({isa})")


@pytest.mark.parametrize("value", [0.1, 0.3, 1])
@pytest.mark.parametrize("kind", ["Adagrad", "Ftrl"])
def test_initial_accumulators_are_keras_constants(kind, value):
    """initializers.Constant(0.1) goes through float32: float64 state starts at
    float64(float32(0.1)), as Keras' does."""
    for dtype_name in ("float32", "float64"):
        theirs = getattr(keras.optimizers, kind)(initial_accumulator_value=value)
        theirs.build([keras.Variable(np.zeros(3, dtype_name), dtype=dtype_name)])
        ours = getattr(pyoptim, kind)(initial_accumulator_value=value)
        ours.apply([None], [np.zeros(3, dtype_name)])
        assert_same_bits(ours.slots["accumulators"][0], theirs._accumulators[0].numpy(), dtype_name)
    assert ours.slots["accumulators"][0][0] == np.float64(np.float32(value))


@pytest.mark.parametrize("dtype_name", ["float32", "float64"])
def test_ftrl_l1_zero_clip_bound_is_eager_keras_plus_zero(dtype_name, all_isas):
    """With l1 = 0 and a linear of exactly +0.0 (zero parameter, zero gradient) Keras' clip to
    [-0.0, 0.0] gives -0.0 on the packet lanes when the lower bound is -0.0; executing eagerly
    Keras gets +0.0 for it (TensorFlow's scalar cache), and so does pyoptim."""
    p0 = np.zeros(37, dtype_name)
    g = np.ones(37, dtype_name)
    g[::3] = 0
    var = keras.Variable(p0.copy(), dtype=dtype_name)
    keras.optimizers.Ftrl().apply([tf.constant(g)], [var])
    assert not np.signbit(var.numpy()[::3]).any()  # the +0.0 bound (-0.0: -0.0 on the packets)
    for isa in all_isas:
        pyoptim.set_isa(isa)
        p = p0.copy()
        pyoptim.Ftrl().apply([g], [p])
        assert_same_bits(p, var.numpy(), f"Ftrl l1=0 ({isa})")


def test_ftrl_and_lamb_nan_inf_and_tiny_like_keras(all_isas):
    """NaN and infinities propagate as in Keras; tiny values go through TensorFlow's FTZ/DAZ."""
    rng = np.random.default_rng(3)
    p0 = rng.standard_normal(45).astype(np.float32)
    p0[4] = 1e-39  # subnormal
    grads = [rng.standard_normal(45).astype(np.float32) for _ in range(3)]
    grads[0][3], grads[1][5], grads[2][41], grads[1][0] = np.nan, np.inf, -np.inf, 1e-30
    grads[0][10] = 3e-39
    for kind, kw in (("Ftrl", {"learning_rate": 0.1, "learning_rate_power": -0.7, **_REGS}),
                     ("Lamb", {"learning_rate": 0.1}), ("Adagrad", {}), ("Adadelta", {})):
        opt = getattr(keras.optimizers, kind)(**kw)
        var = keras.Variable(p0.copy())
        for g in grads[:2] if kind == "Lamb" else grads:  # Lamb: NaN everywhere after an inf
            opt.apply([tf.constant(g)], [var])
        for isa in all_isas:
            pyoptim.set_isa(isa)
            ours = getattr(pyoptim, kind)(**kw)
            p = p0.copy()
            for g in grads[:2] if kind == "Lamb" else grads:
                ours.apply([g], [p])
            theirs = var.numpy()
            assert np.array_equal(p, theirs, equal_nan=True), f"{kind} param ({isa})"
            if kind == "Adadelta":
                # Every non-NaN bit.  A NaN's sign: Adadelta's -q is TensorFlow's Neg (the sign
                # bit flipped, NaN included: elementwise.hpp's negate_tf), but where both operands
                # of an addition are NaN the result is one of them, and which one depends on the
                # operand order the compiler picks (1 of these 3 NaNs differs in sign).
                real = ~np.isnan(theirs)
                assert np.isnan(p).sum() == 3
                assert_same_bits(p[real], theirs[real], f"{kind} param ({isa})")
            else:
                assert_same_bits(p, theirs, f"{kind} param ({isa})")


def test_ftrl_many_steps_and_powers_match_keras():
    rng = np.random.default_rng(8)
    p0 = rng.standard_normal(29).astype(np.float32)
    grads = [rng.standard_normal(29).astype(np.float32) for _ in range(25)]
    for power in (-0.5, -0.6, -1.0, 0.0, -0.25):
        kw = {"learning_rate": 0.05, "learning_rate_power": power, **_REGS}
        opt, ours = keras.optimizers.Ftrl(**kw), pyoptim.Ftrl(**kw)
        var, p = keras.Variable(p0.copy()), p0.copy()
        for g in grads:
            opt.apply([tf.constant(g)], [var])
            ours.apply([g], [p])
        assert_same_bits(p, var.numpy(), f"Ftrl power {power}")


def test_functional_forms_equal_the_classes_2():
    params, grads = data("float32")
    p0 = params[2]
    for kind in KINDS2:
        kw = {"learning_rate": 0.01, "weight_decay": 0.01}
        opt = getattr(pyoptim, kind)(**kw)
        a, b = p0.copy(), p0.copy()
        opt.apply([None], [a])  # builds the slots
        s = [opt.slots[name][0].copy() for name in opt._slot_names]
        for t, step in enumerate(grads, start=1):
            opt.apply([step[2]], [a])
            if kind == "Adagrad":
                assert pyoptim.adagrad_update(b, step[2], s[0], **kw) is None
            elif kind == "Adadelta":
                pyoptim.adadelta_update(b, step[2], s[0], s[1], **kw)
            elif kind == "Ftrl":
                pyoptim.ftrl_update(b, step[2], s[0], s[1], **kw)
            else:
                pyoptim.lamb_update(b, step[2], s[0], s[1], step=opt.iterations, **kw)
        assert_same_bits(b, a, f"{kind} functional")
        for name, arr in zip(opt._slot_names, s):
            assert_same_bits(arr, opt.slots[name][0], f"{kind} {name}")


def test_lamb_reduction_threads_is_tensorflow_s_intra_op_count():
    """The default (None) is TensorFlow's default thread count (this process's CPUs: the Keras
    runs above use it); an explicit count is honoured: here TensorFlow runs with 3 intra-op
    threads (set before it starts, so in a subprocess) and Lamb(reduction_threads=3) gives
    Keras' bits, which 1 and 2 do not (for these data, chosen so that every order rounds the
    trust ratio differently; 200003 elements: 3 shards in float32 and float64)."""
    import json
    import os

    from test_keras import _run_python

    assert pyoptim.Lamb()._reduction_threads() == len(os.sched_getaffinity(0))
    out = _run_python("""
        import json, numpy as np, tensorflow as tf
        tf.config.threading.set_intra_op_parallelism_threads(3)
        import keras, pyoptim
        res = {}
        for dt, seed in (("float32", 1), ("float64", 6)):
            rng = np.random.default_rng(seed)
            n = 200003
            p0 = (rng.standard_normal(n) * 10.0 ** rng.uniform(-2, 2, n)).astype(dt)
            grads = [(rng.standard_normal(n) * 10.0 ** rng.uniform(-3, 1, n)).astype(dt)
                     for _ in range(4)]
            opt, var = keras.optimizers.Lamb(learning_rate=0.1), keras.Variable(p0.copy())
            for g in grads:
                opt.apply([tf.constant(g)], [var])
            for t in (1, 2, 3):
                ours, p = pyoptim.Lamb(learning_rate=0.1, reduction_threads=t), p0.copy()
                for g in grads:
                    ours.apply([g], [p])
                res[f"{dt}/{t}"] = p.tobytes() == var.numpy().tobytes()
        print(json.dumps(res))
    """)
    res = json.loads(out.strip().splitlines()[-1])
    assert res == {"float32/1": False, "float32/2": False, "float32/3": True,
                   "float64/1": False, "float64/2": False, "float64/3": True}, res


def test_lamb_explicit_default_count_equals_none():
    _, ps = ours_run2("Lamb", "defaults", "float32")
    import os
    _, explicit = ours_run2("Lamb", "defaults", "float32", reduction_threads=len(os.sched_getaffinity(0)))
    for i, (a, b) in enumerate(zip(ps, explicit)):
        assert_same_bits(a, b, f"params[{i}]")


@pytest.mark.parametrize("kind", KINDS2)
def test_state_dict_round_trip_is_bit_exact_2(kind):
    config = "decay"
    _, straight = ours_run2(kind, config, "float32")
    params, grads = data("float32", sizes=lengths2(kind, config))
    first = getattr(pyoptim, kind)(**_kwargs2(kind, config))
    first.exclude_from_weight_decay(indices=[1, 3])
    ps = [p.copy() for p in params]
    for step in grads[:2]:
        first.apply(step, ps)
    state = first.state_dict()
    second = getattr(pyoptim, kind)()
    second.load_state_dict(state)
    second.exclude_from_weight_decay(indices=[1, 3])
    assert second.iterations == 2 and second.get_config() == {**first.get_config(), "name": kind}
    for step in grads[2:]:
        second.apply(step, ps)
    for i, (a, b) in enumerate(zip(ps, straight)):
        assert_same_bits(a, b, f"resumed params[{i}]")


@pytest.mark.parametrize("kind", KINDS2)
def test_defaults_and_config_match_keras_2(kind):
    ours = getattr(pyoptim, kind)().get_config()
    theirs = getattr(keras.optimizers, kind)().get_config()
    for key, value in ours.items():
        if key in ("name", "reduction_threads"):
            continue
        assert (theirs[key] == pytest.approx(value)) if value is not None else theirs[key] is None, key
    assert ours["name"] == kind
    assert getattr(pyoptim, kind).from_config(ours).get_config() == ours


@pytest.mark.parametrize(
    "kind,kwargs,error,pattern",
    [
        ("Adagrad", {"epsilon": -1.0}, ValueError, r"epsilon must be finite and >= 0"),
        ("Adagrad", {"initial_accumulator_value": float("nan")}, ValueError,
         r"initial_accumulator_value must be finite"),
        ("Adadelta", {"rho": 1.5}, ValueError, r"rho must be in \[0, 1\]"),
        ("Adadelta", {"rho": "x"}, TypeError, r"rho must be a real number"),
        ("Ftrl", {"learning_rate_power": 0.5}, ValueError,
         r"`learning_rate_power` needs to be negative or zero\. Received: learning_rate_power=0\.5"),
        ("Ftrl", {"initial_accumulator_value": -0.1}, ValueError,
         r"`initial_accumulator_value` needs to be positive or zero"),
        ("Ftrl", {"l1_regularization_strength": -1.0}, ValueError, r"`l1_regularization_strength`"),
        ("Ftrl", {"l2_regularization_strength": -1.0}, ValueError, r"`l2_regularization_strength`"),
        ("Ftrl", {"l2_shrinkage_regularization_strength": -1.0}, ValueError,
         r"`l2_shrinkage_regularization_strength` needs to be positive"),
        ("Ftrl", {"beta": float("inf")}, ValueError, r"beta must be finite"),
        ("Ftrl", {"beta": None}, TypeError, r"beta must be a real number"),
        ("Lamb", {"beta_1": 1.0}, ValueError, r"beta_1 must be in \[0, 1\)"),
        ("Lamb", {"reduction_threads": 0}, ValueError, r"reduction_threads must be None or an int >= 1"),
        ("Lamb", {"reduction_threads": 2.0}, TypeError, r"reduction_threads must be None or an int"),
        ("Lamb", {"reduction_threads": True}, TypeError, r"reduction_threads must be None or an int"),
    ],
)
def test_bad_hyperparameters_2(kind, kwargs, error, pattern):
    with pytest.raises(error, match=pattern):
        getattr(pyoptim, kind)(**kwargs)


def test_bad_reduction_threads_in_the_binding_and_the_functional_form():
    p, g = np.ones(5, np.float32), np.ones(5, np.float32)
    m, v = np.zeros(5, np.float32), np.zeros(5, np.float32)
    coeffs = [0.1, 0.001, 0.1, 0.001, 1e-7, 0.01]
    for bad, error in ((0, ValueError), (-3, ValueError), (1.0, TypeError), (None, TypeError),
                       (2**40, ValueError)):
        with pytest.raises(error, match=r"reduction_threads must be"):
            _core.elementwise_multi("lamb", [p], [g], [[m], [v]], coeffs, None, reduction_threads=bad)
    with pytest.raises(ValueError, match=r"reduction_threads must be None or an int >= 1"):
        pyoptim.lamb_update(p, g, m, v, step=1, reduction_threads=0)
    with pytest.raises(ValueError, match=r"^accumulator has shape \(4,\)"):
        pyoptim.ftrl_update(p, g, np.zeros(4, np.float32), m)
    with pytest.raises(ValueError, match=r"^accumulated_delta_var is read-only"):
        v.flags.writeable = False
        pyoptim.adadelta_update(p, g, m, v)
    assert_same_bits(p, np.ones(5, np.float32), "untouched")
    assert_same_bits(m, np.zeros(5, np.float32), "untouched")
    opt = pyoptim.Lamb()
    with pytest.raises(ValueError, match=r"reduction_threads"):
        opt.reduction_threads = -1
    assert opt.reduction_threads is None


@pytest.mark.parametrize("kind", KINDS2)
@pytest.mark.parametrize("half", ["float16", "bfloat16"])
def test_half_params_run_in_float32_and_round_once_2(kind, half, isa):
    hdt = _half_dtype(half)
    rng = np.random.default_rng(11)
    p = rng.standard_normal(1003).astype(hdt)
    grads = [rng.standard_normal(1003).astype(hdt) for _ in range(3)]
    ours = getattr(pyoptim, kind)(learning_rate=0.01, weight_decay=0.01)
    ref = getattr(pyoptim, kind)(learning_rate=0.01, weight_decay=0.01)
    q = p.astype(np.float32)
    for g in grads:
        ours.apply([g], [p])
        if kind == "Lamb":  # the decayed param is stored (rounded) before its norm is taken
            q = (q - q * np.float32(0.01) * np.float32(0.01)).astype(hdt).astype(np.float32)
            ref.weight_decay = None
        ref.apply([g.astype(np.float32)], [q])
        ref.weight_decay = 0.01
        q = q.astype(hdt).astype(np.float32)
        assert_same_bits(p.astype(np.float32), q, f"{half} param")
        for name in ours._slot_names:
            assert ours.slots[name][0].dtype == np.float32
            assert_same_bits(ours.slots[name][0], ref.slots[name][0], f"{half} {name}")
