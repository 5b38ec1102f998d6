"""What makes a latency table valid: the CPU, the runtime and its version, the threads, the batch size."""

from __future__ import annotations

import hashlib
import json
import platform
from pathlib import Path


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def runtime_version(runtime: str) -> str:
    if runtime == "onnxruntime":
        import onnxruntime

        return onnxruntime.__version__
    import torch

    return torch.__version__


def fingerprint(target: str, runtime: str, threads: int, batch_size: int, device: str = "cpu") -> dict:
    return {"target": target, "device": cpu_model() if device == "cpu" else device, "machine": platform.machine(),
            "runtime": runtime, "runtime_version": runtime_version(runtime), "threads": threads,
            "batch_size": batch_size}


def fingerprint_id(fp: dict) -> str:
    return hashlib.sha1(json.dumps(fp, sort_keys=True).encode()).hexdigest()[:16]
