"""SGD, RMSprop, Adam and AdamW for Keras 3 whose update runs pyoptim's C++ kernels.

Each class subclasses the matching ``keras.optimizers`` class; clipping, EMA, gradient
accumulation, loss scaling, learning-rate schedules, distribution, slot variables, ``get_config``
and saving stay Keras' own code.  What changes is the step's update, one pipeline
(``_FastPathMixin._distributed_tf_update_step``):

1. **group** the step's (gradient, variable) pairs: every dense float32/float64 CPU variable
   the kernels serve, by dtype; the others (sparse ``tf.IndexedSlices`` gradients of Embedding
   layers, float16/bfloat16 variables, non-CPU variables, XLA, an op that could not be built)
   run Keras' own ``update_step`` in the same step, with one warning;
2. **coefficients** once per dtype and step, with the TensorFlow ops Keras uses in the
   variable's dtype (e.g. Adam's ``alpha = lr * sqrt(1 - beta_2^t) / (1 - beta_1^t)``), so every
   variable gets the bits Keras computes for it;
3. **one op** per dtype (per device under a strategy with several local devices) that updates
   all the group's variables and slots in place in one parallel pass (see
   ``_op/pyoptim_tf_ops.cc``); executing eagerly, Keras' decoupled weight decay
   (``var - var * wd * lr``, honouring ``exclude_from_weight_decay``) runs in the same pass
   (inside ``tf.function`` it stays Keras' own pass: see ``_apply_weight_decay``).  Inside ``tf.function`` it runs after every gradient
   of the step is computed, so that no variable is copied before its in-place update
   (:func:`_gradient_barrier`).

Grappler's rewrites of Keras' graph that the op must reproduce are in ``_graph_rmsprop``
(RMSprop's rsqrt and constant push-down) and :func:`_grappler_may_merge_into` (SGD's
``gradient * learning_rate`` merged with the gradient's producer).  ``opt.path_counts()``,
:func:`pyoptim.keras.kernel_calls` and :func:`pyoptim.keras.op_calls` tell what ran.
"""
from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import keras
import tensorflow as tf
from keras import ops
from tensorflow.python.ops import resource_variable_ops

from . import _graph_rmsprop, _loader
from ._reporting import ReportingMixin

_FAST_DTYPES = (tf.float32, tf.float64)
_gpu_present: Optional[bool] = None


def _gpu_devices_present() -> bool:
    global _gpu_present
    if _gpu_present is None:
        _gpu_present = bool(tf.config.list_logical_devices("GPU"))
    return _gpu_present


def _tf_variable(v: Any) -> Any:
    """The TensorFlow variable behind a Keras variable (as Keras' TF optimizer does)."""
    return v.value if isinstance(v, keras.Variable) else v


def _in_xla_context() -> bool:
    if tf.executing_eagerly():
        return False
    from tensorflow.python.ops import control_flow_util

    return control_flow_util.GraphOrParentsInXlaContext(tf.compat.v1.get_default_graph())


def _operand(value: Any, dtype: tf.DType) -> Optional[tf.Tensor]:
    """``value`` converted the way ``keras.ops.multiply(value, x)`` converts it when ``x`` has
    ``dtype``: a Python number becomes a tensor of ``dtype`` (one rounding from the double), a
    tensor keeps its value and is cast.  None when Keras would compute in another dtype."""
    if isinstance(value, (int, float)):
        return tf.convert_to_tensor(value, dtype=dtype)
    try:
        t = tf.convert_to_tensor(value)
    except (TypeError, ValueError):
        return None
    if keras.backend.result_type(t.dtype.name, dtype.name) != dtype.name or t.shape.rank != 0:
        return None
    return tf.cast(t, dtype)


def _gradient_barrier(distribution: Any, grads: List[Any],
                      member: Callable[[tf.Tensor], bool]) -> Optional[tf.Operation]:
    """Inside a graph (``tf.function``): one NoOp that runs once every dense gradient in
    ``grads`` (each replica's, under a distribution strategy) for which ``member`` is true
    has been computed; None in eager mode or for fewer than two gradients.

    Why: the kernels update a variable in place, and TensorFlow first copies the variable's
    buffer (copy-on-write, a whole extra pass plus fresh pages) when a tensor read from it is
    still held by an op that has not finished.  In a training step that op is typically the
    backward matmul that multiplies the next layer's gradient by this layer's kernel: without
    an order it runs alongside the update as soon as the kernel's own gradient is ready.
    Updating after every gradient is computed (the backward pass has then released the reads)
    avoids the copy; the arithmetic is unchanged."""
    if tf.executing_eagerly():
        return None
    producers = {id(op): op for g in grads if g is not None
                 for t in distribution.experimental_local_results(g)
                 if isinstance(t, tf.Tensor) and member(t)
                 for op in [_producer(t)]}
    if len(producers) < 2:
        return None
    with tf.control_dependencies(list(producers.values())):
        return tf.no_op(name="pyoptim_after_all_gradients")


def _producer(tensor: tf.Tensor) -> tf.Operation:
    """The op that computes ``tensor``, looking through Identity / IdentityN: Grappler's
    dependency optimizer bypasses those (Keras passes the gradients through one IdentityN), so
    a control edge from them would order nothing."""
    for _ in range(32):
        op = tensor.op
        if op.type not in ("Identity", "IdentityN", "Snapshot") or not op.inputs:
            return op
        tensor = op.inputs[tensor.value_index if op.type == "IdentityN" else 0]
    return tensor.op


class _FastPathMixin(ReportingMixin):
    """The fused update: group the variables, compute the coefficients once, one op.

    Subclasses give ``_slots(variable)`` (the slot variables, in the op's order), and
    ``_fused_update(op, variables, grads, learning_rate, decay, scalars)`` that builds the op for
    one dtype group; they may refine ``_scalars()`` (the Python hyperparameters the op takes,
    converted per dtype as Keras converts them), ``_group_blocker(dtype)`` and
    ``_decay_fusable(distribution, grad)``."""

    def _barrier_member(self, gradient: tf.Tensor) -> bool:
        """Whether ``gradient`` may get a control edge to the barrier (see _gradient_barrier)."""
        return True

    def _slots(self, variable: Any) -> List[Any]:
        raise NotImplementedError

    def _scalars(self) -> List[Any]:
        return []

    def _group_blocker(self, dtype: tf.DType) -> Optional[str]:
        return None

    def _decay_fusable(self, distribution: Any, gradient: Any) -> bool:
        return True

    def _fused_update(self, op: Any, variables: List[Any], grads: List[Any], learning_rate: Any,
                      decay: List[bool], scalars: List[tf.Tensor]) -> Any:
        raise NotImplementedError

    # -- Keras' hooks ---------------------------------------------------------------------

    def _apply_weight_decay(self, variables):
        # Keras decays every variable here, one pass each, before the update.  Executing
        # eagerly (a custom loop, run_eagerly=True), when the kernels can serve, the decay is
        # deferred to the update: the same arithmetic, in the op's pass for the variables it
        # takes, Keras' own decay for the others.  Inside tf.function Keras' decay stays a
        # separate pass: Grappler rewrites ``var * wd * lr`` there in ways that depend on the
        # rest of the graph (measured: ``var * (wd * lr)`` in a user's tf.function, the textbook
        # order in model.fit's step), which the op cannot know while it is being built.
        if (self.weight_decay is None or not tf.executing_eagerly()
                or self._fast_path_blocker() is not None):
            return super()._apply_weight_decay(variables)
        object.__setattr__(self, "_pyoptim_pending_decay", list(variables))

    def _distributed_tf_update_step(self, distribution, grads_and_vars, learning_rate):
        # Keras calls this once per step (cross-replica context, one thread), in graph and eager
        # mode alike.
        pending = self.__dict__.get("_pyoptim_pending_decay")
        object.__setattr__(self, "_pyoptim_pending_decay", None)
        decay_keys = {self._var_key(v) for v in pending} if pending else set()
        barrier = _gradient_barrier(distribution, [g for g, _ in grads_and_vars], self._barrier_member)
        previous = self.__dict__.get("_pyoptim_barrier")
        object.__setattr__(self, "_pyoptim_barrier", barrier)  # bookkeeping, not tracked state
        try:
            groups, rest, scalars = self._group(grads_and_vars)
            decay = {dtype: [False] * len(pairs) for dtype, pairs in groups.items()}
            if decay_keys:
                # Which variables the op decays; Keras' own decay (before their update) for
                # the other variables that Keras would have decayed.
                decay = {dtype: [self._var_key(v) in decay_keys and bool(self._use_weight_decay(v))
                                 and self._decay_fusable(distribution, g) for g, v in pairs]
                         for dtype, pairs in groups.items()}
                fused = {self._var_key(v) for dtype, pairs in groups.items()
                         for (_, v), flag in zip(pairs, decay[dtype]) if flag}
                keras_decay = [v for _, v in grads_and_vars
                               if self._var_key(v) in decay_keys and self._var_key(v) not in fused]
                if keras_decay:
                    super()._apply_weight_decay(keras_decay)
            for dtype, pairs in groups.items():
                self._run_group(distribution, pairs, learning_rate, decay[dtype], scalars[dtype])
            if rest:
                super()._distributed_tf_update_step(distribution, rest, learning_rate)
        finally:
            object.__setattr__(self, "_pyoptim_barrier", previous)

    # -- the pipeline -----------------------------------------------------------------------

    def _group(self, grads_and_vars: Sequence[Tuple[Any, Any]]
               ) -> Tuple[Dict[tf.DType, List[Tuple[Any, Any]]], List[Tuple[Any, Any]],
                          Dict[tf.DType, List[tf.Tensor]]]:
        """``({dtype: [(grad, var)]}, rest, {dtype: scalars})``: the pairs the op takes, by
        dtype, the others (recorded in path_counts with the reason, and warned about once), and
        each group's hyperparameters converted to its dtype."""
        groups: Dict[tf.DType, List[Tuple[Any, Any]]] = {}
        rest: List[Tuple[Any, Any]] = []
        scalars: Dict[tf.DType, List[tf.Tensor]] = {}
        blocker = self._fast_path_blocker()
        if blocker is not None:
            for pair in grads_and_vars:
                self._fallback(blocker)
            return groups, list(grads_and_vars), scalars
        for grad, var in grads_and_vars:
            reason = self._variable_blocker(grad, var)
            if reason is None:
                groups.setdefault(tf.as_dtype(var.dtype), []).append((grad, var))
            else:
                # Only this variable falls back; the warning names it (without TF's ":0").
                self._fallback(reason, str(getattr(var, "path", None) or var.name).split(":")[0])
                rest.append((grad, var))
        for dtype in list(groups):
            reason = self._group_blocker(dtype)
            if reason is None:
                converted = self._converted_scalars(dtype)
                if converted is None:
                    reason = "a hyperparameter is not a scalar of the variable's dtype"
                else:
                    scalars[dtype] = converted
            if reason is not None:
                for pair in groups.pop(dtype):
                    self._fallback(reason)
                    rest.append(pair)
        return groups, rest, scalars

    def _converted_scalars(self, dtype: tf.DType) -> Optional[List[tf.Tensor]]:
        """The op's Python hyperparameters converted by :func:`_operand` (None if one cannot)."""
        try:
            converted = [_operand(x, dtype) for x in self._scalars()]
        except Exception:  # noqa: BLE001 - e.g. a callable hyperparameter: Keras decides
            return None
        return None if any(x is None for x in converted) else converted

    def _run_group(self, distribution: Any, pairs: List[Tuple[Any, Any]], learning_rate: Any,
                   decay: List[bool], scalars: List[tf.Tensor]) -> None:
        """One op for the group (per device under a mirrored strategy: Keras' ``update`` runs
        ``fused`` on each device with that device's copies of the variables and gradients)."""
        op = _loader.load()
        grads = [g for g, _ in pairs]
        variables = [v for _, v in pairs]
        self._pyoptim_stats().fast += len(pairs)

        def fused(first, others, grads, learning_rate):
            variables = [first] + list(others)
            with self._after_all_gradients():
                return self._fused_update(op, variables, list(grads), learning_rate, decay,
                                          scalars)

        distribution.extended.update(variables[0], fused,
                                     args=(variables[1:], grads, learning_rate), group=False)

    def _after_all_gradients(self) -> Any:
        """Context for creating a kernel op: it runs after every gradient is computed."""
        barrier = self.__dict__.get("_pyoptim_barrier")
        return tf.control_dependencies([barrier] if barrier is not None else [])

    def _fast_path_blocker(self) -> Optional[str]:
        """Why no variable of this update can take the kernels (None: they can)."""
        if keras.backend.backend() != "tensorflow":
            return f"the Keras backend is {keras.backend.backend()!r}, not 'tensorflow'"
        if _in_xla_context():
            return "the update is compiled with XLA (jit_compile=True)"
        if _loader.load() is None:
            return f"the TensorFlow op is unavailable: {_loader.error()}"
        return None

    def _variable_blocker(self, gradient: Any, variable: Any) -> Optional[str]:
        """Why this one variable cannot take the kernels (None: it can)."""
        if isinstance(gradient, tf.IndexedSlices):
            return "its gradient is sparse (tf.IndexedSlices, e.g. from an Embedding layer)"
        return self._var_info(variable)[0]

    def _var_info(self, variable: Any) -> Tuple[Optional[str], List[Any]]:
        """``(reason, slots)`` for ``variable``: why it cannot take the kernels whatever its
        gradient (dtype, resource, device; None: it can) and its slot variables.  Computed once
        per variable (a variable keeps its dtype, device and slots), so that a step costs no
        per-variable checks: eager steps repeat them every call."""
        cache = self.__dict__.get("_pyoptim_var_info")
        if cache is None:
            cache = {}
            object.__setattr__(self, "_pyoptim_var_info", cache)  # bookkeeping, not state
        key = self._var_key(variable)
        info = cache.get(key)
        if info is None:
            slots = self._slots(variable)
            info = cache[key] = (self._static_blocker(variable, slots), slots)
        return info

    def _static_blocker(self, variable: Any, slots: List[Any]) -> Optional[str]:
        dtype = tf.as_dtype(variable.dtype)
        if dtype not in _FAST_DTYPES:
            return f"its dtype is {dtype.name} (the kernels have float32 and float64)"
        strategy = tf.distribute.get_strategy()
        for v in [variable] + slots:
            # Each device's copy under a distribution strategy (the grouping runs in the
            # cross-replica context, where a mirrored variable has no single handle).
            for tv in strategy.experimental_local_results(_tf_variable(v)):
                if not resource_variable_ops.is_resource_variable(tv):
                    return f"{getattr(v, 'name', v)} is not a resource variable"
                device = getattr(tv, "device", "") or ""
                kind = tf.DeviceSpec.from_string(device).device_type if device else None
                if kind is not None and kind != "CPU":
                    return f"it is on {kind} (the op runs on CPU)"
                if kind is None and _gpu_devices_present():
                    return "it has no CPU placement while a GPU is present"
        return None

    def _weight_decay_operands(self, dtype: tf.DType, learning_rate: Any, decay: List[bool]
                               ) -> Tuple[tf.Tensor, tf.Tensor]:
        """``(lr, wd)`` as Keras' ``_apply_weight_decay`` casts them (zero wd when unused)."""
        lr = tf.cast(learning_rate, dtype)
        wd = tf.cast(self.weight_decay, dtype) if any(decay) else tf.zeros([], dtype)
        return lr, wd


# Ops Grappler removes or sees through, and producers it can merge with a following Mul.
_TRANSPARENT_OPS = {"Identity", "IdentityN", "Snapshot", "StopGradient", "Reshape", "Squeeze",
                    "ExpandDims", "Cast"}
_MERGEABLE_OPS = {"Mul", "MulNoNan", "RealDiv", "Div", "DivNoNan", "Xdivy", "Neg", "Reciprocal",
                  "Inv", "Square"}


def _grappler_may_merge_into(gradient: Any) -> bool:
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


def _cast(x: Any, dtype: tf.DType) -> Any:
    """``ops.cast(x, dtype)``, skipped when ``x`` already has ``dtype`` (a cast to the same dtype
    adds no op and changes no bit; skipping it saves eager calls)."""
    return x if getattr(x, "dtype", None) == dtype else ops.cast(x, dtype)


def _handle(v: Any) -> tf.Tensor:
    return _tf_variable(v).handle


def _cast(x: Any, dtype: tf.DType) -> Any:
    """``ops.cast(x, dtype)``, skipped when ``x`` already has ``dtype`` (a cast to the same dtype
    adds no op and changes no bit; skipping it saves eager calls)."""
    return x if getattr(x, "dtype", None) == dtype else ops.cast(x, dtype)


def _handle(v: Any) -> tf.Tensor:
    return _tf_variable(v).handle


def _handles(variables: Sequence[Any]) -> List[tf.Tensor]:
    return [_handle(v) for v in variables]


@keras.saving.register_keras_serializable(package="pyoptim")
class SGD(_FastPathMixin, keras.optimizers.SGD):
    """``keras.optimizers.SGD`` whose update runs pyoptim's C++ kernel (same arguments, same bits).

    Per element, with ``lr`` and ``momentum`` in the variable's dtype (after Keras' decoupled
    weight decay ``p = p - p * wd * lr``, in the same pass)::

        no momentum:  p = p - g * lr
        momentum:     m = m * momentum - g * lr;  p = p + m
        Nesterov:     m = m * momentum - g * lr;  p = p + (m * momentum - g * lr)
    """

    def _barrier_member(self, gradient: tf.Tensor) -> bool:
        # A control edge would give the gradient's producer a second consumer, and Grappler
        # then no longer merges it with the ``gradient * learning_rate`` below as it does in
        # Keras' graph (see _fused_update): such gradients stay out of the barrier.
        return not _grappler_may_merge_into(gradient)

    def _slots(self, variable):
        return [self.momentums[self._get_variable_index(variable)]] if self.momentum != 0 else []

    def _decay_fusable(self, distribution, gradient):
        # The op takes such a gradient pre-multiplied by lr (unit_lr) and so has no lr to decay.
        return not any(_grappler_may_merge_into(t)
                       for t in distribution.experimental_local_results(gradient))

    def _fused_update(self, op, variables, grads, learning_rate, decay, scalars):
        dtype = tf.as_dtype(variables[0].dtype)
        slots = [self._var_info(v)[1][0] for v in variables] if self.momentum != 0 else []
        # The same conversions as keras.optimizers.SGD.update_step.
        lr = ops.cast(learning_rate, dtype)
        momentum = ops.cast(self.momentum, dtype) if slots else tf.zeros([], dtype)
        unit_lr, cast_grads = [], []
        for gradient in grads:
            gradient = _cast(gradient, dtype)
            # Keras' gradient * learning_rate is the gradient's only consumer, so Grappler merges
            # it with a producing Mul (g * scale from global_clipnorm becomes g * (scale * lr))
            # or Div by a constant (loss scaling, accumulation: rewritten as a Mul first), which
            # rounds differently.  Build that same Mul node here, so that Grappler rewrites it
            # the same way, and let the kernel use lr = 1 for it (x * 1 == x exactly).
            merge = _grappler_may_merge_into(gradient)
            unit_lr.append(merge)
            cast_grads.append(ops.multiply(gradient, lr) if merge else gradient)
        _, wd = self._weight_decay_operands(dtype, learning_rate, decay)
        return op.pyoptim_apply_sgd(var=_handles(variables), momentum_buffer=_handles(slots),
                                    learning_rate=lr, momentum=momentum, weight_decay=wd,
                                    grad=cast_grads, nesterov=bool(self.nesterov), decay=decay,
                                    unit_lr=unit_lr)


@keras.saving.register_keras_serializable(package="pyoptim")
class RMSprop(_FastPathMixin, keras.optimizers.RMSprop):
    """``keras.optimizers.RMSprop`` whose update runs pyoptim's C++ kernel (same arguments, same
    bits).

    Per element, scalars in the variable's dtype (epsilon inside the square root, as Keras; after
    Keras' decoupled weight decay, in the same pass, outside ``tf.function``)::

        v = rho * v + (1 - rho) * g^2
        centered:  a = rho * a + (1 - rho) * g;  d = (v - a^2) + eps;  else d = v + eps
        inc = (lr * g) / sqrt(d)
        momentum:  mom = momentum * mom + inc;  p = p - mom;  else p = p - inc
    """

    def _slots(self, variable):
        index = self._get_variable_index(variable)
        return ([self._velocities[index]]
                + ([self._momentums[index]] if self.momentum > 0 else [])
                + ([self._average_gradients[index]] if self.centered else []))

    def _scalars(self):
        # Keras: ops.multiply(rho, v), ops.multiply(1 - rho, ...), + self.epsilon,
        # ops.multiply(self.momentum, mom): Python numbers meet tensors of the variable's dtype.
        return [self.rho, 1 - self.rho, self.epsilon, self.momentum if self.momentum > 0 else 0.0]

    def _rewrites(self) -> Optional[Tuple[bool, bool]]:
        # Inside tf.function Grappler rewrites Keras' expression; the op reproduces it.
        return _graph_rmsprop.rewrites(bool(self.centered))

    def _group_blocker(self, dtype):
        rewrites = self._rewrites()
        if rewrites is None:
            return ("centered RMSprop in a user's tf.function: Keras' graph arithmetic depends on "
                    "whether that function returns a value, unknown while tracing")
        rsqrt_mul, epsilon_first = rewrites
        if not (rsqrt_mul or epsilon_first) or _graph_rmsprop.in_self_test():
            return None
        if _graph_rmsprop.verified(dtype.name, bool(self.centered), rsqrt_mul, epsilon_first):
            return None
        return ("the op could not reproduce keras.optimizers.RMSprop's graph-mode arithmetic "
                "(Grappler's rsqrt rewrite) with this TensorFlow on this CPU")

    def _decay_fusable(self, distribution, gradient):
        # Keras' decay is a separate assignment; the op's graph-mode arithmetic takes none.
        return self._rewrites() == (False, False)

    def _fused_update(self, op, variables, grads, learning_rate, decay, scalars):
        dtype = tf.as_dtype(variables[0].dtype)
        slots = [self._var_info(v)[1] for v in variables]
        has_momentum, centered = self.momentum > 0, bool(self.centered)
        rsqrt_mul, epsilon_first = self._rewrites() or (False, False)
        rho, one_minus_rho, epsilon, momentum = scalars
        _, wd = self._weight_decay_operands(dtype, learning_rate, decay)
        lr = ops.cast(learning_rate, dtype)  # the update's and the decay's (the same value)
        return op.pyoptim_apply_rmsprop(
            var=_handles(variables),
            velocity=_handles([s[0] for s in slots]),
            momentum_buffer=_handles([s[1] for s in slots] if has_momentum else []),
            average_grad=_handles([s[-1] for s in slots] if centered else []),
            learning_rate=lr, rho=rho, one_minus_rho=one_minus_rho, epsilon=epsilon,
            momentum=momentum, weight_decay=wd, grad=[_cast(g, dtype) for g in grads],
            rsqrt_mul=rsqrt_mul, epsilon_first=epsilon_first, decay=decay)


@keras.saving.register_keras_serializable(package="pyoptim")
class Adam(_FastPathMixin, keras.optimizers.Adam):
    """``keras.optimizers.Adam`` whose update runs pyoptim's C++ kernel (same arguments, same bits).

    Once per step and dtype, with Keras' ops in the variable's dtype:
    ``alpha = lr * sqrt(1 - beta_2^t) / (1 - beta_1^t)``.  Per element (after Keras' decoupled
    weight decay ``p = p - p * wd * lr``, in the same pass)::

        m = m + (g - m) * (1 - beta_1)
        v = v + (g^2 - v) * (1 - beta_2)
        AMSGrad:  v_hat = max(v_hat, v), used instead of v below
        p = p - (m * alpha) / (sqrt(v) + eps)
    """

    def _slots(self, variable):
        index = self._get_variable_index(variable)
        return ([self._momentums[index], self._velocities[index]]
                + ([self._velocity_hats[index]] if self.amsgrad else []))

    def _scalars(self):
        # Keras: ops.multiply(..., 1 - self.beta_1), ops.add(..., self.epsilon).
        return [1 - self.beta_1, 1 - self.beta_2, self.epsilon]

    def _fused_update(self, op, variables, grads, learning_rate, decay, scalars):
        dtype = tf.as_dtype(variables[0].dtype)
        slots = [self._var_info(v)[1] for v in variables]
        # The same lines as keras.optimizers.Adam.update_step, once for the group.
        lr = ops.cast(learning_rate, dtype)
        local_step = ops.cast(self.iterations + 1, dtype)
        beta_1_power = ops.power(ops.cast(self.beta_1, dtype), local_step)
        beta_2_power = ops.power(ops.cast(self.beta_2, dtype), local_step)
        alpha = lr * ops.sqrt(1 - beta_2_power) / (1 - beta_1_power)
        one_minus_beta_1, one_minus_beta_2, epsilon = scalars
        decay_lr, wd = self._weight_decay_operands(dtype, learning_rate, decay)
        return op.pyoptim_apply_adam(
            var=_handles(variables), m=_handles([s[0] for s in slots]),
            v=_handles([s[1] for s in slots]),
            v_hat=_handles([s[2] for s in slots] if self.amsgrad else []),
            alpha=alpha, one_minus_beta_1=one_minus_beta_1, one_minus_beta_2=one_minus_beta_2,
            epsilon=epsilon, learning_rate=decay_lr, weight_decay=wd,
            grad=[_cast(g, dtype) for g in grads], decay=decay)


@keras.saving.register_keras_serializable(package="pyoptim")
class AdamW(Adam, keras.optimizers.AdamW):
    """``keras.optimizers.AdamW`` (Adam with decoupled weight decay, ``weight_decay=0.004`` by
    default) whose update, decay included, runs pyoptim's C++ kernel in one pass (same
    arguments, same bits).  Per element: ``p = p - p * wd * lr``, then Adam's update (see
    :class:`Adam`)."""


for _cls, _base in ((SGD, keras.optimizers.SGD), (RMSprop, keras.optimizers.RMSprop),
                    (Adam, keras.optimizers.Adam), (AdamW, keras.optimizers.AdamW)):
    if _base.__doc__:
        _cls.__doc__ = (_cls.__doc__ or "") + "\n    Keras' documentation:\n" + _base.__doc__
del _cls, _base
