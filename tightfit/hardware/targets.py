"""Targets: a device + a runtime + a batch size, by name (SPEC section 0).

This first version measures whole models end to end; lookup tables, the analytic accelerator and energy
models join the registry later.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from tightfit.errors import TightfitError
from tightfit.hardware.latency import LatencyStats, time_runs


@dataclass(frozen=True)
class Target:
    name: str
    device: str
    runtime: str
    batch_size: int = 1
    threads: int | None = None  # None: all cores the runtime chooses to use
    warmup: int = 20
    repeats: int = 100

    def measure(self, model: nn.Module, onnx_path: Path, input_shape: tuple[int, ...]) -> LatencyStats:
        """Latency of one batch of this target's size, run the way this target runs it."""
        return _MEASURE[self.runtime](self, model, onnx_path, input_shape)


def _measure_ort(target: Target, _model: nn.Module, onnx_path: Path, shape: tuple[int, ...]) -> LatencyStats:
    from tightfit.export.onnx import ort_session

    session = ort_session(onnx_path, threads=target.threads)
    x = np.random.default_rng(0).standard_normal((target.batch_size, *shape)).astype(np.float32)
    name = session.get_inputs()[0].name
    return time_runs(lambda: session.run(None, {name: x}), target.warmup, target.repeats)


@torch.no_grad()
def _measure_torch(target: Target, model: nn.Module, _onnx: Path, shape: tuple[int, ...]) -> LatencyStats:
    was_training = model.training
    model.eval()
    x = torch.randn(target.batch_size, *shape)
    previous = torch.get_num_threads()
    if target.threads:
        torch.set_num_threads(target.threads)
    try:
        return time_runs(lambda: model(x), target.warmup, target.repeats)
    finally:
        torch.set_num_threads(previous)
        model.train(was_training)


_MEASURE: dict[str, Callable[[Target, nn.Module, Path, tuple[int, ...]], LatencyStats]] = {
    "onnxruntime": _measure_ort, "torch": _measure_torch,
}
_TARGETS: dict[str, Target] = {
    "cpu-ort": Target("cpu-ort", "cpu", "onnxruntime"),
    "cpu-torch": Target("cpu-torch", "cpu", "torch"),
}


def target_names() -> tuple[str, ...]:
    return tuple(_TARGETS)


def get_target(name: str) -> Target:
    if name not in _TARGETS:
        raise TightfitError(f"unknown target {name!r}; choose one of {', '.join(target_names())}")
    return _TARGETS[name]
