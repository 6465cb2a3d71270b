"""pyoptim.Adam8bit / AdamW8bit (8-bit block-wise m and v) against a plain NumPy transcription
(tests/reference_8bit.py), bit for bit: every instruction set, one and two threads, lengths that
are not multiples of the block or the vector width, float32/float64/float16/bfloat16 params,
AMSGrad, weight decay; state save/load; non-finite gradients; bad input."""
from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest

import pyoptim
from reference import identical_bits, same_bits
from reference_8bit import adam8bit_step, decode_signed, decode_unsigned, new_state

# 40_001 > the core's parallel threshold (32768 elements): two threads split it.
SIZES = [1, 31, 257, 1000, 40_001]


@pytest.fixture(params=[1, 2], ids=["1thread", "2threads"])
def threads(request):
    before = pyoptim.get_num_threads()
    pyoptim.set_num_threads(request.param)
    yield request.param
    pyoptim.set_num_threads(before)


def _data(rng, n, dtype, steps):
    scale = 10.0 ** rng.integers(-3, 2, n)
    p0 = (rng.standard_normal(n) * scale).astype(dtype)
    grads = [(rng.standard_normal(n) * scale * 10.0 ** rng.integers(-2, 2, n)).astype(dtype)
             for _ in range(steps)]
    return p0, grads


def _run_reference(p0, grads, block, amsgrad=False, schedule=None, **kw):
    p, state = p0.copy(order="K"), new_state(p0, block, amsgrad)
    for t, g in enumerate(grads, start=1):
        lr = schedule(t - 1) if schedule else kw.get("learning_rate", 0.001)
        out = adam8bit_step(p, g, state, step=t, block=block, **{**kw, "learning_rate": lr})
        p = out.pop("param")
        state = out
    return p, state


def _assert_matches(opt, p, ref_p, ref_state, index=0):
    assert identical_bits(p, ref_p), "param differs"
    slots = opt.slots
    names = {"m": "momentums", "v": "velocities", "v_hat": "velocity_hats",
             "m_scale": "momentum_scales", "v_scale": "velocity_scales",
             "v_hat_scale": "velocity_hat_scales"}
    for k, expected in ref_state.items():
        got = slots[names[k]][index]
        assert same_bits(got, expected) if got.dtype.kind == "f" else identical_bits(got, expected), k


@pytest.mark.parametrize("n", SIZES)
def test_kernel_matches_transcription(isa, threads, n):
    rng = np.random.default_rng(n)
    p0, grads = _data(rng, n, np.float32, 4)
    opt = pyoptim.Adam8bit(learning_rate=0.01, min_8bit_size=0, block_size=64)
    p = p0.copy()
    for g in grads:
        opt.apply([g], [p])
    ref_p, ref_state = _run_reference(p0, grads, 64, learning_rate=0.01)
    _assert_matches(opt, p, ref_p, ref_state)


@pytest.mark.parametrize("dtype", [np.float64, np.float16, ml_dtypes.bfloat16])
@pytest.mark.parametrize("amsgrad", [False, True])
def test_dtypes_amsgrad_decay(isa, dtype, amsgrad):
    rng = np.random.default_rng(7)
    n = 40_001
    p0, grads = _data(rng, n, dtype, 3)
    kw = dict(learning_rate=0.003, beta_1=0.8, beta_2=0.99, epsilon=1e-6, weight_decay=0.05)
    opt = pyoptim.Adam8bit(amsgrad=amsgrad, block_size=256, **kw)
    p = p0.copy()
    for g in grads:
        opt.apply([g], [p])
    ref_p, ref_state = _run_reference(p0, grads, 256, amsgrad=amsgrad, **kw)
    _assert_matches(opt, p, ref_p, ref_state)
    scale_dtype = np.float64 if dtype == np.float64 else np.float32
    assert opt.slots["momentum_scales"][0].dtype == scale_dtype
    assert opt.slots["momentums"][0].dtype == np.int8 and opt.slots["velocities"][0].dtype == np.uint8


@pytest.mark.parametrize("block", [32, 96, 4096])
def test_block_sizes_and_fortran_order(block):
    rng = np.random.default_rng(block)
    p0 = np.asfortranarray(rng.standard_normal((123, 77)).astype(np.float32))
    grads = [np.asfortranarray(rng.standard_normal((123, 77)).astype(np.float32)) for _ in range(3)]
    opt = pyoptim.AdamW8bit(block_size=block, min_8bit_size=0)
    p = p0.copy(order="F")
    for g in grads:
        opt.apply([g], [p])
    ref_p, ref_state = _run_reference(p0, grads, block, weight_decay=0.004)
    _assert_matches(opt, p, ref_p, ref_state)
    assert opt.slots["momentum_scales"][0].shape == (-(-p.size // block),)


def test_list_mixes_8bit_and_float_state_and_exclusions():
    """Below min_8bit_size a tensor keeps float32 state and gets pyoptim.Adam's bits; the
    excluded tensors skip weight decay; one call for the list."""
    rng = np.random.default_rng(3)
    shapes = [(5000,), (10,), (64, 100), (3,)]
    params = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    grads = [[rng.standard_normal(s).astype(np.float32) for s in shapes] for _ in range(3)]
    kw = dict(learning_rate=0.01, weight_decay=0.1)
    opt = pyoptim.Adam8bit(min_8bit_size=4096, **kw)
    opt.exclude_from_weight_decay(indices=[2, 3])
    ref8 = pyoptim.Adam8bit(min_8bit_size=0, **kw)
    small = pyoptim.Adam(**kw)
    ps = [p.copy() for p in params]
    big = [params[0].copy()]
    big_nodecay = [params[2].copy()]
    ref_small = [params[1].copy()]
    ref_small_nodecay = [params[3].copy()]
    ref8_nodecay = pyoptim.Adam8bit(min_8bit_size=0, learning_rate=0.01)
    small_nodecay = pyoptim.Adam(learning_rate=0.01)
    for gs in grads:
        opt.apply(gs, ps)
        ref8.apply([gs[0]], big)
        ref8_nodecay.apply([gs[2]], big_nodecay)
        small.apply([gs[1]], ref_small)
        small_nodecay.apply([gs[3]], ref_small_nodecay)
    assert opt.slots["momentums"][0].dtype == np.int8 and opt.slots["momentums"][1].dtype == np.float32
    assert opt.slots["momentum_scales"][1].size == 0
    for got, want in zip(ps, [big[0], ref_small[0], big_nodecay[0], ref_small_nodecay[0]]):
        assert identical_bits(got, want)
    assert identical_bits(opt.slots["momentums"][0], ref8.slots["momentums"][0])
    assert identical_bits(opt.slots["velocities"][1], small.slots["velocities"][0])


def test_result_independent_of_threads_isa_and_list_position():
    rng = np.random.default_rng(11)
    n = 100_003
    p0, grads = _data(rng, n, np.float32, 3)
    results = []
    before_t, before_isa = pyoptim.get_num_threads(), pyoptim.get_isa()
    try:
        for isa_name in pyoptim.config.config()["isas_supported"]:
            for t in (1, 2):
                pyoptim.set_isa(isa_name)
                pyoptim.set_num_threads(t)
                opt = pyoptim.Adam8bit()
                other = rng.standard_normal(777).astype(np.float32)
                p = p0.copy()
                for g in grads:  # the tensor second in the list, after a short one
                    opt.apply([np.ones_like(other), g], [other, p])
                results.append((p, opt.slots["momentums"][1], opt.slots["velocity_scales"][1]))
    finally:
        pyoptim.set_isa(before_isa)
        pyoptim.set_num_threads(before_t)
    for r in results[1:]:
        assert all(identical_bits(a, b) for a, b in zip(r, results[0]))


def test_schedule_and_clipping():
    rng = np.random.default_rng(5)
    p0, grads = _data(rng, 3000, np.float32, 3)
    schedule = lambda step: 0.01 / (1 + step)  # noqa: E731
    opt = pyoptim.Adam8bit(learning_rate=schedule, clipvalue=0.5, min_8bit_size=0)
    p = p0.copy()
    for g in grads:
        opt.apply([g], [p])
    clipped = [np.clip(g, np.float32(-0.5), np.float32(0.5)) for g in grads]
    ref_p, ref_state = _run_reference(p0, clipped, 256, schedule=schedule)
    _assert_matches(opt, p, ref_p, ref_state)


def test_state_dict_round_trip_resumes_exactly():
    rng = np.random.default_rng(2)
    shapes = [(9000,), (17,)]
    params = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    grads = [[rng.standard_normal(s).astype(np.float32) for s in shapes] for _ in range(6)]
    a = pyoptim.AdamW8bit(amsgrad=True, block_size=128)
    pa = [p.copy() for p in params]
    for gs in grads[:3]:
        a.apply(gs, pa)
    saved = a.state_dict()
    saved_params = [p.copy() for p in pa]
    b = pyoptim.AdamW8bit(amsgrad=True)  # block_size 256: the state's config (128) wins
    b.load_state_dict(saved)
    assert b.block_size == 128 and b.amsgrad and b.iterations == 3
    for name, arrays in a.slots.items():
        assert all(identical_bits(x, y) for x, y in zip(arrays, b.slots[name])), name
    pb = [p.copy() for p in saved_params]
    for gs in grads[3:]:
        a.apply(gs, pa)
        b.apply(gs, pb)
    assert all(identical_bits(x, y) for x, y in zip(pa, pb))


def test_state_memory_is_a_quarter():
    n = 1_000_000
    p, g = np.zeros(n, np.float32), np.ones(n, np.float32)
    full, eight = pyoptim.Adam(), pyoptim.Adam8bit()
    full.apply([g], [p.copy()])
    eight.apply([g], [p.copy()])
    full_bytes = sum(a.nbytes for v in full.slots.values() for a in v)
    assert eight.state_bytes() == 2 * n + 2 * 4 * (-(-n // 256))
    assert eight.state_bytes() / full_bytes <= 0.27
    assert [v.dtype for v in eight.variables[1:]] == [np.int8, np.uint8, np.float32, np.float32]


def test_non_finite_block_stays_in_its_block():
    rng = np.random.default_rng(9)
    n, block = 2048, 256
    p0, grads = _data(rng, n, np.float32, 3)
    bad = [g.copy() for g in grads]
    bad[0][300] = np.nan   # block 1
    bad[0][1500] = np.inf  # block 5
    clean_opt, bad_opt = pyoptim.Adam8bit(min_8bit_size=0), pyoptim.Adam8bit(min_8bit_size=0)
    pc, pb = p0.copy(), p0.copy()
    clean_opt.apply([grads[0]], [pc])
    bad_opt.apply([bad[0]], [pb])
    scales = bad_opt.slots["momentum_scales"][0]
    assert np.isnan(scales[[1, 5]]).all() and np.isfinite(np.delete(scales, [1, 5])).all()
    # This step: only the elements whose own arithmetic was not finite are NaN.
    assert np.isnan(pb[300]) and np.isnan(pb[1500])
    assert np.isfinite(np.delete(pb, [300, 1500])).all()
    for g_clean, g_bad in zip(grads[1:], bad[1:]):
        clean_opt.apply([g_clean], [pc])
        bad_opt.apply([g_bad], [pb])
    poisoned = np.zeros(n, bool)
    poisoned[256:512] = poisoned[1280:1536] = True
    assert np.isnan(pb[poisoned]).all()
    assert identical_bits(pb[~poisoned], pc[~poisoned])


def test_tiny_block_codes_as_zeros():
    """A block whose largest |m| is below 1/FLT_MAX (1 / absmax overflows) codes as zeros,
    as the transcription says (no float-to-int conversion of an infinity)."""
    p0 = np.ones(512, np.float32)
    g = np.full(512, 1e-38, np.float32)
    g[256:] = 1.0
    opt = pyoptim.Adam8bit(min_8bit_size=0)
    p = p0.copy()
    opt.apply([g], [p])
    ref_p, ref_state = _run_reference(p0, [g], 256)
    _assert_matches(opt, p, ref_p, ref_state)
    assert (opt.slots["momentums"][0][:256] == 0).all() and (opt.slots["momentums"][0][256:] == 127).all()


def test_codes_decode_as_documented():
    q = np.arange(-127, 128).astype(np.int8)
    m = decode_signed(q, np.float32)
    assert m[0] == -1 and m[-1] == 1 and np.all(np.diff(m) > 0)
    u = decode_unsigned(np.arange(256).astype(np.uint8), np.float32)
    assert u[0] == 0 and u[-1] == 1 and np.all(np.diff(u) > 0)


# ---------------------------------------------------------------- bad input


def _built(n=5000, amsgrad=False):
    opt = pyoptim.Adam8bit(amsgrad=amsgrad)
    p = np.ones(n, np.float32)
    opt.apply([np.ones(n, np.float32)], [p])
    return opt, p


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(block_size=100), ValueError, "block_size"),
    (dict(block_size=8192), ValueError, "block_size"),
    (dict(block_size=256.0), TypeError, "block_size"),
    (dict(block_size=True), TypeError, "block_size"),
    (dict(min_8bit_size=-1), ValueError, "min_8bit_size"),
    (dict(min_8bit_size="0"), TypeError, "min_8bit_size"),
    (dict(beta_1=1.5), ValueError, "beta_1"),
    (dict(epsilon=-1.0), ValueError, "epsilon"),
])
def test_bad_constructor_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        pyoptim.Adam8bit(**kwargs)


def test_adamw8bit_refuses_no_weight_decay():
    with pytest.raises(ValueError, match="weight_decay"):
        pyoptim.AdamW8bit(weight_decay=None)


def test_block_size_fixed_once_built():
    opt, _ = _built()
    with pytest.raises(ValueError, match="block_size"):
        opt.block_size = 512
    with pytest.raises(ValueError, match="min_8bit_size"):
        opt.min_8bit_size = 10
    opt.block_size = 256  # unchanged: allowed
    fresh = pyoptim.Adam8bit()
    fresh.block_size = 512
    assert fresh.block_size == 512


def _core_call(p, g, m, v, sm, sv, block=256):
    pyoptim._core._adam8bit_multi([p], [g], [m], [v], None, [sm], [sv], None, 1, 0.001, 0.9, 0.999,
                                  1e-7, None, block, None)


@pytest.mark.parametrize("change, error, match", [
    (dict(m=np.zeros(1000, np.uint8)), TypeError, "momentums\\[0\\] must have dtype int8 \\(8-bit state\\) or float32"),
    (dict(v=np.zeros(1000, np.int8)), TypeError, "velocities\\[0\\] must have dtype uint8"),
    (dict(m=np.zeros(999, np.int8)), ValueError, "momentums\\[0\\] has shape"),
    (dict(sm=np.zeros(3, np.float32)), ValueError, "momentum_scales\\[0\\] has shape \\(3,\\).*\\(4,\\)"),
    (dict(sv=np.zeros(4, np.float64)), TypeError, "velocity_scales\\[0\\] has dtype float64"),
    (dict(sm=[0.0] * 4), TypeError, "momentum_scales\\[0\\] must be a numpy.ndarray"),
    (dict(block=100), ValueError, "block_size"),
])
def test_bad_state_arrays_refused_before_any_write(change, error, match):
    n = 1000
    args = dict(p=np.ones(n, np.float32), g=np.ones(n, np.float32), m=np.zeros(n, np.int8),
                v=np.zeros(n, np.uint8), sm=np.zeros(4, np.float32), sv=np.zeros(4, np.float32))
    args.update(change)
    before = {k: np.array(a, copy=True) for k, a in args.items() if isinstance(a, np.ndarray)}
    with pytest.raises(error, match=match):
        _core_call(**args)
    for k, a in before.items():
        assert identical_bits(args[k], a), f"{k} was modified"


def test_read_only_and_shared_state_refused():
    n = 1000
    p, g = np.ones(n, np.float32), np.ones(n, np.float32)
    m, v = np.zeros(n, np.int8), np.zeros(n, np.uint8)
    sm, sv = np.zeros(4, np.float32), np.zeros(4, np.float32)
    m.flags.writeable = False
    with pytest.raises(ValueError, match="momentums\\[0\\] is read-only"):
        _core_call(p, g, m, v, sm, sv)
    m = np.zeros(n, np.int8)
    with pytest.raises(ValueError, match="share memory"):
        _core_call(p, g, m, v, sm, sm)
    assert (p == 1).all()


def test_load_state_dict_refuses_bad_state_without_change():
    opt, p = _built()
    state = opt.state_dict()
    good = {k: [a.copy() for a in v] for k, v in opt.slots.items()}
    broken = dict(state, slots={**state["slots"], "velocities": [state["slots"]["velocities"][0].astype(np.int16)]})
    with pytest.raises(TypeError, match="velocities\\[0\\] has dtype int16"):
        opt.load_state_dict(broken)
    mixed = dict(state, slots={**state["slots"], "velocities": [np.zeros(5000, np.float32)]})
    with pytest.raises(ValueError, match="mixes 8-bit and float"):
        pyoptim.Adam8bit().load_state_dict(mixed)
    for k, arrays in good.items():
        assert identical_bits(opt.slots[k][0], arrays[0])


def test_apply_with_wrong_param_count_or_shape_changes_nothing():
    opt, p = _built()
    before = {k: [a.copy() for a in v] for k, v in opt.slots.items()}
    with pytest.raises(ValueError, match="params\\[0\\]|momentums\\[0\\]"):
        opt.apply([np.ones(4000, np.float32)], [np.ones(4000, np.float32)])
    for k, arrays in before.items():
        assert identical_bits(opt.slots[k][0], arrays[0])
