"""The NumPy API against keras.optimizers itself: the same bits in float32 (and in
float64 with a float32-representable learning rate, since Keras keeps the learning
rate in a float32 variable), for every variant, over sizes that cover SIMD tails
and the parallel path, under every instruction set this CPU supports."""
from __future__ import annotations

import numpy as np
import pytest

import pyoptim
from keras_reference import run_keras

SIZES = [1, 3, 7, 8, 9, 17, 1000, 65537]
BIG = 1_000_003
STEPS = 4

# (Keras class, keyword arguments shared by keras.optimizers and pyoptim)
VARIANTS = [
    ("SGD", {}),
    ("SGD", {"learning_rate": 0.1, "momentum": 0.9}),
    ("SGD", {"learning_rate": 0.05, "momentum": 0.8, "nesterov": True}),
    ("SGD", {"learning_rate": 0.1, "momentum": 0.9, "weight_decay": 0.01}),
    ("SGD", {"learning_rate": 0.1, "weight_decay": 0.004}),
    ("RMSprop", {}),
    ("RMSprop", {"learning_rate": 0.01, "rho": 0.8, "momentum": 0.5}),
    ("RMSprop", {"learning_rate": 0.01, "centered": True}),
    ("RMSprop", {"learning_rate": 0.01, "centered": True, "momentum": 0.9, "epsilon": 1e-5}),
    ("RMSprop", {"learning_rate": 0.01, "weight_decay": 0.02}),
    ("Adam", {}),
    ("Adam", {"learning_rate": 0.01, "amsgrad": True}),
    ("Adam", {"learning_rate": 0.01, "weight_decay": 0.004}),
    ("Adam", {"learning_rate": 0.02, "beta_1": 0.5, "beta_2": 0.9, "epsilon": 1e-3, "amsgrad": True, "weight_decay": 0.1}),
]


def variant_id(v):
    kind, kw = v
    return kind + "-" + ("-".join(f"{k}={val}" for k, val in kw.items()) or "defaults")


def make_data(rng, n, dtype, steps=STEPS):
    p0 = rng.standard_normal(n).astype(dtype)
    grads = []
    for t in range(steps):
        g = (rng.standard_normal(n) * (10.0 ** rng.integers(-3, 2, n))).astype(dtype)
        g[:: 7] = 0  # exact zeros exercise the sqrt/epsilon paths
        grads.append(g)
    return p0, grads


def functional_run(kind, kwargs, p0, grads_per_step):
    """The same updates through pyoptim's functional API (state arrays held here)."""
    kw = dict(kwargs)
    p = p0.copy()
    z = lambda: np.zeros_like(p)  # noqa: E731
    slots = {}
    if kind == "SGD":
        if kw.get("momentum", 0.0):
            slots["momentums"] = [z()]
        for g in grads_per_step:
            pyoptim.sgd_update(p, g, slots["momentums"][0] if slots else None, **kw)
    elif kind == "RMSprop":
        centered = kw.pop("centered", False)
        slots["velocities"] = [z()]
        if kw.get("momentum", 0.0) > 0:
            slots["momentums"] = [z()]
        if centered:
            slots["average_gradients"] = [z()]
        for g in grads_per_step:
            pyoptim.rmsprop_update(
                p, g, slots["velocities"][0],
                momentum_buffer=slots.get("momentums", [None])[0],
                average_grad=slots.get("average_gradients", [None])[0], **kw)
    else:
        amsgrad = kw.pop("amsgrad", False)
        slots["momentums"], slots["velocities"] = [z()], [z()]
        if amsgrad:
            slots["velocity_hats"] = [z()]
        for t, g in enumerate(grads_per_step, start=1):
            pyoptim.adam_update(p, g, slots["momentums"][0], slots["velocities"][0], step=t,
                                v_hat=slots.get("velocity_hats", [None])[0], **kw)
    return [p], slots


def assert_same_bits(ours, theirs, what):
    assert ours.dtype == theirs.dtype and ours.shape == theirs.shape, what
    ours, theirs = ours.reshape(-1), theirs.reshape(-1)
    if ours.tobytes() != theirs.tobytes():
        itemsize = ours.dtype.itemsize
        a, b = np.frombuffer(ours.tobytes(), np.uint8), np.frombuffer(theirs.tobytes(), np.uint8)
        bad = np.flatnonzero((a != b).reshape(-1, itemsize).any(axis=1))
        pytest.fail(f"{what}: {bad.size} of {ours.size} elements differ from Keras, "
                    f"first at {bad[:5]}: ours {ours[bad[:5]]} keras {theirs[bad[:5]]}")


def compare(kind, kwargs, rng, n, dtype, isa_names):
    if dtype == np.float64:
        # Keras casts learning_rate (a float32 variable), weight_decay, SGD's momentum
        # and Adam's betas to float64 from float32 (tf.cast of a Python float makes a
        # float32 tensor first); pyoptim uses the Python floats as given.  With
        # float32-representable values both compute the same float64 numbers.
        kwargs = {"learning_rate": 0.01 if kind == "SGD" else 0.001, **kwargs}
        kwargs = {k: float(np.float32(v)) if isinstance(v, float) else v for k, v in kwargs.items()}
        if kind == "Adam":
            kwargs.setdefault("beta_1", float(np.float32(0.9)))
            kwargs.setdefault("beta_2", float(np.float32(0.999)))
    p0, grads = make_data(rng, n, dtype)
    (kp,), kslots = run_keras(kind, kwargs, [p0], [[g] for g in grads])
    for name in isa_names:
        pyoptim.set_isa(name)
        (op,), oslots = functional_run(kind, kwargs, p0, grads)
        assert_same_bits(op, kp, f"param ({name})")
        assert set(oslots) == set(kslots)
        for s in kslots:
            assert_same_bits(oslots[s][0], kslots[s][0], f"{s} ({name})")


@pytest.fixture
def all_isas():
    before = pyoptim.get_isa()
    yield pyoptim.config.config()["isas_supported"]
    pyoptim.set_isa(before)


@pytest.mark.parametrize("variant", VARIANTS, ids=variant_id)
@pytest.mark.parametrize("n", SIZES)
def test_float32_matches_keras_bitwise(variant, n, rng, all_isas):
    compare(*variant, rng, n, np.float32, all_isas)


@pytest.mark.parametrize("variant", VARIANTS, ids=variant_id)
def test_float32_large_matches_keras_bitwise(variant, rng, all_isas):
    compare(*variant, rng, BIG, np.float32, all_isas)


@pytest.mark.parametrize("variant", VARIANTS, ids=variant_id)
@pytest.mark.parametrize("n", [1, 17, 65537])
def test_float64_matches_keras_bitwise(variant, n, rng, all_isas):
    compare(*variant, rng, n, np.float64, all_isas)


@pytest.mark.parametrize("variant", VARIANTS, ids=variant_id)
def test_nan_and_inf_gradients_propagate_like_keras(variant, rng, all_isas):
    kind, kwargs = variant
    p0, grads = make_data(rng, 40, np.float32, steps=3)
    grads[0][3] = np.nan
    grads[1][5] = np.inf
    grads[2][9] = -np.inf
    (kp,), _ = run_keras(kind, kwargs, [p0], [[g] for g in grads])
    (op,), _ = functional_run(kind, kwargs, p0, grads)
    np.testing.assert_array_equal(np.isnan(op), np.isnan(kp))
    assert_same_bits(op, kp, "param")


def test_many_steps_adam_matches_keras(rng):
    """Bias correction over many steps (pow in float32 as Keras computes it)."""
    p0, grads = make_data(rng, 33, np.float32, steps=60)
    (kp,), _ = run_keras("Adam", {"learning_rate": 0.003}, [p0], [[g] for g in grads])
    (op,), _ = functional_run("Adam", {"learning_rate": 0.003}, p0, grads)
    assert_same_bits(op, kp, "param after 60 steps")


@pytest.mark.parametrize("shape", [(), (0,), (3, 0), (4, 5), (2, 3, 7)])
def test_shapes_0d_empty_and_nd(shape, rng):
    p = rng.standard_normal(shape).astype(np.float32)
    g = rng.standard_normal(shape).astype(np.float32)
    m, v = np.zeros_like(p), np.zeros_like(p)
    p_ref, m_ref, v_ref = p.ravel().copy(), m.ravel().copy(), v.ravel().copy()
    pyoptim.adam_update(p_ref, g.ravel(), m_ref, v_ref, step=1)
    assert pyoptim.adam_update(p, g, m, v, step=1) is None
    assert p.shape == shape
    assert_same_bits(p.ravel(), p_ref, "nd vs flat")


def test_fortran_order_arrays_update_in_place(rng):
    p = np.asfortranarray(rng.standard_normal((5, 7)).astype(np.float32))
    g = np.asfortranarray(rng.standard_normal((5, 7)).astype(np.float32))
    m = np.zeros_like(p, order="F")
    pc, gc, mc = np.ascontiguousarray(p), np.ascontiguousarray(g), np.zeros((5, 7), np.float32)
    pyoptim.sgd_update(p, g, m, momentum=0.9)
    pyoptim.sgd_update(pc, gc, mc, momentum=0.9)
    np.testing.assert_array_equal(p, pc)


def test_set_num_threads_changes_nothing_in_results(rng):
    before = pyoptim.get_num_threads()
    p0, grads = make_data(rng, 300_001, np.float32, steps=2)
    outs = []
    try:
        for n in (1, 2):
            pyoptim.set_num_threads(n)
            assert pyoptim.get_num_threads() == n
            outs.append(functional_run("Adam", {"amsgrad": True}, p0, grads)[0][0])
    finally:
        pyoptim.set_num_threads(before)
    assert_same_bits(outs[0], outs[1], "1 vs 2 threads")


def test_show_config_prints_version_isa_and_threads(capsys):
    pyoptim.show_config()
    out = capsys.readouterr().out
    assert f"version: {pyoptim.__version__}" in out
    assert f"isa: {pyoptim.get_isa()}" in out
    assert "isas_supported: baseline" in out
    assert f"num_threads: {pyoptim.get_num_threads()}" in out


def test_set_isa_refuses_unknown_and_unsupported():
    with pytest.raises(ValueError, match="unknown instruction set"):
        pyoptim.set_isa("sse9")
    unsupported = set(pyoptim.config.config()["isas_built"]) - set(pyoptim.config.config()["isas_supported"])
    for name in unsupported:
        with pytest.raises(ValueError, match="not supported by this CPU"):
            pyoptim.set_isa(name)


def test_isa_environment_variable_selects_lower_isa():
    import subprocess
    import sys
    out = subprocess.run([sys.executable, "-c", "import pyoptim; print(pyoptim.get_isa())"],
                         env={**__import__("os").environ, "PYOPTIM_ISA": "baseline"},
                         capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "baseline"


def test_numpy_core_does_not_import_tensorflow():
    import subprocess
    import sys
    code = "import sys, numpy as np, pyoptim; pyoptim.Adam().apply([np.ones(3, np.float32)], [np.ones(3, np.float32)]); print('tensorflow' in sys.modules, 'keras' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False False"
