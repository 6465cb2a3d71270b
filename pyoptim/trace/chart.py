"""A terminal chart of the training loss per epoch, one marker letter per optimizer.

Rows are loss levels from the highest loss (top) to the lowest (bottom); each epoch
is a column; a cell where several optimizers fall shows ``*``.  More epochs than
:data:`MAX_COLUMNS` are sampled evenly (first and last epoch always shown)."""
from __future__ import annotations

import math
from typing import Dict, List, Sequence

from .number_format import fit

HEIGHT = 12
MAX_COLUMNS = 60
SEVERAL = "*"


def markers(names: Sequence[str]) -> Dict[str, str]:
    """First letter, upper-case (``sgd`` -> ``S``); digits when letters clash."""
    letters = [n[:1].upper() for n in names]
    if len(set(letters)) == len(letters) and SEVERAL not in letters:
        return dict(zip(names, letters))
    return {n: str(i + 1) for i, n in enumerate(names)}


def _columns(epochs: int) -> List[int]:
    """0-based epoch index shown in each column."""
    if epochs <= MAX_COLUMNS:
        return list(range(epochs))
    return [round(c * (epochs - 1) / (MAX_COLUMNS - 1)) for c in range(MAX_COLUMNS)]


def loss_chart(series: Dict[str, Sequence[float]], height: int = HEIGHT) -> str:
    """The chart as text (no trailing newline); non-finite losses are left out."""
    names = list(series)
    marks = markers(names)
    epochs = max((len(v) for v in series.values()), default=0)
    finite = [v for vals in series.values() for v in vals if math.isfinite(v)]
    if epochs == 0 or not finite:
        return "(no finite loss values to chart)"
    hi, lo = max(finite), min(finite)
    if hi - lo < 1e-12:
        hi, lo = hi + 0.5 * max(abs(hi), 1e-3), lo - 0.5 * max(abs(lo), 1e-3)
    step = (hi - lo) / (height - 1)
    cols = _columns(epochs)
    spacing = 3 if len(cols) <= 20 else 1
    width = len(cols) * spacing
    grid = [[" "] * width for _ in range(height)]
    for name in names:
        vals = series[name]
        for c, e in enumerate(cols):
            if e >= len(vals) or not math.isfinite(vals[e]):
                continue
            row = int(round((hi - vals[e]) / step))
            x = c * spacing + spacing - 1
            cell = grid[row][x]
            grid[row][x] = marks[name] if cell in (" ", marks[name]) else SEVERAL
    labels = [fit(hi - r * step, 9, 3).strip() for r in range(height)]
    label_width = max(len(s) for s in labels)
    lines = [f"{labels[r]:>{label_width}} |{''.join(grid[r])}".rstrip() for r in range(height)]
    lines.append(" " * label_width + " +" + "-" * width)
    axis = [" "] * width
    tick_every = 1 if spacing == 3 else 10
    for c, e in enumerate(cols):
        if c % tick_every == 0 or c == len(cols) - 1:
            text = str(e + 1)
            end = c * spacing + spacing
            start = end - len(text)
            if start >= 0 and all(ch == " " for ch in axis[max(start - 1, 0):end]):
                axis[start:end] = list(text)
    lines.append(" " * label_width + "  " + "".join(axis).rstrip() + "  epoch")
    legend = ", ".join(f"{marks[n]} = {n}" for n in names)
    lines.append(" " * label_width + "  " + legend + f", {SEVERAL} = several at one point")
    return "\n".join(lines)
