"""TensorFlow implementations: TF's fused C++ kernels (tf.raw_ops.ResourceApply*),
keras.optimizers and pyoptim.keras, each step inside one ``tf.function``.

TensorFlow is imported by :func:`init_tensorflow`, which sets its intra-op and
inter-op thread pools to the benchmark's thread count before TF initialises.
"""
from __future__ import annotations

import os
from typing import Any, Dict, Optional

from impl_base import Impl, Step, Unavailable
from problems import HYPER, Case, Data

_TF: Dict[str, Any] = {}


def init_tensorflow(threads: int) -> Optional[str]:
    """Import TensorFlow and Keras with ``threads`` intra-op and inter-op threads.
    Returns None, or why TensorFlow is unavailable."""
    if "tf" in _TF:
        return None
    if "error" in _TF:
        return _TF["error"]
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
        import keras
    except Exception as e:  # ImportError, or TF's own errors when it is broken
        _TF["error"] = f"tensorflow/keras not importable: {type(e).__name__}: {e}"
        return _TF["error"]
    _TF["tf"], _TF["keras"] = tf, keras
    return None


def tf_threads() -> Dict[str, int]:
    tf = _TF.get("tf")
    if tf is None:
        return {}
    return {"intra_op": tf.config.threading.get_intra_op_parallelism_threads(),
            "inter_op": tf.config.threading.get_inter_op_parallelism_threads()}


class _TFImpl(Impl):
    group = "tensorflow"

    def __init__(self, threads: int) -> None:
        super().__init__()
        self.threads = threads

    def setup(self) -> None:
        self.reason = init_tensorflow(self.threads)

    @property
    def tf(self):
        return _TF["tf"]


class TFRawOps(_TFImpl):
    """tf.raw_ops.ResourceApplyKerasMomentum / ResourceApplyRMSProp / ResourceApplyAdam,
    one op per variable, all in one tf.function."""

    name = "tf.raw_ops"
    description = ("TF's fused C++ kernels in one tf.function: ResourceApplyKerasMomentum (SGD), "
                   "ResourceApplyRMSProp (RMSprop; also reads and writes a momentum array), "
                   "ResourceApplyAdam (Adam)")

    def make(self, optimizer: str, case: Case, data: Data) -> Step:
        tf = self.tf
        h = HYPER[optimizer]
        var = [tf.Variable(p) for p in data.params]
        grads = [tf.constant(g) for g in data.grads]
        zeros = lambda: [tf.Variable(tf.zeros_like(p)) for p in data.params]  # noqa: E731
        raw = tf.raw_ops
        f = lambda x: tf.constant(x, tf.float32)  # noqa: E731
        if optimizer == "sgd":
            acc = zeros()
            lr, mu = f(h["learning_rate"]), f(h["momentum"])

            @tf.function
            def fn():
                for v, a, g in zip(var, acc, grads):
                    raw.ResourceApplyKerasMomentum(var=v.handle, accum=a.handle, lr=lr, grad=g, momentum=mu,
                                                   use_locking=False, use_nesterov=False)

            keep = (var, acc)
        elif optimizer == "rmsprop":
            ms, mom = zeros(), zeros()
            lr, rho, eps, mu = f(h["learning_rate"]), f(h["rho"]), f(h["epsilon"]), f(0.0)

            @tf.function
            def fn():
                for v, s, o, g in zip(var, ms, mom, grads):
                    raw.ResourceApplyRMSProp(var=v.handle, ms=s.handle, mom=o.handle, lr=lr, rho=rho,
                                             momentum=mu, epsilon=eps, grad=g, use_locking=False)

            keep = (var, ms, mom)
        else:
            m, v2 = zeros(), zeros()
            lr, b1, b2, eps = f(h["learning_rate"]), f(h["beta_1"]), f(h["beta_2"]), f(h["epsilon"])
            b1p, b2p = f(h["beta_1"] ** 10), f(h["beta_2"] ** 10)  # as at step 10; cost does not depend on it

            @tf.function
            def fn():
                for v, a, b, g in zip(var, m, v2, grads):
                    raw.ResourceApplyAdam(var=v.handle, m=a.handle, v=b.handle, beta1_power=b1p, beta2_power=b2p,
                                          lr=lr, beta1=b1, beta2=b2, epsilon=eps, grad=g, use_locking=False,
                                          use_nesterov=False)

            keep = (var, m, v2)
        fn()  # trace outside the timed region
        step = lambda: fn()  # noqa: E731
        step._keep = keep  # type: ignore[attr-defined]
        return step


def keras_step(keras_module: Any, optimizer_cls: Any, data: Data, hyper: Dict[str, float],
               jit_compile: bool = False, eager: bool = False) -> Step:
    """``optimizer.apply_gradients`` over Keras variables inside one tf.function (compiled
    with XLA when ``jit_compile``), or called eagerly when ``eager`` (a custom training
    loop without tf.function: every step dispatches the update's ops one by one)."""
    tf = _TF["tf"]
    keras = _TF["keras"]
    variables = [keras.Variable(p, dtype="float32") for p in data.params]
    # A tf.IndexedSlices (the sparse cases of bench/sparse_apply.py) is applied as it is.
    grads = [g if isinstance(g, tf.IndexedSlices) else tf.constant(g) for g in data.grads]
    opt = optimizer_cls(**hyper)
    opt.build(variables)

    def apply() -> None:
        opt.apply_gradients(zip(grads, variables))

    fn = apply if eager else tf.function(apply, jit_compile=jit_compile)
    fn()  # trace (or the first eager step) outside the timed region
    step = lambda: fn()  # noqa: E731
    step._keep = (variables, opt)  # type: ignore[attr-defined]
    counts = getattr(opt, "path_counts", None)
    if callable(counts):  # pyoptim.keras: prove which path the traced (or eager) update takes
        c = counts()
        step._notes = {"fast_path": c["fallback"] == 0 and c["fast"] > 0, "path_counts": c}  # type: ignore[attr-defined]
    return step


CLASS_NAMES: Dict[str, str] = {"sgd": "SGD", "rmsprop": "RMSprop", "adam": "Adam", "adamw": "AdamW",
                               "sgd_no_momentum": "SGD", "rmsprop_momentum": "RMSprop", "lazyadam": "LazyAdam"}

#: keras.optimizers classes that stand in for a pyoptim.keras class Keras does not have: the
#: keras (and keras.no_update) rows of ``lazyadam`` run keras.optimizers.Adam.
KERAS_BASELINE: Dict[str, str] = {"lazyadam": "Adam"}


def missing_class_reason(optimizer: str) -> str:
    """Why a pyoptim.keras row of ``optimizer`` is not measured when the class is absent."""
    name = CLASS_NAMES[optimizer]
    return f"pyoptim.keras has no {name} (hasattr(pyoptim.keras, {name!r}) is False)"


def keras_classes(module: Any) -> Dict[str, Any]:
    """Optimizer classes of ``keras.optimizers`` (or pyoptim.keras) by benchmark name;
    ``adamw`` only when the module has ``AdamW``, ``lazyadam`` only when it has ``LazyAdam``."""
    return {k: getattr(module, v) for k, v in CLASS_NAMES.items() if hasattr(module, v)}


def baseline_classes(module: Any) -> Dict[str, Any]:
    """:func:`keras_classes` of ``keras.optimizers``, plus the stand-ins of
    :data:`KERAS_BASELINE` for what it lacks (``lazyadam``: keras.optimizers.Adam)."""
    classes = keras_classes(module)
    for k, v in KERAS_BASELINE.items():
        if k not in classes and hasattr(module, v):
            classes[k] = getattr(module, v)
    return classes


class _NoUpdate:
    """Mixed into a keras.optimizers class: the step computes everything an update needs (the
    gradients, Keras' all-reduce and iteration count) and updates nothing.  One element of
    every gradient feeds a scalar counter, so that TensorFlow computes each gradient in full
    (measured: with only a control dependency on the gradients, the heavy model's step drops
    from about 17 ms to 5 ms, the big kernels' gradients left out)."""

    def build(self, variables: Any) -> None:
        super().build(variables)  # type: ignore[misc]
        self._floor_touch = self.add_variable((), dtype="int64", initializer="zeros",  # type: ignore[attr-defined]
                                              name="floor_touch")

    def update_step(self, gradient: Any, variable: Any, learning_rate: Any) -> None:
        return None

    def _apply_weight_decay(self, variables: Any) -> None:
        return None

    def _backend_update_step(self, grads: Any, trainable_variables: Any, learning_rate: Any) -> None:
        tf = _TF["tf"]
        super()._backend_update_step(grads, trainable_variables, learning_rate)  # type: ignore[misc]
        firsts = [tf.reduce_sum(tf.cast(tf.reshape(getattr(g, "values", g), [-1])[:1], "float32"))
                  for g in grads if g is not None]
        self._floor_touch.assign_add(tf.cast(tf.math.is_nan(tf.add_n(firsts)), "int64"))


def no_update_classes(module: Any) -> Dict[str, Any]:
    """``module``'s optimizer classes (keras.optimizers) whose step updates nothing
    (:class:`_NoUpdate`).  A ``model.fit`` step with one of them is the floor under any
    optimizer on that model (forward, backward, Keras' apply bookkeeping): Keras' step time
    over it is the most that any faster update could gain."""
    return {k: type(f"NoUpdate{cls.__name__}", (_NoUpdate, cls), {})
            for k, cls in baseline_classes(module).items()}


class KerasOptimizers(_TFImpl):
    name = "keras"
    description = "keras.optimizers.SGD / RMSprop / Adam: apply_gradients inside tf.function"
    eager = False

    def classes(self) -> Dict[str, Any]:
        """Optimizer classes by benchmark name (``lazyadam``: keras.optimizers.Adam)."""
        return baseline_classes(_TF["keras"].optimizers)

    def make(self, optimizer: str, case: Case, data: Data) -> Step:
        cls = keras_classes(_TF["keras"].optimizers)[optimizer]
        return keras_step(_TF["keras"], cls, data, HYPER[optimizer], eager=self.eager)


class KerasEager(KerasOptimizers):
    name = "keras.eager"
    description = "keras.optimizers.SGD / RMSprop / Adam: apply_gradients called eagerly (no tf.function)"
    eager = True


class KerasXLA(_TFImpl):
    name = "keras.xla"
    description = ("keras.optimizers.SGD / RMSprop / Adam: apply_gradients inside tf.function(jit_compile=True) "
                   "(XLA fuses the update's element-wise ops)")

    def make(self, optimizer: str, case: Case, data: Data) -> Step:
        ko = _TF["keras"].optimizers
        cls = {"sgd": ko.SGD, "rmsprop": ko.RMSprop, "adam": ko.Adam}[optimizer]
        return keras_step(_TF["keras"], cls, data, HYPER[optimizer], jit_compile=True)


class PyoptimKeras(_TFImpl):
    name = "pyoptim.keras"
    group = "pyoptim"
    description = "pyoptim.keras.SGD / RMSprop / Adam (TF custom op): apply_gradients inside tf.function"
    eager = False

    def setup(self) -> None:
        super().setup()
        if self.reason:
            return
        try:
            import pyoptim.keras as pk  # noqa: F401
        except Exception as e:
            self.reason = f"pyoptim.keras not importable: {type(e).__name__}: {e}"
            return
        missing = [c for c in ("SGD", "RMSprop", "Adam") if not hasattr(pk, c)]
        if missing:
            self.reason = f"pyoptim.keras lacks {', '.join(missing)}"
            return
        self._pk = pk

    def classes(self) -> Dict[str, Any]:
        """pyoptim.keras' optimizer classes by benchmark name (absent ones are missing)."""
        return keras_classes(self._pk)

    def make(self, optimizer: str, case: Case, data: Data) -> Step:
        classes = keras_classes(self._pk)
        if optimizer not in classes:
            raise Unavailable(missing_class_reason(optimizer))
        return keras_step(_TF["keras"], classes[optimizer], data, HYPER[optimizer], eager=self.eager)

    def info(self) -> Dict[str, object]:
        d = super().info()
        pk = getattr(self, "_pk", None)
        status = getattr(pk, "status", None)
        if callable(status):
            try:
                d["status"] = status()  # fast path available, library, ISA, kernel calls
            except Exception as e:  # report, never fail the run for this
                d["status"] = f"error: {type(e).__name__}: {e}"
        return d


class PyoptimKerasEager(PyoptimKeras):
    name = "pyoptim.keras.eager"
    description = "pyoptim.keras.SGD / RMSprop / Adam (TF custom op): apply_gradients called eagerly (no tf.function)"
    eager = True
