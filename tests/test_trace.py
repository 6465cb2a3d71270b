"""`pyoptim trace`: the command end to end (real TensorFlow, in subprocesses via
``sys.executable -m pyoptim``), its files, the worked example and bad input; plus the
NumPy-only pieces (data, scaling, observations, chart) in process."""
from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
from pathlib import Path
from typing import List

import numpy as np
import pytest

from pyoptim.trace.chart import loss_chart
from pyoptim.trace.data import MinMaxScaler, load_csv, synthetic_dataset
from pyoptim.trace.errors import TraceInputError
from pyoptim.trace.observations import observe

TABLE_HEADER = "Epoch |    Loss | Accuracy |    Time | Observation"


def run_cli(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONUNBUFFERED="1")
    return subprocess.run(
        [sys.executable, "-m", "pyoptim", *args],
        capture_output=True, text=True, timeout=timeout, env=env,
    )


def table_rows(stdout: str) -> List[List[str]]:
    """The rows of every epoch table, split on '|'."""
    rows = []
    for line in stdout.splitlines():
        parts = [p.strip() for p in line.split("|")]
        if len(parts) == 5 and parts[0].isdigit():
            rows.append(parts)
    return rows


# --------------------------------------------------------------- end to end (TF)


def test_adam_reaches_documented_accuracy_with_defaults(tmp_path):
    """The README's promise: Adam, default data, default 5 epochs -> >= 90 % test accuracy."""
    out = tmp_path / "adam.json"
    proc = run_cli("trace", "--optimizers", "adam", "--json", str(out))
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(out.read_text())
    adam = doc["runs"]["adam"]
    assert doc["settings"]["epochs"] == 5 and doc["settings"]["batch_size"] == 32
    assert len(adam["test_accuracy"]) == 5
    assert adam["final_test_accuracy"] >= 0.90
    assert adam["loss"][-1] < adam["loss"][0]
    # Trained through pyoptim's kernels, not a silent fallback to Keras.
    # 5 epochs x 32 batches x 4 variables, all through the kernel.
    assert adam["update_path"].startswith("pyoptim C++ kernels (640 variable updates"), adam["update_path"]
    assert "update path: pyoptim C++ kernels" in proc.stdout
    rows = table_rows(proc.stdout)
    assert [int(r[0]) for r in rows] == [1, 2, 3, 4, 5]
    assert [float(r[2]) for r in rows] == pytest.approx(adam["accuracy"], abs=5e-5)
    # The prediction trace, by default on the first 3 test rows.
    assert doc["prediction_trace"]["rows"] == [0, 1, 2]
    assert "Prediction trace: 3 test row(s) through each trained model" in proc.stdout


def test_full_trace_with_plot_json_and_compare_tf(tmp_path):
    png, js = tmp_path / "curves.png", tmp_path / "trace.json"
    proc = run_cli("trace", "--epochs", "2", "--compare-tf", "--plot", str(png), "--json", str(js))
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout

    # Data-flow stages with shapes and a sample row before and after scaling.
    for text in ("1. Data input", "1200 rows x 10 features", "train 1000 rows x 10 columns, test 200 rows x 10 columns",
                 "2. Preprocessing", "min-max scaling to [0, 1]", "fitted on the 1000 training rows only",
                 "3. Feature engineering   none", "4. Model training", "Input(10) -> Dense(64, ReLU) -> Dense(3, softmax)",
                 "5. Evaluation"):
        assert text in out, text
    samples = [line for line in out.splitlines() if "sample (train row 0)" in line]
    assert len(samples) == 2
    scaled = [float(v) for v in samples[1].split("[", 1)[1].split("]")[0].split(",")]
    assert len(scaled) == 10 and all(0.0 <= v <= 1.0 for v in scaled)

    # One epoch table per optimizer, with observations; chart; final comparison.
    assert out.count(TABLE_HEADER) == 3
    rows = table_rows(out)
    assert len(rows) == 6 and all(r[4] for r in rows)
    assert rows[0][4].startswith("first pass")
    for name in ("pyoptim.keras.SGD(learning_rate=0.01, momentum=0.9)", "pyoptim.keras.RMSprop(learning_rate=0.001)",
                 "pyoptim.keras.Adam(learning_rate=0.001)"):
        assert name in out
    assert "Training loss per epoch" in out and "S = sgd, R = rmsprop, A = adam" in out
    assert "Final comparison on the 200 test rows" in out
    final = out.split("Final comparison", 1)[1]
    for name in ("sgd", "rmsprop", "adam"):
        assert any(line.startswith(name) for line in final.splitlines())

    # --compare-tf: the same numbers as keras.optimizers.
    assert "Check against keras.optimizers (--compare-tf)" in out
    doc = json.loads(js.read_text())
    cmp = doc["compare_tf"]
    assert set(cmp) == {"sgd", "rmsprop", "adam"}
    for name in ("sgd", "rmsprop", "adam"):
        assert cmp[name]["max_abs_weight_diff"] == 0.0 and cmp[name]["identical"], cmp[name]
        assert cmp[name]["max_abs_epoch_loss_diff"] == 0.0
        assert f"{name:<9} |             0 |            0 |         0 | identical (same bits)" in out
    # RMSprop: inside model.fit Grappler rewrites Keras' x/sqrt(y) into x*rsqrt(y); pyoptim.keras
    # reproduces that in its op when it has verified it can on this CPU, else it runs Keras' own
    # update_step and says why.  Either way the trace must report which path ran.
    rms_path = doc["runs"]["rmsprop"]["update_path"]
    assert rms_path.startswith(("pyoptim C++ kernels (", "Keras' own update_step, fallback (")), rms_path

    # --json: the raw numbers.
    assert doc["format"] == "pyoptim-trace/1"
    assert doc["data"]["train_rows"] == 1000 and doc["data"]["test_rows"] == 200
    assert doc["data"]["features"] == 10 and doc["data"]["feature_engineering"] == "none"
    assert len(doc["data"]["scaling"]["min"]) == 10
    assert set(doc["runs"]) == {"sgd", "rmsprop", "adam"}
    for name, run in doc["runs"].items():
        assert run["epoch"] == [1, 2]
        for key in ("loss", "accuracy", "test_loss", "test_accuracy", "epoch_seconds"):
            assert len(run[key]) == 2 and all(isinstance(v, float) for v in run[key]), (name, key)
        assert all(0.0 <= v <= 1.0 for v in run["accuracy"] + run["test_accuracy"])
        assert run["final_test_loss"] == run["test_loss"][-1]
        if name != "rmsprop":
            assert run["update_path"].startswith("pyoptim C++ kernels"), run["update_path"]
    assert doc["runs"]["sgd"]["learning_rate"] == 0.01 and doc["runs"]["adam"]["learning_rate"] == 0.001

    # --plot: a real PNG of plausible size that is not blank.
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    assert 800 <= width <= 3000 and 300 <= height <= 2000
    assert len(data) > 20_000
    import matplotlib.image

    pixels = matplotlib.image.imread(str(png))
    assert pixels.shape[:2] == (height, width)
    assert np.unique(pixels.reshape(-1, pixels.shape[-1]), axis=0).shape[0] > 50


def test_8bit_optimizers_train_and_show_in_the_report(tmp_path):
    """adam8bit / adamw8bit: built with min_8bit_size=0 (said above their tables), trained through
    the 8-bit kernel, close to but not the same bits as keras.optimizers' float32 Adam / AdamW."""
    js = tmp_path / "8bit.json"
    proc = run_cli("trace", "--optimizers", "adam8bit,adamw8bit", "--epochs", "2", "--compare-tf",
                   "--predict-rows", "0", "--json", str(js))
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    for text in ("Training 1/2: pyoptim.keras.Adam8bit(learning_rate=0.001, min_8bit_size=0)",
                 "Training 2/2: pyoptim.keras.AdamW8bit(learning_rate=0.001, min_8bit_size=0)",
                 "reference run with keras.optimizers.Adam(learning_rate=0.001) (float32 state, not bit-exact)",
                 "reference run with keras.optimizers.AdamW(learning_rate=0.001) (float32 state, not bit-exact)",
                 "1 = adam8bit, 2 = adamw8bit"):
        assert text in out, text
    # The note under each heading: why min_8bit_size=0.
    assert out.count("note: min_8bit_size=0: all 4 variables of this model") == 2
    assert "min_8bit_size=4096 none of them (the largest has 640 elements)" in " ".join(out.split())
    assert out.count(TABLE_HEADER) == 2 and len(table_rows(out)) == 4
    final = out.split("Final comparison", 1)[1]
    assert any(line.startswith("adam8bit  |") for line in final.splitlines())
    assert any(line.startswith("adamw8bit |") for line in final.splitlines())
    assert "adam8bit, adamw8bit: min_8bit_size=0" in final
    assert "  adamw8bit  ReLU    z1 in" in out  # the prediction trace's name column makes room
    for name in ("adam8bit", "adamw8bit"):
        assert f"{name:<9} |" in final.split("Check against keras.optimizers", 1)[1]
    assert "8-bit vs float32 (" in out and "identical (same bits)" not in out

    doc = json.loads(js.read_text())
    assert set(doc["runs"]) == {"adam8bit", "adamw8bit"}
    for name, reference in (("adam8bit", "Adam"), ("adamw8bit", "AdamW")):
        run, cmp = doc["runs"][name], doc["compare_tf"][name]
        assert run["optimizer"].endswith("8bit(learning_rate=0.001, min_8bit_size=0)")
        assert run["note"].startswith("min_8bit_size=0")
        # Every update through pyoptim's kernels: 2 epochs x 32 batches x 4 variables.
        assert run["update_path"].startswith("pyoptim C++ kernels (256 variable updates"), run["update_path"]
        assert run["loss"][1] < run["loss"][0] and run["final_test_accuracy"] >= 0.85
        # Quantised for real (not silently Adam), yet close to float32 Adam.
        assert cmp["reference"] == f"keras.optimizers.{reference}(learning_rate=0.001)"
        assert cmp["exact_expected"] is False and not cmp["identical"]
        assert 0 < cmp["max_abs_weight_diff"] < 0.1, cmp  # (a small bias drifts by ~20 % of its size)
        assert cmp["abs_test_accuracy_diff"] <= 0.02 and cmp["abs_test_loss_diff"] < 0.02, cmp


def test_element_wise_optimizers_train_with_kerass_bits(tmp_path):
    """Every element-wise kernel's optimizer by name: trained through pyoptim's kernels, the same
    bits as keras.optimizers (--compare-tf)."""
    names = ("adadelta", "adagrad", "adamax", "ftrl", "lamb", "lion", "nadam")
    js = tmp_path / "elementwise.json"
    proc = run_cli("trace", "--optimizers", ",".join(names), "--epochs", "1", "--compare-tf",
                   "--predict-rows", "0", "--json", str(js))
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(js.read_text())
    assert set(doc["runs"]) == set(names)
    for name in names:
        run, cmp = doc["runs"][name], doc["compare_tf"][name]
        # 1 epoch x 32 batches x 4 variables through the kernel (+ a graph-form check's steps)
        assert run["update_path"].startswith("pyoptim C++ kernels (128 variable updates"), run
        assert cmp["exact_expected"] is True and cmp["identical"], (name, cmp)
        assert f"{name:<9} |             0 |            0 |         0 | identical (same bits)" in proc.stdout


def test_trace_on_a_csv_file(tmp_path):
    rng = np.random.default_rng(7)
    labels = rng.choice([3, 5, 7], size=90)
    x = rng.normal(size=(90, 4)) + labels[:, None]
    csv = tmp_path / "mine.csv"
    lines = ["f1,f2,f3,f4,label"] + [",".join(f"{v:.5f}" for v in row) + f",{lab}" for row, lab in zip(x, labels)]
    csv.write_text("\n".join(lines) + "\n")
    js = tmp_path / "mine.json"
    proc = run_cli("trace", "--data", str(csv), "--epochs", "2", "--optimizers", "sgd", "--batch-size", "16",
                   "--learning-rate", "0.05", "--predict-rows", "none", "--json", str(js))
    assert proc.returncode == 0, proc.stderr
    assert "Prediction trace" not in proc.stdout
    assert "Input(4) -> Dense(64, ReLU) -> Dense(3, softmax)" in proc.stdout
    assert "labels 3, 5, 7 -> 0..2" in proc.stdout
    doc = json.loads(js.read_text())
    assert doc["data"]["train_rows"] == 75 and doc["data"]["test_rows"] == 15
    assert doc["data"]["label_values"] == [3, 5, 7]
    assert doc["runs"]["sgd"]["learning_rate"] == 0.05
    assert doc["prediction_trace"] is None and doc["settings"]["predict_rows"] == []
    assert len(table_rows(proc.stdout)) == 2


# ------------------------------------------------------------ no TensorFlow needed


def test_worked_example_rmsprop_step():
    proc = run_cli("trace", "--example", "rmsprop-step")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "gradients (dL/dw, dL/db) = (-10, -6)" in out
    assert "L = 9.50" in out and "was 10.00" in out
    assert "[0.0316, 0.0316]" in out  # the update of w and b
    assert "pyoptim.rmsprop_update" in out


def test_example_and_import_do_not_load_tensorflow():
    code = (
        "import sys, io, contextlib\n"
        "import pyoptim\n"
        "assert 'tensorflow' not in sys.modules\n"
        "from pyoptim.__main__ import main\n"
        "buf = io.StringIO()\n"
        "with contextlib.redirect_stdout(buf):\n"
        "    assert main(['trace', '--example', 'rmsprop-step']) == 0\n"
        "assert '9.50' in buf.getvalue()\n"
        "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


def test_help():
    top = run_cli("--help")
    assert top.returncode == 0 and "trace" in top.stdout and "usage: pyoptim" in top.stdout
    bare = run_cli()
    assert bare.returncode == 0 and bare.stdout == top.stdout
    sub = run_cli("trace", "--help")
    assert sub.returncode == 0
    for flag in ("--data", "--epochs", "--batch-size", "--learning-rate", "--optimizers", "--compare-tf",
                 "--plot", "--json", "--seed", "--example", "--predict-rows"):
        assert flag in sub.stdout
    assert ("sgd,rmsprop,adam,adamw,adam8bit,adamw8bit,adadelta,adagrad,adamax,ftrl,lamb,lion,nadam"
            in sub.stdout.replace("\n", "").replace(" ", "")) and "min_8bit_size=0" in sub.stdout


def _csv(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


BAD_INPUTS = {
    "missing file": (lambda d: ["--data", str(d / "nope.csv")], "data file not found"),
    "wrong column count": (lambda d: ["--data", _csv(d, "cols.csv", "1,2,0\n3,4,1\n5,6\n")],
                           "line 3: expected 3 columns like the first row, got 2"),
    "non-numeric data": (lambda d: ["--data", _csv(d, "text.csv", "1,2,0\n3,abc,1\n")],
                         "line 2 column 2: not a number: 'abc'"),
    "non-integer label": (lambda d: ["--data", _csv(d, "label.csv", "1,2,0\n3,4,0.5\n")],
                          "the label (last column) must be an integer"),
    "unknown optimizer": (lambda d: ["--optimizers", "sgd,lbfgs"], "unknown optimizer 'lbfgs'"),
    "unknown optimizer lists the valid names": (
        lambda d: ["--optimizers", "adam,adam4bit"],
        "unknown optimizer 'adam4bit' (choose from sgd, rmsprop, adam, adamw, adam8bit, adamw8bit, "
        "adadelta, adagrad, adamax, ftrl, lamb, lion, nadam)"),
    "epochs < 1": (lambda d: ["--epochs", "0"], "--epochs: must be an integer >= 1, got 0"),
    "negative learning rate": (lambda d: ["--learning-rate", "-0.1"], "--learning-rate: must be a positive"),
    "missing output directory": (lambda d: ["--json", str(d / "no" / "x.json")], "--json: directory does not exist"),
    "predict row outside the test set": (lambda d: ["--predict-rows", "0,200"],
                                         "--predict-rows: row 200 is outside the test set (200 rows, 0..199)"),
    "predict row not an integer": (lambda d: ["--predict-rows", "1,x"],
                                   "argument --predict-rows: row 'x' is not an integer"),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_exits_2_with_one_line(case, tmp_path):
    make_args, message = BAD_INPUTS[case]
    proc = run_cli("trace", *make_args(tmp_path))
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("pyoptim trace: error: ") and message in lines[0], lines[0]


# ------------------------------------------------------------------ NumPy pieces


def test_synthetic_data_shape_and_seed():
    a, b, c = synthetic_dataset(0), synthetic_dataset(0), synthetic_dataset(1)
    assert a.x_train.shape == (1000, 10) and a.x_test.shape == (200, 10)
    assert a.n_classes == 3 and set(np.unique(a.y_train)) == {0, 1, 2}
    assert np.array_equal(a.x_train, b.x_train) and np.array_equal(a.y_test, b.y_test)
    assert not np.array_equal(a.x_train, c.x_train)
    spans = a.x_train.max(axis=0) - a.x_train.min(axis=0)
    assert spans.max() / spans.min() > 10  # features on different scales: scaling matters


def test_scaling_is_fitted_on_training_rows_only():
    x_train = np.array([[0.0, 10.0], [2.0, 30.0]])
    x_test = np.array([[-2.0, 20.0], [4.0, 50.0]])
    scaler = MinMaxScaler.fit(x_train)
    assert np.array_equal(scaler.transform(x_train), np.array([[0, 0], [1, 1]], np.float32))
    assert np.allclose(scaler.transform(x_test), [[-1.0, 0.5], [2.0, 2.0]])
    # A constant feature maps to 0 instead of dividing by zero.
    assert np.array_equal(MinMaxScaler.fit(np.ones((3, 1))).transform(np.ones((2, 1))), np.zeros((2, 1), np.float32))


def test_csv_split_is_seeded_and_header_skipped(tmp_path):
    path = _csv(tmp_path, "d.csv", "a,b,y\n" + "".join(f"{i},{2 * i},{i % 2}\n" for i in range(12)))
    d1, d2 = load_csv(path, seed=3), load_csv(path, seed=3)
    assert d1.x_train.shape == (10, 2) and d1.x_test.shape == (2, 2)
    assert np.array_equal(d1.x_test, d2.x_test)
    with pytest.raises(TraceInputError, match="at least 2 classes"):
        load_csv(_csv(tmp_path, "one.csv", "1,2,4\n3,4,4\n"), seed=0)
    # Every label 0: the message names the label and the count of classes, not "found only 0".
    with pytest.raises(TraceInputError, match=r"every row has the label 0 \(1 class\)"):
        load_csv(_csv(tmp_path, "zero.csv", "1,2,0\n3,4,0\n5,6,0\n"), seed=0)


def test_observations_follow_the_trend():
    assert observe([1.0], [0.5], 0, 3, 5).startswith("first pass")
    assert observe([1.0, 0.6], [0.5, 0.8], 1, 3, 5).startswith("loss dropping fast")
    assert observe([1.0, 0.85], [0.5, 0.95], 1, 3, 5) == "loss dropping steadily (-15%), accuracy passed 90%"
    assert observe([0.2, 0.199], [0.95, 0.95], 1, 3, 5) == "converged"
    assert observe([0.5, 0.499], [0.6, 0.6], 1, 3, 5).startswith("plateau")
    assert observe([0.5, 0.7], [0.6, 0.5], 1, 3, 5).startswith("loss went up")
    assert observe([0.5, float("nan")], [0.6, 0.3], 1, 3, 5).startswith("diverged")
    assert observe([1.0, 0.5], [0.9, 0.95], 1, 3, 2).endswith("more epochs would help")
    # Late, tiny losses: a wobble of a few thousandths is not "went up" or "dropping fast".
    assert observe([1.0, 0.02, 0.025], [0.9, 0.99, 0.99], 2, 3, 5) == "converged"
    assert observe([1.0, 0.025, 0.02], [0.9, 0.99, 0.99], 2, 3, 3) == "converged"


def test_loss_chart_places_every_optimizer():
    chart = loss_chart({"sgd": [1.0, 0.5, 0.1], "adam": [0.9, 0.7, 0.6]})
    lines = chart.splitlines()
    assert lines[0].startswith("1.000 |") and "S" in lines[0]  # highest loss on the top row
    bottom = [line for line in lines if line.startswith("0.100 |")]
    assert bottom and bottom[0].rstrip().endswith("S")
    assert "A" in chart and "S = sgd, A = adam" in chart
    assert "1  2  3  epoch" in chart


# ------------------------------------------------ divergence, widths, timing, TF log


def test_observations_recognise_divergence_and_chance():
    # The [api-polish] case: --learning-rate 1e6 --optimizers sgd --epochs 2 (losses 1.1e20, 1.0e6).
    first = observe([1.1e20, 1.0e6], [0.34, 0.337], 0, 3, 2)
    second = observe([1.1e20, 1.0e6], [0.34, 0.337], 1, 3, 2)
    assert first == second == "diverged: loss > 10x guessing's 1.10, accuracy at chance", (first, second)
    assert observe([1.0, 50.0], [0.5, 0.6], 1, 3, 2) == "diverged: loss > 10x guessing's 1.10 (lower the learning rate)"
    grew = observe([1.0, 3.5], [0.6, 0.5], 1, 3, 5)
    assert grew == "diverging: loss grew 3.5x (lower the learning rate)"
    stuck = observe([1.1, 0.8], [0.35, 0.36], 1, 3, 2)
    assert stuck == "loss dropping fast (-27%), accuracy still at chance (33%)"  # no "more epochs would help"
    assert observe([1.1, 0.8], [0.5, 0.7], 1, 3, 2).endswith("more epochs would help")


def test_numbers_fit_their_columns():
    from pyoptim.trace.number_format import fit
    from pyoptim.trace.report import TABLE_HEADER as HEADER, table_row
    from pyoptim.trace.training import EpochRecord

    assert fit(0.5, 7, 4) == " 0.5000" and fit(12.34567, 7, 4) == "12.3457"
    assert fit(1.1053e20, 7, 4) == "1.1e+20" and fit(1015069.6, 7, 4) == "1.0e+06"
    assert fit(-1.1e20, 7, 4) == " -1e+20" and fit(float("nan"), 7, 4) == "    nan"
    for loss in (0.25, 1015069.625, 1.105e20, float("inf")):
        row = table_row(EpochRecord(1, loss, 0.34, loss, 0.33, 0.25), "x")
        assert [i for i, c in enumerate(row) if c == "|"] == [i for i, c in enumerate(HEADER) if c == "|"], row


def test_time_per_epoch_leaves_out_the_tracing_epoch():
    from pyoptim.trace.report import final_comparison
    from pyoptim.trace.training import EpochRecord, RunResult

    two = RunResult("sgd", "SGD()", "pyoptim.keras", 0.01, "", [EpochRecord(1, 1.0, 0.5, 1.0, 0.5, 0.29),
                                                                  EpochRecord(2, 0.9, 0.6, 0.9, 0.6, 0.10)])
    assert two.median_epoch_seconds == pytest.approx(0.10) and two.first_epoch_seconds == pytest.approx(0.29)
    text = final_comparison([two], 200)
    row = [line for line in text.splitlines() if line.startswith("sgd")][0]
    assert row.endswith("|     0.100s |     0.29s"), row
    assert "over epochs 2 and later; the 1st epoch, which\nincludes graph tracing, is left out" in text
    one = RunResult("sgd", "SGD()", "pyoptim.keras", 0.01, "", [EpochRecord(1, 1.0, 0.5, 1.0, 0.5, 0.29)])
    assert one.median_epoch_seconds is None
    row = [line for line in final_comparison([one], 200).splitlines() if line.startswith("sgd")][0]
    assert row.endswith("|        n/a |     0.29s"), row


def test_diverging_run_end_to_end():
    proc = run_cli("trace", "--learning-rate", "1e6", "--optimizers", "sgd", "--epochs", "2", "--predict-rows", "none")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    header = lines.index(TABLE_HEADER)
    bars = [i for i, c in enumerate(TABLE_HEADER) if c == "|"]
    for row in lines[header + 2: header + 4]:
        assert [i for i, c in enumerate(row) if c == "|"][:4] == bars, row
        assert row.split("|")[4].strip().startswith("diverged"), row
    assert "dropping fast" not in proc.stdout
    assert all(len(line) <= 100 for line in lines[header:])


IMPORT_KERAS = "from pyoptim.trace.tensorflow_import import import_keras; import_keras()"


@pytest.mark.parametrize("level, expected", [(None, 0), ("0", 1)])
def test_onednn_line_at_most_once(level, expected):
    """TensorFlow 2.21 logs the oneDNN line from two libraries, past TF_CPP_MIN_LOG_LEVEL;
    import_keras drops it by default and shows it once when the user asks for INFO logs."""
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    if level is not None:
        env["TF_CPP_MIN_LOG_LEVEL"] = level
    proc = subprocess.run([sys.executable, "-c", IMPORT_KERAS], capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.count("oneDNN custom operations are on") == expected, proc.stderr


# ------------------------------------------------------- optimizer names (no TF)


def test_optimizer_names_specs_and_8bit_note():
    from pyoptim.trace.optimizer_choice import (DEFAULT_OPTIMIZERS, SPECS, describe_reference, eight_bit_note,
                                                parse_optimizer_names)

    assert parse_optimizer_names("ADAM8BIT, adamw8bit,adam8bit,AdamW") == ["adam8bit", "adamw8bit", "adamw"]
    assert DEFAULT_OPTIMIZERS == ("sgd", "rmsprop", "adam")
    with pytest.raises(TraceInputError, match="choose from sgd, rmsprop, adam, adamw, adam8bit, adamw8bit, adadelta, adagrad, adamax, ftrl, lamb, lion, nadam"):
        parse_optimizer_names("adam,")
    eight = SPECS["adam8bit"]
    assert eight.eight_bit and not eight.exact_reference and not SPECS["adam"].eight_bit
    assert eight.describe(0.001) == "Adam8bit(learning_rate=0.001, min_8bit_size=0)"
    assert describe_reference("adam8bit", 0.001) == "Adam(learning_rate=0.001)"
    assert describe_reference("adamw8bit", 0.01) == "AdamW(learning_rate=0.01)"
    assert describe_reference("sgd", 0.01) == "SGD(learning_rate=0.01, momentum=0.9)"
    note = eight_bit_note([640, 64, 192, 3])
    assert note.startswith("min_8bit_size=0: all 4 variables") and "none of them (the largest has 640" in note
    assert "only 1 of them would be quantised" in eight_bit_note([8192, 64])


def test_agreement_of_an_8bit_run_is_not_called_different():
    from pyoptim.trace.report import agreement_table
    from pyoptim.trace.training import Agreement

    text = agreement_table([Agreement("adam8bit", 1e-3, 2e-3, 1e-4, 1e-4, 0.0, exact_expected=False,
                                      reference="keras.optimizers.Adam(learning_rate=0.001)"),
                            Agreement("adam", 0.0, 0.0, 0.0, 0.0, 0.0)])
    assert "8-bit vs float32 (2.0e-03 rel.)" in text and "DIFFERENT" not in text
    assert "identical (same bits)" in text
    assert "note: adam8bit against keras.optimizers' float32 Adam:" in text
    assert all(len(line) <= 100 for line in text.splitlines())
