"""The text a person reads: data-flow stages, per-optimizer epoch tables (printed row by
row while training), the final comparison and the agreement with keras.optimizers."""
from __future__ import annotations

import math
import textwrap
from typing import List, Sequence

import numpy as np

from .data import Dataset
from .model import describe_model, parameter_count
from .number_format import fit
from .training import Agreement, EpochRecord, RunResult

RULE = "-" * 100


def heading(text: str) -> str:
    return f"\n{text}\n{RULE}"


def format_row(values: np.ndarray, fmt: str = ".4g", max_items: int = 10) -> str:
    """``[12.3, -4.56, ..., 0.7]`` (4 significant digits by default), at most ``max_items`` shown."""
    vals = [f"{v:{fmt}}" for v in values]
    if len(vals) > max_items:
        vals = vals[: max_items - 2] + ["...", vals[-1]]
    return "[" + ", ".join(vals) + "]"


def shape(a: np.ndarray) -> str:
    return f"{a.shape[0]} rows x {a.shape[1]} columns"


def _xy(a: np.ndarray) -> str:
    return f"{a.shape[0]} x {a.shape[1]}"


def _wrapped(label: str, text: str, width: int = 100) -> List[str]:
    """``label`` in a 25-character column, ``text`` wrapped after it."""
    pad = " " * 25
    lines = textwrap.wrap(text, width=width - len(pad)) or [""]
    return [f"{label:<25}{lines[0]}"] + [pad + line for line in lines[1:]]


def data_flow(data: Dataset, x_train_scaled: np.ndarray, x_test_scaled: np.ndarray,
              optimizer_texts: Sequence[str], hidden: int, batch_size: int, epochs: int) -> str:
    """Stages 1-5 with shapes, and training row 0 before and after scaling."""
    steps = math.ceil(data.x_train.shape[0] / batch_size)
    label = data.label_values[int(data.y_train[0])]
    classes = f"{data.n_classes} classes"
    if data.label_values != list(range(data.n_classes)):
        classes += f" (labels {', '.join(map(str, data.label_values))} -> 0..{data.n_classes - 1})"
    n_train = data.x_train.shape[0]
    lines = [heading("Data flow")]
    lines += _wrapped("1. Data input", f"{data.n_rows} rows x {data.n_features} features + 1 label column, {classes}")
    lines += _wrapped("   source", f"{data.source}: {data.description}")
    lines += _wrapped("   split", f"train {shape(data.x_train)}, test {shape(data.x_test)}")
    lines.append(f"{'   sample (train row 0)':<25}{format_row(data.x_train[0])} -> label {label}")
    lines += _wrapped("2. Preprocessing", f"min-max scaling to [0, 1], fitted on the {n_train} training rows only:")
    lines += _wrapped("", "x' = (x - min) / (max - min) per feature, min and max of the training rows")
    lines += _wrapped("   shapes", f"train {_xy(data.x_train)} -> {_xy(x_train_scaled)}, test {_xy(data.x_test)} -> "
                      f"{_xy(x_test_scaled)} (float32; test rows may fall slightly outside [0, 1])")
    lines.append(f"{'   sample (train row 0)':<25}{format_row(x_train_scaled[0], '.3f')}")
    lines += _wrapped("3. Feature engineering", f"none: the {data.n_features} scaled features go to the model unchanged")
    lines += _wrapped("4. Model training", f"{describe_model(data.n_features, data.n_classes, hidden)}, "
                      f"{parameter_count(data.n_features, data.n_classes, hidden)} parameters; "
                      f"loss: sparse categorical cross-entropy")
    lines += _wrapped("", f"{epochs} epoch(s) x {steps} batches of {batch_size} rows (the same batches for every optimizer)")
    lines += _wrapped("", "same initial weights for " + ", ".join(optimizer_texts))
    lines += _wrapped("5. Evaluation", f"test {shape(x_test_scaled)} -> test loss and accuracy per optimizer")
    return "\n".join(lines)


TABLE_HEADER = f"{'Epoch':>5} | {'Loss':>7} | {'Accuracy':>8} | {'Time':>7} | Observation"


def run_heading(index: int, count: int, optimizer_text: str, source: str) -> str:
    return heading(f"Training {index}/{count}: {source}.{optimizer_text}")


def note_lines(note: str) -> str:
    """A note under a run's heading (the 8-bit optimizers' ``min_8bit_size=0``), wrapped to 100 columns."""
    return "\n".join(textwrap.wrap("note: " + note, width=100, subsequent_indent="      ", break_on_hyphens=False))


def table_header() -> str:
    return TABLE_HEADER + "\n" + "-" * 6 + "+" + "-" * 9 + "+" + "-" * 10 + "+" + "-" * 9 + "+" + "-" * 30


def table_row(record: EpochRecord, observation: str) -> str:
    return (
        f"{record.epoch:>5} | {fit(record.loss, 7, 4)} | {record.accuracy:8.4f} | {fit(record.seconds, 6, 2)}s | {observation}"
    )


def run_footer(run: RunResult) -> str:
    return (
        f"test rows: loss {fit(run.test_loss, 7, 4).strip()}, accuracy {run.test_accuracy:.4f}   "
        f"update path: {run.update_path}"
    )


def final_comparison(runs: Sequence[RunResult], n_test: int) -> str:
    """Test loss, test accuracy and time per epoch: the median over epochs 2.. (the 1st
    epoch, which includes building the training graph, is its own column)."""
    lines = [
        heading(f"Final comparison on the {n_test} test rows"),
        f"{'Optimizer':<9} | {'Learning rate':>13} | {'Test loss':>9} | {'Test accuracy':>13} | {'Time/epoch':>10} | {'1st epoch':>9}",
        "-" * 10 + "+" + "-" * 15 + "+" + "-" * 11 + "+" + "-" * 15 + "+" + "-" * 12 + "+" + "-" * 10,
    ]
    for run in runs:
        later = run.median_epoch_seconds
        per_epoch = f"{fit(later, 9, 3)}s" if later is not None else f"{'n/a':>10}"
        lines.append(
            f"{run.name:<9} | {run.learning_rate:13g} | {fit(run.test_loss, 9, 4)} | {run.test_accuracy:13.4f} | "
            f"{per_epoch} | {fit(run.first_epoch_seconds, 8, 2)}s"
        )
    finite = [r for r in runs if math.isfinite(r.test_loss)]
    if len(runs) > 1 and finite:
        best_acc = max(runs, key=lambda r: r.test_accuracy)
        best_loss = min(finite, key=lambda r: r.test_loss)
        lines.append(
            f"highest test accuracy: {best_acc.name} ({best_acc.test_accuracy:.4f}); "
            f"lowest test loss: {best_loss.name} ({fit(best_loss.test_loss, 7, 4).strip()})"
        )
    noted = [r.name for r in runs if r.note]
    if noted:
        lines.append(f"{', '.join(noted)}: min_8bit_size=0, every variable keeps 8-bit m and v (note above "
                     f"{'its' if len(noted) == 1 else 'their'} table{'' if len(noted) == 1 else 's'}).")
    if runs and len(runs[0].epochs) > 1:
        lines.append("Time/epoch: median of model.fit's wall time over epochs 2 and later; the 1st epoch, which")
        lines.append("includes graph tracing, is left out of it and shown apart.")
    else:
        lines.append("Time/epoch: n/a with one epoch (it would need epochs after the 1st, which includes graph "
                     "tracing).")
    return "\n".join(lines)


def _verdict(a: Agreement) -> str:
    if not a.exact_expected:
        return f"8-bit vs float32 ({a.relative_weight_diff:.1e} rel.)"
    if a.identical:
        return "identical (same bits)"
    if a.relative_weight_diff < 1e-5 and a.max_loss_diff < 1e-5:
        return f"float32 rounding ({a.relative_weight_diff:.0e} rel.)"
    return f"DIFFERENT ({a.relative_weight_diff:.1e} rel.)"


def agreement_table(agreements: Sequence[Agreement]) -> str:
    """--compare-tf: pyoptim.keras against keras.optimizers, same weights, data and batches."""
    lines = [
        heading("Check against keras.optimizers (--compare-tf)"),
        "same initial weights, same batches; max |pyoptim.keras - keras.optimizers| of:",
        f"{'Optimizer':<9} | {'final weights':>13} | {'epoch losses':>12} | {'test loss':>9} | verdict",
        "-" * 10 + "+" + "-" * 15 + "+" + "-" * 14 + "+" + "-" * 11 + "+" + "-" * 24,
    ]
    for a in agreements:
        lines.append(
            f"{a.name:<9} | {a.max_weight_diff:13.6g} | {a.max_loss_diff:12.6g} | {a.test_loss_diff:9.3g} | {_verdict(a)}"
        )
    inexact = [a for a in agreements if not a.exact_expected]
    if inexact:
        references = "/".join(dict.fromkeys(a.reference.split("(")[0].rsplit(".", 1)[-1] for a in inexact))
        lines.append(
            f"note: {', '.join(a.name for a in inexact)} against keras.optimizers' float32 {references}: "
            "8-bit state rounds m and v\n      every step, so the runs drift apart; compare test loss and "
            "accuracy, not bits."
        )
    if any(a.name == "rmsprop" and not a.identical for a in agreements):
        lines.append(
            "note: in graph mode TensorFlow's Grappler rewrites keras.optimizers.RMSprop's lr*g/sqrt(v+eps) into\n"
            "      lr*g*rsqrt(v+eps), which rounds differently; pyoptim computes Keras' formula as written\n"
            "      (as eager Keras does)."
        )
    return "\n".join(lines)


def reference_line(agreement: Agreement, reference: RunResult) -> str:
    verdict = _verdict(agreement)
    return (
        f"reference ({reference.source}): test loss {fit(reference.test_loss, 7, 4).strip()}, accuracy {reference.test_accuracy:.4f}; "
        f"max |weight diff| = {agreement.max_weight_diff:g} -> {verdict}"
    )
