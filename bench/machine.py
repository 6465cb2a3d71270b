"""What the benchmark ran on: CPU, memory, load, versions, environment, pyoptim's build."""
from __future__ import annotations

import datetime as _dt
import os
import platform
import subprocess
import sys
from importlib import metadata
from typing import Any, Dict, Optional

#: Environment variables that change what a benchmark measures.
ENV_VARS = ("OMP_NUM_THREADS", "OMP_PROC_BIND", "OMP_PLACES", "OMP_WAIT_POLICY", "GOMP_SPINCOUNT",
            "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE",
            "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS", "TF_ENABLE_ONEDNN_OPTS", "PYOPTIM_ISA",
            "TORCHINDUCTOR_COMPILE_THREADS")

PACKAGES = ("numpy", "tensorflow", "tensorflow-cpu", "keras", "torch", "matplotlib", "bitsandbytes", "torchao")


def _cpuinfo() -> Dict[str, Any]:
    info: Dict[str, Any] = {}
    try:
        with open("/proc/cpuinfo") as f:
            text = f.read()
        for line in text.splitlines():
            if ":" not in line:
                continue
            key, value = (x.strip() for x in line.split(":", 1))
            if key == "model name" and "model" not in info:
                info["model"] = value
            elif key == "flags" and "flags" not in info:
                flags = set(value.split())
                info["simd"] = [f for f in ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512vl")
                                if f in flags]
            elif key == "cpu MHz" and "mhz" not in info:
                info["mhz"] = float(value)
    except OSError:
        pass
    if "model" not in info:
        info["model"] = platform.processor() or platform.machine()
    return info


def _lscpu() -> Dict[str, str]:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return {}
    keep = ("Model name", "Socket(s)", "Core(s) per socket", "Thread(s) per core", "L1d cache", "L2 cache",
            "L3 cache", "NUMA node(s)", "Hypervisor vendor")
    d = {}
    for line in out.splitlines():
        if ":" in line:
            k, v = (x.strip() for x in line.split(":", 1))
            if k in keep:
                d[k] = v
    return d


def _memory_bytes() -> Optional[int]:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def _version(pkg: str) -> Optional[str]:
    try:
        return metadata.version(pkg)
    except metadata.PackageNotFoundError:
        return None


def _git_commit() -> Optional[str]:
    here = os.path.dirname(os.path.abspath(__file__))
    try:
        proc = subprocess.run(["git", "-C", here, "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return proc.stdout.strip() or None


def load_average() -> Optional[list]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def machine_info() -> Dict[str, Any]:
    """CPU model and features, cores, memory, OS, Python, package versions, the
    relevant environment variables, load average, pyoptim's build configuration."""
    cpu = _cpuinfo()
    try:
        import pyoptim.config

        pyoptim_config: Any = pyoptim.config.config()
        pyoptim_file = pyoptim.__file__
    except Exception as e:  # report, the benchmark itself will fail loudly later
        pyoptim_config, pyoptim_file = f"error: {type(e).__name__}: {e}", None
    try:
        affinity = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        affinity = None
    return {
        "date": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "cpu_model": cpu.get("model"),
        "cpu_simd": cpu.get("simd"),
        "cpu_mhz": cpu.get("mhz"),
        "lscpu": _lscpu(),
        "logical_cpus": os.cpu_count(),
        "usable_cpus": affinity,
        "memory_bytes": _memory_bytes(),
        "os": platform.platform(),
        "python": sys.version.split()[0],
        "python_executable": sys.executable,
        "packages": {p: _version(p) for p in PACKAGES},
        "env": {k: os.environ.get(k) for k in ENV_VARS},
        "load_average_start": load_average(),
        "pyoptim": pyoptim_config,
        "pyoptim_file": pyoptim_file,
        "git_commit": _git_commit(),
    }
