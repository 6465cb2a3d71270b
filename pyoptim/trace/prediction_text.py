"""The "Prediction trace" section of the terminal output (at most 100 columns): per test
row, the input once, then per optimizer two lines, the hidden layer summarised (range of
z1, active units, the largest activations) and the output layer in full (logits,
probabilities, predicted and true class).  The exact numbers are in ``--json``."""
from __future__ import annotations

import textwrap
from typing import List, Sequence

import numpy as np

from .prediction import TOLERANCE, ModelPredictionTrace, RowPrediction

WIDTH = 100
NAME_WIDTH = 8
INDENT = 2 + NAME_WIDTH + 1


def number(value: float) -> str:
    """3 decimals, or 3 significant digits in exponent form when that would be long."""
    if np.isfinite(value) and abs(value) >= 1e4:
        return f"{value:.2e}"
    return f"{value:.3f}"


def vector(values: np.ndarray) -> str:
    """``[0.021, 0.034, 0.945]``."""
    return "[" + ", ".join(number(float(v)) for v in values) + "]"


def _lines(head: str, text: str, indent: int = INDENT) -> List[str]:
    """``head`` padded to the name column (``indent`` characters), ``text`` wrapped after it."""
    wrapped = textwrap.wrap(text, width=WIDTH - indent) or [""]
    return [f"{head:<{indent}}{wrapped[0]}"] + [" " * indent + line for line in wrapped[1:]]


def name_width(names: Sequence[str]) -> int:
    """The optimizer-name column: :data:`NAME_WIDTH`, wider when a name (``adamw8bit``) needs
    it, so that at least one space follows every name."""
    return max([NAME_WIDTH] + [len(n) + 1 for n in names])


def hidden_summary(row: RowPrediction) -> str:
    """``ReLU    z1 in [-2.310, 1.970], 31/64 active, top h: #12 1.970, #40 1.520, #3 1.210``."""
    z1 = row.pre_activation
    top = ", ".join(f"#{unit} {number(value)}" for unit, value in row.top_units()) or "none"
    return (f"ReLU    z1 in [{number(float(np.min(z1)))}, {number(float(np.max(z1)))}], "
            f"{row.active_units}/{z1.size} active, top h: {top}")


def output_summary(row: RowPrediction, label_values: Sequence[int]) -> str:
    """``softmax z2 [...]  p [...] -> class 2, correct`` (classes as the data's label values)."""
    verdict = "correct" if row.predicted_class == row.true_class else "wrong"
    return (f"softmax z2 {vector(row.logits)}  p {vector(row.probabilities)} "
            f"-> class {label_values[row.predicted_class]}, {verdict}")


def prediction_section(traces: Sequence[ModelPredictionTrace], label_values: Sequence[int]) -> str:
    """The whole section; ``traces`` hold the same rows, one per optimizer."""
    if not traces or not traces[0].rows:
        return ""
    first = traces[0]
    n_rows, hidden = len(first.rows), first.rows[0].hidden.size
    names = name_width([t.name for t in traces])
    indent = 2 + names + 1
    lines = [
        f"\nPrediction trace: {n_rows} test row(s) through each trained model",
        "-" * WIDTH,
        *textwrap.wrap(
            f"layer 1 input x (scaled features) -> layer 2 Dense({hidden}) + ReLU: z1 = x W1 + b1, h = max(z1, 0), "
            "a unit is active when h > 0 (top h: the largest, #unit value) -> layer 3 Dense + softmax: z2 = h W2 + b2 (logits), p = softmax(z2), "
            "predicted class = argmax p.  Computed from each model's weights (float32); exact numbers in --json.",
            width=WIDTH,
        ),
    ]
    for i, row in enumerate(first.rows):
        lines.append("")
        lines.append(f"test row {row.row} (true class {label_values[row.true_class]})")
        lines += _lines("  input", f"x {vector(row.features)}", indent)
        for trace in traces:
            traced = trace.rows[i]
            lines += _lines(f"  {trace.name}", hidden_summary(traced), indent)
            lines += _lines("", output_summary(traced, label_values), indent)
    lines.append("")
    lines.append(f"checked against each model (tolerance {TOLERANCE:g} x max(1, |value|)):")
    for trace in traces:
        lines.append(
            f"  {trace.name:<{names}}max |h - hidden layer(x)| = {trace.hidden_diff:.1e}, "
            f"max |p - model.predict(x)| = {trace.probability_diff:.1e}"
        )
    return "\n".join(lines)
