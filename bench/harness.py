"""Interleaved timing of several implementations of the same step.

Method (the same for every implementation of one benchmark cell):

1. Warm-up: each implementation runs ``warmup`` untimed steps; a few more give an
   estimate ``t_est`` of one step's time.
2. Batching: a *sample* times ``k = ceil(min_sample_s / t_est)`` consecutive steps
   (at least 1) with ``time.perf_counter``; the sample's value is its time / k.  Small
   steps are thus timed in batches long enough for the clock's resolution.
3. A/B interleaving: one *round* takes one sample of every implementation, in an order
   that rotates from round to round; slow drift of the machine (other processes,
   frequency, thermal) therefore hits every implementation alike instead of whichever
   happened to run during a busy spell.  Each timed sample is preceded by
   ``sample_warmup`` untimed samples (the same ``k`` steps) of the same implementation
   (default 1), so that it measures the implementation in its steady state, as in a
   training loop, and not in the state the previous implementation left behind: another
   runtime's worker threads still spinning on the cores (OpenMP spins for milliseconds
   after a parallel region), its own thread pool asleep, its arrays out of cache.
4. Rounds continue until ``rounds`` are done or the cell's time budget is spent (but
   at least ``min_rounds``).
5. Statistics per implementation: median, quartiles, interquartile range (IQR), min.
"""
from __future__ import annotations

import math
import statistics
import time
from dataclasses import asdict, dataclass
from typing import Callable, Dict, List, Mapping, Optional, Sequence

Step = Callable[[], object]


@dataclass
class Stats:
    """Per-step time statistics (seconds) of one implementation in one cell."""

    median_s: float
    q1_s: float
    q3_s: float
    iqr_s: float
    min_s: float
    max_s: float
    samples: int
    steps_per_sample: int

    def as_dict(self) -> Dict[str, float]:
        return asdict(self)


def quartiles(values: Sequence[float]) -> tuple:
    """(q1, median, q3) with linear interpolation between order statistics
    (``statistics.quantiles(..., method='inclusive')``); one value gives it thrice."""
    xs = sorted(values)
    if len(xs) == 1:
        return xs[0], xs[0], xs[0]
    q1, q2, q3 = statistics.quantiles(xs, n=4, method="inclusive")
    return q1, q2, q3


def summarize(values: Sequence[float], steps_per_sample: int) -> Stats:
    """Median, quartiles, IQR, min and max of per-step times."""
    q1, med, q3 = quartiles(values)
    return Stats(med, q1, q3, q3 - q1, min(values), max(values), len(values), steps_per_sample)


def _time_steps(step: Step, k: int) -> float:
    t0 = time.perf_counter()
    for _ in range(k):
        step()
    return (time.perf_counter() - t0) / k


def estimate_step_time(step: Step, warmup: int, probe_s: float = 0.002) -> float:
    """Run ``warmup`` untimed steps, then time steps until ``probe_s`` has passed
    (at least 3); return the median of those single-step times."""
    for _ in range(warmup):
        step()
    times: List[float] = []
    t_end = time.perf_counter() + probe_s
    while len(times) < 3 or (time.perf_counter() < t_end and len(times) < 1000):
        times.append(_time_steps(step, 1))
    return statistics.median(times)


def measure_interleaved(
    steps: Mapping[str, Step],
    *,
    rounds: int,
    min_rounds: int = 3,
    min_sample_s: float = 0.002,
    warmup: int = 3,
    budget_s: Optional[float] = None,
    settle_s: float = 0.0,
    sample_warmup: int = 1,
) -> Dict[str, Stats]:
    """Time every step function of ``steps`` with warm-up, batching and round-robin
    interleaving (see the module docstring).  Returns per-step statistics by name."""
    names = list(steps)
    if not names:
        return {}
    batch: Dict[str, int] = {}
    for name in names:
        t_est = estimate_step_time(steps[name], warmup)
        batch[name] = max(1, math.ceil(min_sample_s / max(t_est, 1e-9)))
    samples: Dict[str, List[float]] = {name: [] for name in names}
    t_start = time.perf_counter()
    for r in range(rounds):
        order = names[r % len(names):] + names[: r % len(names)]
        for name in order:
            if settle_s > 0:
                time.sleep(settle_s)
            for _ in range(sample_warmup * batch[name]):
                steps[name]()
            samples[name].append(_time_steps(steps[name], batch[name]))
        if budget_s is not None and r + 1 >= min_rounds and time.perf_counter() - t_start > budget_s:
            break
    return {name: summarize(samples[name], batch[name]) for name in names}
