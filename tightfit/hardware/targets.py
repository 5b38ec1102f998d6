"""Targets: a device + a runtime + a batch size, by name or by accelerator file (SPEC section 0).

Measured targets (`cpu-ort`, `cpu-torch`, `cuda`) time operators and whole networks on the device; the
analytic `bitfusion` target, or any accelerator described in a YAML file of the same form, computes
latency and energy from a roofline model.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from tightfit.errors import TightfitError
from tightfit.hardware.bitfusion import AcceleratorSpec, default_bitfusion, load_accelerator
from tightfit.hardware.fingerprint import fingerprint
from tightfit.hardware.latency import LatencyStats, default_timing, time_runs
from tightfit.hardware.runtime_ort import OrtRuntime
from tightfit.hardware.runtime_torch import TorchRuntime, keep_torch_threads


def default_threads() -> int:
    """Latency tables are measured at a fixed thread count: TIGHTFIT_THREADS, else 1 (the least noisy)."""
    return int(os.environ.get("TIGHTFIT_THREADS", "1"))


@dataclass(frozen=True)
class Target:
    name: str
    kind: str  # "measured" or "analytic"
    runtime_name: str = ""  # "onnxruntime" or "torch" for measured targets
    device: str = "cpu"
    batch_size: int = 1
    threads: int = 1
    int8: bool = False  # the runtime has int8 kernels (entries with w_bits = a_bits = 8)
    accelerator: AcceleratorSpec | None = None  # analytic targets: the accelerator's parameters, loaded once

    def runtime(self, warmup: int = 20, repeats: int = 100) -> OrtRuntime | TorchRuntime:
        if self.kind != "measured":
            raise TightfitError(f"target {self.name} is analytic; it has no runtime to time models on")
        if self.runtime_name == "onnxruntime":
            return OrtRuntime(self.threads, self.batch_size, warmup, repeats)
        return TorchRuntime(self.threads, self.batch_size, self.device, warmup, repeats)

    def fingerprint(self) -> dict:
        device = torch.cuda.get_device_name() if self.device.startswith("cuda") else "cpu"
        return {**fingerprint(self.name, self.runtime_name, self.threads, self.batch_size, device),
                "timing": default_timing().to_json()}

    def prepare(self, model: nn.Module, onnx_path: Path | None, input_shape: tuple[int, ...],
                int8: bool = False) -> Callable[[], object]:
        """One inference of the deployed model, run the way this target runs it (the exported ONNX file on
        cpu-ort when there is one)."""
        rt = self.runtime()
        if isinstance(rt, OrtRuntime) and onnx_path is not None and not int8:
            return rt.prepare_onnx(onnx_path, input_shape)
        return rt.prepare(model, input_shape, int8=int8)

    def measure(self, model: nn.Module, onnx_path: Path | None, input_shape: tuple[int, ...],
                int8: bool = False) -> LatencyStats:
        """End-to-end latency of the deployed model: warm-up, then the median and p90 of repeated runs."""
        rt = self.runtime()
        with keep_torch_threads():
            return time_runs(self.prepare(model, onnx_path, input_shape, int8), rt.warmup, rt.repeats)


def _cuda() -> Target:
    if not torch.cuda.is_available():
        raise TightfitError("target 'cuda' needs an NVIDIA GPU with a CUDA build of PyTorch, and none is visible "
                            "here; use cpu-ort or cpu-torch, or run on a machine with a GPU")
    return Target("cuda", "measured", "torch", device="cuda", batch_size=8, threads=1)


def _bitfusion(path: str | None = None) -> Target:
    spec = load_accelerator(Path(path)) if path else default_bitfusion()  # validates the file now
    return Target(spec.name if path else "bitfusion", "analytic", batch_size=1, accelerator=spec)


TARGET_NAMES = ("cpu-ort", "cpu-torch", "cuda", "bitfusion")


def target_names() -> tuple[str, ...]:
    return TARGET_NAMES


def get_target(name: str, threads: int | None = None) -> Target:
    """A target by name, or an accelerator described in a YAML file (`path/to/accel.yaml`)."""
    threads = threads or default_threads()
    if name == "cpu-ort":
        return Target("cpu-ort", "measured", "onnxruntime", threads=threads, int8=True)
    if name == "cpu-torch":
        return Target("cpu-torch", "measured", "torch", threads=threads)
    if name == "cuda":
        return _cuda()
    if name == "bitfusion":
        return _bitfusion()
    if name.endswith((".yaml", ".yml")):
        if not Path(name).is_file():
            raise TightfitError(f"accelerator file {name} does not exist; write one in the form of "
                                "tightfit/hardware/accelerators/bitfusion.yaml")
        return _bitfusion(name)
    raise TightfitError(f"unknown target {name!r}; choose one of {', '.join(TARGET_NAMES)} or pass an "
                        "accelerator file path/to/accel.yaml")
