"""Keras' own optimizer tests, run against pyoptim.keras' classes.

Keras ships its tests with the package (``keras/src/optimizers/*_test.py``).  Each suite below
is imported, its module-level optimizer class (the name the tests call, e.g. ``Adam``) is
pointed at pyoptim.keras' class, and its TestCase is run here as a subclass: the same test
methods, the same assertions (golden values, configs, serialisation, clipping, EMA, gradient
accumulation, weight decay, loss scaling), with pyoptim.keras doing the updates; Keras'
generic ``optimizer_test.py`` likewise, with its ``test_get_method`` (which looks names up in
Keras' own registry) done for pyoptim's registered names.  The kernels' counter shows that they
ran.  The skips are Keras' own: ``loss_scale_optimizer_test``'s ``stateless_apply`` cases, which
Keras skips on the TensorFlow backend for its own classes too.
"""
from __future__ import annotations

import importlib
import os
import types
from typing import Dict, Tuple

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402

import pyoptim.keras as pk  # noqa: E402

# Keras' test module -> (the optimizer name its tests use, its TestCase class)
SUITES: Dict[str, Tuple[str, str]] = {
    "sgd_test": ("SGD", "SGDTest"),
    "rmsprop_test": ("RMSprop", "RMSpropTest"),
    "adam_test": ("Adam", "AdamTest"),
    "adamw_test": ("AdamW", "AdamWTest"),
    "loss_scale_optimizer_test": ("SGD", "LossScaleOptimizerTest"),
    "adadelta_test": ("Adadelta", "AdadeltaTest"),
    "adagrad_test": ("Adagrad", "AdagradTest"),
    "ftrl_test": ("Ftrl", "FtrlTest"),
    "lamb_test": ("Lamb", "LambTest"),
    "lion_test": ("Lion", "LionTest"),
    "adamax_test": ("Adamax", "AdamaxTest"),
    "nadam_test": ("Nadam", "NadamTest"),
}


def _suite(module_name: str) -> type:
    name, case = SUITES[module_name]
    module = importlib.import_module(f"keras.src.optimizers.{module_name}")
    setattr(module, name, getattr(pk, name))  # the suite's tests now build pyoptim's class
    return getattr(module, case)


TestKerasSGDSuite = type("TestKerasSGDSuite", (_suite("sgd_test"),), {})
TestKerasRMSpropSuite = type("TestKerasRMSpropSuite", (_suite("rmsprop_test"),), {})
TestKerasAdamSuite = type("TestKerasAdamSuite", (_suite("adam_test"),), {})
TestKerasAdamWSuite = type("TestKerasAdamWSuite", (_suite("adamw_test"),), {})
TestKerasLossScaleSuite = type("TestKerasLossScaleSuite", (_suite("loss_scale_optimizer_test"),), {})
TestKerasAdadeltaSuite = type("TestKerasAdadeltaSuite", (_suite("adadelta_test"),), {})
TestKerasAdagradSuite = type("TestKerasAdagradSuite", (_suite("adagrad_test"),), {})
TestKerasFtrlSuite = type("TestKerasFtrlSuite", (_suite("ftrl_test"),), {})
TestKerasLambSuite = type("TestKerasLambSuite", (_suite("lamb_test"),), {})
TestKerasLionSuite = type("TestKerasLionSuite", (_suite("lion_test"),), {})
TestKerasAdamaxSuite = type("TestKerasAdamaxSuite", (_suite("adamax_test"),), {})
TestKerasNadamSuite = type("TestKerasNadamSuite", (_suite("nadam_test"),), {})


def _optimizer_suite() -> type:
    """Keras' generic optimizer tests (``optimizer_test.py``) call ``optimizers.SGD`` etc. on the
    package ``keras.src.optimizers``: that module's name ``optimizers`` becomes a copy of the
    package whose SGD, RMSprop, Adam and AdamW are pyoptim's (the package itself is untouched)."""
    module = importlib.import_module("keras.src.optimizers.optimizer_test")
    package = importlib.import_module("keras.src.optimizers")
    patched = types.ModuleType("keras.src.optimizers (pyoptim's SGD, RMSprop, Adam, AdamW)")
    patched.__dict__.update(vars(package))
    for name in ("SGD", "RMSprop", "Adam", "AdamW"):
        setattr(patched, name, getattr(pk, name))
    module.optimizers = patched
    return module.OptimizerTest


class TestKerasOptimizerSuite(_optimizer_suite()):
    def test_get_method(self):
        # Keras' version looks names up in Keras' own registry ("sgd" is keras.optimizers.SGD
        # whatever the test module calls); pyoptim's classes are found by their registered names.
        obj = keras.optimizers.get(keras.optimizers.serialize(pk.SGD()))
        self.assertIsInstance(obj, pk.SGD)
        obj = keras.optimizers.get(keras.optimizers.serialize(pk.AdamW()))
        self.assertIsInstance(obj, pk.AdamW)
        self.assertIsNone(keras.optimizers.get(None))
        with self.assertRaises(ValueError):
            keras.optimizers.get("typo")


def test_the_suites_run_pyoptims_classes():
    """The patched names are pyoptim's classes, and Keras' single-step test runs the kernel."""
    for module_name, (name, _) in SUITES.items():
        module = importlib.import_module(f"keras.src.optimizers.{module_name}")
        assert getattr(module, name) is getattr(pk, name), module_name
    before = pk.kernel_calls()["adam"]
    TestKerasAdamSuite("test_single_step").test_single_step()
    assert pk.kernel_calls()["adam"] == before + 1
