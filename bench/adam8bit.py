"""Adam with 8-bit block-wise state (``pyoptim.Adam8bit``): speed, memory, block size, peers.

One tensor of ``size`` float32 elements (1e7; ``--quick``: 1e5), Keras' Adam defaults
(``problems.HYPER["adam"]``), the same gradient every step:

1. **Step** (one interleaved harness cell): ``pyoptim.Adam.apply`` (28 bytes/element),
   ``pyoptim.Adam8bit.apply`` at every block size of :data:`BLOCK_SIZES` (16 + 16 / block
   bytes/element: p read and written 8, g 4, m and v codes 1 + 1 each, two float32 scales read
   and written per block), the roofline C loop moving Adam8bit's bytes at the default block
   size (``roofline.roof_adam8bit``) and the float Adam roofline loop (28 bytes/element).
   Reported: ``adam_over_adam8bit`` (Adam's median / Adam8bit's, target >= 1.5 at 1e7),
   ``roofline_fraction`` (the 8-bit roofline's median / Adam8bit's, target >= 0.85), and per
   block size the median and its ratio to the default block size's.
2. **State memory** at :data:`MEMORY_SIZE` (1e7, whatever ``size``): the bytes of every slot array
   (``opt.slots``: codes and scales) of ``pyoptim.Adam`` and of ``pyoptim.Adam8bit`` per block
   size, and of ``opt.variables`` (which adds the 8-byte ``iterations``).  Target: Adam8bit's
   slots <= 0.27 of Adam's.
3. **Peers** (a second interleaved cell): ``pyoptim.Adam8bit`` against ``bitsandbytes.optim.Adam8bit``
   and ``torchao.optim.Adam8bit`` on CPU tensors (block size 256 all three), on
   ``ceil(size / 256) * 256`` elements (10,000,128 for 1e7: torchao keeps float32 state for a
   tensor whose size is not a multiple of its block size).  ``peer_over_pyoptim`` = the peer's
   median / pyoptim's; a peer that is not importable, or keeps float state, is recorded
   unavailable with the reason.
"""
from __future__ import annotations

import gc
import inspect
from typing import Any, Callable, Dict, List, Optional, Sequence

import numpy as np

import harness
import impl_8bit
import roofline
from impl_base import Unavailable
from problems import Case, make_data

QUICK_SIZE = 10**5
FULL_SIZE = 10**7
MEMORY_SIZE = 10**7
BLOCK_SIZES = (64, 128, 256, 512, 2048)
PEERS = ("bitsandbytes", "torchao")

ADAM = "pyoptim.Adam"
ROOF8 = "roofline.adam8bit"
ROOF = "roofline.adam"


def default_block_size() -> int:
    """``pyoptim.Adam8bit``'s default ``block_size`` (256 when pyoptim has no Adam8bit)."""
    import pyoptim

    cls = getattr(pyoptim, "Adam8bit", None)
    if cls is None:
        return 256
    return int(inspect.signature(cls).parameters["block_size"].default)


def adam8bit_name(block_size: int) -> str:
    return f"pyoptim.Adam8bit/b{block_size}"


def _bytes_per_step(n: int, block_size: Optional[int]) -> int:
    """Bytes one step moves: float Adam's 28 per element (block_size None) or Adam8bit's."""
    if block_size is None:
        return roofline.bytes_per_element("adam") * n
    return roofline.bytes_per_step_8bit([n], block_size)


def _time_cell(makers: Dict[str, Callable[[], Any]], meta: Dict[str, Dict[str, Any]], *, rounds: int,
               min_sample_s: float, budget_s: float, sample_warmup: int,
               log: Callable[[str], None]) -> Dict[str, Dict[str, Any]]:
    """Make every step (a maker raising Unavailable, or failing, gives a row with the reason),
    time them in one interleaved cell; rows by name."""
    steps: Dict[str, Any] = {}
    rows: Dict[str, Dict[str, Any]] = {}
    for name, make in makers.items():
        row: Dict[str, Any] = {"impl": name, **meta.get(name, {}), "available": False}
        rows[name] = row
        try:
            step, notes = make()
        except Unavailable as e:
            row["reason"] = str(e)
            log(f"  8bit {name}: unavailable: {e}")
            continue
        except Exception as e:  # noqa: BLE001 - a broken implementation must not stop the others
            row["reason"] = f"error: {type(e).__name__}: {e}"
            log(f"  8bit {name}: {row['reason']}")
            continue
        row.update(notes)
        steps[name] = step
    stats = harness.measure_interleaved(steps, rounds=rounds, min_rounds=min(3, rounds), min_sample_s=min_sample_s,
                                        warmup=3, budget_s=budget_s, sample_warmup=sample_warmup)
    for name, st in stats.items():
        row = rows[name]
        row.update(available=True, **st.as_dict())
        if row.get("bytes_per_step"):
            row["gbps"] = row["bytes_per_step"] / st.median_s / 1e9
    return rows


def state_memory(size: int, block_sizes: Sequence[int]) -> Dict[str, Any]:
    """Bytes of optimizer state of pyoptim.Adam and pyoptim.Adam8bit (each block size) for one
    float32 tensor of ``size`` elements, from ``opt.slots`` (every slot array and scale) and
    ``opt.variables`` (the slots plus ``iterations``), after one ``apply``."""
    import pyoptim

    p = np.zeros(size, np.float32)
    g = np.zeros(size, np.float32)
    out: Dict[str, Any] = {"n_elements": size, "rows": {}}
    opts: List[Any] = [("pyoptim.Adam", None, pyoptim.Adam())]
    if hasattr(pyoptim, "Adam8bit"):
        opts += [(adam8bit_name(b), b, pyoptim.Adam8bit(block_size=b)) for b in block_sizes]
    for name, block, opt in opts:
        opt.apply([g], [p])
        per = {k: int(sum(a.nbytes for a in v)) for k, v in opt.slots.items()}
        out["rows"][name] = {"block_size": block, "slot_bytes": sum(per.values()), "slot_bytes_per_slot": per,
                             "variables_bytes": int(sum(v.nbytes for v in opt.variables)),
                             "bytes_per_parameter": sum(per.values()) / size,
                             "model_bytes_per_parameter": 8.0 if block is None else 2 + 8 / block}
        del opt
    adam = out["rows"]["pyoptim.Adam"]["slot_bytes"]
    for row in out["rows"].values():
        row["over_adam"] = row["slot_bytes"] / adam
    del p, g
    gc.collect()
    return out


def run_8bit(size: int, *, threads: int, roof_lib: Any, roof_reason: Optional[str], rounds: int,
             min_sample_s: float, budget_s: float, sample_warmup: int = 1,
             block_sizes: Sequence[int] = BLOCK_SIZES, peers: Sequence[str] = PEERS,
             memory_size: int = MEMORY_SIZE, log: Callable[[str], None] = print) -> Dict[str, Any]:
    """The three measurements of the module docstring; returns the ``adam8bit`` JSON block."""
    default = default_block_size()
    blocks = sorted(set(block_sizes) | {default})
    case = Case(1, size)
    data = make_data(case)
    param, grad = data.params[0], data.grads[0]

    def no_roof() -> Any:
        raise Unavailable(roof_reason or "roofline loop not built")

    makers: Dict[str, Callable[[], Any]] = {ADAM: lambda: impl_8bit.make_pyoptim(param, grad, None)}
    meta: Dict[str, Dict[str, Any]] = {ADAM: {"block_size": None}}
    for b in blocks:
        makers[adam8bit_name(b)] = (lambda b=b: impl_8bit.make_pyoptim(param, grad, b))
        meta[adam8bit_name(b)] = {"block_size": b}
    makers[ROOF8] = ((lambda: impl_8bit.make_roofline(roof_lib, param, grad, default, threads))
                     if roof_lib is not None else no_roof)
    meta[ROOF8] = {"block_size": default}
    makers[ROOF] = ((lambda: impl_8bit.make_roofline(roof_lib, param, grad, None, threads))
                    if roof_lib is not None else no_roof)
    meta[ROOF] = {"block_size": None}
    for name, m in meta.items():
        b = m["block_size"]
        m.update(n_elements=size, bytes_per_step=_bytes_per_step(size, b),
                 bytes_per_element=roofline.bytes_per_element("adam") if b is None
                 else roofline.bytes_per_element_8bit(b))
    rows = _time_cell(makers, meta, rounds=rounds, min_sample_s=min_sample_s, budget_s=budget_s,
                      sample_warmup=sample_warmup, log=log)
    del makers
    gc.collect()

    def med(name: str) -> Optional[float]:
        r = rows.get(name)
        return r["median_s"] if r and r.get("available") else None

    t8, ta, tr8 = med(adam8bit_name(default)), med(ADAM), med(ROOF8)
    for r in rows.values():
        if r.get("available") and t8:
            r["over_adam8bit_default"] = r["median_s"] / t8
    result: Dict[str, Any] = {
        "case": case.label, "n_elements": size, "default_block_size": default, "block_sizes": blocks,
        "hyperparameters": "problems.HYPER['adam'] (Keras' defaults)",
        "bytes_per_element": {"adam": roofline.bytes_per_element("adam"),
                              "adam8bit": {str(b): roofline.bytes_per_element_8bit(b) for b in blocks}},
        "rows": list(rows.values()),
        "adam_over_adam8bit": ta / t8 if ta and t8 else None,
        "roofline_fraction": tr8 / t8 if tr8 and t8 else None,
        "block_size_over_default": {str(b): (med(adam8bit_name(b)) / t8 if med(adam8bit_name(b)) and t8 else None)
                                    for b in blocks},
    }
    shown = ", ".join(f"{n} {r['median_s'] * 1e3:.2f} ms" for n, r in rows.items() if r.get("available"))
    log(f"  8bit {case.label:>5s}: {shown}")

    result["memory"] = state_memory(memory_size, blocks)
    mem = result["memory"]["rows"]
    d = mem.get(adam8bit_name(default))
    result["state_over_adam"] = d["over_adam"] if d else None
    log(f"  8bit state bytes at {memory_size:.0e}: " + ", ".join(f"{n} {r['slot_bytes']:,}" for n, r in mem.items()))

    if peers:
        result["peers"] = run_peers(size, peers, threads=threads, default=default, rounds=rounds,
                                    min_sample_s=min_sample_s, budget_s=budget_s, sample_warmup=sample_warmup,
                                    log=log)
    else:
        result["peers"] = None
    return result


def peer_size(size: int) -> int:
    """The peers' tensor: ``size`` rounded up to a multiple of their block size (256)."""
    b = impl_8bit.PEER_BLOCK_SIZE
    return -(-size // b) * b


def run_peers(size: int, peers: Sequence[str], *, threads: int, default: int, rounds: int, min_sample_s: float,
              budget_s: float, sample_warmup: int, log: Callable[[str], None]) -> Dict[str, Any]:
    n = peer_size(size)
    data = make_data(Case(1, n))
    param, grad = data.params[0], data.grads[0]
    ours = "pyoptim.Adam8bit"
    makers: Dict[str, Callable[[], Any]] = {
        ours: lambda: impl_8bit.make_pyoptim(param, grad, impl_8bit.PEER_BLOCK_SIZE)}
    peer_makers = {"bitsandbytes": lambda: impl_8bit.make_bitsandbytes(param, grad, threads),
                   "torchao": lambda: impl_8bit.make_torchao(param, grad, threads)}
    impl_names = {"bitsandbytes": "bitsandbytes.optim.Adam8bit", "torchao": "torchao.optim.Adam8bit"}
    for p in peers:
        makers[impl_names[p]] = peer_makers[p]
    meta = {name: {"n_elements": n, "block_size": impl_8bit.PEER_BLOCK_SIZE,
                   "bytes_per_step": roofline.bytes_per_step_8bit([n], impl_8bit.PEER_BLOCK_SIZE)} for name in makers}
    rows = _time_cell(makers, meta, rounds=rounds, min_sample_s=min_sample_s, budget_s=budget_s,
                      sample_warmup=sample_warmup, log=log)
    del makers, peer_makers
    gc.collect()
    mine = rows[ours]
    ratios: Dict[str, Optional[float]] = {}
    for p in peers:
        r = rows[impl_names[p]]
        ratios[p] = r["median_s"] / mine["median_s"] if r.get("available") and mine.get("available") else None
        shown = f"{ratios[p]:.2f}x" if ratios[p] is not None else f"not measured ({r.get('reason')})"
        log(f"  8bit peer {p:<12s} {shown}")
    return {"n_elements": n, "block_size": impl_8bit.PEER_BLOCK_SIZE,
            "note": f"{n} = ceil({size} / 256) * 256 elements: torchao keeps float32 state unless the size is a "
                    "multiple of its block size",
            "rows": list(rows.values()), "peer_over_pyoptim": ratios}
