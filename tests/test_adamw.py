"""pyoptim.AdamW (NumPy, stateful) against keras.optimizers.AdamW (real Keras, eager):
the same bits over several steps, Keras' defaults and argument order, weight_decay=None
refused as Keras refuses it, the state round trip, and the decay fused into the one
native call of each apply."""
from __future__ import annotations

import inspect

import keras
import numpy as np
import pytest
import tensorflow as tf

import pyoptim
from keras_reference import assert_state_matches_keras, keras_optimizer, run_keras
from test_core import assert_same_bits

SHAPES = [(3,), (17, 5), (), (0,), (1000,), (40_000,), (7, 9, 3)]
STEPS = 5
KERAS_MESSAGE = r"Argument `weight_decay` must be a float\. Received: weight_decay=None"


def make(rng, steps=STEPS, dtype=np.float32, shapes=SHAPES):
    params = [rng.standard_normal(s).astype(dtype) for s in shapes]
    grads = [[rng.standard_normal(s).astype(dtype) for s in shapes] for _ in range(steps)]
    return params, grads


def run_ours(kwargs, params, grads_per_step, opt=None):
    opt = opt or pyoptim.AdamW(**kwargs)
    ps = [p.copy() for p in params]
    for grads in grads_per_step:
        opt.apply(grads, ps)
    return opt, ps


def assert_matches_keras(kwargs, params, grads):
    kp, kslots = run_keras("AdamW", kwargs, params, grads)
    opt, ps = run_ours(kwargs, params, grads)
    assert_state_matches_keras(opt, ps, kp, kslots, len(grads))


# --------------------------------------------------------------------- bits

CASES_32 = [
    {},  # Keras' defaults: weight_decay=0.004
    {"learning_rate": 0.01, "weight_decay": 0.1},
    {"learning_rate": 0.01, "weight_decay": 0.05, "amsgrad": True},
    {"weight_decay": 0.02, "beta_1": 0.8, "beta_2": 0.99, "epsilon": 1e-4},
    {"learning_rate": 0.01, "clipnorm": 0.5},
    {"learning_rate": 0.01, "clipvalue": 0.3, "amsgrad": True},
    {"learning_rate": 0.01, "global_clipnorm": 1.0},
    {"weight_decay": 0.0},
]


@pytest.mark.parametrize("kwargs", CASES_32)
def test_float32_matches_keras_adamw_bitwise(kwargs, rng):
    params, grads = make(rng)
    assert_matches_keras(kwargs, params, grads)


# float64: float32-representable learning rate, weight decay and betas (README's float64 note:
# Keras rounds them, the default betas 0.9 and 0.999 included, through float32 in float64).
B64 = {"beta_1": 0.875, "beta_2": 1 - 2.0**-10}
CASES_64 = [
    {"learning_rate": 2.0**-10, "weight_decay": 2.0**-6, **B64},
    {"learning_rate": 2.0**-7, "weight_decay": 0.125, "amsgrad": True, **B64},
    {"learning_rate": 2.0**-7, "weight_decay": 2.0**-5, "clipnorm": 0.5, **B64},
    {"learning_rate": 2.0**-7, "weight_decay": 2.0**-5, "global_clipnorm": 1.5, **B64},
    {"learning_rate": 2.0**-7, "weight_decay": 2.0**-5, "clipvalue": 0.25, "amsgrad": True, **B64},
]


@pytest.mark.parametrize("kwargs", CASES_64)
def test_float64_matches_keras_adamw_bitwise(kwargs, rng):
    params, grads = make(rng, dtype=np.float64)
    assert_matches_keras(kwargs, params, grads)


def test_learning_rate_schedule_matches_keras(rng):
    params, grads = make(rng, steps=6)
    schedule = keras.optimizers.schedules.ExponentialDecay(0.01, decay_steps=2, decay_rate=0.5)
    assert_matches_keras({"learning_rate": schedule, "weight_decay": 0.1}, params, grads)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_exclude_from_weight_decay_matches_keras(dtype, rng):
    kwargs = {"learning_rate": 2.0**-7, "weight_decay": 0.125, "amsgrad": True, **B64}
    params, grads = make(rng, dtype=dtype)
    kopt = keras_optimizer("AdamW", **kwargs)
    kv = [keras.Variable(p.copy(), dtype=str(p.dtype)) for p in params]
    kopt.exclude_from_weight_decay(var_list=[kv[0], kv[2]])
    for gs in grads:
        kopt.apply([tf.constant(g) for g in gs], kv)
    theirs = [v.numpy() for v in kv]

    a = [p.copy() for p in params]
    by_array = pyoptim.AdamW(**kwargs)
    by_array.exclude_from_weight_decay(var_list=[a[0], a[2]])
    by_index = pyoptim.AdamW(**kwargs)
    by_index.exclude_from_weight_decay(indices=[0, 2])
    _, b = run_ours(kwargs, params, grads, opt=by_index)
    for gs in grads:
        by_array.apply(gs, a)
    for i in range(len(params)):
        assert_same_bits(a[i], theirs[i], f"by array: params[{i}]")
        assert_same_bits(b[i], theirs[i], f"by index: params[{i}]")
    # the exclusion mattered: without it params[0] differs
    _, c = run_ours(kwargs, params, grads)
    assert not np.array_equal(c[0], theirs[0])


def test_decay_is_fused_into_one_native_call_per_apply(rng, monkeypatch):
    calls = []
    adam_multi = pyoptim._core._adam_multi

    def counting(*args):
        calls.append(args)
        return adam_multi(*args)

    params, grads = make(rng, steps=3)
    opt = pyoptim.AdamW(learning_rate=0.01, weight_decay=0.1)
    opt.exclude_from_weight_decay(indices=[1])
    monkeypatch.setattr(pyoptim._core, "_adam_multi", counting)
    _, ps = run_ours({}, params, grads, opt=opt)
    monkeypatch.undo()
    assert len(calls) == len(grads)  # one call per apply, for all the arrays
    for args in calls:
        assert len(args[0]) == len(params)
        assert args[-2] == 0.1  # weight_decay, applied by the kernel in the same pass
        assert args[-1] == (False, True) + (False,) * (len(params) - 2)
    # and it is Keras' arithmetic
    kopt = keras_optimizer("AdamW", learning_rate=0.01, weight_decay=0.1)
    kv = [keras.Variable(p.copy()) for p in params]
    kopt.exclude_from_weight_decay(var_list=[kv[1]])
    for gs in grads:
        kopt.apply([tf.constant(g) for g in gs], kv)
    for i, (a, v) in enumerate(zip(ps, kv)):
        assert_same_bits(a, v.numpy(), f"params[{i}]")


# ------------------------------------------------------------------ defaults

SHARED = ["learning_rate", "weight_decay", "beta_1", "beta_2", "epsilon", "amsgrad",
          "clipnorm", "clipvalue", "global_clipnorm"]


def test_constructor_defaults_and_order_are_keras_adamws():
    ours = inspect.signature(pyoptim.AdamW).parameters
    theirs = inspect.signature(keras.optimizers.AdamW).parameters
    for name in SHARED:
        assert ours[name].default == theirs[name].default, name
    # the same positional order for the arguments both have: AdamW(0.01, 0.1) is (lr, weight_decay)
    assert [n for n in ours if n in SHARED] == [n for n in theirs if n in SHARED]
    opt = pyoptim.AdamW(0.01, 0.1)
    assert (opt.learning_rate, opt.weight_decay) == (0.01, 0.1)


def test_get_config_has_keras_adamws_keys_and_default_values():
    ours = pyoptim.AdamW().get_config()
    theirs = keras.optimizers.AdamW().get_config()
    shared = set(ours) & set(theirs)
    assert set(ours) <= set(theirs)  # every key of ours is a Keras key
    assert set(SHARED) | {"name"} <= shared
    for key in shared - {"name", "learning_rate"}:
        assert ours[key] == theirs[key], key
    # Keras reports its float32 learning-rate variable's value
    assert np.float32(ours["learning_rate"]) == np.float32(theirs["learning_rate"])
    assert ours["weight_decay"] == 0.004
    assert ours["name"] == "AdamW"
    assert pyoptim.AdamW.from_config(ours).get_config() == ours
    assert "AdamW(" in repr(pyoptim.AdamW()) and "weight_decay=0.004" in repr(pyoptim.AdamW())


def test_is_an_adam_like_keras_adamw():
    assert issubclass(keras.optimizers.AdamW, keras.optimizers.Adam)
    assert isinstance(pyoptim.AdamW(), pyoptim.Adam)
    assert "AdamW" in pyoptim.__all__


def test_unsupported_keras_arguments_are_refused_as_for_adam():
    with pytest.raises(TypeError):
        pyoptim.AdamW(use_ema=True)
    with pytest.raises(TypeError):
        pyoptim.Adam(use_ema=True)


# ------------------------------------------------------------ weight_decay=None

def test_weight_decay_none_is_refused_as_keras_refuses_it():
    with pytest.raises(ValueError, match=KERAS_MESSAGE):
        keras.optimizers.AdamW(weight_decay=None)
    with pytest.raises(ValueError, match=KERAS_MESSAGE):
        pyoptim.AdamW(weight_decay=None)
    with pytest.raises(ValueError, match=KERAS_MESSAGE):
        pyoptim.AdamW.from_config({**pyoptim.AdamW().get_config(), "weight_decay": None})
    pyoptim.Adam(weight_decay=None)  # Adam still takes None


def test_weight_decay_none_assignment_is_refused_and_changes_nothing(rng):
    params, grads = make(rng, steps=1)
    opt, _ = run_ours({"weight_decay": 0.1}, params, grads)
    with pytest.raises(ValueError, match=KERAS_MESSAGE):
        opt.weight_decay = None
    assert opt.weight_decay == 0.1
    opt.weight_decay = 0.2  # other values are fine
    assert opt.get_config()["weight_decay"] == 0.2
    with pytest.raises(TypeError, match=r"weight_decay must be a real number"):
        opt.weight_decay = "x"
    assert opt.weight_decay == 0.2


def test_load_state_dict_refuses_weight_decay_none_and_changes_nothing(rng):
    params, grads = make(rng, steps=1)
    opt, _ = run_ours({"weight_decay": 0.1}, params, grads)
    state = opt.state_dict()
    state["config"] = {**state["config"], "weight_decay": None}
    target = pyoptim.AdamW(weight_decay=0.3)
    with pytest.raises(ValueError, match=KERAS_MESSAGE):
        target.load_state_dict(state)
    assert target.weight_decay == 0.3 and not target.built


# ---------------------------------------------------------------- state

@pytest.mark.parametrize("kwargs", [{}, {"learning_rate": 0.01, "weight_decay": 0.1, "amsgrad": True, "clipnorm": 0.5}])
def test_state_dict_round_trip_is_bit_exact(kwargs, rng):
    params, grads = make(rng, steps=4)
    _, straight = run_ours(kwargs, params, grads)
    first = pyoptim.AdamW(**kwargs)
    ps = [p.copy() for p in params]
    for gs in grads[:2]:
        first.apply(gs, ps)
    state = first.state_dict()
    assert state["optimizer"] == "AdamW"
    second = pyoptim.AdamW()  # the saved hyperparameters come back with the state
    if kwargs.get("amsgrad"):
        second = pyoptim.AdamW(amsgrad=True)
    second.load_state_dict(state)
    assert second.iterations == 2
    assert second.get_config() == {**state["config"], "name": second.name}
    for gs in grads[2:]:
        second.apply(gs, ps)
    for i, (a, b) in enumerate(zip(ps, straight)):
        assert_same_bits(a, b, f"resumed params[{i}]")


def test_variables_are_keras_adamws_variables_in_keras_order(rng):
    params, grads = make(rng, steps=3, shapes=[(3,), (17, 5), ()])
    kopt = keras_optimizer("AdamW", amsgrad=True)
    kv = [keras.Variable(p.copy()) for p in params]
    for gs in grads:
        kopt.apply([tf.constant(g) for g in gs], kv)
    theirs = [v.numpy() for v in kopt.variables if "learning_rate" not in v.path]
    opt, _ = run_ours({"amsgrad": True}, params, grads)
    ours = opt.variables
    assert len(ours) == len(theirs) and int(ours[0]) == int(theirs[0]) == 3
    for i, (a, b) in enumerate(zip(ours[1:], theirs[1:])):
        assert_same_bits(a, b, f"variables[{i + 1}]")


def test_state_of_another_kind_is_refused(rng):
    params, grads = make(rng, steps=1)
    adam, _ = run_ours({}, params, grads, opt=pyoptim.Adam(weight_decay=0.004))
    with pytest.raises(ValueError, match=r"state is from a Adam optimizer, this optimizer is AdamW"):
        pyoptim.AdamW().load_state_dict(adam.state_dict())
