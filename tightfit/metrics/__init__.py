"""Model cost metrics: parameter count, FLOPs/MACs, weight bytes and peak activation memory."""

from tightfit.metrics.complexity import (
    Complexity,
    count_flops,
    count_params,
    measure_complexity,
    weight_bytes,
)
from tightfit.metrics.memory import example_input, peak_activation_bytes

__all__ = [
    "Complexity",
    "count_flops",
    "count_params",
    "example_input",
    "measure_complexity",
    "peak_activation_bytes",
    "weight_bytes",
]
