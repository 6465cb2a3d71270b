"""Optimizer names on the command line -> optimizer objects, from pyoptim.keras (the
trace) or keras.optimizers (the --compare-tf reference), with the same arguments."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from .errors import TraceInputError


@dataclass(frozen=True)
class OptimizerSpec:
    """One optimizer of the comparison: its class name (the same in pyoptim.keras and
    keras.optimizers), Keras' default learning rate and the extra arguments the trace uses."""

    name: str
    class_name: str
    default_learning_rate: float
    extra: Dict[str, Any] = field(default_factory=dict)

    def describe(self, learning_rate: float) -> str:
        """E.g. ``SGD(learning_rate=0.01, momentum=0.9)``."""
        args = [f"learning_rate={learning_rate:g}"] + [f"{k}={v!r}" for k, v in self.extra.items()]
        return f"{self.class_name}({', '.join(args)})"


#: The optimizers the trace knows, in display order.  SGD uses momentum 0.9.
SPECS: Dict[str, OptimizerSpec] = {
    "sgd": OptimizerSpec("sgd", "SGD", 0.01, {"momentum": 0.9}),
    "rmsprop": OptimizerSpec("rmsprop", "RMSprop", 0.001),
    "adam": OptimizerSpec("adam", "Adam", 0.001),
}

#: Where the optimizer classes come from.
PYOPTIM = "pyoptim.keras"
KERAS = "keras.optimizers"


def parse_optimizer_names(text: str) -> List[str]:
    """``"sgd,adam"`` -> ``["sgd", "adam"]`` (case-insensitive, duplicates dropped);
    an unknown or empty name raises :class:`TraceInputError`."""
    names: List[str] = []
    for raw in text.split(","):
        name = raw.strip().lower()
        if not name:
            raise TraceInputError(f"empty optimizer name in {text!r} (choose from {', '.join(SPECS)})")
        if name not in SPECS:
            raise TraceInputError(f"unknown optimizer {raw.strip()!r} (choose from {', '.join(SPECS)})")
        if name not in names:
            names.append(name)
    return names


def optimizer_class(name: str, source: str = PYOPTIM) -> type:
    """The class for ``name`` from ``source`` (:data:`PYOPTIM` or :data:`KERAS`)."""
    spec = SPECS[name]
    if source == KERAS:
        from .tensorflow_import import import_keras

        return getattr(import_keras().optimizers, spec.class_name)
    if source == PYOPTIM:
        from .tensorflow_import import import_keras

        return getattr(_pyoptim_keras(), spec.class_name)
    raise ValueError(f"source must be {PYOPTIM!r} or {KERAS!r}, got {source!r}")


def make_optimizer(name: str, learning_rate: Optional[float], source: str = PYOPTIM) -> Any:
    """A fresh optimizer: ``learning_rate`` (None -> Keras' default) plus the spec's extras."""
    spec = SPECS[name]
    lr = spec.default_learning_rate if learning_rate is None else learning_rate
    return optimizer_class(name, source)(learning_rate=lr, **spec.extra)


def _pyoptim_keras() -> Any:
    from .tensorflow_import import import_keras

    import_keras()
    import pyoptim.keras

    return pyoptim.keras


def prepare_fast_path() -> str:
    """Load (on first use: compile, then cache) pyoptim.keras' TensorFlow op and say
    which update path the pyoptim.keras optimizers will take."""
    keras_module = _pyoptim_keras()
    if keras_module.fast_path_available():
        return "pyoptim C++ kernels (TensorFlow custom op loaded)"
    error = keras_module.status().get("error") or "unknown reason"
    return f"Keras' own update_step (pyoptim's op is unavailable: {error})"


def kernel_calls() -> Dict[str, int]:
    """Kernel executions so far in this process, per kernel (``sgd``, ``rmsprop``, ``adam``)."""
    return dict(_pyoptim_keras().kernel_calls())


def update_path(name: str, optimizer: Any, calls_before: Dict[str, int], calls_after: Dict[str, int],
                updates: int = 0) -> str:
    """Which code updated the weights during a run, from pyoptim.keras' counters: executions
    of this optimizer's kernel (``updates`` = steps x variables is what a run on the fast
    path needs) and ``optimizer.path_counts()`` (fallbacks and why)."""
    if type(optimizer).__module__.startswith("keras"):
        return "keras.optimizers (TensorFlow ops)"
    calls = calls_after.get(name, 0) - calls_before.get(name, 0)
    counts = optimizer.path_counts() if hasattr(optimizer, "path_counts") else {"fallback": 0, "reasons": {}}
    reasons = ", ".join(sorted(counts.get("reasons", {}))) or "unknown reason"
    if calls > 0 and not counts.get("fallback") and calls >= updates:
        text = f"pyoptim C++ kernels ({updates} variable updates" if updates else f"pyoptim C++ kernels ({calls} kernel calls"
        if updates and calls > updates:
            text += f", plus {calls - updates} kernel calls of pyoptim.keras' own checks"
        return text + ")"
    if calls > 0:
        return f"pyoptim C++ kernels for {calls} of {updates} variable updates, Keras for the rest ({reasons})"
    return f"Keras' own update_step, fallback ({reasons})"
