"""The one exception the trace command turns into an error line and exit code 2."""
from __future__ import annotations


class TraceInputError(ValueError):
    """Bad input to ``pyoptim trace`` (file, flag value, data).  The command prints
    ``pyoptim trace: error: <message>`` on stderr and exits with status 2."""
