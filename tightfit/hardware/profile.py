"""Build and extend a target's latency lookup table: every operator the search space can produce.

`tightfit profile --target T --resolution R` measures them once per device, then calibrates one scale
per precision on networks of the space measured end to end (see `lut.py`); operators that no table lists
in advance (pruned channel counts) are measured on demand through `ensure_entries` and cached.
"""

from __future__ import annotations

import random
import statistics
from collections.abc import Callable, Iterable, Sequence

from tightfit.hardware.latency import Timing, default_timing, interleaved_latency
from tightfit.hardware.lut import LookupTable
from tightfit.hardware.ops import OpKey, op_module, plan_ops
from tightfit.hardware.runtime_ort import OrtRuntime
from tightfit.hardware.runtime_torch import TorchRuntime, keep_torch_threads
from tightfit.hardware.targets import Target
from tightfit.space.plan import NetworkPlan
from tightfit.space.space import SearchSpace

CHUNK = 100  # operators timed together (interleaved) between atomic saves of the table
ANCHORS = 8  # existing entries re-timed with every chunk, to keep the table at one level
CALIBRATION_NETWORKS = 10
CALIBRATION_SEED = 1_000_003  # far from the seeds validation draws its networks with


def space_ops(space: SearchSpace, precisions: Iterable[int] = (32,)) -> list[OpKey]:
    """Every distinct operator of the space: stem, each candidate at each block position, head.

    `skip` only occurs where a block keeps its shape, so the key of a later block never depends on which
    earlier blocks were skipped; one uniform network per candidate covers every position.
    """
    keys: set[OpKey] = set()
    for kernel in space.kernels:
        for expand in space.expands:
            for bits in precisions:
                keys.update(plan_ops(space.plan(space.uniform_arch(kernel, expand)), bits, bits))
    return sorted(keys)


def ensure_entries(target: Target, table: LookupTable, keys: Iterable[OpKey], progress: bool = True,
                   timing: Timing | None = None) -> int:
    """Measure whatever `keys` the table lacks (and the call overhead); returns how many were measured.

    Operators are measured in chunks, each chunk with `interleaved_latency` (several shuffled passes), and
    the table is saved after every chunk so that an interrupted build resumes where it stopped.
    """

    timing = timing or default_timing()
    missing = sorted({k for k in keys if k not in table})
    if not missing and table.overhead_ms is not None:
        return 0
    with keep_torch_threads():
        _measure_missing(target.runtime(), table, missing, target.name, progress, timing)
    return len(missing)


def _anchors(table: LookupTable) -> list[OpKey]:
    """Entries the table already has, evenly spread, to re-time beside a new chunk."""
    keys = sorted(table.entries)
    step = max(1, len(keys) // ANCHORS)
    return keys[::step][:ANCHORS]


def _measure_missing(runtime: OrtRuntime | TorchRuntime, table: LookupTable, missing: list[OpKey], name: str,
                     progress: bool, timing: Timing) -> None:
    """Chunk by chunk. The call overhead, when the table lacks it, is timed within the first chunk.

    The machine's speed drifts between chunks (and between a build and an on-demand measurement later),
    so every chunk also re-times a few existing entries, its anchors, and is scaled by the median of
    their stored / re-timed ratios: the whole table stays at the level of its first chunk.
    """
    from tqdm import tqdm

    bar = tqdm(total=len(missing), desc=f"profiling {name}", unit="op", disable=None if progress else True)
    for start in range(0, max(1, len(missing)), CHUNK):
        chunk = missing[start:start + CHUNK]
        anchors = _anchors(table)
        fns = [runtime.prepare(op_module(k), k.input_shape, int8=k.w_bits == 8) for k in chunk + anchors]
        with_overhead = table.overhead_ms is None
        if with_overhead:
            shape = chunk[0].input_shape if chunk else (3, 32, 32)
            fns.append(runtime.prepare(runtime.overhead_module(), shape))
        times = interleaved_latency(fns, timing)
        if with_overhead:
            table.overhead_ms = times.pop()
        net = [max(0.0, ms - table.overhead_ms) for ms in times]
        ratios = [table.entries[k] / ms for k, ms in zip(anchors, net[len(chunk):], strict=True) if ms > 0]
        level = statistics.median(ratios) if ratios else 1.0
        for key, ms in zip(chunk, net[:len(chunk)], strict=True):
            table.entries[key] = level * ms
        table.save()
        bar.update(len(chunk))
    bar.close()


def calibration_plans(space: SearchSpace, networks: int = CALIBRATION_NETWORKS) -> list[NetworkPlan]:
    """The random networks of `space` a table's scale is fitted on (a fixed seed, apart from validation's)."""
    rng = random.Random(CALIBRATION_SEED)
    return [space.plan(space.random_arch(rng)) for _ in range(networks)]


def fit_scale(table: LookupTable, plans: list[NetworkPlan], measured_ms: list[float], bits: int,
              save: bool = True) -> float:
    """Least squares through the origin: measured - overhead = scale * sum(entries); set in the table, and saved
    to its cache file unless `save` is False (a refit for one session's speed, which should not outlive it)."""
    sums = [sum(table.entries[k] for k in plan_ops(p, bits, bits)) for p in plans]
    net = [m - table.overhead_ms for m in measured_ms]
    table.scales[bits] = sum(n * s for n, s in zip(net, sums, strict=True)) / sum(s * s for s in sums)
    if save:
        table.save()
    return table.scales[bits]


def calibrate(target: Target, table: LookupTable, space: SearchSpace, bits: int, progress: bool = True,
              networks: int = CALIBRATION_NETWORKS) -> float:
    """Measure the calibration networks end to end and fit the table's scale for `bits` on them."""
    plans = calibration_plans(space, networks)
    ensure_entries(target, table, [k for p in plans for k in plan_ops(p, bits, bits)], progress)
    measured = measure_networks(target, plans, bits, progress, f"calibrating {target.name} ({bits}-bit)")
    return fit_scale(table, plans, measured, bits)


def measure_networks(target: Target, plans: list[NetworkPlan], bits: int | Sequence[int] = 32,
                     progress: bool = True, desc: str = "preparing networks") -> list[float]:
    """End-to-end latency of each plan's network, all timed together with the table's estimator; `bits` is
    one precision for all or one per plan."""
    from tqdm import tqdm

    from tightfit.models.mobilenet import MobileNet

    runtime = target.runtime()
    per_plan = [bits] * len(plans) if isinstance(bits, int) else list(bits)
    fns = [runtime.prepare(MobileNet(p), (p.in_channels, p.resolution, p.resolution), int8=b == 8)
           for p, b in tqdm(list(zip(plans, per_plan, strict=True)), desc=desc, unit="net",
                            disable=None if progress else True)]
    return time_together(fns)


def time_together(fns: list[Callable[[], object]]) -> list[float]:
    """Prepared runners timed together with the table's estimator, at the runtime's own thread count: end-to-end
    figures that are compared with each other or with the table."""
    with keep_torch_threads():
        return interleaved_latency(fns, default_timing())


def build_table(target: Target, space: SearchSpace, progress: bool = True,
                precisions: tuple[int, ...] | None = None, table: LookupTable | None = None) -> LookupTable:
    """The target's calibrated table for `space`, measuring only what the cache lacks; `precisions` default to
    every precision the target runs (fp32, and int8 where it has int8 kernels). `table`, when given, is
    extended in place (an open table may hold a scale refitted for one session and not saved)."""
    table = table if table is not None else LookupTable.open(target.fingerprint())
    precisions = precisions or ((32, 8) if target.int8 else (32,))
    ensure_entries(target, table, space_ops(space, precisions), progress)
    for bits in precisions:
        if not table.calibrated(bits):
            calibrate(target, table, space, bits, progress)
    return table
