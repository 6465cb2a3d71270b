"""Stateful NumPy optimizers with keras.optimizers' arguments.

``opt.apply(grads, params)`` updates every array of ``params`` in place in one
native call: the kernel runs one parallel region over all the arrays (a
multi-tensor kernel), with the same per-element arithmetic as the functional API
and as Keras.  State arrays are created on the first call, one per parameter and
slot, with Keras' slot names.

Parameters must be writable, contiguous float32/float64/float16/bfloat16 NumPy
arrays (they are updated in place).  Gradients are read-only inputs: any
array-like of real numbers with the parameter's shape; as in Keras they are
clipped in their own dtype, then cast to the parameter's dtype.

Hyperparameters are attributes that may be changed at any time (the next
``apply`` uses them), with the constructor's checks.  The ones that decide which
slots exist (SGD's ``momentum`` between 0 and non-zero, RMSprop's ``momentum``
between 0 and > 0, ``centered``, ``amsgrad``) can change only while the optimizer
has no state (before the first ``apply``); afterwards such a change is refused
with a ValueError naming the attribute.
"""
from __future__ import annotations

import math
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple, Union

import numpy as np

from . import _core
from ._tfsum import tf_sum

LearningRate = Union[float, Callable[[int], float]]

_CLIP_ARGS = ("clipnorm", "clipvalue", "global_clipnorm")


def _is_real_number(x: Any) -> bool:
    """A Python or NumPy int or float; not a bool (NumPy's neither)."""
    return isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, (bool, np.bool_))


def _learning_rate_arg(value: Any) -> LearningRate:
    if callable(value):
        return value
    if not _is_real_number(value):
        raise TypeError(f"learning_rate must be a float or a callable of the step, got {type(value).__name__}")
    return value


def _clip_arg(name: str, value: Any) -> Optional[float]:
    if value is None:
        return None
    if not _is_real_number(value):
        raise TypeError(f"{name} must be a positive finite number or None, got {type(value).__name__} {value!r}")
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a positive finite number or None, got {value!r}")
    return float(value)


class Optimizer:
    """Base class: learning rate (float or callable of the step), weight decay,
    gradient clipping, iterations, state save and load.

    Not usable by itself: :class:`SGD`, :class:`RMSprop`, :class:`Adam` and
    :class:`AdamW` are the optimizers.  A subclass lists its hyperparameters
    (``_hyper_names``), names its slots (``_slot_names``, in Keras' creation
    order ``_variable_groups``) and implements ``_update``.
    """

    # Hyperparameters checked on assignment (see __setattr__); subclasses add theirs.
    _hyper_names: Tuple[str, ...] = ("weight_decay",) + _CLIP_ARGS
    # Hyperparameters that decide the set of slots.
    _structural_names: Tuple[str, ...] = ()
    # Slots in the order Keras creates its variables: within a group the slots
    # of one parameter are interleaved (Adam's m0, v0, m1, v1, ...).
    _variable_groups: Tuple[Tuple[str, ...], ...] = ()

    def __init__(
        self,
        learning_rate: LearningRate,
        weight_decay: Optional[float] = None,
        clipnorm: Optional[float] = None,
        clipvalue: Optional[float] = None,
        global_clipnorm: Optional[float] = None,
        name: Optional[str] = None,
    ) -> None:
        object.__setattr__(self, "_ready", False)
        clips = {"clipnorm": clipnorm, "clipvalue": clipvalue, "global_clipnorm": global_clipnorm}
        clips = {k: _clip_arg(k, v) for k, v in clips.items()}
        _one_clip(clips)
        self._learning_rate = _learning_rate_arg(learning_rate)
        self.weight_decay = weight_decay
        self.clipnorm = clips["clipnorm"]
        self.clipvalue = clips["clipvalue"]
        self.global_clipnorm = clips["global_clipnorm"]
        self.name = name or type(self).__name__
        self._iterations = 0
        self._slots: Optional[Dict[str, List[np.ndarray]]] = None
        self._excluded_arrays: Dict[int, np.ndarray] = {}
        self._excluded_indices: frozenset = frozenset()

    def _finish_init(self) -> None:
        """Subclasses call this last: checks every hyperparameter, then checks
        every later assignment of one."""
        self._check()
        object.__setattr__(self, "_ready", True)

    def __setattr__(self, name: str, value: Any) -> None:
        if name in self._hyper_names and self.__dict__.get("_ready"):
            self._set_hyperparameter(name, value)
        else:
            object.__setattr__(self, name, value)

    def _set_hyperparameter(self, name: str, value: Any) -> None:
        """Assignment of a hyperparameter after construction: the constructor's
        checks; a change of the slot set once state exists is refused."""
        if name in _CLIP_ARGS:
            value = _clip_arg(name, value)
            _one_clip({**{k: getattr(self, k) for k in _CLIP_ARGS}, name: value})
        elif name in ("centered", "amsgrad"):
            value = bool(value)
        old_value, old_slots = self.__dict__[name], self._slot_names
        object.__setattr__(self, name, value)
        try:
            if self._slots is not None and self._slot_names != old_slots:
                raise ValueError(
                    f"cannot set {name}={value!r} (was {old_value!r}): this optimizer already has state "
                    f"with slots {list(old_slots)}, and {name}={value!r} needs slots "
                    f"{list(self._slot_names)}. Set {name} before the first apply, or use a new optimizer"
                )
            self._check()
        except BaseException:
            object.__setattr__(self, name, old_value)
            raise

    # ------------------------------------------------------------------ public
    @property
    def iterations(self) -> int:
        """Number of updates applied so far."""
        return self._iterations

    @property
    def learning_rate(self) -> float:
        """The learning rate of the next update (a callable gets ``iterations``).

        Assignable, as in Keras: a float or a callable of the step (e.g. a
        ``keras.optimizers.schedules`` object), with the constructor's checks;
        the next ``apply`` uses it."""
        lr = self._learning_rate
        return float(lr(self._iterations)) if callable(lr) else float(lr)

    @learning_rate.setter
    def learning_rate(self, value: LearningRate) -> None:
        value = _learning_rate_arg(value)
        old = self._learning_rate
        self._learning_rate = value
        try:
            self._check()
        except BaseException:
            self._learning_rate = old
            raise

    @property
    def built(self) -> bool:
        return self._slots is not None

    @property
    def variables(self) -> List[np.ndarray]:
        """The optimizer's state as read-only views, in the order of
        ``keras.optimizers.<Kind>(...).variables``: ``iterations`` first (a 0-d
        int64 array, a copy), then the slot arrays in the order Keras creates
        them (Adam: ``momentums[0], velocities[0], momentums[1], ...`` then the
        ``velocity_hats``; RMSprop: every velocity, then every momentum, then every
        average gradient).  Keras' float learning-rate variable has no
        counterpart (see :attr:`learning_rate`).  The views show the live state:
        copy them to keep a snapshot (or use :meth:`state_dict`)."""
        out = [_read_only(np.array(self._iterations, dtype=np.int64))]
        if self._slots is None:
            return out
        for group in self._variable_groups:
            names = [n for n in group if n in self._slots]
            if names:
                for i in range(len(self._slots[names[0]])):
                    out.extend(_read_only(self._slots[n][i]) for n in names)
        return out

    @property
    def slots(self) -> Dict[str, List[np.ndarray]]:
        """``{slot name: [read-only view per parameter]}`` ({} before the first
        apply).  Live views, not copies."""
        if self._slots is None:
            return {}
        return {k: [_read_only(a) for a in v] for k, v in self._slots.items()}

    def exclude_from_weight_decay(
        self,
        var_list: Optional[Sequence[np.ndarray]] = None,
        var_names: Optional[Sequence[str]] = None,
        *,
        indices: Optional[Sequence[int]] = None,
    ) -> None:
        """Exclude parameters from weight decay, as Keras' method of that name.

        NumPy arrays have no names, so ``var_names`` is refused: name the
        parameters by the arrays themselves (``var_list``, matched by identity,
        as Keras matches variables) or by their positions in ``params``
        (``indices``).  Each call replaces the previous exclusions; the next
        ``apply`` uses them."""
        if var_names:
            raise TypeError(
                "var_names: NumPy arrays have no names; pass the arrays (var_list=[...]) or their "
                "positions in params (indices=[...])"
            )
        arrays: Dict[int, np.ndarray] = {}
        for i, a in enumerate(var_list or ()):
            if not isinstance(a, np.ndarray):
                raise TypeError(f"var_list[{i}] must be a numpy array (a parameter), got {type(a).__name__}")
            arrays[id(a)] = a  # holds a reference: the id stays this array's
        found = set()
        for i, k in enumerate(indices or ()):
            if isinstance(k, (bool, np.bool_)) or not isinstance(k, (int, np.integer)):
                raise TypeError(f"indices[{i}] must be an int, got {type(k).__name__}")
            if k < 0:
                raise ValueError(f"indices[{i}] must be >= 0, got {k}")
            found.add(int(k))
        self._excluded_arrays, self._excluded_indices = arrays, frozenset(found)

    def apply(self, grads: Sequence[Any], params: Sequence[np.ndarray]) -> None:
        """Update every array in ``params`` in place from ``grads`` (one native call).

        ``params``: writable contiguous NumPy arrays (float32, float64, float16,
        bfloat16).  ``grads``: per parameter, an array-like of real numbers with
        its shape (NumPy arrays and scalars of any float dtype, lists, ...), or
        ``None``, which leaves that parameter (and its state) untouched, as in
        Keras.  Gradients are clipped in their own dtype, then cast to the
        parameter's dtype (Keras' order).  Nothing is modified when an argument
        is refused.
        """
        if type(self)._update is Optimizer._update:
            raise NotImplementedError(
                f"{type(self).__name__} has no update rule: pyoptim.Optimizer is the base class; "
                "use pyoptim.SGD, pyoptim.RMSprop or pyoptim.Adam (or a subclass that implements _update)"
            )
        params = list(params)
        grads = list(grads)
        if len(grads) != len(params):
            raise ValueError(f"grads has {len(grads)} entries but params has {len(params)}")
        grads = [_read_grad(i, g, p) for i, (g, p) in enumerate(zip(grads, params))]
        no_decay = self._no_decay_mask(params)
        fresh = self._slots is None
        if fresh:
            self._slots = self._new_slots(params)
        elif len(params) != len(next(iter(self._slots.values()), params)):
            raise ValueError(
                f"this optimizer was built for {len(next(iter(self._slots.values())))} arrays, "
                f"got {len(params)} params"
            )
        try:
            # A None gradient skips its parameter (the kernels see None and skip it).
            grads = [_cast_grad(g, p) for g, p in zip(self._clip(grads), params)]
            self._update(params, grads, self._slots, self.learning_rate, self._iterations + 1, no_decay)
        except BaseException:
            if fresh:
                self._slots = None
            raise
        self._iterations += 1

    def apply_gradients(self, grads_and_vars: Iterable[Tuple[Any, np.ndarray]]) -> None:
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
        """The optimizer's state: its kind, iterations, copies of every slot array
        and its configuration (``get_config()``)."""
        return {
            "optimizer": type(self).__name__,
            "iterations": self._iterations,
            "slots": None if self._slots is None else {k: [a.copy(order="K") for a in v] for k, v in self._slots.items()},
            "config": self.get_config(),
        }

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        """Restore :meth:`state_dict` output (bit-exact): iterations, slots and the
        hyperparameters of ``state['config']`` (learning rate, betas, epsilon, rho,
        momentum, weight decay, clipping; not ``name``), so that training resumes
        exactly as it would have gone on.

        The state must come from the same kind of optimizer with the same slots:
        the settings that decide them (SGD momentum zero or not, RMSprop momentum
        zero or not, centered, amsgrad) must agree, else ValueError; when this
        optimizer is already built, the arrays must have the same shapes and
        dtypes.  Nothing is changed when the state is refused."""
        if not isinstance(state, dict) or "slots" not in state or "iterations" not in state:
            raise TypeError("state must be a dict from Optimizer.state_dict()")
        kind = state.get("optimizer")
        if kind != type(self).__name__:
            raise ValueError(f"state is from a {kind} optimizer, this optimizer is {type(self).__name__}")
        iterations = state["iterations"]
        if isinstance(iterations, bool) or not isinstance(iterations, (int, np.integer)) or iterations < 0:
            raise ValueError(f"state['iterations'] must be an int >= 0, got {iterations!r}")
        slots = state["slots"]
        if slots is not None:
            self._check_state_slots(slots)
        restored = self._restored_config(state.get("config"))
        if restored is not None:
            for key in self._hyper_names:
                object.__setattr__(self, key, getattr(restored, key))
            self._learning_rate = restored._learning_rate
        if slots is None:
            self._slots = None
        else:
            self._slots = {k: [np.array(a, copy=True, order="K") for a in v] for k, v in slots.items()}
        self._iterations = int(iterations)

    # --------------------------------------------------------------- internals
    def _check_state_slots(self, slots: Any) -> None:
        if not isinstance(slots, dict):
            raise TypeError("state['slots'] must be None or a dict of lists of arrays")
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
                self._check_state_array(name, i, a)
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

    def _restored_config(self, config: Any) -> Optional["Optimizer"]:
        """An optimizer built from ``state['config']`` (checked as the constructor
        checks), or None when the state has no config."""
        if config is None:
            return None
        if not isinstance(config, dict):
            raise TypeError("state['config'] must be a dict from get_config()")
        mine = self.get_config()
        unknown = set(config) - set(mine)
        if unknown:
            raise ValueError(f"state['config'] has keys {sorted(unknown)} that {type(self).__name__} does not know")
        restored = type(self).from_config({**mine, **config, "name": self.name})
        if restored._slot_names != self._slot_names:
            differ = [
                f"{k}={getattr(restored, k)!r} (this optimizer: {getattr(self, k)!r})"
                for k in self._structural_names if getattr(restored, k) != getattr(self, k)
            ]
            raise ValueError(
                f"state['config'] has {', '.join(differ)}, which needs slots {list(restored._slot_names)}, "
                f"this optimizer has slots {list(self._slot_names)}; create it with the saved settings"
            )
        return restored

    @property
    def _slot_names(self) -> Tuple[str, ...]:
        return ()

    def _new_slots(self, params: List[Any]) -> Dict[str, List[Any]]:
        """The state arrays of a first ``apply``: zeros like each parameter, in the state dtype
        (a non-array parameter is passed through, for the kernel's checks to refuse by name)."""
        return {
            slot: [np.zeros_like(p, dtype=_state_dtype(p)) if isinstance(p, np.ndarray) else p for p in params]
            for slot in self._slot_names
        }

    def _check_state_array(self, name: str, i: int, a: Any) -> None:
        """Refuses a state array of :meth:`load_state_dict` that no slot can hold."""
        if not isinstance(a, np.ndarray) or a.dtype not in (np.float32, np.float64):
            raise TypeError(f"state slot {name}[{i}] must be a float32 or float64 numpy array")

    def _no_decay_mask(self, params: List[Any]) -> Optional[Tuple[bool, ...]]:
        if self.weight_decay is None or not (self._excluded_arrays or self._excluded_indices):
            return None
        beyond = [k for k in self._excluded_indices if k >= len(params)]
        if beyond:
            raise ValueError(
                f"exclude_from_weight_decay(indices=...) names index {min(beyond)}, "
                f"but params has {len(params)} arrays"
            )
        ex = self._excluded_arrays
        return tuple(
            i in self._excluded_indices or ex.get(id(p)) is p for i, p in enumerate(params)
        )

    def _update(self, params, grads, slots, learning_rate: float, step: int, no_decay) -> None:
        raise NotImplementedError(
            "pyoptim.Optimizer is the base class; use pyoptim.SGD, pyoptim.RMSprop or pyoptim.Adam"
        )

    def _clip(self, grads: List[Optional[np.ndarray]]) -> List[Optional[np.ndarray]]:
        """Keras' gradient clipping, in each gradient's dtype; returns new arrays
        (None stays None)."""
        if not (self.clipnorm or self.global_clipnorm or self.clipvalue):
            return grads
        present = [g for g in grads if g is not None]
        if not present:
            return grads
        clipped = iter(self._clip_present(present))
        return [None if g is None else next(clipped) for g in grads]

    def _clip_present(self, grads: List[np.ndarray]) -> List[np.ndarray]:
        with np.errstate(all="ignore"):
            if self.clipnorm:
                # tf.clip_by_norm (Keras' TensorFlow backend), in the gradient's dtype.
                out = []
                for g in grads:
                    T = g.dtype.type
                    c = T(self.clipnorm)
                    l2sum = _sum_of_squares(g)
                    l2norm = np.sqrt(l2sum) if l2sum > 0 else l2sum
                    out.append(np.asarray((g * c) / np.maximum(l2norm, c), dtype=g.dtype))
                return out
            if self.global_clipnorm:
                # keras.src.optimizers.base_optimizer.clip_by_global_norm: the
                # squared norms in each gradient's dtype, stacked (promoted to a
                # common dtype), summed, square root; then the scale in that dtype.
                dt = np.result_type(*[g.dtype for g in grads])
                T = dt.type
                squares = np.array([_sum_of_squares(g) for g in grads], dtype=dt)
                norm = np.sqrt(_sum(squares))
                clip = self.global_clipnorm
                scale = T(clip) * np.minimum(T(1.0) / norm, T(1.0 / clip))
                scale = T(scale + (norm - norm))
                return [np.asarray(g.astype(dt, copy=False) * scale, dtype=dt) for g in grads]
            v = self.clipvalue
            return [np.asarray(np.clip(g, g.dtype.type(-v), g.dtype.type(v)), dtype=g.dtype) for g in grads]

    def _check(self) -> None:
        """Validate the hyperparameters now, with the kernels' own checks, on empty arrays."""
        e = np.empty(0, np.float32)
        lr = 0.0 if callable(self._learning_rate) else self._learning_rate
        self._update([e], [e], {k: [np.empty(0, np.float32)] for k in self._slot_names}, lr, 1, None)

    def __repr__(self) -> str:
        cfg = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items() if k != "name")
        return f"{type(self).__name__}({cfg})"


def _one_clip(clips: Dict[str, Optional[float]]) -> None:
    if sum(v is not None for v in clips.values()) > 1:
        raise ValueError(
            "Only one of clipnorm, clipvalue and global_clipnorm can be set; received "
            + ", ".join(f"{k}={v}" for k, v in clips.items())
        )


def _read_only(a: np.ndarray) -> np.ndarray:
    view = a.view()
    view.flags.writeable = False
    return view


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


def _is_float_dtype(dt: np.dtype) -> bool:
    return dt.kind == "f" or (dt.kind == "V" and dt.itemsize == 2 and dt.name == "bfloat16")


def _read_grad(i: int, g: Any, p: Any) -> Optional[np.ndarray]:
    """A gradient as an array, without modifying or copying a float NumPy array:
    NumPy arrays and scalars keep their dtype (clipping runs in it, as Keras
    clips a tensor in its dtype); other array-likes (lists, Python numbers) and
    integer or bool arrays are converted to the parameter's dtype."""
    if g is None:
        return None
    target = p.dtype if isinstance(p, np.ndarray) else None
    try:
        if isinstance(g, (np.ndarray, np.generic)):
            a = np.asarray(g)
        else:
            a = np.asarray(g, dtype=target)
    except (TypeError, ValueError) as e:
        raise TypeError(
            f"grads[{i}] must be an array-like of real numbers with params[{i}]'s shape, "
            f"got {type(g).__name__} ({e})"
        ) from None
    if a.dtype.kind in "biu" and target is not None:
        a = a.astype(target)
    elif not _is_float_dtype(a.dtype):
        raise TypeError(f"grads[{i}] must hold real numbers, got dtype {a.dtype}")
    return a


def _cast_grad(g: Optional[np.ndarray], p: Any) -> Optional[np.ndarray]:
    """The gradient in the parameter's dtype and memory order (a copy only when
    needed); shapes are checked by the kernel's binding."""
    if g is None or not isinstance(p, np.ndarray):
        return g
    if g.dtype != p.dtype or not g.flags.aligned:
        g = g.astype(p.dtype)
    if p.flags.c_contiguous:
        if not g.flags.c_contiguous:
            g = np.ascontiguousarray(g)
    elif p.flags.f_contiguous and not g.flags.f_contiguous:
        g = np.asfortranarray(g)
    return g


def _sum(x: np.ndarray):
    """Sum of all elements in x's dtype: TensorFlow's order for float32/float64,
    float32 accumulation for float16/bfloat16."""
    if x.dtype in (np.float32, np.float64):
        return tf_sum(x)
    return x.dtype.type(tf_sum(x.astype(np.float32)))


def _sum_of_squares(g: np.ndarray):
    return _sum(np.square(g))


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
        self._finish_init()

    _hyper_names = Optimizer._hyper_names + ("momentum", "nesterov")
    _structural_names = ("momentum",)
    _variable_groups = (("momentums",),)

    @property
    def _slot_names(self):
        # Keras keeps momentum buffers only when momentum != 0.
        return ("momentums",) if self.momentum != 0 else ()

    def _update(self, params, grads, slots, learning_rate, step, no_decay):
        _core._sgd_multi(
            params, grads, slots.get("momentums"),
            learning_rate, self.momentum, self.nesterov, self.weight_decay, no_decay,
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
        self._finish_init()

    _hyper_names = Optimizer._hyper_names + ("rho", "momentum", "epsilon", "centered")
    _structural_names = ("momentum", "centered")
    _variable_groups = (("velocities",), ("momentums",), ("average_gradients",))

    @property
    def _slot_names(self):
        names = ["velocities"]
        if _positive(self.momentum):
            names.append("momentums")
        if self.centered:
            names.append("average_gradients")
        return tuple(names)

    def _update(self, params, grads, slots, learning_rate, step, no_decay):
        _core._rmsprop_multi(
            params, grads, slots["velocities"], slots.get("momentums"), slots.get("average_gradients"),
            learning_rate, self.rho, self.epsilon, self.momentum, self.weight_decay, no_decay,
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
        self._finish_init()

    _hyper_names = Optimizer._hyper_names + ("beta_1", "beta_2", "epsilon", "amsgrad")
    _structural_names = ("amsgrad",)
    _variable_groups = (("momentums", "velocities"), ("velocity_hats",))

    @property
    def _slot_names(self):
        return ("momentums", "velocities") + (("velocity_hats",) if self.amsgrad else ())

    def _update(self, params, grads, slots, learning_rate, step, no_decay):
        _core._adam_multi(
            params, grads, slots["momentums"], slots["velocities"], slots.get("velocity_hats"),
            step, learning_rate, self.beta_1, self.beta_2, self.epsilon, self.weight_decay, no_decay,
        )

    def get_config(self):
        return {
            **super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2,
            "epsilon": self.epsilon, "amsgrad": self.amsgrad,
        }


class AdamW(Adam):
    """AdamW, as keras.optimizers.AdamW: :class:`Adam` with decoupled weight decay
    on by default (``weight_decay=0.004``), Keras' argument order and defaults::

        p = p - p * weight_decay * lr        (Keras' _apply_weight_decay)
        then the Adam (or AMSGrad) update of :class:`Adam`

    The decay runs in the same native pass as the update, element by element
    (one ``_adam_multi`` call per ``apply``).  As in Keras, ``weight_decay`` must
    be a number: ``None`` is refused (ValueError) at construction and, as every
    assignment here is checked as the constructor checks, on assignment too
    (Keras accepts ``opt.weight_decay = None`` and stops decaying).
    """

    def __init__(
        self,
        learning_rate: LearningRate = 0.001,
        weight_decay: float = 0.004,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-07,
        amsgrad: bool = False,
        clipnorm: Optional[float] = None,
        clipvalue: Optional[float] = None,
        global_clipnorm: Optional[float] = None,
        name: str = "AdamW",
    ) -> None:
        super().__init__(
            learning_rate=learning_rate, beta_1=beta_1, beta_2=beta_2, epsilon=epsilon, amsgrad=amsgrad,
            weight_decay=weight_decay, clipnorm=clipnorm, clipvalue=clipvalue,
            global_clipnorm=global_clipnorm, name=name,
        )

    def _check(self) -> None:
        super()._check()
        if self.weight_decay is None:
            # keras.optimizers.AdamW's own check and message.
            raise ValueError("Argument `weight_decay` must be a float. Received: weight_decay=None")
