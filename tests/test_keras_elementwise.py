"""pyoptim.keras' element-wise optimizers (Adadelta, Adagrad, Adamax, Ftrl, Lamb, Lion, Nadam:
the generic op ``PyoptimApplyElementwise``) against keras.optimizers, with real TensorFlow and
Keras.

Every comparison runs the same steps twice from the same values, once with pyoptim.keras.<Opt>
and once with keras.optimizers.<Opt>, and requires the variables and every optimizer variable to
be the same bits; the op's counters show that the kernel ran, once per step.
"""
from __future__ import annotations

import json
import os
from typing import Any, Dict, List, Tuple

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

import pyoptim.keras as pk  # noqa: E402
from pyoptim.keras import _loader  # noqa: E402
from test_keras import (BATCH, STEPS, _assert_same, _compare, _data, _fit,  # noqa: E402
                        _id_pair, _run_python, _state)

KINDS = ("Adadelta", "Adagrad", "Adamax", "Ftrl", "Lamb", "Lion", "Nadam")
# Non-default hyperparameters of each (the defaults run in the Keras suites and model.fit).
OPTIONS: Dict[str, Dict[str, Any]] = {
    "Adadelta": {"learning_rate": 0.5, "rho": 0.8, "epsilon": 1e-5},
    "Adagrad": {"learning_rate": 0.05, "initial_accumulator_value": 0.3, "epsilon": 1e-5},
    # A large step, so that a trust ratio one ulp off shows in the variables.
    "Lamb": {"learning_rate": 0.5, "beta_1": 0.8, "beta_2": 0.99, "epsilon": 1e-5},
    "Lion": {"learning_rate": 0.003, "beta_1": 0.8, "beta_2": 0.95},
    "Adamax": {"learning_rate": 0.01, "beta_1": 0.8, "beta_2": 0.99, "epsilon": 1e-4},
    # TensorFlow's Pow (-0.6 stays Pow in a graph too) and every regularisation term.
    "Ftrl": {"learning_rate": 0.05, "learning_rate_power": -0.6, "initial_accumulator_value": 0.2,
             "l1_regularization_strength": 0.01, "l2_regularization_strength": 0.02,
             "l2_shrinkage_regularization_strength": 0.01, "beta": 0.5},
    "Nadam": {"learning_rate": 0.01, "beta_1": 0.85, "beta_2": 0.99, "epsilon": 1e-5},
}
SIZES = (1, 7, 1003, 40009)  # SIMD tails; the largest runs in parallel blocks


@pytest.fixture(scope="module", autouse=True)
def op_built() -> None:
    pk.build()
    assert pk.fast_path_available(), pk.status()


def _apply_steps(module: Any, kind: str, kwargs: Dict[str, Any], dtype: str, graph: bool,
                 steps: int = 4) -> Tuple[List[np.ndarray], Any]:
    """``steps`` calls of ``opt.apply`` (in a ``tf.function`` when ``graph``) on four dense
    variables of SIZES and one [50, 3] table with a sparse gradient (tf.IndexedSlices, rows
    repeated), the last dense variable excluded from weight decay."""
    rng = np.random.default_rng(42)
    dense = [keras.Variable(rng.standard_normal(n).astype(dtype), name=f"w{n}") for n in SIZES]
    table = keras.Variable(rng.standard_normal((50, 3)).astype(dtype), name="table")
    variables = dense + [table]
    opt = getattr(module, kind)(**kwargs)
    if kwargs.get("weight_decay"):
        opt.exclude_from_weight_decay(var_list=[dense[-1]])
    opt.build(variables)

    def step(grads):
        opt.apply(grads, variables)
        return opt.iterations

    if graph:
        step = tf.function(step)
    for s in range(steps):
        grads = [tf.constant((rng.standard_normal(n) * (s + 1)).astype(dtype)) for n in SIZES]
        rows = rng.integers(0, 50, 40)  # 40 slices over 50 rows: repeats and untouched rows
        grads.append(tf.IndexedSlices(tf.constant(rng.standard_normal((40, 3)).astype(dtype)),
                                      tf.constant(rows), tf.constant([50, 3])))
        step(grads)
    return [v.numpy() for v in variables] + [v.numpy() for v in opt.variables], opt


@pytest.mark.parametrize("graph", [False, True], ids=["eager", "graph"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("kind", KINDS)
def test_apply_matches_keras(kind, dtype, graph):
    """Dense and sparse gradients in one step, weight decay with an excluded variable,
    non-default hyperparameters: Keras' bits, one op per step, nothing falls back."""
    kwargs = dict(OPTIONS[kind], weight_decay=0.02)
    before = pk.op_calls()[kind.lower()]
    ours, opt = _apply_steps(pk, kind, kwargs, dtype, graph)
    # + 3 when the graph form's first-use check (pyoptim.keras._grappler) ran in this call
    assert pk.op_calls()[kind.lower()] - before in (4, 7)
    counts = opt.path_counts()  # counted when Python runs the step: once, at the trace, in graph
    assert counts["fallback"] == 0 and counts["fast"] == (1 if graph else 4) * 5, counts
    ref, _ = _apply_steps(keras.optimizers, kind, kwargs, dtype, graph)
    _assert_same(ours, ref)


# Every learning_rate_power Grappler rewrites (-0.5: sqrt, -1, -2, -3, 0) and l1 = 0 (whose
# clip bounds are +0 and -0).
FTRL_POWERS = [{"learning_rate_power": p} for p in (-0.5, -1.0, -2.0, -3.0, 0.0)]


@pytest.mark.parametrize("graph", [False, True], ids=["eager", "graph"])
@pytest.mark.parametrize("kwargs", FTRL_POWERS, ids=_id_pair)
def test_ftrl_powers_match_keras(kwargs, graph):
    ours, _ = _apply_steps(pk, "Ftrl", dict(kwargs, l2_regularization_strength=0.01), "float32",
                           graph, steps=3)
    ref, _ = _apply_steps(keras.optimizers, "Ftrl", dict(kwargs, l2_regularization_strength=0.01),
                          "float32", graph, steps=3)
    _assert_same(ours, ref)


@pytest.mark.parametrize("kind", KINDS)
def test_apply_with_defaults_matches_keras(kind):
    ours, _ = _apply_steps(pk, kind, {}, "float32", True, steps=3)
    ref, _ = _apply_steps(keras.optimizers, kind, {}, "float32", True, steps=3)
    _assert_same(ours, ref)


@pytest.mark.parametrize("eager", [False, True], ids=["graph", "eager"])
@pytest.mark.parametrize("kind", KINDS)
def test_model_fit_matches_keras(kind, eager):
    """model.fit (Keras' train step; run_eagerly) with a global clipnorm: Keras' bits, and the
    kernel updates all four variables of every step in one op call."""
    before = pk.op_calls()[kind.lower()]
    model, calls = _compare(kind, dict(OPTIONS[kind], global_clipnorm=1.0), "float32", eager)
    counts = model.optimizer.path_counts()
    assert counts["fallback"] == 0, counts
    assert calls[kind.lower()] in (STEPS * 4, STEPS * 4 + 3)  # + the first-use check's steps
    assert pk.op_calls()[kind.lower()] - before in (STEPS, STEPS + 3)


@pytest.mark.parametrize("kind", KINDS)
def test_embedding_model_float64_matches_keras(kind):
    """A float64 model with an Embedding (sparse gradients with repeated rows) and weight decay."""
    model, calls = _compare(kind, {"weight_decay": 0.01}, "float64", embedding=True)
    assert model.optimizer.path_counts()["fallback"] == 0
    assert calls[kind.lower()] in (STEPS * 3, STEPS * 3 + 3)


def test_save_load_continue(tmp_path):
    """Nadam (whose Keras state includes the running product u_product), with a schedule:
    1 epoch, save, load without custom_objects, 2 more epochs = 3 epochs straight = Keras."""
    schedule = keras.optimizers.schedules.ExponentialDecay(0.01, decay_steps=3, decay_rate=0.5)
    kwargs = {"learning_rate": schedule, "beta_1": 0.8}
    straight, _ = _compare("Nadam", kwargs, epochs=3)
    first, _ = _fit("Nadam", pk, kwargs, "float32", False, epochs=1)
    path = tmp_path / "model.keras"
    first.save(path)
    loaded = keras.models.load_model(path)
    assert type(loaded.optimizer) is pk.Nadam
    x, y = _data("float32")
    loaded.fit(x, y, batch_size=BATCH, epochs=2, shuffle=False, verbose=0)
    assert loaded.optimizer.path_counts()["fallback"] == 0
    _assert_same(_state(loaded), _state(straight))


@pytest.mark.parametrize("kind", KINDS)
def test_same_constructor_and_config_as_keras(kind):
    import inspect

    ours, theirs = getattr(pk, kind), getattr(keras.optimizers, kind)
    assert inspect.signature(ours.__init__) == inspect.signature(theirs.__init__)
    kwargs = dict(OPTIONS[kind], name="opt")
    config = ours(**kwargs).get_config()
    assert config == theirs(**kwargs).get_config()
    restored = keras.optimizers.deserialize(keras.optimizers.serialize(ours(**kwargs)))
    assert type(restored) is ours and restored.get_config() == config


def test_kernel_names_agree_between_the_op_and_the_numpy_core():
    names = [n.decode() for n in _loader.load().pyoptim_kernel_names().numpy()]
    assert tuple(names) == tuple(pk.kernel_calls())
    assert {"adadelta", "adagrad", "adamax", "ftrl", "lamb", "lion", "nadam"} <= set(names)


def _op_call(**overrides: Any) -> None:
    var = tf.Variable(np.zeros(4, np.float32))
    m = tf.Variable(np.zeros(4, np.float32))
    args = dict(var=[var.handle], slots=[m.handle], coefficients=[tf.constant(0.1)] * 5,
                weight_decay=tf.constant(0.0), decay_learning_rate=tf.constant(0.1),
                grad=[tf.ones(4)], indices=[], optimizer="lion")
    args.update(overrides)
    _loader.load().pyoptim_apply_elementwise(**args)


@pytest.mark.parametrize("overrides,message", [
    ({"optimizer": "adafactor"}, "not an element-wise kernel"),
    ({"coefficients": [tf.constant(0.1)] * 4}, "coefficients"),
    ({"form": 3}, "variants"),
    ({"grad": [tf.ones(5)]}, "shape"),
])
def test_op_rejects_bad_input(overrides, message):
    with pytest.raises((tf.errors.InvalidArgumentError, ValueError), match=message):
        _op_call(**overrides)


LAMB_THREADS = """
import json, sys, numpy as np, tensorflow as tf
tf.config.threading.set_intra_op_parallelism_threads(THREADS)
import keras
import pyoptim.keras as pk

# float32 sums split over 2, 3 and 4 threads from 108388, 160000 and 211613 elements (float64
# from 54194, 80000, 105807)
sizes = (1003, 60001, 120001, 230001)


def make_step(opt, variables, graph):
    def step(grads):
        opt.apply(grads, variables)
    return tf.function(step) if graph else step


out = {}
for dtype in ("float32", "float64"):
    rng = np.random.default_rng(3)
    start = [rng.standard_normal(n).astype(dtype) for n in sizes]
    grads = [[tf.constant(rng.standard_normal(n).astype(dtype)) for n in sizes] for _ in range(3)]
    for graph in (False, True):
        states = []
        for module in (pk, keras.optimizers):
            variables = [keras.Variable(x.copy()) for x in start]
            opt = module.Lamb(learning_rate=0.5)
            step = make_step(opt, variables, graph)
            for g in grads:
                step(g)
            states.append([v.numpy() for v in variables] + [v.numpy() for v in opt.variables])
            if module is pk:
                counts = opt.path_counts()
        same = all(np.array_equal(a, b) for a, b in zip(*states))
        out[f"{dtype}-{'graph' if graph else 'eager'}"] = {"same": same,
                                                            "fallback": counts["fallback"]}
print(json.dumps(out))
"""


@pytest.mark.parametrize("threads", [1, 3])
def test_lamb_norms_follow_tensorflows_thread_split(threads):
    """Lamb's per-variable norms are TensorFlow's reduce_sum, whose order depends on the intra-op
    thread count (the shards it makes of a large tensor): the same bits as Keras with 1 and 3
    threads (the other tests run with the default, 2 here), for tensors below and above each
    split, eagerly (Pow) and in a tf.function (Square)."""
    info = json.loads(_run_python(LAMB_THREADS.replace("THREADS", str(threads)))
                      .strip().splitlines()[-1])
    assert len(info) == 4
    for case, result in info.items():
        assert result["same"] and result["fallback"] == 0, (case, info)


MIRRORED = """
import json, numpy as np, tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import keras
import pyoptim.keras as pk

rng = np.random.default_rng(1234)
x = rng.standard_normal((1000, 10)).astype("float32")
ids = np.minimum(rng.zipf(1.5, (1000, 6)) - 1, 39).astype("int32")
y = rng.integers(0, 3, 1000)
strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
out = {}
for kind, embedding in (("Adadelta", False), ("Adagrad", True), ("Adamax", True),
                        ("Ftrl", True), ("Lamb", False), ("Lion", False), ("Nadam", False)):
    states = []
    for module in (pk, keras.optimizers):
        with strategy.scope():
            keras.utils.set_random_seed(7)
            first = ([keras.Input((6,), dtype="int32"), keras.layers.Embedding(40, 8),
                      keras.layers.GlobalAveragePooling1D()] if embedding else
                     [keras.Input((10,)), keras.layers.Dense(16, activation="relu")])
            model = keras.Sequential(first + [keras.layers.Dense(3, activation="softmax")])
            model.compile(optimizer=getattr(module, kind)(weight_decay=0.01),
                          loss="sparse_categorical_crossentropy", jit_compile=False)
        before = pk.kernel_calls()[kind.lower()]
        model.fit(ids if embedding else x, y, batch_size=200, epochs=2, shuffle=False, verbose=0)
        calls = pk.kernel_calls()[kind.lower()] - before
        states.append([v.numpy() for v in model.weights]
                      + [v.numpy() for v in model.optimizer.variables])
        if module is pk:
            out[kind] = {"counts": model.optimizer.path_counts(), "calls": calls,
                         "variables": len(model.trainable_variables)}
    out[kind]["same"] = all(np.array_equal(a, b) for a, b in zip(*states))
print(json.dumps(out))
"""


def test_mirrored_strategy_two_logical_cpus():
    """MirroredStrategy on 2 logical CPUs: Keras' bits, the kernel on both replicas (an
    Embedding's per-replica IndexedSlices included)."""
    info = json.loads(_run_python(MIRRORED).strip().splitlines()[-1])
    for kind in KINDS:
        assert info[kind]["same"], info
        assert info[kind]["counts"]["fallback"] == 0, info
        # 10 steps x the variables x 2 replicas (+ 3 when a graph form's first-use check ran)
        assert info[kind]["calls"] - 10 * info[kind]["variables"] * 2 in (0, 3), info


def test_adafactor_and_muon_are_not_served():
    """The README says pyoptim does not serve them: no class of that name anywhere (no silent
    alias of Keras' own), and the trace refuses the names."""
    import pyoptim
    from pyoptim.trace.errors import TraceInputError
    from pyoptim.trace.optimizer_choice import parse_optimizer_names

    for name in ("Adafactor", "Muon"):
        assert not hasattr(pk, name) and not hasattr(pyoptim, name)
        assert name not in pk.__all__
        with pytest.raises(TraceInputError, match="unknown optimizer"):
            parse_optimizer_names(name.lower())
    assert "adafactor" not in pk.kernel_calls()


@pytest.mark.parametrize("kind", ["Adadelta", "Adagrad", "Ftrl", "Lamb"])
def test_graph_without_arithmetic_optimizer_matches_keras(kind):
    """With Grappler's arithmetic optimiser off, tf.function runs Keras' textbook arithmetic
    (no rsqrt, TensorFlow's Pow for Ftrl's and Lamb's powers): so does the op, and its
    first-use check verifies that form, not the rewritten one."""
    before = tf.config.optimizer.get_experimental_options()
    try:
        tf.config.optimizer.set_experimental_options({"arithmetic_optimization": False})
        ours, opt = _apply_steps(pk, kind, OPTIONS[kind], "float32", True, steps=3)
        ref, _ = _apply_steps(keras.optimizers, kind, OPTIONS[kind], "float32", True, steps=3)
    finally:
        tf.config.optimizer.set_experimental_options({"arithmetic_optimization": True, **before})
    assert opt.path_counts()["fallback"] == 0, opt.path_counts()
    _assert_same(ours, ref)
