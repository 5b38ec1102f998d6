"""Energy on the CPU: RAPL counters where the machine exposes them, otherwise a stated power model."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

RAPL = Path("/sys/class/powercap/intel-rapl:0/energy_uj")
RAPL_RANGE = Path("/sys/class/powercap/intel-rapl:0/max_energy_range_uj")
WATTS_PER_ACTIVE_CORE = 10.0  # an assumption (server cores draw roughly 5-15 W under load), used without RAPL


@dataclass(frozen=True)
class Energy:
    mj: float
    source: str


def rapl_readable() -> bool:
    try:
        int(RAPL.read_text())
        return True
    except (OSError, ValueError):
        return False


def measure_rapl(fn: Callable[[], object], runs: int = 200) -> Energy:
    """Package energy per call of `fn`, from RAPL's cumulative counter (includes idle package power)."""
    start = int(RAPL.read_text())
    for _ in range(runs):
        fn()
    used_uj = (int(RAPL.read_text()) - start) % (int(RAPL_RANGE.read_text()) + 1)  # the counter wraps
    return Energy(used_uj / 1e3 / runs, "measured: RAPL package counter")


def modelled_cpu_energy(latency_ms: float, threads: int) -> Energy:
    return Energy(latency_ms * WATTS_PER_ACTIVE_CORE * threads,  # W x ms = mJ
                  f"modelled: {WATTS_PER_ACTIVE_CORE:g} W per active core x {threads} thread(s) x latency "
                  "(RAPL not readable on this machine)")


def cpu_energy(run_once: Callable[[], object], latency_ms: float, threads: int) -> Energy:
    """Measured with RAPL when the machine exposes it, else modelled from the measured latency."""
    return measure_rapl(run_once) if rapl_readable() else modelled_cpu_energy(latency_ms, threads)
