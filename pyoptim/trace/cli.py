"""The ``pyoptim`` command line: ``pyoptim trace [options]`` and ``pyoptim trace --example rmsprop-step``.

Bad input (missing or malformed data file, unknown optimizer, out-of-range flag) ends
with one line ``pyoptim trace: error: <message>`` on stderr and exit status 2; a failed
self-check of the reported numbers (the prediction trace against ``model.predict``) the
same way with exit status 1."""
from __future__ import annotations

import argparse
import math
import sys
from typing import List, NoReturn, Optional, Sequence

from .errors import TraceCheckError, TraceInputError
from .example import EXAMPLES, rmsprop_step_text
from .optimizer_choice import DEFAULT_OPTIMIZERS, SPECS, parse_optimizer_names

EXIT_CHECK_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130

DESCRIPTION = """\
Train Input -> Dense ReLU -> Dense softmax with SGD (momentum 0.9), RMSprop and Adam
through pyoptim.keras from identical initial weights, and show every stage: the data
and its scaling, an epoch table per optimizer, a loss chart and a final comparison on
the test rows.  Without --data it uses a seeded synthetic data set (1200 rows x 10
features, 3 classes; 1000 train / 200 test rows).

--optimizers also takes adamw (Keras' default weight decay 0.004) and the 8-bit
block-wise Adam8bit / AdamW8bit (adam8bit, adamw8bit), built with min_8bit_size=0 so
that this small model's variables are all quantised (with the default 4096 none
would be); their --compare-tf reference is keras.optimizers.Adam / AdamW, which they
follow closely but not to the bit.  It also takes Keras' other element-wise optimizers,
adadelta, adagrad, adamax, ftrl, lamb, lion and nadam (Keras' defaults), which give
keras.optimizers' bits."""


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr and exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _int_at_least(minimum: int):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be an integer >= {minimum}, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be an integer >= {minimum}, got {value}")
        return value

    return parse


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a positive finite number, got {text}")
    return value


def _optimizer_list(text: str) -> List[str]:
    try:
        return parse_optimizer_names(text)
    except TraceInputError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _predict_rows(text: str) -> List[int]:
    from .prediction import parse_rows

    try:
        return parse_rows(text)
    except TraceInputError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__

    parser = _Parser(prog="pyoptim", description="pyoptim: SGD, RMSprop and Adam as C++ SIMD/OpenMP kernels for NumPy and Keras.")
    parser.add_argument("--version", action="version", version=f"pyoptim {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    trace = commands.add_parser(
        "trace",
        help="train and compare SGD, RMSprop and Adam on a small classifier, stage by stage",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    lrs = ", ".join(f"{s.name} {s.default_learning_rate:g}" for s in SPECS.values() if s.name in DEFAULT_OPTIMIZERS)
    lrs += ", the others 0.001"
    trace.add_argument("--data", metavar="FILE.csv", help="your own data: numeric CSV, last column an integer class label (optional header row)")
    trace.add_argument("--epochs", type=_int_at_least(1), default=5, help="epochs per optimizer (default: 5)")
    trace.add_argument("--batch-size", type=_int_at_least(1), default=32, help="rows per batch (default: 32)")
    trace.add_argument("--learning-rate", type=_positive_float, default=None, help=f"one learning rate for all optimizers (default: Keras' own: {lrs})")
    trace.add_argument("--optimizers", type=_optimizer_list, default=list(DEFAULT_OPTIMIZERS), metavar="LIST",
                       help=f"comma-separated, from {','.join(SPECS)} (default: {','.join(DEFAULT_OPTIMIZERS)}; "
                            "adam8bit and adamw8bit run with min_8bit_size=0)")
    trace.add_argument("--hidden", type=_int_at_least(1), default=64, help="units in the hidden Dense layer (default: 64)")
    trace.add_argument("--seed", type=_int_at_least(0), default=0, help="seed of the data, initial weights and batch order (default: 0)")
    trace.add_argument("--compare-tf", action="store_true", help="also train with keras.optimizers and show that the numbers agree")
    trace.add_argument("--plot", metavar="FILE.png", help="write loss and accuracy curves (matplotlib)")
    trace.add_argument("--json", metavar="FILE", help="write the raw numbers as JSON")
    trace.add_argument("--predict-rows", type=_predict_rows, default=None, metavar="ROWS",
                       help="test rows (0-based, comma-separated) followed through each trained model in the "
                            "prediction trace, or 'none' to leave it out (default: 0,1,2)")
    trace.add_argument("--example", choices=EXAMPLES, help="print a worked example instead (rmsprop-step: one RMSprop step by hand, NumPy only)")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of ``pyoptim`` and ``python -m pyoptim``; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    try:
        if args.example == "rmsprop-step":
            print(rmsprop_step_text(), flush=True)
            return 0
        from .pipeline import TraceOptions, run_trace

        return run_trace(TraceOptions(
            data=args.data, epochs=args.epochs, batch_size=args.batch_size, learning_rate=args.learning_rate,
            optimizers=list(args.optimizers), hidden=args.hidden, seed=args.seed, compare_tf=args.compare_tf,
            plot=args.plot, json=args.json, predict_rows=args.predict_rows,
        ))
    except TraceInputError as exc:
        print(f"pyoptim trace: error: {exc}", file=sys.stderr, flush=True)
        return EXIT_BAD_INPUT
    except TraceCheckError as exc:
        print(f"pyoptim trace: error: {exc}", file=sys.stderr, flush=True)
        return EXIT_CHECK_FAILED
    except KeyboardInterrupt:
        print("pyoptim trace: interrupted", file=sys.stderr, flush=True)
        return EXIT_INTERRUPTED
