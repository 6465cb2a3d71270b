"""The trace pipeline behind ``pyoptim trace``: data -> scaling -> (no feature
engineering) -> training per optimizer -> evaluation, printed stage by stage, then the
chart, the prediction trace, the comparison and the output files.  TensorFlow is
imported only once the data (and --predict-rows) have been read and checked."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from . import report
from .chart import loss_chart
from .data import MinMaxScaler, load_csv, synthetic_dataset
from .model import initial_weights
from .observations import observe
from .optimizer_choice import (DEFAULT_OPTIMIZERS, KERAS, PYOPTIM, SPECS, describe_reference, eight_bit_note,
                               kernel_calls, make_optimizer, prepare_fast_path, update_path)
from .outputs import check_output_path, prediction_to_json, trace_to_json, write_json, written
from .plot import check_matplotlib, save_curves
from .prediction import check_rows, default_rows, trace_predictions
from .prediction_text import prediction_section
from .training import Agreement, EpochRecord, RunResult, compare_runs, epoch_orders, train_run


@dataclass
class TraceOptions:
    """The command's flags (see ``pyoptim trace --help``); ``learning_rate`` None means
    each optimizer's Keras default."""

    data: Optional[str] = None
    epochs: int = 5
    batch_size: int = 32
    learning_rate: Optional[float] = None
    optimizers: List[str] = field(default_factory=lambda: list(DEFAULT_OPTIMIZERS))
    hidden: int = 64
    seed: int = 0
    compare_tf: bool = False
    plot: Optional[str] = None
    json: Optional[str] = None
    predict_rows: Optional[List[int]] = None  # test rows of the prediction trace; None: the first 3, []: off


def _say(text: str = "") -> None:
    print(text, flush=True)


def run_trace(args: TraceOptions) -> int:
    """The pipeline: data, scaling, training per optimizer, report, files.  Prints as it
    goes; raises :class:`TraceInputError` on bad input (before training when it can)."""
    if args.json:
        check_output_path(args.json, "--json")
    if args.plot:
        check_output_path(args.plot, "--plot")
        check_matplotlib()
    data = load_csv(args.data, args.seed) if args.data else synthetic_dataset(args.seed)
    scaler = MinMaxScaler.fit(data.x_train)
    x_train, x_test = scaler.transform(data.x_train), scaler.transform(data.x_test)
    predict_rows = default_rows(x_test.shape[0]) if args.predict_rows is None else list(args.predict_rows)
    check_rows(predict_rows, x_test.shape[0])

    def lr_of(name: str) -> float:
        return SPECS[name].default_learning_rate if args.learning_rate is None else args.learning_rate

    texts = [SPECS[n].describe(lr_of(n)) for n in args.optimizers]
    seeded = data.source if not args.data else f"{data.source} (seed {args.seed})"
    _say(f"pyoptim trace: {len(args.optimizers)} optimizer(s) on {seeded}")
    _say(report.data_flow(data, x_train, x_test, texts, args.hidden, args.batch_size, args.epochs))

    _say("\nloading TensorFlow and pyoptim.keras (the first use compiles pyoptim's TensorFlow op, then it is cached) ...")
    path = prepare_fast_path()
    _say(f"update path of the pyoptim.keras optimizers: {path}")

    weights = initial_weights(data.n_features, data.n_classes, args.hidden, args.seed)
    orders = epoch_orders(x_train.shape[0], args.epochs, args.seed)
    common: Dict[str, Any] = dict(
        initial_weights=weights, x_train=x_train, y_train=data.y_train, x_test=x_test, y_test=data.y_test,
        orders=orders, batch_size=args.batch_size, n_classes=data.n_classes, hidden=args.hidden,
    )

    def print_row(run: RunResult, record: EpochRecord) -> None:
        i = record.epoch - 1
        _say(report.table_row(record, observe(run.losses, run.accuracies, i, data.n_classes, args.epochs)))

    runs: List[RunResult] = []
    agreements: List[Agreement] = []
    note_8bit = eight_bit_note([int(w.size) for w in weights])
    for index, (name, text) in enumerate(zip(args.optimizers, texts), start=1):
        _say(report.run_heading(index, len(args.optimizers), text, PYOPTIM))
        note = note_8bit if SPECS[name].eight_bit else ""
        if note:
            _say(report.note_lines(note))
        _say(report.table_header())
        optimizer = make_optimizer(name, args.learning_rate, PYOPTIM)
        before = kernel_calls()
        run = train_run(name=name, optimizer=optimizer, optimizer_text=text,
                        source=PYOPTIM, learning_rate=lr_of(name), on_epoch=print_row, **common)
        run.note = note
        updates = int(optimizer.iterations) * len(weights)  # steps x variables
        run.update_path = update_path(name, optimizer, before, kernel_calls(), updates)
        _say(report.run_footer(run))
        runs.append(run)
        if args.compare_tf:
            reference_text = describe_reference(name, lr_of(name))
            _say(f"reference run with {KERAS}.{reference_text}"
                 + (" ..." if SPECS[name].exact_reference else " (float32 state, not bit-exact) ..."))
            reference_optimizer = make_optimizer(name, args.learning_rate, KERAS)
            reference = train_run(name=name, optimizer=reference_optimizer, optimizer_text=reference_text,
                                  source=KERAS, learning_rate=lr_of(name), **common)
            reference.update_path = update_path(name, reference_optimizer, {}, {})
            agreement = compare_runs(run, reference, exact_expected=SPECS[name].exact_reference)
            agreements.append(agreement)
            _say(report.reference_line(agreement, reference))

    _say(report.heading("Training loss per epoch"))
    _say(loss_chart({r.name: r.losses for r in runs}))
    predictions = [trace_predictions(r.name, r.model, x_test, data.y_test, predict_rows)
                   for r in runs] if predict_rows else []
    if predictions:
        _say(prediction_section(predictions, data.label_values))
    _say(report.final_comparison(runs, x_test.shape[0]))
    if args.compare_tf:
        _say(report.agreement_table(agreements))

    paths: List[str] = []
    if args.json:
        settings = {
            "data": args.data, "epochs": args.epochs, "batch_size": args.batch_size,
            "learning_rate": args.learning_rate, "optimizers": args.optimizers, "hidden": args.hidden,
            "seed": args.seed, "compare_tf": args.compare_tf, "predict_rows": predict_rows,
            "update_path": path, "versions": _versions(),
        }
        prediction_json = prediction_to_json(predictions, predict_rows, data.label_values) if predictions else None
        write_json(trace_to_json(settings=settings, data=data, scaler=scaler, runs=runs,
                                 agreements=agreements if args.compare_tf else None,
                                 predictions=prediction_json), args.json)
        paths.append(args.json)
    if args.plot:
        save_curves(runs, args.plot, f"pyoptim trace: {seeded}, batch {args.batch_size}")
        paths.append(args.plot)
    if paths:
        _say()
        _say(written(paths))
    return 0


def _versions() -> Dict[str, str]:
    import keras
    import numpy
    import tensorflow

    from .. import __version__

    return {"pyoptim": __version__, "tensorflow": tensorflow.__version__, "keras": keras.__version__, "numpy": numpy.__version__}
