"""End-to-end latency measurement: warm up, then the median and p90 of repeated timed runs."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class LatencyStats:
    p50_ms: float
    p90_ms: float
    runs: int

    def to_json(self) -> dict:
        return asdict(self)


def time_runs(fn: Callable[[], object], warmup: int, repeats: int) -> LatencyStats:
    """Time `fn` `repeats` times after `warmup` untimed calls."""
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1e3)
    samples.sort()
    p90 = samples[min(len(samples) - 1, int(round(0.9 * (len(samples) - 1))))]
    return LatencyStats(statistics.median(samples), p90, len(samples))
