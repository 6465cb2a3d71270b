"""The Observation column: a short comment on one epoch, generated from the trend.

Rules, with ``r = (loss[e-1] - loss[e]) / loss[e-1]`` the relative drop of the training
loss from the previous epoch, ``L0 = ln(classes)`` the cross-entropy of guessing, and a
change "small" when ``|r| < 2 %`` or ``|loss[e-1] - loss[e]| < 2 % of L0`` (late, tiny
losses wobble by large ratios); "at chance" means accuracy < 1.2 / classes:

* loss not finite             -> "diverged: loss is not finite (lower the learning rate)"
* loss > 10 * L0              -> "diverged: loss > 10x guessing's 1.10 (lower the learning rate)"
* first epoch                 -> "first pass: ..." with the accuracy against chance (1/classes)
* loss grew >= 2x             -> "diverging: loss grew 3.2x (lower the learning rate)"
* small, accuracy >= 90 %     -> "converged"
* small, otherwise            -> "plateau: little progress"
* r < -1 %                    -> "loss went up: steps may be too large"
* r >= 25 %                   -> "loss dropping fast"
* 8 % <= r < 25 %             -> "loss dropping steadily"
* otherwise                   -> "loss falling slowly"

where, when the accuracy is at chance, the diverged line ends ", accuracy at chance" and
the diverging one ", accuracy at chance (33%)" instead of the advice (to fit a terminal
line); after the first epoch the other lines get ", accuracy still at chance (33%)" when it
is; ", accuracy passed 90%" in the epoch where it first does; and on the last epoch ",
more epochs would help" while the loss still drops by >= 8 % and the accuracy is above
chance.
"""
from __future__ import annotations

import math
from typing import Sequence

FAST, STEADY, SLOW = 0.25, 0.08, 0.02
RISE = -0.01
GOOD_ACCURACY = 0.90
#: A loss above this multiple of ln(classes) (guessing's cross-entropy) has diverged.
DIVERGED_FACTOR = 10.0
#: A loss that grew by this factor or more in one epoch is diverging.
GROWTH_FACTOR = 2.0
#: Accuracy below this multiple of 1/classes is "at chance".
CHANCE_MARGIN = 1.2


def observe(losses: Sequence[float], accuracies: Sequence[float], epoch: int, n_classes: int, total_epochs: int) -> str:
    """Comment on epoch ``epoch`` (0-based) from the epochs up to it."""
    loss, acc = losses[epoch], accuracies[epoch]
    chance = 1.0 / max(n_classes, 1)
    chance_loss = math.log(max(n_classes, 2))
    at_chance = acc < CHANCE_MARGIN * chance
    chance_note = f", accuracy at chance ({chance:.0%})" if at_chance else ""
    if not math.isfinite(loss):
        return "diverged: loss is not finite (lower the learning rate)"
    if loss > DIVERGED_FACTOR * chance_loss:
        advice = ", accuracy at chance" if at_chance else " (lower the learning rate)"
        return f"diverged: loss > {DIVERGED_FACTOR:g}x guessing's {chance_loss:.2f}{advice}"
    if epoch == 0:
        if acc >= GOOD_ACCURACY:
            return f"first pass: accuracy already {acc:.0%}"
        if acc < 1.5 * chance:
            return f"first pass: close to guessing (chance {chance:.0%})"
        return f"first pass: learning starts, well above chance ({chance:.0%})"
    prev = losses[epoch - 1]
    if math.isfinite(prev) and prev > 0 and loss >= GROWTH_FACTOR * prev:
        return f"diverging: loss grew {loss / prev:.2g}x{chance_note or ' (lower the learning rate)'}"
    drop = (prev - loss) / prev if math.isfinite(prev) and prev > 0 else 0.0
    small = abs(drop) < SLOW or (math.isfinite(prev) and abs(prev - loss) < SLOW * chance_loss)
    trend_fast = drop >= STEADY and not small
    if small:
        text = "converged" if acc >= GOOD_ACCURACY else "plateau: little progress"
    elif drop < RISE:
        text = "loss went up: steps may be too large"
    elif drop >= FAST:
        text = f"loss dropping fast (-{drop:.0%})"
    elif drop >= STEADY:
        text = f"loss dropping steadily (-{drop:.0%})"
    else:
        text = f"loss falling slowly (-{drop:.0%})"
    if at_chance:
        text += f", accuracy still at chance ({chance:.0%})"
    if acc >= GOOD_ACCURACY and all(a < GOOD_ACCURACY for a in accuracies[:epoch]):
        text += f", accuracy passed {GOOD_ACCURACY:.0%}"
    if epoch == total_epochs - 1 and trend_fast and not at_chance:
        text += ", more epochs would help"
    return text
