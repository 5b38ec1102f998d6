"""Build and extend a target's latency lookup table: every operator the search space can produce.

`tightfit profile --target T --resolution R` measures them once per device; operators that no table
lists in advance (pruned channel counts) are measured on demand through `ensure_entries` and cached.
"""

from __future__ import annotations

from collections.abc import Iterable

from tightfit.hardware.latency import interleaved_latency
from tightfit.hardware.lut import LookupTable
from tightfit.hardware.ops import OpKey, op_module, plan_ops
from tightfit.hardware.runtime_ort import OrtRuntime
from tightfit.hardware.runtime_torch import TorchRuntime, keep_torch_threads
from tightfit.hardware.targets import Target
from tightfit.space.space import SearchSpace

CHUNK = 32  # operators timed together (interleaved) between atomic saves of the table
PASSES = 7
MIN_SPAN_S = 6.0  # seconds over which the passes of one chunk are spread


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


def ensure_entries(target: Target, table: LookupTable, keys: Iterable[OpKey], progress: bool = True) -> int:
    """Measure whatever `keys` the table lacks (and the call overhead); returns how many were measured.

    Operators are measured in chunks, each chunk with `interleaved_latency` (several shuffled passes), and
    the table is saved after every chunk so that an interrupted build resumes where it stopped.
    """

    missing = sorted({k for k in keys if k not in table})
    if not missing and table.overhead_ms is not None:
        return 0
    runtime = target.runtime()
    if table.overhead_ms is None:
        shape = missing[0].input_shape if missing else (3, 32, 32)
        overhead = runtime.prepare(runtime.overhead_module(), shape)
        table.overhead_ms = interleaved_latency([overhead], PASSES, min_span_s=MIN_SPAN_S)[0]
    with keep_torch_threads():
        _measure_missing(runtime, table, missing, target.name, progress)
    return len(missing)


def _measure_missing(runtime: OrtRuntime | TorchRuntime, table: LookupTable, missing: list[OpKey], name: str,
                     progress: bool) -> None:
    from tqdm import tqdm

    bar = tqdm(total=len(missing), desc=f"profiling {name}", unit="op", disable=None if progress else True)
    for start in range(0, len(missing), CHUNK):
        chunk = missing[start:start + CHUNK]
        fns = [runtime.prepare(op_module(k), k.input_shape, int8=k.w_bits == 8) for k in chunk]
        for key, ms in zip(chunk, interleaved_latency(fns, PASSES, min_span_s=MIN_SPAN_S), strict=True):
            table.entries[key] = max(0.0, ms - table.overhead_ms)
        table.save()
        bar.update(len(chunk))
    bar.close()


def build_table(target: Target, space: SearchSpace, progress: bool = True) -> LookupTable:
    """The target's table for `space`, measuring only what the cache lacks."""
    table = LookupTable.open(target.fingerprint())
    precisions = (32, 8) if target.int8 else (32,)
    ensure_entries(target, table, space_ops(space, precisions), progress)
    return table
