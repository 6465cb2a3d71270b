"""Adadelta, Adagrad, Adamax, Ftrl, Lamb, Lion and Nadam for Keras 3, through pyoptim's
element-wise kernels.

Each class subclasses the matching ``keras.optimizers`` class and runs the same pipeline as
:mod:`pyoptim.keras.optimizers` (group the variables, the scalar coefficients once per step and
dtype, one op).  The op is the generic ``PyoptimApplyElementwise``: it takes the kernel's name
(a kernel header of ``csrc/pyoptim/``, listed in ``elementwise_kernels.hpp``), the variables,
their slots and the coefficients the header's arithmetic reads.  A class here gives only
``_kernel`` (the name), ``_slots`` (the slot variables, in the header's order) and
``_coefficients`` (Keras' own lines for the per-step scalars, in the variable's dtype).

Sparse gradients (``tf.IndexedSlices``): for Lion, Adamax and Nadam Keras only densifies the
gradient's element-wise terms (``S(g * (1 - beta_1))`` ...), which the op does per row in the
same pass; Adagrad's and Adadelta's Keras updates scatter into the rows present, and the op
does the same, in Keras' order (the kernel headers' ``sparse_row``).  Grappler's rewrite of
their division inside ``tf.function`` is the op's ``graph_rsqrt`` form (see
:mod:`pyoptim.keras._grappler`).  Ftrl's powers and Lamb's norms are TensorFlow's own Pow and
reduce_sum order, reproduced in the op (``csrc/pyoptim/tf_pow.hpp``, ``tf_reduce.hpp``); every
such emulation is checked against Keras on first use (``_self_check``).
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from . import _grappler
from .optimizers import _FastPathMixin, _gradient_operands


class _ElementwiseMixin(_FastPathMixin):
    """The fused update through ``PyoptimApplyElementwise``.  Subclasses give ``_kernel``,
    ``_slots(variable)``, ``_coefficients(dtype, lr, scalars)`` and, when Keras converts Python
    hyperparameters, ``_scalars()`` (see :class:`pyoptim.keras.optimizers._FastPathMixin`)."""

    _kernel: str = ""

    def _coefficients(self, dtype: tf.DType, lr: tf.Tensor, scalars: List[tf.Tensor]
                      ) -> List[tf.Tensor]:
        raise NotImplementedError

    _graph_rsqrt_form = False  # the kernel header's kGraphRsqrt

    def _form(self, dtype: tf.DType) -> int:
        """Which compile-time variant of the kernel runs (the header's ``kVariants``)."""
        return 0

    def _graph_rsqrt(self) -> bool:
        return self._graph_rsqrt_form and _grappler.rsqrt_rewrite()

    def _self_check(self, dtype: tf.DType) -> Optional[Tuple[type, type, Dict[str, Any]]]:
        """When this step's arithmetic emulates TensorFlow's own in a way that depends on its
        build (Grappler's rsqrt, TensorFlow's Pow): (pyoptim's class, Keras' class, arguments
        that run that arithmetic) for the first-use check (:func:`_grappler.verified_form`);
        None when there is nothing to check."""
        return None

    def _group_blocker(self, dtype):
        check = self._self_check(dtype)
        if check is None or _grappler.in_self_test():
            return None
        eager = tf.executing_eagerly()
        if _grappler.verified_form(*check, dtype.name, eager):
            return None
        return (f"the op could not reproduce keras.optimizers.{check[1].__name__}'s "
                f"{'eager' if eager else 'graph-mode'} arithmetic (TensorFlow's Rsqrt or Pow, "
                "Grappler's rewrites) with this TensorFlow on this CPU")

    def _fused_update(self, op, dtype, handles, grads, learning_rate, decay, scalars):
        lr = ops.cast(learning_rate, dtype)
        coefficients = self._coefficients(dtype, lr, scalars)
        decay_lr, wd = self._weight_decay_operands(dtype, lr, decay)
        values, indices, sparse = _gradient_operands(grads, dtype)
        return op.pyoptim_apply_elementwise(
            var=handles[0], slots=[h for slot in handles[1:] for h in slot],
            coefficients=coefficients, weight_decay=wd, decay_learning_rate=decay_lr,
            grad=values, indices=indices, optimizer=self._kernel, form=self._form(dtype),
            graph_rsqrt=self._graph_rsqrt(), sparse=sparse, decay=decay)


@keras.saving.register_keras_serializable(package="pyoptim")
class Adagrad(_ElementwiseMixin, keras.optimizers.Adagrad):
    """``keras.optimizers.Adagrad`` whose update runs pyoptim's C++ kernel (same arguments, same
    bits).  Per element, ``lr`` and ``epsilon`` in the variable's dtype (after Keras' decoupled
    weight decay ``p = p - p * wd * lr``, in the same pass)::

        acc = acc + g^2
        p = p - (lr * g) / sqrt(acc + eps)      (inside tf.function, as Grappler rewrites it:
                                                 (lr * g) * rsqrt(acc + eps))

    A sparse gradient (``tf.IndexedSlices``, an Embedding's) updates the rows present only, as
    Keras' scatters do: ``acc += g^2`` slice after slice, then ``p -= (lr * g) / sqrt(acc + eps)``
    slice after slice; the work is proportional to the rows present.
    """

    _kernel = "adagrad"

    def _slots(self, variable):
        return [self._accumulators[self._get_variable_index(variable)]]

    def _scalars(self):
        return [self.epsilon]  # ops.add(accumulator, self.epsilon)

    def _coefficients(self, dtype, lr, scalars):
        return [lr, scalars[0]]

    _graph_rsqrt_form = True

    def _self_check(self, dtype):
        if not self._graph_rsqrt():
            return None
        return Adagrad, keras.optimizers.Adagrad, {"learning_rate": 0.1}

    def _variable_blocker(self, gradient, variable):
        # Keras divides a sparse update by sqrt(acc + eps) gathered at the slices' rows, unless
        # sqrt(acc + eps) is 0 or NaN somewhere in the table (then it takes a union of rows):
        # with epsilon > 0 and a non-negative initial accumulator it never is 0.
        if (isinstance(gradient, tf.IndexedSlices)
                and not (self.epsilon > 0 and self.initial_accumulator_value >= 0)):
            return ("its gradient is sparse and epsilon <= 0 or initial_accumulator_value < 0 "
                    "(Keras then divides by zero outside the rows present)")
        return super()._variable_blocker(gradient, variable)


@keras.saving.register_keras_serializable(package="pyoptim")
class Adadelta(_ElementwiseMixin, keras.optimizers.Adadelta):
    """``keras.optimizers.Adadelta`` whose update runs pyoptim's C++ kernel (same arguments, same
    bits).  Per element, ``rho``, ``1 - rho``, ``epsilon`` and ``lr`` in the variable's dtype
    (after Keras' decoupled weight decay, in the same pass)::

        ag = rho * ag + (1 - rho) * g^2
        delta = -((sqrt(ad + eps) * g) / sqrt(ag + eps))     (inside tf.function, as Grappler
                                                             rewrites it: ... * rsqrt(ag + eps))
        ad = rho * ad + (1 - rho) * delta^2
        p = p + lr * delta

    A sparse gradient (``tf.IndexedSlices``), as Keras applies it: ``ag`` and ``ad`` change in
    every row, each slice's ``delta`` uses its row's ``sqrt(ad + eps)`` and ``sqrt(ag + eps)``,
    and ``p`` gets ``lr * delta`` slice after slice.
    """

    _kernel = "adadelta"

    def _slots(self, variable):
        index = self._get_variable_index(variable)
        return [self._accumulated_grads[index], self._accumulated_delta_vars[index]]

    def _scalars(self):
        # Keras: rho * accumulated_grad, ops.multiply(1 - rho, ...), ops.add(x, self.epsilon).
        return [self.rho, 1 - self.rho, self.epsilon]

    def _coefficients(self, dtype, lr, scalars):
        return [lr] + scalars

    _graph_rsqrt_form = True

    def _self_check(self, dtype):
        if not self._graph_rsqrt():
            return None
        return Adadelta, keras.optimizers.Adadelta, {"learning_rate": 1.0, "rho": 0.9}

    def _variable_blocker(self, gradient, variable):
        # Keras divides a sparse update by sqrt(ag + eps) gathered at the slices' rows, unless
        # it is 0 or NaN somewhere in the table; with epsilon > 0 it is never 0.
        if isinstance(gradient, tf.IndexedSlices) and not self.epsilon > 0:
            return ("its gradient is sparse and epsilon <= 0 (Keras then divides by zero "
                    "outside the rows present)")
        return super()._variable_blocker(gradient, variable)


@keras.saving.register_keras_serializable(package="pyoptim")
class Ftrl(_ElementwiseMixin, keras.optimizers.Ftrl):
    """``keras.optimizers.Ftrl`` whose update runs pyoptim's C++ kernel (same arguments, same
    bits, every variant: ``learning_rate_power``, ``l1`` / ``l2`` / ``l2_shrinkage``
    regularisation, ``beta``).  Once per step and dtype ``l2_reg = l2 + beta / (2 * lr)``; per
    element (after Keras' decoupled weight decay, in the same pass)::

        gtu = g + (2 * l2_shrinkage) * p;   na = acc + g^2
        linear = linear + (gtu - ((na^-lr_power - acc^-lr_power) / lr) * p)
        p = (clip(linear, -l1, l1) - linear) / (na^-lr_power / lr + 2 * l2_reg);   acc = na

    The powers are TensorFlow's Pow (Eigen's packet pow, bit for bit), or inside
    ``tf.function`` what Grappler makes of them (``sqrt`` for the default ``-0.5``; see
    :mod:`pyoptim.keras._grappler`).  A sparse gradient: Keras densifies ``g`` and ``g^2`` per
    row and every row is updated, as here.
    """

    _kernel = "ftrl"
    _FORMS = {None: 0, "sqrt": 1, "identity": 2, "square": 3, "cube": 4, "one": 5}

    def _slots(self, variable):
        index = self._get_variable_index(variable)
        return [self._accumulators[index], self._linears[index]]

    def _scalars(self):
        # Keras: ops.power(x, -lr_power), ops.multiply(2 * l2_shrinkage, variable),
        # ops.clip(linear, -l1, l1): Python numbers meeting tensors of the variable's dtype.
        l1 = self.l1_regularization_strength
        return [-self.learning_rate_power, 2 * self.l2_shrinkage_regularization_strength, l1, -l1]

    def _exponent(self, dtype: tf.DType) -> float:
        """``-learning_rate_power`` as Grappler sees the constant: in the variable's dtype."""
        return float(np.array(-self.learning_rate_power, dtype.as_numpy_dtype))

    def _form(self, dtype):
        return 2 * self._FORMS[_grappler.pow_rewrite(self._exponent(dtype))]

    def _self_check(self, dtype):
        if self._form(dtype) != 0:
            return None  # Grappler's exact rewrites (sqrt, x * x ...): nothing emulated
        kwargs = {"learning_rate": 0.05, "learning_rate_power": -0.6,
                  "l1_regularization_strength": 0.01, "l2_regularization_strength": 0.01,
                  "l2_shrinkage_regularization_strength": 0.01, "beta": 0.5}
        return Ftrl, keras.optimizers.Ftrl, kwargs

    def _coefficients(self, dtype, lr, scalars):
        exponent, shrinkage, l1, minus_l1 = scalars
        # keras.optimizers.Ftrl.update_step's lines.
        l2_reg = self.l2_regularization_strength
        l2_reg = l2_reg + self.beta / (2.0 * lr)
        return [lr, exponent, shrinkage, l1, minus_l1, 2 * l2_reg]


@keras.saving.register_keras_serializable(package="pyoptim")
class Lamb(_ElementwiseMixin, keras.optimizers.Lamb):
    """``keras.optimizers.Lamb`` whose update runs pyoptim's C++ kernel (same arguments, same
    bits).  Once per step and dtype ``1 - beta_1^t`` and ``1 - beta_2^t``; per element (after
    Keras' decoupled weight decay, in the same pass)::

        m = m + (g - m) * (1 - beta_1);   v = v + (g^2 - v) * (1 - beta_2)
        u = (m / (1 - beta_1^t)) / (sqrt(v / (1 - beta_2^t)) + eps)

    then per variable the trust ratio from ``w_norm = sqrt(sum(p^2))`` and
    ``g_norm = sqrt(sum(u^2))`` (``ratio = w_norm / g_norm`` when both are positive, else 1),
    and ``p = p - (ratio * lr) * u``.  The norms are computed inside the op, in TensorFlow's
    order (its ``reduce_sum``: the same shards for the same intra-op thread count, see
    ``pyoptim/keras/_op/tf_reduce.hpp``), and ``p^2`` is Keras' ``ops.power(p, 2)``:
    TensorFlow's Pow executing eagerly, ``p * p`` inside ``tf.function`` (Grappler).
    """

    _kernel = "lamb"

    def _slots(self, variable):
        index = self._get_variable_index(variable)
        return [self._momentums[index], self._velocities[index]]

    def _scalars(self):
        # Keras: ops.multiply(..., 1 - self.beta_1), ops.add(..., self.epsilon).
        return [1 - self.beta_1, 1 - self.beta_2, self.epsilon]

    def _form(self, dtype):
        return 2 if _grappler.pow_rewrite(2.0) == "square" else 0

    def _self_check(self, dtype):
        if self._form(dtype) != 0:
            return None
        return Lamb, keras.optimizers.Lamb, {"learning_rate": 0.5, "beta_1": 0.8}

    def _coefficients(self, dtype, lr, scalars):
        one_minus_beta_1, one_minus_beta_2, epsilon = scalars
        # keras.optimizers.Lamb.update_step's lines.
        local_step = ops.cast(self.iterations + 1, dtype)
        beta_1_power = ops.power(ops.cast(self.beta_1, dtype), local_step)
        beta_2_power = ops.power(ops.cast(self.beta_2, dtype), local_step)
        return [one_minus_beta_1, one_minus_beta_2, 1.0 - beta_1_power, 1.0 - beta_2_power,
                epsilon, lr]


@keras.saving.register_keras_serializable(package="pyoptim")
class Lion(_ElementwiseMixin, keras.optimizers.Lion):
    """``keras.optimizers.Lion`` whose update runs pyoptim's C++ kernel (same arguments, same
    bits).  Per element, ``beta_1``, ``beta_2`` and ``lr`` in the variable's dtype (after Keras'
    decoupled weight decay ``p = p - p * wd * lr``, in the same pass)::

        p = p - lr * sign(m * beta_1 + g * (1 - beta_1))
        m = m * beta_2 + g * (1 - beta_2)
    """

    _kernel = "lion"

    def _slots(self, variable):
        return [self._momentums[self._get_variable_index(variable)]]

    def _coefficients(self, dtype, lr, scalars):
        # keras.optimizers.Lion.update_step's lines.
        beta_1 = ops.cast(self.beta_1, dtype)
        beta_2 = ops.cast(self.beta_2, dtype)
        return [lr, beta_1, 1.0 - beta_1, beta_2, 1.0 - beta_2]


@keras.saving.register_keras_serializable(package="pyoptim")
class Adamax(_ElementwiseMixin, keras.optimizers.Adamax):
    """``keras.optimizers.Adamax`` whose update runs pyoptim's C++ kernel (same arguments, same
    bits).  Once per step and dtype ``1 - beta_1^t``; per element (after Keras' decoupled weight
    decay, in the same pass)::

        m = m + (g - m) * (1 - beta_1)
        u = max(beta_2 * u, |g|)
        p = p - (lr * m) / ((1 - beta_1^t) * (u + eps))
    """

    _kernel = "adamax"

    def _slots(self, variable):
        index = self._get_variable_index(variable)
        return [self._m[index], self._u[index]]

    def _scalars(self):
        # Keras: ops.multiply(..., 1 - self.beta_1), ops.multiply(self.beta_2, u),
        # ops.add(u, self.epsilon): Python numbers meet tensors of the variable's dtype.
        return [1 - self.beta_1, self.beta_2, self.epsilon]

    def _coefficients(self, dtype, lr, scalars):
        one_minus_beta_1, beta_2, epsilon = scalars
        local_step = ops.cast(self.iterations + 1, dtype)
        beta_1_power = ops.power(ops.cast(self.beta_1, dtype), local_step)
        return [lr, one_minus_beta_1, beta_2, 1 - beta_1_power, epsilon]


@keras.saving.register_keras_serializable(package="pyoptim")
class Nadam(_ElementwiseMixin, keras.optimizers.Nadam):
    """``keras.optimizers.Nadam`` whose update runs pyoptim's C++ kernel (same arguments, same
    bits).  Once per step and dtype, with Keras' ops: ``u_t``, ``u_t_1``, the running product
    ``u_product`` (Keras' variable, updated first) and ``1 - beta_2^t``; per element (after
    Keras' decoupled weight decay, in the same pass)::

        m = m + (g - m) * (1 - beta_1)
        v = v + (g^2 - v) * (1 - beta_2)
        m_hat = (u_t_1 * m) / (1 - u_product_t * u_t_1) + ((1 - u_t) * g) / (1 - u_product_t)
        p = p - (m_hat * lr) / (sqrt(v / (1 - beta_2^t)) + eps)
    """

    _kernel = "nadam"

    def _slots(self, variable):
        index = self._get_variable_index(variable)
        return [self._momentums[index], self._velocities[index]]

    def _scalars(self):
        return [self.epsilon]  # ops.add(ops.sqrt(v_hat), self.epsilon)

    def _backend_update_step(self, grads, trainable_variables, learning_rate):
        # keras.optimizers.Nadam's step: u_product first (its lines), then the update.
        self._update_u_product()
        return super()._backend_update_step(grads, trainable_variables, learning_rate)

    def _keras_backend_update_step(self, grads, trainable_variables, learning_rate):
        # Keras' step without Nadam's own u_product update (done above, once).
        return super(keras.optimizers.Nadam, self)._backend_update_step(
            grads, trainable_variables, learning_rate)

    def _update_u_product(self) -> None:
        dtype = self._u_product.dtype
        self.assign(
            self._u_product,
            self._u_product * self.beta_1
            * (1.0 - 0.5 * ops.power(0.96, ops.cast(self.iterations + 1, dtype))))

    def _coefficients(self, dtype, lr, scalars):
        # keras.optimizers.Nadam.update_step's lines.
        (epsilon,) = scalars
        local_step = ops.cast(self.iterations + 1, dtype)
        next_step = ops.cast(self.iterations + 2, dtype)
        decay = ops.cast(0.96, dtype)
        beta_1 = ops.cast(self.beta_1, dtype)
        beta_2 = ops.cast(self.beta_2, dtype)
        u_t = beta_1 * (1.0 - 0.5 * (ops.power(decay, local_step)))
        u_t_1 = beta_1 * (1.0 - 0.5 * (ops.power(decay, next_step)))
        u_product_t = ops.cast(self._u_product, dtype)
        u_product_t_1 = u_product_t * u_t_1
        beta_2_power = ops.power(beta_2, local_step)
        return [1 - beta_1, 1 - beta_2, u_t_1, 1 - u_product_t_1, 1 - u_t, 1 - u_product_t,
                1 - beta_2_power, lr, epsilon]


for _cls, _base in ((Adadelta, keras.optimizers.Adadelta), (Adagrad, keras.optimizers.Adagrad),
                    (Ftrl, keras.optimizers.Ftrl), (Lamb, keras.optimizers.Lamb),
                    (Lion, keras.optimizers.Lion),
                    (Adamax, keras.optimizers.Adamax),
                    (Nadam, keras.optimizers.Nadam)):
    if _base.__doc__:
        _cls.__doc__ = (_cls.__doc__ or "") + "\n    Keras' documentation:\n" + _base.__doc__
del _cls, _base
