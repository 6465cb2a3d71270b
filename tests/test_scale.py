"""pyoptim.keras beyond one process and beyond float32 (issue 7), with real TensorFlow and Keras.

- MultiWorkerMirroredStrategy: two worker processes on 127.0.0.1 (tests/multiworker_worker.py)
  train the pipeline model with pyoptim.keras.Adam and with keras.optimizers.Adam; the weights are
  the same bits on both workers and for both optimizers, and each worker ran pyoptim's kernel.
- Mixed precision ("mixed_float16", "mixed_bfloat16") with keras.optimizers.LossScaleOptimizer
  around pyoptim.keras.Adam (and SGD, RMSprop), dynamic loss scaling with steps skipped on
  overflow and the scale growing again: the same bits and the same loss scale history as around
  keras.optimizers.Adam, through the kernel (the variables are float32 under these policies).
- The README's example, examples/multiworker.py, runs.
- float16 / bfloat16 variables: the kernels have float32 and float64 only, so pyoptim.keras runs
  Keras' own update_step (the documented fallback), with a warning and the reason counted.

Every comparison is bitwise (np.array_equal, or equal raw bits where NaN could occur).
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any, Dict, Iterator, List, Tuple

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402

import pyoptim.keras as pk  # noqa: E402

ROWS, FEATURES, CLASSES = 1000, 10, 3
WORKER_SCRIPT = Path(__file__).with_name("multiworker_worker.py")
WORKER_DEADLINE = 150.0  # seconds for one pair of workers (about 15-25 s on 2 busy cores)
PORT_IN_USE = "Could not start gRPC server"  # TensorFlow's message when a port is taken


@pytest.fixture(scope="module", autouse=True)
def op_built() -> str:
    """Build (or find cached) the TensorFlow op here, so that worker processes load it."""
    path = pk.build()
    assert pk.fast_path_available(), pk.status()
    return path


def _data(dtype: str = "float32") -> Tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1234)
    y = rng.integers(0, CLASSES, ROWS)
    return rng.standard_normal((ROWS, FEATURES)).astype(dtype), y


def _model(dtype: Any = None) -> keras.Model:
    """The pipeline model, Input(10) -> Dense(16) ReLU -> Dense(3) softmax, fixed initial weights
    (``dtype=None``: the global dtype policy)."""
    keras.utils.set_random_seed(7)
    return keras.Sequential([
        keras.Input((FEATURES,), dtype=dtype),
        keras.layers.Dense(16, activation="relu", dtype=dtype),
        keras.layers.Dense(CLASSES, activation="softmax", dtype=dtype),
    ])


# --- MultiWorkerMirroredStrategy: two processes on 127.0.0.1 ---------------------------------


def _free_local_ports(count: int) -> List[int]:
    """Ports the kernel hands out for 127.0.0.1 (bound to port 0, all held until all are known,
    so they differ, then released for the workers)."""
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _stop(procs: List[subprocess.Popen]) -> None:
    """Kill the workers that are still running and reap them (bounded wait)."""
    for p in procs:
        if p.poll() is None:
            p.kill()
    for p in procs:
        try:
            p.wait(timeout=30)
        except subprocess.TimeoutExpired:  # pragma: no cover - a process that ignores SIGKILL
            pass


WorkerResults = Tuple[List[Dict[str, Any]], List[Dict[str, np.ndarray]]]


def _run_worker_pair(directory: Path) -> Tuple[List[Dict[str, Any]], List[Dict[str, np.ndarray]],
                                               str]:
    """Start the two workers, wait for both (at most WORKER_DEADLINE seconds), always kill what
    is left.  Returns their JSON reports, their arrays, and "" or the reason they failed."""
    ports = _free_local_ports(2)
    cluster = {"worker": [f"127.0.0.1:{port}" for port in ports]}
    procs: List[subprocess.Popen] = []
    logs = [directory / f"worker{i}.log" for i in range(2)]
    try:
        for i in range(2):
            env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", TF_CONFIG=json.dumps(
                {"cluster": cluster, "task": {"type": "worker", "index": i}}))
            with open(logs[i], "w") as log:
                procs.append(subprocess.Popen(
                    [sys.executable, str(WORKER_SCRIPT), str(directory / f"worker{i}")],
                    env=env, cwd=directory, stdout=log, stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL))
        deadline = time.monotonic() + WORKER_DEADLINE
        failure = ""
        while time.monotonic() < deadline:
            codes = [p.poll() for p in procs]
            if any(c not in (None, 0) for c in codes):
                failure = f"worker exit codes {codes}"  # the other one would wait forever
                break
            if all(c == 0 for c in codes):
                break
            time.sleep(0.2)
        else:
            failure = f"workers still running after {WORKER_DEADLINE:.0f} s"
    finally:
        _stop(procs)
    if failure:
        tails = [f"\n--- worker {i} log (end) ---\n{log.read_text()[-3000:]}"
                 for i, log in enumerate(logs)]
        return [], [], failure + "".join(tails)
    infos = [json.loads((directory / f"worker{i}.json").read_text()) for i in range(2)]
    arrays = []
    for i in range(2):
        with np.load(directory / f"worker{i}.npz") as f:
            arrays.append({k: f[k] for k in f.files})
    return infos, arrays, ""


@pytest.fixture(scope="module")
def multiworker(tmp_path_factory) -> WorkerResults:
    """One run of the worker pair (a second attempt, with new ports, only if a port was taken
    between choosing it and the worker binding it)."""
    for attempt in range(2):
        directory = tmp_path_factory.mktemp(f"multiworker{attempt}")
        infos, arrays, failure = _run_worker_pair(directory)
        if not failure:
            return infos, arrays
        if PORT_IN_USE not in failure:
            break
    pytest.fail(f"the two-worker run failed: {failure}")


def test_multiworker_runs_two_workers_on_different_data(multiworker):
    infos, _ = multiworker
    assert sorted(info["task_index"] for info in infos) == [0, 1]
    for info in infos:
        assert info["replicas"] == 2
        assert info["steps"] == 8
        # Each worker reads half of each global batch of 250 rows, a different half.
        assert info["pyoptim"]["first_local_batch"]["rows"] == 125
    assert infos[0]["pyoptim"]["first_local_batch"] != infos[1]["pyoptim"]["first_local_batch"]
    assert infos[0]["pyoptim"]["first_local_batch"] == infos[0]["keras"]["first_local_batch"]


def test_multiworker_same_weights_on_both_workers(multiworker):
    infos, arrays = multiworker
    assert arrays[0].keys() == arrays[1].keys()
    assert len(arrays[0]) == 2 * infos[0]["pyoptim"]["arrays"] == 2 * 14  # 4 weights, 10 optimizer
    for key in arrays[0]:
        a, b = arrays[0][key], arrays[1][key]
        assert a.dtype == b.dtype and np.array_equal(a, b), key
    assert infos[0]["pyoptim"]["losses"] == infos[1]["pyoptim"]["losses"]


def test_multiworker_pyoptim_equals_keras(multiworker):
    infos, arrays = multiworker
    for worker in arrays:
        n = infos[0]["pyoptim"]["arrays"]
        for i in range(n):
            a, b = worker[f"pyoptim_{i}"], worker[f"keras_{i}"]
            assert a.dtype == b.dtype and a.shape == b.shape
            assert np.array_equal(a, b), f"array {i}: {np.sum(a != b)} of {a.size} elements differ"
        assert int(worker["pyoptim_4"]) == 8  # the optimizer's iterations: 8 updates
    for info in infos:
        losses = info["pyoptim"]["losses"]
        assert losses == info["keras"]["losses"] and len(losses) == 8
        assert losses[-1] < losses[0]  # it trains


def test_multiworker_each_worker_ran_the_kernel(multiworker):
    infos, _ = multiworker
    for info in infos:
        ours = info["pyoptim"]
        assert ours["status_error"] is None
        # One kernel execution per variable per step on this worker, nothing fell back.
        assert ours["kernel_calls"]["adam"] == 8 * 4, info
        assert sum(ours["kernel_calls"].values()) == 8 * 4, info  # no other kernel ran
        assert ours["path_counts"]["fallback"] == 0 and ours["path_counts"]["fast"] >= 4, info
        assert info["keras"]["kernel_calls"]["adam"] == 0


# --- Mixed precision with LossScaleOptimizer ----------------------------------------------------


@pytest.fixture
def global_policy() -> Iterator[Any]:
    """Set a global dtype policy for one test and restore the previous one afterwards."""
    before = keras.mixed_precision.global_policy()
    try:
        yield keras.mixed_precision.set_global_policy
    finally:
        keras.mixed_precision.set_global_policy(before)
    assert keras.mixed_precision.global_policy().name == before.name


BATCH, EPOCHS = 100, 2  # 20 steps


def _fit_loss_scaled(module: Any, kind: str, kwargs: Dict[str, Any], x: np.ndarray,
                     y: np.ndarray, initial_scale: float
                     ) -> Tuple[List[np.ndarray], List[Tuple[int, float]], List[float], Any, int]:
    """model.fit under the current global policy with LossScaleOptimizer(module.<kind>(**kwargs));
    returns the final state (weights, then the loss scale optimizer's and the inner optimizer's
    variables), the (iterations, loss scale) after every batch, the epoch losses, the optimizer
    and the kernel executions of the run."""
    model = _model()
    opt = keras.optimizers.LossScaleOptimizer(getattr(module, kind)(**kwargs),
                                              initial_scale=initial_scale, dynamic_growth_steps=4)
    model.compile(optimizer=opt, loss="sparse_categorical_crossentropy")
    trace: List[Tuple[int, float]] = []
    record = keras.callbacks.LambdaCallback(on_train_batch_end=lambda batch, logs: trace.append(
        (int(opt.iterations.numpy()), float(opt.dynamic_scale.numpy()))))
    before = pk.kernel_calls()[kind.lower()]
    history = model.fit(x, y, batch_size=BATCH, epochs=EPOCHS, shuffle=False, verbose=0,
                        callbacks=[record])
    calls = pk.kernel_calls()[kind.lower()] - before
    assert [w.dtype for w in model.weights] == ["float32"] * 4  # so the kernel can serve
    state = [v.numpy() for v in model.weights] + [v.numpy() for v in opt.variables]
    return state, trace, history.history["loss"], opt, calls


# float16: a huge initial scale overflows the float16 gradients of the first steps (8 skipped,
# 2^24 -> 2^16, then it grows).  bfloat16 has float32's exponent range, so no float32 loss scale
# overflows it (3.2e38 trains without a skip); there the second batch of each epoch holds rows at
# 3e38 whose activations and gradients overflow (2 skipped).
MIXED_CASES = {
    "mixed_float16": {"initial_scale": 2.0 ** 24, "overflow_rows": None},
    "mixed_bfloat16": {"initial_scale": 2.0 ** 15, "overflow_rows": (100, 110)},
}


INNER = [
    ("Adam", {"learning_rate": 0.01}),
    ("SGD", {"learning_rate": 0.05, "momentum": 0.9, "nesterov": True}),
    ("RMSprop", {"centered": True, "momentum": 0.5}),
]
SLOTS = {"Adam": 2, "SGD": 1, "RMSprop": 3}  # per variable, for these cases


def _inner_id(value: Any) -> str:
    return value if isinstance(value, str) else "-".join(f"{k}={v}" for k, v in value.items())


@pytest.mark.parametrize("policy", sorted(MIXED_CASES))
@pytest.mark.parametrize("kind, kwargs", INNER, ids=_inner_id)
def test_mixed_precision_loss_scale_optimizer(policy, kind, kwargs, global_policy):
    case = MIXED_CASES[policy]
    global_policy(policy)
    x, y = _data()
    if case["overflow_rows"]:
        x[slice(*case["overflow_rows"])] = 3e38
    ours = _fit_loss_scaled(pk, kind, kwargs, x, y, case["initial_scale"])
    ref = _fit_loss_scaled(keras.optimizers, kind, kwargs, x, y, case["initial_scale"])
    state, trace, losses, opt, calls = ours
    assert type(opt.inner_optimizer) is getattr(pk, kind)
    assert type(ref[3].inner_optimizer) is getattr(keras.optimizers, kind)
    assert keras.mixed_precision.global_policy().compute_dtype == policy.split("_")[1]

    # Bit-identical: weights, loss scale state and the inner optimizer's slots; same scale
    # history and losses.  4 weights; the loss scale optimizer's iterations, learning rate, step
    # counter and scale; the inner optimizer's iterations, learning rate and slots.
    assert len(state) == len(ref[0]) == 4 + 4 + 2 + 4 * SLOTS[kind]
    for i, (a, b) in enumerate(zip(state, ref[0])):
        assert a.dtype == b.dtype and np.array_equal(a, b), f"array {i}"
    assert trace == ref[1]
    assert np.array_equal(losses, ref[2], equal_nan=True)

    # Dynamic loss scaling happened, both ways: skipped steps halve the scale and leave the
    # iterations alone; after 4 good steps the scale doubles.
    steps = (ROWS // BATCH) * EPOCHS
    assert len(trace) == steps
    previous = (0, case["initial_scale"])
    skipped = grown = 0
    for iterations, scale in trace:
        if iterations == previous[0]:
            assert scale == previous[1] / 2, trace
            skipped += 1
        else:
            assert iterations == previous[0] + 1 and scale in (previous[1], 2 * previous[1]), trace
            grown += scale == 2 * previous[1]
        previous = (iterations, scale)
    assert skipped >= 2 and grown >= 1, trace
    assert min(scale for _, scale in trace) < case["initial_scale"]
    assert int(opt.iterations.numpy()) == steps - skipped == int(ref[3].iterations.numpy())
    assert all(np.all(np.isfinite(a)) for a in state[:4])  # skipped steps left no inf/NaN behind

    # The kernel did every applied update: once per variable per applied step (+3 for the
    # check graph-mode RMSprop runs through the op on first use), never a fallback.
    counts = opt.inner_optimizer.path_counts()
    assert counts["fallback"] == 0 and counts["fast"] > 0, counts
    applied = 4 * (steps - skipped)
    assert applied <= calls <= applied + 3 * (kind == "RMSprop"), (calls, steps, skipped)
    assert ref[4] == 0


# --- float16 / bfloat16 variables: Keras' own update_step -------------------------------------

LOW_PRECISION = """
import json, sys, warnings
import numpy as np, keras
import pyoptim.keras as pk

rng = np.random.default_rng(1234)
y = rng.integers(0, 3, 1000)
x = rng.standard_normal((1000, 10)).astype("float32")
out, arrays = {}, {}
for dtype in ("float16", "bfloat16"):
    for name, module in (("pyoptim", pk), ("keras", keras.optimizers)):
        keras.utils.set_random_seed(7)
        model = keras.Sequential([
            keras.Input((10,), dtype=dtype),
            keras.layers.Dense(16, activation="relu", dtype=dtype),
            keras.layers.Dense(3, activation="softmax", dtype=dtype)])
        initial = [v.numpy() for v in model.weights]
        # beta_2=0.99: 0.999 rounds to 1.0 in bfloat16 (so Keras' Adam would never move);
        # epsilon=1e-3: with 1e-7, Keras' Adam on float16 variables reaches NaN in a few steps.
        opt = module.Adam(learning_rate=0.01, beta_2=0.99, epsilon=1e-3)
        model.compile(optimizer=opt, loss="sparse_categorical_crossentropy")
        before = pk.kernel_calls()["adam"]
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            history = model.fit(x, y, batch_size=100, epochs=2, shuffle=False, verbose=0)
        state = [np.asarray(v.numpy()) for v in model.weights + opt.variables]
        for i, a in enumerate(state):  # raw bits: bitwise comparison whatever the dtype
            arrays[f"{dtype}_{name}_{i}"] = a.view(f"u{a.itemsize}")
        out[f"{dtype}_{name}"] = {
            "dtypes": [str(a.dtype) for a in state],
            "kernel_calls": pk.kernel_calls()["adam"] - before,
            "losses": history.history["loss"],
            "iterations": int(opt.iterations.numpy()),
            "moved": [bool(np.any(np.asarray(v.numpy()) != w))
                      for v, w in zip(model.weights, initial)],
            "finite": all(bool(np.all(np.isfinite(a.astype("float32")))) for a in state),
            "path_counts": opt.path_counts() if module is pk else None,
            "warnings": [str(w.message) for w in caught if "pyoptim" in str(w.message)],
        }
np.savez(sys.argv[1], **arrays)
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def low_precision_runs(tmp_path_factory) -> Tuple[Dict[str, Any], Dict[str, np.ndarray]]:
    """Both dtypes in one fresh process, so that the one-time warning is shown there."""
    npz = tmp_path_factory.mktemp("low_precision") / "arrays.npz"
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(LOW_PRECISION), str(npz)], capture_output=True,
        text=True, timeout=300, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"),
        stdin=subprocess.DEVNULL, cwd=npz.parent)  # outside the source tree: import the installed package
    assert result.returncode == 0, result.stderr[-4000:]
    with np.load(npz) as f:
        arrays = {k: f[k] for k in f.files}
    return json.loads(result.stdout.strip().splitlines()[-1]), arrays


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_low_precision_variables_fall_back_to_keras(dtype, low_precision_runs):
    info, arrays = low_precision_runs
    ours, ref = info[f"{dtype}_pyoptim"], info[f"{dtype}_keras"]
    # Trains: every weight moved, the loss went down, nothing is inf/NaN, 20 updates.
    assert all(ours["moved"]) and ours["finite"], ours
    assert ours["losses"][-1] < ours["losses"][0] and ours["iterations"] == 20, ours
    assert ours["dtypes"][:4] == [dtype] * 4
    # Equals Keras bit for bit.
    assert ours["dtypes"] == ref["dtypes"] and ours["losses"] == ref["losses"]
    n = len(ours["dtypes"])
    assert n == 4 + 2 + 8
    for i in range(n):
        a, b = arrays[f"{dtype}_pyoptim_{i}"], arrays[f"{dtype}_keras_{i}"]
        assert np.array_equal(a, b), f"array {i}: {np.sum(a != b)} of {a.size} elements differ"
    # Reported: the warning (once), the reason in path_counts, and the kernel never ran.
    assert ours["kernel_calls"] == 0
    counts = ours["path_counts"]
    assert counts["fast"] == 0 and counts["fallback"] > 0, counts
    assert list(counts["reasons"]) == [
        f"its dtype is {dtype} (the kernels have float32 and float64)"], counts
    assert len(ours["warnings"]) == 1, ours["warnings"]
    assert "Keras' own update_step" in ours["warnings"][0] and dtype in ours["warnings"][0]


# --- The README's example ------------------------------------------------------------------------

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "multiworker.py"


def test_multiworker_example_runs():
    """examples/multiworker.py (README, "Training on several machines") starts its two workers,
    which train through pyoptim's kernel and end with the same weights."""
    launcher = subprocess.Popen([sys.executable, str(EXAMPLE)], stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, stdin=subprocess.DEVNULL,
                                env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"),
                                start_new_session=True)  # its own process group, with its workers
    try:
        out, _ = launcher.communicate(timeout=WORKER_DEADLINE + 30)
    finally:
        if launcher.poll() is None:
            os.killpg(launcher.pid, signal.SIGKILL)  # the launcher and the workers it started
            launcher.communicate(timeout=30)
    assert launcher.returncode == 0, out[-4000:]
    reports = [line for line in out.splitlines() if line.startswith("worker ")]
    assert len(reports) == 2, out
    for index, line in enumerate(reports):
        assert line.startswith(f"worker {index}: loss per epoch ")
        # 3 epochs x 4 steps x 4 variables
        assert line.endswith("; adam kernel calls 48 (pyoptim kernel)"), line
    assert reports[0].split(": ", 1)[1] == reports[1].split(": ", 1)[1]  # same losses and checksum
    assert out.splitlines()[-1].startswith("same weights on both workers: yes")
