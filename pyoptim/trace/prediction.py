"""The prediction trace: a few test rows followed through a trained model, layer by layer.

For one row ``x`` (its scaled features, float32) and the model's weights
``W1, b1`` (hidden Dense layer) and ``W2, b2`` (output Dense layer)::

    z1 = x W1 + b1                     pre-activation of the hidden layer (hidden units)
    h  = max(z1, 0)                    ReLU; a unit is "active" when h > 0
    z2 = h W2 + b2                     logits (one per class)
    p  = softmax(z2) = exp(z2 - max z2) / sum(exp(z2 - max z2))
    predicted class = argmax(p)

The layers are computed with NumPy in the weights' dtype (float32), then checked
against the model itself: ``h`` against the hidden layer called on the rows
(``model.get_layer("hidden")(x)``), ``p`` against ``model.predict``.  A difference
larger than :data:`TOLERANCE` times ``max(1, max |value|)`` raises
:class:`~.errors.TraceCheckError`; the differences found are reported with the trace.
The logits and ``z1`` have no Keras counterpart to compare with (Keras applies the
activation inside the Dense layer); they are checked through ``p`` and ``h``."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Sequence, Tuple

import numpy as np

from .errors import TraceCheckError, TraceInputError

#: Tolerance of the check against Keras: ``max |numpy - keras| <= TOLERANCE * max(1, max |keras|)``.
#: float32 matrix products summed in a different order differ by a few ulps (~1e-7 relative).
TOLERANCE = 1e-5
#: Test rows traced by default (the first ones of the test set).
DEFAULT_ROWS = 3
#: Largest hidden activations listed per row.
TOP_UNITS = 3
#: The layer names given by :func:`.model.build_model`.
HIDDEN_LAYER, OUTPUT_LAYER = "hidden", "output"


@dataclass
class RowPrediction:
    """One test row through one model (all arrays 1-D, in the model's dtype)."""

    row: int  # index in the test set
    features: np.ndarray  # x: the scaled input
    pre_activation: np.ndarray  # z1 = x W1 + b1
    hidden: np.ndarray  # h = max(z1, 0)
    logits: np.ndarray  # z2 = h W2 + b2
    probabilities: np.ndarray  # p = softmax(z2)
    model_probabilities: np.ndarray  # model.predict on the row
    true_class: int  # class index 0..n_classes-1

    @property
    def predicted_class(self) -> int:
        """``argmax(p)``."""
        return int(np.argmax(self.probabilities))

    @property
    def active_units(self) -> int:
        """Hidden units with ``h > 0``."""
        return int(np.count_nonzero(self.hidden > 0))

    def top_units(self, count: int = TOP_UNITS) -> List[Tuple[int, float]]:
        """The ``count`` largest activations among the active units, as (unit index, h), largest first."""
        order = np.argsort(-self.hidden, kind="stable")[:count]
        return [(int(i), float(self.hidden[i])) for i in order if self.hidden[i] > 0]


@dataclass
class ModelPredictionTrace:
    """The traced rows of one optimizer's trained model and how well NumPy agreed with Keras."""

    name: str  # optimizer name, e.g. "adam"
    rows: List[RowPrediction]
    hidden_diff: float  # max |h_numpy - hidden layer's output|
    probability_diff: float  # max |p_numpy - model.predict|
    tolerance: float = TOLERANCE


def parse_rows(text: str) -> List[int]:
    """``"0,5,17"`` -> ``[0, 5, 17]`` (duplicates dropped, order kept); ``"none"`` or ``"0 rows"``
    -> ``[]``.  Raises :class:`TraceInputError` for anything that is not a non-negative integer.
    Whether the rows exist is checked by :func:`check_rows` once the test set is known."""
    stripped = text.strip().lower()
    if stripped in ("none", "off", ""):
        return []
    rows: List[int] = []
    for raw in stripped.split(","):
        item = raw.strip()
        try:
            value = int(item)
        except ValueError:
            raise TraceInputError(f"row {item!r} is not an integer (give test-row indices like 0,5,17, or none)") from None
        if value < 0:
            raise TraceInputError(f"row {value} is negative (test rows are numbered from 0)")
        if value not in rows:
            rows.append(value)
    return rows


def check_rows(rows: Sequence[int], n_test: int) -> None:
    """Raise :class:`TraceInputError` (naming --predict-rows) when a row is not in the test set."""
    for row in rows:
        if not 0 <= row < n_test:
            raise TraceInputError(f"--predict-rows: row {row} is outside the test set ({n_test} rows, 0..{n_test - 1})")


def default_rows(n_test: int) -> List[int]:
    """The first :data:`DEFAULT_ROWS` test rows (fewer if the test set is smaller)."""
    return list(range(min(DEFAULT_ROWS, n_test)))


def softmax(z: np.ndarray) -> np.ndarray:
    """``exp(z - max z) / sum(exp(z - max z))`` along the last axis, in ``z``'s dtype."""
    shifted = z - np.max(z, axis=-1, keepdims=True)
    e = np.exp(shifted)
    return e / np.sum(e, axis=-1, keepdims=True)


def forward(x: np.ndarray, w1: np.ndarray, b1: np.ndarray, w2: np.ndarray, b2: np.ndarray) -> Dict[str, np.ndarray]:
    """The network by hand for the rows of ``x`` (rows x features), in the weights' dtype:
    ``z1 = x W1 + b1``, ``h = max(z1, 0)``, ``z2 = h W2 + b2``, ``p = softmax(z2)``."""
    dtype = w1.dtype
    x = np.asarray(x, dtype)
    z1 = (x @ w1 + b1).astype(dtype)
    h = np.maximum(z1, dtype.type(0))
    z2 = (h @ w2 + b2).astype(dtype)
    return {"z1": z1, "h": h, "z2": z2, "p": softmax(z2).astype(dtype)}


def max_abs_diff(ours: np.ndarray, theirs: np.ndarray) -> float:
    """``max |ours - theirs|`` in float64; NaN in both at the same place counts as equal."""
    a, b = np.asarray(ours, np.float64), np.asarray(theirs, np.float64)
    if a.size == 0:
        return 0.0
    diff = np.where(np.isnan(a) & np.isnan(b), 0.0, np.abs(a - b))
    diff = np.where(np.isinf(a) & (a == b), 0.0, diff)
    return float(np.max(diff))


def _check(what: str, name: str, diff: float, reference: np.ndarray) -> None:
    finite = np.asarray(reference, np.float64)
    finite = finite[np.isfinite(finite)]
    scale = max(1.0, float(np.max(np.abs(finite)))) if finite.size else 1.0
    if not diff <= TOLERANCE * scale:  # also refuses a NaN difference
        raise TraceCheckError(
            f"prediction trace of {name}: the NumPy {what} differ from the model's by {diff:.3g} "
            f"(tolerance {TOLERANCE:g} x {scale:.3g}); the traced numbers would not be the model's"
        )


def trace_predictions(name: str, model: Any, x_test: np.ndarray, y_test: np.ndarray,
                      rows: Sequence[int]) -> ModelPredictionTrace:
    """Follow the test rows ``rows`` through ``model`` (built by :func:`.model.build_model`,
    trained), compute every layer from its weights with :func:`forward` and check ``h`` and
    ``p`` against the model (see the module docstring); raises :class:`TraceCheckError`
    when they disagree beyond :data:`TOLERANCE`."""
    from .tensorflow_import import import_keras

    keras = import_keras()
    hidden_layer, output_layer = model.get_layer(HIDDEN_LAYER), model.get_layer(OUTPUT_LAYER)
    w1, b1 = (np.asarray(w) for w in hidden_layer.get_weights())
    w2, b2 = (np.asarray(w) for w in output_layer.get_weights())
    index = np.asarray(list(rows), dtype=np.int64)
    x = np.asarray(x_test[index], dtype=w1.dtype)
    ours = forward(x, w1, b1, w2, b2)
    if index.size:
        keras_hidden = np.asarray(keras.ops.convert_to_numpy(hidden_layer(x)))
        keras_p = np.asarray(model.predict(x, verbose=0))
    else:
        keras_hidden = np.zeros_like(ours["h"])
        keras_p = np.zeros_like(ours["p"])
    hidden_diff = max_abs_diff(ours["h"], keras_hidden)
    probability_diff = max_abs_diff(ours["p"], keras_p)
    _check("hidden activations h", name, hidden_diff, keras_hidden)
    _check("probabilities p", name, probability_diff, keras_p)
    traced = [
        RowPrediction(row=int(r), features=x[i], pre_activation=ours["z1"][i], hidden=ours["h"][i],
                      logits=ours["z2"][i], probabilities=ours["p"][i], model_probabilities=keras_p[i],
                      true_class=int(y_test[r]))
        for i, r in enumerate(index)
    ]
    return ModelPredictionTrace(name=name, rows=traced, hidden_diff=hidden_diff, probability_diff=probability_diff)
