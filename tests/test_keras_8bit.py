"""pyoptim.keras.Adam8bit / AdamW8bit (8-bit block-wise state, TensorFlow op PyoptimApplyAdam8bit)
against pyoptim.Adam8bit / AdamW8bit (NumPy) and the NumPy transcription tests/reference_8bit.py,
bit for bit: every parameter and every slot (codes and scales), eager and inside tf.function,
float32 and float64, AMSGrad, weight decay with exclusions, variables below min_8bit_size in the
same step, lengths that are not multiples of the block, sparse (IndexedSlices) gradients with
unique and repeated rows; model.fit (Keras' options), .keras save / load, MirroredStrategy on two
logical CPUs, config round trip, bad arguments, and the errors where the op cannot run.  Real
TensorFlow/Keras; small models, a few steps.

float64 note: Keras' learning rate is a float32 variable, so float64 comparisons use learning
rates that float32 holds exactly (the NumPy optimizer gets the same value).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

import pyoptim  # noqa: E402
import pyoptim.keras as pk  # noqa: E402
from reference_8bit import adam8bit_step, new_state  # noqa: E402

# NumPy slot name -> the Keras optimizer's attribute holding that slot per variable.
SLOTS = {"momentums": "_momentums", "velocities": "_velocities",
         "velocity_hats": "_velocity_hats", "momentum_scales": "_momentum_scales",
         "velocity_scales": "_velocity_scales", "velocity_hat_scales": "_velocity_hat_scales"}


@pytest.fixture(scope="module", autouse=True)
def _op_loaded():
    assert pk.fast_path_available(), pk.status()


def _same_bits(a: np.ndarray, b: np.ndarray, what: str) -> None:
    assert a.dtype == b.dtype and a.shape == b.shape, (what, a.dtype, b.dtype, a.shape, b.shape)
    if a.tobytes() != b.tobytes():
        differ = int(np.sum(a.view(np.uint8) != b.view(np.uint8)))
        raise AssertionError(f"{what}: {differ} bytes of {a.nbytes} differ")


def _assert_matches_numpy(opt: Any, variables: Sequence[Any], ref: Any,
                          params: Sequence[np.ndarray]) -> None:
    """Parameters, every slot of every variable, and opt.variables' order (after Keras'
    iteration and learning-rate variables) equal the NumPy optimizer's."""
    for i, (v, p) in enumerate(zip(variables, params)):
        _same_bits(np.asarray(v.numpy()), p, f"param {i}")
    for name, attr in SLOTS.items():
        if name not in ref.slots:
            assert not hasattr(opt, attr)
            continue
        for i, (k, n) in enumerate(zip(getattr(opt, attr), ref.slots[name])):
            _same_bits(k.numpy(), np.asarray(n), f"{name}[{i}]")
    ours = [v.numpy() for v in opt.variables]
    theirs = ref.variables
    skip = 2 if isinstance(opt._learning_rate, keras.Variable) else 1  # Keras' learning rate
    assert len(ours) == len(theirs) - 1 + skip
    assert int(ours[0]) == int(theirs[0])  # iterations
    for i, (a, b) in enumerate(zip(ours[skip:], theirs[1:])):
        _same_bits(a, np.asarray(b), f"opt.variables[{i + skip}]")


# -- (a) the op against pyoptim.Adam8bit / AdamW8bit (NumPy), bit for bit ----------------------

# 8-bit with block_size 64 / min_8bit_size 300: 1517, 300, 385 and 77357 elements (none a multiple
# of 64; the last one large enough for the op's parallel pass); float state: 9 and 64 elements.
SHAPES = [(37, 41), (300,), (9,), (5, 7, 11), (64,), (301, 257)]
EXCLUDED = 1  # the variable excluded from weight decay in the cases that decay

CASES: List[tuple] = [
    ("Adam8bit", {}, "float32"),
    ("Adam8bit", {"amsgrad": True, "weight_decay": 0.01, "clipvalue": 0.5}, "float32"),
    ("AdamW8bit", {"amsgrad": True, "learning_rate": 2.0 ** -9}, "float64"),
    ("AdamW8bit", {"learning_rate": 0.01, "beta_1": 0.8, "epsilon": 1e-6, "block_size": 32,
                   "min_8bit_size": 0}, "float32"),
    ("Adam8bit", {"learning_rate": 2.0 ** -10, "beta_2": 0.99, "block_size": 4096,
                  "min_8bit_size": 100, "weight_decay": 0.03}, "float64"),
    ("Adam8bit", {"schedule": True, "global_clipnorm": 2.0}, "float32"),
]


def _case_id(case: tuple) -> str:
    kind, kwargs, dtype = case
    return "-".join([kind, dtype] + [f"{k}={v}" for k, v in kwargs.items()])


def _optimizers(kind: str, kwargs: Dict[str, Any]) -> tuple:
    kwargs = dict(kwargs)
    kwargs.setdefault("block_size", 64)
    kwargs.setdefault("min_8bit_size", 300)
    numpy_kwargs = dict(kwargs)
    if kwargs.pop("schedule", False):
        schedule = keras.optimizers.schedules.ExponentialDecay(0.01, decay_steps=2, decay_rate=0.5)
        kwargs["learning_rate"] = schedule
        numpy_kwargs.pop("schedule")
        numpy_kwargs["learning_rate"] = lambda step: float(schedule(step))
    return getattr(pk, kind)(**kwargs), getattr(pyoptim, kind)(**numpy_kwargs)


def _gradients(rng: np.random.Generator, dtype: str, steps: int,
               shapes: Sequence[tuple] = SHAPES) -> List[List[np.ndarray]]:
    out = []
    for t in range(steps):
        grads = []
        for k, s in enumerate(shapes):
            g = rng.standard_normal(s) * (10.0 ** ((k + t) % 4 - 2))  # blocks of other magnitudes
            g.flat[:: 7] *= 1e-3
            grads.append(g.astype(dtype))
        out.append(grads)
    return out


@pytest.mark.parametrize("mode", ["eager", "function"])
@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_op_matches_numpy_optimizer(case: tuple, mode: str) -> None:
    kind, kwargs, dtype = case
    rng = np.random.default_rng(17)
    init = [rng.standard_normal(s).astype(dtype) for s in SHAPES]
    steps = _gradients(rng, dtype, 3)
    variables = [keras.Variable(a, name=f"w{i}") for i, a in enumerate(init)]
    params = [a.copy() for a in init]
    opt, ref = _optimizers(kind, kwargs)
    if opt.weight_decay is not None:
        opt.exclude_from_weight_decay(var_list=[variables[EXCLUDED]])
        ref.exclude_from_weight_decay(indices=[EXCLUDED])
    opt.build(variables)
    assert [opt.is_8bit(v) for v in variables] == [
        int(np.prod(s)) >= opt.min_8bit_size for s in SHAPES]
    if mode == "function":
        apply = tf.function(lambda grads: opt.apply(grads, variables))
    else:
        apply = lambda grads: opt.apply(grads, variables)  # noqa: E731
    before_ops, before_calls = pk.op_calls(), pk.kernel_calls()
    for grads in steps:
        apply([tf.constant(g) for g in grads])
        ref.apply(grads, params)
    _assert_matches_numpy(opt, variables, ref, params)
    quantized = sum(opt.is_8bit(v) for v in variables)
    ops = {k: pk.op_calls()[k] - before_ops[k] for k in before_ops}
    calls = {k: pk.kernel_calls()[k] - before_calls[k] for k in before_calls}
    # One 8-bit op (and one float-state Adam op when small variables exist) per step.
    assert ops["adam8bit"] == 3 and ops["adam"] == (3 if quantized < len(SHAPES) else 0), ops
    assert calls["adam8bit"] == 3 * quantized and calls["adam"] == 3 * (len(SHAPES) - quantized)
    assert opt.path_counts()["fallback"] == 0


def test_two_dtypes_in_one_step() -> None:
    """float32 and float64 variables, 8-bit and small, in one apply: one op group per dtype
    (two 8-bit ops, one float-state op), pyoptim.AdamW8bit's bits."""
    rng = np.random.default_rng(12)
    init = [rng.standard_normal((40, 40)).astype("float32"),
            rng.standard_normal((40, 40)).astype("float64"),
            rng.standard_normal(5).astype("float64")]
    variables = [keras.Variable(a) for a in init]
    params = [a.copy() for a in init]
    kwargs = dict(learning_rate=2.0 ** -9, block_size=96, min_8bit_size=100)
    opt, ref = pk.AdamW8bit(**kwargs), pyoptim.AdamW8bit(**kwargs)
    before = pk.op_calls()
    for t in range(2):
        grads = [rng.standard_normal(a.shape).astype(a.dtype) for a in init]
        opt.apply([tf.constant(g) for g in grads], variables)
        ref.apply(grads, params)
    _assert_matches_numpy(opt, variables, ref, params)
    ops = {k: pk.op_calls()[k] - before[k] for k in before}
    assert ops["adam8bit"] == 2 * 2 and ops["adam"] == 2, ops


def test_non_finite_gradient_confined_to_its_block() -> None:
    """A NaN and an infinity in the gradient: the op stores what pyoptim.Adam8bit stores (NaN
    scale, codes 0 for that block; the other blocks untouched), and the block turns NaN next
    step, in both."""
    rng = np.random.default_rng(3)
    init = [rng.standard_normal((700,)).astype("float32")]
    variables = [keras.Variable(init[0])]
    params = [init[0].copy()]
    opt, ref = pk.Adam8bit(block_size=64, min_8bit_size=1), pyoptim.Adam8bit(block_size=64,
                                                                             min_8bit_size=1)
    for t in range(3):
        g = rng.standard_normal(700).astype("float32")
        if t == 1:
            g[70], g[400] = np.nan, np.inf
        opt.apply([tf.constant(g)], variables)
        ref.apply([g], params)
    _assert_matches_numpy(opt, variables, ref, params)
    scales = opt._momentum_scales[0].numpy()
    assert np.isnan(scales[[1, 6]]).all() and np.isfinite(np.delete(scales, [1, 6])).all()


# -- (c) sparse gradients (tf.IndexedSlices, an Embedding's) -----------------------------------

def _segment_sums(values: np.ndarray, indices: np.ndarray, rows: int) -> tuple:
    """Keras' densification: S(g) and S(g * g), the slices of a row summed in index order from
    +0.0, in the values' dtype."""
    s = np.zeros((rows,) + values.shape[1:], values.dtype)
    s2 = np.zeros_like(s)
    for q, r in enumerate(indices):
        s[r] = s[r] + values[q]
        s2[r] = s2[r] + values[q] * values[q]
    return s, s2


@pytest.mark.parametrize("mode", ["eager", "function"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_sparse_unique_rows_match_numpy_optimizer(mode: str, dtype: str) -> None:
    """With unique rows S(g * g) == S(g)^2, so the NumPy optimizer on the densified gradient is
    the reference; a dense variable below min_8bit_size updates in the same step."""
    rng = np.random.default_rng(5)
    rows, cols = 60, 16
    init = [rng.standard_normal((rows, cols)).astype(dtype), rng.standard_normal(8).astype(dtype)]
    variables = [keras.Variable(a) for a in init]
    params = [a.copy() for a in init]
    kwargs = dict(learning_rate=2.0 ** -8, amsgrad=True, weight_decay=0.02, block_size=64,
                  min_8bit_size=100)
    opt, ref = pk.AdamW8bit(**kwargs), pyoptim.AdamW8bit(**kwargs)
    opt.build(variables)
    step = lambda values, idx, dense: opt.apply(  # noqa: E731
        [tf.IndexedSlices(values, idx, tf.constant([rows, cols], tf.int64)), dense], variables)
    if mode == "function":
        step = tf.function(step)
    for t in range(3):
        idx = rng.permutation(rows)[:25].astype("int64")  # unique, unsorted
        values = rng.standard_normal((25, cols)).astype(dtype)
        dense = rng.standard_normal(8).astype(dtype)
        step(tf.constant(values), tf.constant(idx), tf.constant(dense))
        ref.apply([_segment_sums(values, idx, rows)[0], dense], params)
    _assert_matches_numpy(opt, variables, ref, params)


@pytest.mark.parametrize("mode", ["eager", "function"])
@pytest.mark.parametrize("rows,block", [(40, 96), (40, 32), (2000, 32)])
def test_sparse_repeated_rows_match_reference(mode: str, rows: int, block: int) -> None:
    """Repeated, unsorted rows: grad = S(g), grad^2 = S(g * g) in every row (Keras' Adam on a
    densified IndexedSlices), against reference_8bit's transcription.  The op makes the sums block
    by block: blocks of whole rows (96), rows across block boundaries (32), and a table large
    enough for the parallel pass (2000 rows)."""
    rng = np.random.default_rng(9)
    cols = 24
    init = rng.standard_normal((rows, cols)).astype("float32")
    var = keras.Variable(init)
    opt = pk.Adam8bit(learning_rate=0.002, weight_decay=0.01, block_size=block, min_8bit_size=1)
    opt.build([var])
    step = lambda values, idx: opt.apply(  # noqa: E731
        [tf.IndexedSlices(values, idx, tf.constant([rows, cols], tf.int64))], [var])
    if mode == "function":
        step = tf.function(step)
    param, state = init.copy(), new_state(init, block)
    for t in range(1, 4):
        idx = np.minimum(rng.zipf(1.4, 50) - 1, rows - 1).astype("int32")  # many repeats
        values = rng.standard_normal((50, cols)).astype("float32")
        step(tf.constant(values), tf.constant(idx))
        s, s2 = _segment_sums(values, idx, rows)
        out = adam8bit_step(param, s, state, step=t, block=block, learning_rate=0.002,
                            weight_decay=0.01, grad_square=s2)
        param = out.pop("param")
        state = out
        assert not np.array_equal(s * s, s2)  # the repeats matter
    _same_bits(var.numpy(), param, "param")
    for key, attr in (("m", "_momentums"), ("v", "_velocities"), ("m_scale", "_momentum_scales"),
                      ("v_scale", "_velocity_scales")):
        _same_bits(getattr(opt, attr)[0].numpy(), state[key], key)


def test_sparse_bad_index_refused_before_any_write() -> None:
    rng = np.random.default_rng(2)
    a = [keras.Variable(rng.standard_normal((30, 8)).astype("float32")),
         keras.Variable(rng.standard_normal((500,)).astype("float32"))]
    opt = pk.Adam8bit(block_size=32, min_8bit_size=1)
    opt.build(a)
    before = [v.numpy() for v in a] + [v.numpy() for v in opt.variables]
    grads = [tf.IndexedSlices(tf.ones((2, 8)), tf.constant([3, 30]), tf.constant([30, 8])),
             tf.ones(500)]
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"indices\[1\] = 30"):
        opt.apply(grads, a)
    after = [v.numpy() for v in a] + [v.numpy() for v in opt.variables]
    for i, (x, y) in enumerate(zip(before, after)):  # the iteration counter included
        _same_bits(x, y, f"array {i}")


def test_embedding_model_fit_runs_the_op() -> None:
    """An Embedding (sparse gradient, 8-bit) and Dense layers in model.fit: one 8-bit op and one
    float-state op per step, nothing else, and the loss goes down."""
    rng = np.random.default_rng(4)
    x = rng.integers(0, 500, (256, 5)).astype("int32")
    y = (x.sum(axis=1) % 2).astype("float32")
    keras.utils.set_random_seed(1)
    model = keras.Sequential([keras.Input((5,), dtype="int32"), keras.layers.Embedding(500, 16),
                              keras.layers.GlobalAveragePooling1D(), keras.layers.Dense(1)])
    model.compile(optimizer=pk.Adam8bit(learning_rate=0.01, min_8bit_size=1000),
                  loss="mse")
    first = model.evaluate(x, y, verbose=0)
    before = pk.op_calls()
    model.fit(x, y, batch_size=64, epochs=1, shuffle=False, verbose=0)
    copies = pk.variable_copies()
    model.fit(x, y, batch_size=64, epochs=2, shuffle=False, verbose=0)
    ops = {k: pk.op_calls()[k] - before[k] for k in before}
    assert {k: v for k, v in ops.items() if v} == {"adam": 12, "adam8bit": 12}, ops
    # Once the slots exist, no update copies a buffer first (copy-on-write): the op runs after
    # every gradient of the step, and nothing else reads the codes and scales.
    assert pk.variable_copies() == copies
    assert model.evaluate(x, y, verbose=0) < first


# -- (b) model.fit and Keras' options ------------------------------------------------------------

def _dense_model(hidden: int = 128, inputs: int = 32, dtype: Optional[str] = None) -> keras.Model:
    keras.utils.set_random_seed(11)
    return keras.Sequential([keras.Input((inputs,)),
                             keras.layers.Dense(hidden, activation="relu", dtype=dtype),
                             keras.layers.Dense(4, dtype=dtype)])


def _regression(rows: int = 256, inputs: int = 32) -> tuple:
    rng = np.random.default_rng(21)
    x = rng.standard_normal((rows, inputs)).astype("float32")
    w = rng.standard_normal((inputs, 4)).astype("float32")
    return x, np.tanh(x @ w).astype("float32")


class _Recording(pk.Adam8bit):
    """Adam8bit that keeps a copy of the gradients it receives (in variables, so that it works
    inside model.fit's tf.function), for the NumPy replay."""

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        self._recorded = [tf.Variable(tf.zeros(v.shape, v.dtype), trainable=False)
                          for v in var_list]

    def apply(self, grads, trainable_variables=None):
        for r, g in zip(self._recorded, grads):
            r.assign(g)
        return super().apply(grads, trainable_variables)


def test_model_fit_matches_numpy_replay() -> None:
    """model.fit (tf.function) with Adam8bit: after every step the weights and every slot equal
    pyoptim.Adam8bit applied to the gradients the optimizer received; one 8-bit op (the
    32 x 128 kernel) and one float-state op (the biases, the 128 x 4 kernel) per step."""
    x, y = _regression()
    model = _dense_model()
    opt = _Recording(learning_rate=0.003, amsgrad=True, weight_decay=0.01,  # block 256, min 4096
                     name="recording")
    opt.exclude_from_weight_decay(var_names=["bias"])
    model.compile(optimizer=opt, loss="mse")
    opt.build(model.trainable_variables)
    ref = pyoptim.Adam8bit(learning_rate=0.003, amsgrad=True, weight_decay=0.01)
    ref.exclude_from_weight_decay(indices=[i for i, v in enumerate(model.trainable_variables)
                                           if "bias" in v.name])
    params = [v.numpy() for v in model.trainable_variables]
    checked = []

    class Replay(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            ref.apply([r.numpy() for r in opt._recorded], params)
            for i, (v, p) in enumerate(zip(model.trainable_variables, params)):
                _same_bits(v.numpy(), p, f"step {len(checked)} param {i}")
            checked.append(batch)

    before = pk.op_calls()
    history = model.fit(x, y, batch_size=32, epochs=2, shuffle=False, verbose=0,
                        callbacks=[Replay()])
    assert len(checked) == 16
    ops = {k: pk.op_calls()[k] - before[k] for k in before}
    assert {k: v for k, v in ops.items() if v} == {"adam": 16, "adam8bit": 16}, ops
    assert [opt.is_8bit(v) for v in model.trainable_variables] == [True, False, False, False]
    _assert_matches_numpy(opt, model.trainable_variables, ref, params)
    assert history.history["loss"][-1] < history.history["loss"][0]


OPTIONS = {
    "clipnorm": ({"clipnorm": 0.1}, 1),
    "clipvalue": ({"clipvalue": 0.01}, 1),
    "global_clipnorm": ({"global_clipnorm": 0.5}, 1),
    "use_ema": ({"use_ema": True, "ema_overwrite_frequency": 3}, 1),
    "gradient_accumulation": ({"gradient_accumulation_steps": 2}, 2),
    "schedule": ({"learning_rate": keras.optimizers.schedules.CosineDecay(0.01, 20)}, 1),
    "loss_scale": ({"loss_scale": True}, 1),
    "adamw_exclude": ({"adamw": True, "exclude": True}, 1),
}


@pytest.mark.parametrize("option", list(OPTIONS))
def test_keras_options_run_the_op(option: str) -> None:
    """Keras' base options around the op: the step runs the 8-bit op (once per optimizer
    update: every second step with gradient accumulation), never Keras' update_step, and the
    loss goes down.  Loss scaling: a mixed_float16 model under keras' LossScaleOptimizer."""
    kwargs, every = OPTIONS[option]
    kwargs = dict(kwargs)
    mixed = kwargs.pop("loss_scale", False)
    adamw = kwargs.pop("adamw", False)
    exclude = kwargs.pop("exclude", False)
    kwargs.setdefault("learning_rate", 0.01)
    x, y = _regression()
    model = _dense_model(dtype="mixed_float16" if mixed else None)
    opt = (pk.AdamW8bit if adamw else pk.Adam8bit)(**kwargs)
    if exclude:
        opt.exclude_from_weight_decay(var_names=["bias"])
    outer = keras.optimizers.LossScaleOptimizer(opt) if mixed else opt
    model.compile(optimizer=outer, loss="mse")
    first = model.evaluate(x, y, verbose=0)
    before = pk.op_calls()
    model.fit(x, y, batch_size=32, epochs=2, shuffle=False, verbose=0)
    ops = {k: pk.op_calls()[k] - before[k] for k in before}
    assert ops["adam8bit"] == 16 // every and ops["adam"] == 16 // every, ops
    assert opt.path_counts()["fallback"] == 0
    assert tf.as_dtype(opt._momentums[0].dtype) == tf.int8
    assert model.evaluate(x, y, verbose=0) < first


# -- (d) .keras save / load resumes exactly -------------------------------------------------------

def test_save_load_resumes_exactly(tmp_path) -> None:
    x, y = _regression()
    model = _dense_model()
    model.compile(optimizer=pk.AdamW8bit(learning_rate=0.005, amsgrad=True, block_size=128,
                                         min_8bit_size=512), loss="mse")
    model.fit(x[:64], y[:64], batch_size=32, epochs=1, shuffle=False, verbose=0)
    path = str(tmp_path / "model.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    opt = loaded.optimizer
    assert type(opt) is pk.AdamW8bit
    assert (opt.block_size, opt.min_8bit_size, opt.amsgrad) == (128, 512, True)
    state = lambda m: ([v.numpy() for v in m.weights]  # noqa: E731
                       + [v.numpy() for v in m.optimizer.variables])
    for i, (a, b) in enumerate(zip(state(model), state(loaded))):
        _same_bits(a, b, f"loaded array {i}")
    for m in (model, loaded):  # continue training: with and without the round trip
        m.fit(x[64:], y[64:], batch_size=32, epochs=1, shuffle=False, verbose=0)
    a, b = state(model), state(loaded)
    assert len(a) == len(b)
    for i, (u, w) in enumerate(zip(a, b)):
        _same_bits(u, w, f"resumed array {i}")


# -- (f) config, arguments, errors ---------------------------------------------------------------

def test_config_round_trip_and_registration() -> None:
    for cls in (pk.Adam8bit, pk.AdamW8bit):
        opt = cls(learning_rate=0.01, amsgrad=True, block_size=512, min_8bit_size=0)
        config = opt.get_config()
        assert config["block_size"] == 512 and config["min_8bit_size"] == 0
        again = cls.from_config(config)
        assert type(again) is cls and again.get_config() == config
        restored = keras.optimizers.deserialize(keras.optimizers.serialize(opt))
        assert type(restored) is cls and restored.get_config() == config
        assert keras.saving.get_registered_name(cls) == f"pyoptim>{cls.__name__}"
        assert isinstance(opt, keras.optimizers.Adam)
        assert "block_size=512" in repr(opt) and "min_8bit_size=0" in repr(opt)
    assert pk.AdamW8bit().weight_decay == 0.004
    assert "Adam8bit" in pk.__all__ and "AdamW8bit" in pk.__all__


@pytest.mark.parametrize("kwargs, error, match", [
    ({"block_size": 100}, ValueError, "block_size must be a multiple of 32 from 32 to 4096"),
    ({"block_size": 8192}, ValueError, "block_size"),
    ({"block_size": 0}, ValueError, "block_size"),
    ({"block_size": 256.0}, TypeError, "block_size must be an int"),
    ({"block_size": True}, TypeError, "block_size"),
    ({"min_8bit_size": -1}, ValueError, "min_8bit_size must be >= 0"),
    ({"min_8bit_size": "4096"}, TypeError, "min_8bit_size must be an int"),
    ({"min_8bit_size": 1.5}, TypeError, "min_8bit_size"),
])
def test_bad_constructor_arguments(kwargs: Dict[str, Any], error: type, match: str) -> None:
    for cls in (pk.Adam8bit, pk.AdamW8bit):
        with pytest.raises(error, match=match):
            cls(**kwargs)
    with pytest.raises(ValueError, match="weight_decay"):
        pk.AdamW8bit(weight_decay=None)


def test_jit_compile_is_refused_clearly() -> None:
    """XLA cannot run the op and there is no Keras fallback for 8-bit state: model.fit with
    jit_compile=True raises, naming XLA, and nothing is written."""
    x, y = _regression(64)
    model = _dense_model()
    model.compile(optimizer=pk.AdamW8bit(), loss="mse", jit_compile=True)
    model.optimizer.build(model.trainable_variables)
    before = [v.numpy() for v in model.weights] + [v.numpy() for v in model.optimizer.variables]
    with pytest.raises(RuntimeError, match=r"AdamW8bit cannot update .*XLA \(jit_compile=True\)"):
        model.fit(x, y, batch_size=32, epochs=1, verbose=0)
    after = [v.numpy() for v in model.weights] + [v.numpy() for v in model.optimizer.variables]
    for i, (a, b) in enumerate(zip(before, after)):
        _same_bits(a, b, f"array {i}")


def test_unavailable_op_is_refused_clearly(monkeypatch) -> None:
    """An op that could not be built or loaded: an error naming it (eager, weight decay pending
    included), never Keras' float update, and nothing is written."""
    from pyoptim.keras import _loader

    v = keras.Variable(np.ones(5000, "float32"))
    opt = pk.AdamW8bit()
    opt.build([v])
    monkeypatch.setattr(_loader, "load", lambda: None)
    monkeypatch.setattr(_loader, "error", lambda: "BuildError: no compiler")
    with pytest.raises(RuntimeError, match="the TensorFlow op is unavailable: BuildError"):
        opt.apply([tf.ones(5000)], [v])
    assert np.all(v.numpy() == 1) and int(opt.iterations) == 0


def test_float16_variable_is_refused_at_build() -> None:
    v = keras.Variable(np.ones(5000, "float16"), name="half_weights")
    with pytest.raises(TypeError, match=r"'half_weights' has dtype float16"):
        pk.Adam8bit().build([v])


def test_keras_update_step_is_never_run() -> None:
    v = keras.Variable(np.ones(5000, "float32"))
    opt = pk.Adam8bit()
    opt.build([v])
    with pytest.raises(RuntimeError, match="no Keras fallback"):
        opt.update_step(tf.ones(5000), v, 0.001)


def test_op_refuses_bad_slots_naming_the_input() -> None:
    """The op itself: codes of another shape, a scale vector of the wrong length or a slot of
    the wrong dtype are refused before anything is written, naming the input."""
    op = pk._loader.load()
    rng = np.random.default_rng(0)
    var = tf.Variable(rng.standard_normal(100).astype("float32"))
    m = tf.Variable(tf.zeros(100, tf.int8))
    v = tf.Variable(tf.zeros(100, tf.uint8))
    ms, vs = tf.Variable(tf.zeros(4)), tf.Variable(tf.zeros(4))
    scalars = dict(alpha=0.1, one_minus_beta_1=0.1, one_minus_beta_2=0.001, epsilon=1e-7,
                   learning_rate=0.1, weight_decay=0.0)

    def run(**over):
        args = dict(var=[var.handle], m=[m.handle], v=[v.handle], v_hat=[], m_scale=[ms.handle],
                    v_scale=[vs.handle], v_hat_scale=[], grad=[tf.ones(100)], indices=[],
                    block_size=32, **scalars)
        args.update(over)
        op.pyoptim_apply_adam8bit(**args)

    before = var.numpy()
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match=r"input v_scale\[0\] has shape \[3\], expected \[4\]"):
        run(v_scale=[tf.Variable(tf.zeros(3)).handle])
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"input m\[0\] has shape \[99\]"):
        run(m=[tf.Variable(tf.zeros(99, tf.int8)).handle])
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match=r"input v\[0\] has dtype int8, expected uint8"):
        run(v=[tf.Variable(tf.zeros(100, tf.int8)).handle])
    with pytest.raises(tf.errors.InvalidArgumentError, match="block_size must be a multiple"):
        run(block_size=48)
    _same_bits(var.numpy(), before, "var")
    assert not m.numpy().any() and not ms.numpy().any()
    run()  # the same inputs, well formed: it runs
    assert ms.numpy().all() and not np.array_equal(var.numpy(), before)


# -- subprocesses: MirroredStrategy on two logical CPUs (e), another Keras backend -------------

def _run_python(code: str, env: Optional[Dict[str, str]] = None, timeout: int = 600) -> str:
    full_env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", **(env or {}))
    here = os.path.dirname(os.path.abspath(__file__))
    full_env["PYTHONPATH"] = os.pathsep.join(filter(None, [here, full_env.get("PYTHONPATH")]))
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                            text=True, env=full_env, timeout=timeout)
    assert result.returncode == 0, result.stderr[-4000:]
    return result.stdout


MIRRORED = """
import json, numpy as np, tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import keras, pyoptim
import pyoptim.keras as pk

strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
out = {"replicas": strategy.num_replicas_in_sync}
rng = np.random.default_rng(8)
shapes = [(37, 41), (300,), (9,), (301, 257)]
init = [rng.standard_normal(s).astype("float32") for s in shapes]
kwargs = dict(learning_rate=0.004, amsgrad=True, weight_decay=0.01, block_size=64,
              min_8bit_size=300)

# A custom loop: each replica gets half of each gradient (exact: a power of two), Keras
# all-reduces them (sum: the whole gradient, exactly), the op runs on each device.
with strategy.scope():
    variables = [keras.Variable(a) for a in init]
    opt = pk.AdamW8bit(**kwargs)
    opt.build(variables)
ref, params = pyoptim.AdamW8bit(**kwargs), [a.copy() for a in init]

@tf.function
def step(grads):
    # tf.identity: each replica's own gradient tensors, on its device (as a backward pass gives)
    strategy.run(lambda gs: opt.apply([tf.identity(g) for g in gs], variables), args=(grads,))

before = pk.op_calls()["adam8bit"]
for t in range(3):
    grads = [rng.standard_normal(s).astype("float32") for s in shapes]
    step([tf.constant(g / 2) for g in grads])
    ref.apply(grads, params)
out["loop_ops"] = pk.op_calls()["adam8bit"] - before
same = True
for v, p in zip(variables, params):
    same &= all(np.array_equal(x.numpy(), p) for x in strategy.experimental_local_results(v))
for name, attr in [("momentums", "_momentums"), ("velocities", "_velocities"),
                   ("velocity_hats", "_velocity_hats"), ("momentum_scales", "_momentum_scales"),
                   ("velocity_scales", "_velocity_scales"),
                   ("velocity_hat_scales", "_velocity_hat_scales")]:
    for k, n in zip(getattr(opt, attr), ref.slots[name]):
        same &= all(np.array_equal(x.numpy(), n)
                    for x in strategy.experimental_local_results(k.value))
out["loop_same"] = bool(same)

# model.fit with an Embedding (each replica's IndexedSlices) and Dense layers.
x = rng.integers(0, 500, (400, 5)).astype("int32")
y = (x.sum(axis=1) % 2).astype("float32")
with strategy.scope():
    keras.utils.set_random_seed(1)
    model = keras.Sequential([keras.Input((5,), dtype="int32"), keras.layers.Embedding(500, 16),
                              keras.layers.GlobalAveragePooling1D(), keras.layers.Dense(1)])
    model.compile(optimizer=pk.Adam8bit(learning_rate=0.01, min_8bit_size=1000), loss="mse")
before = pk.op_calls()
history = model.fit(x, y, batch_size=100, epochs=3, shuffle=False, verbose=0)
after = pk.op_calls()
out["fit_ops"] = {k: after[k] - before[k] for k in after}
out["fit_counts"] = model.optimizer.path_counts()
out["fit_losses"] = [float(l) for l in history.history["loss"]]
out["replicas_agree"] = all(
    all(np.array_equal(strategy.experimental_local_results(v)[0].numpy(), x.numpy())
        for x in strategy.experimental_local_results(v))
    for v in [w.value for w in model.weights] + [w.value for w in model.optimizer.variables])
print(json.dumps(out))
"""


def test_mirrored_strategy_two_logical_cpus() -> None:
    """MirroredStrategy on 2 logical CPUs (configured before TensorFlow starts, hence a
    subprocess): a custom loop gives pyoptim.AdamW8bit's bits on both replicas (every param and
    slot), and model.fit with an Embedding runs one 8-bit op per device per step."""
    info = json.loads(_run_python(MIRRORED).strip().splitlines()[-1])
    assert info["replicas"] == 2
    assert info["loop_same"], info
    assert info["loop_ops"] == 3 * 2, info
    assert info["fit_ops"]["adam8bit"] == 12 * 2 and info["fit_ops"]["adam"] == 12 * 2, info
    assert info["fit_counts"]["fallback"] == 0, info
    assert info["replicas_agree"], info
    assert info["fit_losses"][-1] < info["fit_losses"][0], info


def test_other_backend_refuses_construction() -> None:
    out = _run_python("""
        import json, keras
        import pyoptim.keras as pk
        errors = {}
        for name in ("Adam8bit", "AdamW8bit"):
            try:
                getattr(pk, name)(learning_rate=0.01)
            except RuntimeError as e:
                errors[name] = str(e)
        print(json.dumps({"backend": keras.backend.backend(), "errors": errors,
                          "registered": keras.saving.get_registered_name(pk.Adam8bit),
                          "all": "Adam8bit" in pk.__all__}))
    """, env={"KERAS_BACKEND": "torch"})
    info = json.loads(out.strip().splitlines()[-1])
    assert info["backend"] == "torch" and info["registered"] == "pyoptim>Adam8bit" and info["all"]
    for name in ("Adam8bit", "AdamW8bit"):
        assert f"pyoptim.keras.{name} needs Keras' TensorFlow backend" in info["errors"][name]
        assert "'torch'" in info["errors"][name]
