"""Compiles the TensorFlow custom op (``_op/pyoptim_tf_ops.cc``) against the installed TensorFlow.

The op is tied to the C++ ABI of the TensorFlow it is built against, so it is built on the user's
machine: on first use, or ahead of time with ``python -m pyoptim.keras build``.  The result is cached
in ``$PYOPTIM_CACHE_DIR`` (default ``$XDG_CACHE_HOME/pyoptim`` or ``~/.cache/pyoptim``) under a
name holding the TensorFlow version, the instruction set and a hash of everything that goes into
the build (source, kernel headers, flags, compiler), so a change to any of them rebuilds.

Two processes building at once are safe: a file lock serialises them, and the library is written to
a temporary file and renamed into place (an atomic step), so nobody ever loads a half-written file.
A failed build is remembered beside it (``<name>.failed``, the error and the compiler's output), so
later processes report it without compiling again; ``build(force=True)`` (``python -m pyoptim.keras
build --force``) tries again.

Flags: TensorFlow's own (``tf.sysconfig.get_compile_flags()`` / ``get_link_flags()``), C++17,
the NumPy core's kernel flags (``-O3 -ffp-contract=off -fno-math-errno -fno-trapping-math``; never
``-ffast-math``: results must equal Keras' to the bit) and the vector instruction set the NumPy core uses on this CPU (``pyoptim.get_isa()``).
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Dict, List, Optional

import pyoptim

_SOURCE = Path(__file__).resolve().parent / "_op" / "pyoptim_tf_ops.cc"

# What TensorFlow's headers demand beyond the NumPy core's per-instruction-set flags (written
# once, in CMakeLists.txt; :func:`isa_flags`): its Eigen refuses -mavx512f without -mfma
# ("compiling with -mavx512f alone without SSE/AVX FMA is not supported", Eigen bug 1638).
# -mfma only allows FMA instructions; with -ffp-contract=off (below) the compiler never fuses a
# multiply and an add of ours into one, so the kernels round exactly as without it
# (tests/test_portable.py disassembles them to check).
_TF_EXTRA_FLAGS: Dict[str, List[str]] = {"avx512": ["-mfma"]}


def kernel_flags() -> List[str]:
    """The kernels' compiler flags: the NumPy core's (CMakeLists.txt, through
    ``pyoptim.config.config()["kernel_flags"]``: ``-O3 -ffp-contract=off -fno-math-errno
    -fno-trapping-math -fopenmp-simd``) and ``-DNDEBUG``."""
    return pyoptim.config.config()["kernel_flags"].split() + ["-DNDEBUG"]


_thread_lock = threading.Lock()


class BuildError(RuntimeError):
    """The op could not be compiled.  ``str(error)`` says in one line what failed and what to do;
    ``error.log`` holds the command and the compiler's whole output."""

    def __init__(self, message: str, log: str = "") -> None:
        super().__init__(message)
        self.log = log


def _first_error(output: str) -> str:
    """The compiler's first error line, without the directories of its file name."""
    lines = output.splitlines()
    for line in lines:
        match = re.search(r"(?:^|: )(?:fatal )?error: ", line)
        if match:
            head, sep, rest = line.partition(": ")
            return (os.path.basename(head) + sep + rest).strip() if match.start() else line.strip()
    return next((line.strip() for line in reversed(lines) if line.strip()), "no output")


def cache_dir() -> Path:
    """Where built ops are kept: ``$PYOPTIM_CACHE_DIR``, else ``$XDG_CACHE_HOME/pyoptim``, else
    ``~/.cache/pyoptim`` (``<tmp>/pyoptim-cache-<uid>`` when that cannot be written)."""
    env = os.environ.get("PYOPTIM_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    path = base / "pyoptim"
    try:
        path.mkdir(parents=True, exist_ok=True)
        if os.access(path, os.W_OK):
            return path
    except OSError:
        pass
    # A read-only home: a per-user directory under the system's temporary directory.
    uid = os.getuid() if hasattr(os, "getuid") else "user"
    return Path(tempfile.gettempdir()) / f"pyoptim-cache-{uid}"


def include_dir() -> Path:
    """Directory holding ``pyoptim/{sgd,rmsprop,adam}.hpp``: the headers installed with the package,
    or ``csrc/`` when running from a source checkout."""
    package = Path(pyoptim.__file__).resolve().parent
    for candidate in (package / "include", package.parent / "csrc"):
        if (candidate / "pyoptim" / "adam.hpp").is_file():
            return candidate
    raise BuildError(
        "pyoptim.keras: cannot find the kernel headers (pyoptim/adam.hpp) in "
        f"{package / 'include'} or {package.parent / 'csrc'}; reinstall pyoptim"
    )


def isa_flags(isa: str) -> List[str]:
    """The compiler flags of instruction set ``isa``: the NumPy core's (CMakeLists.txt, through
    ``pyoptim.config.config()["isa_flags"]``) and what TensorFlow's headers add to them."""
    return pyoptim.config.config()["isa_flags"][isa].split() + _TF_EXTRA_FLAGS.get(isa, [])


def targetable_isas() -> List[str]:
    """Instruction sets the op can be compiled for here, whether or not this CPU can run them:
    those the NumPy core was built with (baseline, avx2, avx512 on x86-64; baseline elsewhere)."""
    return list(pyoptim.config.config()["isas_built"])


def selected_isa() -> str:
    """Instruction set to compile for: the one the NumPy core runs on this CPU (it honours
    ``PYOPTIM_ISA`` and ``pyoptim.set_isa``), when this machine is x86-64; else ``baseline``."""
    isa = pyoptim.get_isa()
    return isa if isa in targetable_isas() else "baseline"


def compiler() -> List[str]:
    """The C++ compiler command: ``$CXX`` if set, else ``g++`` or ``c++``."""
    cxx = os.environ.get("CXX")
    if cxx:
        return shlex.split(cxx)
    for name in ("g++", "c++"):
        if shutil.which(name):
            return [name]
    raise BuildError("pyoptim.keras: no C++ compiler found (set CXX, or install g++)")


def _compiler_version(cxx: List[str]) -> str:
    try:
        out = subprocess.run(cxx + ["--version"], capture_output=True, text=True, timeout=60)
        return out.stdout.splitlines()[0] if out.stdout else ""
    except (OSError, subprocess.SubprocessError):
        return ""


def command(isa: str, output: Path) -> List[str]:
    """The compiler command that builds the op for ``isa`` into ``output``."""
    import tensorflow as tf

    cxx = compiler()
    return (
        cxx
        + ["-shared", "-fPIC", "-w"]
        + kernel_flags()
        + isa_flags(isa)
        # A namespace of its own for the kernel copies in this library (see common.hpp).
        + [f"-DPYOPTIM_ISA=pyoptim_tf_{isa}", f"-I{include_dir()}"]
        + list(tf.sysconfig.get_compile_flags())
        + [str(_SOURCE), "-o", str(output)]
        + list(tf.sysconfig.get_link_flags())
    )


def library_path(isa: Optional[str] = None) -> Path:
    """Path the op for this TensorFlow, instruction set and source lives at (built or not)."""
    import tensorflow as tf

    isa = isa or selected_isa()
    digest = hashlib.sha256()
    for own in sorted(_SOURCE.parent.iterdir()):
        if own.suffix in (".cc", ".hpp", ".h"):
            digest.update(own.name.encode())
            digest.update(own.read_bytes())
    for header in sorted((include_dir() / "pyoptim").glob("*.hpp")):  # every kernel header
        digest.update(header.name.encode())
        digest.update(header.read_bytes())
    cmd = command(isa, Path("OUT"))
    digest.update("\0".join(cmd).encode())
    digest.update(_compiler_version(compiler()).encode())
    digest.update(tf.__version__.encode())
    digest.update(tf.__file__.encode())
    version = tf.__version__.replace("/", "_")
    return cache_dir() / f"pyoptim_tf_ops-tf{version}-{isa}-{digest.hexdigest()[:16]}.so"


class _FileLock:
    """An exclusive advisory lock on ``path`` (fcntl); a no-op where fcntl does not exist."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._fd: Optional[int] = None

    def __enter__(self) -> "_FileLock":
        self._fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            import fcntl

            fcntl.flock(self._fd, fcntl.LOCK_EX)
        except ImportError:  # pragma: no cover - not POSIX
            pass
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._fd is not None
        try:
            import fcntl

            fcntl.flock(self._fd, fcntl.LOCK_UN)
        except ImportError:  # pragma: no cover
            pass
        os.close(self._fd)
        self._fd = None


def compile_to(isa: str, output: Path) -> None:
    """Run :func:`command`; raises :class:`BuildError` (one-line message, whole output in
    ``.log``) when the compiler fails or cannot be started."""
    cmd = command(isa, output)
    quoted = " ".join(shlex.quote(c) for c in cmd)
    try:
        result = subprocess.run(cmd, capture_output=True, text=True)
    except OSError as exc:
        raise BuildError(f"cannot run the C++ compiler {cmd[0]!r} ({exc}); install g++ or set CXX",
                         f"command: {quoted}\n{exc}") from None
    if result.returncode != 0:
        output = (result.stderr or "") + (result.stdout or "")
        fallback = "" if isa == "baseline" else "; PYOPTIM_ISA=baseline builds without vector flags"
        raise BuildError(
            f"compiling the TensorFlow op ({isa}) failed: {_first_error(output)[:300]}; "
            f"`python -m pyoptim.keras status` shows the compiler's output{fallback}",
            f"command: {quoted}\n{output}",
        )


def build(force: bool = False, verbose: bool = False) -> Path:
    """Compile the op if it is not cached yet (or ``force``), and return the library's path.

    Raises :class:`BuildError` when compilation fails, or failed before under the same key
    (unless ``force``)."""
    isa = selected_isa()
    target = library_path(isa)
    failure = target.with_suffix(".failed")
    with _thread_lock:
        if target.is_file() and not force:
            return target
        if not force:
            _raise_remembered(failure)
        target.parent.mkdir(parents=True, exist_ok=True)
        with _FileLock(target.with_suffix(".lock")):
            # Another process may have finished the build while we waited for the lock.
            if target.is_file() and not force:
                return target
            if not force:
                _raise_remembered(failure)
            fd, tmp_name = tempfile.mkstemp(prefix=target.stem + ".", suffix=".tmp",
                                            dir=target.parent)
            os.close(fd)
            tmp = Path(tmp_name)
            cmd = command(isa, tmp)
            print(
                f"pyoptim.keras: compiling the TensorFlow op for this TensorFlow ({isa}); "
                f"once, cached in {target.parent}",
                file=sys.stderr,
            )
            if verbose:
                print(" ".join(shlex.quote(c) for c in cmd), file=sys.stderr)
            try:
                compile_to(isa, tmp)
                os.chmod(tmp, 0o755)
                os.replace(tmp, target)  # atomic: readers see no file or the whole file
            except BuildError as exc:
                # Remembered under the same key as the library (TensorFlow, flags, sources,
                # compiler), so that later processes do not run the compiler again for nothing.
                failure.write_text(json.dumps({"message": str(exc), "log": exc.log}))
                raise
            finally:
                if tmp.exists():
                    tmp.unlink()
            if failure.exists():
                failure.unlink()
    return target


def _raise_remembered(failure: Path) -> None:
    """Raise the build error recorded in ``failure`` by an earlier process, if there is one."""
    try:
        record = json.loads(failure.read_text())
    except (OSError, ValueError):
        return
    raise BuildError(f"{record['message']} (remembered from an earlier attempt; "
                     "`python -m pyoptim.keras build --force` tries again)", record.get("log", ""))
