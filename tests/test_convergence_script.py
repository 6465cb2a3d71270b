"""bench/convergence.py (8-bit Adam/AdamW against float32): a smoke run on the trace pipeline
(``--quick --models trace``: 2 epochs, 2 seeds, 8 tiny runs) and its files, re-rendered from its
JSON; bad arguments."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent / "bench" / "convergence.py"


def run_script(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONUNBUFFERED="1")
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=timeout,
                          env=env)


def test_quick_trace_run_writes_json_markdown_and_png(tmp_path):
    proc = run_script("--quick", "--models", "trace", "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    doc = json.loads((tmp_path / "convergence.json").read_text())
    assert doc["format"] == "pyoptim-convergence/1" and doc["quick"] and doc["seeds"] == [0, 1]
    model = doc["models"]["trace"]
    # Every optimizer from seed 0, the two keras.optimizers references also from seed 1.
    assert [(r["optimizer"], r["seed"]) for r in model["runs"]] == [
        ("keras.optimizers.Adam", 0), ("pyoptim.keras.Adam", 0), ("pyoptim.keras.Adam8bit", 0),
        ("keras.optimizers.AdamW", 0), ("pyoptim.keras.AdamW", 0), ("pyoptim.keras.AdamW8bit", 0),
        ("keras.optimizers.Adam", 1), ("keras.optimizers.AdamW", 1)]
    runs = {(r["optimizer"], r["seed"]): r for r in model["runs"]}
    for run in model["runs"]:
        assert len(run["loss"]) == len(run["test_loss"]) == len(run["test_accuracy"]) == model["epochs"] == 2
        assert run["final"]["test_loss"] == run["test_loss"][-1]
    # The trace's 8-bit runs quantise every variable (min_8bit_size=0) and say so.
    assert model["eight_bit_coverage"]["quantized_variables"] == model["eight_bit_coverage"]["variables"] == 4
    assert "min_8bit_size=0" in model["eight_bit_note"]
    eight = runs[("pyoptim.keras.Adam8bit", 0)]
    assert eight["constructor"] == "pyoptim.keras.Adam8bit(learning_rate=0.001, min_8bit_size=0)"
    # pyoptim's float32 Adam gives keras' bits; the 8-bit one does not (it really is quantised), but is close.
    assert runs[("pyoptim.keras.Adam", 0)]["max_weight_diff_vs_keras"] == 0.0
    assert 0.0 < eight["max_weight_diff_vs_keras"] < 0.1
    assert eight["state_bytes"] < runs[("pyoptim.keras.Adam", 0)]["state_bytes"]
    assert runs[("keras.optimizers.Adam", 1)]["test_loss"] != runs[("keras.optimizers.Adam", 0)]["test_loss"]
    assert set(model["verdicts"]) == {"pyoptim.keras.Adam8bit", "pyoptim.keras.AdamW8bit"}
    for v in model["verdicts"].values():
        assert isinstance(v["met"], bool) and v["text"].startswith(("meets: ", "MISSES: "))
        assert abs(v["test_accuracy_diff"]) <= 1.0
    spread = model["spread"]["adam"]
    assert spread["seeds"] == [0, 1] and spread["test_loss"]["min"] <= spread["test_loss"]["max"]

    table = (tmp_path / "convergence.md").read_text()
    assert "## trace pipeline" in table and "| pyoptim.keras.AdamW8bit | 0 |" in table
    assert "| keras.optimizers.Adam, seeds 0,1 | range |" in table and "## Summary" in table
    assert table.strip() in proc.stdout  # printed as well
    png = (tmp_path / "convergence.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000

    # --render-only: the same tables again from the JSON, without TensorFlow or training.
    (tmp_path / "convergence.md").unlink()
    again = run_script("--render-only", "--out", str(tmp_path), timeout=60)
    assert again.returncode == 0, again.stderr
    assert (tmp_path / "convergence.md").read_text() == table


def test_bad_arguments_exit_2():
    for args, message in ((["--models", "trace,resnet"], "unknown resnet"),
                          (["--seeds", "1"], "--seeds must be at least 2"),
                          (["--out", "/nonexistent/dir"], "directory does not exist")):
        proc = run_script(*args, timeout=60)
        assert proc.returncode == 2 and message in proc.stderr, (args, proc.stderr)
        assert "Traceback" not in proc.stderr
