"""Where a ``model.fit`` step's time goes, from TensorFlow's own profiler (no TensorBoard needed):
``tf.profiler.experimental`` records an XSpace (``*.xplane.pb``), read here with the protobuf
classes TensorFlow ships (``tensorflow.tsl.profiler.protobuf.xplane_pb2``).

:func:`profile_fit` runs ``model.fit`` under the profiler and returns, per step, the wall time
of the compiled train function and the time each op type ran on TensorFlow's compute threads
(events named ``<op name>:<op type>``, not the executor's own ``Class::Method`` events; an op
that splits its work over the thread pool counts once, with the wall time of its ``Compute``).
"""
from __future__ import annotations

import collections
import glob
import tempfile
from typing import Any, Dict, List, Tuple


def _read_xspace(path: str) -> Any:
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    space = xplane_pb2.XSpace()
    with open(path, "rb") as f:
        space.ParseFromString(f.read())
    return space


def record_fit(model: Any, x: Any, y: Any, batch_size: int, epochs: int) -> Any:
    """``model.fit(x, y, batch_size, epochs)`` (already compiled and traced) under the profiler;
    returns the XSpace it recorded."""
    import tensorflow as tf

    logdir = tempfile.mkdtemp(prefix="pyoptim-profile-")
    tf.profiler.experimental.start(logdir)
    try:
        model.fit(x, y, batch_size=batch_size, epochs=epochs, verbose=0, shuffle=False)
    finally:
        tf.profiler.experimental.stop()
    return _read_xspace(sorted(glob.glob(f"{logdir}/**/*.xplane.pb", recursive=True))[-1])


def events(space: Any) -> Tuple[List[Tuple[int, int]], List[Tuple[int, int, str]]]:
    """``space``'s train function calls, ``(start, end)``, and its ops on TensorFlow's compute
    threads, ``(start, end, "<op name>:<op type>")``, in picoseconds, each list sorted."""
    calls, ops = [], []
    for plane in space.planes:
        names = plane.event_metadata
        for line in plane.lines:
            for event in line.events:
                name = names[event.metadata_id].name
                start = line.timestamp_ns * 1000 + event.offset_ps
                end = start + event.duration_ps
                if line.name.startswith("tf_Compute") and ":" in name and "::" not in name:
                    ops.append((start, end, name))
                elif name.startswith("EagerLocalExecute: __inference_multi_step_on_iterator"):
                    calls.append((start, end))
    return sorted(calls), sorted(ops)


def profile_fit(model: Any, x: Any, y: Any, batch_size: int, epochs: int = 2) -> Dict[str, Any]:
    """``model.fit(x, y, batch_size, epochs)`` (already compiled and traced) under the profiler.

    Returns ``{"steps": n, "train_function_ms": per step, "op_ms": {op type: ms per step}}``."""
    calls, ops = events(record_fit(model, x, y, batch_size, epochs))
    steps = epochs * -(-len(x) // batch_size)
    op_ps: Dict[str, int] = collections.Counter()
    for start, end, name in ops:
        op_ps[name.rsplit(":", 1)[1]] += end - start
    function_ps = sum(end - start for start, end in calls)
    per_step = lambda ps: ps / 1e9 / steps  # noqa: E731  (picoseconds -> ms per step)
    return {"steps": steps, "train_function_ms": per_step(function_ps),
            "op_ms": {op: per_step(ps) for op, ps in sorted(op_ps.items(), key=lambda kv: -kv[1])}}
