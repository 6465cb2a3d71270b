"""pyoptim.keras against keras.optimizers, with real TensorFlow and Keras (no mocks).

Every comparison trains the same model twice from the same initial weights on the same data
(shuffle=False), once with pyoptim.keras.<Opt> and once with keras.optimizers.<Opt>, and requires
the final weights and optimizer variables to be the same bits (np.array_equal).  The fast path is
shown to have run by the op's own execution counter (pyoptim.keras.kernel_calls()) and by the
optimizer's path_counts().  The op is built once per session (session fixture).
"""
from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys
import textwrap
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

import pyoptim.keras as pk  # noqa: E402
from pyoptim.keras import _build, _grappler  # noqa: E402

ROWS, FEATURES, CLASSES = 1000, 10, 3
BATCH, EPOCHS = 250, 2  # 4 steps per epoch, 8 updates per fit
STEPS = (ROWS // BATCH) * EPOCHS


@pytest.fixture(scope="session", autouse=True)
def op_built() -> str:
    """Build (or find cached) the TensorFlow op once for the whole session."""
    path = pk.build()
    assert pk.fast_path_available(), pk.status()
    return path


def _data(dtype: str, embedding: bool = False) -> Tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1234)
    y = rng.integers(0, CLASSES, ROWS)
    if embedding:
        return rng.integers(0, 40, (ROWS, 6)).astype("int32"), y
    return rng.standard_normal((ROWS, FEATURES)).astype(dtype), y


def _model(dtype: str, embedding: bool = False, hidden: int = 16) -> keras.Model:
    """The pipeline model (Input(10) -> Dense ReLU -> Dense softmax), or one with an Embedding
    (sparse tf.IndexedSlices gradients), with fixed initial weights."""
    keras.utils.set_random_seed(7)
    if embedding:
        layers = [
            keras.Input((6,), dtype="int32"),
            keras.layers.Embedding(40, 8, dtype=dtype),
            keras.layers.GlobalAveragePooling1D(dtype=dtype),
            keras.layers.Dense(CLASSES, activation="softmax", dtype=dtype),
        ]
    else:
        layers = [
            keras.Input((FEATURES,), dtype=dtype),
            keras.layers.Dense(hidden, activation="relu", dtype=dtype),
            keras.layers.Dense(CLASSES, activation="softmax", dtype=dtype),
        ]
    return keras.Sequential(layers)


def _state(model: keras.Model) -> List[np.ndarray]:
    return [v.numpy() for v in model.weights] + [v.numpy() for v in model.optimizer.variables]


def _assert_same(a: List[np.ndarray], b: List[np.ndarray]) -> None:
    assert len(a) == len(b)
    for i, (x, y) in enumerate(zip(a, b)):
        assert x.dtype == y.dtype and x.shape == y.shape, i
        assert np.array_equal(x, y), f"array {i}: {np.sum(x != y)} of {x.size} elements differ"


def _fit(kind: str, module: Any, kwargs: Dict[str, Any], dtype: str, eager: bool, *,
         embedding: bool = False, epochs: int = EPOCHS, jit: bool = False, hidden: int = 16,
         prepare: Optional[Callable[[Any], None]] = None) -> Tuple[keras.Model, Dict[str, int]]:
    """Train a fresh model with module.<kind>(**kwargs); returns the model and the kernel
    executions it caused."""
    x, y = _data(dtype, embedding)
    model = _model(dtype, embedding, hidden)
    opt = getattr(module, kind)(**kwargs)
    if prepare is not None:
        prepare(opt)
    model.compile(optimizer=opt, loss="sparse_categorical_crossentropy", run_eagerly=eager,
                  jit_compile=jit)
    before = pk.kernel_calls()
    model.fit(x, y, batch_size=BATCH, epochs=epochs, shuffle=False, verbose=0)
    after = pk.kernel_calls()
    return model, {k: after[k] - before[k] for k in after}


def _compare(kind: str, kwargs: Dict[str, Any], dtype: str = "float32", eager: bool = False,
             **options: Any) -> Tuple[keras.Model, Dict[str, int]]:
    ours, calls = _fit(kind, pk, kwargs, dtype, eager, **options)
    ref, _ = _fit(kind, keras.optimizers, kwargs, dtype, eager, **options)
    _assert_same(_state(ours), _state(ref))
    return ours, calls


def _assert_fast(model: keras.Model, kind: str, calls: Dict[str, int], updates: int,
                 variables: int) -> None:
    """The kernel ran once per variable per update, and nothing fell back."""
    counts = model.optimizer.path_counts()
    assert counts["fallback"] == 0, counts
    assert counts["fast"] > 0
    # >=: the first graph-mode RMSprop use runs a short self-check through the op as well.
    assert calls[kind.lower()] >= updates * variables, calls
    assert calls[kind.lower()] <= updates * variables + 3, calls


VARIANTS = [
    ("SGD", {}),
    ("SGD", {"momentum": 0.9}),
    ("SGD", {"momentum": 0.9, "nesterov": True, "learning_rate": 0.05}),
    ("RMSprop", {}),
    ("RMSprop", {"rho": 0.8, "momentum": 0.5}),
    ("RMSprop", {"centered": True}),
    ("RMSprop", {"centered": True, "momentum": 0.9, "epsilon": 1e-4}),
    ("Adam", {}),
    ("Adam", {"amsgrad": True}),
    ("Adam", {"beta_1": 0.8, "beta_2": 0.99, "epsilon": 1e-4, "learning_rate": 0.01}),
]
RICH = [VARIANTS[2], VARIANTS[4], VARIANTS[6], VARIANTS[8]]


def _id(case: Tuple[str, Dict[str, Any]]) -> str:
    kind, kwargs = case
    return kind + "".join(f"-{k}={v}" for k, v in kwargs.items())


def _id_pair(value: Any) -> str:
    if isinstance(value, dict):
        return "".join(f"{k}={v}" for k, v in value.items()) or "defaults"
    return str(value)


@pytest.mark.parametrize("eager", [False, True], ids=["graph", "eager"])
@pytest.mark.parametrize("case", VARIANTS, ids=_id)
def test_variants_float32(case, eager):
    kind, kwargs = case
    model, calls = _compare(kind, kwargs, "float32", eager)
    _assert_fast(model, kind, calls, STEPS, 4)


@pytest.mark.parametrize("eager", [False, True], ids=["graph", "eager"])
@pytest.mark.parametrize("case", RICH, ids=_id)
def test_variants_float64(case, eager):
    kind, kwargs = case
    model, calls = _compare(kind, kwargs, "float64", eager)
    assert model.weights[0].dtype == "float64"
    _assert_fast(model, kind, calls, STEPS, 4)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("case", RICH + [("RMSprop", {})], ids=_id)
def test_large_layer_runs_in_parallel_blocks(case, dtype):
    """A 10 x 4099 kernel (40990 elements, above the threading threshold, 40990 % 8 == 6) is
    split into blocks on TensorFlow's intra-op pool; graph-mode RMSprop's packet emulation must
    line up with TensorFlow's groups of 8 in every block.  Same bits as keras.optimizers."""
    kind, kwargs = case
    model, calls = _compare(kind, kwargs, dtype, epochs=1, hidden=4099)
    _assert_fast(model, kind, calls, ROWS // BATCH, 4)


def _exclude_bias(opt: Any) -> None:
    opt.exclude_from_weight_decay(var_names=["bias"])


BASE_OPTIONS = {
    "weight_decay": ({"weight_decay": 0.05}, None, STEPS),
    "weight_decay_exclude": ({"weight_decay": 0.05}, _exclude_bias, STEPS),
    "clipnorm": ({"clipnorm": 0.05}, None, STEPS),
    "clipvalue": ({"clipvalue": 0.01}, None, STEPS),
    "global_clipnorm": ({"global_clipnorm": 0.05}, None, STEPS),
    "ema": ({"use_ema": True, "ema_momentum": 0.9, "ema_overwrite_frequency": 3}, None, STEPS),
    "accumulation": ({"gradient_accumulation_steps": 3}, None, STEPS // 3),
    "loss_scale": ({"loss_scale_factor": 100.0}, None, STEPS),
    "schedule": ({"learning_rate": "schedule"}, None, STEPS),
    "callable_lr": ({"learning_rate": "callable"}, None, STEPS),
}


def _resolve(kwargs: Dict[str, Any]) -> Dict[str, Any]:
    kwargs = dict(kwargs)
    if kwargs.get("learning_rate") == "schedule":
        kwargs["learning_rate"] = keras.optimizers.schedules.ExponentialDecay(
            0.01, decay_steps=3, decay_rate=0.5)
    elif kwargs.get("learning_rate") == "callable":
        kwargs["learning_rate"] = lambda: 0.003
    return kwargs


BASE_CASES = ([("Adam", {}, option) for option in BASE_OPTIONS]
              + [("SGD", {"momentum": 0.9}, option) for option in
                 ("global_clipnorm", "clipnorm", "loss_scale", "accumulation")]
              + [("SGD", {}, "global_clipnorm")]
              + [("RMSprop", {"centered": True}, option) for option in
                 ("global_clipnorm", "loss_scale", "accumulation")])


@pytest.mark.parametrize("kind,variant,option", BASE_CASES,
                         ids=[f"{k}{''.join(f'-{a}={b}' for a, b in v.items())}-{o}"
                              for k, v, o in BASE_CASES])
def test_base_options(kind, variant, option):
    """Keras' own pipeline (clipping, weight decay, EMA, accumulation, loss scaling, schedules)
    around the kernel gives keras.optimizers' bits."""
    kwargs, prepare, updates = BASE_OPTIONS[option]
    model, calls = _compare(kind, _resolve({**variant, **kwargs}), prepare=prepare)
    _assert_fast(model, kind, calls, updates, 4)


ALL_OPTIONS = {"weight_decay": 0.02, "global_clipnorm": 0.5, "use_ema": True,
               "ema_momentum": 0.9, "gradient_accumulation_steps": 2,
               "loss_scale_factor": 100.0, "learning_rate": "schedule"}


@pytest.mark.parametrize("eager", [False, True], ids=["graph", "eager"])
@pytest.mark.parametrize("case", [("SGD", {"momentum": 0.9, "nesterov": True}),
                                  ("RMSprop", {"centered": True, "momentum": 0.5}),
                                  ("Adam", {"amsgrad": True})], ids=_id)
def test_all_base_options_together(case, eager):
    kind, kwargs = case
    model, calls = _compare(kind, _resolve({**kwargs, **ALL_OPTIONS}), eager=eager,
                            prepare=_exclude_bias)
    _assert_fast(model, kind, calls, STEPS // 2, 4)


def test_all_base_options_together_float64():
    model, calls = _compare("RMSprop", _resolve({"momentum": 0.5, **ALL_OPTIONS}), "float64")
    _assert_fast(model, "RMSprop", calls, STEPS // 2, 4)


# SGD without momentum is a scatter_sub, which TensorFlow runs in parallel (in no fixed order)
# from 1024 slices on, as in these batches of 250 x 6 ids: tests/test_sparse.py covers it.
EMBEDDING_CASES = [("SGD", {"momentum": 0.9}), ("SGD", {"momentum": 0.9, "nesterov": True}),
                   ("RMSprop", {}), ("RMSprop", {"momentum": 0.5, "centered": True}),
                   ("Adam", {}), ("AdamW", {"clipnorm": 0.5})]


@pytest.mark.parametrize("eager", [False, True], ids=["graph", "eager"])
@pytest.mark.parametrize("kind,kwargs", EMBEDDING_CASES)
def test_embedding_model(kind, kwargs, eager):
    """Sparse gradients (the Embedding's tf.IndexedSlices, with repeated rows in every batch)
    run the kernels in the same op as the Dense layer's dense ones: nothing falls back, and the
    model equals keras.optimizers' (model.fit's graph: centered RMSprop as Grappler rewrites it)."""
    model, calls = _compare(kind, kwargs, "float32", eager, embedding=True)
    counts = model.optimizer.path_counts()
    assert counts["fallback"] == 0, counts
    assert calls[kind.lower().replace("adamw", "adam")] == STEPS * 3  # embedding, kernel, bias


def test_embedding_model_float64_graph():
    model, calls = _compare("Adam", {"amsgrad": True, "weight_decay": 0.01}, "float64",
                            embedding=True)
    assert calls["adam"] == STEPS * 3 and model.optimizer.path_counts()["fallback"] == 0


@pytest.mark.parametrize("kind,kwargs", [("SGD", {"momentum": 0.9, "nesterov": True}),
                                         ("RMSprop", {"centered": True, "momentum": 0.5}),
                                         ("Adam", {"amsgrad": True, "learning_rate": "schedule"})])
def test_save_load_continue(kind, kwargs, tmp_path):
    """Train 1 epoch, save as .keras, load without custom_objects, train 2 more epochs:
    the same bits as 3 uninterrupted epochs (and as keras.optimizers)."""
    kwargs = _resolve(kwargs)
    straight, _ = _compare(kind, kwargs, epochs=3)
    first, _ = _fit(kind, pk, kwargs, "float32", False, epochs=1)
    path = tmp_path / "model.keras"
    first.save(path)
    loaded = keras.models.load_model(path)
    assert type(loaded.optimizer) is getattr(pk, kind)
    assert int(loaded.optimizer.iterations.numpy()) == ROWS // BATCH
    x, y = _data("float32")
    before = pk.kernel_calls()[kind.lower()]
    loaded.fit(x, y, batch_size=BATCH, epochs=2, shuffle=False, verbose=0)
    assert pk.kernel_calls()[kind.lower()] - before >= 2 * (ROWS // BATCH) * 4
    assert loaded.optimizer.path_counts()["fallback"] == 0
    _assert_same(_state(loaded), _state(straight))


@pytest.mark.filterwarnings("ignore:pyoptim.keras")
@pytest.mark.parametrize("kind,kwargs", [("Adam", {"amsgrad": True}),
                                         ("RMSprop", {"centered": True, "momentum": 0.5})])
def test_jit_compile_falls_back_and_trains(kind, kwargs):
    """Inside XLA (jit_compile=True) the optimizers run Keras' update_step: they train, give
    keras.optimizers' numbers under XLA, and record why."""
    model, calls = _compare(kind, kwargs, jit=True)
    counts = model.optimizer.path_counts()
    assert counts["fast"] == 0 and counts["fallback"] > 0
    assert all("XLA" in reason for reason in counts["reasons"]), counts
    assert calls[kind.lower()] == 0
    start = _model("float32").weights[0].numpy()
    assert not np.array_equal(model.weights[0].numpy(), start)
    assert all(np.isfinite(w.numpy()).all() for w in model.weights)


@pytest.mark.filterwarnings("ignore:pyoptim.keras")
@pytest.mark.parametrize("returns", [False, True], ids=["no-output", "returns-loss"])
@pytest.mark.parametrize("kind,kwargs", [("SGD", {"momentum": 0.9, "nesterov": True}),
                                         ("SGD", {"global_clipnorm": 0.05}),
                                         ("RMSprop", {"momentum": 0.5}),
                                         ("RMSprop", {"centered": True}),
                                         ("Adam", {"amsgrad": True})], ids=_id_pair)
def test_custom_training_loop(kind, kwargs, returns):
    """optimizer.apply_gradients in a user's tf.function equals keras.optimizers, whether the
    function returns something or not (Grappler simplifies Keras' graph differently then).
    Centered RMSprop there runs Keras' code (see pyoptim/keras/_grappler.py)."""
    x, y = _data("float32")
    results = []
    for module in (pk, keras.optimizers):
        model = _model("float32")
        opt = getattr(module, kind)(**kwargs)
        loss_fn = keras.losses.SparseCategoricalCrossentropy()

        def train_step(xb, yb, model=model, opt=opt, loss_fn=loss_fn):
            with tf.GradientTape() as tape:
                loss = loss_fn(yb, model(xb, training=True))
            grads = tape.gradient(loss, model.trainable_variables)
            opt.apply_gradients(zip(grads, model.trainable_variables))
            return loss if returns else None

        step = tf.function(train_step)
        for i in range(0, ROWS, BATCH):
            step(tf.constant(x[i:i + BATCH]), tf.constant(y[i:i + BATCH]))
        results.append([w.numpy() for w in model.weights] + [v.numpy() for v in opt.variables])
        if module is pk:
            counts = opt.path_counts()
            if kind == "RMSprop" and kwargs.get("centered"):
                assert counts["fast"] == 0 and counts["fallback"] > 0
                assert all("user's tf.function" in r for r in counts["reasons"]), counts
            else:
                assert counts["fallback"] == 0 and counts["fast"] > 0, counts
    _assert_same(*results)


@pytest.mark.filterwarnings("ignore:pyoptim.keras")
def test_float16_variables_fall_back_to_keras():
    """Dtypes the kernels lack run Keras' code, with the reason recorded."""
    rng = np.random.default_rng(3)
    start = rng.standard_normal(37).astype("float16")
    grads = [rng.standard_normal(37).astype("float16") for _ in range(3)]
    results = []
    for module in (pk, keras.optimizers):
        var = keras.Variable(start, dtype="float16")
        opt = module.Adam(learning_rate=0.01)
        for g in grads:
            opt.apply_gradients([(tf.constant(g), var)])
        results.append([var.numpy()] + [v.numpy() for v in opt.variables])
        if module is pk:
            counts = opt.path_counts()
            assert counts["fast"] == 0 and counts["fallback"] == 3
            assert any("float16" in r for r in counts["reasons"])
    _assert_same(*results)


@pytest.mark.parametrize("kind, kwargs", [("Adam", {}), ("RMSprop", {"momentum": 0.5}),
                                          ("SGD", {"momentum": 0.9})], ids=["Adam", "RMSprop", "SGD"])
def test_fit_updates_variables_in_place_without_copies(kind, kwargs):
    """In model.fit every update runs after the whole backward pass: no variable is copied
    before its update (TensorFlow's copy-on-write when a read is still pending).  Without that
    order the kernels of the second and third layers, which the backward pass still reads to
    compute the previous layer's gradient, were copied in most steps of this model.  The
    weights still equal keras.optimizers' to the bit."""
    rng = np.random.default_rng(11)
    x = rng.standard_normal((320, 64)).astype("float32")
    y = (np.arange(320) % 10).astype("int32")
    models = []
    for module in (pk, keras.optimizers):
        keras.utils.set_random_seed(3)
        model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(512, activation="relu"),
                                  keras.layers.Dense(512, activation="relu"), keras.layers.Dense(10)])
        model.compile(optimizer=getattr(module, kind)(**kwargs),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        copies = pk.variable_copies()
        model.fit(x, y, batch_size=32, epochs=1, shuffle=False, verbose=0)  # slots' first writes
        if module is pk:  # README: at most one copy per slot, in the first step (Adam: m or v)
            assert pk.variable_copies() - copies <= len(model.optimizer.variables) - 2
        copies, calls = pk.variable_copies(), pk.kernel_calls()[kind.lower()]
        model.fit(x, y, batch_size=32, epochs=2, shuffle=False, verbose=0)
        if module is pk:
            assert pk.kernel_calls()[kind.lower()] - calls == 2 * 10 * 6
            assert pk.variable_copies() - copies == 0
        models.append(model)
    _assert_same(_state(models[0]), _state(models[1]))


@pytest.mark.filterwarnings("ignore:pyoptim.keras")
def test_fit_with_an_embedding_updates_in_place_without_copies():
    """The first Dense layer after an Embedding: its kernel is read by the backward matmul that
    computes the Embedding's (sparse) gradient.  The update waits for that gradient; before
    it did, the kernel was copied in every step.  The Embedding's table itself, updated by the
    same op, is never copied either.  Same bits as keras.optimizers."""
    rng = np.random.default_rng(12)
    x = rng.integers(0, 1000, (256, 16)).astype("int32")
    y = (np.arange(256) % 10).astype("int32")
    models = []
    for module in (pk, keras.optimizers):
        keras.utils.set_random_seed(4)
        model = keras.Sequential([keras.Input((16,), dtype="int32"), keras.layers.Embedding(1000, 32),
                                  keras.layers.Flatten(), keras.layers.Dense(512, activation="relu"),
                                  keras.layers.Dense(10)])
        model.compile(optimizer=module.Adam(),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        model.fit(x, y, batch_size=16, epochs=1, shuffle=False, verbose=0)  # slots' first writes
        copies, calls = pk.variable_copies(), pk.kernel_calls()["adam"]
        model.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0)
        if module is pk:
            assert pk.kernel_calls()["adam"] - calls == 2 * 16 * 5  # every variable
            assert pk.variable_copies() - copies == 0
        models.append(model)
    _assert_same(_state(models[0]), _state(models[1]))


def test_update_copies_a_variable_whose_read_is_held():
    """The counter counts: a tensor read from the variable and still held forces the op to copy
    the buffer first, and the held tensor keeps the values it was read with."""
    start = np.linspace(-1, 1, 40_000, dtype=np.float32)
    var = keras.Variable(start)
    opt = pk.Adam(learning_rate=0.1)
    opt.build([var])
    held = var.value.read_value()  # eager: shares the variable's buffer
    copies = pk.variable_copies()
    opt.apply_gradients([(tf.ones_like(held), var)])
    assert pk.variable_copies() - copies == 1
    assert np.array_equal(held.numpy(), start)
    assert not np.array_equal(var.numpy(), start)
    del held
    copies = pk.variable_copies()
    opt.apply_gradients([(tf.ones_like(start), var)])
    assert pk.variable_copies() - copies == 0


def test_eager_apply_gradients_sizes_cover_simd_tails_and_threads():
    """Direct apply_gradients on variables of awkward sizes (SIMD tails, one above the
    threading threshold): the same bits as keras.optimizers, through the kernel."""
    rng = np.random.default_rng(5)
    shapes = [(1,), (7,), (9,), (3, 17), (65537,)]
    for kind, kwargs in [("Adam", {"amsgrad": True}), ("RMSprop", {"centered": True, "momentum": 0.3}),
                         ("SGD", {"momentum": 0.5, "nesterov": True})]:
        starts = [rng.standard_normal(s).astype("float32") for s in shapes]
        grads = [[rng.standard_normal(s).astype("float32") for s in shapes] for _ in range(3)]
        results = []
        for module in (pk, keras.optimizers):
            variables = [keras.Variable(s) for s in starts]
            opt = getattr(module, kind)(**kwargs)
            for step in grads:
                opt.apply_gradients(zip([tf.constant(g) for g in step], variables))
            results.append([v.numpy() for v in variables] + [v.numpy() for v in opt.variables])
            if module is pk:
                assert opt.path_counts() == {"fast": 3 * len(shapes), "fallback": 0, "reasons": {}}
        _assert_same(*results)


def test_graph_rmsprop_self_check_detects_wrong_arithmetic():
    """The first-use check that guards graph-mode RMSprop is able to fail: the textbook
    arithmetic (no Grappler rewrites) does not give Keras' graph-mode bits."""
    assert _grappler.verified(pk.RMSprop, "float32", True, True, True)
    assert not _grappler._compare(pk.RMSprop, "float32", True, False, False)
    assert not _grappler._compare(pk.RMSprop, "float32", True, True, False)


# --- API, serialization, build ---------------------------------------------------------------


@pytest.mark.parametrize("kind", ["SGD", "RMSprop", "Adam"])
def test_same_constructor_and_config_as_keras(kind):
    ours, theirs = getattr(pk, kind), getattr(keras.optimizers, kind)
    assert issubclass(ours, theirs)
    assert inspect.signature(ours) == inspect.signature(theirs)
    a = ours(learning_rate=0.02, weight_decay=0.1, clipnorm=1.0, name="opt").get_config()
    b = theirs(learning_rate=0.02, weight_decay=0.1, clipnorm=1.0, name="opt").get_config()
    assert a == b
    assert keras.saving.get_registered_name(ours) == f"pyoptim>{kind}"
    restored = keras.optimizers.deserialize(keras.optimizers.serialize(ours(learning_rate=0.5)))
    assert type(restored) is ours and float(restored.learning_rate) == 0.5


def _loader_names() -> List[bytes]:
    from pyoptim.keras import _loader

    return list(_loader.load().pyoptim_kernel_names().numpy())


def test_status_and_build_cache(op_built):
    status = pk.status()
    assert status["fast_path_available"] is True and status["error"] is None
    assert status["library"] == op_built and os.path.isfile(op_built)
    assert status["tensorflow"] == tf.__version__
    assert status["isa"] in op_built and f"tf{tf.__version__}" in op_built
    # the four kernels of their own, then the element-wise kernels' list (the op's names)
    names = [n.decode() for n in _loader_names()]
    assert list(status["kernel_calls"]) == names
    assert names[:4] == ["sgd", "rmsprop", "adam", "adam8bit"] and "nadam" in names
    assert pk.build() == op_built  # cached: the same file, no rebuild
    assert _build.library_path() == _build.cache_dir() / os.path.basename(op_built)


def _run_python(code: str, env: Optional[Dict[str, str]] = None, timeout: int = 600) -> str:
    full_env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", **(env or {}))
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                            text=True, env=full_env, timeout=timeout)
    assert result.returncode == 0, result.stderr[-4000:]
    return result.stdout


def test_build_command(op_built):
    """``python -m pyoptim.keras build`` prints the (cached) library and succeeds."""
    result = subprocess.run([sys.executable, "-m", "pyoptim.keras", "build"],
                            capture_output=True, text=True, timeout=900,
                            env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    assert result.returncode == 0, result.stderr[-4000:]
    assert result.stdout.strip().splitlines()[-1] == op_built


def test_numpy_core_does_not_import_tensorflow():
    out = _run_python("""
        import sys, pyoptim, numpy as np
        p = np.ones(3, np.float32)
        pyoptim.sgd_update(p, np.ones(3, np.float32))
        print("tensorflow" in sys.modules, "keras" in sys.modules)
    """)
    assert out.split() == ["False", "False"]


def test_disabled_fast_path_falls_back_with_warning():
    out = _run_python("""
        import json, warnings, numpy as np, keras, tensorflow as tf
        import pyoptim.keras as pk
        v = keras.Variable(np.arange(5, dtype="float32"))
        opt = pk.Adam()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            opt.apply_gradients([(tf.ones(5), v)])
        print(json.dumps({"available": pk.fast_path_available(), "error": pk.status()["error"],
                          "counts": opt.path_counts(),
                          "warnings": [str(w.message) for w in caught]}))
    """, env={"PYOPTIM_KERAS_FAST_PATH": "0"})
    info = json.loads(out.strip().splitlines()[-1])
    assert info["available"] is False and "PYOPTIM_KERAS_FAST_PATH" in info["error"]
    assert info["counts"]["fast"] == 0 and info["counts"]["fallback"] == 1
    assert any("pyoptim.keras.Adam" in w and "Keras' own update_step" in w for w in info["warnings"])


MIRRORED = """
import json, numpy as np, tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import keras
import pyoptim.keras as pk

rng = np.random.default_rng(1234)
x = rng.standard_normal((1000, 10)).astype("float32")
y = rng.integers(0, 3, 1000)
strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
out = {"replicas": strategy.num_replicas_in_sync}
ids = np.minimum(rng.zipf(1.5, (1000, 6)) - 1, 39).astype("int32")
cases = [("SGD", {"momentum": 0.9, "nesterov": True}, False),
         ("RMSprop", {"centered": True, "momentum": 0.5}, False),
         ("Adam", {"amsgrad": True, "weight_decay": 0.01, "global_clipnorm": 1.0}, False),
         ("Adam", {"weight_decay": 0.01}, True),  # an Embedding: each replica's IndexedSlices
         ("SGD", {"momentum": 0.9}, True)]
for kind, kwargs, embedding in cases:
    states = []
    name = kind + ("-embedding" if embedding else "")
    for module in (pk, keras.optimizers):
        with strategy.scope():
            keras.utils.set_random_seed(7)
            first = ([keras.Input((6,), dtype="int32"), keras.layers.Embedding(40, 8),
                      keras.layers.GlobalAveragePooling1D()] if embedding else
                     [keras.Input((10,)), keras.layers.Dense(16, activation="relu")])
            model = keras.Sequential(first + [keras.layers.Dense(3, activation="softmax")])
            model.compile(optimizer=getattr(module, kind)(**kwargs),
                          loss="sparse_categorical_crossentropy", jit_compile=False)
        before = pk.kernel_calls()[kind.lower()]
        model.fit(ids if embedding else x, y, batch_size=200, epochs=2, shuffle=False, verbose=0)
        calls = pk.kernel_calls()[kind.lower()] - before
        states.append([v.numpy() for v in model.weights]
                      + [v.numpy() for v in model.optimizer.variables])
        if module is pk:
            out[name] = {"counts": model.optimizer.path_counts(), "calls": calls}
    out[name]["same"] = all(np.array_equal(a, b) for a, b in zip(*states))
    out[name]["n"] = len(states[0])
print(json.dumps(out))
"""


def test_mirrored_strategy_two_logical_cpus():
    """MirroredStrategy on 2 logical CPUs (configured before TensorFlow starts, hence a
    subprocess): the same bits as keras.optimizers, with the kernel running on both replicas,
    an Embedding's sparse gradients included."""
    info = json.loads(_run_python(MIRRORED).strip().splitlines()[-1])
    assert info["replicas"] == 2
    for kind in ("SGD", "RMSprop", "Adam"):
        assert info[kind]["same"], info
        assert info[kind]["counts"]["fallback"] == 0, info
        # 10 updates x 4 variables x 2 replicas (+3 for RMSprop's first-use check)
        assert info[kind]["calls"] >= 10 * 4 * 2, info
    for kind in ("Adam-embedding", "SGD-embedding"):  # 3 variables, the table's gradient sparse
        assert info[kind]["same"], info
        assert info[kind]["counts"]["fallback"] == 0 and info[kind]["calls"] == 10 * 3 * 2, info
