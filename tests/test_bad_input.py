"""Bad input is refused with a TypeError/ValueError that names the argument, and
nothing is modified."""
from __future__ import annotations

import numpy as np
import pytest

import pyoptim


def arrays(n=8, dtype=np.float32, k=5):
    rng = np.random.default_rng(0)
    return [rng.standard_normal(n).astype(dtype) for _ in range(k)]


def call_adam(p, g, m, v, **kw):
    kw.setdefault("step", 1)
    pyoptim.adam_update(p, g, m, v, **kw)


def assert_refused(exc, match, fn, *arrs, **kw):
    before = [a.copy() if isinstance(a, np.ndarray) else a for a in arrs]
    with pytest.raises(exc, match=match):
        fn(*arrs, **kw)
    for a, b in zip(arrs, before):
        if isinstance(a, np.ndarray):
            np.testing.assert_array_equal(a, b)


# ------------------------------------------------------------------ arrays

def test_list_instead_of_array_is_type_error():
    p, g, m, v, _ = arrays()
    assert_refused(TypeError, r"param must be a numpy.ndarray", call_adam, [1.0, 2.0], g, m, v)
    assert_refused(TypeError, r"grad must be a numpy.ndarray", call_adam, p, list(g), m, v)
    assert_refused(TypeError, r"v must be a numpy.ndarray", call_adam, p, g, m, None)


@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.complex64, ">f4", ">f2", bool])
def test_non_float_dtype_is_type_error(dtype):
    p, g, m, v, _ = arrays()
    bad = np.ones(8, dtype=dtype)
    assert_refused(TypeError, r"param must have dtype float32, float64, float16 or bfloat16", call_adam, bad, g, m, v)
    assert_refused(TypeError, r"m must have dtype float32 or float64", call_adam, p, g, bad, v)


def test_half_precision_state_is_type_error():
    p, g, m, v, _ = arrays()
    p16, g16 = p.astype(np.float16), g.astype(np.float16)
    assert_refused(TypeError, r"m must have dtype float32 or float64", call_adam, p16, g16, m.astype(np.float16), v)
    assert_refused(TypeError, r"v has dtype float64 but param has dtype float16; v must be float32", call_adam, p16, g16, m, v.astype(np.float64))
    assert_refused(TypeError, r"grad has dtype float32 but param has dtype float16; they must match", call_adam, p16, g, m, v)


def test_dtype_mismatch_is_type_error():
    p, g, m, v, _ = arrays()
    assert_refused(TypeError, r"grad has dtype float64 but param has dtype float32", call_adam, p, g.astype(np.float64), m, v)
    assert_refused(TypeError, r"v has dtype float64 but param", call_adam, p, g, m, v.astype(np.float64))


def test_shape_mismatch_is_value_error():
    p, g, m, v, _ = arrays()
    assert_refused(ValueError, r"grad has shape \(7,\) but param has shape \(8,\)", call_adam, p, g[:7].copy(), m, v)
    assert_refused(ValueError, r"m has shape \(2, 4\) but param", call_adam, p, g, m.reshape(2, 4), v)


def test_read_only_is_value_error():
    p, g, m, v, _ = arrays()
    for a, name in ((p, "param"), (m, "m"), (v, "v")):
        a.flags.writeable = False
        assert_refused(ValueError, rf"{name} is read-only", call_adam, p, g, m, v)
        a.flags.writeable = True
    g.flags.writeable = False  # a read-only gradient is fine
    call_adam(p, g, m, v)


def test_aliased_and_overlapping_state_is_value_error():
    p, g, m, v, _ = arrays()
    assert_refused(ValueError, r"m and v share memory|v and m share memory", call_adam, p, g, m, m)
    assert_refused(ValueError, r"share memory", call_adam, p, g, p, v)
    assert_refused(ValueError, r"share memory", call_adam, p, p, m, v)
    buf = np.zeros(12, np.float32)
    assert_refused(ValueError, r"share memory", call_adam, p, g, buf[:8], buf[4:])


def test_non_contiguous_is_value_error():
    p, g, m, v, _ = arrays(16)
    assert_refused(ValueError, r"param is not contiguous", call_adam, p[::2], g[::2].copy(), m[::2].copy(), v[::2].copy())
    assert_refused(ValueError, r"grad is not contiguous", call_adam, p[:8].copy(), g[::2], m[:8].copy(), v[:8].copy())


def test_mixed_memory_order_is_value_error():
    p = np.zeros((3, 4), np.float32)
    g = np.asfortranarray(np.ones((3, 4), np.float32))
    assert_refused(ValueError, r"different memory orders", pyoptim.sgd_update, p, g)


# ------------------------------------------------------------------ scalars

@pytest.mark.parametrize("step", [0, -1, 2**63, 2**70, -2**70])
def test_step_outside_its_range_is_value_error_stating_the_range(step):
    p, g, m, v, _ = arrays()
    assert_refused(ValueError, r"step must be .* an integer from 1 to 2\*\*63 - 1 \(9223372036854775807\), got "
                   + str(step), call_adam, p, g, m, v, step=step)


def test_largest_step_is_accepted():
    p, g, m, v, _ = arrays()
    call_adam(p, g, m, v, step=2**63 - 1)


@pytest.mark.parametrize("step", [1.0, "1", None, True])
def test_step_not_integer_is_type_error(step):
    p, g, m, v, _ = arrays()
    assert_refused(TypeError, r"step must be an integer", call_adam, p, g, m, v, step=step)


def test_step_numpy_integer_is_accepted():
    p, g, m, v, _ = arrays()
    call_adam(p, g, m, v, step=np.int64(3))


@pytest.mark.parametrize("name,value", [("beta_1", 1.0), ("beta_1", -0.1), ("beta_2", 1.0), ("beta_2", float("nan"))])
def test_betas_outside_unit_interval_are_value_errors(name, value):
    p, g, m, v, _ = arrays()
    assert_refused(ValueError, rf"{name} must be in \[0, 1\)", call_adam, p, g, m, v, **{name: value})


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
def test_learning_rate_not_finite_is_value_error(value):
    p, g, m, v, _ = arrays()
    assert_refused(ValueError, r"learning_rate must be finite", call_adam, p, g, m, v, learning_rate=value)
    assert_refused(ValueError, r"learning_rate must be finite", pyoptim.sgd_update, p, g, learning_rate=value)


def test_learning_rate_wrong_type_is_type_error():
    p, g, m, v, _ = arrays()
    assert_refused(TypeError, r"learning_rate must be a real number, got str", call_adam, p, g, m, v, learning_rate="0.1")


def test_epsilon_negative_is_value_error():
    p, g, m, v, _ = arrays()
    assert_refused(ValueError, r"epsilon must be finite and >= 0", call_adam, p, g, m, v, epsilon=-1e-7)
    assert_refused(ValueError, r"epsilon must be finite and >= 0", pyoptim.rmsprop_update, p, g, v, epsilon=-1.0)


@pytest.mark.parametrize("value", [-0.1, 1.5])
def test_sgd_momentum_outside_unit_interval_is_value_error(value):
    p, g, m, _, _ = arrays()
    assert_refused(ValueError, r"momentum must be in \[0, 1\]", pyoptim.sgd_update, p, g, m, momentum=value)


def test_rho_outside_unit_interval_is_value_error():
    p, g, v, _, _ = arrays()
    assert_refused(ValueError, r"rho must be in \[0, 1\)", pyoptim.rmsprop_update, p, g, v, rho=1.0)


def test_weight_decay_not_finite_is_value_error():
    p, g, m, v, _ = arrays()
    assert_refused(ValueError, r"weight_decay must be finite", call_adam, p, g, m, v, weight_decay=float("nan"))


def test_missing_momentum_buffer_is_value_error():
    p, g, v, _, _ = arrays()
    assert_refused(ValueError, r"momentum_buffer is required when momentum > 0", pyoptim.sgd_update, p, g, momentum=0.9)
    assert_refused(ValueError, r"momentum_buffer is required when momentum > 0", pyoptim.rmsprop_update, p, g, v, momentum=0.9)


def test_nesterov_must_be_bool():
    p, g, m, _, _ = arrays()
    assert_refused(TypeError, r"nesterov must be a bool", pyoptim.sgd_update, p, g, m, momentum=0.9, nesterov="yes")
    pyoptim.sgd_update(p, g, m, momentum=0.9, nesterov=np.True_)


def test_positional_hyperparameters_are_refused():
    p, g, m, v, _ = arrays()
    with pytest.raises(TypeError):
        pyoptim.adam_update(p, g, m, v, 1)  # step is keyword-only


# ------------------------------------------------------------------ stateful API

def test_stateful_refuses_bad_lists_and_modifies_nothing():
    opt = pyoptim.Adam()
    p1, p2, g1, g2, _ = arrays()
    ps, gs = [p1, p2], [g1, g2[:7]]
    before = [p1.copy(), p2.copy()]
    with pytest.raises(ValueError, match=r"grads\[1\] has shape \(7,\) but params\[1\] has shape \(8,\)"):
        opt.apply(gs, ps)
    np.testing.assert_array_equal(p1, before[0])
    assert opt.iterations == 0 and not opt.built
    with pytest.raises(TypeError, match=r"params\[1\] has dtype float64 but|grads\[1\]"):
        opt.apply([g1, np.ones(8, np.complex64)], ps)
    with pytest.raises(TypeError, match=r"params\[1\] must be a numpy.ndarray"):
        opt.apply([g1, g2], [p1, list(p2)])
    np.testing.assert_array_equal(p1, before[0])
    np.testing.assert_array_equal(p2, before[1])
    assert opt.iterations == 0 and not opt.built
    with pytest.raises(ValueError, match=r"grads has 1 entries but params has 2"):
        opt.apply([g1], ps)
    with pytest.raises(ValueError, match=r"params\[0\] and params\[1\] share memory"):
        opt.apply([g1, g1], [p1, p1])
    np.testing.assert_array_equal(p1, before[0])


def test_stateful_constructor_checks_hyperparameters():
    with pytest.raises(ValueError, match=r"beta_1 must be in \[0, 1\)"):
        pyoptim.Adam(beta_1=1.5)
    with pytest.raises(ValueError, match=r"momentum must be in \[0, 1\]"):
        pyoptim.SGD(momentum=2.0)
    with pytest.raises(ValueError, match=r"rho must be in"):
        pyoptim.RMSprop(rho=-1.0)
    with pytest.raises(ValueError, match=r"Only one of clipnorm, clipvalue and global_clipnorm"):
        pyoptim.SGD(clipnorm=1.0, global_clipnorm=1.0)
    with pytest.raises(ValueError, match=r"Only one of clipnorm, clipvalue and global_clipnorm"):
        pyoptim.SGD(clipnorm=1.0, clipvalue=1.0)  # as Keras: clipvalue would be ignored
    with pytest.raises(TypeError, match=r"learning_rate must be a float or a callable"):
        pyoptim.Adam(learning_rate="fast")


def test_argument_parsing_errors_name_the_argument():
    p, g, m, v, _ = arrays()
    assert_refused(TypeError, r"adam_update\(\) missing required argument 'step'", pyoptim.adam_update, p, g, m, v)
    assert_refused(TypeError, r"unexpected keyword argument 'lr'", pyoptim.sgd_update, p, g, lr=0.1)
    assert_refused(TypeError, r"multiple values for argument 'param'", pyoptim.sgd_update, p, g, param=p)
    assert_refused(TypeError, r"missing required argument 'velocity'", pyoptim.rmsprop_update, p, g)
    assert_refused(TypeError, r"at most 3 positional arguments", pyoptim.sgd_update, p, g, m, 0.1)


def test_functions_have_inspectable_signatures():
    import inspect
    sig = inspect.signature(pyoptim.adam_update)
    assert list(sig.parameters)[:5] == ["param", "grad", "m", "v", "step"]
    assert sig.parameters["step"].kind is inspect.Parameter.KEYWORD_ONLY
    assert sig.parameters["learning_rate"].default == 0.001
    assert "sqrt(1 - beta_2**t)" in pyoptim.adam_update.__doc__


def test_overlap_check_after_a_clean_call_still_refuses_new_overlaps():
    p1, p2, g1, g2, _ = arrays()
    opt = pyoptim.SGD(momentum=0.9)
    opt.apply([g1, g2], [p1, p2])  # a clean layout, remembered
    opt.apply([g1, g2], [p1, p2])
    buf = np.zeros(16, np.float32)
    before = buf.copy()
    with pytest.raises(ValueError, match=r"share memory"):
        pyoptim.SGD().apply([g1, g2], [buf[:8], buf[4:12]])
    np.testing.assert_array_equal(buf, before)
    with pytest.raises(ValueError, match=r"params\[0\] and params\[1\] share memory"):
        opt.apply([g1, g2], [p1, p1])
