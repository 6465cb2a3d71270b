"""``Adam8bit`` and ``AdamW8bit`` for Keras 3 (TensorFlow backend): Adam and AdamW whose ``m`` and
``v`` are kept in 8 bits, block-wise, and updated by pyoptim's C++ kernel (the NumPy core's
``pyoptim.Adam8bit`` kernel, ``csrc/pyoptim/adam8bit.hpp``) through the TensorFlow op
``PyoptimApplyAdam8bit``.

State per variable of ``min_8bit_size`` elements or more (slot variables, in Keras' naming)::

    momentum             int8 codes, the variable's shape      m = ((q * |q|) / 127^2) * scale
    velocity             uint8 codes, the variable's shape     v = ((q^2)^2 / 255^4) * scale
    velocity_hat         uint8 codes (amsgrad)
    momentum_scale       one scale per block of ``block_size`` elements: float32 (float64 for a
    velocity_scale       float64 variable), ceil(size / block_size) elements: the block's
    velocity_hat_scale   largest |value| (amsgrad)

about 2 bytes per element instead of Adam's 8 (3 with AMSGrad instead of 12).  A smaller variable
(biases, norms) keeps float m / v / v_hat of its dtype, as ``keras.optimizers.Adam``, with size-0
scale slots, and is updated by pyoptim's Adam op (``PyoptimApplyAdam``: ``pyoptim.Adam``'s
kernel) in the same step: a step is at most two op calls per dtype, whatever the number of
variables.

Per element, with ``alpha = lr * sqrt(1 - beta_2^t) / (1 - beta_1^t)`` computed once per step
and dtype with the TensorFlow ops Keras' Adam uses::

    (weight decay)  p = p - p * wd * lr           textbook order, eager and in tf.function alike
    m = m + (g - m) * (1 - beta_1)
    v = v + (g^2 - v) * (1 - beta_2)
    AMSGrad:  v_hat = max(v_hat, v), used instead of v below
    p = p - (m * alpha) / (sqrt(v) + eps)         the new m and v, before requantisation

then each block is requantised (see ``adam8bit.hpp``: a NaN or infinity makes its block's scale
NaN).  The results are ``pyoptim.Adam8bit``'s (NumPy) to the bit, parameters and every slot, for
the same gradients: the same kernels, the same scalars.  The Python hyperparameters (``beta_1``,
``beta_2``, ``epsilon``, ``weight_decay``) are rounded once from the double to the variable's
dtype, as NumPy's core does (Keras' ``ops.cast`` of a Python float goes through float32, which
would change float64 values).  The learning rate is Keras' own: a float32 variable (or the
schedule's float32 value), cast to the variable's dtype, so a float64 variable matches
``pyoptim.Adam8bit`` given that float32 value.  A sparse gradient (``tf.IndexedSlices``, an
Embedding's) is densified as Keras densifies it: ``g = S(g)`` and ``g^2 = S(g * g)`` (the slices
of a row summed in index order from +0.0, each squared before the sum for ``g^2``); the op checks
every index before it writes anything.

Counters: :func:`pyoptim.keras.kernel_calls` / :func:`pyoptim.keras.op_calls` count the 8-bit
variables under ``adam8bit`` and the small ones under ``adam``.  ``opt.is_8bit(variable)`` tells
which state a variable has.

There is no Keras fallback: ``keras.optimizers.Adam``'s ``update_step`` would read the codes as
moments.  Where the op cannot run (XLA / ``jit_compile=True``, a variable that is not on the CPU,
an op that could not be built or loaded) the update raises a ``RuntimeError`` naming the reason,
before anything is written; a float16 / bfloat16 variable is refused when the optimizer is built
(``TypeError``; mixed-precision policies keep variables float32).
"""
from __future__ import annotations

import math
from typing import Any, Callable, Dict, List, Optional, Sequence

import keras
import tensorflow as tf
from keras import ops

from ..optimizers_8bit import _block_size_arg, _min_8bit_size_arg  # one set of checks: NumPy's
from . import _loader
from .optimizers import (_FAST_DTYPES, _constant, _FastPathMixin, _gradient_barrier,
                         _gradient_operands, _operand, _tf_variable)

def _exact(value: Any, dtype: tf.DType) -> tf.Tensor:
    """A hyperparameter as a scalar of ``dtype``: a Python number rounded once from the double
    (``pyoptim.Adam8bit``'s C++ conversion; ``tf.cast`` of a Python float goes through float32,
    which changes float64 values), a tensor or variable cast."""
    converted = _operand(value, dtype)
    return converted if converted is not None else ops.cast(value, dtype)


def _slot_name(variable: Any, name: str) -> str:
    """Keras' optimizer-variable name for ``variable``'s slot ``name``
    (``BaseOptimizer.add_variable_from_reference``'s pattern)."""
    if hasattr(variable, "path"):
        return f"{variable.path.replace('/', '_')}_{name}"
    return f"{str(variable.name).replace('/', '_').replace(':', '_')}_{name}"


def _variable_name(variable: Any) -> str:
    return str(getattr(variable, "path", None) or variable.name).split(":")[0]


class _Adam8bitBase(_FastPathMixin):
    """The 8-bit pipeline: ``_FastPathMixin``'s grouping and coefficients, then per dtype group
    one ``PyoptimApplyAdam8bit`` op (the 8-bit variables) and one ``PyoptimApplyAdam`` op (the
    small ones).  Every reason the mixin would run Keras' own update for is an error here."""

    # -- construction ---------------------------------------------------------------------

    def _init_8bit(self, block_size: Any, min_8bit_size: Any) -> None:
        self._block_size = block_size
        self._min_8bit_size = min_8bit_size

    @property
    def block_size(self) -> int:
        """Elements per scale (a multiple of 32 from 32 to 4096); fixed at construction."""
        return self._block_size

    @property
    def min_8bit_size(self) -> int:
        """Variables with fewer elements keep float m / v (Adam's); fixed at construction."""
        return self._min_8bit_size

    def get_config(self):
        config = super().get_config()
        config.update({"block_size": self._block_size, "min_8bit_size": self._min_8bit_size})
        return config

    def build(self, var_list):
        """Keras' base variables (iterations, learning rate, EMA averages, gradient
        accumulators), then the slots in ``pyoptim.Adam8bit``'s order (which begins as
        ``keras.optimizers.Adam``'s): ``momentum``, ``velocity`` per variable, ``velocity_hat``
        per variable (AMSGrad), ``momentum_scale``, ``velocity_scale`` per variable,
        ``velocity_hat_scale`` per variable (AMSGrad)."""
        if self.built:
            return
        for variable in var_list:
            dtype = tf.as_dtype(variable.dtype)
            if dtype not in _FAST_DTYPES and not self._overwrite_variable_with_gradient(variable):
                raise TypeError(
                    f"pyoptim.keras.{type(self).__name__}: variable {_variable_name(variable)!r} "
                    f"has dtype {dtype.name}; the 8-bit optimizers serve float32 and float64 "
                    "variables (with mixed precision, keep the variables float32: "
                    "keras.mixed_precision policy 'mixed_float16' / 'mixed_bfloat16' does)")
        # Keras' Adam.build would make float m / v for every variable: the base build only.
        super(keras.optimizers.Adam, self).build(var_list)
        groups = [("momentum", "velocity"), ("velocity_hat",), ("momentum_scale", "velocity_scale"),
                  ("velocity_hat_scale",)]
        slots: Dict[str, List[Any]] = {name: [] for names in groups for name in names}
        for names in groups:
            if "velocity_hat" in names[0] and not self.amsgrad:
                continue
            for variable in var_list:
                for name in names:
                    slots[name].append(None if self._overwrite_variable_with_gradient(variable)
                                       else self._make_slot(variable, name))
        self._momentums = slots["momentum"]
        self._velocities = slots["velocity"]
        self._momentum_scales = slots["momentum_scale"]
        self._velocity_scales = slots["velocity_scale"]
        if self.amsgrad:
            self._velocity_hats = slots["velocity_hat"]
            self._velocity_hat_scales = slots["velocity_hat_scale"]

    def _make_slot(self, variable: Any, name: str) -> Any:
        size = math.prod(int(d) for d in variable.shape)
        dtype = tf.as_dtype(variable.dtype).name
        quantized = size >= self._min_8bit_size
        if name.endswith("_scale"):
            blocks = -(-size // self._block_size) if quantized else 0
            shape, layout = (blocks,), None
        else:
            shape, layout = tuple(variable.shape), getattr(variable, "_layout", None)
            if quantized:
                dtype = "int8" if name == "momentum" else "uint8"
        with self._distribution_strategy.extended.colocate_vars_with(_tf_variable(variable)):
            return self.add_variable(shape=shape, initializer="zeros", dtype=dtype,
                                     name=_slot_name(variable, name), layout=layout)

    def is_8bit(self, variable: Any) -> bool:
        """Whether ``variable`` (one this optimizer was built with) has 8-bit state (else
        float m / v: fewer than ``min_8bit_size`` elements)."""
        m = self._momentums[self._get_variable_index(variable)]
        return m is not None and tf.as_dtype(m.dtype) == tf.int8

    # -- no Keras fallback ----------------------------------------------------------------

    def _unavailable(self, reason: str, variable: Optional[str] = None) -> RuntimeError:
        what = f"variable {variable!r}" if variable else "the variables"
        return RuntimeError(
            f"pyoptim.keras.{type(self).__name__} cannot update {what}: {reason}. The 8-bit "
            "state is updated by pyoptim's TensorFlow op only (there is no Keras fallback: "
            "keras.optimizers.Adam would read the 8-bit codes as moments); run the step without "
            "XLA (jit_compile=False), with float32/float64 variables on the CPU, and see "
            "pyoptim.keras.status() for the op")

    def _fallback(self, reason, variable=None, count=1, warning_key=None):
        # The mixin calls this wherever it would run Keras' update_step: refuse, before
        # anything of the step is written.
        raise self._unavailable(reason, variable)

    def _apply_weight_decay(self, variables):
        if self.weight_decay is not None:
            reason = self._fast_path_blocker()
            if reason is not None:
                raise self._unavailable(reason)
        return super()._apply_weight_decay(variables)

    def update_step(self, gradient, variable, learning_rate):
        raise self._unavailable("Keras' per-variable update_step was called",
                                _variable_name(variable))

    # -- the pipeline's hooks ---------------------------------------------------------------

    def _slots(self, variable):
        index = self._get_variable_index(variable)
        slots = [self._momentums[index], self._velocities[index],
                 self._momentum_scales[index], self._velocity_scales[index]]
        if self.amsgrad:
            slots += [self._velocity_hats[index], self._velocity_hat_scales[index]]
        return slots

    def _scalars(self):
        # Keras: ops.multiply(..., 1 - self.beta_1), ops.add(..., self.epsilon).
        return [1 - self.beta_1, 1 - self.beta_2, self.epsilon]

    def _alpha(self, lr: tf.Tensor, dtype: tf.DType) -> tf.Tensor:
        """``lr * sqrt(1 - beta_2^t) / (1 - beta_1^t)`` with the ops of Keras' Adam.update_step
        (see :meth:`pyoptim.keras.Adam._alpha`), except that a Python ``beta`` is converted to
        ``dtype`` directly (one rounding from the double, as ``pyoptim.Adam8bit`` does) where
        Keras' ``ops.cast`` goes through float32: the same value for float32 variables, and
        NumPy's for float64 ones."""
        local_step = ops.cast(self.iterations + 1, dtype)
        beta_1_power = ops.power(_exact(self.beta_1, dtype), local_step)
        beta_2_power = ops.power(_exact(self.beta_2, dtype), local_step)
        return lr * ops.sqrt(1 - beta_2_power) / (1 - beta_1_power)

    def _run_group(self, distribution, group, pairs, learning_rate, scalars):
        op = _loader.load()
        grads = [g for g, _ in pairs]
        variables = [v for _, v in pairs]
        quantized = [self.is_8bit(v) for v in variables]
        self._pyoptim_stats().fast += len(pairs)

        def fused(first, others, grads, learning_rate):
            here = [first] + list(others)

            def handle_lists(positions: Sequence[int],
                             kinds: Sequence[int]) -> List[Optional[List[tf.Tensor]]]:
                # The op's resource input lists for the variables at `positions`, slot kinds
                # `kinds` (each list packed anew inside a graph: a packed list holds exactly
                # its op's variables).
                if group.handles is not None:
                    return [[h[i] for i in positions] for h in group.handles]
                return self._handle_lists([here[i] for i in positions], kinds)

            with self._after_all_gradients():
                return self._fused_update_8bit(op, group.dtype, handle_lists, list(grads),
                                               learning_rate, group.decay, scalars, quantized)

        distribution.extended.update(variables[0], fused,
                                     args=(variables[1:], grads, learning_rate), group=False)

    def _fused_update_8bit(self, op: Any, dtype: tf.DType,
                           handle_lists: Callable[[Sequence[int], Sequence[int]],
                                                  List[Optional[List[tf.Tensor]]]],
                           grads: List[Any], learning_rate: Any, decay: List[bool],
                           scalars: List[tf.Tensor], quantized: Sequence[bool]) -> List[Any]:
        lr = ops.cast(learning_rate, dtype)
        alpha = self._alpha(lr, dtype)
        one_minus_beta_1, one_minus_beta_2, epsilon = scalars
        # The textbook decay p - p * wd * lr, never Grappler's p - p * (wd * lr): the op computes
        # it inside itself.  wd converted as beta in _alpha.
        wd = _exact(self.weight_decay, dtype) if any(decay) else _constant(0.0, dtype)
        amsgrad = bool(self.amsgrad)
        results = []
        for eight_bit in (True, False):
            positions = [i for i, q in enumerate(quantized) if q == eight_bit]
            if not positions:
                continue

            def pick(items, positions=positions):
                return [items[i] for i in positions]

            # Each of the two ops also waits for the other one's gradients (graph mode), as the
            # pipeline makes every op wait for the gradients it does not take
            # (_gradient_barrier): the float op's variables (a Dense kernel) are still read by
            # the backward pass that computes the 8-bit variables' gradients (an Embedding's),
            # and updating them before that read ends makes TensorFlow copy them first.
            others = [g for i, g in enumerate(grads) if quantized[i] != eight_bit]
            barrier = _gradient_barrier(tf.distribute.get_strategy(), others, self._barrier_member)

            values, indices, sparse = _gradient_operands(pick(grads), dtype)
            common = dict(alpha=alpha, one_minus_beta_1=one_minus_beta_1,
                          one_minus_beta_2=one_minus_beta_2, epsilon=epsilon, learning_rate=lr,
                          weight_decay=wd, grad=values, indices=indices, sparse=sparse,
                          decay=pick(decay))
            # Slot kinds (_slots order): m, v, m_scale, v_scale[, v_hat, v_hat_scale]; the float
            # op takes no scales (handles[1 + kind]).
            kinds = (0, 1) + ((4,) if amsgrad else ())
            if eight_bit:
                kinds += (2, 3) + ((5,) if amsgrad else ())
            handles = handle_lists(positions, kinds)
            var, m, v = handles[0], handles[1], handles[2]
            with tf.control_dependencies(barrier):
                if eight_bit:
                    results.append(op.pyoptim_apply_adam8bit(
                        var=var, m=m, v=v, v_hat=handles[5] if amsgrad else [],
                        m_scale=handles[3], v_scale=handles[4],
                        v_hat_scale=handles[6] if amsgrad else [],
                        block_size=self._block_size, **common))
                else:
                    results.append(op.pyoptim_apply_adam(
                        var=var, m=m, v=v, v_hat=handles[5] if amsgrad else [], lazy=False,
                        **common))
        return results


@keras.saving.register_keras_serializable(package="pyoptim")
class Adam8bit(_Adam8bitBase, keras.optimizers.Adam):
    """Adam with 8-bit block-wise ``m`` and ``v``: ``keras.optimizers.Adam``'s arguments plus
    ``block_size`` (elements per scale: a multiple of 32 from 32 to 4096, default 256) and
    ``min_8bit_size`` (variables with fewer elements keep float ``m`` / ``v``, default 4096).
    The same bits as ``pyoptim.Adam8bit`` (NumPy) for the same gradients; see
    :mod:`pyoptim.keras.optimizers_8bit` for the state, the arithmetic and the errors.

    Needs the TensorFlow backend and pyoptim's op; Keras' options (clipping, EMA, gradient
    accumulation, loss scaling, learning-rate schedules, ``exclude_from_weight_decay``,
    ``tf.distribute`` strategies, saving) work as with ``keras.optimizers.Adam``.
    """

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7,
                 amsgrad=False, weight_decay=None, clipnorm=None, clipvalue=None,
                 global_clipnorm=None, use_ema=False, ema_momentum=0.99,
                 ema_overwrite_frequency=None, loss_scale_factor=None,
                 gradient_accumulation_steps=None, name=None, *, block_size=256,
                 min_8bit_size=4096, **kwargs):
        block_size = _block_size_arg(block_size)
        min_8bit_size = _min_8bit_size_arg(min_8bit_size)
        super().__init__(
            learning_rate=learning_rate, beta_1=beta_1, beta_2=beta_2, epsilon=epsilon,
            amsgrad=amsgrad, weight_decay=weight_decay, clipnorm=clipnorm, clipvalue=clipvalue,
            global_clipnorm=global_clipnorm, use_ema=use_ema, ema_momentum=ema_momentum,
            ema_overwrite_frequency=ema_overwrite_frequency, loss_scale_factor=loss_scale_factor,
            gradient_accumulation_steps=gradient_accumulation_steps, name=name, **kwargs)
        self._init_8bit(block_size, min_8bit_size)


@keras.saving.register_keras_serializable(package="pyoptim")
class AdamW8bit(Adam8bit, keras.optimizers.AdamW):
    """AdamW (decoupled weight decay ``p = p - p * wd * lr``, ``weight_decay=0.004`` by default,
    ``keras.optimizers.AdamW``'s arguments) with 8-bit block-wise ``m`` and ``v``: see
    :class:`Adam8bit` (``block_size``, ``min_8bit_size``).  The decay runs in the op's pass."""

    def __init__(self, learning_rate=0.001, weight_decay=0.004, beta_1=0.9, beta_2=0.999,
                 epsilon=1e-7, amsgrad=False, clipnorm=None, clipvalue=None,
                 global_clipnorm=None, use_ema=False, ema_momentum=0.99,
                 ema_overwrite_frequency=None, loss_scale_factor=None,
                 gradient_accumulation_steps=None, name=None, *, block_size=256,
                 min_8bit_size=4096, **kwargs):
        super().__init__(
            learning_rate=learning_rate, beta_1=beta_1, beta_2=beta_2, epsilon=epsilon,
            amsgrad=amsgrad, weight_decay=weight_decay, clipnorm=clipnorm, clipvalue=clipvalue,
            global_clipnorm=global_clipnorm, use_ema=use_ema, ema_momentum=ema_momentum,
            ema_overwrite_frequency=ema_overwrite_frequency, loss_scale_factor=loss_scale_factor,
            gradient_accumulation_steps=gradient_accumulation_steps, name=name,
            block_size=block_size, min_8bit_size=min_8bit_size, **kwargs)
