"""Hardware targets: what a network costs on the device it will run on."""

from tightfit.hardware.cost import Cost, CostModel
from tightfit.hardware.latency import LatencyStats, time_runs
from tightfit.hardware.lut import LookupTable
from tightfit.hardware.ops import OpKey, plan_ops
from tightfit.hardware.profile import build_table, ensure_entries, space_ops
from tightfit.hardware.targets import Target, get_target, target_names

__all__ = ["Cost", "CostModel", "LatencyStats", "LookupTable", "OpKey", "Target", "build_table", "ensure_entries",
           "get_target", "plan_ops", "space_ops", "target_names", "time_runs"]
