"""Inside tf.function, pyoptim.keras passes the op's variable and slot handles as one captured
tensor per list (pyoptim/keras/_packed.py) instead of one capture each; TensorFlow's automatic
control dependencies still order every read of those variables in the same function (before the
update: the old value, after it: the new one), through nested functions too.  Real TensorFlow."""
from __future__ import annotations

import os
from typing import Any, List, Tuple

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

import pyoptim.keras as pk  # noqa: E402

N_VARS = 6


@pytest.fixture(scope="module", autouse=True)
def _op_loaded():
    assert pk.fast_path_available(), pk.status()


def _variables_and_grads() -> Tuple[List[keras.Variable], List[tf.Tensor]]:
    rng = np.random.default_rng(3)
    variables = [keras.Variable(rng.standard_normal(5 + i).astype("float32"))
                 for i in range(N_VARS)]
    grads = [tf.constant(rng.standard_normal(5 + i).astype("float32")) for i in range(N_VARS)]
    return variables, grads


def _problem(cls: Any) -> Tuple[List[keras.Variable], List[tf.Tensor], Any]:
    variables, grads = _variables_and_grads()
    opt = cls(learning_rate=0.01)
    opt.build(variables)
    return variables, grads, opt


def _handle_ids(variables: List[Any]) -> set:
    return {id(v.value.handle) for v in variables}


@pytest.mark.parametrize("make, lists", [
    (lambda: pk.Adam(learning_rate=0.01), [N_VARS] * 3),
    (lambda: pk.SGD(learning_rate=0.01, momentum=0.9), [N_VARS] * 2),
    (lambda: pk.Lion(learning_rate=0.01), [N_VARS] * 2),
    # variables of 5 to 10 elements: 3 below min_8bit_size (float Adam: var, m, v), 3 in 8 bits
    # (var, m, v and their scales): one op each, each with its own packed lists
    (lambda: pk.Adam8bit(learning_rate=0.01, min_8bit_size=8, block_size=32), [3] * 8),
])
def test_one_capture_per_handle_list(make, lists):
    variables, grads = _variables_and_grads()
    opt = make()
    opt.build(variables)

    @tf.function
    def step():
        opt.apply_gradients(zip(grads, variables))

    step()
    captured = step.get_concrete_function().captured_inputs
    slots = [s for v in variables for s in opt._slots(v)]
    # neither a variable's nor a slot's own handle is captured: one packed tensor per list
    assert not _handle_ids(variables) & {id(t) for t in captured}
    assert not _handle_ids(slots) & {id(t) for t in captured}
    packed = [t for t in captured if t.dtype == tf.resource and t.shape.rank == 1]
    assert sorted(t.shape[0] for t in packed) == lists
    # and only the lists an op takes are packed (Adam8bit's float op takes no scale lists)
    assert len(opt._pyoptim_packs) == len(lists)


def _keras_twin(cls: Any) -> Tuple[List[keras.Variable], List[tf.Tensor], Any]:
    keras_cls = getattr(keras.optimizers, cls.__name__)
    return _problem(keras_cls)


@pytest.mark.parametrize("nested", [False, True])
def test_reads_in_the_same_function_are_ordered(nested):
    """A slot and a variable read before and after the update in one function: before it the
    old values, after it the new ones (the bits of Keras'); the reads are ordered by control
    edges (which fail to appear if the op's packed handles hide the variables from ACD)."""
    variables, grads, opt = _problem(pk.Adam)
    k_vars, k_grads, k_opt = _keras_twin(pk.Adam)
    m = opt._momentums[2]

    def apply():
        opt.apply_gradients(zip(grads, variables))

    inner = tf.function(apply) if nested else apply

    @tf.function
    def step():
        before = (tf.identity(m.value), tf.identity(variables[2].value))
        inner()
        after = (tf.identity(m.value), tf.identity(variables[2].value))
        return before, after

    old = (m.numpy(), variables[2].numpy())
    for _ in range(3):
        (m0, p0), (m1, p1) = step()
        assert np.array_equal(m0.numpy(), old[0]) and np.array_equal(p0.numpy(), old[1])
        old = (m.numpy(), variables[2].numpy())
        assert np.array_equal(m1.numpy(), old[0]) and np.array_equal(p1.numpy(), old[1])
        k_opt.apply_gradients(zip(k_grads, k_vars))
        assert np.array_equal(old[1], k_vars[2].numpy())
        assert np.array_equal(old[0], k_opt._momentums[2].numpy())

    graph = step.get_concrete_function().graph
    writer_type = "StatefulPartitionedCall" if nested else "PyoptimApplyAdam"
    writers = [op for op in graph.get_operations() if op.type == writer_type]
    read = {id(m.value.handle), id(variables[2].value.handle)}
    targets = {id(internal) for external, internal in graph.captures if id(external) in read}
    reads = [op for op in graph.get_operations()
             if op.type == "ReadVariableOp" and id(op.inputs[0]) in targets]
    assert len(writers) == 1 and len(reads) == 4
    writer = writers[0]
    # the two reads made before the update come before it, the two after it come after it
    assert set(reads[:2]) <= set(writer.control_inputs)
    assert all(writer in r.control_inputs for r in reads[2:])


@pytest.mark.parametrize("steps_per_execution", [1, 3])
def test_model_fit_matches_keras_with_packed_handles(steps_per_execution):
    """model.fit (nested tf.functions: the forward pass reads each variable the op updates in
    the same step; with steps_per_execution, inside a while loop and a cond) gives Keras'
    bits."""
    def run(cls: Any) -> List[np.ndarray]:
        keras.utils.set_random_seed(1)
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="relu"),
                                  keras.layers.Dense(8, activation="relu"), keras.layers.Dense(2)])
        model.compile(optimizer=cls(learning_rate=0.01), loss="mse",
                      steps_per_execution=steps_per_execution)
        rng = np.random.default_rng(2)
        model.fit(rng.standard_normal((64, 4)), rng.standard_normal((64, 2)), batch_size=16,
                  epochs=2, verbose=0, shuffle=False)
        if isinstance(model.optimizer, pk.RMSprop):
            # the train function captures no slot's handle: one packed tensor per slot kind
            functions = [f for cell in model.train_function.__closure__ or ()
                         if hasattr(cell.cell_contents, "_list_all_concrete_functions")
                         for f in cell.cell_contents._list_all_concrete_functions()]
            captured = {id(t) for f in functions for t in f.captured_inputs}
            slots = [s for v in model.trainable_variables for s in model.optimizer._slots(v)]
            assert functions and not _handle_ids(slots) & captured
        return [v.numpy() for v in model.weights + model.optimizer.variables]

    before = pk.op_calls()
    mine = run(pk.RMSprop)
    assert sum(pk.op_calls().values()) > sum(before.values())
    theirs = run(keras.optimizers.RMSprop)
    assert len(mine) == len(theirs)
    assert all(np.array_equal(a, b) for a, b in zip(mine, theirs))


class _Trainer(tf.Module):
    """The TensorFlow pattern of a SavedModel that trains: a tf.Module with a train function."""

    def __init__(self, cls: Any):
        super().__init__()
        rng = np.random.default_rng(4)
        self.w = [tf.Variable(rng.standard_normal(3 + i).astype("float32")) for i in range(3)]
        self.opt = cls(learning_rate=0.1)
        self.opt.build(self.w)

    @tf.function(input_signature=[tf.TensorSpec([], tf.float32)])
    def train(self, scale):
        self.opt.apply_gradients([(scale * tf.ones_like(v), v) for v in self.w])
        return [v.read_value() for v in self.w]


def test_saved_model_of_a_train_function(tmp_path):
    """tf.saved_model.save exports a function that captured packed handles (through
    PackedHandles), the loaded function trains the restored variables with Keras' bits, and
    checkpoints keep Keras' layout (no pack in them)."""
    mine, theirs = _Trainer(pk.Adam), _Trainer(keras.optimizers.Adam)
    for t in (mine, theirs):
        t.train(tf.constant(1.0))
    assert any(t.dtype == tf.resource and t.shape.rank == 1
               for t in mine.train.get_concrete_function().captured_inputs)
    for t, name in ((mine, "mine"), (theirs, "theirs")):
        tf.saved_model.save(t, str(tmp_path / name))
    loaded = {name: tf.saved_model.load(str(tmp_path / name)) for name in ("mine", "theirs")}
    for _ in range(2):
        a = loaded["mine"].train(tf.constant(0.5))
        b = loaded["theirs"].train(tf.constant(0.5))
        assert all(np.array_equal(x.numpy(), y.numpy()) for x, y in zip(a, b))
    # the loaded function updated the loaded variables, not the originals
    assert all(np.array_equal(x.numpy(), v.numpy()) for x, v in zip(a, loaded["mine"].w))
    assert not np.array_equal(a[0].numpy(), mine.w[0].numpy())

    keys = {k for k, _ in tf.train.list_variables(
        tf.train.Checkpoint(opt=mine.opt).write(str(tmp_path / "ckpt")))}
    twin = {k for k, _ in tf.train.list_variables(
        tf.train.Checkpoint(opt=theirs.opt).write(str(tmp_path / "ckpt_keras")))}
    assert keys == twin


def test_packed_list_of_the_wrong_length_is_refused():
    """The op takes a list's handles packed in one [N] tensor; any other shape is refused with
    InvalidArgumentError naming the input, before anything is written."""
    from pyoptim.keras import _loader

    op = _loader.load()
    variables = [tf.Variable(np.ones(4, np.float32)) for _ in range(3)]
    slots = [tf.Variable(np.zeros(4, np.float32)) for _ in range(3)]
    before = [v.numpy() for v in variables + slots]
    short = tf.stack([s.handle for s in slots[:2]])
    args = dict(learning_rate=tf.constant(0.1), momentum=tf.constant(0.9),
                weight_decay=tf.constant(0.0), decay_learning_rate=tf.constant(0.1),
                grad=[tf.ones(4)] * 3, indices=[])
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"variable input 3 .*shape \[3\]"):
        op.pyoptim_apply_sgd(var=[v.handle for v in variables], momentum_buffer=[short] * 3, **args)
    assert all(np.array_equal(a, v.numpy()) for a, v in zip(before, variables + slots))
    # the same lists packed correctly: the update runs
    packed = tf.stack([s.handle for s in slots])
    op.pyoptim_apply_sgd(var=[v.handle for v in variables], momentum_buffer=[packed] * 3, **args)
    assert all(np.allclose(s.numpy(), -0.1) for s in slots)
