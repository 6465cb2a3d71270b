"""Convergence evidence for the 8-bit optimizers: ``pyoptim.keras.Adam8bit`` / ``AdamW8bit``
trained side by side with their float32 counterparts, from the same initial weights and the
same batches, on three models:

* ``trace``: the pipeline of ``pyoptim trace`` (its synthetic data, min-max scaling and model,
  from :mod:`pyoptim.trace`): Input(10) -> Dense(64, ReLU) -> Dense(3, softmax), 899
  parameters in 4 variables, none of them with 4096 elements, so the 8-bit optimizers are built
  with ``min_8bit_size=0`` here (every variable quantised; with the default nothing would be).
* ``transformer``: the encoder of the benchmark zoo (``zoo.transformer``, 2 blocks instead of
  the zoo's 12 to fit the time budget) on a synthetic sequence task: 32 positions, each a
  one-hot token of 10 (features 0-9) plus 6 features of N(0, 1) noise; the label is the
  token that occurs most often (ties dropped; one token per row is favoured by a random
  margin so that the task spans easy and near-tie rows).  10 classes, chance 0.1.
* ``embedding``: the sparse-gradient model of the zoo (``zoo.embedding``, Embedding(200000,
  64) on 20 Zipf-distributed ids) on a learnable task: a fixed random "hidden" embedding
  ``H`` (vocab x 16, N(0, 1)) and direction ``w``; the label is 1 when the mean over the row's
  ids of ``H[id] . w`` is above its median over the data set (balanced classes).

The zoo models use the 8-bit optimizers' defaults (``block_size=256``, ``min_8bit_size=4096``),
as a user would; the output says which share of the parameters gets 8-bit state.

Per model, the optimizers ``keras.optimizers.Adam``, ``pyoptim.keras.Adam``,
``pyoptim.keras.Adam8bit``, ``keras.optimizers.AdamW``, ``pyoptim.keras.AdamW``,
``pyoptim.keras.AdamW8bit`` (learning rate 1e-3, Keras' defaults otherwise: AdamW's weight
decay 0.004) all start from the weights of seed 0 and see the same batches (fixed per-epoch
orders, ``shuffle=False``).  The float32 references (keras.optimizers' Adam and AdamW) also run
from seeds 1 and 2 (other initial weights and batch orders, same data): the seed spread; so do
the 8-bit optimizers (``--eight-bit-seeds``), for their own range beside it.

Reported per model and optimizer: the final epoch's training loss and accuracy (mean over its
batches, as Keras reports them), test loss and accuracy after it, the largest weight
difference from the keras.optimizers run from the same weights, the optimizer's state bytes,
and against the targets:

* ``trace``: the 8-bit optimizer's test accuracy within 0.01 of its float32 counterpart's
  (same initial weights) and its test loss within 5 %.
* ``transformer``, ``embedding``: the 8-bit run's (seed 0) test accuracy and test loss within
  the float32 optimizer's range over the seeds (or by how much they miss it); the 8-bit
  optimizer's own range over the seeds is shown beside it.

Outputs (``--out``, default ``bench/results``): ``convergence.json`` (every number, per-epoch
curves, settings, machine), ``convergence.png`` (training and test loss per epoch: a column
per model, a row per optimizer family, the seed ranges shaded) and ``convergence.md`` (the
tables, also printed).

    python bench/convergence.py              # full run, about 7-9 minutes on 2 cores
    python bench/convergence.py --quick      # smoke run, about a minute (tiny models, 2 epochs, 2 seeds)
    python bench/convergence.py --models trace --seeds 2 --quick --out /tmp/c
    python bench/convergence.py --render-only   # .md and .png again from bench/results/convergence.json
"""
from __future__ import annotations

import argparse
import gc
import json
import math
import os
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

MODELS = ("trace", "transformer", "embedding")
LEARNING_RATE = 1e-3
FAMILIES = ("adam", "adamw")
#: Targets: the trace pipeline's 8-bit run against its float32 counterpart from the same weights.
TRACE_ACCURACY_TOLERANCE = 0.01
TRACE_LOSS_TOLERANCE = 0.05


@dataclass(frozen=True)
class OptimizerChoice:
    """One column of the comparison: ``source.class_name``; ``family`` is ``adam`` or
    ``adamw``; ``eight_bit`` ones get the task's ``min_8bit_size``."""

    label: str
    source: str  # "keras.optimizers" or "pyoptim.keras"
    class_name: str
    family: str
    eight_bit: bool = False

    @property
    def reference(self) -> bool:
        """The float32 keras.optimizers run of the family: also run over the seeds."""
        return self.source == "keras.optimizers"


OPTIMIZERS: Tuple[OptimizerChoice, ...] = (
    OptimizerChoice("keras.optimizers.Adam", "keras.optimizers", "Adam", "adam"),
    OptimizerChoice("pyoptim.keras.Adam", "pyoptim.keras", "Adam", "adam"),
    OptimizerChoice("pyoptim.keras.Adam8bit", "pyoptim.keras", "Adam8bit", "adam", eight_bit=True),
    OptimizerChoice("keras.optimizers.AdamW", "keras.optimizers", "AdamW", "adamw"),
    OptimizerChoice("pyoptim.keras.AdamW", "pyoptim.keras", "AdamW", "adamw"),
    OptimizerChoice("pyoptim.keras.AdamW8bit", "pyoptim.keras", "AdamW8bit", "adamw", eight_bit=True),
)


@dataclass
class Task:
    """One model and its data; ``initial_weights(seed)`` and ``orders(seed)`` give a seed's
    starting point and per-epoch batch orders."""

    name: str
    title: str
    description: str
    build: Callable[[Any], Any]
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    loss: str
    n_classes: int
    epochs: int
    batch_size: int
    min_8bit_size: Optional[int]  # None: the optimizers' default
    eight_bit_note: str
    target: str  # "same-init" (trace) or "seed-spread"
    initial_weights: Callable[[int], List[np.ndarray]] = field(repr=False, default=None)  # type: ignore[assignment]

    def orders(self, seed: int) -> List[np.ndarray]:
        from pyoptim.trace.training import epoch_orders

        return epoch_orders(self.x_train.shape[0], self.epochs, seed)


@dataclass
class Run:
    model: str
    optimizer: str
    family: str
    eight_bit: bool
    seed: int
    constructor: str
    loss: List[float] = field(default_factory=list)
    accuracy: List[float] = field(default_factory=list)
    test_loss: List[float] = field(default_factory=list)
    test_accuracy: List[float] = field(default_factory=list)
    epoch_seconds: List[float] = field(default_factory=list)
    seconds: float = 0.0
    state_bytes: int = 0
    max_weight_diff_vs_keras: Optional[float] = None  # seed 0: against keras.optimizers' run of the family
    update_path: str = ""

    def final(self) -> Dict[str, float]:
        return {"train_loss": self.loss[-1], "train_accuracy": self.accuracy[-1],
                "test_loss": self.test_loss[-1], "test_accuracy": self.test_accuracy[-1]}


# ----------------------------------------------------------------------------- tasks


def _zoo_weights(keras: Any, build: Callable[[Any], Any]) -> Callable[[int], List[np.ndarray]]:
    def weights(seed: int) -> List[np.ndarray]:
        keras.utils.set_random_seed(seed)
        model = build(keras)
        out = [np.array(w, copy=True) for w in model.get_weights()]
        del model
        return out

    return weights


def trace_task(keras: Any, quick: bool) -> Task:
    """The ``pyoptim trace`` pipeline: its data (seed 0), scaling and model."""
    from pyoptim.trace.data import MinMaxScaler, synthetic_dataset
    from pyoptim.trace.model import build_model, describe_model, initial_weights, parameter_count

    data = synthetic_dataset(0)
    scaler = MinMaxScaler.fit(data.x_train)
    hidden = 64
    nf, nc = data.n_features, data.n_classes
    epochs = 2 if quick else 10
    return Task(
        name="trace",
        title="trace pipeline",
        description=(f"{describe_model(nf, nc, hidden)}, {parameter_count(nf, nc, hidden)} parameters; "
                     f"pyoptim trace's synthetic data (seed 0), min-max scaled: {data.x_train.shape[0]} train / "
                     f"{data.x_test.shape[0]} test rows, {nc} classes; {epochs} epochs, batch 32"),
        build=lambda k: build_model(nf, nc, hidden),
        x_train=scaler.transform(data.x_train), y_train=data.y_train,
        x_test=scaler.transform(data.x_test), y_test=data.y_test,
        loss="sparse_categorical_crossentropy", n_classes=nc, epochs=epochs, batch_size=32,
        min_8bit_size=0,
        eight_bit_note=("min_8bit_size=0: every variable (largest 640 elements) keeps 8-bit m and v; with the "
                        "default 4096 none would and the 8-bit runs would be plain Adam/AdamW"),
        target="same-init",
        initial_weights=lambda seed: initial_weights(nf, nc, hidden, seed),
    )


def majority_tokens(rows: int, seq: int = 32, features: int = 16, tokens: int = 10, max_margin: float = 0.1,
                    seed: int = 7) -> Tuple[np.ndarray, np.ndarray]:
    """``rows`` sequences for the transformer: per row a favoured token ``c`` and a margin
    ``b ~ U(0, max_margin)``; each position draws token ``c`` with probability ``b + (1 - b) / tokens``
    and each other token with ``(1 - b) / tokens``.  Features: the token one-hot (0..tokens-1)
    and N(0, 1) noise (the rest).  Label: the most frequent token; rows with a tie for the most
    frequent are replaced, so exactly ``rows`` rows come back."""
    rng = np.random.default_rng(seed)
    xs, ys, have = [], [], 0
    while have < rows:
        n = 2 * (rows - have) + 16
        favoured = rng.integers(0, tokens, size=n)
        margin = rng.uniform(0.0, max_margin, size=n)
        p = np.repeat(((1.0 - margin) / tokens)[:, None], tokens, axis=1)
        p[np.arange(n), favoured] += margin
        cumulative = np.cumsum(p, axis=1)
        draws = rng.random((n, seq))
        toks = np.minimum((draws[:, :, None] > cumulative[:, None, :]).sum(axis=2), tokens - 1)
        counts = np.stack([(toks == t).sum(axis=1) for t in range(tokens)], axis=1)
        unique = (counts == counts.max(axis=1, keepdims=True)).sum(axis=1) == 1
        x = np.zeros((n, seq, features), np.float32)
        x[np.arange(n)[:, None], np.arange(seq)[None, :], toks] = 1.0
        x[:, :, tokens:] = rng.standard_normal((n, seq, features - tokens)).astype(np.float32)
        xs.append(x[unique])
        ys.append(counts.argmax(axis=1)[unique].astype(np.int32))
        have += int(unique.sum())
    return np.concatenate(xs)[:rows], np.concatenate(ys)[:rows]


def transformer_task(keras: Any, quick: bool) -> Task:
    import zoo

    blocks = 1 if quick else 2
    size = dict(d_model=32, key_dim=8, ff=64) if quick else {}
    n_train, n_test = (256, 128) if quick else (2048, 1024)
    epochs = 2 if quick else 8
    x, y = majority_tokens(n_train + n_test)
    d, kd, ff = size.get("d_model", 128), size.get("key_dim", 32), size.get("ff", 256)

    def build(k: Any) -> Any:
        return zoo.transformer(k, blocks=blocks, **size)

    return Task(
        name="transformer",
        title="transformer encoder",
        description=(f"zoo.transformer with {blocks} block(s) (the zoo's has 12): Input(32x16) -> Dense({d}) -> "
                     f"{blocks} x [MHA(4 heads, key_dim {kd}) + res -> LN -> Dense({ff}, ReLU) -> Dense({d}) + res -> LN] "
                     "-> avg pool -> Dense(10, softmax); task: the most frequent of 10 one-hot tokens in 32 positions "
                     f"(+ 6 noise features), chance 0.1; {n_train} train / {n_test} test rows; {epochs} epochs, batch 64"),
        build=build,
        x_train=x[:n_train], y_train=y[:n_train], x_test=x[n_train:], y_test=y[n_train:],
        loss="sparse_categorical_crossentropy", n_classes=10, epochs=epochs, batch_size=64,
        min_8bit_size=None, eight_bit_note="default min_8bit_size=4096", target="seed-spread",
        initial_weights=_zoo_weights(keras, build),
    )


def hidden_embedding_labels(rows: int, vocab: int, seq: int, hidden_dim: int = 16,
                            seed: int = 11) -> Tuple[np.ndarray, np.ndarray]:
    """Zipf ids (``zoo.zipf_ids``) and labels ``mean_j H[id_j] . w > median`` for a fixed random
    ``H`` (vocab x hidden_dim) and ``w``, both N(0, 1)."""
    import zoo

    rng = np.random.default_rng(seed)
    x = zoo.zipf_ids(rng, (rows, seq), vocab)
    table = rng.standard_normal((vocab, hidden_dim)).astype(np.float32)
    direction = rng.standard_normal(hidden_dim).astype(np.float32)
    score = (table @ direction)[x].mean(axis=1)
    return x, (score > np.median(score)).astype(np.float32)


def embedding_task(keras: Any, quick: bool) -> Task:
    import zoo

    vocab = 20_000 if quick else zoo.VOCAB
    n_train, n_test = (512, 256) if quick else (4096, 1024)
    epochs = 2 if quick else 6
    x, y = hidden_embedding_labels(n_train + n_test, vocab, zoo.SEQ)

    def build(k: Any) -> Any:
        return zoo.embedding(k, vocab=vocab)

    return Task(
        name="embedding",
        title="embedding (sparse gradients)",
        description=(f"zoo.embedding: Input(20 Zipf ids) -> Embedding({vocab}, 64) -> avg pool -> Dense(64, ReLU) -> "
                     "Dense(1, sigmoid), binary cross-entropy; task: mean over the ids of a fixed random hidden "
                     f"embedding (16-d) projected on a random direction, above its median; {n_train} train / "
                     f"{n_test} test rows; {epochs} epochs, batch {zoo.BATCH}"),
        build=build,
        x_train=x[:n_train], y_train=y[:n_train], x_test=x[n_train:], y_test=y[n_train:],
        loss="binary_crossentropy", n_classes=2, epochs=epochs, batch_size=zoo.BATCH,
        min_8bit_size=None, eight_bit_note="default min_8bit_size=4096", target="seed-spread",
        initial_weights=_zoo_weights(keras, build),
    )


TASKS: Dict[str, Callable[[Any, bool], Task]] = {
    "trace": trace_task, "transformer": transformer_task, "embedding": embedding_task,
}


# -------------------------------------------------------------------------- training


def optimizer_classes(keras: Any) -> Dict[str, type]:
    """label -> class; exits with a clear message when pyoptim.keras lacks one."""
    import pyoptim.keras as pk

    classes: Dict[str, type] = {}
    missing = []
    for choice in OPTIMIZERS:
        module = keras.optimizers if choice.reference else pk
        cls = getattr(module, choice.class_name, None)
        if cls is None:
            missing.append(choice.label)
        classes[choice.label] = cls
    if missing:
        raise SystemExit(f"convergence.py: error: not available: {', '.join(missing)}")
    return classes


def make_optimizer(choice: OptimizerChoice, cls: type, task: Task) -> Tuple[Any, str]:
    kwargs: Dict[str, Any] = {"learning_rate": LEARNING_RATE}
    if choice.eight_bit and task.min_8bit_size is not None:
        kwargs["min_8bit_size"] = task.min_8bit_size
    text = f"{choice.source}.{choice.class_name}(" + ", ".join(f"{k}={v!r}" for k, v in kwargs.items()) + ")"
    return cls(**kwargs), text


def eight_bit_coverage(weights: Sequence[np.ndarray], min_size: int) -> Dict[str, Any]:
    """Which variables an 8-bit optimizer quantises (``size >= min_size``)."""
    sizes = [int(w.size) for w in weights]
    q = [n for n in sizes if n >= min_size]
    return {"min_8bit_size": min_size, "variables": len(sizes), "quantized_variables": len(q),
            "parameters": sum(sizes), "quantized_parameters": sum(q),
            "quantized_fraction": (sum(q) / sum(sizes)) if sizes else 0.0}


def state_bytes(optimizer: Any) -> int:
    """Bytes of the optimizer's variables (slots, 8-bit codes and scales, iteration counter)."""
    total = 0
    for v in optimizer.variables:
        total += int(np.prod(v.shape, dtype=np.int64)) * np.dtype(str(v.dtype)).itemsize
    return total


def train(keras: Any, task: Task, optimizer: Any, weights: Sequence[np.ndarray],
          orders: Sequence[np.ndarray]) -> Tuple[Dict[str, List[float]], List[np.ndarray], Any]:
    model = task.build(keras)
    model.set_weights([np.array(w, copy=True) for w in weights])
    model.compile(optimizer=optimizer, loss=task.loss, metrics=["accuracy"])
    curves: Dict[str, List[float]] = {"loss": [], "accuracy": [], "test_loss": [], "test_accuracy": [],
                                      "epoch_seconds": []}
    for order in orders:
        start = time.perf_counter()
        history = model.fit(task.x_train[order], task.y_train[order], batch_size=task.batch_size, epochs=1,
                            shuffle=False, verbose=0)
        curves["epoch_seconds"].append(time.perf_counter() - start)
        test = model.evaluate(task.x_test, task.y_test, batch_size=256, verbose=0, return_dict=True)
        curves["loss"].append(float(history.history["loss"][-1]))
        curves["accuracy"].append(float(history.history["accuracy"][-1]))
        curves["test_loss"].append(float(test["loss"]))
        curves["test_accuracy"].append(float(test["accuracy"]))
    final = [np.array(w, copy=True) for w in model.get_weights()]
    return curves, final, model


def max_abs_diff(a: Sequence[np.ndarray], b: Sequence[np.ndarray]) -> float:
    return max((float(np.max(np.abs(x.astype(np.float64) - y.astype(np.float64)))) if x.size else 0.0
                for x, y in zip(a, b)), default=0.0)


def seed_plan(seeds: int, eight_bit_seeds: int) -> List[Tuple[OptimizerChoice, int]]:
    """Every optimizer from seed 0; then from seeds 1..seeds-1 the keras.optimizers references
    and, for seeds below ``eight_bit_seeds``, the 8-bit optimizers."""
    plan = [(c, 0) for c in OPTIMIZERS]
    for seed in range(1, seeds):
        plan += [(c, seed) for c in OPTIMIZERS if c.reference or (c.eight_bit and seed < eight_bit_seeds)]
    return plan


def run_task(keras: Any, task: Task, plan: Sequence[Tuple[OptimizerChoice, int]], classes: Dict[str, type],
             say: Callable[[str], None], counter: List[int], total: int) -> Tuple[List[Run], Dict[str, Any]]:
    """The runs of ``plan`` (:func:`seed_plan`), in order."""
    from pyoptim.trace.optimizer_choice import kernel_calls, update_path

    weights0 = task.initial_weights(0)
    default_min = _default_min_8bit_size(classes)
    coverage = eight_bit_coverage(weights0, task.min_8bit_size if task.min_8bit_size is not None else default_min)
    runs: List[Run] = []
    reference_weights: Dict[str, List[np.ndarray]] = {}
    for choice, seed in plan:
        counter[0] += 1
        weights = weights0 if seed == 0 else task.initial_weights(seed)
        optimizer, text = make_optimizer(choice, classes[choice.label], task)
        before = kernel_calls()
        start = time.perf_counter()
        curves, final, model = train(keras, task, optimizer, weights, task.orders(seed))
        seconds = time.perf_counter() - start
        run = Run(model=task.name, optimizer=choice.label, family=choice.family, eight_bit=choice.eight_bit,
                  seed=seed, constructor=text, seconds=seconds, state_bytes=state_bytes(optimizer), **curves)
        if not choice.reference:
            try:  # the trace's wording; kernel counters of adam (and adam8bit for the 8-bit ones)
                run.update_path = update_path("adam8bit" if choice.eight_bit else "adam", optimizer, before,
                                              kernel_calls(), int(optimizer.iterations) * len(weights))
            except Exception as exc:  # the wording is the trace's; never fail the benchmark over it
                run.update_path = f"unknown ({type(exc).__name__})"
        else:
            run.update_path = "keras.optimizers (TensorFlow ops)"
        if seed == 0:
            if choice.reference:
                reference_weights[choice.family] = final
                run.max_weight_diff_vs_keras = 0.0
            elif choice.family in reference_weights:
                run.max_weight_diff_vs_keras = max_abs_diff(final, reference_weights[choice.family])
        runs.append(run)
        f = run.final()
        say(f"[{counter[0]:>2}/{total}] {task.name:<11} {choice.label:<24} seed {seed}: train loss "
            f"{f['train_loss']:.4f} acc {f['train_accuracy']:.4f} | test loss {f['test_loss']:.4f} "
            f"acc {f['test_accuracy']:.4f} | {seconds:5.1f} s")
        del model, optimizer, final
        keras.backend.clear_session()
        gc.collect()
    return runs, coverage


def _default_min_8bit_size(classes: Dict[str, type]) -> int:
    import inspect

    try:
        return int(inspect.signature(classes["pyoptim.keras.Adam8bit"]).parameters["min_8bit_size"].default)
    except (KeyError, TypeError, ValueError):
        return 4096


# --------------------------------------------------------------------------- verdicts


def spread(runs: Sequence[Run], family: str, eight_bit: bool = False) -> Dict[str, Any]:
    """min..max of the final numbers over the seeds of the family's keras.optimizers runs (or,
    ``eight_bit``, of its 8-bit runs)."""
    refs = [r for r in runs if r.family == family and
            (r.eight_bit if eight_bit else r.optimizer.startswith("keras."))]
    out: Dict[str, Any] = {"optimizer": refs[0].optimizer, "seeds": [r.seed for r in refs]}
    for key in ("train_loss", "train_accuracy", "test_loss", "test_accuracy"):
        values = [r.final()[key] for r in refs]
        out[key] = {"min": min(values), "max": max(values), "values": values}
    return out


def _spread_check(value: float, lo: float, hi: float, higher_is_better: bool) -> Tuple[str, float]:
    """("within" | "better" | "misses", distance outside the range)."""
    if lo <= value <= hi:
        return "within", 0.0
    below = value < lo
    distance = lo - value if below else value - hi
    better = below != higher_is_better
    return ("better" if better else "misses"), distance


def verdict(task: Task, run: Run, same_init: Run, seed_spread: Dict[str, Any],
            eight_bit_spread: Dict[str, Any]) -> Dict[str, Any]:
    """The 8-bit run (seed 0) against the target of its model; ``seeds_text`` compares the 8-bit
    optimizer's range over its seeds with the float32 one's (context, not the target)."""
    f, r = run.final(), same_init.final()
    acc_diff = f["test_accuracy"] - r["test_accuracy"]
    loss_rel = (f["test_loss"] - r["test_loss"]) / r["test_loss"] if r["test_loss"] else math.inf
    out: Dict[str, Any] = {"reference": same_init.optimizer, "test_accuracy_diff": acc_diff,
                           "test_loss_relative_diff": loss_rel}
    e, r8 = seed_spread, eight_bit_spread
    out["seeds_text"] = (
        f"8-bit over seeds {','.join(map(str, r8['seeds']))}: test acc {r8['test_accuracy']['min']:.4f}.."
        f"{r8['test_accuracy']['max']:.4f} (float32 {e['test_accuracy']['min']:.4f}..{e['test_accuracy']['max']:.4f}), "
        f"test loss {r8['test_loss']['min']:.4f}..{r8['test_loss']['max']:.4f} "
        f"(float32 {e['test_loss']['min']:.4f}..{e['test_loss']['max']:.4f})"
    ) if len(r8["seeds"]) > 1 else ""
    if task.target == "same-init":
        ok_acc = abs(acc_diff) <= TRACE_ACCURACY_TOLERANCE + 1e-12
        ok_loss = abs(loss_rel) <= TRACE_LOSS_TOLERANCE + 1e-12
        out["target"] = (f"|test accuracy - {same_init.optimizer}'s| <= {TRACE_ACCURACY_TOLERANCE} and |test loss "
                         f"change| <= {TRACE_LOSS_TOLERANCE:.0%} (same initial weights)")
        out["met"] = ok_acc and ok_loss
        parts = [f"acc {acc_diff:+.4f}" + ("" if ok_acc else f" (misses by {abs(acc_diff) - TRACE_ACCURACY_TOLERANCE:.4f})"),
                 f"loss {loss_rel:+.1%}" + ("" if ok_loss else f" (misses by {abs(loss_rel) - TRACE_LOSS_TOLERANCE:.1%})")]
        out["text"] = ("meets: " if out["met"] else "MISSES: ") + ", ".join(parts)
        return out
    acc_state, acc_by = _spread_check(f["test_accuracy"], seed_spread["test_accuracy"]["min"],
                                      seed_spread["test_accuracy"]["max"], True)
    loss_state, loss_by = _spread_check(f["test_loss"], seed_spread["test_loss"]["min"],
                                        seed_spread["test_loss"]["max"], False)
    out["target"] = (f"test accuracy and test loss within the range of keras.optimizers."
                     f"{'Adam' if run.family == 'adam' else 'AdamW'} over seeds {seed_spread['seeds']}")
    out["test_accuracy_vs_spread"] = {"state": acc_state, "by": acc_by}
    out["test_loss_vs_spread"] = {"state": loss_state, "by": loss_by}
    out["met"] = acc_state != "misses" and loss_state != "misses"
    words = {"within": "within spread", "better": "better than every seed by", "misses": "misses by"}
    acc_text = f"acc {words[acc_state]}" + (f" {acc_by:.4f}" if acc_state != "within" else "")
    loss_text = f"loss {words[loss_state]}" + (f" {loss_by:.4f}" if loss_state != "within" else "")
    out["text"] = ("meets: " if out["met"] else "MISSES: ") + f"{acc_text}; {loss_text}"
    return out


# ---------------------------------------------------------------------------- outputs


def _seed_list(seeds: Sequence[int]) -> str:
    return ",".join(map(str, seeds))


def markdown(results: Dict[str, Any]) -> str:
    """The tables of ``convergence.md``, from the JSON document."""
    seeds, eight_seeds = results["seeds"], results["eight_bit_seeds"]
    lines = ["# Convergence: 8-bit Adam / AdamW against float32", ""]
    lines.append(f"Learning rate {results['learning_rate']:g} for all; AdamW's weight decay Keras' default (0.004). "
                 "Same initial weights (seed 0) and batches for every optimizer of a model; keras.optimizers' "
                 f"Adam and AdamW also from seeds {_seed_list(seeds)} (the spread)"
                 + (f", the 8-bit optimizers from seeds {_seed_list(eight_seeds)}" if len(eight_seeds) > 1 else "")
                 + ". Train: the last epoch's mean over its batches; test: after the last epoch. `max abs dw`: "
                 "largest weight difference from keras.optimizers' run of the family from the same weights "
                 "(0 = same bits).")
    lines.append("")
    for name, model in results["models"].items():
        cov = model["eight_bit_coverage"]
        lines.append(f"## {model['title']}")
        lines.append("")
        lines.append(model["description"] + ".")
        lines.append(f"8-bit state: {cov['quantized_variables']}/{cov['variables']} variables, "
                     f"{cov['quantized_fraction']:.1%} of {cov['parameters']:,} parameters ({model['eight_bit_note']}).")
        lines.append("")
        lines.append("| optimizer | seed | train loss | train acc | test loss | test acc | max abs dw | state MB | "
                     "time s | vs target |")
        lines.append("|---|---|---|---|---|---|---|---|---|---|")
        for run in model["runs"]:
            if run["seed"] != 0:
                continue
            f = run["final"]
            dw = run["max_weight_diff_vs_keras"]
            dw_text = "ref." if run["optimizer"].startswith("keras.") else ("n/a" if dw is None else f"{dw:.2g}")
            v = model["verdicts"].get(run["optimizer"], {}).get("text", "")
            lines.append(f"| {run['optimizer']} | 0 | {f['train_loss']:.4f} | {f['train_accuracy']:.4f} | "
                         f"{f['test_loss']:.4f} | {f['test_accuracy']:.4f} | {dw_text} | "
                         f"{run['state_bytes'] / 1e6:.2f} | {run['seconds']:.1f} | {v} |")
        for key in [f for f in FAMILIES] + [f"{f}8bit" for f in FAMILIES]:
            s = model["spread"].get(key)
            if s is None or len(s["seeds"]) < 2:
                continue
            lines.append(f"| {s['optimizer']}, seeds {','.join(map(str, s['seeds']))} | range | "
                         f"{s['train_loss']['min']:.4f}..{s['train_loss']['max']:.4f} | "
                         f"{s['train_accuracy']['min']:.4f}..{s['train_accuracy']['max']:.4f} | "
                         f"{s['test_loss']['min']:.4f}..{s['test_loss']['max']:.4f} | "
                         f"{s['test_accuracy']['min']:.4f}..{s['test_accuracy']['max']:.4f} | | | | spread |")
        lines.append("")
        for name, v in model["verdicts"].items():
            lines.append(f"Target of {name}: {v['target']}.")
        lines.append("")
    lines.append("## Summary")
    lines.append("")
    for model_name, model in results["models"].items():
        for name, v in model["verdicts"].items():
            lines.append(f"* {model_name}, {name}, seed 0: {v['text']}"
                         + (f"; {v['seeds_text']}" if v["seeds_text"] else ""))
    lines.append("")
    lines.append(f"Run: `{results['command']}`, {results['duration_s']:.0f} s on {results['cpus']} CPU(s).")
    return "\n".join(lines) + "\n"


def plot(results: Dict[str, Any], path: str) -> None:
    """``convergence.png`` from the JSON document."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import FormatStrFormatter, LogLocator

    models = list(results["models"].values())
    fig = Figure(figsize=(5.2 * len(models), 8.4), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(2, len(models), squeeze=False)
    style = {"keras": ("black", "", 2.2), "pyoptim": ("tab:orange", "x", 1.0), "8bit": ("tab:blue", "o", 1.4)}
    for col, model in enumerate(models):
        for row, family in enumerate(FAMILIES):
            ax = axes[row][col]
            refs = [r for r in model["runs"] if r["family"] == family and r["optimizer"].startswith("keras.")]
            epochs = np.arange(1, len(refs[0]["test_loss"]) + 1)
            for key, alpha, what in (("loss", 0.10, "train"), ("test_loss", 0.20, "test")):
                values = np.array([r[key] for r in refs])
                ax.fill_between(epochs, values.min(axis=0), values.max(axis=0), color="gray", alpha=alpha, lw=0,
                                label=f"keras, seeds {','.join(str(r['seed']) for r in refs)}: {what} range")
            eights = [r for r in model["runs"] if r["family"] == family and r["eight_bit"]]
            if len(eights) > 1:
                values = np.array([r["test_loss"] for r in eights])
                ax.fill_between(epochs, values.min(axis=0), values.max(axis=0), color="tab:blue", alpha=0.12, lw=0,
                                label=f"8-bit, seeds {','.join(str(r['seed']) for r in eights)}: test range")
            for run in model["runs"]:
                if run["family"] != family or run["seed"] != 0:
                    continue
                kind = "keras" if run["optimizer"].startswith("keras.") else ("8bit" if run["eight_bit"] else "pyoptim")
                color, marker, width = style[kind]
                short = run["optimizer"].replace("keras.optimizers.", "keras ").replace("pyoptim.keras.", "pyoptim ")
                ax.plot(epochs, run["loss"], "-", marker=marker, color=color, lw=width, ms=5, label=f"{short} train")
                ax.plot(epochs, run["test_loss"], "--", marker=marker, color=color, lw=width, ms=5,
                        label=f"{short} test")
            ax.set_yscale("log")
            ax.yaxis.set_major_formatter(FormatStrFormatter("%.3g"))
            ax.yaxis.set_minor_locator(LogLocator(base=10, subs=(2.0, 3.0, 5.0)))
            ax.yaxis.set_minor_formatter(FormatStrFormatter("%.3g"))
            ax.tick_params(axis="y", which="minor", labelsize=7)
            ax.set_xlabel("epoch")
            ax.set_ylabel("loss")
            ax.grid(True, alpha=0.3, which="both")
            ax.set_title(f"{model['title']}: {'Adam' if family == 'adam' else 'AdamW'}", fontsize=10)
            if len(epochs) <= 20:
                ax.set_xticks(epochs)
            ax.legend(fontsize=7, loc="best")
    fig.suptitle("Training (solid, mean over the epoch's batches) and test (dashed) loss from the same initial "
                 f"weights (seed 0); shaded: range over seeds {results['seeds']} (grey keras.optimizers, blue 8-bit)",
                 fontsize=10)
    fig.savefig(path, format="png")


#: Files whose content decides the 8-bit numbers (their sha256 goes into the JSON: the run may
#: precede the commit of a change to them).
SOURCES = ("pyoptim/keras/optimizers_8bit.py", "pyoptim/keras/optimizers.py", "pyoptim/keras/_op/pyoptim_tf_ops.cc",
           "csrc/pyoptim/adam8bit.hpp")


def _source_hashes() -> Dict[str, Optional[str]]:
    import hashlib

    root = os.path.dirname(HERE)
    out: Dict[str, Optional[str]] = {}
    for rel in SOURCES:
        try:
            with open(os.path.join(root, rel), "rb") as handle:
                out[rel] = hashlib.sha256(handle.read()).hexdigest()
        except OSError:
            out[rel] = None
    return out


def _json_number(x: Any) -> Any:
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def _clean(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if isinstance(obj, (np.floating,)):
        return _json_number(float(obj))
    if isinstance(obj, (np.integer,)):
        return int(obj)
    return _json_number(obj)


# ------------------------------------------------------------------------------- main


def parse_args(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smoke run: tiny models and data, 2 epochs")
    parser.add_argument("--models", default=",".join(MODELS), help=f"comma-separated subset of {','.join(MODELS)}")
    parser.add_argument("--seeds", type=int, default=None,
                        help="seeds of the float32 references (default 3, --quick 2; at least 2)")
    parser.add_argument("--eight-bit-seeds", type=int, default=None,
                        help="seeds of the 8-bit optimizers (default: as --seeds; --quick 1: seed 0 only)")
    parser.add_argument("--render-only", action="store_true",
                        help="train nothing: rewrite convergence.md and .png from --out's convergence.json")
    parser.add_argument("--out", default=os.path.join(HERE, "results"),
                        help="directory of convergence.json / .png / .md (default bench/results)")
    args = parser.parse_args(argv)
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = [m for m in models if m not in MODELS]
    if unknown or not models:
        parser.error(f"--models: unknown {', '.join(unknown) or '(empty)'} (choose from {', '.join(MODELS)})")
    if args.seeds is None:
        args.seeds = 2 if args.quick else 3
    if args.seeds < 2:
        parser.error("--seeds must be at least 2 (a spread needs two seeds)")
    if args.eight_bit_seeds is None:
        args.eight_bit_seeds = 1 if args.quick else args.seeds
    if not 1 <= args.eight_bit_seeds <= args.seeds:
        parser.error(f"--eight-bit-seeds must be from 1 to --seeds ({args.seeds})")
    if not os.path.isdir(args.out):
        parser.error(f"--out: directory does not exist: {args.out}")
    args.models = models
    return args


def write_outputs(results: Dict[str, Any], out: str, say: Callable[[str], None], json_too: bool = True) -> None:
    json_path = os.path.join(out, "convergence.json")
    md_path = os.path.join(out, "convergence.md")
    png_path = os.path.join(out, "convergence.png")
    table = markdown(results)
    if json_too:
        with open(json_path, "w", encoding="utf-8") as handle:
            json.dump(_clean(results), handle, indent=1)
            handle.write("\n")
    with open(md_path, "w", encoding="utf-8") as handle:
        handle.write(table)
    plot(results, png_path)
    say("\n" + table)
    say("\n".join(f"wrote {p}" for p in ([json_path] if json_too else []) + [md_path, png_path]))


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    t_start = time.time()

    def say(text: str) -> None:
        print(text, flush=True)

    if args.render_only:
        json_path = os.path.join(args.out, "convergence.json")
        try:
            with open(json_path, encoding="utf-8") as handle:
                results = json.load(handle)
        except (OSError, ValueError) as exc:
            raise SystemExit(f"convergence.py: error: --render-only: cannot read {json_path}: {exc}")
        write_outputs(results, args.out, say, json_too=False)
        return 0

    from pyoptim.trace.tensorflow_import import import_keras

    keras = import_keras()
    import pyoptim.keras as pk

    classes = optimizer_classes(keras)
    say(f"pyoptim.keras update path: {'C++ kernels (op loaded)' if pk.fast_path_available() else 'Keras fallback'}")
    tasks = [TASKS[name](keras, args.quick) for name in args.models]
    plan = seed_plan(args.seeds, args.eight_bit_seeds)
    total = len(plan) * len(tasks)
    counter = [0]
    results: Dict[str, Any] = {
        "format": "pyoptim-convergence/1",
        "command": " ".join(["python bench/convergence.py", *(sys.argv[1:] if argv is None else argv)]),
        "quick": args.quick,
        "seeds": list(range(args.seeds)),
        "eight_bit_seeds": list(range(args.eight_bit_seeds)),
        "learning_rate": LEARNING_RATE,
        "cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "models": {},
    }
    for task in tasks:
        say(f"\n{task.title}: {task.description}")
        runs, coverage = run_task(keras, task, plan, classes, say, counter, total)
        spreads = {family: spread(runs, family) for family in FAMILIES}
        spreads.update({f"{family}8bit": spread(runs, family, eight_bit=True) for family in FAMILIES})
        verdicts: Dict[str, Any] = {}
        for run in runs:
            if run.eight_bit and run.seed == 0:
                same = next(r for r in runs if r.seed == 0 and r.family == run.family and r.optimizer.startswith("keras."))
                verdicts[run.optimizer] = verdict(task, run, same, spreads[run.family], spreads[f"{run.family}8bit"])
        results["models"][task.name] = {
            "title": task.title,
            "description": task.description,
            "epochs": task.epochs,
            "batch_size": task.batch_size,
            "train_rows": int(task.x_train.shape[0]),
            "test_rows": int(task.x_test.shape[0]),
            "classes": task.n_classes,
            "eight_bit_note": task.eight_bit_note,
            "eight_bit_coverage": coverage,
            "target": task.target,
            "runs": [{**run.__dict__, "final": run.final()} for run in runs],
            "spread": spreads,
            "verdicts": verdicts,
        }
    results["duration_s"] = time.time() - t_start
    results["sources"] = _source_hashes()
    try:
        import machine

        results["machine"] = machine.machine_info()
    except Exception as exc:  # pragma: no cover - informational only
        results["machine"] = {"error": f"{type(exc).__name__}: {exc}"}
    write_outputs(_clean(results), args.out, say)
    return 0


if __name__ == "__main__":
    sys.exit(main())
