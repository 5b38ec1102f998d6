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


def interleaved_latency(fns: list[Callable[[], object]], passes: int = 7, warmup: int = 3, repeats: int = 20,
                        seed: int = 0, min_span_s: float = 6.0) -> list[float]:
    """A robust latency (ms) per function: the minimum over `passes` of each pass's median of `repeats` runs.

    Shared machines change speed for seconds at a time (neighbours, frequency). Passes visit every function
    in a shuffled order, so each one is timed across several of those phases; the median rejects spikes
    within a pass and the minimum keeps the pass least disturbed. Prediction and measurement must both use
    this estimator to be compared. Passes are spread over at least `min_span_s` seconds (idling if they are
    quicker), since the slow phases last about a second.
    """
    import random

    best = [float("inf")] * len(fns)
    order = list(range(len(fns)))
    rng = random.Random(seed)
    start = time.perf_counter()
    for k in range(passes):
        rng.shuffle(order)
        for i in order:
            best[i] = min(best[i], time_runs(fns[i], warmup, repeats).p50_ms)
        time.sleep(max(0.0, start + (k + 1) * min_span_s / passes - time.perf_counter()))
    return best
