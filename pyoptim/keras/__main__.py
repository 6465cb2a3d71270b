"""``python -m pyoptim.keras build [--force] [--verbose]``: compile the TensorFlow op ahead of time.
``python -m pyoptim.keras status``: print which path the Keras optimizers will take."""
from __future__ import annotations

import argparse
import sys
from typing import List, Optional


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pyoptim.keras")
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="compile the TensorFlow op for the installed TensorFlow")
    b.add_argument("--force", action="store_true", help="rebuild even if cached")
    b.add_argument("--verbose", action="store_true", help="print the compiler command")
    sub.add_parser("status", help="print whether the fast path is available, and why not")
    args = parser.parse_args(argv)

    import pyoptim.keras as pk
    from pyoptim.keras import _build

    if args.command == "build":
        try:
            path = pk.build(force=args.force, verbose=args.verbose)
        except _build.BuildError as exc:
            print(exc.log or exc, file=sys.stderr)
            return 1
        print(path)
        if not pk.fast_path_available():
            print(pk.status()["error"], file=sys.stderr)
            return 1
        return 0
    status = pk.status()
    log = status.pop("build_log")
    for key, value in status.items():
        print(f"{key}: {value}")
    if log and log != status["error"]:
        print("build_log:")
        print(log)
    return 0 if pk.fast_path_available() else 1


if __name__ == "__main__":
    sys.exit(main())
