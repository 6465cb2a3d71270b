"""Output files: ``--json FILE`` (the raw numbers) and early checks of output paths."""
from __future__ import annotations

import json
import math
import os
from typing import Any, Dict, List, Optional, Sequence

from .data import Dataset, MinMaxScaler
from .errors import TraceInputError
from .prediction import TOLERANCE, ModelPredictionTrace, RowPrediction
from .training import Agreement, RunResult

JSON_FORMAT = "pyoptim-trace/1"


def check_output_path(path: str, flag: str) -> None:
    """Fail before training when ``path`` cannot be a file we write."""
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise TraceInputError(f"{flag}: directory does not exist: {directory}")
    if os.path.isdir(path):
        raise TraceInputError(f"{flag}: is a directory: {path}")


def _number(x: float) -> Optional[float]:
    """JSON has no NaN/inf: those become null."""
    return float(x) if math.isfinite(x) else None


def run_to_json(run: RunResult) -> Dict[str, Any]:
    return {
        "optimizer": run.optimizer,
        "source": run.source,
        "learning_rate": run.learning_rate,
        "update_path": run.update_path,
        "epoch": [e.epoch for e in run.epochs],
        "loss": [_number(e.loss) for e in run.epochs],
        "accuracy": [_number(e.accuracy) for e in run.epochs],
        "test_loss": [_number(e.test_loss) for e in run.epochs],
        "test_accuracy": [_number(e.test_accuracy) for e in run.epochs],
        "epoch_seconds": [e.seconds for e in run.epochs],
        "final_test_loss": _number(run.test_loss),
        "final_test_accuracy": _number(run.test_accuracy),
        "first_epoch_seconds": run.first_epoch_seconds,
        "median_epoch_seconds": run.median_epoch_seconds,  # epochs 2..; null with one epoch
        "note": run.note or None,  # the 8-bit optimizers: built with min_8bit_size=0, and why
    }


def _numbers(values: Any) -> List[Optional[float]]:
    return [_number(float(v)) for v in values]


def row_to_json(row: RowPrediction, label_values: Sequence[int]) -> Dict[str, Any]:
    """One traced test row: every layer's values (float32 values as JSON numbers)."""
    return {
        "row": row.row,
        "input": _numbers(row.features),
        "pre_activation": _numbers(row.pre_activation),
        "hidden": _numbers(row.hidden),
        "active_units": row.active_units,
        "largest_hidden": [[unit, value] for unit, value in row.top_units()],
        "logits": _numbers(row.logits),
        "probabilities": _numbers(row.probabilities),
        "model_predict": _numbers(row.model_probabilities),
        "predicted_class": row.predicted_class,
        "true_class": row.true_class,
        "predicted_label": label_values[row.predicted_class],
        "true_label": label_values[row.true_class],
    }


def prediction_to_json(traces: Sequence[ModelPredictionTrace], rows: Sequence[int],
                       label_values: Sequence[int]) -> Dict[str, Any]:
    """The prediction trace: formulas, the rows, and per optimizer the layers of each row
    and the largest differences from the model found by the check."""
    return {
        "rows": list(rows),
        "formulas": {
            "pre_activation": "z1 = x W1 + b1",
            "hidden": "h = max(z1, 0)",
            "logits": "z2 = h W2 + b2",
            "probabilities": "p = softmax(z2) = exp(z2 - max z2) / sum(exp(z2 - max z2))",
            "predicted_class": "argmax p",
            "active_units": "count of h > 0",
        },
        "dtype": "float32",
        "check": {
            "tolerance": TOLERANCE,
            "rule": "max |numpy - keras| <= tolerance * max(1, max |keras|)",
            "hidden_against": "model.get_layer('hidden')(x)",
            "probabilities_against": "model.predict(x)",
        },
        "runs": {
            t.name: {
                "max_abs_diff_hidden": t.hidden_diff,
                "max_abs_diff_probabilities": t.probability_diff,
                "rows": [row_to_json(r, label_values) for r in t.rows],
            }
            for t in traces
        },
    }


def trace_to_json(
    *,
    settings: Dict[str, Any],
    data: Dataset,
    scaler: MinMaxScaler,
    runs: Sequence[RunResult],
    agreements: Optional[Sequence[Agreement]],
    predictions: Optional[Dict[str, Any]] = None,
) -> Dict[str, Any]:
    """Everything the trace measured.  Per optimizer, per-epoch lists (training loss and
    accuracy as Keras reports them for the epoch, test loss and accuracy after it,
    seconds of the epoch's fit call), ``first_epoch_seconds`` (includes graph tracing) and
    ``median_epoch_seconds`` (median over epochs 2 and later, null with one epoch); with
    --compare-tf the max absolute differences; ``prediction_trace`` (from
    :func:`prediction_to_json`, null when turned off)."""
    out: Dict[str, Any] = {
        "format": JSON_FORMAT,
        "settings": settings,
        "data": {
            "source": data.source,
            "description": data.description,
            "train_rows": int(data.x_train.shape[0]),
            "test_rows": int(data.x_test.shape[0]),
            "features": data.n_features,
            "classes": data.n_classes,
            "label_values": data.label_values,
            "scaling": {
                "method": "min-max to [0, 1], fitted on the training rows",
                "min": [float(v) for v in scaler.minimum],
                "max": [float(v) for v in scaler.maximum],
            },
            "feature_engineering": "none",
        },
        "runs": {run.name: run_to_json(run) for run in runs},
        "compare_tf": None,
        "prediction_trace": predictions,
    }
    if agreements is not None:
        out["compare_tf"] = {
            a.name: {
                "max_abs_weight_diff": a.max_weight_diff,
                "max_relative_weight_diff": a.relative_weight_diff,
                "max_abs_epoch_loss_diff": a.max_loss_diff,
                "abs_test_loss_diff": a.test_loss_diff,
                "abs_test_accuracy_diff": a.test_accuracy_diff,
                "identical": a.identical,
                "reference": a.reference,
                "exact_expected": a.exact_expected,  # False: an 8-bit optimizer against float32 Keras
            }
            for a in agreements
        }
    return out


def write_json(document: Dict[str, Any], path: str) -> None:
    try:
        with open(path, "w", encoding="utf-8") as handle:
            json.dump(document, handle, indent=2)
            handle.write("\n")
    except OSError as exc:
        raise TraceInputError(f"cannot write --json file {path}: {exc.strerror or exc}") from None


def written(paths: List[str]) -> str:
    return "\n".join(f"wrote {p}" for p in paths)
