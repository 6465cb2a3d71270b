"""Loads the TensorFlow custom op once per process (building it first if needed) and remembers why
it could not be loaded, for :func:`pyoptim.keras.fast_path_available` and the fallback warning.

Set ``PYOPTIM_KERAS_FAST_PATH=0`` to never load it (every update then runs Keras' own code).
"""
from __future__ import annotations

import os
import threading
import types
from pathlib import Path
from typing import Optional

import tensorflow as tf  # before tf.load_op_library: the op links against TensorFlow's runtime

from . import _build

_lock = threading.Lock()
_module: Optional[types.ModuleType] = None
_path: Optional[Path] = None
_isa: Optional[str] = None
_error: Optional[str] = None
_log: Optional[str] = None
_tried = False


def disabled_by_environment() -> bool:
    """True when ``PYOPTIM_KERAS_FAST_PATH`` is set to 0/false/no/off."""
    return os.environ.get("PYOPTIM_KERAS_FAST_PATH", "1").strip().lower() in {"0", "false", "no", "off"}


def load() -> Optional[types.ModuleType]:
    """The op module (functions ``pyoptim_apply_sgd`` / ``_rmsprop`` / ``_adam`` /
    ``pyoptim_kernel_calls``), or None if it cannot be built or loaded (see :func:`error`)."""
    global _module, _path, _isa, _error, _log, _tried
    if _tried:
        return _module
    with _lock:
        if _tried:
            return _module
        if disabled_by_environment():
            _error = "disabled by PYOPTIM_KERAS_FAST_PATH=0"
        else:
            try:
                _isa = _build.selected_isa()
                _path = _build.build()
                _module = tf.load_op_library(str(_path))
            except Exception as exc:  # noqa: BLE001 - any failure means: use Keras' code
                _module = None
                _error = f"{type(exc).__name__}: {exc}"
                _log = getattr(exc, "log", None) or _error
        _tried = True
    return _module


def error() -> Optional[str]:
    """Why the op is unavailable, in one line (None when it loaded or was not tried yet)."""
    return _error


def log() -> Optional[str]:
    """The whole story behind :func:`error`: for a failed build, the compiler command and all
    of its output (None when the op loaded or was not tried yet)."""
    return _log


def isa() -> str:
    """The instruction set the op's kernels use: fixed when it is loaded (the one
    ``pyoptim.get_isa()`` gave then); before that, the one it would be built for now."""
    return _isa if _module is not None and _isa else _build.selected_isa()


def path() -> Optional[Path]:
    """The loaded library's path (None if not loaded)."""
    return _path
