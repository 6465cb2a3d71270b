"""One worker of a two-process MultiWorkerMirroredStrategy run (started by tests/test_scale.py).

Usage: ``TF_CONFIG=... python multiworker_worker.py OUT_PREFIX``.  The worker trains the pipeline
model (Input(10) -> Dense ReLU -> Dense softmax, 1000 fixed-seed rows, shuffle=False, the same
initial weights) under the strategy with a custom training loop, twice in this one process,
first with pyoptim.keras.Adam and then with keras.optimizers.Adam, and writes

- ``OUT_PREFIX.npz``: ``pyoptim_<i>`` / ``keras_<i>``, the model weights then the optimizer
  variables after training, for each optimizer;
- ``OUT_PREFIX.json``: this worker's task index, the number of replicas in sync, the
  ``pyoptim.keras.kernel_calls()`` executions of each run, ``path_counts()`` of the pyoptim run,
  the global loss of every step of both runs, the number of steps and the size and sum of the
  first batch this worker read.
"""
from __future__ import annotations

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

# The strategy must exist before any other TensorFlow op runs in this process.
STRATEGY = tf.distribute.MultiWorkerMirroredStrategy()

import keras  # noqa: E402

import pyoptim.keras as pk  # noqa: E402

ROWS, FEATURES, CLASSES, HIDDEN = 1000, 10, 3, 16
GLOBAL_BATCH, EPOCHS = 250, 2  # 4 steps per epoch, 8 updates per run


def data() -> tuple[np.ndarray, np.ndarray]:
    """The pipeline data: 1000 rows x 10 features, 3 classes, fixed seed."""
    rng = np.random.default_rng(1234)
    y = rng.integers(0, CLASSES, ROWS)
    return rng.standard_normal((ROWS, FEATURES)).astype("float32"), y


def train(module) -> tuple[keras.Model, keras.optimizers.Optimizer, list[float], dict[str, int],
                          dict[str, float]]:
    """Train a fresh pipeline model with ``module.Adam`` under the strategy, with the custom
    training loop TensorFlow documents for MultiWorkerMirroredStrategy (``strategy.run`` on a
    distributed dataset; ``apply_gradients`` all-reduces the gradients across the workers).
    Returns the model, the optimizer, the global loss of every step, the kernel executions of
    the run and :func:`local_batch_summary` of its first batch.

    Not ``model.fit``: with two workers, Keras 3.15's ``fit`` fails whatever the optimizer
    (keras-team/keras#20585): ``_maybe_symbolic_build`` passes the (x, y) tuple to
    ``strategy.reduce``, and, past that, ``reduce_per_replica`` reduces the scalar loss with
    ``axis=0``."""
    x, y = data()
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(GLOBAL_BATCH)
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    dataset = STRATEGY.experimental_distribute_dataset(dataset.with_options(options))
    with STRATEGY.scope():
        keras.utils.set_random_seed(7)
        model = keras.Sequential([
            keras.Input((FEATURES,)),
            keras.layers.Dense(HIDDEN, activation="relu"),
            keras.layers.Dense(CLASSES, activation="softmax"),
        ])
        optimizer = module.Adam(learning_rate=0.01)
        optimizer.build(model.trainable_variables)

    def replica_step(xb: tf.Tensor, yb: tf.Tensor) -> tf.Tensor:
        with tf.GradientTape() as tape:
            per_example = keras.losses.sparse_categorical_crossentropy(yb, model(xb, training=True))
            loss = tf.nn.compute_average_loss(per_example, global_batch_size=GLOBAL_BATCH)
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    @tf.function
    def train_step(xb: tf.Tensor, yb: tf.Tensor) -> tf.Tensor:
        return STRATEGY.reduce("SUM", STRATEGY.run(replica_step, args=(xb, yb)), axis=None)

    before = pk.kernel_calls()
    losses: list[float] = []
    first: dict[str, float] = {}
    for _ in range(EPOCHS):
        for xb, yb in dataset:  # in order: no shuffling
            if not first:
                first = local_batch_summary(xb)
            losses.append(float(train_step(xb, yb)))
    after = pk.kernel_calls()
    return model, optimizer, losses, {k: after[k] - before[k] for k in after}, first


def local_batch_summary(xb) -> dict[str, float]:
    """Rows and sum of this worker's part of a global batch (the workers read different halves
    of each global batch, so equal weights mean the gradients were all-reduced)."""
    local = STRATEGY.experimental_local_results(xb)[0].numpy()
    return {"rows": int(local.shape[0]), "sum": float(local.astype("float64").sum())}


def main(prefix: str) -> None:
    arrays: dict[str, np.ndarray] = {}
    info: dict = {
        "task_index": json.loads(os.environ["TF_CONFIG"])["task"]["index"],
        "replicas": STRATEGY.num_replicas_in_sync,
        "steps": (ROWS // GLOBAL_BATCH) * EPOCHS,
    }
    for name, module in (("pyoptim", pk), ("keras", keras.optimizers)):
        model, optimizer, losses, calls, batch = train(module)
        state = [v.numpy() for v in model.weights] + [v.numpy() for v in optimizer.variables]
        arrays.update({f"{name}_{i}": a for i, a in enumerate(state)})
        info[name] = {"losses": losses, "kernel_calls": calls, "arrays": len(state),
                      "first_local_batch": batch,
                      "variables": len(model.trainable_weights)}
        if module is pk:
            info[name]["path_counts"] = optimizer.path_counts()
            info[name]["status_error"] = pk.status()["error"]
    np.savez(prefix + ".npz", **arrays)
    with open(prefix + ".json.tmp", "w") as f:
        json.dump(info, f)
    os.replace(prefix + ".json.tmp", prefix + ".json")  # the JSON appears only when complete


if __name__ == "__main__":
    main(sys.argv[1])
