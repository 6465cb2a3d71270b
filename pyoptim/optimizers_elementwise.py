"""Lion, Adamax and Nadam: the NumPy API of the element-wise kernels (csrc/pyoptim/elementwise.hpp).

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
"""
from __future__ import annotations

import math
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from . import _core
from .optimizers import LearningRate, Optimizer, _is_real_number, _state_dtype

__all__ = ["Adamax", "Lion", "Nadam", "adamax_update", "lion_update", "nadam_update"]


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

    def _run(self, params, grads, slots, learning_rate, step, no_decay, need32, need64) -> None:
        _core.elementwise_multi(
            self._kernel, params, grads, [slots[n] for n in self._slot_names],
            self._coefficients(np.float32, learning_rate, step) if need32 else None,
            self._coefficients(np.float64, learning_rate, step) if need64 else None,
            _decay(self.weight_decay, learning_rate, np.float32, need32),
            _decay(self.weight_decay, learning_rate, np.float64, need64),
            no_decay,
        )

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


# ------------------------------------------------------------------ functional forms

_FUNCTIONAL_NAMES = ("param", "grad")


def _call_one(kernel: str, names: Sequence[str], param, grad, slots, c32, c64, d32, d64) -> None:
    """One tensor through the generic binding; its error messages name this function's
    arguments ("param", "momentum", ...) instead of the multi-tensor lists'."""
    try:
        _core.elementwise_multi(kernel, [param], [grad], [[s] for s in slots], c32, c64, d32, d64, None)
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
