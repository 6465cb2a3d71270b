"""`pyoptim trace`'s prediction trace: its numbers are the trained model's own (real
TensorFlow/Keras, no mocks), in process through the module's API and end to end through
the command's --json and terminal output."""
from __future__ import annotations

import json

import numpy as np
import pytest

from pyoptim.trace.data import MinMaxScaler, synthetic_dataset
from pyoptim.trace.errors import TraceCheckError, TraceInputError
from pyoptim.trace.prediction import parse_rows, trace_predictions
from test_trace import run_cli

ROWS = [0, 5, 17]


@pytest.fixture(scope="module")
def trained():
    """A model of the pipeline trained for one epoch with pyoptim.keras.Adam on the default data."""
    from pyoptim.trace.model import LOSS, METRIC, build_model
    from pyoptim.trace.tensorflow_import import import_keras

    keras = import_keras()
    import pyoptim.keras

    data = synthetic_dataset(0)
    scaler = MinMaxScaler.fit(data.x_train)
    keras.utils.set_random_seed(0)
    model = build_model(10, 3, 64)
    model.compile(optimizer=pyoptim.keras.Adam(learning_rate=0.01), loss=LOSS, metrics=[METRIC])
    model.fit(scaler.transform(data.x_train), data.y_train, batch_size=32, epochs=1, verbose=0)
    return keras, model, scaler.transform(data.x_test), data.y_test


def test_layers_are_the_models_own(trained):
    keras, model, x_test, y_test = trained
    trace = trace_predictions("adam", model, x_test, y_test, ROWS)
    assert [r.row for r in trace.rows] == ROWS
    x = x_test[ROWS]
    # Independent of the module: Keras' own outputs, and the formulas in float64 from get_weights().
    predicted = model.predict(x, verbose=0)
    hidden_model = keras.Model(model.inputs, model.get_layer("hidden").output)
    hidden = hidden_model.predict(x, verbose=0)
    w1, b1, w2, b2 = (np.asarray(w, np.float64) for w in model.get_weights())
    z1 = x.astype(np.float64) @ w1 + b1
    z2 = np.maximum(z1, 0.0) @ w2 + b2
    for i, row in enumerate(trace.rows):
        assert row.features.dtype == np.float32 and np.array_equal(row.features, x[i])
        np.testing.assert_allclose(row.pre_activation, z1[i], rtol=0, atol=1e-5)
        np.testing.assert_allclose(row.hidden, hidden[i], rtol=0, atol=1e-5)
        np.testing.assert_allclose(row.logits, z2[i], rtol=0, atol=1e-5)
        np.testing.assert_allclose(row.probabilities, predicted[i], rtol=0, atol=1e-6)
        assert float(np.sum(row.probabilities, dtype=np.float64)) == pytest.approx(1.0, abs=1e-6)
        assert row.predicted_class == int(np.argmax(predicted[i]))
        assert row.active_units == int(np.count_nonzero(hidden[i] > 0))
        assert 0 < row.active_units < 64  # ReLU really cuts some units and keeps others
        assert row.true_class == int(y_test[ROWS[i]])
        top = row.top_units()
        assert [v for _, v in top] == sorted(hidden[i], reverse=True)[: len(top)]
    assert trace.hidden_diff <= 1e-5 and trace.probability_diff <= 1e-5


def test_a_model_that_is_not_the_formula_is_refused(trained):
    """The check can fail: a real model whose output layer has no softmax (logits out)
    does not compute p = softmax(z2), and the trace refuses to report it."""
    keras, model, x_test, y_test = trained
    linear = keras.Sequential([
        keras.Input(shape=(10,)),
        keras.layers.Dense(64, activation="relu", name="hidden"),
        keras.layers.Dense(3, activation=None, name="output"),
    ])
    linear.set_weights(model.get_weights())
    with pytest.raises(TraceCheckError, match="probabilities p differ from the model's"):
        trace_predictions("linear", linear, x_test, y_test, ROWS)


def test_section_text_uses_the_data_labels(trained):
    from pyoptim.trace.prediction_text import prediction_section

    _, model, x_test, y_test = trained
    trace = trace_predictions("adam", model, x_test, y_test, [3])
    row = trace.rows[0]
    text = prediction_section([trace], [10, 20, 30])
    assert f"test row 3 (true class {[10, 20, 30][row.true_class]})" in text
    assert f"-> class {[10, 20, 30][row.predicted_class]}," in text
    assert f"{row.active_units}/64 active" in text
    assert all(len(line) <= 100 for line in text.splitlines())


def test_parse_rows():
    assert parse_rows("0,5,17") == [0, 5, 17]
    assert parse_rows(" 4, 4 ,1") == [4, 1]
    assert parse_rows("none") == [] and parse_rows("") == []
    with pytest.raises(TraceInputError, match="'x' is not an integer"):
        parse_rows("1,x")
    with pytest.raises(TraceInputError, match="row -2 is negative"):
        parse_rows("-2")


def _softmax64(z):
    e = np.exp(np.asarray(z, np.float64) - np.max(z))
    return e / e.sum()


def test_cli_prediction_section_and_json(tmp_path):
    js = tmp_path / "p.json"
    rows = [0, 5, 199]
    proc = run_cli("trace", "--epochs", "1", "--optimizers", "sgd,adam", "--predict-rows", "0,5,199",
                   "--json", str(js))
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "Prediction trace: 3 test row(s) through each trained model" in out
    assert out.index("Prediction trace") < out.index("Final comparison")
    section = out.split("Prediction trace", 1)[1].split("Final comparison", 1)[0]
    assert all(len(line) <= 100 for line in section.splitlines())

    doc = json.loads(js.read_text())
    assert doc["settings"]["predict_rows"] == rows
    pt = doc["prediction_trace"]
    assert pt["rows"] == rows and set(pt["runs"]) == {"sgd", "adam"}
    # The inputs are the test set's scaled rows, recomputed here from the data.
    data = synthetic_dataset(0)
    x_test = MinMaxScaler.fit(data.x_train).transform(data.x_test)
    for name, run in pt["runs"].items():
        assert run["max_abs_diff_probabilities"] <= pt["check"]["tolerance"]
        assert [r["row"] for r in run["rows"]] == rows
        for r in run["rows"]:
            assert np.array_equal(np.float32(r["input"]), x_test[r["row"]])
            pre, hidden = np.array(r["pre_activation"]), np.array(r["hidden"])
            assert len(pre) == 64 and np.array_equal(hidden, np.maximum(pre, 0.0))
            assert r["active_units"] == int(np.count_nonzero(hidden > 0))
            p = np.array(r["probabilities"])
            assert p.sum() == pytest.approx(1.0, abs=1e-6)
            np.testing.assert_allclose(p, _softmax64(r["logits"]), rtol=0, atol=1e-6)
            np.testing.assert_allclose(p, r["model_predict"], rtol=0, atol=1e-6)
            assert r["predicted_class"] == int(np.argmax(r["model_predict"]))
            assert r["true_class"] == int(data.y_test[r["row"]])
            assert f"test row {r['row']} (true class {r['true_label']})" in section
            assert f"{r['active_units']}/64 active" in section
            assert f"p [{', '.join(f'{v:.3f}' for v in p)}] -> class {r['predicted_label']}" in section
