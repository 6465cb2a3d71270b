"""Implementations on NumPy arrays: pyoptim's functional and stateful APIs, a plain
NumPy transcription of the formulas, and the memory roofline (C loop)."""
from __future__ import annotations

from typing import Dict, List

import numpy as np

import roofline
from impl_base import Impl, Step, Unavailable
from problems import HYPER, N_STATES_OF, Case, Data


def _copies(data: Data) -> tuple:
    return [p.copy() for p in data.params], [g.copy() for g in data.grads]


class PyoptimFunctional(Impl):
    """``pyoptim.<opt>_update`` once per tensor (a Python loop for several tensors)."""

    name = "pyoptim.fn"
    group = "pyoptim"
    description = "pyoptim functional NumPy API (sgd_update / rmsprop_update / adam_update), one call per tensor"

    def setup(self) -> None:
        import pyoptim

        self._po = pyoptim

    def make(self, optimizer: str, case: Case, data: Data) -> Step:
        po, h = self._po, HYPER[optimizer]
        params, grads = _copies(data)
        states = [[np.zeros_like(p) for p in params] for _ in range(N_STATES_OF["adam" if optimizer == "adamw"
                                                                                else optimizer])]
        items = list(zip(params, grads, *states))
        if optimizer == "sgd":
            fn = po.sgd_update
            lr, mu = h["learning_rate"], h["momentum"]

            def step() -> None:
                for p, g, m in items:
                    fn(p, g, m, learning_rate=lr, momentum=mu)

        elif optimizer == "rmsprop":
            fn = po.rmsprop_update
            lr, rho, eps = h["learning_rate"], h["rho"], h["epsilon"]

            def step() -> None:
                for p, g, v in items:
                    fn(p, g, v, learning_rate=lr, rho=rho, epsilon=eps)

        else:  # adam, and adamw: adam_update(weight_decay=...)
            fn = po.adam_update
            lr, b1, b2, eps = h["learning_rate"], h["beta_1"], h["beta_2"], h["epsilon"]
            wd = h.get("weight_decay")
            counter = [0]

            def step() -> None:
                counter[0] += 1
                t = counter[0]
                for p, g, m, v in items:
                    fn(p, g, m, v, step=t, learning_rate=lr, beta_1=b1, beta_2=b2, epsilon=eps, weight_decay=wd)

        return step


class PyoptimStateful(Impl):
    """``pyoptim.<Opt>(...).apply(grads, params)``: all tensors in one native call."""

    name = "pyoptim.apply"
    group = "pyoptim"
    description = "pyoptim stateful NumPy API: opt.apply(grads, params), one multi-tensor native call"

    def setup(self) -> None:
        import pyoptim

        self._po = pyoptim

    def make(self, optimizer: str, case: Case, data: Data) -> Step:
        po = self._po
        cls = {"sgd": po.SGD, "rmsprop": po.RMSprop, "adam": po.Adam, "adamw": po.Adam}[optimizer]
        opt = cls(**HYPER[optimizer])  # adamw: pyoptim.Adam(weight_decay=...)
        params, grads = _copies(data)
        apply = opt.apply

        def step() -> None:
            apply(grads, params)

        return step


class NumpyPlain(Impl):
    """The formulas as NumPy ufuncs, in place with preallocated temporaries (``out=``)."""

    name = "numpy"
    group = "numpy"
    description = "plain NumPy: Keras' formulas as in-place ufuncs with preallocated temporaries"

    def make(self, optimizer: str, case: Case, data: Data) -> Step:
        params, grads = _copies(data)
        h = HYPER[optimizer]
        f32 = np.float32
        tmps = [np.empty_like(p) for p in params]
        if optimizer == "sgd":
            lr, mu = f32(h["learning_rate"]), f32(h["momentum"])
            ms = [np.zeros_like(p) for p in params]
            items = list(zip(params, grads, ms, tmps))

            def step() -> None:
                for p, g, m, t in items:  # m = m * mu - g * lr;  p = p + m
                    np.multiply(m, mu, out=m)
                    np.multiply(g, lr, out=t)
                    np.subtract(m, t, out=m)
                    np.add(p, m, out=p)

        elif optimizer == "rmsprop":
            lr, rho, eps = f32(h["learning_rate"]), f32(h["rho"]), f32(h["epsilon"])
            omr = f32(1.0 - h["rho"])
            vs = [np.zeros_like(p) for p in params]
            items = list(zip(params, grads, vs, tmps))

            def step() -> None:
                for p, g, v, t in items:  # v = rho v + (1-rho) g^2;  p -= lr g / sqrt(v + eps)
                    np.multiply(v, rho, out=v)
                    np.multiply(g, g, out=t)
                    np.multiply(t, omr, out=t)
                    np.add(v, t, out=v)
                    np.add(v, eps, out=t)
                    np.sqrt(t, out=t)
                    np.divide(g, t, out=t)
                    np.multiply(t, lr, out=t)
                    np.subtract(p, t, out=p)

        else:
            lr, b1, b2, eps = h["learning_rate"], h["beta_1"], h["beta_2"], f32(h["epsilon"])
            omb1, omb2 = f32(1.0 - b1), f32(1.0 - b2)
            ms = [np.zeros_like(p) for p in params]
            vs = [np.zeros_like(p) for p in params]
            items = list(zip(params, grads, ms, vs, tmps))
            counter = [0]

            def step() -> None:
                counter[0] += 1
                t_ = f32(counter[0])
                alpha = f32(lr) * np.sqrt(f32(1) - f32(b2) ** t_) / (f32(1) - f32(b1) ** t_)
                for p, g, m, v, t in items:
                    np.subtract(g, m, out=t)  # m += (g - m)(1 - b1)
                    np.multiply(t, omb1, out=t)
                    np.add(m, t, out=m)
                    np.multiply(g, g, out=t)  # v += (g^2 - v)(1 - b2)
                    np.subtract(t, v, out=t)
                    np.multiply(t, omb2, out=t)
                    np.add(v, t, out=v)
                    np.sqrt(v, out=t)  # p -= m alpha / (sqrt(v) + eps)
                    np.add(t, eps, out=t)
                    np.divide(m, t, out=t)
                    np.multiply(t, alpha, out=t)
                    np.subtract(p, t, out=p)

        return step


class Roofline(Impl):
    """The C loop with the optimizer's memory traffic (see roofline.py)."""

    name = "roofline"
    group = "roofline"
    description = "memory roofline: C loop with the optimizer's traffic, compiled at run time, via ctypes"

    def __init__(self, threads: int) -> None:
        super().__init__()
        self.threads = threads
        self.lib = None
        self.modes: Dict[str, Dict[str, object]] = {}

    def setup(self) -> None:
        try:
            self.lib = roofline.build()
        except (RuntimeError, OSError) as e:
            self.reason = f"roofline loop not built: {e}"

    def make(self, optimizer: str, case: Case, data: Data) -> Step:
        if self.lib is None:
            raise Unavailable(self.reason or "roofline not built")
        params, grads = _copies(data)
        states: List[List[np.ndarray]] = [[np.zeros_like(p) for p in params]
                                          for _ in range(roofline.N_STATES[optimizer])]
        rs = roofline.RooflineStep(self.lib, optimizer, params, grads, states, self.threads)
        medians = rs.calibrate()
        self.modes[f"{optimizer}/{case.label}"] = {
            "mode": rs.mode, "threads": rs.nt, "calibration_median_s": medians}
        return rs.step

    def info(self) -> Dict[str, object]:
        d = super().info()
        if self.lib is not None:
            d.update(self.lib.info())
        d["modes"] = self.modes
        return d
