"""Stages 4 and 5: train one optimizer from the shared initial weights, epoch by epoch,
evaluating on the test rows after each epoch.

Every run sees the same batches: the training rows are put in a fixed order per epoch
(``epoch_orders``) and ``model.fit`` runs one epoch at a time with ``shuffle=False``,
so two runs differ only in the optimizer.  Imports Keras when a run starts."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence

import numpy as np

from .model import LOSS, METRIC, build_model


@dataclass
class EpochRecord:
    """One epoch: mean training loss and accuracy over its batches (as Keras reports
    them), loss and accuracy on the test rows after it, and the wall time of the
    epoch's ``fit`` call (the first includes tracing the training graph)."""

    epoch: int
    loss: float
    accuracy: float
    test_loss: float
    test_accuracy: float
    seconds: float


@dataclass
class RunResult:
    """One optimizer's run."""

    name: str
    optimizer: str  # e.g. "Adam(learning_rate=0.001)"
    source: str  # "pyoptim.keras" or "keras.optimizers"
    learning_rate: float
    update_path: str
    epochs: List[EpochRecord] = field(default_factory=list)
    final_weights: List[np.ndarray] = field(default_factory=list)
    model: Any = field(default=None, repr=False, compare=False)  # the trained keras.Model
    note: str = ""  # how the optimizer was set up, when that needs saying (the 8-bit ones' min_8bit_size=0)

    @property
    def losses(self) -> List[float]:
        return [e.loss for e in self.epochs]

    @property
    def accuracies(self) -> List[float]:
        return [e.accuracy for e in self.epochs]

    @property
    def test_loss(self) -> float:
        return self.epochs[-1].test_loss

    @property
    def test_accuracy(self) -> float:
        return self.epochs[-1].test_accuracy

    @property
    def first_epoch_seconds(self) -> float:
        """Wall time of the first epoch, which includes tracing the training graph."""
        return self.epochs[0].seconds

    @property
    def median_epoch_seconds(self) -> Optional[float]:
        """Median wall time of the epochs after the first (the first includes graph
        tracing and is reported apart); None when there was only one epoch."""
        later = [e.seconds for e in self.epochs[1:]]
        return float(np.median(later)) if later else None


def epoch_orders(n_train: int, epochs: int, seed: int) -> List[np.ndarray]:
    """The order of the training rows in each epoch: independent permutations from
    ``numpy.random.default_rng([seed, 1])`` (shared by every optimizer)."""
    rng = np.random.default_rng([seed, 1])
    return [rng.permutation(n_train) for _ in range(epochs)]


def train_run(
    *,
    name: str,
    optimizer: Any,
    optimizer_text: str,
    source: str,
    learning_rate: float,
    initial_weights: Sequence[np.ndarray],
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    orders: Sequence[np.ndarray],
    batch_size: int,
    n_classes: int,
    hidden: int,
    on_epoch: Optional[Callable[[RunResult, EpochRecord], None]] = None,
) -> RunResult:
    """Train a fresh model (weights set to ``initial_weights``) with ``optimizer`` for
    ``len(orders)`` epochs; ``on_epoch`` is called after each epoch (progress).  The
    caller fills in ``update_path``; ``result.model`` is the trained model."""
    model = build_model(x_train.shape[1], n_classes, hidden)
    model.set_weights([np.array(w, copy=True) for w in initial_weights])
    model.compile(optimizer=optimizer, loss=LOSS, metrics=[METRIC])
    result = RunResult(
        name=name,
        optimizer=optimizer_text,
        source=source,
        learning_rate=learning_rate,
        update_path="",
    )
    for epoch, order in enumerate(orders, start=1):
        start = time.perf_counter()
        history = model.fit(
            x_train[order], y_train[order], batch_size=batch_size, epochs=1, shuffle=False, verbose=0
        )
        seconds = time.perf_counter() - start
        test: Dict[str, float] = model.evaluate(x_test, y_test, batch_size=max(batch_size, 256), verbose=0, return_dict=True)
        record = EpochRecord(
            epoch=epoch,
            loss=float(history.history["loss"][-1]),
            accuracy=float(history.history[METRIC][-1]),
            test_loss=float(test["loss"]),
            test_accuracy=float(test[METRIC]),
            seconds=seconds,
        )
        result.epochs.append(record)
        if on_epoch is not None:
            on_epoch(result, record)
    result.final_weights = [np.array(w, copy=True) for w in model.get_weights()]
    result.model = model
    return result


@dataclass
class Agreement:
    """pyoptim.keras against keras.optimizers for one optimizer: largest absolute
    differences of the final weights, the per-epoch training losses and the test loss;
    ``relative_weight_diff`` is max over weight tensors of ``max|a - b| / max|b|``.
    ``exact_expected`` is False when the reference is another optimizer (an 8-bit
    optimizer against keras.optimizers' float32 one, ``reference``)."""

    name: str
    max_weight_diff: float
    relative_weight_diff: float
    max_loss_diff: float
    test_loss_diff: float
    test_accuracy_diff: float
    exact_expected: bool = True
    reference: str = ""

    @property
    def identical(self) -> bool:
        return self.max_weight_diff == 0.0 and self.max_loss_diff == 0.0 and self.test_loss_diff == 0.0


def compare_runs(ours: RunResult, reference: RunResult, exact_expected: bool = True) -> Agreement:
    """``max |a - b|`` over every weight, every epoch's loss, and the test loss/accuracy."""
    weight_diff = max((_max_abs_diff(a, b) for a, b in zip(ours.final_weights, reference.final_weights)), default=0.0)
    relative = max(
        (_max_abs_diff(a, b) / (float(np.max(np.abs(b))) or 1.0) if b.size else 0.0
         for a, b in zip(ours.final_weights, reference.final_weights)),
        default=0.0,
    )
    loss_diff = _max_abs_diff(np.array(ours.losses), np.array(reference.losses))
    return Agreement(
        name=ours.name,
        max_weight_diff=weight_diff,
        relative_weight_diff=relative,
        max_loss_diff=float(loss_diff),
        test_loss_diff=_max_abs_diff(np.array([ours.test_loss]), np.array([reference.test_loss])),
        test_accuracy_diff=_max_abs_diff(np.array([ours.test_accuracy]), np.array([reference.test_accuracy])),
        exact_expected=exact_expected,
        reference=f"{reference.source}.{reference.optimizer}",
    )


def _max_abs_diff(a: np.ndarray, b: np.ndarray) -> float:
    """``max |a - b|`` in float64; NaN in both at the same place counts as equal."""
    a64, b64 = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a64.size == 0:
        return 0.0
    diff = np.abs(a64 - b64)
    diff = np.where(np.isnan(a64) & np.isnan(b64), 0.0, diff)
    return float(np.max(diff))
