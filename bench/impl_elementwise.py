"""Implementations of the element-wise optimizers' step (bench/elementwise.py): Adadelta,
Adagrad, Adamax, Ftrl, Lamb, Lion and Nadam with Keras' defaults (``problems.HYPER``).

Every maker takes the benchmark's optimizer name (``problems.ELEMENTWISE_OPTIMIZERS``), the
cell's :class:`problems.Case` and :class:`problems.Data` (its own copies are made), and returns
``(step, notes)``: a zero-argument function that runs one step over all the cell's tensors and
a dict recorded in the row.  A maker raises :class:`impl_base.Unavailable` with the reason when
the library has no such optimizer (yet): pyoptim's NumPy classes and functional forms are looked
up by name (``pyoptim.<Class>``, ``pyoptim.<name>_update``), so the part measures whichever of
them exist when it runs.

* ``pyoptim.fn``: ``pyoptim.<name>_update`` once per tensor.  Its arguments are read from its
  signature: the positional arrays after ``param`` and ``grad`` are the state arrays (zeros; the
  first starts at ``initial_accumulator_value`` when the optimizer has one, as Keras'
  accumulator), ``step`` (1-based) and ``u_product`` (Nadam's running product, threaded from
  step to step) when it takes them, and the hyperparameters it names.
* ``pyoptim.apply``: ``pyoptim.<Class>(**hyper).apply(grads, params)``, one multi-tensor call.
* ``pyoptim.keras`` / ``keras``: ``pyoptim.keras.<Class>`` / ``keras.optimizers.<Class>``,
  ``apply_gradients`` inside one ``tf.function``; ``.eager``: called eagerly
  (:func:`impl_tf.keras_step`; pyoptim.keras' rows record ``fast_path`` and ``path_counts``).
* ``torch.fused`` / ``torch.foreach``: ``torch.optim.Adagrad(..., fused=True / foreach=True)``,
  Adagrad only (``lr``, ``initial_accumulator_value``, ``eps`` = Keras' learning_rate,
  initial_accumulator_value, epsilon; torch adds eps after the square root, Keras inside it: the
  traffic, p r/w, g r, sum r/w, is the same).
* ``roofline``: the C loop moving the optimizer's bytes (``roofline.RooflineElementwiseStep``).
"""
from __future__ import annotations

import inspect
from typing import Any, Callable, Dict, List, Tuple

import numpy as np

import roofline
from impl_base import Unavailable
from problems import ELEMENTWISE_CLASSES, HYPER, Case, Data

Made = Tuple[Callable[[], object], Dict[str, Any]]

#: Implementations of the part, in table order; torch only for Adagrad (TORCH_OPTIMIZERS).
IMPLS: Tuple[str, ...] = ("pyoptim.fn", "pyoptim.apply", "pyoptim.keras", "keras", "pyoptim.keras.eager",
                          "keras.eager", "torch.fused", "torch.foreach", "roofline")
TORCH_IMPLS = ("torch.fused", "torch.foreach")
TORCH_OPTIMIZERS = ("adagrad",)


def _copies(data: Data) -> tuple:
    return [p.copy() for p in data.params], [g.copy() for g in data.grads]


def make_functional(optimizer: str, case: Case, data: Data) -> Made:
    import pyoptim

    name = f"{optimizer}_update"
    fn = getattr(pyoptim, name, None)
    if fn is None:
        raise Unavailable(f"pyoptim has no {name} (no functional form yet)")
    sig = inspect.signature(fn)
    arrays = [p for p in sig.parameters.values()
              if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty]
    n_states = len(arrays) - 2
    if n_states < 0:
        raise Unavailable(f"pyoptim.{name}{sig}: cannot tell its state arrays")
    h = HYPER[optimizer]
    kwargs = {k: v for k, v in h.items() if k in sig.parameters}
    ignored = sorted(k for k in h if k not in sig.parameters)
    params, grads = _copies(data)
    states = [[np.zeros_like(p) for p in params] for _ in range(n_states)]
    init = h.get("initial_accumulator_value")
    if init is not None and "initial_accumulator_value" not in sig.parameters and states:
        for a in states[0]:
            a.fill(init)
    items = list(zip(params, grads, *states))
    takes_step, takes_u = "step" in sig.parameters, "u_product" in sig.parameters
    counter = [0]
    u = [1.0]

    def step() -> None:
        counter[0] += 1
        extra: Dict[str, Any] = dict(kwargs)
        if takes_step:
            extra["step"] = counter[0]
        if takes_u:
            extra["u_product"] = u[0]
        new = None
        for arrs in items:
            new = fn(*arrs, **extra)
        if takes_u and new is not None:
            u[0] = float(new)

    notes = {"api": f"pyoptim.{name}", "state_arrays": n_states,
             "signature_ignores": ignored}
    return step, notes


def make_stateful(optimizer: str, case: Case, data: Data) -> Made:
    import pyoptim

    cls_name = ELEMENTWISE_CLASSES[optimizer]
    cls = getattr(pyoptim, cls_name, None)
    if cls is None:
        raise Unavailable(f"pyoptim has no {cls_name} (hasattr(pyoptim, {cls_name!r}) is False)")
    opt = cls(**HYPER[optimizer])
    params, grads = _copies(data)
    apply = opt.apply

    def step() -> None:
        apply(grads, params)

    step._keep = opt  # type: ignore[attr-defined]
    return step, {"api": f"pyoptim.{cls_name}.apply"}


def make_keras(optimizer: str, case: Case, data: Data, *, pyoptim_keras: bool, eager: bool) -> Made:
    from impl_tf import _TF, keras_step

    cls_name = ELEMENTWISE_CLASSES[optimizer]
    if pyoptim_keras:
        import pyoptim.keras as module
        where = "pyoptim.keras"
    else:
        module = _TF["keras"].optimizers
        where = "keras.optimizers"
    cls = getattr(module, cls_name, None)
    if cls is None:
        raise Unavailable(f"{where} has no {cls_name}")
    step = keras_step(_TF["keras"], cls, data, HYPER[optimizer], eager=eager)
    notes = dict(getattr(step, "_notes", {}))
    notes["optimizer_class"] = f"{where}.{cls_name}"
    return step, notes


def make_torch(optimizer: str, case: Case, data: Data, *, fused: bool) -> Made:
    if optimizer not in TORCH_OPTIMIZERS:
        raise Unavailable(f"torch is compared for {', '.join(TORCH_OPTIMIZERS)} only")
    from impl_torch import _TORCH

    torch = _TORCH["torch"]
    h = HYPER[optimizer]
    params = [torch.from_numpy(p.copy()) for p in data.params]
    for p, g in zip(params, data.grads):
        p.grad = torch.from_numpy(g.copy())
    flag = {"fused": True} if fused else {"foreach": True}
    try:
        opt = torch.optim.Adagrad(params, lr=h["learning_rate"], initial_accumulator_value=h["initial_accumulator_value"],
                                  eps=h["epsilon"], **flag)
        opt.step()  # creates the state; a torch without this fused CPU kernel fails here
    except (RuntimeError, TypeError, ValueError) as e:
        raise Unavailable(f"torch.optim.Adagrad({next(iter(flag))}=True) on CPU: {type(e).__name__}: {e}") from None
    step = opt.step
    return step, {"api": f"torch.optim.Adagrad({next(iter(flag))}=True)", "version": torch.__version__}


def make_roofline(optimizer: str, case: Case, data: Data, *, lib: Any, threads: int) -> Made:
    params, grads = _copies(data)
    n_states = 1 if roofline.ELEMENTWISE_LOOP[optimizer] == "states1" else 2
    states: List[List[np.ndarray]] = [[np.zeros_like(p) for p in params] for _ in range(n_states)]
    rs = roofline.RooflineElementwiseStep(lib, optimizer, params, grads, states, threads)
    medians = rs.calibrate()
    return rs.step, {"mode": rs.mode, "threads": rs.nt, "calibration_median_s": medians,
                     "loop": roofline.ELEMENTWISE_LOOP[optimizer]}


def maker(impl: str, optimizer: str, case: Case, data: Data, *, threads: int, roof_lib: Any) -> Callable[[], Made]:
    """The zero-argument maker of implementation ``impl`` for one cell."""
    if impl == "pyoptim.fn":
        return lambda: make_functional(optimizer, case, data)
    if impl == "pyoptim.apply":
        return lambda: make_stateful(optimizer, case, data)
    if impl in ("pyoptim.keras", "keras", "pyoptim.keras.eager", "keras.eager"):
        return lambda: make_keras(optimizer, case, data, pyoptim_keras=impl.startswith("pyoptim"),
                                  eager=impl.endswith(".eager"))
    if impl in TORCH_IMPLS:
        return lambda: make_torch(optimizer, case, data, fused=impl == "torch.fused")
    if impl == "roofline":
        return lambda: make_roofline(optimizer, case, data, lib=roof_lib, threads=threads)
    raise KeyError(impl)
