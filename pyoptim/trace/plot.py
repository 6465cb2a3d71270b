"""``--plot FILE.png``: loss and accuracy per epoch for every optimizer (matplotlib,
Agg canvas, no display needed).  Solid lines: training (mean over the epoch's
batches); dashed: the test rows after the epoch."""
from __future__ import annotations

from typing import Sequence

from .errors import TraceInputError
from .training import RunResult


def check_matplotlib() -> None:
    """Fail early (before training) when matplotlib is missing."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise TraceInputError("--plot needs matplotlib: pip install 'pyoptim[trace]'") from None


def save_curves(runs: Sequence[RunResult], path: str, title: str) -> None:
    """Write a 2-panel PNG (loss, accuracy) to ``path``."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 4.4), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    ax_loss, ax_acc = fig.subplots(1, 2)
    colors = {"sgd": "tab:blue", "rmsprop": "tab:orange", "adam": "tab:green", "adamw": "tab:red",
              "adam8bit": "tab:olive", "adamw8bit": "tab:purple", "adadelta": "tab:brown",
              "adagrad": "tab:pink", "adamax": "tab:gray", "lion": "tab:cyan", "nadam": "black",
              "ftrl": "gold", "lamb": "navy"}
    for run in runs:
        epochs = [e.epoch for e in run.epochs]
        color = colors.get(run.name)
        label = run.optimizer
        ax_loss.plot(epochs, [e.loss for e in run.epochs], "o-", color=color, label=f"{label} train")
        ax_loss.plot(epochs, [e.test_loss for e in run.epochs], "s--", color=color, alpha=0.7, label=f"{label} test")
        ax_acc.plot(epochs, [e.accuracy for e in run.epochs], "o-", color=color, label=f"{label} train")
        ax_acc.plot(epochs, [e.test_accuracy for e in run.epochs], "s--", color=color, alpha=0.7, label=f"{label} test")
    ax_loss.set_title("Loss (sparse categorical cross-entropy)")
    ax_loss.set_ylabel("loss")
    ax_acc.set_title("Accuracy")
    ax_acc.set_ylabel("accuracy")
    n = max((len(r.epochs) for r in runs), default=1)
    for ax in (ax_loss, ax_acc):
        ax.set_xlabel("epoch")
        ax.grid(True, alpha=0.3)
        if n <= 20:
            ax.set_xticks(range(1, n + 1))
    ax_acc.legend(fontsize=8, loc="lower right")
    fig.suptitle(f"{title}\nsolid: training (mean over the epoch's batches), dashed: test rows after the epoch", fontsize=10)
    try:
        fig.savefig(path, format="png")
    except OSError as exc:
        raise TraceInputError(f"cannot write --plot file {path}: {exc.strerror or exc}") from None

