"""Stage 4's network: Input(n_features) -> Dense(hidden, ReLU) -> Dense(n_classes, softmax).

Keras (TensorFlow) is imported by the functions that build the model, not by this
module, so the command can describe the model before TensorFlow has loaded."""
from __future__ import annotations

from typing import TYPE_CHECKING, List

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    import keras

#: Loss and metric of every run.
LOSS = "sparse_categorical_crossentropy"
METRIC = "accuracy"


def build_model(n_features: int, n_classes: int, hidden: int) -> "keras.Model":
    """The pipeline's classifier (Glorot-uniform kernels, zero biases, Keras' defaults).

    ``p(class | x) = softmax(W2 relu(W1 x + b1) + b2)``."""
    from .tensorflow_import import import_keras

    keras = import_keras()
    return keras.Sequential(
        [
            keras.Input(shape=(n_features,), name="features"),
            keras.layers.Dense(hidden, activation="relu", name="hidden"),
            keras.layers.Dense(n_classes, activation="softmax", name="output"),
        ],
        name="pipeline",
    )


def initial_weights(n_features: int, n_classes: int, hidden: int, seed: int) -> List[np.ndarray]:
    """The weights every optimizer starts from: those of a model built right after
    ``keras.utils.set_random_seed(seed)``."""
    from .tensorflow_import import import_keras

    import_keras().utils.set_random_seed(seed)
    return [np.array(w, copy=True) for w in build_model(n_features, n_classes, hidden).get_weights()]


def describe_model(n_features: int, n_classes: int, hidden: int) -> str:
    """E.g. ``Input(10) -> Dense(64, ReLU) -> Dense(3, softmax)``."""
    return f"Input({n_features}) -> Dense({hidden}, ReLU) -> Dense({n_classes}, softmax)"


def parameter_count(n_features: int, n_classes: int, hidden: int) -> int:
    """Weights and biases: ``(n_features + 1) * hidden + (hidden + 1) * n_classes``."""
    return (n_features + 1) * hidden + (hidden + 1) * n_classes
