"""Data-parallel training on several machines with pyoptim.keras and MultiWorkerMirroredStrategy:
here two worker processes on this machine (127.0.0.1), started by this script.

    python examples/multiworker.py                     # pyoptim.keras.Adam
    python examples/multiworker.py --optimizer keras   # keras.optimizers.Adam, to compare

Each worker prints its loss per epoch, a checksum of its final weights and how many times
pyoptim's C++ kernel ran in it.  Both workers end with the same weights, and the checksum is the
same with ``--optimizer keras`` (pyoptim.keras gives Keras' results to the bit).

On real machines, run the worker part on each machine, with the same cluster list everywhere and
that machine's own index (the machines must reach each other on those ports)::

    TF_CONFIG='{"cluster": {"worker": ["host1:12345", "host2:12345"]},
                "task": {"type": "worker", "index": 0}}' python multiworker.py --worker

The training loop is TensorFlow's custom loop for this strategy (``strategy.run`` on a distributed
dataset): with more than one worker, ``model.fit`` fails in Keras 3 whatever the optimizer
(keras-team/keras#20585).
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time

GLOBAL_BATCH, EPOCHS = 250, 3
TIMEOUT = 300  # seconds for both workers, including a first-time build of pyoptim's op


def worker(optimizer_name: str) -> None:
    """One worker: TF_CONFIG (set by the launcher, or by you on each machine) says who is who."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import hashlib

    import numpy as np
    import tensorflow as tf

    strategy = tf.distribute.MultiWorkerMirroredStrategy()  # first, before any other TF op

    import keras

    import pyoptim.keras

    # The same 1000 rows on every worker; each worker reads its half of every global batch.
    rng = np.random.default_rng(1234)
    y = rng.integers(0, 3, 1000)
    x = rng.standard_normal((1000, 10)).astype("float32")
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(GLOBAL_BATCH)
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    dataset = strategy.experimental_distribute_dataset(dataset.with_options(options))

    with strategy.scope():
        keras.utils.set_random_seed(7)  # the same initial weights on every worker
        model = keras.Sequential([
            keras.Input((10,)),
            keras.layers.Dense(16, activation="relu"),
            keras.layers.Dense(3, activation="softmax"),
        ])
        if optimizer_name == "pyoptim":
            optimizer = pyoptim.keras.Adam(learning_rate=0.01)
        else:
            optimizer = keras.optimizers.Adam(learning_rate=0.01)

    def replica_step(xb, yb):
        with tf.GradientTape() as tape:
            per_example = keras.losses.sparse_categorical_crossentropy(yb, model(xb, training=True))
            loss = tf.nn.compute_average_loss(per_example, global_batch_size=GLOBAL_BATCH)
        grads = tape.gradient(loss, model.trainable_variables)
        # Sums the gradients over all workers, then updates (pyoptim's kernel, on each worker).
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    @tf.function
    def train_step(xb, yb):
        return strategy.reduce("SUM", strategy.run(replica_step, args=(xb, yb)), axis=None)

    index = json.loads(os.environ["TF_CONFIG"])["task"]["index"]
    epoch_losses = []
    for _ in range(EPOCHS):
        losses = [float(train_step(xb, yb)) for xb, yb in dataset]
        epoch_losses.append(sum(losses) / len(losses))
    digest = hashlib.sha256(b"".join(v.numpy().tobytes() for v in model.weights)).hexdigest()
    calls = pyoptim.keras.kernel_calls()["adam"]
    if optimizer_name == "pyoptim":
        counts = optimizer.path_counts()
        path = "pyoptim kernel" if calls and not counts["fallback"] else f"Keras fallback {counts}"
    else:
        path = "keras.optimizers.Adam"
    print(f"worker {index}: loss per epoch {' '.join(f'{v:.6f}' for v in epoch_losses)}; "
          f"weights sha256 {digest[:16]}; adam kernel calls {calls} ({path})", flush=True)


def free_local_ports(count: int) -> list[int]:
    sockets = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def launch(optimizer_name: str) -> int:
    """Start two workers on 127.0.0.1, wait for both (at most TIMEOUT s), print their reports."""
    cluster = {"worker": [f"127.0.0.1:{port}" for port in free_local_ports(2)]}
    print(f"cluster: {cluster['worker']} ({optimizer_name})", flush=True)
    procs, logs = [], []
    start = time.monotonic()
    try:
        for index in range(2):
            env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", TF_CONFIG=json.dumps(
                {"cluster": cluster, "task": {"type": "worker", "index": index}}))
            logs.append(tempfile.TemporaryFile(mode="w+"))
            command = [sys.executable, os.path.abspath(__file__), "--worker",
                       "--optimizer", optimizer_name]
            procs.append(subprocess.Popen(command, env=env, stdout=logs[-1],
                                          stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL))
        while time.monotonic() - start < TIMEOUT:
            codes = [p.poll() for p in procs]
            if all(c is not None for c in codes) or any(c not in (None, 0) for c in codes):
                break  # done, or one failed (the other would wait for it forever)
            time.sleep(0.2)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
        for p in procs:
            p.wait(timeout=30)
    status = 0
    reports = []
    for index, (p, log) in enumerate(zip(procs, logs)):
        log.seek(0)
        lines = [line.rstrip() for line in log if line.strip()]
        report = [line for line in lines if line.startswith(f"worker {index}:")]
        if p.returncode == 0 and report:
            print(report[-1])
            reports.append(report[-1].split("weights sha256 ")[1].split(";")[0])
        else:
            status = 1
            print(f"worker {index} failed (exit code {p.returncode}); its output:")
            print("\n".join(lines[-30:]))
    if status == 0:
        print(f"same weights on both workers: {'yes' if reports[0] == reports[1] else 'NO'} "
              f"({time.monotonic() - start:.1f} s)")
    return status


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--optimizer", choices=["pyoptim", "keras"], default="pyoptim")
    parser.add_argument("--worker", action="store_true",
                        help="run one worker (TF_CONFIG must be set) instead of launching two")
    args = parser.parse_args()
    if args.worker:
        worker(args.optimizer)
        return 0
    return launch(args.optimizer)


if __name__ == "__main__":
    sys.exit(main())
