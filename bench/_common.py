"""Shared by the bench scripts: the machine description and the result file format."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import platform
import time
from pathlib import Path

import torch

from tightfit.hardware.fingerprint import cpu_model

RESULTS = Path(__file__).with_name("results")


def machine() -> dict:
    return {"cpu": cpu_model(), "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "python": platform.python_version(), "torch": torch.__version__, "platform": platform.platform()}


def write_result(script: str, protocol: dict, summary: dict, rows: list[dict], tag: str = "") -> Path:
    """bench/results/<script>.json (or <script>-<tag>.json, a variant beside the main result) with the machine,
    the protocol, a summary and the raw rows; `script` is a bench's __file__ or a result name."""
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{Path(script).stem}{f'-{tag}' if tag else ''}.json"
    payload = {"date": time.strftime("%Y-%m-%d %H:%M:%S"), "machine": machine(), "protocol": protocol,
               "summary": summary, "rows": rows}
    path.write_text(json.dumps(payload, indent=2) + "\n")
    return path


@contextlib.contextmanager
def timing_lock():  # noqa: ANN201
    """Held while a bench times networks, so that two benches sharing the machine never time at once (the
    other one's training still runs beside it; the protocol says so)."""
    with open(Path(os.environ.get("TMPDIR", "/tmp")) / "tightfit-bench-timing.lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
