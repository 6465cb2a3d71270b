"""Plain NumPy transcription of Keras 3's optimizer formulas (the test oracle).

Transcribed from keras/src/optimizers/{sgd,rmsprop,adam}.py and
``BaseOptimizer._apply_weight_decay`` (keras 3.15), in the same operation order
and in the variable's dtype ``T``:

* every hyperparameter is cast to ``T`` (``ops.cast(x, variable.dtype)``); a
  Python-float expression such as ``1 - beta_1`` is computed in double first and
  rounded to ``T`` once;
* decoupled weight decay runs first: ``p = p - p * wd * lr`` (when ``weight_decay``
  is not None; 0.0 still runs it, as in Keras);
* SGD:     plain ``p = p - g * lr``; momentum ``m = m * mu - g * lr``, then
           ``p = p + m`` or, Nesterov, ``p = p + (m * mu - g * lr)``; Keras keeps a
           momentum buffer only when ``momentum != 0`` (tested in double);
* RMSprop: ``v = rho * v + (1 - rho) * g**2``; centered
           ``a = rho * a + (1 - rho) * g``, ``d = (v - a**2) + eps``, else ``d = v + eps``;
           ``inc = (lr * g) / sqrt(d)``; momentum (``momentum > 0`` in double)
           ``buf = mu * buf + inc; p = p - buf``, else ``p = p - inc``;
* Adam:    ``t = T(step)``, ``b1^t = pow(T(beta_1), t)``, ``b2^t = pow(T(beta_2), t)``,
           ``alpha = lr * sqrt(1 - b2^t) / (1 - b1^t)`` (all in ``T``);
           ``m = m + (g - m) * (1 - beta_1)``; ``v = v + (g**2 - v) * (1 - beta_2)``;
           AMSGrad ``v_hat = maximum(v_hat, v)`` (NaN-propagating, see ``maximum``)
           used instead of ``v``;
           ``p = p - (m * alpha) / (sqrt(v) + eps)``.

The functions never modify their inputs; they return the new arrays in a dict
keyed by the argument names of the pyoptim function (``"param"``, ``"m"``, ...).
NumPy's arithmetic and ``sqrt`` are IEEE operations (the same on every CPU), so these
results equal Keras' to the bit.  ``power`` is not used: NumPy builds with AVX-512
dispatch compute it with a SIMD approximation that differs from libm's by ulps, while
TensorFlow's Pow on scalars calls the C library (``std::pow``); :func:`libm_pow` calls
libm's ``pow`` / ``powf`` directly, as TensorFlow (and pyoptim's core) do, on any CPU.
"""
from __future__ import annotations

import ctypes
import ctypes.util
from typing import Callable, Dict, List, Optional, Sequence, Union

import numpy as np

Arrays = Dict[str, np.ndarray]


def _copy(a: np.ndarray) -> np.ndarray:
    return np.array(a, copy=True)


def _fit(x, like: np.ndarray) -> np.ndarray:
    """A result of element-wise ops (0-d ops give scalars) as an array shaped like ``like``."""
    return np.asarray(x, dtype=like.dtype).reshape(like.shape)


def _decay(p: np.ndarray, lr, weight_decay: Optional[float], T) -> np.ndarray:
    if weight_decay is None:
        return p
    wd = T(weight_decay)
    return p - p * wd * lr


def sgd(
    param: np.ndarray,
    grad: np.ndarray,
    momentum_buffer: Optional[np.ndarray] = None,
    *,
    learning_rate: float = 0.01,
    momentum: float = 0.0,
    nesterov: bool = False,
    weight_decay: Optional[float] = None,
) -> Arrays:
    """keras.optimizers.SGD.update_step (plus weight decay) on copies."""
    T = param.dtype.type
    with np.errstate(all="ignore"):
        lr = T(learning_rate)
        p = _decay(_copy(param), lr, weight_decay, T)
        g = grad
        out: Arrays = {}
        if momentum != 0:
            mu = T(momentum)
            m = momentum_buffer * mu - g * lr
            out["momentum_buffer"] = _fit(m, param)
            if nesterov:
                p = p + (m * mu - g * lr)
            else:
                p = p + m
        else:
            p = p - g * lr
            if momentum_buffer is not None:
                out["momentum_buffer"] = _copy(momentum_buffer)
        out["param"] = _fit(p, param)
    return out


def rmsprop(
    param: np.ndarray,
    grad: np.ndarray,
    velocity: np.ndarray,
    *,
    learning_rate: float = 0.001,
    rho: float = 0.9,
    epsilon: float = 1e-7,
    momentum: float = 0.0,
    momentum_buffer: Optional[np.ndarray] = None,
    average_grad: Optional[np.ndarray] = None,
    weight_decay: Optional[float] = None,
) -> Arrays:
    """keras.optimizers.RMSprop.update_step (plus weight decay) on copies;
    centered when ``average_grad`` is given."""
    T = param.dtype.type
    with np.errstate(all="ignore"):
        lr = T(learning_rate)
        p = _decay(_copy(param), lr, weight_decay, T)
        g = grad
        rho_t, one_minus_rho, eps = T(rho), T(1 - rho), T(epsilon)
        out: Arrays = {}
        v = rho_t * velocity + one_minus_rho * (g * g)
        out["velocity"] = _fit(v, param)
        if average_grad is not None:
            a = rho_t * average_grad + one_minus_rho * g
            out["average_grad"] = _fit(a, param)
            denominator = (v - a * a) + eps
        else:
            denominator = v + eps
        increment = (lr * g) / np.sqrt(denominator)
        if momentum > 0:
            buf = T(momentum) * momentum_buffer + increment
            out["momentum_buffer"] = _fit(buf, param)
            p = p - buf
        else:
            p = p - increment
            if momentum_buffer is not None:
                out["momentum_buffer"] = _copy(momentum_buffer)
        out["param"] = _fit(p, param)
    return out


def maximum(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """TensorFlow's Maximum as Eigen's scalar path computes it: NaN in either operand
    gives NaN, otherwise ``b if a < b else a`` (a tie between -0.0 and +0.0 keeps
    ``a``).  np.maximum keeps ``b`` on such a tie; TF's vectorised packets do too,
    so TF itself is not consistent for signed-zero ties (it depends on the
    element's position).  Only a state seeded with -0.0 can meet such a tie."""
    with np.errstate(invalid="ignore"):
        return np.where((a < b) | np.isnan(b), b, a)


_LIBM = ctypes.CDLL(ctypes.util.find_library("m") or None)
_LIBM.pow.restype, _LIBM.pow.argtypes = ctypes.c_double, [ctypes.c_double, ctypes.c_double]
_LIBM.powf.restype, _LIBM.powf.argtypes = ctypes.c_float, [ctypes.c_float, ctypes.c_float]


def libm_pow(base: np.generic, exponent: np.generic) -> np.generic:
    """``base ** exponent`` in their dtype (float32 or float64) as the C library computes it:
    ``powf`` / ``pow``, which is what TensorFlow's Pow runs on a scalar (Eigen's
    ``numext::pow``, i.e. ``std::pow``).  TensorFlow flushes subnormal results to zero; so
    does this, so that it returns TensorFlow's value, not only a value that rounds alike."""
    T = type(base)
    fn = _LIBM.powf if T is np.float32 else _LIBM.pow
    result = T(fn(base, exponent))
    return T(0) * result if result != 0 and abs(result) < np.finfo(T).tiny else result


def adam_alpha(step: int, learning_rate: float, beta_1: float, beta_2: float, T) -> np.generic:
    """alpha = lr * sqrt(1 - beta_2**t) / (1 - beta_1**t), every operation in ``T``, powers
    from libm (:func:`libm_pow`)."""
    with np.errstate(all="ignore"):
        lr = T(learning_rate)
        t = T(step)
        beta_1_power = libm_pow(T(beta_1), t)
        beta_2_power = libm_pow(T(beta_2), t)
        return lr * np.sqrt(T(1) - beta_2_power) / (T(1) - beta_1_power)


def adam(
    param: np.ndarray,
    grad: np.ndarray,
    m: np.ndarray,
    v: np.ndarray,
    *,
    step: int,
    learning_rate: float = 0.001,
    beta_1: float = 0.9,
    beta_2: float = 0.999,
    epsilon: float = 1e-7,
    v_hat: Optional[np.ndarray] = None,
    weight_decay: Optional[float] = None,
) -> Arrays:
    """keras.optimizers.Adam.update_step (plus weight decay) on copies;
    AMSGrad when ``v_hat`` is given."""
    T = param.dtype.type
    with np.errstate(all="ignore"):
        lr = T(learning_rate)
        alpha = adam_alpha(step, learning_rate, beta_1, beta_2, T)
        p = _decay(_copy(param), lr, weight_decay, T)
        g = grad
        out: Arrays = {}
        m_new = m + (g - m) * T(1 - beta_1)
        v_new = v + (g * g - v) * T(1 - beta_2)
        out["m"] = _fit(m_new, param)
        out["v"] = _fit(v_new, param)
        if v_hat is not None:
            v_new = maximum(v_hat, v_new)
            out["v_hat"] = _fit(v_new, param)
        p = p - (m_new * alpha) / (np.sqrt(v_new) + T(epsilon))
        out["param"] = _fit(p, param)
    return out


# ---------------------------------------------------------------- stateful


LearningRate = Union[float, Callable[[int], float]]


class RefOptimizer:
    """Keras' ``apply`` loop in NumPy: clip by value, learning rate of the
    current iteration, then one update per (grad, param); ``None`` gradients skip
    their parameter.  Updates ``params`` in place like the real optimizers."""

    slot_names: Sequence[str] = ()

    def __init__(self, learning_rate: LearningRate, weight_decay=None, clipvalue=None) -> None:
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.clipvalue = clipvalue
        self.iterations = 0
        self.slots: Optional[Dict[str, List[np.ndarray]]] = None

    def lr(self) -> float:
        lr = self.learning_rate
        return float(lr(self.iterations)) if callable(lr) else float(lr)

    def apply(self, grads: Sequence[Optional[np.ndarray]], params: Sequence[np.ndarray]) -> None:
        if self.slots is None:
            self.slots = {k: [np.zeros_like(p) for p in params] for k in self.slot_names}
        lr = self.lr()
        for i, (g, p) in enumerate(zip(grads, params)):
            if g is None:
                continue
            if self.clipvalue:
                with np.errstate(invalid="ignore"):
                    g = np.clip(g, -self.clipvalue, self.clipvalue)
            state = {k: v[i] for k, v in self.slots.items()}
            new = self.update(p, g, state, lr, self.iterations + 1)
            p[...] = new.pop("param")
            for k, arr in new.items():
                state[k][...] = arr
        self.iterations += 1

    def update(self, p, g, state, lr, step) -> Arrays:
        raise NotImplementedError


class RefSGD(RefOptimizer):
    def __init__(self, learning_rate=0.01, momentum=0.0, nesterov=False, **kw) -> None:
        super().__init__(learning_rate, **kw)
        self.momentum, self.nesterov = momentum, nesterov
        self.slot_names = ("momentums",) if momentum != 0 else ()

    def update(self, p, g, state, lr, step):
        out = sgd(p, g, state.get("momentums"), learning_rate=lr, momentum=self.momentum,
                  nesterov=self.nesterov, weight_decay=self.weight_decay)
        if "momentum_buffer" in out:
            out["momentums"] = out.pop("momentum_buffer")
        return out


class RefRMSprop(RefOptimizer):
    def __init__(self, learning_rate=0.001, rho=0.9, momentum=0.0, epsilon=1e-7, centered=False,
                 **kw) -> None:
        super().__init__(learning_rate, **kw)
        self.rho, self.momentum, self.epsilon, self.centered = rho, momentum, epsilon, centered
        self.slot_names = ("velocities",) + (("momentums",) if momentum > 0 else ()) + (
            ("average_gradients",) if centered else ())

    def update(self, p, g, state, lr, step):
        out = rmsprop(p, g, state["velocities"], learning_rate=lr, rho=self.rho,
                      epsilon=self.epsilon, momentum=self.momentum,
                      momentum_buffer=state.get("momentums"),
                      average_grad=state.get("average_gradients"),
                      weight_decay=self.weight_decay)
        rename = {"velocity": "velocities", "momentum_buffer": "momentums",
                  "average_grad": "average_gradients"}
        return {rename.get(k, k): v for k, v in out.items()}


class RefAdam(RefOptimizer):
    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, amsgrad=False,
                 **kw) -> None:
        super().__init__(learning_rate, **kw)
        self.beta_1, self.beta_2, self.epsilon, self.amsgrad = beta_1, beta_2, epsilon, amsgrad
        self.slot_names = ("momentums", "velocities") + (("velocity_hats",) if amsgrad else ())

    def update(self, p, g, state, lr, step):
        out = adam(p, g, state["momentums"], state["velocities"], step=step, learning_rate=lr,
                   beta_1=self.beta_1, beta_2=self.beta_2, epsilon=self.epsilon,
                   v_hat=state.get("velocity_hats"), weight_decay=self.weight_decay)
        rename = {"m": "momentums", "v": "velocities", "v_hat": "velocity_hats"}
        return {rename.get(k, k): v for k, v in out.items()}


REFERENCE_CLASSES = {"SGD": RefSGD, "RMSprop": RefRMSprop, "Adam": RefAdam}


def same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    """Equal shape and dtype, and equal values with NaN == NaN (any payload).
    Signed zeros must agree too: -0.0 and 0.0 differ in their sign bit."""
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    if not np.array_equal(a, b, equal_nan=True):
        return False
    finite_or_inf = ~np.isnan(a)
    return bool(np.array_equal(np.signbit(a[finite_or_inf]), np.signbit(b[finite_or_inf])))


def identical_bits(a: np.ndarray, b: np.ndarray) -> bool:
    """Byte-for-byte equal (NaN payloads included); same shape and dtype."""
    a, b = np.asarray(a), np.asarray(b)
    return a.shape == b.shape and a.dtype == b.dtype and np.ascontiguousarray(a).tobytes() == \
        np.ascontiguousarray(b).tobytes()


def describe_difference(actual: np.ndarray, expected: np.ndarray, limit: int = 5) -> str:
    """The first few elements where ``actual`` and ``expected`` differ (for messages)."""
    a, b = np.asarray(actual), np.asarray(expected)
    if a.shape != b.shape or a.dtype != b.dtype:
        return f"shape/dtype {a.shape} {a.dtype} vs {b.shape} {b.dtype}"
    both_nan = np.isnan(a) & np.isnan(b)
    differ = ~both_nan & ((a != b) | (np.signbit(a) != np.signbit(b)) | (np.isnan(a) != np.isnan(b)))
    where = np.argwhere(differ)[:limit]
    items = [f"{tuple(i)}: {a[tuple(i)]!r} != {b[tuple(i)]!r}" for i in where]
    return f"{int(differ.sum())} elements differ; " + "; ".join(items)


# ---------------------------------------------------------------- variants
# Every code path of the kernels, for tests that run them all (determinism,
# concurrency): name -> (function, state argument names, hyperparameters).

VARIANTS = {
    "sgd": ("sgd", ["param", "grad"], dict(learning_rate=0.01)),
    "sgd_momentum": ("sgd", ["param", "grad", "momentum_buffer"], dict(learning_rate=0.01, momentum=0.9)),
    "sgd_nesterov_decay": ("sgd", ["param", "grad", "momentum_buffer"],
                           dict(learning_rate=0.01, momentum=0.9, nesterov=True, weight_decay=0.01)),
    "rmsprop": ("rmsprop", ["param", "grad", "velocity"], dict(learning_rate=0.001)),
    "rmsprop_centered_momentum_decay": (
        "rmsprop", ["param", "grad", "velocity", "momentum_buffer", "average_grad"],
        dict(learning_rate=0.001, rho=0.8, momentum=0.5, weight_decay=0.004)),
    "adam": ("adam", ["param", "grad", "m", "v"], dict(step=3, learning_rate=0.001)),
    "adam_amsgrad_decay": ("adam", ["param", "grad", "m", "v", "v_hat"],
                           dict(step=7, learning_rate=0.001, beta_1=0.8, weight_decay=0.01)),
}
_POSITIONAL = {"sgd": ["param", "grad", "momentum_buffer"], "rmsprop": ["param", "grad", "velocity"],
               "adam": ["param", "grad", "m", "v"]}


def variant_arrays(variant: str, n: int, dtype, seed: int, specials: bool = True, nan: bool = True) -> Arrays:
    """Inputs for a variant: normal values, with infinities, signed zeros,
    subnormals and (``nan``) NaN sprinkled in (``specials``, 2 % of the elements);
    states are non-negative where Keras' would be."""
    rng = np.random.default_rng(seed)
    out: Arrays = {}
    tiny = np.finfo(dtype).smallest_subnormal
    for name in VARIANTS[variant][1]:
        x = rng.standard_normal(n).astype(dtype)
        if name in ("velocity", "v", "v_hat"):
            x = np.abs(x)
        if specials and n:
            pool = np.array(([np.nan] if nan else []) + [np.inf, -np.inf, 0.0, -0.0, tiny, -tiny], dtype)
            where = rng.random(n) < 0.02
            x[where] = pool[rng.integers(0, len(pool), int(where.sum()))]
        out[name] = x
    return out


def run_variant(variant: str, arrays: Arrays, module=None) -> None:
    """Call pyoptim's functional API (or ``module``'s) for ``variant`` on ``arrays`` in place."""
    import pyoptim

    mod = module or pyoptim
    kind, _, hyper = VARIANTS[variant]
    fn = getattr(mod, f"{kind}_update")
    args = [arrays.get(n) for n in _POSITIONAL[kind]]
    kw = {n: a for n, a in arrays.items() if n not in _POSITIONAL[kind]}
    fn(*args, **kw, **hyper)


def reference_variant(variant: str, arrays: Arrays) -> Arrays:
    """The reference result of ``run_variant`` (new arrays; grad included, unchanged)."""
    kind, _, hyper = VARIANTS[variant]
    fn = {"sgd": sgd, "rmsprop": rmsprop, "adam": adam}[kind]
    args = [arrays.get(n) for n in _POSITIONAL[kind]]
    kw = {n: a for n, a in arrays.items() if n not in _POSITIONAL[kind]}
    out = {n: _copy(a) for n, a in arrays.items()}
    out.update(fn(*args, **kw, **hyper))
    return out
