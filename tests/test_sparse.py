"""Sparse gradients (tf.IndexedSlices, an Embedding's) through the kernels: keras.optimizers' bits
for every variant, repeated and unsorted rows included, eager and in tf.function, float32 and
float64; bad indices refused before anything is written; no copy of the table; LazyAdam.
Real TensorFlow/Keras.

Keras' semantics (keras/src/optimizers/*.py with keras/src/backend/tensorflow/sparse.py): an
element-wise op on an IndexedSlices acts on its values, adding a dense tensor densifies it with
unsorted_segment_sum (the slices of a row summed in index order, from +0.0), and an assign_sub
of an IndexedSlices is a scatter_sub.  TensorFlow runs a scatter_sub of 1024 slices or more in
parallel, in no fixed order; the scatter cases here stay below that, where Keras' order is the
slices' order, as the op's always is."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any, Dict, Iterator, List, Sequence, Tuple

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

import pyoptim.keras as pk  # noqa: E402
import pyoptim  # noqa: E402
from pyoptim.keras import _build, _loader, _warn  # noqa: E402

ROWS, COLS = 50, 16


@pytest.fixture(scope="module", autouse=True)
def _op_loaded():
    assert pk.fast_path_available(), pk.status()


CASES: List[Tuple[str, Dict[str, Any]]] = [
    ("SGD", {"learning_rate": 0.1}),
    ("SGD", {"learning_rate": 0.1, "weight_decay": 0.02}),
    ("SGD", {"momentum": 0.9}),
    ("SGD", {"momentum": 0.9, "nesterov": True, "clipnorm": 0.5}),
    ("RMSprop", {}),
    ("RMSprop", {"momentum": 0.5, "weight_decay": 0.02}),
    ("RMSprop", {"centered": True}),
    ("RMSprop", {"centered": True, "momentum": 0.9}),
    ("Adam", {}),
    ("Adam", {"amsgrad": True, "global_clipnorm": 1.0}),
    ("Adam", {"weight_decay": 0.02}),
    ("AdamW", {}),
]


def _case_id(case: Tuple[str, Dict[str, Any]]) -> str:
    return case[0] + "-" + "-".join(f"{k}={v}" for k, v in case[1].items())


def _indices(rng: np.random.Generator, n: int, rows: int = ROWS) -> np.ndarray:
    """n row indices with many repeats, unsorted (a Zipf-like draw, as an Embedding sees)."""
    return np.minimum(rng.zipf(1.5, n) - 1, rows - 1).astype("int32")


def _apply(module: Any, kind: str, kwargs: Dict[str, Any], dtype: str, graph: bool,
           steps: Sequence[Tuple[np.ndarray, np.ndarray]], start: np.ndarray,
           dense_start: np.ndarray) -> Tuple[List[np.ndarray], Any]:
    """A table (sparse gradients) and a dense variable (dense gradients) updated together."""
    table = keras.Variable(start.copy(), dtype=dtype)
    other = keras.Variable(dense_start.copy(), dtype=dtype)
    opt = getattr(module, kind)(**kwargs)
    opt.build([table, other])

    def step(values, indices, dense):
        sparse = tf.IndexedSlices(values, indices, tf.constant(start.shape, dtype=indices.dtype))
        opt.apply_gradients([(sparse, table), (dense, other)])
        return opt.iterations

    run = tf.function(step) if graph else step
    for values, indices in steps:
        run(tf.constant(values), tf.constant(indices), tf.constant(dense_start * 0.1))
    return [table.numpy(), other.numpy()] + [v.numpy() for v in opt.variables], opt


def _assert_same(a: Sequence[np.ndarray], b: Sequence[np.ndarray]) -> None:
    assert len(a) == len(b)
    for i, (x, y) in enumerate(zip(a, b)):
        assert x.dtype == y.dtype and x.shape == y.shape, i
        assert np.array_equal(x.view(f"u{x.itemsize}"), y.view(f"u{y.itemsize}")), (
            f"array {i}: {np.sum(x != y)} of {x.size} elements differ")


@pytest.mark.parametrize("graph", [False, True], ids=["eager", "graph"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_sparse_gradients_match_keras(case, dtype, graph):
    """Every variant, with repeated unsorted rows, int32 and int64 indices and an empty step,
    gives keras.optimizers' bits, in one op per step with the dense variable; nothing falls
    back.  (Centered RMSprop in a user's tf.function runs Keras' code, as for dense gradients:
    see test_keras.test_embedding_model for it in model.fit.)"""
    kind, kwargs = case
    rng = np.random.default_rng(5)
    steps = []
    for n, index_dtype in ((40, "int32"), (64, "int64"), (0, "int32"), (25, "int64")):
        steps.append((rng.standard_normal((n, COLS)).astype(dtype),
                      _indices(rng, n).astype(index_dtype)))
    start = rng.standard_normal((ROWS, COLS)).astype(dtype)
    dense_start = rng.standard_normal(7).astype(dtype)
    _apply(pk, kind, kwargs, dtype, graph, steps[:1], start, dense_start)  # one-time checks
    before = pk.op_calls()[kind.lower().replace("adamw", "adam")]
    ours, opt = _apply(pk, kind, kwargs, dtype, graph, steps, start, dense_start)
    ops = pk.op_calls()[kind.lower().replace("adamw", "adam")] - before
    ref, _ = _apply(keras.optimizers, kind, kwargs, dtype, graph, steps, start, dense_start)
    _assert_same(ours, ref)
    if graph and kind == "RMSprop" and kwargs.get("centered"):
        return  # Keras' code, see the docstring
    assert opt.path_counts()["fallback"] == 0, opt.path_counts()
    assert ops == len(steps)


def _embedding_fit(module: Any, kind: str, kwargs: Dict[str, Any], vocabulary: int = 300,
                   epochs: int = 2) -> keras.Model:
    rng = np.random.default_rng(3)
    x = _indices(rng, 128 * 20, vocabulary).reshape(128, 20)
    y = (rng.random(128) < 0.5).astype("float32")
    keras.utils.set_random_seed(9)
    model = keras.Sequential([keras.Input((20,), dtype="int32"),
                              keras.layers.Embedding(vocabulary, 8),
                              keras.layers.GlobalAveragePooling1D(),
                              keras.layers.Dense(8, activation="relu"),
                              keras.layers.Dense(1, activation="sigmoid")])
    model.compile(optimizer=getattr(module, kind)(**kwargs), loss="binary_crossentropy")
    model.fit(x, y, batch_size=32, epochs=epochs, shuffle=False, verbose=0)  # 640 ids a batch
    return model


def _model_state(model: keras.Model) -> List[np.ndarray]:
    return [v.numpy() for v in model.weights] + [v.numpy() for v in model.optimizer.variables]


@pytest.mark.parametrize("kind,kwargs", [("SGD", {"learning_rate": 0.5}),
                                         ("RMSprop", {"momentum": 0.9}),
                                         ("Adam", {"amsgrad": True})])
def test_embedding_fit_matches_keras_without_copying_the_table(kind, kwargs):
    """model.fit of an Embedding model (Zipf ids: repeats in every batch) equals
    keras.optimizers', every variable through the op, and no variable is ever copied: in
    particular SGD's scatter never puts the table in TensorFlow's copy-on-read mode (which
    copies the whole table at every later read: the op would count one copy per step)."""
    ours = _embedding_fit(pk, kind, kwargs)  # (the slots' first writes may copy them once)
    assert ours.optimizer.path_counts()["fallback"] == 0
    more = np.tile(np.arange(20, dtype="int32"), (128, 1)), np.zeros(128, "float32")
    copies = pk.variable_copies()
    ours.fit(*more, batch_size=32, epochs=2, shuffle=False, verbose=0)
    assert pk.variable_copies() - copies == 0
    ref = _embedding_fit(keras.optimizers, kind, kwargs)
    ref.fit(*more, batch_size=32, epochs=2, shuffle=False, verbose=0)
    _assert_same(_model_state(ours), _model_state(ref))


@pytest.mark.parametrize("kind,kwargs,policy", [
    ("Adam", {"gradient_accumulation_steps": 2}, None),
    ("SGD", {"momentum": 0.9, "gradient_accumulation_steps": 2}, None),
    ("RMSprop", {"clipvalue": 0.01, "momentum": 0.5}, None),
    ("Adam", {"use_ema": True, "ema_overwrite_frequency": 2}, None),
    ("Adam", {}, "mixed_float16"),
    ("SGD", {"momentum": 0.9}, "mixed_float16"),
], ids=["accumulation-adam", "accumulation-sgd", "clipvalue", "ema", "mixed-adam", "mixed-sgd"])
def test_embedding_fit_with_keras_options(kind, kwargs, policy):
    """Keras' options around the update with an Embedding's sparse gradient: gradient
    accumulation (Keras sums into dense accumulators), clipvalue, EMA, mixed precision (Keras'
    LossScaleOptimizer around ours): keras.optimizers' bits, every variable through the op."""
    rng = np.random.default_rng(0)
    x = _indices(rng, 256 * 6, 40).reshape(256, 6)
    y = rng.integers(0, 3, 256)
    states, counts = [], None
    for module in (pk, keras.optimizers):
        if policy:
            keras.mixed_precision.set_global_policy(policy)
        try:
            keras.utils.set_random_seed(7)
            model = keras.Sequential([keras.Input((6,), dtype="int32"), keras.layers.Embedding(40, 8),
                                      keras.layers.GlobalAveragePooling1D(), keras.layers.Dense(3),
                                      keras.layers.Activation("softmax", dtype="float32")])
            opt = getattr(module, kind)(**kwargs)
            model.compile(optimizer=opt, loss="sparse_categorical_crossentropy")
            model.fit(x, y, batch_size=64, epochs=2, shuffle=False, verbose=0)
        finally:
            keras.mixed_precision.set_global_policy("float32")
        states.append(_model_state(model))
        if module is pk:
            inner = getattr(model.optimizer, "inner_optimizer", model.optimizer)
            counts = inner.path_counts()
    _assert_same(*states)
    assert counts["fallback"] == 0 and counts["fast"] > 0, counts


@pytest.mark.parametrize("kind,kwargs", [("Adam", {}), ("SGD", {"momentum": 0.9}),
                                         ("RMSprop", {"centered": True}), ("SGD", {})])
def test_rank3_variable(kind, kwargs):
    """A slice is everything after the first axis: a [7, 3, 5] variable takes slices of 3 x 5."""
    rng = np.random.default_rng(0)
    start = rng.standard_normal((7, 3, 5)).astype("float32")
    values = tf.constant(rng.standard_normal((9, 3, 5)).astype("float32"))
    indices = tf.constant([1, 6, 1, 0, 6, 6, 2, 1, 3], "int64")
    states = []
    for module in (pk, keras.optimizers):
        var = keras.Variable(start.copy())
        opt = getattr(module, kind)(**kwargs)
        opt.build([var])
        for _ in range(2):
            opt.apply_gradients([(tf.IndexedSlices(values, indices, tf.constant([7, 3, 5], "int64")),
                                  var)])
        states.append([var.numpy()] + [v.numpy() for v in opt.variables])
    _assert_same(*states)


# -- bad input ----------------------------------------------------------------------------------

BAD = {
    "negative index": (np.array([1, -1, 2], "int32"), (3, COLS)),
    "index == rows": (np.array([0, ROWS], "int64"), (2, COLS)),
    "index far out of range": (np.array([2**31 - 1], "int32"), (1, COLS)),
    "indices of rank 2": (np.array([[1], [2]], "int32"), (2, COLS)),
    "values rows != indices": (np.array([1, 2, 3], "int32"), (2, COLS)),
    "values of another row shape": (np.array([1, 2], "int32"), (2, COLS + 1)),
}


@pytest.mark.parametrize("kind,kwargs", [("SGD", {}), ("SGD", {"momentum": 0.9}),
                                         ("RMSprop", {"centered": True}), ("Adam", {}),
                                         ("LazyAdam", {})])
@pytest.mark.parametrize("bad", list(BAD), ids=list(BAD))
def test_bad_indices_are_refused_before_anything_is_written(kind, kwargs, bad):
    """InvalidArgumentError naming the problem, and neither the table, its slots nor the dense
    variable updated in the same op changed (never an out-of-bounds write)."""
    indices, shape = BAD[bad]
    table = keras.Variable(np.ones((ROWS, COLS), "float32"))
    other = keras.Variable(np.ones(5, "float32"))
    opt = getattr(pk, kind)(**kwargs)
    opt.build([table, other])
    before = [table.numpy(), other.numpy()] + [v.numpy() for v in opt.variables]
    sparse = tf.IndexedSlices(tf.ones(shape), tf.constant(indices), tf.constant([ROWS, COLS]))
    with pytest.raises(tf.errors.InvalidArgumentError, match="pyoptim: .*(indices|gradient 0)"):
        opt.apply_gradients([(sparse, table), (tf.ones(5), other)])
    after = [table.numpy(), other.numpy()] + [v.numpy() for v in opt.variables]
    _assert_same(after, before)


def test_indices_of_a_float_dtype_are_refused():
    op = _loader.load()
    table = tf.Variable(np.ones((4, 3), "float32"))
    with pytest.raises((TypeError, tf.errors.InvalidArgumentError), match="Tindices"):
        op.pyoptim_apply_sgd(var=[table.handle], momentum_buffer=[], learning_rate=0.1,
                             momentum=0.0, weight_decay=0.0, decay_learning_rate=0.1,
                             grad=[tf.ones((1, 3))], indices=[tf.constant([1.0])], sparse=[True])
    assert np.array_equal(table.numpy(), np.ones((4, 3), "float32"))


def test_fuzz_random_index_sets():
    """Random shapes and index sets (empty, all one row, duplicates, unsorted, some out of
    range), each through SGD, RMSprop and Adam: valid ones equal keras.optimizers' bits in every
    element of the table and its slots (a write outside the rows Keras touches would show), and
    invalid ones raise and change nothing."""
    rng = np.random.default_rng(2024)
    optimizers = [("SGD", {"learning_rate": 0.3}), ("SGD", {"momentum": 0.8}),
                  ("RMSprop", {"momentum": 0.3}), ("RMSprop", {"centered": True}),
                  ("Adam", {"amsgrad": True})]
    for trial in range(60):
        rows, cols = int(rng.integers(1, 40)), int(rng.integers(1, 9))
        n = int(rng.choice([0, 1, 5, 30, 200]))
        pattern = trial % 4
        if pattern == 0:
            indices = rng.integers(0, rows, n)
        elif pattern == 1:
            indices = np.full(n, rng.integers(0, rows))
        elif pattern == 2:
            indices = np.sort(rng.integers(0, rows, n))[::-1]
        else:
            indices = rng.integers(-2, rows + 2, n)
        indices = indices.astype(rng.choice(["int32", "int64"]))
        valid = bool(np.all((indices >= 0) & (indices < rows)))
        values = rng.standard_normal((n, cols)).astype("float32")
        start = rng.standard_normal((rows, cols)).astype("float32")
        kind, kwargs = optimizers[trial % len(optimizers)]
        results = []
        for module in (pk, keras.optimizers) if valid else (pk,):
            table = keras.Variable(start.copy())
            opt = getattr(module, kind)(**kwargs)
            opt.build([table])
            sparse = tf.IndexedSlices(tf.constant(values), tf.constant(indices),
                                      tf.constant([rows, cols], dtype=indices.dtype))
            if valid:
                for _ in range(2):
                    opt.apply_gradients([(sparse, table)])
            else:
                slots = [v.numpy() for v in opt.variables]
                with pytest.raises(tf.errors.InvalidArgumentError, match="out of range"):
                    opt.apply_gradients([(sparse, table)])
                _assert_same([table.numpy()] + [v.numpy() for v in opt.variables],
                             [start] + slots)
            results.append([table.numpy()] + [v.numpy() for v in opt.variables])
        if valid:
            _assert_same(*results)


ROOT = Path(__file__).resolve().parents[1]


SUPPORTED_ISAS = pyoptim.config.config()["isas_supported"]


@pytest.fixture(scope="module")
def sparse_fuzz_builds(tmp_path_factory) -> Iterator[Dict[str, Tuple[subprocess.Popen, Path]]]:
    """tests/cross/sparse_fuzz.cpp compiled for each ISA this CPU runs, the compilers started
    together (each takes about 40 s of one core; the tests wait for theirs)."""
    out = tmp_path_factory.mktemp("sparse_fuzz")
    builds = {}
    for isa in SUPPORTED_ISAS:
        exe = out / f"sparse_fuzz_{isa}"
        cmd = (_build.compiler() + ["-std=c++17"] + _build.kernel_flags() + _build.isa_flags(isa)
               + [f"-I{ROOT / 'csrc'}", f"-I{ROOT / 'pyoptim' / 'keras' / '_op'}",
                  str(ROOT / "tests" / "cross" / "sparse_fuzz.cpp"), "-o", str(exe)])
        builds[isa] = (subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                        text=True), exe)
    yield builds
    for proc, _ in builds.values():
        if proc.poll() is None:  # a test that did not run (deselected, or -x)
            proc.kill()
            proc.communicate()


@pytest.mark.parametrize("isa", SUPPORTED_ISAS)
def test_sparse_pass_fuzz_under_each_isa(isa, sparse_fuzz_builds):
    """tests/cross/sparse_fuzz.cpp: the op's sparse pass (pyoptim/keras/_op/sparse_rows.hpp) with
    random index sets and random block boundaries, built with the op's flags for each instruction
    set this CPU runs, equals a scalar transcription of Keras' semantics in every element
    (tests/sanitize.sh runs it under AddressSanitizer + UBSan too)."""
    proc, exe = sparse_fuzz_builds[isa]
    output, _ = proc.communicate(timeout=900)
    assert proc.returncode == 0, output[-3000:]
    run = subprocess.run([str(exe), "300", "7"], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0 and "0 mismatches" in run.stdout, run.stdout[-3000:]


# -- LazyAdam -----------------------------------------------------------------------------------

def _lazy_reference(start: np.ndarray, steps: Sequence[Tuple[np.ndarray, np.ndarray]],
                    lr: float = 0.001, beta_1: float = 0.9, beta_2: float = 0.999,
                    epsilon: float = 1e-7, weight_decay: float = 0.0, amsgrad: bool = False,
                    decay_scaled: bool = False) -> List[np.ndarray]:
    """LazyAdam in NumPy, one rounding per operation in Keras' Adam order (float32); the decay
    as Keras' (``decay_scaled``: as Grappler rewrites it in tf.function, p - p * (wd * lr))."""
    f = np.float32
    p, m, v = start.copy(), np.zeros_like(start), np.zeros_like(start)
    vhat = np.zeros_like(start)
    for t, (values, indices) in enumerate(steps, start=1):
        lr_t = f(lr)
        alpha = lr_t * np.sqrt(f(1) - f(beta_2) ** f(t)) / (f(1) - f(beta_1) ** f(t))
        if weight_decay and decay_scaled:
            p = p - p * (f(weight_decay) * lr_t)
        elif weight_decay:
            p = p - p * f(weight_decay) * lr_t
        rows = list(dict.fromkeys(indices.tolist()))
        for r in rows:
            g = np.zeros(start.shape[1], f)
            for k in np.flatnonzero(indices == r):
                g = g + values[k]
            m[r] = m[r] + (g - m[r]) * f(1 - beta_1)
            v[r] = v[r] + (g * g - v[r]) * f(1 - beta_2)
            use = v[r]
            if amsgrad:
                vhat[r] = np.maximum(vhat[r], v[r])
                use = vhat[r]
            p[r] = p[r] - (m[r] * alpha) / (np.sqrt(use) + f(epsilon))
    return [p, m, v] + ([vhat] if amsgrad else [])


@pytest.mark.parametrize("options", [{}, {"amsgrad": True}, {"weight_decay": 0.05}],
                         ids=["plain", "amsgrad", "weight_decay"])
@pytest.mark.parametrize("mode", ["eager", "graph", "keras_code"])
def test_lazy_adam_updates_the_rows_present_only(options, mode):
    """Repeated rows summed first, then Adam's arithmetic on those rows only: the other rows of
    the table, m and v keep their bits (weight decay, as Keras', decays every row).  The op
    (eager, tf.function) and LazyAdam's own ``update_step`` (Keras' code path, where the op
    cannot serve) equal a NumPy model of that arithmetic."""
    rng = np.random.default_rng(8)
    start = rng.standard_normal((ROWS, COLS)).astype("float32")
    steps = [(rng.standard_normal((n, COLS)).astype("float32"), _indices(rng, n))
             for n in (30, 12, 45)]
    table = keras.Variable(start.copy())
    opt = pk.LazyAdam(**options)
    opt.build([table])

    def step(values, indices):
        opt.apply_gradients([(tf.IndexedSlices(values, indices, tf.constant([ROWS, COLS])),
                              table)])
        return opt.iterations

    def keras_code(values, indices):
        if opt.weight_decay:
            keras.optimizers.Adam._apply_weight_decay(opt, [table])
        opt.update_step(tf.IndexedSlices(values, indices, tf.constant([ROWS, COLS])), table,
                        opt.learning_rate)
        opt.iterations.assign_add(1)

    run = {"eager": step, "graph": tf.function(step), "keras_code": keras_code}[mode]
    for values, indices in steps:
        run(tf.constant(values), tf.constant(indices))
    expected = _lazy_reference(start, steps, **options, decay_scaled=mode == "graph")
    _assert_same([table.numpy()] + [v.numpy() for v in opt.variables[2:]], expected)
    assert opt.path_counts()["fallback"] == 0
    untouched = np.setdiff1d(np.arange(ROWS), np.concatenate([i for _, i in steps]))
    assert untouched.size > 0
    if not options.get("weight_decay"):
        assert np.array_equal(table.numpy()[untouched], start[untouched])
    assert not np.any(opt.variables[2].numpy()[untouched])  # m


def test_lazy_adam_dense_gradients_are_adam():
    rng = np.random.default_rng(1)
    start = rng.standard_normal((6, 5)).astype("float32")
    grads = [rng.standard_normal((6, 5)).astype("float32") for _ in range(3)]
    states = []
    for cls in (pk.LazyAdam, keras.optimizers.Adam):
        var = keras.Variable(start.copy())
        opt = cls(learning_rate=0.01, amsgrad=True)
        opt.build([var])
        for g in grads:
            opt.apply_gradients([(tf.constant(g), var)])
        states.append([var.numpy()] + [v.numpy() for v in opt.variables])
    _assert_same(*states)


def test_lazy_adam_config_and_saving(tmp_path):
    opt = pk.LazyAdam(learning_rate=0.003, beta_1=0.8, amsgrad=True, weight_decay=0.01)
    adam = keras.optimizers.Adam(learning_rate=0.003, beta_1=0.8, amsgrad=True, weight_decay=0.01)
    assert opt.get_config() == {**adam.get_config(), "name": opt.name}
    model = keras.Sequential([keras.Input((3,), dtype="int32"), keras.layers.Embedding(10, 2),
                              keras.layers.Flatten(), keras.layers.Dense(1)])
    model.compile(optimizer=opt, loss="mse")
    model.fit(np.array([[1, 2, 2]] * 4), np.ones(4), verbose=0)
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    assert type(loaded.optimizer) is pk.LazyAdam
    assert loaded.optimizer.get_config() == model.optimizer.get_config()
    for a, b in zip(loaded.optimizer.variables, model.optimizer.variables):
        assert np.array_equal(a.numpy(), b.numpy())


@pytest.mark.parametrize("momentum", [0.0, 0.5])
@pytest.mark.parametrize("graph", [False, True], ids=["eager", "graph"])
def test_rmsprop_zero_denominator_rule_matches_keras(momentum, graph):
    """epsilon=0 and fresh slots: sqrt(d) is 0 in every row outside the batch, where Keras'
    sparse division yields 0 / 0 = NaN (its union of the slices' rows with the zero rows); the
    op gives the same NaNs there and the same bits everywhere else (unique rows, where Keras'
    union pairs each value with its own row)."""
    rng = np.random.default_rng(4)
    start = rng.standard_normal((ROWS, COLS)).astype("float32")
    indices = np.sort(rng.choice(ROWS, 12, replace=False)).astype("int32")
    steps = [(rng.standard_normal((12, COLS)).astype("float32"), indices)]
    kwargs = {"epsilon": 0.0, "momentum": momentum}
    dense_start = np.ones(3, "float32")
    ours, _ = _apply(pk, "RMSprop", kwargs, "float32", graph, steps, start, dense_start)
    ref, _ = _apply(keras.optimizers, "RMSprop", kwargs, "float32", graph, steps, start,
                    dense_start)
    assert np.isnan(ref[0]).any() and not np.isnan(ref[0][indices]).any()
    for a, b in zip(ours, ref):
        assert np.array_equal(a, b, equal_nan=True)


def test_lazy_adam_under_xla_stays_lazy():
    """Under XLA (jit_compile=True) the op cannot serve and LazyAdam's own Keras code runs: still
    lazy (rows outside every batch keep their values and zero moments), with a warning."""
    keras.utils.set_random_seed(1)
    model = keras.Sequential([keras.Input((6,), dtype="int32"), keras.layers.Embedding(40, 8),
                              keras.layers.GlobalAveragePooling1D(), keras.layers.Dense(1)])
    start = model.layers[0].embeddings.numpy()
    model.compile(optimizer=pk.LazyAdam(learning_rate=0.1), loss="mse", jit_compile=True)
    x = np.random.default_rng(0).integers(0, 30, (64, 6)).astype("int32")  # rows 30..39 unseen
    _warn._warned.clear()  # the warning is shown once per process
    with pytest.warns(RuntimeWarning, match="XLA"):
        model.fit(x, np.ones(64, "float32"), epochs=2, batch_size=16, verbose=0)
    table = model.layers[0].embeddings.numpy()
    m = model.optimizer.variables[2].numpy()
    assert np.array_equal(table[30:], start[30:]) and not np.any(m[30:])
    assert not np.array_equal(table[:30], start[:30])
    assert model.optimizer.path_counts()["fast"] == 0
