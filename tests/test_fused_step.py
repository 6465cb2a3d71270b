"""One op per training step: pyoptim.keras updates all of a step's dense float32/float64 CPU
variables of one dtype in one kernel call, weight decay included, in model.fit, a custom loop in
tf.function and eagerly, with keras.optimizers' bits; AdamW.  Real TensorFlow/Keras."""
from __future__ import annotations

import os
from typing import Any, Dict, List, Tuple

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

import pyoptim.keras as pk  # noqa: E402
from pyoptim.keras import _warn  # noqa: E402

LAYERS = 12  # a deep MLP: 2 * LAYERS + 2 variables
ROWS, BATCH = 96, 32
STEPS = ROWS // BATCH


@pytest.fixture(scope="module", autouse=True)
def _op_loaded():
    assert pk.fast_path_available(), pk.status()


def _deep_model(dtype: str = "float32", mixed: bool = False) -> keras.Model:
    """Input(8) -> LAYERS x Dense(9, relu) -> Dense(3); with ``mixed``, the last hidden layer
    in float64 (two dtype groups in one step)."""
    keras.utils.set_random_seed(5)
    layers: List[Any] = [keras.Input((8,), dtype=dtype)]
    for i in range(LAYERS):
        layer_dtype = "float64" if mixed and i == LAYERS - 1 else dtype
        layers.append(keras.layers.Dense(9, activation="relu", dtype=layer_dtype))
    layers.append(keras.layers.Dense(3, dtype=dtype))
    return keras.Sequential(layers)


def _data(dtype: str = "float32") -> Tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(8)
    return rng.standard_normal((ROWS, 8)).astype(dtype), rng.integers(0, 3, ROWS)


def _state(model: keras.Model) -> List[np.ndarray]:
    return [v.numpy() for v in model.weights] + [v.numpy() for v in model.optimizer.variables]


def _assert_same(a: List[np.ndarray], b: List[np.ndarray]) -> None:
    assert len(a) == len(b)
    for i, (x, y) in enumerate(zip(a, b)):
        assert x.dtype == y.dtype and np.array_equal(x, y), f"array {i} differs"


def _counters() -> Tuple[Dict[str, int], Dict[str, int]]:
    return pk.kernel_calls(), pk.op_calls()


def _delta(before: Tuple[Dict[str, int], Dict[str, int]], kind: str) -> Tuple[int, int]:
    after = _counters()
    key = "adam" if kind == "AdamW" else kind.lower()
    return after[0][key] - before[0][key], after[1][key] - before[1][key]


CASES = [("SGD", {"momentum": 0.9, "weight_decay": 0.01}),
         ("RMSprop", {"momentum": 0.5, "centered": True}),
         ("RMSprop", {"weight_decay": 0.01}),
         ("Adam", {"amsgrad": True, "weight_decay": 0.01}),
         ("AdamW", {}),
         ("AdamW", {"weight_decay": 0.1, "global_clipnorm": 1.0})]


def _id(case: Tuple[str, Dict[str, Any]]) -> str:
    return case[0] + "".join(f"-{k}={v}" for k, v in case[1].items())


@pytest.mark.parametrize("eager", [False, True], ids=["graph", "eager"])
@pytest.mark.parametrize("case", CASES, ids=_id)
def test_model_fit_one_op_per_step(case, eager):
    """model.fit on a 26-variable model: one op execution per step for all variables, the
    kernels update every variable, and the weights are keras.optimizers' bits."""
    kind, kwargs = case
    x, y = _data()
    states = []
    for module in (pk, keras.optimizers):
        model = _deep_model()
        model.compile(optimizer=getattr(module, kind)(**kwargs), run_eagerly=eager,
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        before = _counters()
        model.fit(x, y, batch_size=BATCH, epochs=1, shuffle=False, verbose=0)
        if module is pk:
            updates, op_runs = _delta(before, kind)
            n = len(model.trainable_variables)
            # + 3 one-variable steps when graph RMSprop checks its arithmetic on first use
            extra = (0, 3) if kind == "RMSprop" and not eager else (0,)
            assert op_runs in [STEPS + e for e in extra], (op_runs, STEPS)
            assert updates in [STEPS * n + e for e in extra], (updates, STEPS * n)
            assert model.optimizer.path_counts()["fallback"] == 0
        states.append(_state(model))
    _assert_same(*states)


@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "tf.function"])
@pytest.mark.parametrize("kind", ["SGD", "RMSprop", "Adam", "AdamW"])
def test_custom_loop_apply_gradients_one_op(kind, compiled):
    """A custom training loop's apply_gradients (eagerly and in tf.function): one op per step,
    keras.optimizers' bits."""
    x, y = _data()
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    states, op_runs = [], 0
    for module in (pk, keras.optimizers):
        model = _deep_model()
        opt = getattr(module, kind)(learning_rate=0.01)

        def step(xb, yb, model=model, opt=opt):
            with tf.GradientTape() as tape:
                loss = loss_fn(yb, model(xb, training=True))
            grads = tape.gradient(loss, model.trainable_variables)
            opt.apply_gradients(zip(grads, model.trainable_variables))
            return loss

        run = tf.function(step) if compiled else step
        before = _counters()
        for i in range(0, ROWS, BATCH):
            run(tf.constant(x[i:i + BATCH]), tf.constant(y[i:i + BATCH]))
        if module is pk:
            updates, op_runs = _delta(before, kind)
            assert updates >= STEPS * len(model.trainable_variables)
        states.append([v.numpy() for v in model.weights] + [v.numpy() for v in opt.variables])
    assert op_runs in (STEPS, STEPS + 3), op_runs  # + graph RMSprop's first-use self-check
    _assert_same(*states)


def test_two_dtypes_and_a_fallback_in_one_step():
    """float32 and float64 variables take one op each per step; a float16 variable in the same
    step runs Keras' update; all of it equals keras.optimizers."""
    rng = np.random.default_rng(4)
    shapes = [(5, 3), (7,), (4, 4)]
    dtypes = ["float32", "float64", "float16"]
    grads = [[rng.standard_normal(s).astype(d) for s, d in zip(shapes, dtypes)] for _ in range(3)]
    states = []
    _warn._warned.clear()  # the fallback warning is shown once per process: whatever ran before
    for module in (pk, keras.optimizers):
        variables = [keras.Variable(np.ones(s, d)) for s, d in zip(shapes, dtypes)]
        opt = module.Adam(learning_rate=0.1, weight_decay=0.05)
        before = _counters()
        with pytest.warns(RuntimeWarning) if module is pk else _nothing():
            for g in grads:
                opt.apply_gradients([(tf.constant(gi), v) for gi, v in zip(g, variables)])
        if module is pk:
            updates, op_runs = _delta(before, "Adam")
            assert (updates, op_runs) == (2 * 3, 2 * 3)  # 2 variables, 2 ops, per step
            counts = opt.path_counts()
            assert counts["fast"] == 2 * 3 and counts["fallback"] == 3, counts
        states.append([v.numpy() for v in variables] + [v.numpy() for v in opt.variables])
    _assert_same(*states)


@pytest.mark.parametrize("kind", ["SGD", "RMSprop", "Adam"])
def test_eager_steps_that_change_shape_match_keras(kind):
    """A custom loop whose eager steps differ: all variables, a subset, another order, a None
    gradient (Keras skips that variable), an IndexedSlices gradient (in the same op, with
    repeated rows), weight decay switched on midway.  pyoptim.keras keeps each step's grouping
    (with the handles) between eager calls: every step must still equal keras.optimizers, with
    one op per dtype per step."""
    rng = np.random.default_rng(11)
    shapes = [(6, 4), (9,), (3, 3), (5,)]
    dtypes = ["float32", "float64", "float32", "float64"]
    options = {"SGD": {"momentum": 0.9}, "RMSprop": {"momentum": 0.5, "centered": True},
               "Adam": {"amsgrad": True}}[kind]

    def dense(i):
        return tf.constant(rng.standard_normal(shapes[i]).astype(dtypes[i]))

    steps = []  # (indices, gradients) per step; the same tensors for both optimizers
    for order in ([0, 1, 2, 3], [0, 2], [3, 1, 0, 2], [0, 1, 2, 3], [2, 0, 3, 1]):
        steps.append((order, [dense(i) for i in order]))
    steps[3][1][1] = None  # variable 1 without a gradient
    sparse = tf.IndexedSlices(tf.constant(rng.standard_normal((3, 4)).astype("float32")),
                              tf.constant([4, 1, 4]), tf.constant([6, 4]))
    steps.append(([0, 1, 2, 3], [sparse, dense(1), dense(2), dense(3)]))
    steps.append(([0, 1, 2, 3], [dense(i) for i in range(4)]))
    states, ops_per_step = [], []
    for module in (pk, keras.optimizers):
        variables = [keras.Variable(np.ones(s, d)) for s, d in zip(shapes, dtypes)]
        opt = getattr(module, kind)(learning_rate=0.05, **options)
        opt.build(variables)
        for n, (order, grads) in enumerate(steps):
            if n == 4:
                opt.weight_decay = 0.1
            before = _counters()
            opt.apply_gradients([(g, variables[i]) for g, i in zip(grads, order)])
            if module is pk:
                ops_per_step.append(_delta(before, kind)[1])
        states.append([v.numpy() for v in variables] + [v.numpy() for v in opt.variables])
    _assert_same(*states)
    dtype_groups = [len({dtypes[i] for i, g in zip(order, grads)
                         if g is not None})
                    for order, grads in steps]
    assert ops_per_step == dtype_groups


def test_unknown_variable_is_refused_eagerly():
    """Keras' check that a step's variables are the optimizer's own still holds when eager steps
    skip the per-variable look-up for known ones."""
    known = [keras.Variable(np.ones(3, "float32")) for _ in range(2)]
    opt = pk.Adam()
    opt.build(known)
    opt.apply_gradients([(tf.ones(3), v) for v in known])
    stranger = keras.Variable(np.ones(3, "float32"))
    before = [v.numpy() for v in known]
    with pytest.raises(ValueError, match="Unknown variable"):
        opt.apply_gradients([(tf.ones(3), known[0]), (tf.ones(3), stranger)])
    assert all(np.array_equal(a, v.numpy()) for a, v in zip(before, known))
    opt.apply_gradients([(tf.ones(3), known[1].value)])  # the tf.Variable of a known one


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def _apply_list(opt: Any, variables: List[Any], compiled: bool) -> Any:
    def step(grads):
        opt.apply_gradients(zip(grads, variables))

    return tf.function(step) if compiled else step


def _under_control_dependencies(opt: Any, variables: List[Any]) -> Any:
    marker = tf.Variable(0.0)

    @tf.function
    def step(grads):
        with tf.control_dependencies([marker.assign_add(1.0)]):
            opt.apply_gradients(zip(grads, variables))

    return step


def _apply_step(opt: Any, variable: Any) -> Any:
    @tf.function
    def step(g):
        opt.apply_gradients([(g, variable)])

    return step


@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "tf.function"])
@pytest.mark.parametrize("kind", ["SGD", "RMSprop", "Adam", "AdamW"])
def test_weight_decay_with_keras_bits(kind, compiled, monkeypatch):
    """The decay runs in the kernel pass (Keras' own decay code, spied on, is not reached),
    eagerly and inside tf.function (where Grappler computes Keras' decay as var - var * (wd *
    lr)); the bits equal keras.optimizers' either way, float32 and float64, also when clipping
    makes SGD's gradient * lr merge with the clipping Mul."""
    from keras.src.backend.tensorflow.optimizer import TFOptimizer

    keras_decay_calls: List[int] = []
    real = TFOptimizer._apply_weight_decay

    def counting(self, variables):
        if self.weight_decay is not None:  # (RMSprop's graph self-check runs without decay)
            keras_decay_calls.append(len(variables))
        return real(self, variables)

    monkeypatch.setattr(TFOptimizer, "_apply_weight_decay", counting)
    results = {}
    rng = np.random.default_rng(3)
    for dtype, clip in (("float32", {}), ("float64", {}), ("float32", {"global_clipnorm": 0.5})):
        start = [rng.standard_normal(s).astype(dtype) for s in ((37, 41), (41,))]
        grads = [[(rng.standard_normal(x.shape) * 0.7).astype(dtype) for x in start] for _ in range(3)]
        results = {}
        for module in (pk, keras.optimizers):
            variables = [keras.Variable(x.copy()) for x in start]
            opt = getattr(module, kind)(learning_rate=0.07, weight_decay=0.13, **clip)
            opt.build(variables)

            step = _apply_list(opt, variables, compiled)
            keras_decay_calls.clear()
            for g in grads:
                step([tf.constant(x) for x in g])
            if module is pk:
                assert keras_decay_calls == [], keras_decay_calls
            results[module.__name__] = [v.numpy() for v in variables] + [s.numpy() for s in opt.variables]
        _assert_same(results["pyoptim.keras"], results["keras.optimizers"])


@pytest.mark.parametrize("context", ["arithmetic_optimization_off", "control_dependencies"])
@pytest.mark.parametrize("kind", ["SGD", "RMSprop", "Adam"])
def test_weight_decay_where_grappler_keeps_the_textbook_order(kind, context):
    """Inside tf.function the op decays as Grappler rewrites Keras' decay (var * (wd * lr)); where
    that rewrite does not happen (the user switched Grappler's arithmetic optimiser off, or
    apply_gradients runs under tf.control_dependencies) the bits must still be Keras'."""
    rng = np.random.default_rng(9)
    start = [rng.standard_normal(s).astype("float32") for s in ((29, 31), (31,))]
    grads = [[tf.constant(rng.standard_normal(x.shape).astype("float32")) for x in start]
             for _ in range(3)]
    before = tf.config.optimizer.get_experimental_options()
    results = []
    try:
        if context == "arithmetic_optimization_off":
            tf.config.optimizer.set_experimental_options({"arithmetic_optimization": False})
        for module in (pk, keras.optimizers):
            variables = [keras.Variable(x.copy()) for x in start]
            opt = getattr(module, kind)(learning_rate=0.07, weight_decay=0.13)
            opt.build(variables)
            step = _apply_list(opt, variables, compiled=True)
            if context == "control_dependencies":
                step = _under_control_dependencies(opt, variables)
            for g in grads:
                step(g)
            results.append([v.numpy() for v in variables] + [v.numpy() for v in opt.variables])
    finally:
        # set_experimental_options merges: an option absent from `before` must be reset by name.
        tf.config.optimizer.set_experimental_options({"arithmetic_optimization": True, **before})
    _assert_same(*results)


@pytest.mark.parametrize("eager", [False, True], ids=["graph", "eager"])
def test_exclude_from_weight_decay(eager):
    x, y = _data()
    states = []
    for module in (pk, keras.optimizers):
        model = _deep_model()
        opt = module.AdamW(weight_decay=0.3)
        opt.exclude_from_weight_decay(var_names=["bias"])
        model.compile(optimizer=opt, loss=keras.losses.SparseCategoricalCrossentropy(True),
                      run_eagerly=eager)
        model.fit(x, y, batch_size=BATCH, epochs=1, shuffle=False, verbose=0)
        states.append(_state(model))
    _assert_same(*states)


def test_adamw_is_a_drop_in(tmp_path):
    """pyoptim.keras.AdamW: keras.optimizers.AdamW's constructor, defaults and config,
    registered for load_model; training continues after a save/load with Keras' bits."""
    import inspect

    assert issubclass(pk.AdamW, keras.optimizers.AdamW)
    assert inspect.signature(pk.AdamW) == inspect.signature(keras.optimizers.AdamW)
    ours, theirs = pk.AdamW(name="w").get_config(), keras.optimizers.AdamW(name="w").get_config()
    assert ours == theirs and ours["weight_decay"] == 0.004
    assert keras.saving.get_registered_name(pk.AdamW) == "pyoptim>AdamW"
    x, y = _data()
    model = _deep_model()
    model.compile(optimizer=pk.AdamW(), loss=keras.losses.SparseCategoricalCrossentropy(True))
    model.fit(x, y, batch_size=BATCH, epochs=1, shuffle=False, verbose=0)
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    assert type(loaded.optimizer) is pk.AdamW
    reference = keras.models.load_model(tmp_path / "m.keras")
    reference.compile(optimizer=keras.optimizers.AdamW.from_config(
        loaded.optimizer.get_config()), loss=keras.losses.SparseCategoricalCrossentropy(True))
    reference.optimizer.build(reference.trainable_variables)
    for a, b in zip(reference.optimizer.variables, loaded.optimizer.variables):
        a.assign(b)
    for m in (loaded, reference):
        m.fit(x, y, batch_size=BATCH, epochs=1, shuffle=False, verbose=0)
    _assert_same([w.numpy() for w in loaded.weights], [w.numpy() for w in reference.weights])
