"""Adadelta, Adagrad, Adamax, Ftrl, Lamb, Lion and Nadam: the NumPy API of the element-wise kernels
(csrc/pyoptim/elementwise.hpp).

Every optimizer here is one kernel header (csrc/pyoptim/<name>.hpp, listed in
elementwise_kernels.hpp), one class and, optionally, one functional wrapper.  The kernel does
the per-element arithmetic; the class computes the kernel's coefficients once per step and per
dtype, as NumPy scalars of that dtype in Keras' operation order, and passes them to the one
generic binding ``_core.elementwise_multi``.

Scalars as Keras' TensorFlow backend makes them (``T``: the variable's dtype; float32 for
float32, float16 and bfloat16 params, float64 for float64 params):

* ``ops.cast(x, T)`` of a Python float makes a float32 tensor first (``tf.cast``), so in
  float64 such a value is ``float64(float32(x))`` (:func:`_tf_cast`); the learning rate is a
  float32 variable, so the same holds for it;
* a Python float given straight to ``ops.multiply`` / ``ops.add`` (Adamax's ``1 - beta_1``,
  ``beta_2``, every ``epsilon``) is converted once: ``T(x)``;
* powers are ``std::pow`` on the scalars (NumPy's scalar ``**`` calls the same libm
  ``pow``/``powf``), and TensorFlow flushes subnormal results to zero (:func:`_ftz`).

Powers of whole tensors (Ftrl's ``acc ** -learning_rate_power``, Lamb's ``p ** 2``) are
TensorFlow's eager Pow, bit for bit (csrc/pyoptim/tf_pow.hpp: Eigen's packet pow on a tensor's
whole AVX packets, libm's on its last ``n % P`` elements), under TensorFlow's FTZ/DAZ; Lamb's
norms are ``tf.reduce_sum`` in TensorFlow's order (csrc/pyoptim/tf_reduce.hpp), which depends
on TensorFlow's intra-op thread count (:class:`Lamb`'s ``reduction_threads``).
"""
from __future__ import annotations

import math
import os
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from . import _core
from .optimizers import LearningRate, Optimizer, _is_real_number, _state_dtype

__all__ = ["Adadelta", "Adagrad", "Adamax", "Ftrl", "Lamb", "Lion", "Nadam", "adadelta_update",
           "adagrad_update", "adamax_update", "ftrl_update", "lamb_update", "lion_update",
           "nadam_update"]


# ------------------------------------------------------------------ Keras' scalars

def _ftz(x: np.floating) -> np.floating:
    """TensorFlow's CPU kernels flush subnormal results to zero (keeping the sign)."""
    T = type(x)
    if x != 0 and abs(x) < np.finfo(T).tiny:
        return T(0.0) * np.sign(x)
    return x


def _pow(base: np.floating, exponent: np.floating) -> np.floating:
    """TensorFlow's Pow on two scalars of one dtype: libm's pow/powf (NumPy's scalar ``**``
    calls it; NumPy's array ``power`` may use a SIMD approximation instead), subnormal
    results flushed to zero."""
    with np.errstate(all="ignore"):
        return _ftz(base ** exponent)


def _tf_cast(x: Any, T: type) -> np.floating:
    """``ops.cast(x, T)`` of a hyperparameter: a Python float (or int) becomes a float32 (int32)
    tensor first, a NumPy scalar keeps its own dtype."""
    if isinstance(x, np.generic):
        return T(x)
    if isinstance(x, bool):
        return T(int(x))
    if isinstance(x, int):
        return T(np.int32(x)) if -2**31 <= x < 2**31 else T(x)
    return T(np.float32(x))


def _lr(learning_rate: float, T: type) -> np.floating:
    """Keras' learning rate is a float32 variable, cast to the variable's dtype."""
    return T(np.float32(learning_rate))


# ------------------------------------------------------------------ argument checks

def _real(name: str, value: Any) -> float:
    if not _is_real_number(value):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__} {value!r}")
    return float(value)


def _finite(name: str, value: Any) -> None:
    if not math.isfinite(_real(name, value)):
        raise ValueError(f"{name} must be finite, got {value!r}")


def _in_range(name: str, value: Any, low_open: bool, high_open: bool) -> None:
    x = _real(name, value)
    ok = (x > 0 if low_open else x >= 0) and (x < 1 if high_open else x <= 1)
    if not ok:
        interval = ("(" if low_open else "[") + "0, 1" + (")" if high_open else "]")
        raise ValueError(f"{name} must be in {interval}, got {value!r}")


def _nonnegative(name: str, value: Any) -> None:
    x = _real(name, value)
    if not (math.isfinite(x) and x >= 0):
        raise ValueError(f"{name} must be finite and >= 0, got {value!r}")


def _check_common(learning_rate: Any, weight_decay: Any, schedule_allowed: bool = False) -> None:
    if not (schedule_allowed and callable(learning_rate)):
        _finite("learning_rate", learning_rate)
    if weight_decay is not None:
        _finite("weight_decay", weight_decay)


def _check_lion(beta_1: Any, beta_2: Any) -> None:
    _real("beta_1", beta_1)
    if beta_1 <= 0 or beta_1 > 1:
        # keras.optimizers.Lion's own check and message.
        raise ValueError(
            "Argument `beta_1` must be in the [0, 1] range. Otherwise, the "
            f"optimizer degenerates to SignSGD. Received: beta_1={beta_1}."
        )
    _in_range("beta_2", beta_2, False, False)


def _check_adam_like(beta_1: Any, beta_2: Any, epsilon: Any) -> None:
    # As pyoptim.Adam (Keras' Adamax and Nadam do not check their arguments).
    _in_range("beta_1", beta_1, False, True)
    _in_range("beta_2", beta_2, False, True)
    _nonnegative("epsilon", epsilon)


def _check_adagrad(initial_accumulator_value: Any, epsilon: Any) -> None:
    # Keras' Adagrad does not check its arguments; NaN and infinities are refused here.
    _finite("initial_accumulator_value", initial_accumulator_value)
    _nonnegative("epsilon", epsilon)


def _check_adadelta(rho: Any, epsilon: Any) -> None:
    _in_range("rho", rho, False, False)
    _nonnegative("epsilon", epsilon)


_FTRL_ARGS = ("learning_rate_power", "initial_accumulator_value", "l1_regularization_strength",
              "l2_regularization_strength", "l2_shrinkage_regularization_strength", "beta")


def _check_ftrl(learning_rate_power: Any, initial_accumulator_value: Any, l1: Any, l2: Any,
                l2_shrinkage: Any, beta: Any) -> None:
    values = (learning_rate_power, initial_accumulator_value, l1, l2, l2_shrinkage, beta)
    for name, value in zip(_FTRL_ARGS, values):
        _finite(name, value)
    # keras.optimizers.Ftrl's own checks and messages.
    if initial_accumulator_value < 0.0:
        raise ValueError(
            "`initial_accumulator_value` needs to be positive or zero. "
            f"Received: initial_accumulator_value={initial_accumulator_value}."
        )
    if learning_rate_power > 0.0:
        raise ValueError(
            "`learning_rate_power` needs to be negative or zero. Received: "
            f"learning_rate_power={learning_rate_power}."
        )
    if l1 < 0.0:
        raise ValueError(
            "`l1_regularization_strength` needs to be positive or zero. "
            f"Received: l1_regularization_strength={l1}."
        )
    if l2 < 0.0:
        raise ValueError(
            "`l2_regularization_strength` needs to be positive or zero. "
            f"Received: l2_regularization_strength={l2}."
        )
    if l2_shrinkage < 0.0:
        raise ValueError(
            "`l2_shrinkage_regularization_strength` needs to be positive "
            f"or zero. Received: l2_shrinkage_regularization_strength={l2_shrinkage}."
        )


def _check_reduction_threads(reduction_threads: Any) -> None:
    if reduction_threads is None:
        return
    if isinstance(reduction_threads, (bool, np.bool_)) or not isinstance(reduction_threads, (int, np.integer)):
        raise TypeError(f"reduction_threads must be None or an int, got {type(reduction_threads).__name__}")
    if reduction_threads < 1:
        raise ValueError(f"reduction_threads must be None or an int >= 1, got {reduction_threads!r}")


def _resolve_reduction_threads(reduction_threads: Optional[int]) -> int:
    """TensorFlow's default intra-op thread count when None: the CPUs this process may run on
    (tf.config.threading.get_intra_op_parallelism_threads() == 0 resolves to it)."""
    if reduction_threads is not None:
        return int(reduction_threads)
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not Linux
        return max(1, os.cpu_count() or 1)


def _check_step(step: Any) -> int:
    if isinstance(step, (bool, np.bool_)) or not isinstance(step, (int, np.integer)):
        raise TypeError(f"step must be an integer, got {type(step).__name__}")
    if step < 1:
        raise ValueError(f"step must be the 1-based count of this update, got {step!r}")
    return int(step)


# ------------------------------------------------------------------ coefficients
# Each returns the kernel's coefficients in its header's order, NumPy scalars of dtype T.

def _lion_coefficients(T: type, learning_rate: float, beta_1: Any, beta_2: Any) -> Tuple:
    """lion.hpp: lr, beta_1, 1 - beta_1, beta_2, 1 - beta_2 (betas cast first, then combined)."""
    lr = _lr(learning_rate, T)
    b1, b2 = _tf_cast(beta_1, T), _tf_cast(beta_2, T)
    return (lr, b1, T(1.0) - b1, b2, T(1.0) - b2)


def _adamax_coefficients(T: type, learning_rate: float, beta_1: Any, beta_2: Any, epsilon: Any,
                         step: int) -> Tuple:
    """adamax.hpp: lr, 1 - beta_1 (the Python value, converted once), beta_2, 1 - beta_1^t,
    epsilon."""
    lr = _lr(learning_rate, T)
    local_step = T(step)
    beta_1_power = _pow(_tf_cast(beta_1, T), local_step)
    return (lr, T(1 - beta_1), T(beta_2), T(1) - beta_1_power, T(epsilon))


def _nadam_u_product(u_product: np.floating, beta_1: Any, step: int) -> np.floating:
    """Keras' Nadam._backend_update_step, in u_product's dtype D, before the step's updates:
    ``u_product * beta_1 * (1.0 - 0.5 * 0.96 ** D(step))`` (Python floats converted to D
    directly, as ops.multiply / ops.power convert them)."""
    D = type(u_product)
    with np.errstate(all="ignore"):
        power = _pow(D(0.96), D(step))
        factor = _ftz(D(1.0) - _ftz(D(0.5) * power))
        return _ftz(_ftz(u_product * D(beta_1)) * factor)


def _nadam_coefficients(T: type, learning_rate: float, beta_1: Any, beta_2: Any, epsilon: Any,
                        step: int, u_product: np.floating) -> Tuple:
    """nadam.hpp: 1 - beta_1, 1 - beta_2, u_t_1, 1 - u_product_t_1, 1 - u_t, 1 - u_product_t,
    1 - beta_2^t, lr, epsilon (Keras' Nadam.update_step; u_product: this step's, already
    updated)."""
    lr = _lr(learning_rate, T)
    local_step, next_step = T(step), T(step + 1)
    decay = _tf_cast(0.96, T)
    b1, b2 = _tf_cast(beta_1, T), _tf_cast(beta_2, T)
    with np.errstate(all="ignore"):
        u_t = b1 * (T(1.0) - T(0.5) * _pow(decay, local_step))
        u_t_1 = b1 * (T(1.0) - T(0.5) * _pow(decay, next_step))
        u_product_t = T(u_product)
        u_product_t_1 = u_product_t * u_t_1
        beta_2_power = _pow(b2, local_step)
        return (T(1) - b1, T(1) - b2, u_t_1, T(1) - u_product_t_1, T(1) - u_t, T(1) - u_product_t,
                T(1) - beta_2_power, lr, T(epsilon))


def _adagrad_coefficients(T: type, learning_rate: float, epsilon: Any) -> Tuple:
    """adagrad.hpp: lr, epsilon (ops.add(accumulator, self.epsilon): converted once)."""
    return (_lr(learning_rate, T), T(epsilon))


def _adadelta_coefficients(T: type, learning_rate: float, rho: Any, epsilon: Any) -> Tuple:
    """adadelta.hpp: lr, rho, 1 - rho, epsilon (Python floats meeting tensors: converted once)."""
    return (_lr(learning_rate, T), T(rho), T(1 - rho), T(epsilon))


def _ftrl_coefficients(T: type, learning_rate: float, learning_rate_power: Any, l1: Any, l2: Any,
                       l2_shrinkage: Any, beta: Any) -> Tuple:
    """ftrl.hpp: lr, -learning_rate_power, 2 * l2_shrinkage, l1, the lower clip bound, 2 * l2_reg
    with keras.optimizers.Ftrl.update_step's ``l2_reg = l2 + beta / (2.0 * lr)`` (tensor
    arithmetic in T, each Python number converted once where it meets a tensor).

    The lower clip bound is ``-l1`` converted to T, except for l1 == 0: Keras passes the Python
    float ``-0.0`` to tf.clip_by_value, and executing eagerly TensorFlow's scalar cache (keyed
    by value: -0.0 == 0.0) hands back the +0.0 tensor it made earlier for another 0.0 (Keras
    converts one on every step), so the bound is +0.0 (checked against Keras: with -0.0 the
    packet lanes of a linear of -0.0 differ)."""
    lr = _lr(learning_rate, T)
    with np.errstate(all="ignore"):
        l2_reg = _ftz(T(l2) + _ftz(T(beta) / _ftz(T(2.0) * lr)))
        minus_l1 = T(0.0) if l1 == 0 else T(-l1)
        return (lr, T(-learning_rate_power), T(2 * l2_shrinkage), T(l1), minus_l1,
                _ftz(T(2) * l2_reg))


def _lamb_coefficients(T: type, learning_rate: float, beta_1: Any, beta_2: Any, epsilon: Any,
                       step: int) -> Tuple:
    """lamb.hpp: 1 - beta_1, 1 - beta_2 (the Python values, converted once), 1 - beta_1^t,
    1 - beta_2^t (the betas cast first), epsilon, lr."""
    local_step = T(step)
    beta_1_power = _pow(_tf_cast(beta_1, T), local_step)
    beta_2_power = _pow(_tf_cast(beta_2, T), local_step)
    with np.errstate(all="ignore"):
        return (T(1 - beta_1), T(1 - beta_2), T(1.0) - beta_1_power, T(1.0) - beta_2_power,
                T(epsilon), _lr(learning_rate, T))


def _dtypes_needed(params: Sequence[Any], grads: Sequence[Any]) -> Tuple[bool, bool]:
    """(any float32-arithmetic tensor, any float64 tensor) among those with a gradient."""
    need32 = need64 = False
    for p, g in zip(params, grads):
        if g is None:
            continue
        if isinstance(p, np.ndarray) and p.dtype == np.float64:
            need64 = True
        else:
            need32 = True
    return need32, need64


def _decay(weight_decay: Optional[float], learning_rate: float, T: type, needed: bool):
    """Keras' _apply_weight_decay scalars: wd and lr cast to the variable's dtype."""
    if weight_decay is None or not needed:
        return None
    return (_tf_cast(weight_decay, T), _lr(learning_rate, T))


# ------------------------------------------------------------------ the classes

class _Elementwise(Optimizer):
    """What every element-wise optimizer shares: the call of ``_core.elementwise_multi``.

    A subclass gives ``_kernel`` (its name in ``_core.elementwise_kernels()``), its slots
    (``_slot_names``, ``_variable_groups``), ``_check_hyperparameters()`` and
    ``_coefficients(T, learning_rate, step)`` (the kernel's coefficients, NumPy scalars of
    dtype ``T``, in Keras' operation order)."""

    _kernel: str = ""
    _slots_in_order: Tuple[str, ...] = ()
    _variant: int = 0  # the kernel's variant: 0, Keras' eager arithmetic
    # Slots that start at a hyperparameter's value instead of zeros: {slot: attribute}.
    _initial_values: Dict[str, str] = {}

    @property
    def _slot_names(self) -> Tuple[str, ...]:
        return self._slots_in_order

    def _check_hyperparameters(self) -> None:
        raise NotImplementedError

    def _coefficients(self, T: type, learning_rate: float, step: int) -> Tuple:
        raise NotImplementedError

    def _update(self, params, grads, slots, learning_rate, step, no_decay) -> None:
        need32, need64 = _dtypes_needed(params, grads)
        self._run(params, grads, slots, learning_rate, step, no_decay, need32, need64)

    def _reduction_threads(self) -> int:
        return 1

    def _run(self, params, grads, slots, learning_rate, step, no_decay, need32, need64) -> None:
        _core.elementwise_multi(
            self._kernel, params, grads, [slots[n] for n in self._slot_names],
            self._coefficients(np.float32, learning_rate, step) if need32 else None,
            self._coefficients(np.float64, learning_rate, step) if need64 else None,
            _decay(self.weight_decay, learning_rate, np.float32, need32),
            _decay(self.weight_decay, learning_rate, np.float64, need64),
            no_decay, self._variant, self._reduction_threads(),
        )

    def _new_slots(self, params):
        slots = super()._new_slots(params)
        for name, attr in self._initial_values.items():
            value = getattr(self, attr)
            for a in slots[name]:
                if isinstance(a, np.ndarray):
                    # Keras' initializers.Constant: ops.cast(value, dtype), i.e. through
                    # float32 for a Python float (float64 state: float64(float32(value))).
                    a.fill(_tf_cast(value, a.dtype.type))
        return slots

    def _check(self) -> None:
        _check_common(self._learning_rate, self.weight_decay, schedule_allowed=True)
        self._check_hyperparameters()
        super()._check()  # the binding's own checks, on empty arrays


class Lion(_Elementwise):
    """Lion, as keras.optimizers.Lion (one slot, ``momentums``)::

        p = p - lr * sign(m * beta_1 + g * (1 - beta_1))
        m = m * beta_2 + g * (1 - beta_2)

    (after Keras' decoupled weight decay ``p = p - p * weight_decay * lr``).  ``beta_1`` must
    be in (0, 1] (Keras' check), ``beta_2`` in [0, 1].
    """

    _kernel = "lion"
    _slots_in_order = ("momentums",)
    _variable_groups = (("momentums",),)
    _hyper_names = Optimizer._hyper_names + ("beta_1", "beta_2")

    def __init__(
        self,
        learning_rate: LearningRate = 0.001,
        beta_1: float = 0.9,
        beta_2: float = 0.99,
        weight_decay: Optional[float] = None,
        clipnorm: Optional[float] = None,
        clipvalue: Optional[float] = None,
        global_clipnorm: Optional[float] = None,
        name: str = "Lion",
    ) -> None:
        super().__init__(learning_rate, weight_decay, clipnorm, clipvalue, global_clipnorm, name)
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self._finish_init()

    def _check_hyperparameters(self) -> None:
        _check_lion(self.beta_1, self.beta_2)

    def _coefficients(self, T, learning_rate, step):
        return _lion_coefficients(T, learning_rate, self.beta_1, self.beta_2)

    def get_config(self) -> Dict[str, Any]:
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2}


class Adamax(_Elementwise):
    """Adamax, as keras.optimizers.Adamax (slots ``momentums`` (m) and ``norms`` (u))::

        m = m + (g - m) * (1 - beta_1)
        u = maximum(beta_2 * u, |g|)                     (NaN propagates)
        p = p - (lr * m) / ((1 - beta_1**t) * (u + epsilon))
    """

    _kernel = "adamax"
    _slots_in_order = ("momentums", "norms")
    _variable_groups = (("momentums", "norms"),)
    _hyper_names = Optimizer._hyper_names + ("beta_1", "beta_2", "epsilon")

    def __init__(
        self,
        learning_rate: LearningRate = 0.001,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-07,
        weight_decay: Optional[float] = None,
        clipnorm: Optional[float] = None,
        clipvalue: Optional[float] = None,
        global_clipnorm: Optional[float] = None,
        name: str = "Adamax",
    ) -> None:
        super().__init__(learning_rate, weight_decay, clipnorm, clipvalue, global_clipnorm, name)
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self._finish_init()

    def _check_hyperparameters(self) -> None:
        _check_adam_like(self.beta_1, self.beta_2, self.epsilon)

    def _coefficients(self, T, learning_rate, step):
        return _adamax_coefficients(T, learning_rate, self.beta_1, self.beta_2, self.epsilon, step)

    def get_config(self) -> Dict[str, Any]:
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2,
                "epsilon": self.epsilon}


class Nadam(_Elementwise):
    """Nadam, as keras.optimizers.Nadam (slots ``momentums`` and ``velocities``, plus Keras'
    scalar ``u_product``)::

        (once per step, before the updates)
        u_product = u_product * beta_1 * (1 - 0.5 * 0.96**t)
        u_t = beta_1 * (1 - 0.5 * 0.96**t);  u_t_1 = beta_1 * (1 - 0.5 * 0.96**(t+1))
        m = m + (g - m) * (1 - beta_1);  v = v + (g**2 - v) * (1 - beta_2)
        m_hat = (u_t_1 * m) / (1 - u_product * u_t_1) + ((1 - u_t) * g) / (1 - u_product)
        v_hat = v / (1 - beta_2**t)
        p = p - (m_hat * lr) / (sqrt(v_hat) + epsilon)

    ``u_product`` is kept, as in Keras, in the first parameter's dtype (float32 for float16
    and bfloat16 parameters, whose arithmetic is float32 here), is in :meth:`state_dict` and
    is the last of :attr:`variables`.  A step whose gradients are all None leaves it alone,
    as in Keras.
    """

    _kernel = "nadam"
    _slots_in_order = ("momentums", "velocities")
    _variable_groups = (("momentums", "velocities"),)
    _hyper_names = Optimizer._hyper_names + ("beta_1", "beta_2", "epsilon")

    def __init__(
        self,
        learning_rate: LearningRate = 0.001,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-07,
        weight_decay: Optional[float] = None,
        clipnorm: Optional[float] = None,
        clipvalue: Optional[float] = None,
        global_clipnorm: Optional[float] = None,
        name: str = "Nadam",
    ) -> None:
        super().__init__(learning_rate, weight_decay, clipnorm, clipvalue, global_clipnorm, name)
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self._u_product: Optional[np.floating] = None  # created with the slots
        self._step_u_product: Optional[np.floating] = None
        self._finish_init()

    @property
    def u_product(self) -> Optional[float]:
        """Keras' running product of the momentum schedule (None before the first apply)."""
        return None if self._u_product is None else float(self._u_product)

    def _check_hyperparameters(self) -> None:
        _check_adam_like(self.beta_1, self.beta_2, self.epsilon)

    def _coefficients(self, T, learning_rate, step):
        u = self._step_u_product if self._step_u_product is not None else np.float32(1.0)
        return _nadam_coefficients(T, learning_rate, self.beta_1, self.beta_2, self.epsilon, step, u)

    def _update(self, params, grads, slots, learning_rate, step, no_decay) -> None:
        need32, need64 = _dtypes_needed(params, grads)
        current = self._u_product
        if current is None:  # built now: Keras' u_product = 1.0 in the first param's dtype
            first = params[0] if params and isinstance(params[0], np.ndarray) else np.empty(0, np.float32)
            current = _state_dtype(first).type(1.0)
        if not (need32 or need64):
            self._u_product = current  # Keras: no gradient, no update step
            return
        self._step_u_product = _nadam_u_product(current, self.beta_1, step)
        try:
            self._run(params, grads, slots, learning_rate, step, no_decay, need32, need64)
        finally:
            new, self._step_u_product = self._step_u_product, None
        self._u_product = new

    def _check(self) -> None:
        saved = self._u_product
        try:
            super()._check()
        finally:
            self._u_product = saved

    @property
    def variables(self) -> List[np.ndarray]:
        """As :attr:`Optimizer.variables`, then (once built) ``u_product`` as a 0-d array, where
        keras.optimizers.Nadam lists it."""
        out = super().variables
        if self._slots is not None and self._u_product is not None:
            a = np.array(self._u_product)
            a.flags.writeable = False
            out.append(a)
        return out

    def state_dict(self) -> Dict[str, Any]:
        state = super().state_dict()
        state["u_product"] = None if self._u_product is None else type(self._u_product)(self._u_product)
        return state

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        u = state.get("u_product") if isinstance(state, dict) else None
        if u is not None and not (isinstance(u, (np.float32, np.float64))
                                  or (isinstance(u, np.ndarray) and u.ndim == 0
                                      and u.dtype in (np.float32, np.float64))):
            raise TypeError(f"state['u_product'] must be None or a float32/float64 NumPy scalar, got {u!r}")
        if u is None and isinstance(state, dict) and state.get("slots") is not None:
            raise ValueError("state['u_product'] is missing: a built Nadam's state has one")
        super().load_state_dict(state)
        self._u_product = None if u is None or self._slots is None else np.asarray(u)[()]

    def get_config(self) -> Dict[str, Any]:
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2,
                "epsilon": self.epsilon}


class Adagrad(_Elementwise):
    """Adagrad, as keras.optimizers.Adagrad (one slot, ``accumulators``, starting at
    ``initial_accumulator_value`` as Keras' ``initializers.Constant`` makes it: in float64
    state ``float64(float32(value))``)::

        acc = acc + g**2
        p = p - (lr * g) / sqrt(acc + epsilon)

    (after Keras' decoupled weight decay ``p = p - p * weight_decay * lr``).  The arithmetic is
    Keras' eager arithmetic (inside ``tf.function`` Grappler rewrites the division; see
    :class:`pyoptim.keras.Adagrad`)."""

    _kernel = "adagrad"
    _slots_in_order = ("accumulators",)
    _variable_groups = (("accumulators",),)
    _initial_values = {"accumulators": "initial_accumulator_value"}
    _hyper_names = Optimizer._hyper_names + ("initial_accumulator_value", "epsilon")

    def __init__(
        self,
        learning_rate: LearningRate = 0.001,
        initial_accumulator_value: float = 0.1,
        epsilon: float = 1e-07,
        weight_decay: Optional[float] = None,
        clipnorm: Optional[float] = None,
        clipvalue: Optional[float] = None,
        global_clipnorm: Optional[float] = None,
        name: str = "Adagrad",
    ) -> None:
        super().__init__(learning_rate, weight_decay, clipnorm, clipvalue, global_clipnorm, name)
        self.initial_accumulator_value = initial_accumulator_value
        self.epsilon = epsilon
        self._finish_init()

    def _check_hyperparameters(self) -> None:
        _check_adagrad(self.initial_accumulator_value, self.epsilon)

    def _coefficients(self, T, learning_rate, step):
        return _adagrad_coefficients(T, learning_rate, self.epsilon)

    def get_config(self) -> Dict[str, Any]:
        return {**super().get_config(), "initial_accumulator_value": self.initial_accumulator_value,
                "epsilon": self.epsilon}


class Adadelta(_Elementwise):
    """Adadelta, as keras.optimizers.Adadelta (slots ``accumulated_grads`` (ag) and
    ``accumulated_delta_vars`` (ad))::

        ag = rho * ag + (1 - rho) * g**2
        delta = -((sqrt(ad + epsilon) * g) / sqrt(ag + epsilon))
        ad = rho * ad + (1 - rho) * delta**2
        p = p + lr * delta

    ``rho`` must be in [0, 1], ``epsilon`` >= 0."""

    _kernel = "adadelta"
    _slots_in_order = ("accumulated_grads", "accumulated_delta_vars")
    _variable_groups = (("accumulated_grads", "accumulated_delta_vars"),)
    _hyper_names = Optimizer._hyper_names + ("rho", "epsilon")

    def __init__(
        self,
        learning_rate: LearningRate = 0.001,
        rho: float = 0.95,
        epsilon: float = 1e-07,
        weight_decay: Optional[float] = None,
        clipnorm: Optional[float] = None,
        clipvalue: Optional[float] = None,
        global_clipnorm: Optional[float] = None,
        name: str = "Adadelta",
    ) -> None:
        super().__init__(learning_rate, weight_decay, clipnorm, clipvalue, global_clipnorm, name)
        self.rho = rho
        self.epsilon = epsilon
        self._finish_init()

    def _check_hyperparameters(self) -> None:
        _check_adadelta(self.rho, self.epsilon)

    def _coefficients(self, T, learning_rate, step):
        return _adadelta_coefficients(T, learning_rate, self.rho, self.epsilon)

    def get_config(self) -> Dict[str, Any]:
        return {**super().get_config(), "rho": self.rho, "epsilon": self.epsilon}


class Ftrl(_Elementwise):
    """FTRL-Proximal, as keras.optimizers.Ftrl executing eagerly (slots ``accumulators``,
    starting at ``initial_accumulator_value`` as Keras makes it, and ``linears``)::

        l2_reg = l2 + beta / (2 * lr)                         (once per step)
        gtu = g + (2 * l2_shrinkage) * p
        na = acc + g**2
        linear = linear + (gtu - ((na**-lr_power - acc**-lr_power) / lr) * p)
        p = (clip(linear, -l1, l1) - linear) / (na**-lr_power / lr + 2 * l2_reg)
        acc = na

    (``lr_power``: ``learning_rate_power``, ``l1`` / ``l2`` / ``l2_shrinkage``: the
    ``*_regularization_strength`` arguments.)  The powers are TensorFlow's eager Pow bit for
    bit, which depends on an element's position in its tensor (Eigen's packet pow on whole AVX
    packets from element 0, libm's ``pow`` on the last ``n % P`` elements), for every exponent:
    Keras inside ``tf.function`` (Grappler's rewrites of the exponents 0.5, 1, 2, 3 and 0) is
    :class:`pyoptim.keras.Ftrl`'s business.  Keras' argument checks and messages."""

    _kernel = "ftrl"
    _slots_in_order = ("accumulators", "linears")
    _variable_groups = (("accumulators", "linears"),)
    _initial_values = {"accumulators": "initial_accumulator_value"}
    _hyper_names = Optimizer._hyper_names + _FTRL_ARGS

    def __init__(
        self,
        learning_rate: LearningRate = 0.001,
        learning_rate_power: float = -0.5,
        initial_accumulator_value: float = 0.1,
        l1_regularization_strength: float = 0.0,
        l2_regularization_strength: float = 0.0,
        l2_shrinkage_regularization_strength: float = 0.0,
        beta: float = 0.0,
        weight_decay: Optional[float] = None,
        clipnorm: Optional[float] = None,
        clipvalue: Optional[float] = None,
        global_clipnorm: Optional[float] = None,
        name: str = "Ftrl",
    ) -> None:
        super().__init__(learning_rate, weight_decay, clipnorm, clipvalue, global_clipnorm, name)
        self.learning_rate_power = learning_rate_power
        self.initial_accumulator_value = initial_accumulator_value
        self.l1_regularization_strength = l1_regularization_strength
        self.l2_regularization_strength = l2_regularization_strength
        self.l2_shrinkage_regularization_strength = l2_shrinkage_regularization_strength
        self.beta = beta
        self._finish_init()

    def _check_hyperparameters(self) -> None:
        _check_ftrl(*(getattr(self, k) for k in _FTRL_ARGS))

    def _coefficients(self, T, learning_rate, step):
        return _ftrl_coefficients(T, learning_rate, self.learning_rate_power,
                                  self.l1_regularization_strength, self.l2_regularization_strength,
                                  self.l2_shrinkage_regularization_strength, self.beta)

    def get_config(self) -> Dict[str, Any]:
        return {**super().get_config(), **{k: getattr(self, k) for k in _FTRL_ARGS}}


class Lamb(_Elementwise):
    """Lamb, as keras.optimizers.Lamb executing eagerly (slots ``momentums`` and
    ``velocities``)::

        m = m + (g - m) * (1 - beta_1);   v = v + (g**2 - v) * (1 - beta_2)
        u = (m / (1 - beta_1**t)) / (sqrt(v / (1 - beta_2**t)) + epsilon)
        w_norm = sqrt(sum(p**2));   g_norm = sqrt(sum(u**2))      (per tensor; p after decay)
        ratio = w_norm / g_norm if w_norm > 0 and g_norm > 0 else 1
        p = p - (ratio * lr) * u

    ``p**2`` and ``u**2`` are TensorFlow's eager Pow bit for bit, and the sums are
    ``tf.reduce_sum``'s, in TensorFlow's order.  That order depends on TensorFlow's intra-op
    thread count: above about 10**5 elements (float32; float64: half that) TensorFlow splits a
    tensor's sum into shards, one per thread up to that count, and adds the partial sums
    together, so Keras' result depends on it.  ``reduction_threads`` is that count, for the
    sums to be the ones of the TensorFlow you compare with: ``None`` (the default) means
    TensorFlow's default, the number of CPUs this process may run on
    (``len(os.sched_getaffinity(0))``), what
    ``tf.config.threading.get_intra_op_parallelism_threads() == 0`` resolves to; give the value
    you passed to ``tf.config.threading.set_intra_op_parallelism_threads`` otherwise.  It does
    not change how many threads pyoptim itself uses (:func:`pyoptim.set_num_threads`).
    """

    _kernel = "lamb"
    _slots_in_order = ("momentums", "velocities")
    _variable_groups = (("momentums", "velocities"),)
    _hyper_names = Optimizer._hyper_names + ("beta_1", "beta_2", "epsilon", "reduction_threads")

    def __init__(
        self,
        learning_rate: LearningRate = 0.001,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-07,
        weight_decay: Optional[float] = None,
        clipnorm: Optional[float] = None,
        clipvalue: Optional[float] = None,
        global_clipnorm: Optional[float] = None,
        name: str = "Lamb",
        reduction_threads: Optional[int] = None,
    ) -> None:
        super().__init__(learning_rate, weight_decay, clipnorm, clipvalue, global_clipnorm, name)
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.reduction_threads = reduction_threads
        self._finish_init()

    def _check_hyperparameters(self) -> None:
        _check_adam_like(self.beta_1, self.beta_2, self.epsilon)
        _check_reduction_threads(self.reduction_threads)

    def _reduction_threads(self) -> int:
        return _resolve_reduction_threads(self.reduction_threads)

    def _coefficients(self, T, learning_rate, step):
        return _lamb_coefficients(T, learning_rate, self.beta_1, self.beta_2, self.epsilon, step)

    def get_config(self) -> Dict[str, Any]:
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2,
                "epsilon": self.epsilon, "reduction_threads": self.reduction_threads}


# ------------------------------------------------------------------ functional forms

_FUNCTIONAL_NAMES = ("param", "grad")


def _call_one(kernel: str, names: Sequence[str], param, grad, slots, c32, c64, d32, d64,
              reduction_threads: int = 1) -> None:
    """One tensor through the generic binding; its error messages name this function's
    arguments ("param", "momentum", ...) instead of the multi-tensor lists'."""
    try:
        _core.elementwise_multi(kernel, [param], [grad], [[s] for s in slots], c32, c64, d32, d64, None,
                                0, reduction_threads)
    except (TypeError, ValueError) as e:
        msg = str(e).replace("params[0]", "param").replace("grads[0]", "grad")
        for k, n in enumerate(names):
            msg = msg.replace(f"slots[{k}][0]", n)
        raise type(e)(msg) from None


def _one_dtype(param: Any) -> Tuple[bool, bool]:
    is64 = isinstance(param, np.ndarray) and param.dtype == np.float64
    return (not is64, is64)


def lion_update(param: np.ndarray, grad: np.ndarray, momentum: np.ndarray, *,
                learning_rate: float = 0.001, beta_1: float = 0.9, beta_2: float = 0.99,
                weight_decay: Optional[float] = None) -> None:
    """Lion update of ``param`` in place, as keras.optimizers.Lion::

        (weight_decay)  param = param - param * weight_decay * learning_rate
        param = param - learning_rate * sign(momentum * beta_1 + grad * (1 - beta_1))
        momentum = momentum * beta_2 + grad * (1 - beta_2)

    Scalars in the parameter's dtype as Keras makes them (float32 for float16/bfloat16
    params).  Arrays as for :func:`pyoptim.adam_update`.  Returns None."""
    _check_common(learning_rate, weight_decay)
    _check_lion(beta_1, beta_2)
    n32, n64 = _one_dtype(param)
    c = lambda T: _lion_coefficients(T, learning_rate, beta_1, beta_2)  # noqa: E731
    _call_one("lion", ("momentum",), param, grad, (momentum,),
              c(np.float32) if n32 else None, c(np.float64) if n64 else None,
              _decay(weight_decay, learning_rate, np.float32, n32),
              _decay(weight_decay, learning_rate, np.float64, n64))


def adamax_update(param: np.ndarray, grad: np.ndarray, m: np.ndarray, u: np.ndarray, *, step: int,
                  learning_rate: float = 0.001, beta_1: float = 0.9, beta_2: float = 0.999,
                  epsilon: float = 1e-07, weight_decay: Optional[float] = None) -> None:
    """Adamax update of ``param`` in place, as keras.optimizers.Adamax; ``step`` is the 1-based
    count of this update (t)::

        (weight_decay)  param = param - param * weight_decay * learning_rate
        m = m + (grad - m) * (1 - beta_1)
        u = maximum(beta_2 * u, |grad|)
        param = param - (learning_rate * m) / ((1 - beta_1**t) * (u + epsilon))

    Returns None."""
    _check_common(learning_rate, weight_decay)
    _check_adam_like(beta_1, beta_2, epsilon)
    step = _check_step(step)
    n32, n64 = _one_dtype(param)
    c = lambda T: _adamax_coefficients(T, learning_rate, beta_1, beta_2, epsilon, step)  # noqa: E731
    _call_one("adamax", ("m", "u"), param, grad, (m, u),
              c(np.float32) if n32 else None, c(np.float64) if n64 else None,
              _decay(weight_decay, learning_rate, np.float32, n32),
              _decay(weight_decay, learning_rate, np.float64, n64))


def nadam_update(param: np.ndarray, grad: np.ndarray, m: np.ndarray, v: np.ndarray, *, step: int,
                 u_product: float = 1.0, learning_rate: float = 0.001, beta_1: float = 0.9,
                 beta_2: float = 0.999, epsilon: float = 1e-07,
                 weight_decay: Optional[float] = None) -> np.floating:
    """Nadam update of ``param`` in place, as keras.optimizers.Nadam; ``step`` is the 1-based
    count of this update (t), ``u_product`` Keras' running product before it (1.0 at step 1).
    Returns the new ``u_product`` (pass it to the next step)::

        u_product = u_product * beta_1 * (1 - 0.5 * 0.96**t)
        u_t = beta_1 * (1 - 0.5 * 0.96**t);  u_t_1 = beta_1 * (1 - 0.5 * 0.96**(t+1))
        (weight_decay)  param = param - param * weight_decay * learning_rate
        m = m + (grad - m) * (1 - beta_1);  v = v + (grad**2 - v) * (1 - beta_2)
        m_hat = (u_t_1 * m) / (1 - u_product * u_t_1) + ((1 - u_t) * grad) / (1 - u_product)
        param = param - (m_hat * learning_rate) / (sqrt(v / (1 - beta_2**t)) + epsilon)

    Every scalar is in the state dtype (float64 for float64 params, else float32)."""
    _check_common(learning_rate, weight_decay)
    _check_adam_like(beta_1, beta_2, epsilon)
    step = _check_step(step)
    _finite("u_product", u_product)
    n32, n64 = _one_dtype(param)
    D = np.float64 if n64 else np.float32
    new = _nadam_u_product(D(u_product), beta_1, step)
    c = lambda T: _nadam_coefficients(T, learning_rate, beta_1, beta_2, epsilon, step, new)  # noqa: E731
    _call_one("nadam", ("m", "v"), param, grad, (m, v),
              c(np.float32) if n32 else None, c(np.float64) if n64 else None,
              _decay(weight_decay, learning_rate, np.float32, n32),
              _decay(weight_decay, learning_rate, np.float64, n64))
    return new


def adagrad_update(param: np.ndarray, grad: np.ndarray, accumulator: np.ndarray, *,
                   learning_rate: float = 0.001, epsilon: float = 1e-07,
                   weight_decay: Optional[float] = None) -> None:
    """Adagrad update of ``param`` in place, as keras.optimizers.Adagrad::

        (weight_decay)  param = param - param * weight_decay * learning_rate
        accumulator = accumulator + grad**2
        param = param - (learning_rate * grad) / sqrt(accumulator + epsilon)

    ``accumulator`` starts at Keras' ``initial_accumulator_value`` (0.1: ``np.full_like(param,
    0.1)``; for float64 Keras starts at ``float64(float32(0.1))``).  Returns None."""
    _check_common(learning_rate, weight_decay)
    _nonnegative("epsilon", epsilon)
    n32, n64 = _one_dtype(param)
    c = lambda T: _adagrad_coefficients(T, learning_rate, epsilon)  # noqa: E731
    _call_one("adagrad", ("accumulator",), param, grad, (accumulator,),
              c(np.float32) if n32 else None, c(np.float64) if n64 else None,
              _decay(weight_decay, learning_rate, np.float32, n32),
              _decay(weight_decay, learning_rate, np.float64, n64))


def adadelta_update(param: np.ndarray, grad: np.ndarray, accumulated_grad: np.ndarray,
                    accumulated_delta_var: np.ndarray, *, learning_rate: float = 0.001,
                    rho: float = 0.95, epsilon: float = 1e-07,
                    weight_decay: Optional[float] = None) -> None:
    """Adadelta update of ``param`` in place, as keras.optimizers.Adadelta (ag:
    ``accumulated_grad``, ad: ``accumulated_delta_var``, both starting at zeros)::

        (weight_decay)  param = param - param * weight_decay * learning_rate
        ag = rho * ag + (1 - rho) * grad**2
        delta = -((sqrt(ad + epsilon) * grad) / sqrt(ag + epsilon))
        ad = rho * ad + (1 - rho) * delta**2
        param = param + learning_rate * delta

    Returns None."""
    _check_common(learning_rate, weight_decay)
    _check_adadelta(rho, epsilon)
    n32, n64 = _one_dtype(param)
    c = lambda T: _adadelta_coefficients(T, learning_rate, rho, epsilon)  # noqa: E731
    _call_one("adadelta", ("accumulated_grad", "accumulated_delta_var"), param, grad,
              (accumulated_grad, accumulated_delta_var),
              c(np.float32) if n32 else None, c(np.float64) if n64 else None,
              _decay(weight_decay, learning_rate, np.float32, n32),
              _decay(weight_decay, learning_rate, np.float64, n64))


def ftrl_update(param: np.ndarray, grad: np.ndarray, accumulator: np.ndarray, linear: np.ndarray, *,
                learning_rate: float = 0.001, learning_rate_power: float = -0.5,
                l1_regularization_strength: float = 0.0, l2_regularization_strength: float = 0.0,
                l2_shrinkage_regularization_strength: float = 0.0, beta: float = 0.0,
                weight_decay: Optional[float] = None) -> None:
    """FTRL-Proximal update of ``param`` in place, as keras.optimizers.Ftrl executing eagerly
    (see :class:`Ftrl`; ``accumulator`` starts at Keras' ``initial_accumulator_value``,
    ``linear`` at zeros).  ``param`` is one whole tensor: TensorFlow's Pow depends on an
    element's position in it.  Returns None."""
    _check_common(learning_rate, weight_decay)
    _check_ftrl(learning_rate_power, 0.0, l1_regularization_strength, l2_regularization_strength,
                l2_shrinkage_regularization_strength, beta)
    n32, n64 = _one_dtype(param)
    c = lambda T: _ftrl_coefficients(  # noqa: E731
        T, learning_rate, learning_rate_power, l1_regularization_strength,
        l2_regularization_strength, l2_shrinkage_regularization_strength, beta)
    _call_one("ftrl", ("accumulator", "linear"), param, grad, (accumulator, linear),
              c(np.float32) if n32 else None, c(np.float64) if n64 else None,
              _decay(weight_decay, learning_rate, np.float32, n32),
              _decay(weight_decay, learning_rate, np.float64, n64))


def lamb_update(param: np.ndarray, grad: np.ndarray, m: np.ndarray, v: np.ndarray, *, step: int,
                learning_rate: float = 0.001, beta_1: float = 0.9, beta_2: float = 0.999,
                epsilon: float = 1e-07, weight_decay: Optional[float] = None,
                reduction_threads: Optional[int] = None) -> None:
    """Lamb update of ``param`` in place, as keras.optimizers.Lamb executing eagerly; ``step``
    is the 1-based count of this update (t); ``param`` is one whole tensor (its norm is Keras'
    trust ratio).  ``reduction_threads``: TensorFlow's intra-op thread count, which decides the
    order of the norms' sums (see :class:`Lamb`; None: TensorFlow's default).  Returns None."""
    _check_common(learning_rate, weight_decay)
    _check_adam_like(beta_1, beta_2, epsilon)
    _check_reduction_threads(reduction_threads)
    step = _check_step(step)
    n32, n64 = _one_dtype(param)
    c = lambda T: _lamb_coefficients(T, learning_rate, beta_1, beta_2, epsilon, step)  # noqa: E731
    _call_one("lamb", ("m", "v"), param, grad, (m, v),
              c(np.float32) if n32 else None, c(np.float64) if n64 else None,
              _decay(weight_decay, learning_rate, np.float32, n32),
              _decay(weight_decay, learning_rate, np.float64, n64),
              _resolve_reduction_threads(reduction_threads))
