"""pyoptim: SGD, RMSprop and Adam as in-place C++ SIMD/OpenMP kernels.

* NumPy, functional: :func:`sgd_update`, :func:`rmsprop_update`, :func:`adam_update`
  update arrays in place, bit-identical to ``keras.optimizers`` in float32.
* NumPy, stateful: :class:`SGD`, :class:`RMSprop`, :class:`Adam`, :class:`AdamW` update
  a list of arrays in one native call (``opt.apply(grads, params)``); :class:`Adam8bit` and
  :class:`AdamW8bit` keep m and v as 8-bit block-wise codes (a quarter of the state, about
  16 instead of 28 bytes moved per element).
* NumPy, element-wise kernels: :class:`Lion`, :class:`Adamax`, :class:`Nadam`,
  :class:`Adagrad`, :class:`Adadelta`, :class:`Ftrl`, :class:`Lamb` (and their functional
  forms :func:`lion_update` ... :func:`lamb_update`), bit-identical to ``keras.optimizers``
  executing eagerly in float32 and float64.
* Keras: ``pyoptim.keras.SGD`` / ``RMSprop`` / ``Adam`` (imports TensorFlow).
"""
from __future__ import annotations

import warnings as _warnings

from . import _core
from ._core import (
    adam_update,
    get_isa,
    get_num_threads,
    rmsprop_update,
    set_isa,
    set_num_threads,
    sgd_update,
)
from .config import show_config
from .optimizers import SGD, Adam, AdamW, Optimizer, RMSprop
from .optimizers_8bit import Adam8bit, AdamW8bit
from .optimizers_elementwise import (
    Adadelta,
    Adagrad,
    Adamax,
    Ftrl,
    Lamb,
    Lion,
    Nadam,
    adadelta_update,
    adagrad_update,
    adamax_update,
    ftrl_update,
    lamb_update,
    lion_update,
    nadam_update,
)

__version__ = "0.1.0"

_isa_warning = _core._isa_from_environment()
if _isa_warning:
    _warnings.warn(_isa_warning, RuntimeWarning, stacklevel=2)

__all__ = [
    "SGD",
    "Adadelta",
    "Adagrad",
    "Adam",
    "Adam8bit",
    "Adamax",
    "AdamW",
    "AdamW8bit",
    "Ftrl",
    "Lamb",
    "Lion",
    "Nadam",
    "Optimizer",
    "RMSprop",
    "adadelta_update",
    "adagrad_update",
    "adam_update",
    "adamax_update",
    "ftrl_update",
    "get_isa",
    "get_num_threads",
    "lamb_update",
    "lion_update",
    "nadam_update",
    "rmsprop_update",
    "set_isa",
    "set_num_threads",
    "sgd_update",
    "show_config",
]
