"""What makes a latency table valid: the CPU and its vector extensions, the runtime and its version, the
threads, the batch size."""

from __future__ import annotations

import hashlib
import json
import platform
from pathlib import Path


def _cpuinfo(*fields: str) -> str | None:
    """The value of the first /proc/cpuinfo line that starts with one of `fields` (None where unreadable)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(fields):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def cpu_model() -> str:
    return _cpuinfo("model name") or platform.processor() or platform.machine()


# the instruction-set extensions that decide which kernels a runtime picks: virtual machines often report one
# generic model name ("AMD EPYC") for CPUs with and without, say, AVX512-VNNI, whose int8 kernels differ ~2x
KERNEL_ISA = ("avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx512_bf16",
              "avx_vnni", "amx_tile", "amx_int8", "amx_bf16", "asimd", "asimddp", "sve", "i8mm")


def cpu_isa() -> str:
    """The kernel-relevant extensions among the CPU's flags (x86 `flags`, Arm `Features`), space-separated."""
    present = set((_cpuinfo("flags", "Features") or "").split())
    return " ".join(f for f in KERNEL_ISA if f in present)


def runtime_version(runtime: str) -> str:
    if runtime == "onnxruntime":
        import onnxruntime

        return onnxruntime.__version__
    import torch

    return torch.__version__


def fingerprint(target: str, runtime: str, threads: int, batch_size: int, device: str = "cpu") -> dict:
    on_cpu = device == "cpu"
    return {"target": target, "device": cpu_model() if on_cpu else device, "isa": cpu_isa() if on_cpu else "",
            "machine": platform.machine(), "runtime": runtime, "runtime_version": runtime_version(runtime),
            "threads": threads, "batch_size": batch_size}


def fingerprint_id(fp: dict) -> str:
    return hashlib.sha1(json.dumps(fp, sort_keys=True).encode()).hexdigest()[:16]
