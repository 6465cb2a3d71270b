"""Stateful NumPy optimizers (multi-tensor, one native call) against keras.optimizers."""
from __future__ import annotations

import keras
import numpy as np
import pytest

import pyoptim
from keras_reference import assert_state_matches_keras, run_keras
from test_core import assert_same_bits

SHAPES = [(3,), (17, 5), (), (0,), (1000,), (40_000,), (7, 9, 3)]


def make(rng, steps=4, dtype=np.float32):
    params = [rng.standard_normal(s).astype(dtype) for s in SHAPES]
    grads = [[rng.standard_normal(s).astype(dtype) for s in SHAPES] for _ in range(steps)]
    return params, grads


def run_ours(kind, kwargs, params, grads_per_step):
    opt = getattr(pyoptim, kind)(**kwargs)
    ps = [p.copy() for p in params]
    for grads in grads_per_step:
        opt.apply(grads, ps)
    return opt, ps


CASES = [
    ("SGD", {"learning_rate": 0.1, "momentum": 0.9, "nesterov": True}),
    ("SGD", {"learning_rate": 0.1, "weight_decay": 0.01}),
    ("RMSprop", {"momentum": 0.5, "centered": True}),
    ("RMSprop", {"learning_rate": 0.01, "weight_decay": 0.05}),
    ("Adam", {"amsgrad": True, "weight_decay": 0.004}),
    ("Adam", {"learning_rate": 0.01, "clipvalue": 0.5}),
]


@pytest.mark.parametrize("kind,kwargs", CASES)
def test_multi_tensor_apply_matches_keras_bitwise(kind, kwargs, rng):
    params, grads = make(rng)
    kp, kslots = run_keras(kind, kwargs, params, grads)
    opt, ps = run_ours(kind, kwargs, params, grads)
    assert_state_matches_keras(opt, ps, kp, kslots, len(grads))


def test_learning_rate_schedule_matches_keras(rng):
    params, grads = make(rng, steps=6)
    schedule = keras.optimizers.schedules.ExponentialDecay(0.01, decay_steps=2, decay_rate=0.5)
    kp, _ = run_keras("Adam", {"learning_rate": schedule}, params, grads)
    opt, ps = run_ours("Adam", {"learning_rate": schedule}, params, grads)
    for a, b in zip(ps, kp):
        assert_same_bits(a, b, "param")
    assert opt.learning_rate == pytest.approx(float(schedule(6)))


@pytest.mark.parametrize("clip", [{"clipnorm": 0.5}, {"global_clipnorm": 1.0}])
def test_norm_clipping_matches_keras_bitwise(clip, rng):
    # Norms are sums, added in TensorFlow's order (pyoptim._tfsum).
    params, grads = make(rng)
    kp, _ = run_keras("SGD", {"learning_rate": 0.1, "momentum": 0.9, **clip}, params, grads)
    _, ps = run_ours("SGD", {"learning_rate": 0.1, "momentum": 0.9, **clip}, params, grads)
    for i, (a, b) in enumerate(zip(ps, kp)):
        assert_same_bits(a, b, f"params[{i}]")


def test_clipping_does_not_modify_the_callers_gradients(rng):
    params, grads = make(rng, steps=1)
    before = [g.copy() for g in grads[0]]
    run_ours("Adam", {"clipnorm": 0.01}, params, grads)
    for a, b in zip(grads[0], before):
        np.testing.assert_array_equal(a, b)


def test_none_gradient_leaves_param_and_state_untouched(rng):
    params, grads = make(rng, steps=1)
    opt = pyoptim.Adam()
    ps = [p.copy() for p in params]
    gs = list(grads[0])
    gs[1] = None
    opt.apply(gs, ps)
    np.testing.assert_array_equal(ps[1], params[1])
    assert not opt.state_dict()["slots"]["momentums"][1].any()
    assert not np.array_equal(ps[0], params[0])


def test_apply_gradients_pairs_equal_apply(rng):
    params, grads = make(rng, steps=2)
    _, a = run_ours("RMSprop", {}, params, grads)
    opt = pyoptim.RMSprop()
    b = [p.copy() for p in params]
    for gs in grads:
        opt.apply_gradients(zip(gs, b))
    for x, y in zip(a, b):
        assert_same_bits(x, y, "param")


def test_mixed_dtypes_in_one_call(rng):
    p32, p64 = rng.standard_normal(50).astype(np.float32), rng.standard_normal(50)
    g32, g64 = rng.standard_normal(50).astype(np.float32), rng.standard_normal(50)
    opt = pyoptim.Adam(learning_rate=float(np.float32(0.001)))
    a, b = p32.copy(), p64.copy()
    opt.apply([g32, g64], [a, b])
    r32, r64 = p32.copy(), p64.copy()
    pyoptim.adam_update(r32, g32, np.zeros_like(r32), np.zeros_like(r32), step=1, learning_rate=float(np.float32(0.001)))
    pyoptim.adam_update(r64, g64, np.zeros_like(r64), np.zeros_like(r64), step=1, learning_rate=float(np.float32(0.001)))
    assert_same_bits(a, r32, "float32 param")
    assert_same_bits(b, r64, "float64 param")


@pytest.mark.parametrize("kind,kwargs", CASES)
def test_state_dict_round_trip_is_bit_exact(kind, kwargs, rng):
    params, grads = make(rng, steps=4)
    _, straight = run_ours(kind, kwargs, params, grads)
    first = getattr(pyoptim, kind)(**kwargs)
    ps = [p.copy() for p in params]
    for gs in grads[:2]:
        first.apply(gs, ps)
    state = first.state_dict()
    second = getattr(pyoptim, kind)(**kwargs)
    second.load_state_dict(state)
    assert second.iterations == 2
    for gs in grads[2:]:
        second.apply(gs, ps)
    for a, b in zip(ps, straight):
        assert_same_bits(a, b, "resumed param")


def test_load_state_dict_refuses_other_optimizer_and_shapes(rng):
    params, grads = make(rng, steps=1)
    adam = pyoptim.Adam()
    adam.apply(grads[0], [p.copy() for p in params])
    with pytest.raises(ValueError, match=r"state is from a Adam optimizer, this optimizer is SGD"):
        pyoptim.SGD(momentum=0.9).load_state_dict(adam.state_dict())
    with pytest.raises(ValueError, match=r"state has slots .* \(check momentum / nesterov / centered / amsgrad\)"):
        pyoptim.Adam(amsgrad=True).load_state_dict(adam.state_dict())
    other = pyoptim.Adam()
    other.apply([np.ones(2, np.float32)], [np.ones(2, np.float32)])
    with pytest.raises(ValueError, match=r"state has 7 arrays per slot, this optimizer has 1"):
        other.load_state_dict(adam.state_dict())
    built = pyoptim.Adam()
    shapes = [np.ones(np.shape(p) if i else (4,), np.float32) for i, p in enumerate(params)]
    built.apply([np.ones_like(s) for s in shapes], shapes)
    with pytest.raises(ValueError, match=r"state slot momentums\[0\] has shape \(3,\)"):
        built.load_state_dict(adam.state_dict())


def test_get_config_has_keras_names():
    cfg = pyoptim.Adam(learning_rate=0.01, amsgrad=True, clipnorm=1.0).get_config()
    for key in ("learning_rate", "beta_1", "beta_2", "epsilon", "amsgrad", "weight_decay", "clipnorm", "clipvalue", "global_clipnorm", "name"):
        assert key in cfg
    assert pyoptim.Adam.from_config(cfg).get_config() == cfg
