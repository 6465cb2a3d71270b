"""The steps of the 8-bit state benchmark (bench/adam8bit.py): pyoptim.Adam and pyoptim.Adam8bit
(``opt.apply``), the two roofline C loops (Adam8bit's bytes and float Adam's), and the CPU 8-bit
Adams of installed peers: bitsandbytes' ``bitsandbytes.optim.Adam8bit`` and torchao's
``torchao.optim.Adam8bit`` on CPU tensors.

Every maker takes one float32 parameter and gradient (NumPy, copied) and returns
``(step, notes)``: a zero-argument function running one optimizer step, and a dict for the
JSON row (state layout, bytes of state, versions...).  A maker that cannot run raises
:class:`impl_base.Unavailable` with the reason.  Every maker runs one step first (which creates
the state; for torchao it also compiles the step with torch.compile, timed as
``first_step_s``).
"""
from __future__ import annotations

import time
from typing import Any, Callable, Dict, Optional, Tuple

import numpy as np

import roofline
from impl_base import Unavailable
from problems import HYPER

Made = Tuple[Callable[[], object], Dict[str, Any]]

#: Block size of the peers' 8-bit state: bitsandbytes' CPU path hard-codes 256, torchao's default.
PEER_BLOCK_SIZE = 256


def _slot_bytes(opt: Any) -> Tuple[int, Dict[str, int]]:
    """Bytes of every slot array (codes and scales), in all and per slot name."""
    per = {k: int(sum(a.nbytes for a in v)) for k, v in opt.slots.items()}
    return sum(per.values()), per


def make_pyoptim(param: np.ndarray, grad: np.ndarray, block_size: Optional[int]) -> Made:
    """``pyoptim.Adam`` (block_size None) or ``pyoptim.Adam8bit(block_size=...)``, ``apply``."""
    import pyoptim

    p, g = param.copy(), grad.copy()
    if block_size is None:
        opt = pyoptim.Adam(**HYPER["adam"])
    else:
        if not hasattr(pyoptim, "Adam8bit"):
            raise Unavailable("pyoptim has no Adam8bit")
        opt = pyoptim.Adam8bit(**HYPER["adam"], block_size=block_size)
    apply = opt.apply
    apply([g], [p])
    total, per = _slot_bytes(opt)
    notes: Dict[str, Any] = {"class": type(opt).__name__, "state_bytes": total, "state_bytes_per_slot": per,
                             "state_dtypes": {k: str(v[0].dtype) for k, v in opt.slots.items()}}

    def step() -> None:
        apply([g], [p])

    return step, notes


def make_roofline(lib: Any, param: np.ndarray, grad: np.ndarray, block_size: Optional[int], threads: int) -> Made:
    """The C loop moving Adam8bit's bytes at ``block_size`` (or float Adam's 28 bytes/element
    when None); calibrated (serial or parallel, the faster)."""
    if lib is None:
        raise Unavailable("roofline loop not built")
    p, g = param.copy(), grad.copy()
    if block_size is None:
        rs: roofline.RooflineStep = roofline.RooflineStep(lib, "adam", [p], [g], [[np.zeros_like(p)],
                                                                                   [np.zeros_like(p)]], threads)
        bpe: float = roofline.bytes_per_element("adam")
    else:
        nb = roofline.num_blocks(p.size, block_size)
        rs = roofline.Roofline8bitStep(lib, [p], [g], [np.zeros(p.size, np.int8)], [np.zeros(p.size, np.uint8)],
                                       [np.ones(nb, np.float32)], [np.ones(nb, np.float32)], block_size, threads)
        bpe = roofline.bytes_per_element_8bit(block_size)
    medians = rs.calibrate()
    return rs.step, {"mode": rs.mode, "threads": rs.nt, "calibration_median_s": medians, "bytes_per_element": bpe}


def _torch(threads: int) -> Any:
    from impl_torch import _TORCH, init_torch

    why = init_torch(threads)
    if why:
        raise Unavailable(why)
    return _TORCH["torch"]


def _torch_param(torch: Any, param: np.ndarray, grad: np.ndarray) -> Any:
    p = torch.nn.Parameter(torch.from_numpy(param.copy()))
    p.grad = torch.from_numpy(grad.copy())
    return p


def make_bitsandbytes(param: np.ndarray, grad: np.ndarray, threads: int) -> Made:
    """``bitsandbytes.optim.Adam8bit`` on a CPU tensor.  Checks that the state really is 8-bit
    (uint8 codes and per-block absmax) after the first step; records the CPU kernel that ran."""
    torch = _torch(threads)
    try:
        import bitsandbytes as bnb
        import bitsandbytes.optim  # noqa: F401
    except Exception as e:  # noqa: BLE001 - any import failure makes it unavailable
        raise Unavailable(f"bitsandbytes not importable ({type(e).__name__}: {e}); `pip install bitsandbytes`")
    h = HYPER["adam"]
    p = _torch_param(torch, param, grad)
    opt = bnb.optim.Adam8bit([p], lr=h["learning_rate"], betas=(h["beta_1"], h["beta_2"]), eps=h["epsilon"])
    t0 = time.perf_counter()
    opt.step()
    first = time.perf_counter() - t0
    st = opt.state[p]
    tensors = {k: v for k, v in st.items() if torch.is_tensor(v)}
    eight_bit = (all(k in tensors for k in ("state1", "state2", "absmax1", "absmax2"))
                 and tensors["state1"].dtype == torch.uint8 and tensors["state2"].dtype == torch.uint8)
    if not eight_bit:
        raise Unavailable("bitsandbytes.optim.Adam8bit kept float state on CPU: "
                          + ", ".join(f"{k} {v.dtype}" for k, v in tensors.items()))
    kernel = None
    try:
        from bitsandbytes.backends.cpu import ops as cpu_ops

        fn = getattr(cpu_ops, "_optimizer_update_8bit_blockwise_cpu", None)
        kernel = f"{fn.__module__}.{fn.__name__}" if fn is not None else None
    except Exception:  # noqa: BLE001 - informational only
        pass
    blocks = int(tensors["absmax1"].numel())
    notes = {"version": bnb.__version__, "torch_version": torch.__version__, "torch_threads": torch.get_num_threads(),
             "first_step_s": first, "state_bytes": int(sum(v.nbytes for v in tensors.values())),
             "state_dtypes": {k: str(v.dtype).replace("torch.", "") for k, v in tensors.items()},
             "block_size": -(-param.size // blocks) if blocks else None, "cpu_kernel": kernel,
             "how": "dequantize_blockwise, torch ops, quantize_blockwise: several passes over the state"}
    step = opt.step
    return step, notes


def make_torchao(param: np.ndarray, grad: np.ndarray, threads: int) -> Made:
    """``torchao.optim.Adam8bit`` on a CPU tensor (its step is compiled by torch.compile on the
    first call).  torchao keeps float32 state for tensors whose size is not a multiple of the
    block size: the benchmark's size is rounded up to one, and the state is checked 8-bit."""
    torch = _torch(threads)
    try:
        import torchao
        from torchao.optim import Adam8bit
    except Exception as e:  # noqa: BLE001
        raise Unavailable(f"torchao not importable ({type(e).__name__}: {e}); `pip install torchao`")
    if param.size % PEER_BLOCK_SIZE:
        raise Unavailable(f"torchao keeps float32 state unless the size is a multiple of {PEER_BLOCK_SIZE}")
    h = HYPER["adam"]
    p = _torch_param(torch, param, grad)
    opt = Adam8bit([p], lr=h["learning_rate"], betas=(h["beta_1"], h["beta_2"]), eps=h["epsilon"],
                   block_size=PEER_BLOCK_SIZE)
    t0 = time.perf_counter()
    opt.step()
    first = time.perf_counter() - t0
    st = opt.state[p]
    states = [st.get("exp_avg"), st.get("exp_avg_sq")]
    if not all(hasattr(s, "codes") and hasattr(s, "scale") for s in states):
        raise Unavailable("torchao.optim.Adam8bit kept float state: "
                          + ", ".join(f"{k} {type(v).__name__}" for k, v in st.items()))
    nbytes = 0
    for s in states:
        nbytes += s.codes.nbytes + s.scale.nbytes + (s.qmap.nbytes if hasattr(s, "qmap") else 0)
    notes = {"version": torchao.__version__, "torch_version": torch.__version__,
             "torch_threads": torch.get_num_threads(), "first_step_s": first, "state_bytes": int(nbytes),
             "state_dtypes": {"codes": str(states[0].codes.dtype).replace("torch.", ""),
                              "scale": str(states[0].scale.dtype).replace("torch.", "")},
             "block_size": PEER_BLOCK_SIZE, "state_class": type(states[0]).__name__,
             "how": "tensor-subclass state; the step is torch.compile'd (fullgraph) on the first call"}
    step = opt.step
    return step, notes
