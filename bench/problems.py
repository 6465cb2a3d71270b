"""What is benchmarked: optimizers, their hyperparameters, size cases and data.

Every implementation of one cell starts from the same float32 arrays (same seed):
parameters and gradients drawn from N(0, 1), states zero.  The same gradient is
applied at every step (the step's cost does not depend on the values; random
normals never produce subnormals in the states).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Tuple

import numpy as np

OPTIMIZERS: Tuple[str, ...] = ("sgd", "rmsprop", "adam")

#: Keras' defaults, except SGD's momentum (0.9: the benchmark is SGD *with momentum*).
HYPER: Dict[str, Dict[str, float]] = {
    "sgd": {"learning_rate": 0.01, "momentum": 0.9},
    "rmsprop": {"learning_rate": 0.001, "rho": 0.9, "epsilon": 1e-7},
    "adam": {"learning_rate": 0.001, "beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-7},
    # keras.optimizers.AdamW's defaults (weight_decay 0.004); model.fit zoo and AdamW-vs-Adam only.
    "adamw": {"learning_rate": 0.001, "weight_decay": 0.004, "beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-7},
    # The sparse-gradient cases (the zoo's embedding model, bench/sparse_apply.py) also take these:
    "sgd_no_momentum": {"learning_rate": 0.01},
    "rmsprop_momentum": {"learning_rate": 0.001, "rho": 0.9, "momentum": 0.9, "epsilon": 1e-7},
    # pyoptim.keras.LazyAdam (Adam's arguments); its keras.optimizers baseline is Adam.
    "lazyadam": {"learning_rate": 0.001, "beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-7},
}

#: The element-wise optimizers of the ``elementwise`` part (bench/elementwise.py): Keras' defaults
#: (keras.optimizers.<Class>() with no argument; bench/elementwise.py checks these against the
#: installed Keras' signatures and records any difference).
ELEMENTWISE_OPTIMIZERS: Tuple[str, ...] = ("adadelta", "adagrad", "adamax", "ftrl", "lamb", "lion", "nadam")
ELEMENTWISE_CLASSES: Dict[str, str] = {"adadelta": "Adadelta", "adagrad": "Adagrad", "adamax": "Adamax",
                                       "ftrl": "Ftrl", "lamb": "Lamb", "lion": "Lion", "nadam": "Nadam"}
HYPER.update({
    "adadelta": {"learning_rate": 0.001, "rho": 0.95, "epsilon": 1e-7},
    "adagrad": {"learning_rate": 0.001, "initial_accumulator_value": 0.1, "epsilon": 1e-7},
    "adamax": {"learning_rate": 0.001, "beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-7},
    "ftrl": {"learning_rate": 0.001, "learning_rate_power": -0.5, "initial_accumulator_value": 0.1,
             "l1_regularization_strength": 0.0, "l2_regularization_strength": 0.0,
             "l2_shrinkage_regularization_strength": 0.0, "beta": 0.0},
    "lamb": {"learning_rate": 0.001, "beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-7},
    "lion": {"learning_rate": 0.001, "beta_1": 0.9, "beta_2": 0.99},
    "nadam": {"learning_rate": 0.001, "beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-7},
})

#: Optimizers of the sparse-gradient cases (an Embedding's ``tf.IndexedSlices`` gradient): the zoo's
#: ``embedding`` model and the apply_gradients comparison of ``bench/sparse_apply.py``.
SPARSE_OPTIMIZERS: Tuple[str, ...] = ("adam", "rmsprop_momentum", "sgd", "sgd_no_momentum", "lazyadam")

#: Optimizers of the model.fit zoo (the per-step micro benchmark does OPTIMIZERS); each model runs
#: those of its ``ModelSpec.optimizers`` (the dense models the first four, ``embedding``
#: SPARSE_OPTIMIZERS).
E2E_OPTIMIZERS: Tuple[str, ...] = ("sgd", "rmsprop", "adam", "adamw", "sgd_no_momentum", "rmsprop_momentum",
                                   "lazyadam")
DENSE_E2E_OPTIMIZERS: Tuple[str, ...] = ("sgd", "rmsprop", "adam", "adamw")

#: State arrays per optimizer for these hyperparameters (Keras' slot names).
STATE_NAMES: Dict[str, Tuple[str, ...]] = {
    "sgd": ("momentums",),
    "rmsprop": ("velocities",),
    "adam": ("momentums", "velocities"),
}

N_STATES_OF: Dict[str, int] = {k: len(v) for k, v in STATE_NAMES.items()}

FULL_SIZES: Tuple[int, ...] = (1, 10**3, 10**4, 10**5, 10**6, 10**7)
QUICK_SIZES: Tuple[int, ...] = (1, 10**4, 10**6)
MULTI = (100, 10**3)  # 100 tensors of 1e3 elements
QUICK_MULTI = (10, 10**3)  # quick: 10 tensors (tracing Keras' update for 100 variables takes seconds)


@dataclass(frozen=True)
class Case:
    """One benchmark size: ``n_tensors`` tensors of ``size`` float32 elements."""

    n_tensors: int
    size: int

    @property
    def label(self) -> str:
        s = _short(self.size)
        return s if self.n_tensors == 1 else f"{self.n_tensors}x{s}"

    @property
    def total(self) -> int:
        return self.n_tensors * self.size

    @property
    def sizes(self) -> List[int]:
        return [self.size] * self.n_tensors


def _short(n: int) -> str:
    if n >= 1000 and n == 10 ** (len(str(n)) - 1):
        return f"1e{len(str(n)) - 1}"
    return str(n)


def parse_case(text: str) -> Case:
    """'1e6' -> Case(1, 10**6); '100x1e3' -> Case(100, 1000)."""
    text = text.strip().lower()
    if "x" in text:
        a, b = text.split("x", 1)
        return Case(int(float(a)), int(float(b)))
    return Case(1, int(float(text)))


@dataclass
class Data:
    """Initial arrays of one cell (copied by every implementation)."""

    params: List[np.ndarray]
    grads: List[np.ndarray]


def make_data(case: Case, seed: int = 0) -> Data:
    rng = np.random.default_rng(seed)
    params = [rng.standard_normal(n, dtype=np.float32) for n in case.sizes]
    grads = [rng.standard_normal(n, dtype=np.float32) for n in case.sizes]
    return Data(params, grads)
