"""Numbers in fixed-width table columns: fixed-point while it fits, exponent form after."""
from __future__ import annotations


def fit(value: float, width: int, decimals: int) -> str:
    """``value`` right-aligned in ``width`` characters with ``decimals`` decimals
    (``fit(0.5, 7, 4)`` -> ``' 0.5000'``); when that is wider than ``width`` (a diverged
    loss), exponent form with as many significant digits as fit
    (``fit(1.1e20, 7, 4)`` -> ``'1.1e+20'``), at least one; nan and inf as Python prints them."""
    text = f"{value:{width}.{decimals}f}"
    if len(text) <= width:
        return text
    for digits in range(max(width - 6, 0), -1, -1):
        text = f"{value:{width}.{digits}e}"
        if len(text) <= width:
            return text
    return text  # wider than the column even at 1 significant digit (width < 5)
