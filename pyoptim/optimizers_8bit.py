"""Adam and AdamW with 8-bit block-wise state, for NumPy arrays.

A float32 Adam step moves 28 bytes per element (parameter 8, gradient 4, m 8, v 8) and keeps
8 bytes of state per parameter.  :class:`Adam8bit` keeps m and v as one byte per element plus
one scale per block of ``block_size`` elements (the block's largest magnitude), and
dequantises, updates and requantises them in the same single native pass: about 16 bytes per
element moved, and a quarter of the state (``2 + 8 / block_size`` bytes per parameter).

The codes (``csrc/pyoptim/adam8bit.hpp``; chosen by measurement, ``bench/quant_codes.py``)::

    m = sign(q) * (q / 127)^2 * scale_m          q in [-127, 127]   (int8)
    v = (q / 255)^4 * scale_v                    q in [0, 255]      (uint8)

so ``sqrt(|m| / scale)`` and ``(v / scale)^(1/4)`` are rounded to a uniform grid (half to even).
Per element, Adam's arithmetic in Keras' order on the dequantised state::

    (weight decay)  p = p - p * wd * lr
    m = m + (g - m) * (1 - beta_1);   v = v + (g^2 - v) * (1 - beta_2)
    AMSGrad: v_hat = max(v_hat, v), used instead of v (v_hat has v's code)
    p = p - (m * alpha) / (sqrt(v) + eps),   alpha = lr * sqrt(1 - beta_2^t) / (1 - beta_1^t)

with the new m and v before they are requantised; then each block's new scale is its largest
``|m|`` (``|v|``) and the codes are recomputed against it.

Tensors with fewer than ``min_8bit_size`` elements (biases, norms) keep float32 state and run
:class:`pyoptim.Adam`'s kernel: the same bits as ``pyoptim.Adam`` for them.

Non-finite values: a block whose new m, v (or v_hat) holds a NaN or an infinity stores the scale
NaN (and codes 0).  Its parameters get this step's update (NaN only where the element's own
arithmetic gave NaN); from the next step on every element of the block dequantises to NaN, so the
block's parameters become NaN.  Other blocks, and other tensors, are never affected.
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from . import _core
from .optimizers import Adam, LearningRate, _state_dtype

_MIN_BLOCK, _MAX_BLOCK, _BLOCK_MULTIPLE = _core._build_info()["quant_block_sizes"]

# Slot name -> (what it holds) for the 8-bit tensors; float tensors hold float arrays in the
# first three and empty scale arrays.
_CODE_SLOTS = ("momentums", "velocities", "velocity_hats")
_SCALE_SLOTS = ("momentum_scales", "velocity_scales", "velocity_hat_scales")


def _block_size_arg(value: Any) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"block_size must be an int, got {type(value).__name__}")
    if not (_MIN_BLOCK <= value <= _MAX_BLOCK and value % _BLOCK_MULTIPLE == 0):
        raise ValueError(
            f"block_size must be a multiple of {_BLOCK_MULTIPLE} from {_MIN_BLOCK} to {_MAX_BLOCK}, "
            f"got {value!r}"
        )
    return int(value)


def _min_8bit_size_arg(value: Any) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"min_8bit_size must be an int, got {type(value).__name__}")
    if value < 0:
        raise ValueError(f"min_8bit_size must be >= 0, got {value!r}")
    return int(value)


def num_blocks(size: int, block_size: int) -> int:
    """Scales per state of a tensor of ``size`` elements: ``ceil(size / block_size)``."""
    return -(-int(size) // int(block_size))


class Adam8bit(Adam):
    """Adam (and AMSGrad) with 8-bit block-wise m and v; ``pyoptim.Adam``'s arguments plus:

    * ``block_size`` (256): elements per scale, a multiple of 32 from 32 to 4096;
    * ``min_8bit_size`` (4096): tensors with fewer elements keep float32 state (as
      bitsandbytes' ``min_8bit_size``); 0 quantises every tensor.

    Slots (``opt.slots``): ``momentums`` (int8 codes, the parameter's shape), ``velocities``
    (uint8), ``velocity_hats`` (uint8, AMSGrad), and per state the block scales
    ``momentum_scales``, ``velocity_scales``, ``velocity_hat_scales`` (float32, float64 for
    float64 parameters; 1-D, ``ceil(size / block_size)`` elements).  A tensor below
    ``min_8bit_size`` has float m / v / v_hat there and empty scales.  See the module's
    docstring for the codes and the arithmetic.
    """

    _hyper_names = Adam._hyper_names + ("block_size", "min_8bit_size")
    _structural_names = Adam._structural_names + ("block_size", "min_8bit_size")
    _variable_groups = (
        ("momentums", "velocities"),
        ("velocity_hats",),
        ("momentum_scales", "velocity_scales"),
        ("velocity_hat_scales",),
    )

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
        name: str = "Adam8bit",
        block_size: int = 256,
        min_8bit_size: int = 4096,
    ) -> None:
        object.__setattr__(self, "block_size", _block_size_arg(block_size))
        object.__setattr__(self, "min_8bit_size", _min_8bit_size_arg(min_8bit_size))
        super().__init__(
            learning_rate=learning_rate, beta_1=beta_1, beta_2=beta_2, epsilon=epsilon,
            amsgrad=amsgrad, weight_decay=weight_decay, clipnorm=clipnorm, clipvalue=clipvalue,
            global_clipnorm=global_clipnorm, name=name,
        )

    @property
    def _slot_names(self) -> Tuple[str, ...]:
        if self.amsgrad:
            return _CODE_SLOTS + _SCALE_SLOTS
        return _CODE_SLOTS[:2] + _SCALE_SLOTS[:2]

    def _set_hyperparameter(self, name: str, value: Any) -> None:
        if name in ("block_size", "min_8bit_size"):
            value = _block_size_arg(value) if name == "block_size" else _min_8bit_size_arg(value)
            if self._slots is not None and value != getattr(self, name):
                raise ValueError(
                    f"cannot set {name}={value!r} (was {getattr(self, name)!r}): this optimizer "
                    f"already has state laid out for it. Set {name} before the first apply, or "
                    "use a new optimizer"
                )
            object.__setattr__(self, name, value)
            return
        super()._set_hyperparameter(name, value)

    def _new_slots(self, params: List[Any]) -> Dict[str, List[Any]]:
        slots: Dict[str, List[Any]] = {k: [] for k in self._slot_names}
        for p in params:
            if not isinstance(p, np.ndarray):  # refused by the kernel's checks with its name
                for k in slots:
                    slots[k].append(p)
                continue
            dt = _state_dtype(p)
            quantized = p.size >= self.min_8bit_size
            order = "F" if p.flags.f_contiguous and not p.flags.c_contiguous else "C"
            for k in slots:
                if k in _SCALE_SLOTS:
                    count = num_blocks(p.size, self.block_size) if quantized else 0
                    slots[k].append(np.zeros(count, dtype=dt))
                elif not quantized:
                    slots[k].append(np.zeros_like(p, dtype=dt))
                else:
                    code = np.int8 if k == "momentums" else np.uint8
                    slots[k].append(np.zeros(p.shape, dtype=code, order=order))
        return slots

    def _update(self, params, grads, slots, learning_rate, step, no_decay):
        _core._adam8bit_multi(
            params, grads, slots["momentums"], slots["velocities"], slots.get("velocity_hats"),
            slots["momentum_scales"], slots["velocity_scales"], slots.get("velocity_hat_scales"),
            step, learning_rate, self.beta_1, self.beta_2, self.epsilon, self.weight_decay,
            self.block_size, no_decay,
        )

    def _check(self) -> None:
        # The kernels' own checks on empty arrays, through both paths (float and 8-bit state).
        super()._check()
        e = np.empty(0, np.float32)
        codes = [np.empty(0, np.int8), np.empty(0, np.uint8), np.empty(0, np.uint8)]
        scales = [np.empty(0, np.float32) for _ in range(3)]
        ams = self.amsgrad
        _core._adam8bit_multi(
            [e], [e], [codes[0]], [codes[1]], [codes[2]] if ams else None, [scales[0]], [scales[1]],
            [scales[2]] if ams else None, 1, 0.0 if callable(self._learning_rate) else self._learning_rate,
            self.beta_1, self.beta_2, self.epsilon, self.weight_decay, self.block_size, None,
        )

    def _check_state_array(self, name: str, i: int, a: Any) -> None:
        if not isinstance(a, np.ndarray):
            raise TypeError(f"state slot {name}[{i}] must be a numpy array, got {type(a).__name__}")
        allowed = {np.dtype(np.float32), np.dtype(np.float64)}
        if name == "momentums":
            allowed.add(np.dtype(np.int8))
        elif name in ("velocities", "velocity_hats"):
            allowed.add(np.dtype(np.uint8))
        if a.dtype not in allowed:
            raise TypeError(
                f"state slot {name}[{i}] has dtype {a.dtype}; it must be one of "
                f"{sorted(str(d) for d in allowed)}"
            )

    def _check_state_slots(self, slots: Any) -> None:
        super()._check_state_slots(slots)
        # Per tensor: all three states 8-bit (codes of one size, scales for the config's
        # block size are checked at apply) or all float.
        for i in range(len(slots["momentums"])):
            quantized = [slots[k][i].dtype.kind in "iu" for k in _CODE_SLOTS if k in slots]
            if len(set(quantized)) > 1:
                raise ValueError(
                    f"state for tensor {i} mixes 8-bit and float slots: "
                    + ", ".join(f"{k}[{i}] {slots[k][i].dtype}" for k in _CODE_SLOTS if k in slots)
                )

    def state_bytes(self) -> int:
        """Bytes of optimizer state held (every slot array and scale)."""
        if self._slots is None:
            return 0
        return sum(a.nbytes for arrays in self._slots.values() for a in arrays)

    def get_config(self):
        return {**super().get_config(), "block_size": self.block_size, "min_8bit_size": self.min_8bit_size}


class AdamW8bit(Adam8bit):
    """:class:`Adam8bit` with decoupled weight decay on by default (``weight_decay=0.004``),
    ``pyoptim.AdamW``'s (Keras') argument order and defaults, plus ``block_size`` and
    ``min_8bit_size``.  ``p = p - p * weight_decay * lr`` runs in the same native pass.  As in
    Keras' AdamW, ``weight_decay=None`` is refused."""

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
        name: str = "AdamW8bit",
        block_size: int = 256,
        min_8bit_size: int = 4096,
    ) -> None:
        super().__init__(
            learning_rate=learning_rate, beta_1=beta_1, beta_2=beta_2, epsilon=epsilon,
            amsgrad=amsgrad, weight_decay=weight_decay, clipnorm=clipnorm, clipvalue=clipvalue,
            global_clipnorm=global_clipnorm, name=name, block_size=block_size,
            min_8bit_size=min_8bit_size,
        )

    def _check(self) -> None:
        super()._check()
        if self.weight_decay is None:
            raise ValueError("Argument `weight_decay` must be a float. Received: weight_decay=None")
