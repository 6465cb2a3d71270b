"""The fallback warning: once per optimizer class and reason, pointing at the user's line.

Keras calls ``update_step`` many frames below the user's ``model.fit(...)`` or
``optimizer.apply_gradients(...)``, through Keras, TensorFlow (tf.function tracing, AutoGraph's
generated code) and the standard library; a fixed ``stacklevel`` would point into one of them.
:func:`user_stacklevel` walks out of all of those and names the first frame of the caller's own
code, the line a user can act on.
"""
from __future__ import annotations

import os
import sys
import sysconfig
import threading
import warnings
from types import FrameType
from typing import Optional, Set, Tuple

import keras
import tensorflow as tf

import pyoptim


def _directory(module: object) -> str:
    return os.path.dirname(os.path.realpath(getattr(module, "__file__", "") or "")) + os.sep


# Frames from these directories are not the user's: the libraries and Python's own modules.
_LIBRARY_DIRS = tuple({_directory(keras), _directory(tf), _directory(pyoptim),
                       os.path.realpath(sysconfig.get_paths()["stdlib"]) + os.sep})
_warned: Set[Tuple[str, str]] = set()
_lock = threading.Lock()


def _is_library(frame: FrameType) -> bool:
    name = frame.f_code.co_filename
    if name.startswith("<") or "__autograph_generated_file" in name:
        return True  # frozen modules, exec'd code, AutoGraph's conversion of a user function
    return os.path.realpath(name).startswith(_LIBRARY_DIRS)


def user_stacklevel() -> int:
    """The ``stacklevel`` for a ``warnings.warn`` call made by this function's caller that names
    the innermost frame outside Keras, TensorFlow, pyoptim and the standard library (2, the
    caller's caller, when every frame is a library's)."""
    frame: Optional[FrameType] = sys._getframe(1)
    level = 1
    while frame is not None and _is_library(frame):
        frame = frame.f_back
        level += 1
    return level if frame is not None else 2


def warn_once(class_name: str, reason: str, variable: Optional[str] = None) -> None:
    """Warn that ``pyoptim.keras.<class_name>`` runs Keras' own update because of ``reason``;
    once per class and kind of reason (the text before its first colon).  ``variable`` names the
    one variable concerned when the reason is about that variable alone."""
    key = (class_name, reason.split(":")[0])
    with _lock:
        if key in _warned:
            return
        _warned.add(key)
    if variable is None:
        text = (f"pyoptim.keras.{class_name}: running Keras' own update_step (same results, without "
                f"pyoptim's kernels) because {reason}. This warning is shown once.")
    else:
        text = (f"pyoptim.keras.{class_name}: variable {variable!r} runs Keras' own update_step "
                f"because {reason}: same results, without pyoptim's kernels; variables without "
                "that reason keep the kernels. Shown once (optimizer.path_counts() counts all).")
    warnings.warn(text, RuntimeWarning, stacklevel=user_stacklevel())
