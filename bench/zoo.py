"""The model zoo of the model.fit benchmark (``e2e.py``): model builders, their data and
their sizes (full and ``--quick``).

* ``pipeline``: the model of ``pyoptim trace``, Input(10) -> Dense(64, ReLU) -> Dense(3,
  softmax); 899 parameters, the optimizer is a small part of a step.
* ``heavy``: optimizer-heavy, 10.5M parameters in 8 variables: Input(16 token ids) ->
  Embedding(1000, 32) -> Flatten -> Dense(4096, ReLU) -> Dense(2048, ReLU) -> Dense(10,
  softmax).  The Embedding's gradient is sparse (0.3% of the parameters).
* ``many_small``: many small variables, a deep MLP: Input(64) -> 100 x Dense(64, ReLU) ->
  Dense(10, softmax); 202 variables, 416,650 parameters.  Per-variable overhead of the
  update (ops, launches) dominates over the arithmetic.
* ``transformer``: a small encoder from Keras layers, every variable dense: Input(32 x 16
  floats) -> Dense(128) -> 12 x [MultiHeadAttention(4 heads, key_dim 32) + residual ->
  LayerNormalization -> Dense(256, ReLU) -> Dense(128) + residual -> LayerNormalization] ->
  GlobalAveragePooling1D -> Dense(10, softmax); 196 variables, 1.59M parameters.
* ``embedding``: a sparse-gradient model: Input(20 token ids, Zipf-distributed) ->
  Embedding(200000, 64) -> GlobalAveragePooling1D -> Dense(64, ReLU) -> Dense(1, sigmoid),
  binary cross-entropy; 5 variables, 12.8M parameters, nearly all in the table, whose gradient
  is a ``tf.IndexedSlices`` of 64 x 20 rows (a few hundred distinct ids).  It runs the sparse
  optimizers (``problems.SPARSE_OPTIMIZERS``: Adam, RMSprop with momentum, SGD with and
  without momentum, LazyAdam against keras.optimizers.Adam) instead of the dense models' four.

Rows and batch sizes are chosen so that one epoch is a handful of steps (a full zoo run
takes minutes on 2 cores); ``--quick`` shrinks every model (fewer layers / blocks, fewer
rows) so that the smoke test traces each train function in about a second.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Tuple

import numpy as np
from problems import DENSE_E2E_OPTIMIZERS, SPARSE_OPTIMIZERS

Arrays = Tuple[np.ndarray, np.ndarray]


@dataclass(frozen=True)
class ModelSpec:
    """One zoo model: how to build it (given the ``keras`` module) and its data."""

    name: str
    description: str
    rows: int
    batch_size: int
    build: Callable[[Any], Any]
    data: Callable[[int], Arrays]
    #: Whether the ``keras.xla`` variant (``jit_compile=True``) runs on it: XLA compiles the
    #: whole train step, which takes tens of seconds per optimizer for the deep zoo models.
    xla: bool = True
    #: ``model.compile``'s loss.
    loss: str = "sparse_categorical_crossentropy"
    #: The optimizers (``problems.HYPER`` names) this model runs with.
    optimizers: Tuple[str, ...] = DENSE_E2E_OPTIMIZERS
    #: Those of them a ``--quick`` run takes (its smoke test traces every cell's train function).
    quick_optimizers: Tuple[str, ...] = ("adam",)

    @property
    def steps_per_epoch(self) -> int:
        return -(-self.rows // self.batch_size)


def pipeline(keras: Any, hidden: int = 64) -> Any:
    return keras.Sequential([
        keras.Input((10,)),
        keras.layers.Dense(hidden, activation="relu"),
        keras.layers.Dense(3, activation="softmax"),
    ])


def pipeline_data(rows: int) -> Arrays:
    rng = np.random.default_rng(1)
    centers = rng.normal(0, 2, size=(3, 10)).astype(np.float32)
    y = rng.integers(0, 3, size=rows).astype(np.int32)
    x = (centers[y] + rng.normal(0, 1, size=(rows, 10))).astype(np.float32)
    return x, y


def heavy(keras: Any, seq: int = 16, vocab: int = 1000, dim: int = 32, h1: int = 4096, h2: int = 2048) -> Any:
    return keras.Sequential([
        keras.Input((seq,), dtype="int32"),
        keras.layers.Embedding(vocab, dim),
        keras.layers.Flatten(),
        keras.layers.Dense(h1, activation="relu"),
        keras.layers.Dense(h2, activation="relu"),
        keras.layers.Dense(10, activation="softmax"),
    ])


def heavy_data(rows: int, seq: int = 16, vocab: int = 1000) -> Arrays:
    rng = np.random.default_rng(2)
    x = rng.integers(0, vocab, size=(rows, seq)).astype(np.int32)
    y = (x.sum(axis=1) % 10).astype(np.int32)
    return x, y


def many_small(keras: Any, layers: int = 100, width: int = 64) -> Any:
    """Input(width) -> ``layers`` x Dense(width, ReLU) -> Dense(10, softmax):
    2 * layers + 2 variables."""
    stack = [keras.Input((width,))]
    stack += [keras.layers.Dense(width, activation="relu") for _ in range(layers)]
    stack.append(keras.layers.Dense(10, activation="softmax"))
    return keras.Sequential(stack)


def many_small_data(rows: int, width: int = 64) -> Arrays:
    rng = np.random.default_rng(3)
    x = rng.standard_normal((rows, width)).astype(np.float32)
    y = np.argmax(x[:, :10], axis=1).astype(np.int32)
    return x, y


def transformer(keras: Any, blocks: int = 12, seq: int = 32, features: int = 16, d_model: int = 128,
                heads: int = 4, key_dim: int = 32, ff: int = 256) -> Any:
    """A post-norm Transformer encoder on float inputs (a Dense projection, so that every
    variable's gradient is dense): 16 * blocks + 4 variables."""
    L = keras.layers
    inputs = keras.Input((seq, features))
    x = L.Dense(d_model)(inputs)
    for _ in range(blocks):
        attention = L.MultiHeadAttention(num_heads=heads, key_dim=key_dim)(x, x)
        x = L.LayerNormalization()(L.Add()([x, attention]))
        h = L.Dense(ff, activation="relu")(x)
        h = L.Dense(d_model)(h)
        x = L.LayerNormalization()(L.Add()([x, h]))
    x = L.GlobalAveragePooling1D()(x)
    return keras.Model(inputs, L.Dense(10, activation="softmax")(x))


def transformer_data(rows: int, seq: int = 32, features: int = 16) -> Arrays:
    rng = np.random.default_rng(4)
    x = rng.standard_normal((rows, seq, features)).astype(np.float32)
    y = np.argmax(x[:, :, :10].mean(axis=1), axis=1).astype(np.int32)
    return x, y


#: The embedding model's vocabulary, sequence length and width; bench/sparse_apply.py times one step of
#: its table's update alone (a batch of 64 rows: 1280 ids).
VOCAB, SEQ, DIM, BATCH = 200_000, 20, 64, 64
ZIPF_A = 1.3


def zipf_ids(rng: np.random.Generator, shape: Any, vocab: int = VOCAB) -> np.ndarray:
    """Token ids ``rng.zipf(1.3, shape) % vocab`` (int32): a few ids take most of a batch (id 1
    about 25%), as words do, so that a batch's 1280 ids hold a few hundred distinct ones."""
    return (rng.zipf(ZIPF_A, size=shape) % vocab).astype(np.int32)


def embedding(keras: Any, vocab: int = VOCAB, seq: int = SEQ, dim: int = DIM) -> Any:
    return keras.Sequential([
        keras.Input((seq,), dtype="int32"),
        keras.layers.Embedding(vocab, dim),
        keras.layers.GlobalAveragePooling1D(),
        keras.layers.Dense(64, activation="relu"),
        keras.layers.Dense(1, activation="sigmoid"),
    ])


def embedding_data(rows: int, seq: int = SEQ) -> Arrays:
    """Zipf-distributed ids (:func:`zipf_ids`, seed 5); binary labels: the first id's parity."""
    rng = np.random.default_rng(5)
    x = zipf_ids(rng, (rows, seq))
    y = (x[:, 0] % 2).astype(np.float32)
    return x, y


MODEL_NAMES: Tuple[str, ...] = ("pipeline", "heavy", "many_small", "transformer", "embedding")

_EMBEDDING = ("Input(20 Zipf ids) -> Embedding(200000, 64) -> GlobalAveragePooling1D -> Dense(64, ReLU) -> "
              "Dense(1, sigmoid), binary cross-entropy; ")


#: The embedding model: sparse optimizers, binary cross-entropy, no ``keras.xla`` variant.
_EMBEDDING_KW: Dict[str, Any] = {"xla": False, "loss": "binary_crossentropy", "optimizers": SPARSE_OPTIMIZERS,
                                 "quick_optimizers": SPARSE_OPTIMIZERS}


def model_specs(quick: bool) -> List[ModelSpec]:
    """The zoo, in :data:`MODEL_NAMES` order; ``quick`` shrinks every model but the pipeline."""
    specs = [ModelSpec("pipeline", "Input(10) -> Dense(64, ReLU) -> Dense(3, softmax); 1000 rows, batch 32",
                       1000, 32, pipeline, pipeline_data, quick_optimizers=DENSE_E2E_OPTIMIZERS)]
    if quick:
        specs += [
            ModelSpec("heavy", "Input(16 ids) -> Embedding(1000, 32) -> Flatten -> Dense(1024, ReLU) -> "
                               "Dense(512, ReLU) -> Dense(10, softmax); 64 rows, batch 16 (quick: shrunk)",
                      64, 16, lambda k: heavy(k, h1=1024, h2=512), heavy_data),
            ModelSpec("many_small", "Input(64) -> 10 x Dense(64, ReLU) -> Dense(10, softmax); 64 rows, batch 32 "
                                    "(quick: 10 layers instead of 100)",
                      64, 32, lambda k: many_small(k, layers=10), many_small_data, xla=False),
            ModelSpec("transformer", "Input(32x16) -> Dense(128) -> 2 x [MHA(4 heads, key_dim 32) + res -> LN -> "
                                     "Dense(256, ReLU) -> Dense(128) + res -> LN] -> avg pool -> Dense(10, softmax); "
                                     "32 rows, batch 16 (quick: 2 blocks instead of 12)",
                      32, 16, lambda k: transformer(k, blocks=2), transformer_data, xla=False),
            ModelSpec("embedding", _EMBEDDING + "256 rows, batch 64 (quick: 256 rows instead of 1024)",
                      256, BATCH, embedding, embedding_data, **_EMBEDDING_KW),
        ]
    else:
        specs += [
            ModelSpec("heavy", "Input(16 ids) -> Embedding(1000, 32) -> Flatten -> Dense(4096, ReLU) -> "
                               "Dense(2048, ReLU) -> Dense(10, softmax); 256 rows, batch 16",
                      256, 16, heavy, heavy_data),
            ModelSpec("many_small", "Input(64) -> 100 x Dense(64, ReLU) -> Dense(10, softmax); 320 rows, batch 32",
                      320, 32, many_small, many_small_data, xla=False),
            ModelSpec("transformer", "Input(32x16) -> Dense(128) -> 12 x [MHA(4 heads, key_dim 32) + res -> LN -> "
                                     "Dense(256, ReLU) -> Dense(128) + res -> LN] -> avg pool -> Dense(10, softmax); "
                                     "64 rows, batch 16",
                      64, 16, transformer, transformer_data, xla=False),
            ModelSpec("embedding", _EMBEDDING + "1024 rows, batch 64", 1024, BATCH, embedding, embedding_data,
                      **_EMBEDDING_KW),
        ]
    return specs
