"""pyoptim for Keras 3: ``SGD``, ``RMSprop``, ``Adam``, ``AdamW`` and ``Adadelta``, ``Adagrad``,
``Adamax``, ``Ftrl``, ``Lamb``, ``Lion``, ``Nadam`` (see :mod:`pyoptim.keras.optimizers_elementwise`) as
drop-in ``keras.optimizers``, ``LazyAdam``, and ``Adam8bit`` / ``AdamW8bit`` (8-bit block-wise state,
see :mod:`pyoptim.keras.optimizers_8bit`).

::

    import keras, pyoptim.keras
    model.compile(optimizer=pyoptim.keras.Adam(learning_rate=1e-3), loss=...)
    model.fit(...)   # same weights, to the bit, as with keras.optimizers.Adam; the update runs
                     # pyoptim's C++ kernels through a TensorFlow custom op, one op call
                     # per step for all the variables (see pyoptim.keras.optimizers)

The op is compiled against the installed TensorFlow on first use (a C++ compiler is needed; the
result is cached, see :func:`status`), or ahead of time with ``python -m pyoptim.keras build``.
Where it cannot serve (XLA, other dtypes, non-CPU variables, build failure) the
optimizers run Keras' own ``update_step`` with a one-time warning; :func:`status`,
:func:`fast_path_available`, :func:`kernel_calls`, :func:`op_calls` and ``optimizer.path_counts()``
tell which path ran; :func:`variable_copies` counts variables copied before an update (copy-on-write).  Import
``pyoptim.keras`` before ``keras.models.load_model`` so saved models find the classes (they are
registered as ``pyoptim>SGD`` / ``pyoptim>RMSprop`` / ``pyoptim>Adam`` / ``pyoptim>AdamW`` /
``pyoptim>LazyAdam`` / ``pyoptim>Adam8bit`` / ``pyoptim>AdamW8bit`` and ``pyoptim>Adadelta`` ...
``pyoptim>Nadam``).

``Adam8bit`` and ``AdamW8bit`` have no Keras counterpart and no fallback: their state exists only
for pyoptim's op, so where the op cannot run they raise an error naming the reason, and on
another Keras backend they cannot be constructed.

On Keras' other backends (``KERAS_BACKEND=torch`` or ``jax``) the classes are exactly the
optimizers ``keras.optimizers`` gives there (see :mod:`pyoptim.keras.native`): the kernels serve
the TensorFlow backend only, and this module then never imports TensorFlow (``Adam8bit`` /
``AdamW8bit`` exist there too, but constructing one raises a RuntimeError).  On the TensorFlow
backend importing it imports TensorFlow; ``import pyoptim`` alone never does.
"""
from __future__ import annotations

import importlib.metadata
import sys
from typing import Any, Dict, List, Optional

import keras

import pyoptim

from . import _build

BACKEND = keras.backend.backend()
_TENSORFLOW = BACKEND == "tensorflow"
# The op's kernels, in the order of its counters: the four of their own, then the element-wise
# kernels of csrc/pyoptim/elementwise_kernels.hpp (the NumPy core has the same list).
_KERNELS = ("sgd", "rmsprop", "adam", "adam8bit") + tuple(pyoptim._core.elementwise_kernels())

if _TENSORFLOW:
    from . import _loader
    from .optimizers import SGD, Adam, AdamW, LazyAdam, RMSprop
    from .optimizers_8bit import Adam8bit, AdamW8bit
    from .optimizers_elementwise import Adadelta, Adagrad, Adamax, Ftrl, Lamb, Lion, Nadam
else:
    from .native import (SGD, Adadelta, Adagrad, Adam, Adam8bit, Adamax, AdamW, AdamW8bit,
                         Ftrl, Lamb, LazyAdam, Lion, Nadam, RMSprop)


def fast_path_available() -> bool:
    """True when the custom op is built and loaded (builds it on the first call if needed);
    always False on a Keras backend other than TensorFlow."""
    return _TENSORFLOW and _loader.load() is not None


def build(force: bool = False, verbose: bool = False) -> str:
    """Compile the op now (unless cached; ``force`` rebuilds) and return the library's path.
    Raises ``pyoptim.keras._build.BuildError`` with the compiler output on failure."""
    return str(_build.build(force=force, verbose=verbose))


def _counters() -> List[List[int]]:
    if not fast_path_available():
        return [[0] * len(_KERNELS), [0] * len(_KERNELS)]
    import tensorflow as tf

    with tf.device("/CPU:0"):
        return _loader.load().pyoptim_kernel_calls().numpy().tolist()


def kernel_calls() -> Dict[str, int]:
    """How many variable updates each kernel has run in this process (``{"sgd": n,
    "rmsprop": n, "adam": n, "adam8bit": n, "adadelta": n, ..., "nadam": n}``, the element-wise
    kernels by their names; AdamW and LazyAdam count as adam; Adam8bit and
    AdamW8bit count their 8-bit variables as adam8bit and their small, float-state variables
    (fewer than ``min_8bit_size`` elements) as adam), counted inside the op; all zero when the
    op is not loaded."""
    return dict(zip(_KERNELS, (int(c) for c in _counters()[0])))


def op_calls() -> Dict[str, int]:
    """How many times each kernel's op has run in this process: one per training step and
    dtype (and device), however many variables it updated (same keys as :func:`kernel_calls`;
    an Adam8bit step runs the adam8bit op for its 8-bit variables and, if it has small ones,
    the adam op for those)."""
    return dict(zip(_KERNELS, (int(c) for c in _counters()[1])))


def variable_copies() -> int:
    """How many times, in this process, an update found a variable (or slot) buffer still
    shared with a pending read and TensorFlow copied it first (copy-on-write: a whole extra
    pass over that variable).  Inside ``tf.function`` the optimizers order their updates after
    every gradient is computed, which releases the backward pass' reads, so a training step
    makes none.  One exception, once: when Keras creates the slots inside the traced step
    (``model.fit`` does, unless the optimizer was built before), the first update copies some
    slots whose buffer is still shared (measured: one per variable for Adam, two with AMSGrad,
    none for SGD and plain RMSprop); later steps copy none.  0 when the op is not loaded."""
    if not fast_path_available():
        return 0
    import tensorflow as tf

    module = _loader.load()
    with tf.device("/CPU:0"):
        return int(module.pyoptim_variable_copies().numpy())


def status() -> Dict[str, Any]:
    """Which path the optimizers use and why: ``fast_path_available``, ``library`` (path of the
    loaded op), ``error`` (why it is unavailable, one line), ``build_log`` (for a failed build,
    the compiler command and its whole output), ``isa`` (the op's instruction set, fixed when it
    is loaded: a later ``pyoptim.set_isa`` changes the NumPy core only), ``keras_backend``,
    ``tensorflow`` (its installed version, or None), ``cache_dir``, ``kernel_calls``,
    ``variable_copies``."""
    available = fast_path_available()
    if _TENSORFLOW:
        error, log, isa = _loader.error(), _loader.log(), _loader.isa()
        library = str(_loader.path()) if _loader.path() else None
    else:
        error = (f"the Keras backend is {BACKEND!r}: pyoptim's kernels serve the TensorFlow "
                 "backend only, and pyoptim.keras' optimizers are Keras' own for this backend")
        log, isa, library = None, pyoptim.get_isa(), None
    return {
        "fast_path_available": available,
        "library": library,
        "error": error,
        "build_log": log,
        "isa": isa,
        "keras_backend": BACKEND,
        "tensorflow": _tensorflow_version(),
        "cache_dir": str(_build.cache_dir()),
        "kernel_calls": kernel_calls(),
        "op_calls": op_calls(),
        "variable_copies": variable_copies(),
    }


def _tensorflow_version() -> Optional[str]:
    """The installed TensorFlow's version, without importing it (None when not installed)."""
    module = sys.modules.get("tensorflow")  # None, too, when imports of it are blocked
    if module is not None:
        return str(module.__version__)
    for distribution in ("tensorflow-cpu", "tensorflow", "tf-nightly"):
        try:
            return importlib.metadata.version(distribution)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


__all__ = ["BACKEND", "SGD", "RMSprop", "Adam", "AdamW", "LazyAdam", "Adam8bit", "AdamW8bit",
           "Adadelta", "Adagrad", "Adamax", "Ftrl", "Lamb", "Lion", "Nadam",
           "build", "fast_path_available",
           "kernel_calls", "op_calls", "status", "variable_copies"]
