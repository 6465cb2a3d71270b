"""Runs keras.optimizers themselves (real TensorFlow) on given arrays, for comparisons."""
from __future__ import annotations

import os
from typing import Dict, List, Sequence

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

# Keras' slot attributes, in the order pyoptim's stateful optimizers name them.
SLOT_ATTRS = {
    "SGD": {"momentums": "momentums"},
    "RMSprop": {"velocities": "_velocities", "momentums": "_momentums", "average_gradients": "_average_gradients"},
    "Adam": {"momentums": "_momentums", "velocities": "_velocities", "velocity_hats": "_velocity_hats"},
}
SLOT_ATTRS["AdamW"] = SLOT_ATTRS["Adam"]  # keras.optimizers.AdamW is an Adam subclass


def keras_optimizer(kind: str, **kwargs) -> keras.optimizers.Optimizer:
    return getattr(keras.optimizers, kind)(**kwargs)


def run_keras(kind: str, kwargs: dict, params: Sequence[np.ndarray], grads_per_step: Sequence[Sequence[np.ndarray]]):
    """Apply len(grads_per_step) updates with keras.optimizers.<kind>(**kwargs) (eager).

    Returns (final params, {slot name: [arrays]})."""
    opt = keras_optimizer(kind, **kwargs)
    variables = [keras.Variable(p.copy(), dtype=str(p.dtype)) for p in params]
    for grads in grads_per_step:
        opt.apply([tf.constant(g) for g in grads], variables)
    slots: Dict[str, List[np.ndarray]] = {}
    for name, attr in SLOT_ATTRS[kind].items():
        values = getattr(opt, attr, None)
        if values:
            slots[name] = [np.asarray(v.numpy()) for v in values]
    return [np.asarray(v.numpy()) for v in variables], slots


def assert_state_matches_keras(opt, params: Sequence[np.ndarray], keras_params: Sequence[np.ndarray],
                               keras_slots: Dict[str, List[np.ndarray]], steps: int) -> None:
    """A pyoptim stateful optimizer after ``steps`` ``apply`` calls: its iteration count, its
    ``params`` and every slot of its ``state_dict()`` equal Keras' to the bit."""
    from test_core import assert_same_bits

    assert opt.iterations == steps
    for i, (a, b) in enumerate(zip(params, keras_params)):
        assert_same_bits(a, b, f"params[{i}]")
    slots = opt.state_dict()["slots"]
    assert set(slots) == set(keras_slots)
    for name in keras_slots:
        for i, (a, b) in enumerate(zip(slots[name], keras_slots[name])):
            assert_same_bits(a, b, f"{name}[{i}]")
