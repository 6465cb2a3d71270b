"""Import Keras/TensorFlow quietly, once, with a clear error when it is missing.

TensorFlow 2.21 logs "oneDNN custom operations are on ..." (an INFO line of
``tensorflow/core/util/port.cc``) while it is imported, through absl before absl's
logging is initialised, so ``TF_CPP_MIN_LOG_LEVEL`` does not filter it (measured: the line
appears even with ``TF_CPP_MIN_LOG_LEVEL=3`` set before Python starts).  It appears twice
because two of TensorFlow's shared libraries each contain ``port.cc`` with its own
log-once flag: ``libtensorflow_framework.so.2`` (loaded first) and
``python/profiler/internal/_pywrap_profiler_plugin.so`` (loaded later in ``import
tensorflow``).  :func:`import_keras` therefore captures file descriptor 2 during the
import and writes back what TensorFlow's own setting lets through: with
``TF_CPP_MIN_LOG_LEVEL`` unset it sets it to 2 (warnings and INFO dropped) as before; log
lines (``I0000 ...``, ``W0000 ...``) below the level are dropped, absl's "All log messages
before absl::InitializeLog()" notice goes with them, a line repeated word for word after
its timestamp is written once, and anything else is written back unchanged."""
from __future__ import annotations

import os
import re
import sys
import tempfile
from types import ModuleType
from typing import List

from .errors import TraceInputError

#: absl/TensorFlow log line: severity letter, MMDD, time, thread, file:line] message.
_LOG_LINE = re.compile(r"^([IWEF])\d{4} [\d:.]+\s+\d+ ([^\]]+\] .*)$")
_ABSL_NOTICE = "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR"
_SEVERITY = {"I": 0, "W": 1, "E": 2, "F": 3}


class MissingDependencyError(TraceInputError):
    """TensorFlow or matplotlib is not installed."""


def filter_import_log(text: str, min_level: int) -> str:
    """What of ``text`` (stderr during ``import tensorflow``) to show at ``TF_CPP_MIN_LOG_LEVEL``
    = ``min_level``: log lines of a lower severity dropped, a log message repeated (same
    file:line and text, another timestamp) shown once, absl's notice once and only before a
    log line that is shown; other lines unchanged."""
    kept: List[str] = []
    seen = set()
    notice_pending = False
    for line in text.splitlines():
        if line == _ABSL_NOTICE:
            notice_pending = True
            continue
        match = _LOG_LINE.match(line)
        if match:
            if _SEVERITY[match.group(1)] < min_level or match.group(2) in seen:
                continue
            seen.add(match.group(2))
            if notice_pending and not any(k == _ABSL_NOTICE for k in kept):
                kept.append(_ABSL_NOTICE)
            notice_pending = False
        kept.append(line)
    return "".join(line + "\n" for line in kept)


def _min_log_level() -> int:
    try:
        return int(os.environ.get("TF_CPP_MIN_LOG_LEVEL", "0"))
    except ValueError:
        return 0


def import_keras() -> ModuleType:
    """``import keras`` (and TensorFlow) with TensorFlow's import-time log filtered as the
    module docstring says (TF_CPP_MIN_LOG_LEVEL=2 unless the user set it)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if "tensorflow" in sys.modules and "keras" in sys.modules:
        return sys.modules["keras"]
    sys.stderr.flush()
    saved = os.dup(2)
    captured = tempfile.TemporaryFile(mode="w+b")
    try:
        os.dup2(captured.fileno(), 2)
        try:
            import keras
            import tensorflow  # noqa: F401  (the backend pyoptim.keras runs on)
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            text = captured.read().decode("utf-8", "replace")
            captured.close()
            sys.stderr.write(filter_import_log(text, _min_log_level()))
            sys.stderr.flush()
    except ImportError as exc:
        raise MissingDependencyError(
            f"pyoptim trace needs TensorFlow/Keras ({exc}); install it with: pip install 'pyoptim[trace]'"
        ) from None
    return keras
