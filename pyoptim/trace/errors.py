"""The exceptions the trace command turns into one error line: bad input (exit 2) and a
failed self-check of the numbers it is about to report (exit 1)."""
from __future__ import annotations


class TraceInputError(ValueError):
    """Bad input to ``pyoptim trace`` (file, flag value, data).  The command prints
    ``pyoptim trace: error: <message>`` on stderr and exits with status 2."""


class TraceCheckError(RuntimeError):
    """A number the trace computed disagrees with the model it describes (e.g. the
    prediction trace against ``model.predict``).  The command prints
    ``pyoptim trace: error: <message>`` on stderr and exits with status 1, reporting nothing
    it could not confirm."""
