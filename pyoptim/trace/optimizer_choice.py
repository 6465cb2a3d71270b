"""Optimizer names on the command line -> optimizer objects, from pyoptim.keras (the
trace) or keras.optimizers (the --compare-tf reference), with the same arguments."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

from .errors import TraceInputError


@dataclass(frozen=True)
class OptimizerSpec:
    """One optimizer of the comparison: its class name in pyoptim.keras, Keras' default
    learning rate and the extra arguments the trace uses; ``reference_class`` is the
    keras.optimizers class of the --compare-tf reference (the same name, except for the 8-bit
    optimizers, which keras.optimizers lacks: their float32 counterpart, which they are not
    expected to match to the bit); ``kernels`` are the names of pyoptim.keras' kernel counters
    (:func:`kernel_calls`) that count its updates (an 8-bit optimizer's float32-state variables,
    those under ``min_8bit_size``, run Adam's kernel)."""

    name: str
    class_name: str
    default_learning_rate: float
    extra: Dict[str, Any] = field(default_factory=dict)
    reference_class: str = ""
    kernels: Tuple[str, ...] = ()

    @property
    def eight_bit(self) -> bool:
        """Whether the optimizer keeps 8-bit state (see :func:`eight_bit_note`)."""
        return "min_8bit_size" in self.extra

    @property
    def keras_class_name(self) -> str:
        """The keras.optimizers class of the --compare-tf reference."""
        return self.reference_class or self.class_name

    @property
    def exact_reference(self) -> bool:
        """Whether pyoptim's run should give keras.optimizers' numbers to the bit (or float32 rounding)."""
        return self.keras_class_name == self.class_name

    @property
    def kernel_names(self) -> Tuple[str, ...]:
        return self.kernels or (self.name,)

    def describe(self, learning_rate: float) -> str:
        """E.g. ``SGD(learning_rate=0.01, momentum=0.9)``."""
        args = [f"learning_rate={learning_rate:g}"] + [f"{k}={v!r}" for k, v in self.extra.items()]
        return f"{self.class_name}({', '.join(args)})"


#: pyoptim.keras' default ``min_8bit_size`` (variables with fewer elements keep float32 state).
DEFAULT_MIN_8BIT_SIZE = 4096


def eight_bit_note(variable_sizes: Sequence[int]) -> str:
    """Why the trace builds the 8-bit optimizers with ``min_8bit_size=0``, for a model whose
    variables have ``variable_sizes`` elements."""
    largest = max(variable_sizes, default=0)
    kept = sum(1 for n in variable_sizes if n >= DEFAULT_MIN_8BIT_SIZE)
    default = (f"none of them (the largest has {largest} elements) would be quantised and the run would be "
               "plain Adam's" if kept == 0 else
               f"only {kept} of them would be quantised")
    return (f"min_8bit_size=0: all {len(variable_sizes)} variables of this model, biases included, keep m and v "
            f"as 8-bit block-wise codes (block_size 256); with the default "
            f"min_8bit_size={DEFAULT_MIN_8BIT_SIZE} {default}.")


#: The optimizers the trace knows, in display order.  SGD uses momentum 0.9; AdamW Keras'
#: default weight decay (0.004); the 8-bit ones quantise every variable (:func:`eight_bit_note`).
SPECS: Dict[str, OptimizerSpec] = {
    "sgd": OptimizerSpec("sgd", "SGD", 0.01, {"momentum": 0.9}),
    "rmsprop": OptimizerSpec("rmsprop", "RMSprop", 0.001),
    "adam": OptimizerSpec("adam", "Adam", 0.001),
    "adamw": OptimizerSpec("adamw", "AdamW", 0.001, kernels=("adam",)),
    "adam8bit": OptimizerSpec("adam8bit", "Adam8bit", 0.001, {"min_8bit_size": 0}, reference_class="Adam",
                              kernels=("adam8bit", "adam")),
    "adamw8bit": OptimizerSpec("adamw8bit", "AdamW8bit", 0.001, {"min_8bit_size": 0}, reference_class="AdamW",
                               kernels=("adam8bit", "adam")),
    # The element-wise kernels (csrc/pyoptim/elementwise_kernels.hpp), with Keras' defaults.
    "adadelta": OptimizerSpec("adadelta", "Adadelta", 0.001),
    "adagrad": OptimizerSpec("adagrad", "Adagrad", 0.001),
    "adamax": OptimizerSpec("adamax", "Adamax", 0.001),
    "ftrl": OptimizerSpec("ftrl", "Ftrl", 0.001),
    "lamb": OptimizerSpec("lamb", "Lamb", 0.001),
    "lion": OptimizerSpec("lion", "Lion", 0.001),
    "nadam": OptimizerSpec("nadam", "Nadam", 0.001),
}

#: What ``pyoptim trace`` compares without --optimizers.
DEFAULT_OPTIMIZERS: Tuple[str, ...] = ("sgd", "rmsprop", "adam")

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

        return getattr(import_keras().optimizers, spec.keras_class_name)
    if source == PYOPTIM:
        module = _pyoptim_keras()
        cls = getattr(module, spec.class_name, None)
        if cls is None:
            raise TraceInputError(
                f"optimizer {name!r} needs pyoptim.keras.{spec.class_name}, which this installation of "
                f"pyoptim.keras does not have (Keras backend {_backend()!r})"
            )
        return cls
    raise ValueError(f"source must be {PYOPTIM!r} or {KERAS!r}, got {source!r}")


def make_optimizer(name: str, learning_rate: Optional[float], source: str = PYOPTIM) -> Any:
    """A fresh optimizer: ``learning_rate`` (None -> Keras' default) plus the spec's extras
    (pyoptim.keras only: the --compare-tf reference of an 8-bit optimizer is its float32
    keras.optimizers counterpart with Keras' defaults)."""
    spec = SPECS[name]
    lr = spec.default_learning_rate if learning_rate is None else learning_rate
    extra = spec.extra if source == PYOPTIM or spec.exact_reference else {}
    return optimizer_class(name, source)(learning_rate=lr, **extra)


def describe_reference(name: str, learning_rate: float) -> str:
    """The --compare-tf reference's constructor, e.g. ``Adam(learning_rate=0.001)`` for adam8bit."""
    spec = SPECS[name]
    if spec.exact_reference:
        return spec.describe(learning_rate)
    return OptimizerSpec(spec.name, spec.keras_class_name, spec.default_learning_rate).describe(learning_rate)


def _backend() -> str:
    from .tensorflow_import import import_keras

    return str(import_keras().backend.backend())


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
    """Kernel executions so far in this process, per kernel (``sgd``, ``rmsprop``, ``adam``, and
    whatever else pyoptim.keras counts)."""
    return dict(_pyoptim_keras().kernel_calls())


def update_path(name: str, optimizer: Any, calls_before: Dict[str, int], calls_after: Dict[str, int],
                updates: int = 0) -> str:
    """Which code updated the weights during a run, from pyoptim.keras' counters: executions
    of this optimizer's kernel (``updates`` = steps x variables is what a run on the fast
    path needs) and ``optimizer.path_counts()`` (fallbacks and why)."""
    if type(optimizer).__module__.startswith("keras"):
        return "keras.optimizers (TensorFlow ops)"
    kernels = SPECS[name].kernel_names if name in SPECS else (name,)
    calls = sum(calls_after.get(k, 0) - calls_before.get(k, 0) for k in kernels)
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
