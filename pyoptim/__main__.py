"""``python -m pyoptim`` and the ``pyoptim`` console script (logic in :mod:`pyoptim.trace.cli`)."""
import sys

from pyoptim.trace.cli import main

if __name__ == "__main__":
    sys.exit(main())
