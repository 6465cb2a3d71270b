"""What this build of pyoptim is and what it runs on."""
from __future__ import annotations

import platform
from typing import Any, Dict

from . import _core


def config() -> Dict[str, Any]:
    """Version, instruction sets (built / run by this CPU / in use), threads, the element-wise
    kernels (``_core.elementwise_kernels()``: Lion, Adamax, Nadam, ...), flags (the kernels'
    and each instruction set's, ``isa_flags``: name -> flags, as CMakeLists.txt sets them)."""
    from . import __version__

    info = _core._build_info()
    return {
        "version": __version__,
        "isa": _core.get_isa(),
        "isas_built": [x["name"] for x in info["isas"]],
        "isas_supported": [x["name"] for x in info["isas"] if x["supported"]],
        "openmp": info["openmp"],
        "num_threads": _core.get_num_threads(),
        "parallel_min_elements": info["parallel_min_elements"],
        "elementwise_kernels": [k["name"] for k in info["elementwise_kernels"]],
        "compiler": info["compiler"],
        "kernel_flags": info["kernel_flags"],
        "isa_flags": dict(entry.split("=", 1) for entry in info["isa_flags"].split("|")),
        "machine": platform.machine(),
        "python": platform.python_version(),
    }


def show_config() -> None:
    """Print :func:`config` as ``key: value`` lines."""
    for key, value in config().items():
        if isinstance(value, list):
            value = ", ".join(value)
        print(f"{key}: {value}")
