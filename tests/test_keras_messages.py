"""What pyoptim.keras tells the user: fallback warnings point at the user's own line and name the
one variable that falls back; repr shows the arguments.  Real TensorFlow/Keras, user code in a
script file run in a fresh process (warnings are shown once per process)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any, Dict, List

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402

import pyoptim.keras as pk  # noqa: E402

USER_SCRIPT = """
import json, sys, warnings
import numpy as np, keras, tensorflow as tf
import pyoptim.keras as pk

caught = []
warnings.showwarning = lambda message, category, filename, lineno, *rest: caught.append(
    {"message": str(message), "filename": filename, "lineno": lineno})
warnings.simplefilter("always")
rng = np.random.default_rng(0)
y = rng.integers(0, 3, 64)
case = sys.argv[1]
if case == "fit_float16":
    keras.utils.set_random_seed(1)
    model = keras.Sequential([keras.Input((4,), dtype="float16"),
                              keras.layers.Dense(3, activation="softmax", dtype="float16")])
    model.compile(optimizer=pk.Adam(), loss="sparse_categorical_crossentropy")
    model.fit(rng.standard_normal((64, 4)).astype("float16"), y, epochs=1, verbose=0)  # FIT16
elif case == "eager_float16":
    variable = keras.Variable(np.ones(5, "float16"))
    optimizer = pk.SGD()
    optimizer.apply_gradients([(tf.ones(5, "float16"), variable)])  # APPLY
elif case == "fit_embedding":
    keras.utils.set_random_seed(1)
    model = keras.Sequential([keras.Input((6,), dtype="int32"),
                              keras.layers.Embedding(40, 8, dtype="float16"),
                              keras.layers.GlobalAveragePooling1D(),
                              keras.layers.Dense(3, activation="softmax")])
    model.compile(optimizer=pk.RMSprop(), loss="sparse_categorical_crossentropy")
    model.fit(rng.integers(0, 40, (64, 6)), y, epochs=1, verbose=0)  # FITEMB
    print(json.dumps({"counts": model.optimizer.path_counts()}))
print(json.dumps({"warnings": [w for w in caught if "pyoptim.keras" in w["message"]]}))
"""


def _run_user_script(tmp_path: Path, case: str) -> List[Dict[str, Any]]:
    script = tmp_path / "train.py"
    script.write_text(textwrap.dedent(USER_SCRIPT))
    result = subprocess.run([sys.executable, str(script), case], capture_output=True, text=True,
                            timeout=600, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    assert result.returncode == 0, result.stderr[-4000:]
    lines = result.stdout.strip().splitlines()
    return [json.loads(line) for line in lines if line.startswith("{")]


def _line_of(marker: str) -> int:
    lines = textwrap.dedent(USER_SCRIPT).splitlines()
    return next(i + 1 for i, line in enumerate(lines) if line.rstrip().endswith(f"# {marker}"))


@pytest.mark.parametrize("case, marker", [("fit_float16", "FIT16"), ("eager_float16", "APPLY"),
                                          ("fit_embedding", "FITEMB")])
def test_fallback_warning_points_at_the_users_line(tmp_path, case, marker):
    """The warning's location is the user's model.fit / apply_gradients line, not pyoptim's or
    Keras' source, in graph mode (model.fit traces the step) and eagerly."""
    outputs = _run_user_script(tmp_path, case)
    warned = outputs[-1]["warnings"]
    assert len(warned) == 1, warned
    assert Path(warned[0]["filename"]).resolve() == (tmp_path / "train.py").resolve(), warned
    assert warned[0]["lineno"] == _line_of(marker), warned


def test_fallback_warning_names_the_variable_only(tmp_path):
    """Only the (float16) Embedding's variable falls back, and the warning says so; the Dense
    layer's variables keep the kernels (path_counts)."""
    outputs = _run_user_script(tmp_path, "fit_embedding")
    message = outputs[-1]["warnings"][0]["message"]
    assert "embedding/embeddings'" in message and "float16" in message and ":0" not in message
    assert "variables without that reason keep the kernels" in message
    counts = outputs[0]["counts"]
    assert counts["fallback"] >= 1 and counts["fast"] >= 2, counts  # Dense kernel and bias


def test_repr_shows_the_arguments():
    adam = pk.Adam(learning_rate=0.01, amsgrad=True, weight_decay=0.1, name="opt")
    assert repr(adam) == ("pyoptim.keras.Adam(name='opt', learning_rate=0.01, weight_decay=0.1, "
                          "amsgrad=True)")
    sgd = pk.SGD(momentum=0.9, name="s")
    assert repr(sgd) == "pyoptim.keras.SGD(name='s', learning_rate=0.01, momentum=0.9)"
    schedule = keras.optimizers.schedules.ExponentialDecay(0.1, 10, 0.5)
    assert "learning_rate=<ExponentialDecay>" in repr(pk.RMSprop(learning_rate=schedule))
