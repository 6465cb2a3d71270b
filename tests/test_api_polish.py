"""The NumPy stateful optimizers as Keras users use them (issue [api-polish],
items 1-6 and 7a): assignable learning rate and hyperparameters, a state round
trip that restores the configuration, NumPy scalars as arguments, gradients as
users have them, a view of the state, exclude_from_weight_decay, and
global_clipnorm with Keras' bits.  Comparisons run real keras.optimizers (eager)."""
from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

import pyoptim
from keras_reference import keras_optimizer, run_keras
from test_core import assert_same_bits

SHAPES = [(3,), (17, 5), (), (40,)]


def make(rng, steps=3, dtype=np.float32, shapes=SHAPES):
    params = [rng.standard_normal(s).astype(dtype) for s in shapes]
    grads = [[rng.standard_normal(s).astype(dtype) for s in shapes] for _ in range(steps)]
    return params, grads


def keras_vars(params):
    return [keras.Variable(p.copy(), dtype=str(p.dtype)) for p in params]


def assert_all_same_bits(ours, theirs, what="param"):
    assert len(ours) == len(theirs)
    for i, (a, b) in enumerate(zip(ours, theirs)):
        assert_same_bits(np.asarray(a), np.asarray(b), f"{what}[{i}]")


def snapshot(opt):
    s = opt.state_dict()
    return s["iterations"], s["config"], s["slots"]


def assert_unchanged(opt, before):
    it, cfg, slots = snapshot(opt)
    assert it == before[0] and cfg == before[1]
    if before[2] is None:
        assert slots is None
    else:
        for k in before[2]:
            assert_all_same_bits(slots[k], before[2][k], k)


# ------------------------------------------------------------ 1. learning_rate setter

def test_learning_rate_assignment_mid_training_matches_keras(rng):
    params, grads = make(rng, steps=4)
    kopt = keras_optimizer("Adam", learning_rate=0.001)
    kv = keras_vars(params)
    opt, ps = pyoptim.Adam(learning_rate=0.001), [p.copy() for p in params]
    for step, gs in enumerate(grads):
        if step == 2:
            kopt.learning_rate = 0.01
            opt.learning_rate = 0.01
        kopt.apply([tf.constant(g) for g in gs], kv)
        opt.apply(gs, ps)
    assert opt.learning_rate == 0.01 and opt.get_config()["learning_rate"] == 0.01
    assert_all_same_bits(ps, [v.numpy() for v in kv])


def test_learning_rate_assignment_of_a_schedule(rng):
    params, grads = make(rng, steps=4)
    schedule = keras.optimizers.schedules.ExponentialDecay(0.01, decay_steps=1, decay_rate=0.5)
    kopt = keras_optimizer("SGD", learning_rate=0.1, momentum=0.9)
    kv = keras_vars(params)
    opt, ps = pyoptim.SGD(learning_rate=0.1, momentum=0.9), [p.copy() for p in params]
    for step, gs in enumerate(grads):
        if step == 1:
            kopt.learning_rate = schedule
            opt.learning_rate = schedule
        kopt.apply([tf.constant(g) for g in gs], kv)
        opt.apply(gs, ps)
    assert opt.learning_rate == pytest.approx(float(schedule(4)))
    assert_all_same_bits(ps, [v.numpy() for v in kv])


@pytest.mark.parametrize("value,exc,match", [
    ("fast", TypeError, r"learning_rate must be a float or a callable"),
    (True, TypeError, r"learning_rate must be a float or a callable of the step, got bool"),
    (float("nan"), ValueError, r"learning_rate must be finite"),
    (float("inf"), ValueError, r"learning_rate must be finite"),
])
def test_bad_learning_rate_assignment_is_refused_and_changes_nothing(value, exc, match):
    opt = pyoptim.Adam(learning_rate=0.01)
    with pytest.raises(exc, match=match):
        opt.learning_rate = value
    assert opt.learning_rate == 0.01


def test_learning_rate_accepts_numpy_scalars():
    opt = pyoptim.RMSprop()
    opt.learning_rate = np.float32(0.5)
    assert opt.learning_rate == 0.5


# ------------------------------------------------------------ 2. hyperparameters after construction

@pytest.mark.parametrize("kind,kwargs,changes", [
    ("Adam", {"learning_rate": 0.01}, {"beta_1": 0.5, "beta_2": 0.9, "epsilon": 1e-3, "weight_decay": 0.1}),
    ("Adam", {"amsgrad": True}, {"clipvalue": 0.3}),
    ("SGD", {"learning_rate": 0.1, "momentum": 0.9}, {"momentum": 0.5, "nesterov": True, "global_clipnorm": 0.7}),
    ("RMSprop", {"momentum": 0.5, "centered": True}, {"rho": 0.5, "momentum": 0.25, "epsilon": 1e-4, "clipnorm": 0.5}),
])
def test_hyperparameter_changes_mid_training_are_honoured_as_in_keras(kind, kwargs, changes, rng):
    params, grads = make(rng, steps=4)
    kopt = keras_optimizer(kind, **kwargs)
    kv = keras_vars(params)
    opt, ps = getattr(pyoptim, kind)(**kwargs), [p.copy() for p in params]
    for step, gs in enumerate(grads):
        if step == 2:
            for k, v in changes.items():
                setattr(kopt, k, v)
                setattr(opt, k, v)
        kopt.apply([tf.constant(g) for g in gs], kv)
        opt.apply(gs, ps)
    cfg = opt.get_config()
    for k, v in changes.items():
        assert cfg[k] == v
    assert_all_same_bits(ps, [v.numpy() for v in kv])


@pytest.mark.parametrize("kind,kwargs,name,value", [
    ("Adam", {"learning_rate": 0.1}, "amsgrad", True),
    ("RMSprop", {}, "centered", True),
    ("SGD", {"learning_rate": 0.1}, "momentum", 0.9),
    ("SGD", {"learning_rate": 0.1, "momentum": 0.9}, "momentum", 0.0),
    ("RMSprop", {}, "momentum", 0.5),
])
def test_structural_change_before_the_first_apply_is_honoured(kind, kwargs, name, value, rng):
    params, grads = make(rng)
    opt = getattr(pyoptim, kind)(**kwargs)
    setattr(opt, name, value)
    assert opt.get_config()[name] == value
    ps = [p.copy() for p in params]
    for gs in grads:
        opt.apply(gs, ps)
    kp, kslots = run_keras(kind, {**kwargs, name: value}, params, grads)
    assert_all_same_bits(ps, kp)
    assert set(opt.slots) == set(kslots)


@pytest.mark.parametrize("kind,kwargs,name,value", [
    ("Adam", {"learning_rate": 0.1}, "amsgrad", True),
    ("Adam", {"amsgrad": True}, "amsgrad", False),
    ("RMSprop", {}, "centered", True),
    ("RMSprop", {}, "momentum", 0.5),
    ("RMSprop", {"momentum": 0.5}, "momentum", 0.0),
    ("SGD", {"learning_rate": 0.1}, "momentum", 0.9),
    ("SGD", {"learning_rate": 0.1, "momentum": 0.9}, "momentum", 0.0),
])
def test_structural_change_once_built_is_refused_naming_the_attribute(kind, kwargs, name, value, rng):
    params, grads = make(rng, steps=1)
    opt = getattr(pyoptim, kind)(**kwargs)
    opt.apply(grads[0], [p.copy() for p in params])
    before = snapshot(opt)
    with pytest.raises(ValueError, match=rf"cannot set {name}={value!r}.*already has state.*Set {name} before"):
        setattr(opt, name, value)
    assert_unchanged(opt, before)


@pytest.mark.parametrize("kind,name,value,exc,match", [
    ("Adam", "beta_1", 1.5, ValueError, r"beta_1 must be in \[0, 1\)"),
    ("Adam", "epsilon", -1.0, ValueError, r"epsilon must be finite and >= 0"),
    ("Adam", "weight_decay", "x", TypeError, r"weight_decay must be a real number"),
    ("SGD", "momentum", 2.0, ValueError, r"momentum must be in \[0, 1\]"),
    ("SGD", "nesterov", "yes", TypeError, r"nesterov must be a bool"),
    ("RMSprop", "rho", 1.0, ValueError, r"rho must be in \[0, 1\)"),
    ("Adam", "clipnorm", -1.0, ValueError, r"clipnorm must be a positive finite number"),
    ("Adam", "clipvalue", True, TypeError, r"clipvalue must be a positive finite number or None, got bool"),
])
def test_bad_hyperparameter_assignment_is_refused_and_changes_nothing(kind, name, value, exc, match):
    opt = getattr(pyoptim, kind)(**({"momentum": 0.9} if kind == "SGD" else {}))
    before = snapshot(opt)
    with pytest.raises(exc, match=match):
        setattr(opt, name, value)
    assert_unchanged(opt, before)


def test_second_clip_setting_is_refused_as_in_keras():
    opt = pyoptim.Adam(clipnorm=1.0)
    with pytest.raises(ValueError, match=r"Only one of clipnorm, clipvalue and global_clipnorm"):
        opt.global_clipnorm = 1.0
    opt.clipnorm = None
    opt.global_clipnorm = 1.0
    assert opt.get_config()["global_clipnorm"] == 1.0 and opt.get_config()["clipnorm"] is None


# ------------------------------------------------------------ 3. load_state_dict restores the config

@pytest.mark.parametrize("kind,saved,target", [
    ("Adam", {"learning_rate": 1e-2, "amsgrad": True, "beta_1": 0.8, "clipnorm": 0.5}, {"amsgrad": True}),
    ("SGD", {"learning_rate": 0.05, "momentum": 0.9, "nesterov": True, "weight_decay": 0.01}, {"momentum": 0.5}),
    ("RMSprop", {"learning_rate": 0.01, "rho": 0.8, "centered": True}, {"centered": True}),
])
def test_load_state_dict_restores_the_saved_hyperparameters(kind, saved, target, rng):
    params, grads = make(rng, steps=4)
    straight, ps = getattr(pyoptim, kind)(**saved), [p.copy() for p in params]
    for gs in grads:
        straight.apply(gs, ps)
    first, qs = getattr(pyoptim, kind)(**saved), [p.copy() for p in params]
    for gs in grads[:2]:
        first.apply(gs, qs)
    second = getattr(pyoptim, kind)(**target)
    second.load_state_dict(first.state_dict())
    assert {k: v for k, v in second.get_config().items() if k != "name"} == \
        {k: v for k, v in first.get_config().items() if k != "name"}
    for gs in grads[2:]:
        second.apply(gs, qs)
    assert_all_same_bits(qs, ps)


def test_load_state_dict_restores_learning_rate_of_an_unbuilt_state():
    second = pyoptim.Adam(amsgrad=True)
    second.load_state_dict(pyoptim.Adam(1e-2, amsgrad=True).state_dict())
    assert second.learning_rate == 0.01


def test_load_state_dict_refuses_other_structure_in_an_unbuilt_state():
    target = pyoptim.Adam()
    before = snapshot(target)
    with pytest.raises(ValueError, match=r"amsgrad=True \(this optimizer: False\).*slots"):
        target.load_state_dict(pyoptim.Adam(amsgrad=True).state_dict())
    assert_unchanged(target, before)


def test_load_state_dict_refuses_a_bad_config_and_changes_nothing(rng):
    params, grads = make(rng, steps=1)
    src = pyoptim.Adam(0.01)
    src.apply(grads[0], [p.copy() for p in params])
    target = pyoptim.Adam(0.001)
    before = snapshot(target)
    for cfg, exc, match in [
        ({**src.get_config(), "beta_1": 2.0}, ValueError, r"beta_1 must be in"),
        ({**src.get_config(), "use_ema": True}, ValueError, r"use_ema"),
        ("nope", TypeError, r"state\['config'\]"),
    ]:
        with pytest.raises(exc, match=match):
            target.load_state_dict({**src.state_dict(), "config": cfg})
        assert_unchanged(target, before)


# ------------------------------------------------------------ 4. NumPy scalars, not bools

@pytest.mark.parametrize("arg", ["clipnorm", "clipvalue", "global_clipnorm"])
@pytest.mark.parametrize("value", [np.float32(1.0), np.float64(0.5), np.int64(2), np.float16(0.25)])
def test_clip_arguments_accept_numpy_scalars(arg, value, rng):
    params, grads = make(rng, steps=2)
    opt = pyoptim.Adam(**{arg: value})
    assert opt.get_config()[arg] == float(value)
    ps = [p.copy() for p in params]
    for gs in grads:
        opt.apply(gs, ps)
    kp, _ = run_keras("Adam", {arg: float(value)}, params, grads)
    assert_all_same_bits(ps, kp)


@pytest.mark.parametrize("arg", ["clipnorm", "clipvalue", "global_clipnorm"])
@pytest.mark.parametrize("value", [True, np.True_, "1.0"])
def test_clip_arguments_refuse_bools_and_strings(arg, value):
    with pytest.raises(TypeError, match=rf"{arg} must be a positive finite number or None"):
        pyoptim.Adam(**{arg: value})


@pytest.mark.parametrize("kw", [{"learning_rate": True}, {"beta_1": np.True_}, {"weight_decay": True}, {"epsilon": False}])
def test_hyperparameters_refuse_bools(kw):
    p, g, m, v = (np.ones(4, np.float32) for _ in range(4))
    with pytest.raises(TypeError, match=rf"{next(iter(kw))} must be a real number, got (bool|numpy.bool)"):
        pyoptim.adam_update(p, g, m, v, step=1, **kw)
    with pytest.raises(TypeError, match=next(iter(kw))):
        pyoptim.Adam(**kw)


def test_hyperparameters_accept_numpy_scalars(rng):
    params, grads = make(rng, steps=2)
    kw = {"learning_rate": np.float32(0.01), "beta_1": np.float64(0.8), "epsilon": np.float32(1e-6),
          "weight_decay": np.float32(0.01)}
    opt, ps = pyoptim.Adam(**kw), [p.copy() for p in params]
    for gs in grads:
        opt.apply(gs, ps)
    kp, _ = run_keras("Adam", {k: float(v) for k, v in kw.items()}, params, grads)
    assert_all_same_bits(ps, kp)


# ------------------------------------------------------------ 5. gradients as users have them

def test_zero_d_numpy_scalar_gradient(rng):
    x = np.array(3.0, np.float32)
    ref = x.copy()
    opt = pyoptim.SGD(0.1)
    g = (x - 1).sum()  # a np.float32 scalar, not an array
    assert not isinstance(g, np.ndarray)
    opt.apply([g], [x])
    pyoptim.sgd_update(ref, np.asarray(g), learning_rate=0.1)
    assert_same_bits(x, ref, "x")


@pytest.mark.parametrize("kind,kwargs", [("Adam", {}), ("SGD", {"momentum": 0.9}), ("RMSprop", {"centered": True}),
                                         ("Adam", {"clipnorm": 0.3}), ("Adam", {"global_clipnorm": 0.3})])
def test_float64_gradients_for_float32_params_match_keras(kind, kwargs, rng):
    params, grads = make(rng)
    grads64 = [[g.astype(np.float64) * 1.0000001 for g in gs] for gs in grads]
    kp, kslots = run_keras(kind, kwargs, params, grads64)
    opt, ps = getattr(pyoptim, kind)(**kwargs), [p.copy() for p in params]
    for gs in grads64:
        opt.apply(gs, ps)
    assert_all_same_bits(ps, kp)
    for name in kslots:
        assert_all_same_bits(opt.slots[name], kslots[name], name)


def test_array_like_gradients_are_cast_to_the_param_dtype(rng):
    p = rng.standard_normal((2, 3)).astype(np.float32)
    g = [[0.1, 0.2, 0.3], [1, 2, 3]]
    a, b = p.copy(), p.copy()
    pyoptim.Adam().apply([g], [a])
    pyoptim.Adam().apply([np.asarray(g, np.float32)], [b])
    assert_same_bits(a, b, "param")
    c = p.copy()
    pyoptim.Adam().apply([np.asarray(g, np.int64)], [c])  # integer gradients are cast too
    d = p.copy()
    pyoptim.Adam().apply([np.asarray(g, np.int64).astype(np.float32)], [d])
    assert_same_bits(c, d, "param")


def test_strided_and_other_order_gradients_are_accepted(rng):
    p = np.asfortranarray(rng.standard_normal((4, 6)).astype(np.float32))
    big = rng.standard_normal((8, 12)).astype(np.float32)
    g = big[::2, ::2]  # strided, C-ordered view
    a, b = p.copy(order="K"), p.copy(order="K")
    pyoptim.RMSprop().apply([g], [a])
    pyoptim.RMSprop().apply([np.asfortranarray(g)], [b])
    assert_same_bits(a, b, "param")


def test_gradients_are_never_modified(rng):
    params, grads = make(rng, steps=1)
    gs = [g.astype(np.float64) for g in grads[0]]
    before = [g.copy() for g in gs]
    pyoptim.Adam(global_clipnorm=0.1).apply(gs, [p.copy() for p in params])
    assert_all_same_bits(gs, before, "grads")


@pytest.mark.parametrize("grad,exc,match", [
    (np.ones(3, np.float32), ValueError, r"grads\[1\] has shape \(3,\) but params\[1\] has shape \(17, 5\)"),
    (np.ones((5, 17), np.float64), ValueError, r"grads\[1\] has shape \(5, 17\) but params\[1\]"),
    (np.ones((17, 5), np.complex64), TypeError, r"grads\[1\] must hold real numbers, got dtype complex64"),
    ([[1.0, 2.0], [3.0]], TypeError, r"grads\[1\] must be an array-like of real numbers"),
    ("abc", TypeError, r"grads\[1\]"),
    (np.float64(1.0), ValueError, r"grads\[1\] has shape \(\) but params\[1\] has shape \(17, 5\)"),
])
def test_bad_gradients_are_refused_naming_them_before_anything_changes(grad, exc, match, rng):
    params, grads = make(rng, steps=2)
    opt = pyoptim.Adam(global_clipnorm=1.0)
    ps = [p.copy() for p in params]
    opt.apply(grads[0], ps)
    before, pbefore = snapshot(opt), [p.copy() for p in ps]
    gs = list(grads[1])
    gs[1] = grad
    with pytest.raises(exc, match=match):
        opt.apply(gs, ps)
    assert_unchanged(opt, before)
    assert_all_same_bits(ps, pbefore)


def test_params_stay_strict(rng):
    opt = pyoptim.SGD()
    with pytest.raises(TypeError, match=r"params\[0\] must be a numpy.ndarray"):
        opt.apply([np.ones(3)], [[1.0, 2.0, 3.0]])
    with pytest.raises(TypeError, match=r"params\[0\] must have dtype"):
        opt.apply([np.ones(3)], [np.ones(3, np.int64)])
    with pytest.raises(ValueError, match=r"params\[0\] is not contiguous"):
        opt.apply([np.ones(3)], [np.ones(6)[::2]])


# ------------------------------------------------------------ 6. state views, weight-decay exclusion, base class

@pytest.mark.parametrize("kind,kwargs", [("Adam", {"amsgrad": True}), ("RMSprop", {"momentum": 0.5, "centered": True}),
                                         ("SGD", {"momentum": 0.9})])
def test_variables_are_keras_variables_in_keras_order(kind, kwargs, rng):
    params, grads = make(rng)
    kopt = keras_optimizer(kind, **kwargs)
    kv = keras_vars(params)
    for gs in grads:
        kopt.apply([tf.constant(g) for g in gs], kv)
    # Keras tracks its float learning rate as a variable; pyoptim has no such array.
    theirs = [v.numpy() for v in kopt.variables if "learning_rate" not in v.path]
    opt, ps = getattr(pyoptim, kind)(**kwargs), [p.copy() for p in params]
    assert len(opt.variables) == 1 and opt.variables[0] == 0
    for gs in grads:
        opt.apply(gs, ps)
    ours = opt.variables
    assert int(ours[0]) == int(theirs[0]) == len(grads)
    assert_all_same_bits(ours[1:], theirs[1:], "variables")


def test_variables_and_slots_are_read_only_live_views(rng):
    params, grads = make(rng, steps=1)
    opt = pyoptim.Adam()
    ps = [p.copy() for p in params]
    opt.apply(grads[0], ps)
    view = opt.slots["momentums"][0]
    with pytest.raises(ValueError, match="read-only"):
        view[...] = 0
    with pytest.raises(ValueError, match="read-only"):
        opt.variables[1][...] = 0
    before = view.copy()
    opt.apply(grads[0], ps)
    assert not np.array_equal(view, before)  # live: shows the new state
    assert opt.slots.keys() == {"momentums", "velocities"}
    assert pyoptim.Adam().slots == {}


@pytest.mark.parametrize("kind,kwargs", [("Adam", {"weight_decay": 0.1}), ("SGD", {"momentum": 0.9, "weight_decay": 0.1}),
                                         ("RMSprop", {"weight_decay": 0.1})])
def test_exclude_from_weight_decay_matches_keras(kind, kwargs, rng):
    params, grads = make(rng)
    kopt = keras_optimizer(kind, **kwargs)
    kv = keras_vars(params)
    kopt.exclude_from_weight_decay(var_list=[kv[0], kv[2]])
    for gs in grads:
        kopt.apply([tf.constant(g) for g in gs], kv)
    theirs = [v.numpy() for v in kv]
    a = [p.copy() for p in params]
    by_array = getattr(pyoptim, kind)(**kwargs)
    by_array.exclude_from_weight_decay(var_list=[a[0], a[2]])
    b = [p.copy() for p in params]
    by_index = getattr(pyoptim, kind)(**kwargs)
    by_index.exclude_from_weight_decay(indices=[0, 2])
    for gs in grads:
        by_array.apply(gs, a)
        by_index.apply(gs, b)
    assert_all_same_bits(a, theirs)
    assert_all_same_bits(b, theirs)
    # without the exclusion the excluded ones would differ
    c = [p.copy() for p in params]
    plain = getattr(pyoptim, kind)(**kwargs)
    for gs in grads:
        plain.apply(gs, c)
    assert not np.array_equal(c[0], theirs[0])


def test_exclude_from_weight_decay_bad_arguments():
    opt = pyoptim.Adam(weight_decay=0.1)
    with pytest.raises(TypeError, match=r"var_names: NumPy arrays have no names"):
        opt.exclude_from_weight_decay(var_names=["bias"])
    with pytest.raises(TypeError, match=r"var_list\[0\] must be a numpy array"):
        opt.exclude_from_weight_decay(var_list=[[1.0]])
    with pytest.raises(TypeError, match=r"indices\[0\] must be an int"):
        opt.exclude_from_weight_decay(indices=[True])
    opt.exclude_from_weight_decay(indices=[3])
    p = np.ones(4, np.float32)
    with pytest.raises(ValueError, match=r"names index 3, but params has 1 arrays"):
        opt.apply([np.ones(4, np.float32)], [p])
    assert not opt.built and (p == 1).all()


def test_base_optimizer_apply_says_what_to_use():
    with pytest.raises(NotImplementedError, match=r"use pyoptim.SGD, pyoptim.RMSprop or pyoptim.Adam"):
        pyoptim.Optimizer(0.1).apply([np.ones(2)], [np.ones(2)])


# ------------------------------------------------------------ 7a. norms with Keras' bits

def _cases(n, seed):
    rng = np.random.default_rng(seed)
    for _ in range(n):
        shapes = [tuple(int(d) for d in rng.integers(1, 40, size=rng.integers(0, 3))) for _ in range(2)]
        dtype = np.float32
        params = [rng.standard_normal(s).astype(dtype) for s in shapes]
        scale = 10.0 ** rng.uniform(-2, 2)
        grads = [(rng.standard_normal(s) * scale).astype(dtype) for s in shapes]
        yield params, grads, float(10.0 ** rng.uniform(-1, 1))


@pytest.mark.parametrize("arg", ["global_clipnorm", "clipnorm"])
def test_norm_clipping_has_keras_bits_in_200_random_two_tensor_cases(arg):
    bad = []
    for k, (params, grads, clip) in enumerate(_cases(200, 7 if arg == "global_clipnorm" else 8)):
        kp, _ = run_keras("Adam", {arg: clip}, params, [grads])
        opt, ps = pyoptim.Adam(**{arg: clip}), [p.copy() for p in params]
        opt.apply(grads, ps)
        if any(a.tobytes() != b.tobytes() for a, b in zip(ps, kp)):
            bad.append(k)
    assert bad == []


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", [1, 7, 31, 32, 33, 100, 1000, 4095, 4097, 8192, 8193, 20_001, 100_003, 1_000_000])
def test_sums_follow_tensorflows_order(n, dtype):
    from pyoptim._tfsum import tf_sum
    x = np.random.default_rng(n).standard_normal(n).astype(dtype) ** 2
    assert tf_sum(x).tobytes() == tf.reduce_sum(tf.constant(x)).numpy().tobytes()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_global_clipnorm_with_large_tensors_matches_keras(dtype, rng):
    params, grads = make(rng, steps=2, dtype=dtype, shapes=[(50_000,), (33, 7)])
    # (a float32-representable learning rate: see the README's float64 note)
    kp, _ = run_keras("SGD", {"learning_rate": 0.125, "global_clipnorm": 1.5}, params, grads)
    opt, ps = pyoptim.SGD(0.125, global_clipnorm=1.5), [p.copy() for p in params]
    for gs in grads:
        opt.apply(gs, ps)
    assert_all_same_bits(ps, kp)


def test_global_clipnorm_of_mixed_dtypes_uses_the_promoted_dtype(rng):
    # Keras (TensorFlow) raises here: a float32 gradient times the float64 scale.
    # pyoptim sums in the promoted dtype (float64), scales, then casts per param.
    p32, p64 = np.ones(5, np.float32), np.ones(3, np.float64)
    g32, g64 = np.full(5, 3.0, np.float32), np.full(3, 4.0, np.float64)
    a, b = p32.copy(), p64.copy()
    pyoptim.SGD(1.0, global_clipnorm=1.0).apply([g32, g64], [a, b])
    norm = np.sqrt(5 * 9.0 + 3 * 16.0)
    np.testing.assert_allclose(a, 1 - 3.0 / norm, rtol=1e-6)
    np.testing.assert_allclose(b, 1 - 4.0 / norm, rtol=1e-15)
