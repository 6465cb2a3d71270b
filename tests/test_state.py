"""State of the stateful optimizers: ``state_dict()`` / ``load_state_dict()``.

* Round trip is bit-exact: running k steps, saving, loading into a fresh
  optimizer and running n more gives the same bits (params, every slot,
  iterations) as k + n uninterrupted steps, also through pickle.
* The state is a snapshot: neither the returned dict nor the loaded one shares
  memory with the optimizer.
* A state from another optimizer kind, with other slots (momentum, centered,
  amsgrad), other shapes, dtypes or number of arrays is refused with a clear
  error, and a refused load leaves the optimizer as it was.
"""
from __future__ import annotations

import pickle
from typing import Dict, List

import numpy as np
import pytest

import pyoptim
import reference as ref

CONFIGS = {
    "sgd": ("SGD", {}),
    "sgd_momentum": ("SGD", {"momentum": 0.9}),
    "sgd_nesterov_decay": ("SGD", {"momentum": 0.5, "nesterov": True, "weight_decay": 0.01}),
    "rmsprop": ("RMSprop", {}),
    "rmsprop_centered_momentum": ("RMSprop", {"momentum": 0.5, "centered": True, "weight_decay": 0.004}),
    "adam": ("Adam", {}),
    "adam_amsgrad_decay": ("Adam", {"amsgrad": True, "weight_decay": 0.01}),
}
SHAPES = [(), (0,), (7,), (33,), (4, 5), (40_003,)]
DTYPES = [np.float32, np.float64, np.float32, np.float64, np.float32, np.float32]


def schedule(iteration: int) -> float:
    """A learning rate that depends on the iteration, so a wrong restored count shows."""
    return 0.01 * 0.9 ** iteration


def make(config: str, **extra) -> pyoptim.Optimizer:
    kind, kwargs = CONFIGS[config]
    return getattr(pyoptim, kind)(learning_rate=schedule, **kwargs, **extra)


def params_for(seed: int, shapes=SHAPES, dtypes=DTYPES, order: str = "C") -> List[np.ndarray]:
    rng = np.random.default_rng(seed)
    out = []
    for shape, dtype in zip(shapes, dtypes):
        a = rng.standard_normal(shape).astype(dtype)
        out.append(np.asfortranarray(a) if order == "F" and a.ndim >= 2 else np.asarray(a))
    return out


def grads_for(step: int, params: List[np.ndarray]) -> List[np.ndarray]:
    rng = np.random.default_rng(1000 + step)
    out = []
    for p in params:
        g = rng.standard_normal(p.shape).astype(p.dtype)
        out.append(np.asfortranarray(g) if p.flags.f_contiguous and p.ndim >= 2 else np.asarray(g))
    return out


def slots_of(opt: pyoptim.Optimizer) -> Dict[str, List[np.ndarray]]:
    return opt.state_dict()["slots"] or {}


def assert_same_state(a: pyoptim.Optimizer, b: pyoptim.Optimizer) -> None:
    assert a.iterations == b.iterations
    sa, sb = slots_of(a), slots_of(b)
    assert set(sa) == set(sb)
    for name in sa:
        for i, (x, y) in enumerate(zip(sa[name], sb[name])):
            assert ref.identical_bits(x, y), f"slot {name}[{i}]"


@pytest.mark.parametrize("through_pickle", [False, True], ids=["dict", "pickle"])
@pytest.mark.parametrize("config", sorted(CONFIGS))
def test_round_trip_is_bit_exact(config, through_pickle):
    k, n = 3, 4
    uninterrupted = make(config)
    p_full = params_for(0)
    for step in range(k + n):
        uninterrupted.apply(grads_for(step, p_full), p_full)

    first = make(config)
    p = params_for(0)
    for step in range(k):
        first.apply(grads_for(step, p), p)
    state = first.state_dict()
    if through_pickle:
        state = pickle.loads(pickle.dumps(state))
    checkpoint = [a.copy() for a in p]
    del first

    resumed = make(config)
    resumed.load_state_dict(state)
    assert resumed.iterations == k
    for step in range(k, k + n):
        resumed.apply(grads_for(step, checkpoint), checkpoint)

    for i, (x, y) in enumerate(zip(checkpoint, p_full)):
        assert ref.identical_bits(x, y), f"params[{i}]"
    assert_same_state(resumed, uninterrupted)


@pytest.mark.parametrize("config", ["sgd_momentum", "rmsprop_centered_momentum", "adam_amsgrad_decay"])
def test_load_into_a_built_optimizer_replaces_its_state(config):
    src, dst = make(config), make(config)
    p, q = params_for(1), params_for(2)
    for step in range(3):
        src.apply(grads_for(step, p), p)
    dst.apply(grads_for(99, q), q)  # built, with other values
    dst.load_state_dict(src.state_dict())
    q = [a.copy() for a in p]
    for step in range(3, 5):
        src.apply(grads_for(step, p), p)
        dst.apply(grads_for(step, q), q)
    assert all(ref.identical_bits(x, y) for x, y in zip(p, q))
    assert_same_state(src, dst)


@pytest.mark.parametrize("config", ["sgd_momentum", "adam_amsgrad_decay"])
def test_round_trip_keeps_fortran_order(config):
    """Slots of Fortran-ordered params must stay usable after a round trip."""
    shapes, dtypes = [(4, 5), (3, 2, 6)], [np.float32, np.float64]
    a = make(config)
    p = params_for(3, shapes, dtypes, order="F")
    a.apply(grads_for(0, p), p)
    b = make(config)
    b.load_state_dict(a.state_dict())
    q = [x.copy(order="K") for x in p]
    a.apply(grads_for(1, p), p)
    b.apply(grads_for(1, q), q)
    assert all(ref.identical_bits(x, y) for x, y in zip(p, q))
    assert_same_state(a, b)


def test_unbuilt_state_round_trip():
    a = make("adam")
    state = a.state_dict()
    assert state["slots"] is None and state["iterations"] == 0
    b = make("adam")
    b.load_state_dict(state)
    assert not b.built and b.iterations == 0


def test_state_is_a_snapshot():
    opt = make("adam_amsgrad_decay")
    p = params_for(4)
    opt.apply(grads_for(0, p), p)
    state = opt.state_dict()
    before = pickle.loads(pickle.dumps(state))
    for arrays in state["slots"].values():  # scribbling on the dict must not reach the optimizer
        for a in arrays:
            a[...] = 7
    after = opt.state_dict()
    for name, arrays in before["slots"].items():
        assert all(ref.identical_bits(x, y) for x, y in zip(arrays, after["slots"][name]))

    other = make("adam_amsgrad_decay")
    loaded = pickle.loads(pickle.dumps(before))
    other.load_state_dict(loaded)
    for arrays in loaded["slots"].values():  # nor scribbling on a dict after loading it
        for a in arrays:
            a[...] = 7
    assert_same_state(opt, other)


# ---------------------------------------------------------------- refused loads


def built(config: str, seed: int = 5, shapes=SHAPES, dtypes=DTYPES) -> pyoptim.Optimizer:
    opt = make(config)
    p = params_for(seed, shapes, dtypes)
    opt.apply(grads_for(0, p), p)
    opt.apply(grads_for(1, p), p)
    return opt


def assert_load_refused(target: pyoptim.Optimizer, state, exc, match: str) -> None:
    before = target.state_dict()
    with pytest.raises(exc, match=match):
        target.load_state_dict(state)
    after = target.state_dict()
    assert after["iterations"] == before["iterations"]
    if before["slots"] is None:
        assert after["slots"] is None
    else:
        for name, arrays in before["slots"].items():
            assert all(ref.identical_bits(x, y) for x, y in zip(arrays, after["slots"][name]))


@pytest.mark.parametrize("source,target", [
    ("adam", "sgd_momentum"), ("adam", "rmsprop"), ("rmsprop", "adam"), ("sgd_momentum", "adam"),
    ("sgd", "rmsprop"), ("rmsprop", "sgd"),
])
@pytest.mark.parametrize("target_built", [False, True], ids=["fresh", "built"])
def test_state_from_another_optimizer_kind_is_refused(source, target, target_built):
    state = built(source).state_dict()
    dst = built(target) if target_built else make(target)
    src_kind, dst_kind = CONFIGS[source][0], CONFIGS[target][0]
    assert_load_refused(dst, state, ValueError, rf"{src_kind}.*{dst_kind}")


@pytest.mark.parametrize("source,target", [
    ("adam_amsgrad_decay", "adam"), ("adam", "adam_amsgrad_decay"),
    ("rmsprop_centered_momentum", "rmsprop"), ("rmsprop", "rmsprop_centered_momentum"),
    ("sgd_momentum", "sgd"), ("sgd", "sgd_momentum"),
])
@pytest.mark.parametrize("target_built", [False, True], ids=["fresh", "built"])
def test_state_with_other_slots_is_refused(source, target, target_built):
    state = built(source).state_dict()
    dst = built(target) if target_built else make(target)
    assert_load_refused(dst, state, ValueError, r"slot")


@pytest.mark.parametrize("config", ["sgd_momentum", "rmsprop_centered_momentum", "adam_amsgrad_decay"])
def test_state_with_other_shapes_is_refused_by_a_built_optimizer(config):
    state = built(config, shapes=[(7,), (4, 5)], dtypes=[np.float32, np.float64]).state_dict()
    dst = built(config, shapes=[(7,), (5, 4)], dtypes=[np.float32, np.float64])
    assert_load_refused(dst, state, ValueError, r"\(4, 5\).*\(5, 4\)")


@pytest.mark.parametrize("config", ["sgd_momentum", "rmsprop_centered_momentum", "adam_amsgrad_decay"])
def test_state_with_other_dtypes_is_refused_by_a_built_optimizer(config):
    state = built(config, shapes=[(7,), (4, 5)], dtypes=[np.float32, np.float32]).state_dict()
    dst = built(config, shapes=[(7,), (4, 5)], dtypes=[np.float32, np.float64])
    assert_load_refused(dst, state, ValueError, r"float32.*float64")


@pytest.mark.parametrize("config", ["sgd_momentum", "adam"])
def test_state_with_another_number_of_arrays_is_refused_by_a_built_optimizer(config):
    state = built(config, shapes=[(7,), (3,), (2,)], dtypes=[np.float32] * 3).state_dict()
    dst = built(config, shapes=[(7,), (3,)], dtypes=[np.float32] * 2)
    assert_load_refused(dst, state, ValueError, r"3 arrays.*2")


@pytest.mark.parametrize("config", ["sgd_momentum", "rmsprop_centered_momentum", "adam_amsgrad_decay"])
def test_loaded_state_with_other_shapes_is_refused_at_apply_without_modification(config):
    """A fresh optimizer cannot check shapes at load time (it has not seen the
    params); the first apply must then refuse, naming a slot, and modify nothing."""
    state = built(config, shapes=[(7,), (4, 5)], dtypes=[np.float32, np.float64]).state_dict()
    dst = make(config)
    dst.load_state_dict(state)
    params = params_for(6, [(7,), (5, 4)], [np.float32, np.float64])
    before = [p.copy() for p in params]
    slots_before = dst.state_dict()
    with pytest.raises(ValueError, match=r"\(5, 4\)|\(4, 5\)"):
        dst.apply(grads_for(2, params), params)
    assert all(ref.identical_bits(x, y) for x, y in zip(params, before))
    assert dst.iterations == slots_before["iterations"]
    for name, arrays in slots_before["slots"].items():
        assert all(ref.identical_bits(x, y) for x, y in zip(arrays, slots_of(dst)[name]))


@pytest.mark.parametrize("mutate,exc,match", [
    (lambda s: [1, 2, 3], TypeError, "state"),
    (lambda s: {k: v for k, v in s.items() if k != "slots"}, TypeError, "state"),
    (lambda s: {**s, "iterations": -1}, ValueError, "iterations"),
    (lambda s: {**s, "iterations": True}, ValueError, "iterations"),
    (lambda s: {**s, "iterations": 2.0}, ValueError, "iterations"),
    (lambda s: {**s, "optimizer": None}, ValueError, "None"),
    (lambda s: {**s, "slots": {**s["slots"], "momentums": [[0.0] * 7, s["slots"]["momentums"][1]]}},
     TypeError, r"momentums\[0\]"),
    (lambda s: {**s, "slots": {**s["slots"], "velocities": [np.zeros(7, np.int32), s["slots"]["velocities"][1]]}},
     TypeError, r"velocities\[0\]"),
    (lambda s: {**s, "slots": {**s["slots"], "velocities": s["slots"]["velocities"][:1]}}, ValueError, "length"),
], ids=["not-a-dict", "no-slots", "negative-iterations", "bool-iterations", "float-iterations", "no-kind",
        "list-slot", "int-slot", "short-slot-list"])
def test_malformed_state_is_refused(mutate, exc, match):
    state = built("adam", shapes=[(7,), (4, 5)], dtypes=[np.float32, np.float64]).state_dict()
    assert_load_refused(built("adam", shapes=[(7,), (4, 5)], dtypes=[np.float32, np.float64]),
                        mutate(state), exc, match)
