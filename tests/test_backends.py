"""pyoptim.keras on Keras' torch and JAX backends: exactly the optimizers keras.optimizers gives
there (class resolution, bits, serialisation), one warning, status and path_counts telling the
truth, and no TensorFlow needed.  Real torch and jax (CPU builds from PyPI, in the test extra);
each backend in its own process, since Keras picks its backend at import."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict

import pytest

BACKENDS = ["torch", "jax"]

SCRIPT = r'''
import json, sys, warnings
caught = []
warnings.showwarning = lambda message, *rest: caught.append(str(message))
warnings.simplefilter("always")
import numpy as np, keras
import pyoptim.keras as pk

backend = keras.backend.backend()
out = {"backend": backend, "tensorflow_after_import": "tensorflow" in sys.modules, "cases": []}
rng = np.random.default_rng(1234)
x = rng.standard_normal((400, 10)).astype("float32")
y = rng.integers(0, 3, 400)
CASES = [("SGD", {"momentum": 0.9, "nesterov": True}),
         ("RMSprop", {"centered": True, "momentum": 0.5}),
         ("Adam", {"amsgrad": True, "weight_decay": 0.01, "global_clipnorm": 1.0}),
         ("LazyAdam", {"amsgrad": True}),  # dense gradients only on these backends: Adam's
         ("Nadam", {"weight_decay": 0.01}), ("Lamb", {}),
         ("Ftrl", {"l1_regularization_strength": 0.01})]
REFERENCE = {"LazyAdam": "Adam"}  # keras.optimizers has no LazyAdam


def model():
    keras.utils.set_random_seed(7)
    return keras.Sequential([keras.Input((10,)), keras.layers.Dense(21, activation="relu"),
                             keras.layers.Dense(3, activation="softmax")])


def state(m, opt):
    return [keras.ops.convert_to_numpy(v) for v in list(m.weights) + list(opt.variables)]


def optimizer(module, kind, kwargs):
    if module is keras.optimizers:
        kind = REFERENCE.get(kind, kind)
    return getattr(module, kind)(**kwargs)


def fit(module, kind, kwargs):
    m, opt = model(), optimizer(module, kind, kwargs)
    m.compile(optimizer=opt, loss="sparse_categorical_crossentropy")
    m.fit(x, y, batch_size=100, epochs=2, shuffle=False, verbose=0)
    return m, opt


def custom_loop(module, kind, kwargs):
    """The backend's own training loop from Keras' guides."""
    m, opt = model(), optimizer(module, kind, kwargs)
    loss_fn = keras.losses.SparseCategoricalCrossentropy()
    opt.build(m.trainable_variables)
    if backend == "torch":
        import torch
        for i in range(0, 400, 100):
            m.zero_grad()
            loss = loss_fn(torch.tensor(y[i:i + 100]), m(torch.tensor(x[i:i + 100]), training=True))
            loss.backward()
            grads = [v.value.grad for v in m.trainable_weights]
            with torch.no_grad():
                opt.apply(grads, m.trainable_weights)
    else:
        import jax

        def loss_of(tv, ntv, xb, yb):
            pred, ntv = m.stateless_call(tv, ntv, xb, training=True)
            return loss_fn(yb, pred), ntv

        grad_fn = jax.value_and_grad(loss_of, has_aux=True)

        @jax.jit
        def step(tv, ntv, ov, xb, yb):
            (_, ntv), grads = grad_fn(tv, ntv, xb, yb)
            tv, ov = opt.stateless_apply(ov, grads, tv)
            return tv, ntv, ov

        tv = [v.value for v in m.trainable_variables]
        ntv = [v.value for v in m.non_trainable_variables]
        ov = [v.value for v in opt.variables]
        for i in range(0, 400, 100):
            tv, ntv, ov = step(tv, ntv, ov, x[i:i + 100], y[i:i + 100])
        for v, value in zip(list(m.trainable_variables) + list(opt.variables), list(tv) + list(ov)):
            v.assign(value)
    return m, opt


for kind, kwargs in CASES:
    for how, run in (("fit", fit), ("loop", custom_loop)):
        (ours, ours_opt), (ref, ref_opt) = run(pk, kind, kwargs), run(keras.optimizers, kind, kwargs)
        a, b = state(ours, ours_opt), state(ref, ref_opt)
        out["cases"].append({
            "case": f"{kind}-{how}", "n": len(a),
            "same": len(a) == len(b) and all(np.array_equal(p, q) for p, q in zip(a, b)),
            "changed": not np.array_equal(a[0], state(model(), ref_opt)[0]),
            "keras_class": type(ref_opt).__module__ + "." + type(ref_opt).__qualname__,
            "is_keras_class": isinstance(ours_opt, type(ref_opt)),
            "counts": ours_opt.path_counts()})

saved = pk.Adam(learning_rate=0.5, amsgrad=True)
restored = keras.optimizers.deserialize(keras.optimizers.serialize(saved))
m, _ = fit(pk, "Adam", {"amsgrad": True})
m.save(sys.argv[1])
loaded = keras.models.load_model(sys.argv[1])
out["serialisation"] = {
    "registered": keras.saving.get_registered_name(pk.Adam),
    "restored_type": type(restored).__qualname__ + "@" + type(restored).__module__,
    "restored_lr": float(keras.ops.convert_to_numpy(restored.learning_rate)),
    "same_config": saved.get_config() == keras.optimizers.Adam(learning_rate=0.5, amsgrad=True,
                                                               name=saved.name).get_config(),
    "loaded_type": type(loaded.optimizer).__qualname__ + "@" + type(loaded.optimizer).__module__,
    "loaded_weights_equal": all(np.array_equal(keras.ops.convert_to_numpy(p),
                                               keras.ops.convert_to_numpy(q))
                                for p, q in zip(m.weights, loaded.weights))}
out["status"] = pk.status()
out["warnings"] = [w for w in caught if "pyoptim" in w]
print(json.dumps(out))
'''

WITHOUT_TENSORFLOW = r'''
import json, sys
sys.modules["tensorflow"] = None  # as if TensorFlow were not installed: importing it fails
import keras, pyoptim.keras as pk
opt = pk.Adam(learning_rate=0.01)
print(json.dumps({"backend": keras.backend.backend(), "type": type(opt).__name__,
                  "status": pk.status(), "fast": pk.fast_path_available()}))
'''


def _run(code: str, backend: str, *args: str) -> Dict[str, Any]:
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="2")
    result = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                            env=env, timeout=900)
    assert result.returncode == 0, result.stderr[-4000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("backend", BACKENDS)
def test_same_optimizers_and_bits_as_keras(backend, tmp_path):
    """model.fit and the backend's own custom loop give keras.optimizers' bits, with Keras'
    class for that backend (on torch: its torch_* optimizer), serialisation included; one
    warning; status and path_counts say that Keras' update ran, and why."""
    info = _run(SCRIPT, backend, str(tmp_path / "model.keras"))
    assert info["backend"] == backend and info["tensorflow_after_import"] is False
    assert len(info["cases"]) == 14
    for case in info["cases"]:
        assert case["same"] and case["changed"] and case["is_keras_class"], case
        counts = case["counts"]
        assert counts["fast"] == 0 and counts["fallback"] >= 4, case
        assert list(counts["reasons"]) == [
            f"the Keras backend is '{backend}': pyoptim's kernels serve the TensorFlow backend only"]
    if backend == "torch":  # Keras resolves its classes to torch's own implementations there
        assert all(".torch." in case["keras_class"] for case in info["cases"]
                   if not case["case"].startswith(("Lamb", "Ftrl"))), info["cases"]
    serialisation = info["serialisation"]
    assert serialisation["registered"] == "pyoptim>Adam" and serialisation["same_config"]
    assert serialisation["restored_type"] == "Adam@pyoptim.keras.native"
    assert serialisation["loaded_type"] == "Adam@pyoptim.keras.native"
    assert serialisation["restored_lr"] == 0.5 and serialisation["loaded_weights_equal"]
    status = info["status"]
    assert status["fast_path_available"] is False and status["keras_backend"] == backend
    assert f"'{backend}'" in status["error"] and status["library"] is None
    assert set(status["kernel_calls"]) >= {"sgd", "rmsprop", "adam", "adam8bit", "lion", "nadam"}
    assert not any(status["kernel_calls"].values())
    assert len(info["warnings"]) == 1 and backend in info["warnings"][0], info["warnings"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_import_without_tensorflow(backend):
    """On a backend other than TensorFlow, pyoptim.keras imports and works when TensorFlow
    cannot be imported at all."""
    info = _run(WITHOUT_TENSORFLOW, backend)
    assert info["backend"] == backend and info["type"] == "Adam" and info["fast"] is False
    assert info["status"]["keras_backend"] == backend
    assert f"'{backend}'" in info["status"]["error"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_trace_says_which_update_ran(backend, tmp_path):
    """``pyoptim trace`` on another backend trains with Keras' update and says so."""
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="2")
    result = subprocess.run([sys.executable, "-m", "pyoptim", "trace", "--epochs", "1",
                             "--optimizers", "adam", "--json", str(tmp_path / "t.json")],
                            capture_output=True, text=True, env=env, timeout=900)
    assert result.returncode == 0, result.stderr[-4000:]
    assert "update path: Keras' own update_step" in result.stdout
    assert f"the Keras backend is '{backend}'" in result.stdout
    assert Path(tmp_path / "t.json").is_file()
