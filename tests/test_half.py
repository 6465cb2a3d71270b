"""float16 and bfloat16 parameters with float32 state (mixed-precision kernels):
each step widens param and grad to float32, runs the float32 arithmetic (the same
bits as the float32 kernel, hence as Keras) and rounds the param back to nearest,
ties to even (NumPy's and ml_dtypes' astype)."""
from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest

import pyoptim
from test_core import assert_same_bits

HALVES = [np.float16, ml_dtypes.bfloat16]
SIZES = [1, 7, 17, 1000, 65537]


def half_data(rng, n, dtype, steps=3):
    scale = 10.0 ** rng.integers(-9, 6, n)  # subnormals and values past float16's range
    p0 = (rng.standard_normal(n) * scale).astype(dtype)
    grads = [(rng.standard_normal(n) * 10.0 ** rng.integers(-4, 3, n)).astype(dtype) for _ in range(steps)]
    return p0, grads


def reference(kind, kwargs, p0, grads):
    """The float32 kernel on widened copies, rounded back to the half dtype each step."""
    p = p0.copy()
    states = [np.zeros(p.shape, np.float32) for _ in range(3)]
    for t, g in enumerate(grads, start=1):
        p32 = p.astype(np.float32)
        call(kind, kwargs, p32, g.astype(np.float32), states, t)
        p = p32.astype(p0.dtype)
    return p, states


def call(kind, kwargs, p, g, states, t):
    if kind == "sgd":
        pyoptim.sgd_update(p, g, states[0], **kwargs)
    elif kind == "rmsprop":
        pyoptim.rmsprop_update(p, g, states[0], momentum_buffer=states[1], average_grad=states[2], **kwargs)
    else:
        kw = dict(kwargs)
        v_hat = states[2] if kw.pop("amsgrad", False) else None
        pyoptim.adam_update(p, g, states[0], states[1], step=t, v_hat=v_hat, **kw)


CASES = [
    ("sgd", {"learning_rate": 0.1, "momentum": 0.9, "nesterov": True, "weight_decay": 0.01}),
    ("rmsprop", {"learning_rate": 0.01, "momentum": 0.5}),
    ("adam", {"learning_rate": 0.01, "weight_decay": 0.004}),
    ("adam", {"learning_rate": 0.01, "amsgrad": True}),
]


@pytest.mark.parametrize("dtype", HALVES, ids=["float16", "bfloat16"])
@pytest.mark.parametrize("kind,kwargs", CASES, ids=["sgd", "rmsprop", "adam", "amsgrad"])
@pytest.mark.parametrize("n", SIZES)
def test_half_params_match_float32_arithmetic_rounded(dtype, kind, kwargs, n, rng, isa):
    p0, grads = half_data(rng, n, dtype)
    with np.errstate(over="ignore"):
        want, want_states = reference(kind, kwargs, p0, grads)
    p = p0.copy()
    states = [np.zeros(p.shape, np.float32) for _ in range(3)]
    for t, g in enumerate(grads, start=1):
        call(kind, kwargs, p, g, states, t)
    assert p.dtype == dtype
    assert_same_bits(p.view(np.uint16), want.view(np.uint16), f"{dtype.__name__} param")
    for a, b in zip(states, want_states):
        assert_same_bits(a, b, "float32 state")


@pytest.mark.parametrize("dtype", HALVES, ids=["float16", "bfloat16"])
def test_every_half_value_survives_a_zero_update(dtype):
    bits = np.arange(65536, dtype=np.uint16)
    p = bits.view(dtype).copy()
    pyoptim.sgd_update(p, np.zeros_like(p), learning_rate=0.0)
    same = p.view(np.uint16) == bits
    nan = np.isnan(bits.view(dtype).astype(np.float32))
    assert (same | (nan & np.isnan(p.astype(np.float32)))).all()


def test_stateful_optimizer_keeps_float32_state_for_half_params(rng):
    p16 = rng.standard_normal(50).astype(np.float16)
    pbf = rng.standard_normal(50).astype(ml_dtypes.bfloat16)
    p32 = rng.standard_normal(50).astype(np.float32)
    grads = [rng.standard_normal(50).astype(p.dtype) for p in (p16, pbf, p32)]
    opt = pyoptim.Adam(learning_rate=0.01, amsgrad=True)
    params = [p16.copy(), pbf.copy(), p32.copy()]
    opt.apply(grads, params)
    slots = opt.state_dict()["slots"]
    assert [a.dtype for a in slots["momentums"]] == [np.float32] * 3
    for p0, p, g in zip((p16, pbf), params[:2], grads[:2]):
        want, _ = reference("adam", {"learning_rate": 0.01, "amsgrad": True}, p0, [g])
        assert_same_bits(p.view(np.uint16), want.view(np.uint16), "param")
