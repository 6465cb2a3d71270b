"""Import Keras/TensorFlow quietly, once, with a clear error when it is missing."""
from __future__ import annotations

import os
from types import ModuleType

from .errors import TraceInputError


class MissingDependencyError(TraceInputError):
    """TensorFlow or matplotlib is not installed."""


def import_keras() -> ModuleType:
    """``import keras`` with TensorFlow's C++ log noise turned down (TF_CPP_MIN_LOG_LEVEL=2
    unless the user set it)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        import keras
        import tensorflow  # noqa: F401  (the backend pyoptim.keras runs on)
    except ImportError as exc:
        raise MissingDependencyError(
            f"pyoptim trace needs TensorFlow/Keras ({exc}); install it with: pip install 'pyoptim[trace]'"
        ) from None
    return keras
