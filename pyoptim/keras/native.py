"""``SGD``, ``RMSprop``, ``Adam``, ``AdamW``, ``LazyAdam``, ``Adamax``, ``Lion`` and ``Nadam`` on Keras backends other than TensorFlow
(and ``Adam8bit`` / ``AdamW8bit``, which cannot be constructed there).

pyoptim's kernels reach Keras through a TensorFlow custom op, so they serve the TensorFlow backend
only.  On another backend each class here is exactly the optimizer ``keras.optimizers.<Name>``
gives there: Keras resolves its generic classes to a backend's own implementation (on torch,
``keras.optimizers.Adam()`` is a ``keras.src.backend.torch.optimizers.torch_adam.Adam``, whose
update uses ``torch._foreach_*`` ops in its own operation order), and these classes subclass that
resolved class, so the update, its bits and its speed are Keras' own.  What pyoptim adds: the
``pyoptim>`` serialisation names (``keras.models.load_model`` finds them once ``pyoptim.keras`` is
imported), ``path_counts()`` (every update counted as Keras' code, with the reason), ``repr`` and
one warning per process saying that the kernels serve the TensorFlow backend only.

Nothing here imports TensorFlow.
"""
from __future__ import annotations

from typing import Type

import keras

from ._reporting import ReportingMixin


def _resolved(generic: type) -> type:
    """The class Keras instantiates for ``generic()`` on the current backend (its ``__new__``
    may swap in a backend's own implementation)."""
    return type(generic.__new__(generic))


def _reason() -> str:
    return (f"the Keras backend is {keras.backend.backend()!r}: pyoptim's kernels serve the "
            "TensorFlow backend only")


class _NativeMixin(ReportingMixin):
    """Counts every update as Keras' code (with the backend as the reason) and warns once, at
    the first update.  No ``__init__``: the constructor is Keras' own, signature included."""

    def _backend_update_step(self, grads, trainable_variables, learning_rate):
        # One warning per process, whichever class is used first.
        self._fallback(_reason(), count=len(trainable_variables),
                       warning_key=("native", keras.backend.backend()))
        return super()._backend_update_step(grads, trainable_variables, learning_rate)


def _native_class(name: str, generic: Type[keras.optimizers.Optimizer]) -> type:
    base = _resolved(generic)
    doc = (f"``keras.optimizers.{name}`` as Keras gives it on this backend "
           f"(``{base.__module__}.{base.__qualname__}``): the same arguments, update and bits; "
           "pyoptim's kernels serve the TensorFlow backend only.")
    cls = type(name, (_NativeMixin, base), {"__doc__": doc, "__module__": __name__})
    return keras.saving.register_keras_serializable(package="pyoptim")(cls)


SGD = _native_class("SGD", keras.optimizers.SGD)
RMSprop = _native_class("RMSprop", keras.optimizers.RMSprop)
Adam = _native_class("Adam", keras.optimizers.Adam)
AdamW = _native_class("AdamW", keras.optimizers.AdamW)
Adadelta = _native_class("Adadelta", keras.optimizers.Adadelta)
Adagrad = _native_class("Adagrad", keras.optimizers.Adagrad)
Adamax = _native_class("Adamax", keras.optimizers.Adamax)
Ftrl = _native_class("Ftrl", keras.optimizers.Ftrl)
Lamb = _native_class("Lamb", keras.optimizers.Lamb)
Lion = _native_class("Lion", keras.optimizers.Lion)
Nadam = _native_class("Nadam", keras.optimizers.Nadam)
# Keras' torch and JAX backends give dense gradients only, for which LazyAdam is Adam.
LazyAdam = _native_class("LazyAdam", keras.optimizers.Adam)


def _tensorflow_only_class(name: str, generic: Type[keras.optimizers.Optimizer]) -> type:
    """``Adam8bit`` / ``AdamW8bit``: importable and registered (so that loading a model saved
    with one gives this error, not an unknown-class one), but their 8-bit state is updated by
    pyoptim's TensorFlow op only, so constructing one raises a RuntimeError."""
    base = _resolved(generic)

    def __init__(self: object, *args: object, **kwargs: object) -> None:
        raise RuntimeError(
            f"pyoptim.keras.{name} needs Keras' TensorFlow backend: its 8-bit state is updated "
            f"by pyoptim's TensorFlow op, and the Keras backend is {keras.backend.backend()!r} "
            f"(set KERAS_BACKEND=tensorflow, or use pyoptim.{name} on NumPy arrays)")

    doc = (f"Unavailable on this backend: ``pyoptim.keras.{name}`` (8-bit block-wise Adam state) "
           "needs Keras' TensorFlow backend; constructing one raises a RuntimeError.")
    cls = type(name, (base,), {"__doc__": doc, "__module__": __name__, "__init__": __init__})
    return keras.saving.register_keras_serializable(package="pyoptim")(cls)


Adam8bit = _tensorflow_only_class("Adam8bit", keras.optimizers.Adam)
AdamW8bit = _tensorflow_only_class("AdamW8bit", keras.optimizers.AdamW)
