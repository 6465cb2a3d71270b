"""Output files: ``--json FILE`` (the raw numbers) and early checks of output paths."""
from __future__ import annotations

import json
import math
import os
from typing import Any, Dict, List, Optional, Sequence

from .data import Dataset, MinMaxScaler
from .errors import TraceInputError
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
        "median_epoch_seconds": run.median_epoch_seconds,
    }


def trace_to_json(
    *,
    settings: Dict[str, Any],
    data: Dataset,
    scaler: MinMaxScaler,
    runs: Sequence[RunResult],
    agreements: Optional[Sequence[Agreement]],
) -> Dict[str, Any]:
    """Everything the trace measured.  Per optimizer, per-epoch lists (training loss and
    accuracy as Keras reports them for the epoch, test loss and accuracy after it,
    seconds of the epoch's fit call); with --compare-tf the max absolute differences."""
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
