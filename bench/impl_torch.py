"""PyTorch implementations: torch.optim.SGD / RMSprop / Adam with ``foreach=True`` and
with ``fused=True`` (where torch has a fused CPU kernel: SGD and Adam), when torch is
importable.  Parameters share memory with NumPy copies (torch.from_numpy).

Note the formulas differ in small ways from Keras' (torch's RMSprop adds epsilon
after the square root, its Adam folds the bias corrections differently); the
memory traffic is the same, which is what is compared here.
"""
from __future__ import annotations

from typing import Any, Dict, Optional

from impl_base import Impl, Step, Unavailable
from problems import HYPER, Case, Data

_TORCH: Dict[str, Any] = {}


def init_torch(threads: int) -> Optional[str]:
    """Import torch and set its intra-op threads; returns None or why it is unavailable."""
    if "torch" in _TORCH:
        return None
    if "error" in _TORCH:
        return _TORCH["error"]
    try:
        import torch
    except Exception as e:
        _TORCH["error"] = f"torch not importable ({type(e).__name__}: {e}); `pip install torch` to compare"
        return _TORCH["error"]
    torch.set_num_threads(threads)
    _TORCH["torch"] = torch
    return None


def torch_threads() -> Optional[int]:
    t = _TORCH.get("torch")
    return t.get_num_threads() if t is not None else None


class TorchOptim(Impl):
    group = "torch"

    def __init__(self, threads: int, fused: bool) -> None:
        super().__init__()
        self.threads = threads
        self.fused = fused
        self.name = "torch.fused" if fused else "torch.foreach"
        self.description = (f"torch.optim.SGD / RMSprop / Adam with {'fused' if fused else 'foreach'}=True, "
                            "opt.step() on CPU tensors")

    def setup(self) -> None:
        self.reason = init_torch(self.threads)

    def make(self, optimizer: str, case: Case, data: Data) -> Step:
        torch = _TORCH["torch"]
        h = HYPER[optimizer]
        params = [torch.from_numpy(p.copy()) for p in data.params]
        for p, g in zip(params, data.grads):
            p.grad = torch.from_numpy(g.copy())
        flag = {"fused": True} if self.fused else {"foreach": True}
        if optimizer == "sgd":
            opt = torch.optim.SGD(params, lr=h["learning_rate"], momentum=h["momentum"], **flag)
        elif optimizer == "rmsprop":
            if self.fused:
                raise Unavailable("torch.optim.RMSprop has no fused implementation")
            opt = torch.optim.RMSprop(params, lr=h["learning_rate"], alpha=h["rho"], eps=h["epsilon"], **flag)
        else:
            opt = torch.optim.Adam(params, lr=h["learning_rate"], betas=(h["beta_1"], h["beta_2"]),
                                   eps=h["epsilon"], **flag)
        step = opt.step
        step()  # creates the state
        return step

    def info(self) -> Dict[str, object]:
        d = super().info()
        t = _TORCH.get("torch")
        if t is not None:
            d["version"] = t.__version__
            d["num_threads"] = t.get_num_threads()
            try:  # which OpenMP / thread pool torch was built with
                d["parallel_info"] = t.__config__.parallel_info().strip().splitlines()
            except Exception:  # noqa: BLE001 - informational only
                pass
        return d
