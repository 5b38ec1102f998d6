"""End-to-end latency measurement: warm up, then the median and p90 of repeated timed runs."""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

from tightfit.errors import TightfitError


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


@dataclass(frozen=True)
class Timing:
    """The estimator behind table entries and the end-to-end measurements they are validated against.

    Shared machines change speed for a second or more at a time (neighbours, frequency): a 3 ms network
    measured here drifted between 2.9 and 4.5 ms per-second medians. Many short passes spread over a long
    span sample every function across the machine's slow and quiet phases alike; the median over passes
    of each pass's median is then the statistic whose per-operator values add up best to whole networks
    (bench/lut_accuracy.py), where the minimum over passes did worst.
    """

    passes: int = 30
    warmup: int = 2
    repeats: int = 5
    min_span_s: float = 30.0

    def to_json(self) -> dict:
        return asdict(self)


TIMING = Timing()


def default_timing() -> Timing:
    """`TIMING`, or `TIGHTFIT_TIMING=passes:span_seconds` for quick, low-fidelity tables (the tests use it).

    The timing is part of a table's fingerprint, so tables measured either way never mix."""
    text = os.environ.get("TIGHTFIT_TIMING")
    if not text:
        return TIMING
    try:
        passes, span = text.split(":")
        timing = Timing(passes=int(passes), min_span_s=float(span))
    except ValueError:
        raise TightfitError(f"TIGHTFIT_TIMING={text!r} is not passes:span_seconds, for example 3:0") from None
    if timing.passes < 1 or timing.min_span_s < 0:
        raise TightfitError(f"TIGHTFIT_TIMING={text!r}: passes must be at least 1 and the span not negative")
    return timing


def interleaved_latency(fns: list[Callable[[], object]], timing: Timing = TIMING, seed: int = 0) -> list[float]:
    """A robust latency (ms) per function: the median over passes of each pass's median of `repeats` runs.

    Passes visit every function in a shuffled order, so that all are timed across the same mix of the
    machine's phases; prediction and measurement must both use this estimator to be compared. Passes are
    spread over at least `min_span_s` seconds (idling if they are quicker).
    """
    import random

    samples: list[list[float]] = [[] for _ in fns]
    order = list(range(len(fns)))
    rng = random.Random(seed)
    start = time.perf_counter()
    for k in range(timing.passes):
        rng.shuffle(order)
        for i in order:
            samples[i].append(time_runs(fns[i], timing.warmup, timing.repeats).p50_ms)
        time.sleep(max(0.0, start + (k + 1) * timing.min_span_s / timing.passes - time.perf_counter()))
    return [statistics.median(s) for s in samples]
