"""The interface every benchmarked implementation follows."""
from __future__ import annotations

from typing import Callable, Dict, Optional

from problems import Case, Data

Step = Callable[[], object]


class Unavailable(Exception):
    """This implementation cannot run this cell (missing package, unsupported option)."""


class Impl:
    """One implementation of an optimizer step.

    ``name`` is the label in tables, JSON and plots; ``group`` says which library it
    belongs to; ``make`` builds the arrays/variables of one cell from ``data`` (its
    own copies) and returns a zero-argument function that runs one optimizer step
    over all tensors of the cell.
    """

    name: str = ""
    group: str = ""
    description: str = ""

    def __init__(self) -> None:
        self.reason: Optional[str] = None  # why it is unavailable everywhere, if it is

    def setup(self) -> None:
        """Import what is needed; set ``self.reason`` when it cannot run at all."""

    def make(self, optimizer: str, case: Case, data: Data) -> Step:
        raise NotImplementedError

    def info(self) -> Dict[str, object]:
        return {"group": self.group, "description": self.description,
                "available": self.reason is None, "reason": self.reason}
