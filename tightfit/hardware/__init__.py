"""Hardware targets: what a network costs on the device it will run on."""

from tightfit.hardware.latency import LatencyStats, time_runs
from tightfit.hardware.targets import Target, get_target, target_names

__all__ = ["LatencyStats", "Target", "get_target", "target_names", "time_runs"]
