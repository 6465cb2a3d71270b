"""SGD, RMSprop and Adam for Keras 3 whose update runs pyoptim's C++ kernels.

Each class subclasses the matching ``keras.optimizers`` class and replaces only ``update_step``:
clipping, weight decay, EMA, gradient accumulation, loss scaling, learning-rate schedules,
distribution, slot variables, ``get_config`` and saving all stay Keras' own code.

``update_step`` computes the scalar coefficients with the TensorFlow ops Keras uses (in the
variable's dtype, e.g. Adam's ``alpha = lr * sqrt(1 - beta_2^t) / (1 - beta_1^t)`` with
``ops.power``), then calls one custom op that updates the variable and its slots in place with the
kernel from ``csrc/pyoptim/*.hpp`` (see ``_op/pyoptim_tf_ops.cc``).  The element-wise arithmetic is
Keras' own, operation by operation, so the results are the same bits.  Inside ``tf.function`` the
ops run after every gradient of the step is computed, so that no variable is copied before its
in-place update (see :func:`_gradient_barrier`).

Where the op cannot serve, ``update_step`` runs Keras' code instead (same numbers) and warns once:
inside XLA (``jit_compile=True``), sparse ``tf.IndexedSlices`` gradients (Embedding layers: Keras
squares slice values before scattering, which a dense kernel cannot reproduce with duplicate
indices), dtypes other than float32/float64, variables not on the CPU, a Keras backend other than
TensorFlow, or an op that failed to build or load.  ``opt.path_counts()`` and
:func:`pyoptim.keras.kernel_calls` tell which path ran.
"""
from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional, Tuple

import keras
import tensorflow as tf
from keras import ops

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
    """Shared decision logic: can the custom op serve this ``update_step``?"""

    def _barrier_member(self, gradient: tf.Tensor) -> bool:
        """Whether ``gradient`` may get a control edge to the barrier (see _gradient_barrier)."""
        return True

    def _distributed_tf_update_step(self, distribution, grads_and_vars, learning_rate):
        # Keras calls update_step for each variable from here (cross-replica context, one
        # thread); the kernels' ops wait for the barrier of all gradients.
        barrier = _gradient_barrier(distribution, [g for g, _ in grads_and_vars], self._barrier_member)
        previous = self.__dict__.get("_pyoptim_barrier")
        object.__setattr__(self, "_pyoptim_barrier", barrier)  # bookkeeping, not tracked state
        try:
            return super()._distributed_tf_update_step(distribution, grads_and_vars, learning_rate)
        finally:
            object.__setattr__(self, "_pyoptim_barrier", previous)

    def _after_all_gradients(self) -> Any:
        """Context for creating a kernel op: it runs after every gradient is computed."""
        barrier = self.__dict__.get("_pyoptim_barrier")
        return tf.control_dependencies([barrier] if barrier is not None else [])

    def _fast_op(self, gradient: Any, variable: Any, slots: List[Any],
                 scalars: Callable[[], List[Any]] = lambda: [],
                 check: Callable[[], Optional[str]] = lambda: None) -> Tuple[Any, List[tf.Tensor]]:
        """``(op module, scalar operands)`` if the kernels can update ``variable`` and ``slots``
        with ``gradient``, else ``(None, [])`` after recording and warning why.  ``scalars()``
        lists the Python hyperparameters the kernel takes, converted by :func:`_operand`;
        ``check()`` returns a further reason to fall back, or None."""
        reason = self._variable_blocker(gradient, variable, slots)
        if reason is not None:
            # Only this variable falls back; the warning names it (a TF variable's name without
            # its ":0").
            name = getattr(variable, "path", None) or str(getattr(variable, "name", variable))
            self._fallback(reason, name.split(":")[0])
            return None, []
        reason = self._fast_path_blocker()
        if reason is None:
            reason = check()
        converted: List[Optional[tf.Tensor]] = []
        if reason is None:
            dtype = tf.as_dtype(variable.dtype)
            try:
                converted = [_operand(x, dtype) for x in scalars()]
            except Exception:  # noqa: BLE001 - e.g. a callable hyperparameter: Keras decides
                converted = [None]
            if any(x is None for x in converted):
                reason = "a hyperparameter is not a scalar of the variable's dtype"
        if reason is not None:
            self._fallback(reason)
            return None, []
        self._pyoptim_stats().fast += 1
        return _loader.load(), converted

    def _fast_path_blocker(self) -> Optional[str]:
        """Why no variable of this update can take the kernels (None: they can)."""
        if keras.backend.backend() != "tensorflow":
            return f"the Keras backend is {keras.backend.backend()!r}, not 'tensorflow'"
        if _in_xla_context():
            return "the update is compiled with XLA (jit_compile=True)"
        if _loader.load() is None:
            return f"the TensorFlow op is unavailable: {_loader.error()}"
        return None

    def _variable_blocker(self, gradient: Any, variable: Any, slots: List[Any]) -> Optional[str]:
        """Why this one variable cannot take the kernels (None: it can)."""
        if isinstance(gradient, tf.IndexedSlices):
            return "its gradient is sparse (tf.IndexedSlices, e.g. from an Embedding layer)"
        dtype = tf.as_dtype(variable.dtype)
        if dtype not in _FAST_DTYPES:
            return f"its dtype is {dtype.name} (the kernels have float32 and float64)"
        for v in [variable] + slots:
            tv = _tf_variable(v)
            if not hasattr(tv, "handle"):
                return f"{getattr(v, 'name', v)} is not a resource variable"
            device = getattr(tv, "device", "") or ""
            kind = tf.DeviceSpec.from_string(device).device_type if device else None
            if kind is not None and kind != "CPU":
                return f"it is on {kind} (the op runs on CPU)"
            if kind is None and _gpu_devices_present():
                return "it has no CPU placement while a GPU is present"
        return None


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


def _handle(v: Any) -> tf.Tensor:
    return _tf_variable(v).handle


@keras.saving.register_keras_serializable(package="pyoptim")
class SGD(_FastPathMixin, keras.optimizers.SGD):
    """``keras.optimizers.SGD`` whose update runs pyoptim's C++ kernel (same arguments, same bits).

    Per element, with ``lr`` and ``momentum`` in the variable's dtype (weight decay is applied
    before by Keras)::

        no momentum:  p = p - g * lr
        momentum:     m = m * momentum - g * lr;  p = p + m
        Nesterov:     m = m * momentum - g * lr;  p = p + (m * momentum - g * lr)
    """

    def _barrier_member(self, gradient: tf.Tensor) -> bool:
        # A control edge would give the gradient's producer a second consumer, and Grappler
        # then no longer merges it with the ``gradient * learning_rate`` below as it does in
        # Keras' graph (see update_step): such gradients stay out of the barrier.
        return not _grappler_may_merge_into(gradient)

    def update_step(self, gradient, variable, learning_rate):
        """Update ``variable`` (and its momentum) in place with ``gradient``."""
        slots = [self.momentums[self._get_variable_index(variable)]] if self.momentum != 0 else []
        op, _ = self._fast_op(gradient, variable, slots)
        if op is None:
            return super().update_step(gradient, variable, learning_rate)
        # The same conversions as keras.optimizers.SGD.update_step.
        learning_rate = ops.cast(learning_rate, variable.dtype)
        gradient = ops.cast(gradient, variable.dtype)
        if slots:
            momentum = ops.cast(self.momentum, variable.dtype)
        else:
            momentum = tf.zeros([], variable.dtype)  # unused by the kernel
        if _grappler_may_merge_into(gradient):
            # Keras' gradient * learning_rate is the gradient's only consumer, so Grappler merges
            # it with a producing Mul (g * scale from global_clipnorm becomes g * (scale * lr))
            # or Div by a constant (loss scaling, accumulation: rewritten as a Mul first), which
            # rounds differently.  Build that same Mul node here, so that Grappler rewrites it
            # the same way, and give the kernel the product with lr = 1 (x * 1 == x exactly).
            # Costs one temporary tensor.
            gradient = ops.multiply(gradient, learning_rate)
            learning_rate = tf.ones([], variable.dtype)
        with self._after_all_gradients():
            return op.pyoptim_apply_sgd(
                var=_handle(variable),
                momentum_buffer=[_handle(m) for m in slots],
                learning_rate=learning_rate,
                momentum=momentum,
                grad=gradient,
                nesterov=bool(self.nesterov),
            )


@keras.saving.register_keras_serializable(package="pyoptim")
class RMSprop(_FastPathMixin, keras.optimizers.RMSprop):
    """``keras.optimizers.RMSprop`` whose update runs pyoptim's C++ kernel (same arguments, same
    bits).

    Per element, scalars in the variable's dtype (epsilon inside the square root, as Keras)::

        v = rho * v + (1 - rho) * g^2
        centered:  a = rho * a + (1 - rho) * g;  d = (v - a^2) + eps;  else d = v + eps
        inc = (lr * g) / sqrt(d)
        momentum:  mom = momentum * mom + inc;  p = p - mom;  else p = p - inc
    """

    def update_step(self, gradient, variable, learning_rate):
        """Update ``variable`` and its slots in place with ``gradient``."""
        index = self._get_variable_index(variable)
        velocity = self._velocities[index]
        momentum_slots = [self._momentums[index]] if self.momentum > 0 else []
        average_slots = [self._average_gradients[index]] if self.centered else []
        # Keras: ops.multiply(rho, v), ops.multiply(1 - rho, ...), + self.epsilon,
        # ops.multiply(self.momentum, mom): Python numbers meet tensors of the variable's dtype.
        # Inside tf.function Grappler rewrites Keras' expression; the op reproduces it.
        rewrites = _graph_rmsprop.rewrites(bool(self.centered))
        rsqrt_mul, epsilon_first = rewrites if rewrites is not None else (False, False)

        def check() -> Optional[str]:
            if rewrites is None:
                return ("centered RMSprop in a user's tf.function: Keras' graph arithmetic depends "
                        "on whether that function returns a value, unknown while tracing")
            if not (rsqrt_mul or epsilon_first) or _graph_rmsprop.in_self_test():
                return None
            dtype = tf.as_dtype(variable.dtype).name
            if _graph_rmsprop.verified(dtype, bool(self.centered), rsqrt_mul, epsilon_first):
                return None
            return ("the op could not reproduce keras.optimizers.RMSprop's graph-mode "
                    "arithmetic (Grappler's rsqrt rewrite) with this TensorFlow on this CPU")

        op, scalars = self._fast_op(
            gradient, variable, [velocity] + momentum_slots + average_slots,
            lambda: [self.rho, 1 - self.rho, self.epsilon,
                     self.momentum if momentum_slots else 0.0],
            check,
        )
        if op is None:
            return super().update_step(gradient, variable, learning_rate)
        lr = ops.cast(learning_rate, variable.dtype)
        gradient = ops.cast(gradient, variable.dtype)
        rho, one_minus_rho, epsilon, momentum = scalars
        with self._after_all_gradients():
            return op.pyoptim_apply_rmsprop(
                var=_handle(variable),
                velocity=_handle(velocity),
                momentum_buffer=[_handle(m) for m in momentum_slots],
                average_grad=[_handle(a) for a in average_slots],
                learning_rate=lr,
                rho=rho,
                one_minus_rho=one_minus_rho,
                epsilon=epsilon,
                momentum=momentum,
                grad=gradient,
                rsqrt_mul=rsqrt_mul,
                epsilon_first=epsilon_first,
            )


@keras.saving.register_keras_serializable(package="pyoptim")
class Adam(_FastPathMixin, keras.optimizers.Adam):
    """``keras.optimizers.Adam`` whose update runs pyoptim's C++ kernel (same arguments, same bits).

    Once per step, in the variable's dtype with Keras' ops:
    ``alpha = lr * sqrt(1 - beta_2^t) / (1 - beta_1^t)``.  Per element::

        m = m + (g - m) * (1 - beta_1)
        v = v + (g^2 - v) * (1 - beta_2)
        AMSGrad:  v_hat = max(v_hat, v), used instead of v below
        p = p - (m * alpha) / (sqrt(v) + eps)
    """

    def update_step(self, gradient, variable, learning_rate):
        """Update ``variable`` and its slots in place with ``gradient``."""
        index = self._get_variable_index(variable)
        m = self._momentums[index]
        v = self._velocities[index]
        v_hat_slots = [self._velocity_hats[index]] if self.amsgrad else []
        # Keras: ops.multiply(..., 1 - self.beta_1), ops.add(..., self.epsilon).
        op, scalars = self._fast_op(
            gradient, variable, [m, v] + v_hat_slots,
            lambda: [1 - self.beta_1, 1 - self.beta_2, self.epsilon],
        )
        if op is None:
            return super().update_step(gradient, variable, learning_rate)
        # The same lines as keras.optimizers.Adam.update_step.
        lr = ops.cast(learning_rate, variable.dtype)
        gradient = ops.cast(gradient, variable.dtype)
        local_step = ops.cast(self.iterations + 1, variable.dtype)
        beta_1_power = ops.power(ops.cast(self.beta_1, variable.dtype), local_step)
        beta_2_power = ops.power(ops.cast(self.beta_2, variable.dtype), local_step)
        alpha = lr * ops.sqrt(1 - beta_2_power) / (1 - beta_1_power)
        one_minus_beta_1, one_minus_beta_2, epsilon = scalars
        with self._after_all_gradients():
            return op.pyoptim_apply_adam(
                var=_handle(variable),
                m=_handle(m),
                v=_handle(v),
                v_hat=[_handle(x) for x in v_hat_slots],
                alpha=alpha,
                one_minus_beta_1=one_minus_beta_1,
                one_minus_beta_2=one_minus_beta_2,
                epsilon=epsilon,
                grad=gradient,
            )


for _cls, _base in ((SGD, keras.optimizers.SGD), (RMSprop, keras.optimizers.RMSprop),
                    (Adam, keras.optimizers.Adam)):
    if _base.__doc__:
        _cls.__doc__ = (_cls.__doc__ or "") + "\n    Keras' documentation:\n" + _base.__doc__
del _cls, _base
