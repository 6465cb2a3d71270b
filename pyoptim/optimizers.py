"""Stateful NumPy optimizers with keras.optimizers' arguments.

``opt.apply(grads, params)`` updates every array of ``params`` in place in one
native call: the kernel runs one parallel region over all the arrays (a
multi-tensor kernel), with the same per-element arithmetic as the functional API
and as Keras.  State arrays are created on the first call, one per parameter and
slot, with Keras' slot names.
"""
from __future__ import annotations

import math
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple, Union

import numpy as np

from . import _core

LearningRate = Union[float, Callable[[int], float]]


class Optimizer:
    """Base class: learning rate (float or callable of the step), weight decay,
    gradient clipping, iterations, state save and load.

    Subclasses name their slots (``_slot_names``) and implement ``_update``.
    """

    _slot_names: Tuple[str, ...] = ()

    def __init__(
        self,
        learning_rate: LearningRate,
        weight_decay: Optional[float] = None,
        clipnorm: Optional[float] = None,
        clipvalue: Optional[float] = None,
        global_clipnorm: Optional[float] = None,
        name: Optional[str] = None,
    ) -> None:
        if clipnorm is not None and global_clipnorm is not None:
            raise ValueError(
                "Only one of clipnorm and global_clipnorm can be set; "
                f"received clipnorm={clipnorm}, global_clipnorm={global_clipnorm}"
            )
        for arg, value in (("clipnorm", clipnorm), ("clipvalue", clipvalue), ("global_clipnorm", global_clipnorm)):
            if value is not None and not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ValueError(f"{arg} must be a positive finite number or None, got {value!r}")
        if not callable(learning_rate) and (isinstance(learning_rate, bool) or not isinstance(learning_rate, (int, float, np.floating, np.integer))):
            raise TypeError(f"learning_rate must be a float or a callable of the step, got {type(learning_rate).__name__}")
        self._learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.clipnorm = clipnorm
        self.clipvalue = clipvalue
        self.global_clipnorm = global_clipnorm
        self.name = name or type(self).__name__
        self._iterations = 0
        self._slots: Optional[Dict[str, List[np.ndarray]]] = None

    # ------------------------------------------------------------------ public
    @property
    def iterations(self) -> int:
        """Number of updates applied so far."""
        return self._iterations

    @property
    def learning_rate(self) -> float:
        """The learning rate of the next update (a callable gets ``iterations``)."""
        lr = self._learning_rate
        return float(lr(self._iterations)) if callable(lr) else float(lr)

    @property
    def built(self) -> bool:
        return self._slots is not None

    def apply(self, grads: Sequence[Optional[np.ndarray]], params: Sequence[np.ndarray]) -> None:
        """Update every array in ``params`` in place from ``grads`` (one native call).

        A ``None`` gradient leaves its parameter (and state) untouched, as in Keras.
        Nothing is modified when an argument is refused.
        """
        params = list(params)
        grads = list(grads)
        if len(grads) != len(params):
            raise ValueError(f"grads has {len(grads)} entries but params has {len(params)}")
        fresh = self._slots is None
        if fresh:
            self._slots = {
                slot: [np.zeros_like(p, dtype=_state_dtype(p)) if isinstance(p, np.ndarray) else p for p in params]
                for slot in self._slot_names
            }
        elif len(params) != len(next(iter(self._slots.values()), params)):
            raise ValueError(
                f"this optimizer was built for {len(next(iter(self._slots.values())))} arrays, "
                f"got {len(params)} params"
            )
        try:
            # A None gradient skips its parameter (the kernels see None and skip it).
            self._update(params, self._clip(grads), self._slots, self.learning_rate, self._iterations + 1)
        except BaseException:
            if fresh:
                self._slots = None
            raise
        self._iterations += 1

    def apply_gradients(self, grads_and_vars: Iterable[Tuple[Optional[np.ndarray], np.ndarray]]) -> None:
        """Keras-style spelling of :meth:`apply`: an iterable of (grad, param) pairs."""
        pairs = list(grads_and_vars)
        self.apply([g for g, _ in pairs], [p for _, p in pairs])

    def get_config(self) -> Dict[str, Any]:
        lr = self._learning_rate
        return {
            "name": self.name,
            "learning_rate": lr if callable(lr) else float(lr),
            "weight_decay": self.weight_decay,
            "clipnorm": self.clipnorm,
            "clipvalue": self.clipvalue,
            "global_clipnorm": self.global_clipnorm,
        }

    @classmethod
    def from_config(cls, config: Dict[str, Any]) -> "Optimizer":
        return cls(**config)

    def state_dict(self) -> Dict[str, Any]:
        """The optimizer's state: its kind, iterations and copies of every slot array."""
        return {
            "optimizer": type(self).__name__,
            "iterations": self._iterations,
            "slots": None if self._slots is None else {k: [a.copy(order="K") for a in v] for k, v in self._slots.items()},
            "config": self.get_config(),
        }

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        """Restore :meth:`state_dict` output (bit-exact).  The state must come from the
        same kind of optimizer with the same slots (e.g. amsgrad, centered, momentum) and,
        when this optimizer is already built, the same shapes and dtypes."""
        if not isinstance(state, dict) or "slots" not in state or "iterations" not in state:
            raise TypeError("state must be a dict from Optimizer.state_dict()")
        kind = state.get("optimizer")
        if kind != type(self).__name__:
            raise ValueError(f"state is from a {kind} optimizer, this optimizer is {type(self).__name__}")
        iterations = state["iterations"]
        if isinstance(iterations, bool) or not isinstance(iterations, (int, np.integer)) or iterations < 0:
            raise ValueError(f"state['iterations'] must be an int >= 0, got {iterations!r}")
        slots = state["slots"]
        if slots is None:
            self._slots, self._iterations = None, int(iterations)
            return
        if set(slots) != set(self._slot_names):
            raise ValueError(
                f"state has slots {sorted(slots)}, this optimizer has {sorted(self._slot_names)} "
                "(check momentum / nesterov / centered / amsgrad)"
            )
        lengths = {len(v) for v in slots.values()}
        if len(lengths) > 1:
            raise ValueError("state's slot lists differ in length")
        for name, arrays in slots.items():
            for i, a in enumerate(arrays):
                if not isinstance(a, np.ndarray) or a.dtype not in (np.float32, np.float64):
                    raise TypeError(f"state slot {name}[{i}] must be a float32 or float64 numpy array")
        if self._slots is not None:
            for name, arrays in slots.items():
                mine = self._slots[name]
                if len(arrays) != len(mine):
                    raise ValueError(f"state has {len(arrays)} arrays per slot, this optimizer has {len(mine)}")
                for i, (a, b) in enumerate(zip(arrays, mine)):
                    if a.shape != b.shape or a.dtype != b.dtype:
                        raise ValueError(
                            f"state slot {name}[{i}] has shape {a.shape} and dtype {a.dtype}, "
                            f"expected {b.shape} and {b.dtype}"
                        )
        self._slots = {k: [np.array(a, copy=True, order="K") for a in v] for k, v in slots.items()}
        self._iterations = int(iterations)

    # --------------------------------------------------------------- internals
    def _update(self, params, grads, slots, learning_rate: float, step: int) -> None:
        raise NotImplementedError

    def _clip(self, grads: List[Optional[np.ndarray]]) -> List[Optional[np.ndarray]]:
        """Keras' gradient clipping, in each gradient's dtype; returns new arrays
        (None stays None)."""
        if not (self.clipnorm or self.global_clipnorm or self.clipvalue):
            return grads
        present = [g for g in grads if g is not None]
        clipped = iter(self._clip_present(present))
        return [None if g is None else next(clipped) for g in grads]

    def _clip_present(self, grads: List[np.ndarray]) -> List[np.ndarray]:
        if self.clipnorm:
            out = []
            for g in grads:
                g = _as_float_array(g)
                l2sum = np.sum(np.square(g))
                l2norm = np.sqrt(l2sum) if l2sum > 0 else l2sum
                clipped = (g * g.dtype.type(self.clipnorm)) / np.maximum(l2norm, g.dtype.type(self.clipnorm))
                out.append(np.asarray(clipped, dtype=g.dtype))
            return out
        if self.global_clipnorm:
            gs = [_as_float_array(g) for g in grads]
            norm = math.sqrt(sum(float(np.sum(np.square(g.astype(np.float64)))) for g in gs))
            scale = self.global_clipnorm * min(1.0 / norm if norm else math.inf, 1.0 / self.global_clipnorm)
            scale = scale + (norm - norm)
            return [np.asarray(g * g.dtype.type(scale), dtype=g.dtype) for g in gs]
        if self.clipvalue:
            return [np.asarray(np.clip(_as_float_array(g), -self.clipvalue, self.clipvalue), dtype=g.dtype) for g in grads]
        return grads

    def _check(self) -> None:
        """Validate the hyperparameters now, with the kernels' own checks, on empty arrays."""
        e = np.empty(0, np.float32)
        lr = 0.0 if callable(self._learning_rate) else self._learning_rate
        self._update([e], [e], {k: [np.empty(0, np.float32)] for k in self._slot_names}, lr, 1)

    def __repr__(self) -> str:
        cfg = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items() if k != "name")
        return f"{type(self).__name__}({cfg})"


def _state_dtype(p: np.ndarray) -> np.dtype:
    """State arrays are float64 for float64 params and float32 otherwise (float16 and
    bfloat16 params keep float32 state, as mixed-precision training does)."""
    return np.dtype(np.float64) if p.dtype == np.float64 else np.dtype(np.float32)


def _positive(x: Any) -> bool:
    """x > 0 for any real number (NumPy scalars included); False for anything else,
    which the kernels' own checks then refuse with a clear error."""
    try:
        return float(x) > 0
    except (TypeError, ValueError):
        return False


def _as_float_array(g: Any) -> np.ndarray:
    if not isinstance(g, np.ndarray):
        raise TypeError(f"gradients must be numpy arrays, got {type(g).__name__}")
    return g


class SGD(Optimizer):
    """SGD with momentum and Nesterov momentum, as keras.optimizers.SGD::

        momentum == 0:  p = p - g * lr
        momentum > 0:   m = m * momentum - g * lr;  p = p + m   (or, Nesterov,
                        p = p + (m * momentum - g * lr))
    """

    def __init__(
        self,
        learning_rate: LearningRate = 0.01,
        momentum: float = 0.0,
        nesterov: bool = False,
        weight_decay: Optional[float] = None,
        clipnorm: Optional[float] = None,
        clipvalue: Optional[float] = None,
        global_clipnorm: Optional[float] = None,
        name: str = "SGD",
    ) -> None:
        super().__init__(learning_rate, weight_decay, clipnorm, clipvalue, global_clipnorm, name)
        self.momentum = momentum
        self.nesterov = nesterov
        self._slot_names = ("momentums",) if momentum != 0 else ()
        self._check()

    def _update(self, params, grads, slots, learning_rate, step):
        _core._sgd_multi(
            params, grads, slots.get("momentums"),
            learning_rate, self.momentum, self.nesterov, self.weight_decay,
        )

    def get_config(self):
        return {**super().get_config(), "momentum": self.momentum, "nesterov": self.nesterov}


class RMSprop(Optimizer):
    """RMSprop (epsilon inside the square root), as keras.optimizers.RMSprop::

        v = rho * v + (1 - rho) * g**2
        centered:  a = rho * a + (1 - rho) * g;  d = v - a**2 + eps,  else d = v + eps
        inc = lr * g / sqrt(d)
        momentum > 0:  buf = momentum * buf + inc;  p = p - buf,  else p = p - inc
    """

    def __init__(
        self,
        learning_rate: LearningRate = 0.001,
        rho: float = 0.9,
        momentum: float = 0.0,
        epsilon: float = 1e-07,
        centered: bool = False,
        weight_decay: Optional[float] = None,
        clipnorm: Optional[float] = None,
        clipvalue: Optional[float] = None,
        global_clipnorm: Optional[float] = None,
        name: str = "RMSprop",
    ) -> None:
        super().__init__(learning_rate, weight_decay, clipnorm, clipvalue, global_clipnorm, name)
        self.rho = rho
        self.momentum = momentum
        self.epsilon = epsilon
        self.centered = bool(centered)
        names = ["velocities"]
        if _positive(momentum):
            names.append("momentums")
        if self.centered:
            names.append("average_gradients")
        self._slot_names = tuple(names)
        self._check()

    def _update(self, params, grads, slots, learning_rate, step):
        _core._rmsprop_multi(
            params, grads, slots["velocities"], slots.get("momentums"), slots.get("average_gradients"),
            learning_rate, self.rho, self.epsilon, self.momentum, self.weight_decay,
        )

    def get_config(self):
        return {
            **super().get_config(), "rho": self.rho, "momentum": self.momentum,
            "epsilon": self.epsilon, "centered": self.centered,
        }


class Adam(Optimizer):
    """Adam and AMSGrad, as keras.optimizers.Adam::

        alpha = lr * sqrt(1 - beta_2**t) / (1 - beta_1**t)
        m = m + (g - m) * (1 - beta_1);  v = v + (g**2 - v) * (1 - beta_2)
        amsgrad:  v_hat = max(v_hat, v), used instead of v
        p = p - m * alpha / (sqrt(v) + eps)
    """

    def __init__(
        self,
        learning_rate: LearningRate = 0.001,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-07,
        amsgrad: bool = False,
        weight_decay: Optional[float] = None,
        clipnorm: Optional[float] = None,
        clipvalue: Optional[float] = None,
        global_clipnorm: Optional[float] = None,
        name: str = "Adam",
    ) -> None:
        super().__init__(learning_rate, weight_decay, clipnorm, clipvalue, global_clipnorm, name)
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.amsgrad = bool(amsgrad)
        self._slot_names = ("momentums", "velocities") + (("velocity_hats",) if self.amsgrad else ())
        self._check()

    def _update(self, params, grads, slots, learning_rate, step):
        _core._adam_multi(
            params, grads, slots["momentums"], slots["velocities"], slots.get("velocity_hats"),
            step, learning_rate, self.beta_1, self.beta_2, self.epsilon, self.weight_decay,
        )

    def get_config(self):
        return {
            **super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2,
            "epsilon": self.epsilon, "amsgrad": self.amsgrad,
        }
