"""What every pyoptim.keras optimizer reports, on any Keras backend: which update ran
(``path_counts()``), why not the kernels (a warning, once), and a readable ``repr``.

No TensorFlow here: this module serves the TensorFlow optimizers (``optimizers.py``) and the
other backends' (``native.py``) alike.
"""
from __future__ import annotations

import dataclasses
import inspect
from typing import Any, Dict, Optional, Tuple

from ._warn import warn_once


@dataclasses.dataclass
class PathStats:
    """How many ``update_step`` calls took each path.  In graph mode (``tf.function``,
    ``jax.jit``) that is one per variable per trace, in eager mode one per variable per step."""

    fast: int = 0
    fallback: int = 0
    reasons: Dict[str, int] = dataclasses.field(default_factory=dict)


class ReportingMixin:
    """``path_counts()``, the fallback bookkeeping and ``repr`` of pyoptim.keras optimizers."""

    def _pyoptim_stats(self) -> PathStats:
        stats = self.__dict__.get("_pyoptim_path_stats")
        if stats is None:
            stats = PathStats()
            # Bypass Keras' attribute tracking: this is bookkeeping, not optimizer state.
            object.__setattr__(self, "_pyoptim_path_stats", stats)
        return stats

    def path_counts(self) -> Dict[str, Any]:
        """``{"fast": n, "fallback": n, "reasons": {reason: n}}``: how many ``update_step`` calls
        ran pyoptim's kernel and how many ran Keras' code, and why.  Counted when the update is
        built: once per variable per trace under ``tf.function`` (or ``jax.jit``), once per step
        in eager mode.  :func:`pyoptim.keras.kernel_calls` counts kernel executions."""
        s = self._pyoptim_stats()
        return {"fast": s.fast, "fallback": s.fallback, "reasons": dict(s.reasons)}

    def _fallback(self, reason: str, variable: Optional[str] = None, count: int = 1,
                  warning_key: Optional[Tuple[str, str]] = None) -> None:
        """Record ``count`` updates that run Keras' code because of ``reason`` and warn once
        (per ``warning_key``, see :func:`warn_once`)."""
        s = self._pyoptim_stats()
        s.fallback += count
        s.reasons[reason] = s.reasons.get(reason, 0) + count
        warn_once(type(self).__name__, reason, variable, warning_key)

    def __repr__(self) -> str:
        """``pyoptim.keras.Adam(learning_rate=0.001, amsgrad=True)``: the learning rate and every
        argument of ``get_config()`` that differs from the constructor's default."""
        defaults = {name: p.default for name, p in inspect.signature(type(self)).parameters.items()
                    if p.default is not inspect.Parameter.empty}
        parts = []
        for key, value in self.get_config().items():  # type: ignore[attr-defined]
            if key != "learning_rate" and (key not in defaults or value == defaults[key]):
                continue
            if isinstance(value, float):
                shown = f"{value:.7g}"  # float32 values without their float64 tail
            elif isinstance(value, dict) and "class_name" in value:
                shown = f"<{value['class_name']}>"  # a serialised schedule
            else:
                shown = repr(value)
            parts.append(f"{key}={shown}")
        return f"pyoptim.keras.{type(self).__name__}({', '.join(parts)})"
