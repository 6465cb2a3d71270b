"""TensorFlow's graph optimiser (Grappler) rewrites keras.optimizers' update inside a
``tf.function`` before it runs; the op must give the rewritten graph's bits.  Every rewrite the
op reproduces is here, with why (measured with TensorFlow 2.21; executing eagerly nothing is
rewritten and the op computes Keras' textbook formulas):

1. **Weight decay, MinimizeBroadcasts** (arithmetic optimiser, :func:`decay_scaled`): Keras'
   decoupled decay ``var - var * wd * lr`` multiplies a tensor by two scalars; Grappler
   reorders the product so that the scalars meet first, ``var - var * (wd * lr)``.  The op
   then takes ``wd * lr`` (computed by the same scalar Mul) as its decay factor and 1 as the
   decay's learning rate (``x * 1 == x``).
2. **SGD's ``gradient * learning_rate``** (arithmetic optimiser, :func:`may_merge_into`):
   when the gradient's producer is a Mul (``g * scale`` from ``global_clipnorm``) or a Div by
   a constant (loss scaling, accumulation), Grappler merges the two into one Mul with a scalar
   product, which rounds differently; the op then receives Keras' own Mul node (so Grappler
   rewrites it the same way) and a unit learning rate.
3. **RMSprop** (:func:`rewrites`, :func:`verified`):

   * arithmetic optimisation: ``(lr * g) / sqrt(d)``  ->  ``(lr * g) * rsqrt(d)``;
   * constant folding (centered only): ``(v - a^2) + eps``  ->  ``(eps - a^2) + v``, but only in
     a function that returns something (model.fit's train step does; a user's ``tf.function``
     may not, and that is unknown while it is being traced, so centered RMSprop in a user's
     ``tf.function`` runs Keras' code).

   The op takes both rewrites as attributes (``rsqrt_mul``, ``epsilon_first``; see
   ``_op/rmsprop_graph.hpp``).  Because they depend on TensorFlow's build (its Rsqrt is an
   approximation refined by a Newton step) and version, the first graph-mode use of each
   variant runs a few steps of ``keras.optimizers.RMSprop`` and of ``pyoptim.keras.RMSprop`` in
   ``tf.function`` on a 1003-element variable and compares the bits; if they differ,
   graph-mode RMSprop runs Keras' own code.

4. **Sparse gradients** (``tf.IndexedSlices``): Keras' sparse arithmetic meets the rewrites
   above as follows, measured, and the op does the same: the decay is the dense variable's (1.);
   SGD's ``values * learning_rate`` is built as Keras' own Mul node (2., always, with a unit
   learning rate in the op); RMSprop's centered denominator is a dense expression, so constant
   folding rewrites it as in 3. (``epsilon_first``), but its division is not rewritten to
   ``rsqrt``: Keras gathers ``sqrt(d)`` at the slices' rows before dividing, so Grappler never
   sees ``x / sqrt(y)`` (the op divides for sparse variables whatever ``rsqrt_mul`` says).

5. **The element-wise kernels' ``a / sqrt(x)``** (:func:`rsqrt_rewrite`,
   :func:`verified_form`): the arithmetic optimiser rewrites Keras' Adagrad ``(lr * g) /
   sqrt(acc + eps)`` (and any kernel header that says ``kGraphRsqrt``) to ``(lr * g) *
   rsqrt(acc + eps)``, as RMSprop's in 3.; the op's ``graph_rsqrt`` form computes it with
   TensorFlow's Rsqrt, checked on first use per class and dtype as in 3.  Sparse gradients are
   not rewritten (Keras gathers ``sqrt(acc + eps)`` at the slices' rows first).
6. **Ftrl's ``Pow``** (:func:`pow_rewrite`): the arithmetic optimiser's ConvertPowStage turns
   ``Pow(x, 0.5)`` (the default ``learning_rate_power=-0.5``) into ``Sqrt(x)``, and exponents 1,
   2, 3 and 0 into ``x``, ``x * x``, ``x * (x * x)`` and 1; other exponents stay TensorFlow's Pow,
   which the op reproduces as well (Eigen's packet pow on the tensor's whole packets, ``std::pow``
   on its last ``n % P`` elements: ``csrc/pyoptim/tf_pow.hpp``), eagerly too; that emulation is
   checked on first use per dtype, eagerly and in a graph.

A user who switches a pass off (``tf.config.optimizer.set_experimental_options``) gets the
unrewritten arithmetic, and so does the op.
"""
from __future__ import annotations

import threading
from typing import Any, Callable, Dict, Optional, Tuple

import numpy as np
import tensorflow as tf

_lock = threading.Lock()
_verified: Dict[Tuple[str, bool, bool, bool], bool] = {}
_local = threading.local()


# Keras' train-step functions (keras/src/backend/tensorflow/trainer.py); they return the logs.
_KERAS_STEP_FUNCTIONS = ("one_step_on_data", "one_step_on_iterator", "multi_step_on_iterator")


def _in_keras_step_function() -> bool:
    graph = tf.compat.v1.get_default_graph()
    while graph is not None:
        if str(getattr(graph, "name", "")).startswith(_KERAS_STEP_FUNCTIONS):
            return True
        graph = getattr(graph, "outer_graph", None)
    return False


def _arithmetic_optimizer_on() -> bool:
    options = tf.config.optimizer.get_experimental_options()
    return (not options.get("disable_meta_optimizer", False)
            and bool(options.get("arithmetic_optimization", True)))


# -- 1. weight decay --------------------------------------------------------------------------

def decay_scaled() -> bool:
    """True when Keras' decay in the graph being built now runs as ``var - var * (wd * lr)``
    (Grappler's MinimizeBroadcasts stage; measured in model.fit, in users' ``tf.function``s
    with and without a return value, under ``tf.control_dependencies``, with gradient
    accumulation's ``cond``, under MirroredStrategy); False executing eagerly or with the
    arithmetic optimiser off, where it is ``var - (var * wd) * lr``."""
    return not tf.executing_eagerly() and _arithmetic_optimizer_on()


# -- 2. SGD's gradient * learning_rate ----------------------------------------------------------

# Ops Grappler removes or sees through, and producers it can merge with a following Mul.
_TRANSPARENT_OPS = {"Identity", "IdentityN", "Snapshot", "StopGradient", "Reshape", "Squeeze",
                    "ExpandDims", "Cast"}
_MERGEABLE_OPS = {"Mul", "MulNoNan", "RealDiv", "Div", "DivNoNan", "Xdivy", "Neg", "Reciprocal",
                  "Inv", "Square"}


def may_merge_into(gradient: Any) -> bool:
    """True when ``gradient`` is a graph tensor computed (through ops Grappler removes) by an op
    that Grappler can fold into a following ``gradient * learning_rate``; False in eager mode."""
    if tf.executing_eagerly():
        return False
    tensor = gradient
    for _ in range(32):
        op = getattr(tensor, "op", None)
        if op is None:
            return False
        if op.type not in _TRANSPARENT_OPS:
            return op.type in _MERGEABLE_OPS
        index = tensor.value_index if op.type == "IdentityN" else 0
        tensor = op.inputs[index]
    return True  # a long chain: be safe


# -- 3. RMSprop -----------------------------------------------------------------------------------

def rewrites(centered: bool) -> Optional[Tuple[bool, bool]]:
    """``(rsqrt_mul, epsilon_first)`` Grappler applies to Keras' RMSprop in the graph being built
    now: both False when executing eagerly or when the user disabled the corresponding Grappler
    pass (``tf.config.optimizer.set_experimental_options``).

    None when it cannot be known: Grappler's constant folding simplifies only functions that
    return something, and while building a user's ``tf.function`` we cannot see yet whether it
    will; for centered RMSprop outside Keras' own train step that decides ``epsilon_first``."""
    forced = getattr(_local, "forced", None)
    if forced is not None:
        return forced[0], bool(forced[1] and centered)
    if tf.executing_eagerly():
        return False, False
    options = tf.config.optimizer.get_experimental_options()
    if options.get("disable_meta_optimizer", False):
        return False, False
    rsqrt = bool(options.get("arithmetic_optimization", True))
    folding = bool(options.get("constant_folding", True))
    if centered and folding and not _in_keras_step_function():
        return None
    return rsqrt, bool(centered and folding)


def in_self_test() -> bool:
    """True on the thread running :func:`verified`'s comparison (it must not re-enter it)."""
    return getattr(_local, "active", False)


def _step_function(opt, var):
    @tf.function(jit_compile=False)
    def step(g):
        opt.apply([g], [var])
        return opt.iterations  # a fetch, as model.fit's train function has (Grappler needs one)

    return step


def _same_bits_as_keras(candidate: type, reference: type, kwargs: Dict[str, Any], dtype: str,
                        forced: Tuple[bool, bool], eager: bool = False) -> bool:
    """A few ``tf.function`` steps (eager: steps executed eagerly) of ``reference`` (a
    keras.optimizers class) and of ``candidate`` (pyoptim's, passed in so that this module needs
    no optimizer class) with the rewrites forced to ``forced`` (rsqrt, epsilon first): the same
    bits in the variable and every optimizer variable, the candidate's update all through the
    op?"""
    import keras

    _local.active = True
    _local.forced = forced
    try:
        rng = np.random.default_rng(20240607)
        n = 1003  # 125 groups of 8 and a tail of 3, as TensorFlow's Rsqrt splits it
        start = rng.standard_normal(n).astype(dtype)
        grads = [tf.constant((rng.standard_normal(n) * s).astype(dtype)) for s in (1.0, 0.1, 3.0)]
        results = []
        for cls in (reference, candidate):
            opt = cls(**kwargs)
            var = keras.Variable(start.copy(), dtype=dtype)
            opt.build([var])

            step = (lambda g, opt=opt, var=var: opt.apply([g], [var])) if eager else \
                _step_function(opt, var)
            for g in grads:
                step(g)
            if cls is candidate:
                counts = opt.path_counts()
                if counts["fast"] == 0 or counts["fallback"] != 0:
                    return False
            results.append([var.numpy()] + [v.numpy() for v in opt.variables])
        return all(np.array_equal(a, b, equal_nan=True) for a, b in zip(*results))
    finally:
        _local.active = False
        _local.forced = None


def _compare(candidate: type, dtype: str, centered: bool, rsqrt: bool, eps_first: bool) -> bool:
    """:func:`_same_bits_as_keras` for RMSprop (``candidate``: pyoptim's RMSprop class) with
    the rewrites forced to ``(rsqrt, eps_first)``."""
    import keras

    kwargs = dict(learning_rate=0.01, rho=0.9, momentum=0.5, centered=centered)
    return _same_bits_as_keras(candidate, keras.optimizers.RMSprop, kwargs, dtype,
                               (rsqrt, eps_first))


def _on_own_thread(check: Callable[[], bool]) -> bool:
    """``check()`` on a separate thread, so that the caller's graph, device and distribution
    scopes do not apply; False if it raises."""
    outcome: Dict[str, object] = {}

    def run() -> None:
        try:
            outcome["ok"] = check()
        except Exception as exc:  # noqa: BLE001 - any failure: use Keras' code
            outcome["ok"] = False
            outcome["error"] = exc

    worker = threading.Thread(target=run, name="pyoptim-graph-check")
    worker.start()
    worker.join()
    return bool(outcome.get("ok", False))


def verified(candidate: type, dtype: str, centered: bool, rsqrt: bool, eps_first: bool) -> bool:
    """Whether the op with these rewrites (run by ``candidate``, pyoptim's RMSprop class) gives
    keras.optimizers.RMSprop's graph-mode bits here (checked once per variant and process)."""
    key = (dtype, centered, rsqrt, eps_first)
    with _lock:
        if key in _verified:
            return _verified[key]
    ok = _on_own_thread(lambda: _compare(candidate, dtype, centered, rsqrt, eps_first))
    with _lock:
        _verified[key] = ok
    return ok


# -- 5. the element-wise kernels' a / sqrt(x) -------------------------------------------------

def rsqrt_rewrite() -> bool:
    """Whether Grappler rewrites ``a / sqrt(x)`` to ``a * rsqrt(x)`` (its arithmetic
    optimiser's SqrtDivToRsqrtMul stage) in the graph being built now: never executing eagerly
    or with that optimiser switched off.  Measured in Keras' Adagrad and Adadelta (model.fit and
    users' tf.functions, with and without a return value)."""
    forced = getattr(_local, "forced", None)
    if forced is not None and not tf.executing_eagerly():
        return bool(forced[0])
    return not tf.executing_eagerly() and _arithmetic_optimizer_on()


def pow_rewrite(exponent: float) -> Optional[str]:
    """How Grappler's arithmetic optimiser (ConvertPowStage) rewrites ``Pow(x, exponent)``, a
    constant exponent of the variable's dtype, in the graph being built now: ``"sqrt"`` (0.5),
    ``"identity"`` (1), ``"square"`` (2), ``"cube"`` (3) or ``"one"`` (0); None when it stays
    TensorFlow's Pow (executing eagerly, the optimiser off, or another exponent).  Measured in
    Keras' Ftrl (``ops.power(accum, -learning_rate_power)``)."""
    if not rsqrt_rewrite():
        return None
    return {0.5: "sqrt", 1.0: "identity", 2.0: "square", 3.0: "cube", 0.0: "one"}.get(exponent)


_verified_kernels: Dict[Tuple[str, str, bool, bool], bool] = {}


def verified_form(candidate: type, reference: type, kwargs: Dict[str, Any], dtype: str,
                  eager: bool) -> bool:
    """Whether the op, run by ``candidate`` (a pyoptim.keras class) with ``kwargs``, gives
    ``reference``'s bits here, executing eagerly or in a ``tf.function`` as Grappler rewrites
    it in the graph being built now (:func:`rsqrt_rewrite`: the check's own graph is made to
    take the same forms): the arithmetic that emulates TensorFlow's own (its Rsqrt, its Pow),
    checked once per class, dtype, mode, rewrite and process, as :func:`verified` does for
    RMSprop."""
    rewrite = rsqrt_rewrite()
    key = (candidate.__name__, dtype, eager, rewrite)
    with _lock:
        if key in _verified_kernels:
            return _verified_kernels[key]
    ok = _on_own_thread(lambda: _same_bits_as_keras(candidate, reference, kwargs, dtype,
                                                    (rewrite, False), eager=eager))
    with _lock:
        _verified_kernels[key] = ok
    return ok


def kernel_results() -> Dict[Tuple[str, str, bool, bool], bool]:
    """The element-wise kernels' checks run so far: ``{(class name, dtype, eager, rsqrt and pow
    rewrites): passed}``."""
    with _lock:
        return dict(_verified_kernels)


def last_results() -> Dict[Tuple[str, bool, bool, bool], bool]:
    """The checks run so far: ``{(dtype, centered, rsqrt_mul, epsilon_first): passed}``."""
    with _lock:
        return dict(_verified)
