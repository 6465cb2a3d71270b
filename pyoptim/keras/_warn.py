"""The fallback warning: once per optimizer class and reason, pointing at the user's line.

Keras calls ``update_step`` many frames below the user's ``model.fit(...)`` or
``optimizer.apply_gradients(...)``, through Keras, TensorFlow (tf.function tracing, AutoGraph's
generated code) and the standard library; a fixed ``stacklevel`` would point into one of them.
:func:`user_stacklevel` walks out of all of those and names the first frame of the caller's own
code, the line a user can act on.
"""
from __future__ import annotations

import importlib.util
import os
import sys
import sysconfig
import threading
import warnings
from types import FrameType
from typing import List, Optional, Set, Tuple

# Packages between a user's call and update_step (Keras, its backends, their helpers).
_LIBRARIES = ("pyoptim", "keras", "tensorflow", "tf_keras", "torch", "jax", "jaxlib", "optree")


def _library_dirs() -> Tuple[str, ...]:
    """The directories of the installed _LIBRARIES (found without importing them) and of
    Python's standard library."""
    dirs: List[str] = [os.path.realpath(sysconfig.get_paths()["stdlib"]) + os.sep]
    for name in _LIBRARIES:
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError):
            continue
        for location in (spec.submodule_search_locations or []) if spec else []:
            dirs.append(os.path.realpath(location) + os.sep)
    return tuple(dirs)


# Frames from these directories are not the user's.
_LIBRARY_DIRS = _library_dirs()
_warned: Set[Tuple[str, str]] = set()
_lock = threading.Lock()


def _is_library(frame: FrameType) -> bool:
    name = frame.f_code.co_filename
    if name.startswith("<frozen") or "__autograph_generated_file" in name:
        return True  # Python's frozen modules, AutoGraph's conversion of a user function
    if name.startswith("<"):
        return False  # the user's `python -c`, stdin, a notebook cell
    return os.path.realpath(name).startswith(_LIBRARY_DIRS)


def user_stacklevel() -> int:
    """The ``stacklevel`` for a ``warnings.warn`` call made by this function's caller that names
    the innermost frame outside Keras, its backends, pyoptim and the standard library (2, the
    caller's caller, when every frame is a library's)."""
    frame: Optional[FrameType] = sys._getframe(1)
    level = 1
    while frame is not None and _is_library(frame):
        frame = frame.f_back
        level += 1
    return level if frame is not None else 2


def warn_once(class_name: str, reason: str, variable: Optional[str] = None,
              key: Optional[Tuple[str, str]] = None) -> None:
    """Warn that ``pyoptim.keras.<class_name>`` runs Keras' own update because of ``reason``;
    once per ``key``: by default the class and the kind of reason (the text before its first
    colon).  ``variable`` names the one variable concerned when the reason is about that
    variable alone."""
    key = key or (class_name, reason.split(":")[0])
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
