"""A latency lookup table: typed keys to measured milliseconds, cached per device fingerprint.

Operators timed on their own add up to less than the network they form (on this project's CPU, about
11% less through ONNX Runtime, the same for random and pruned networks), so each precision carries one
scale fitted on calibration networks measured end to end when the table is built:

    predicted = overhead + sum over operators of scale[bits] * entry

Saved as JSON, written atomically after every few entries so that an interrupted build resumes; a file
that cannot be read is rebuilt, not trusted.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

from tightfit.fileio import write_json
from tightfit.hardware.fingerprint import fingerprint_id
from tightfit.hardware.ops import OpKey


def lut_cache_dir() -> Path:
    return Path(os.environ.get("TIGHTFIT_CACHE", Path.home() / ".cache" / "tightfit")) / "lut"


@dataclass
class LookupTable:
    """Median latency (ms) per operator, net of the runtime's per-call overhead, plus that overhead once."""

    fingerprint: dict
    overhead_ms: float | None = None
    entries: dict[OpKey, float] = field(default_factory=dict)
    scales: dict[int, float] = field(default_factory=dict)  # per operator precision; missing: uncalibrated
    path: Path | None = None

    def __contains__(self, key: OpKey) -> bool:
        return key in self.entries

    def __len__(self) -> int:
        return len(self.entries)

    def calibrated(self, bits: int) -> bool:
        return bits in self.scales

    def entry_ms(self, key: OpKey) -> float:
        """The operator's share of a network's latency: its entry times its precision's scale."""
        return self.scales.get(key.w_bits, 1.0) * self.entries[key]

    def predict(self, keys: list[OpKey]) -> float:
        """Scaled sum of the entries plus the call overhead. Every key must be in the table."""
        assert self.overhead_ms is not None, "measure the call overhead first"
        return self.overhead_ms + sum(self.entry_ms(k) for k in keys)

    def to_json(self) -> dict:
        return {"fingerprint": self.fingerprint, "overhead_ms": self.overhead_ms,
                "scales": {str(b): v for b, v in sorted(self.scales.items())},
                "entries": [{"key": k.to_json(), "ms": ms} for k, ms in sorted(self.entries.items())]}

    def save(self) -> None:
        if self.path is not None:
            write_json(self.path, self.to_json())

    @classmethod
    def open(cls, fingerprint: dict, cache_dir: Path | None = None) -> LookupTable:
        """The cached table for this fingerprint, or an empty one that will be saved there."""
        path = (cache_dir or lut_cache_dir()) / f"{fingerprint['target']}-{fingerprint_id(fingerprint)}.json"
        table = cls(fingerprint, path=path)
        if not path.exists():
            return table
        try:
            obj = json.loads(path.read_text())
            if obj["fingerprint"] != fingerprint:
                raise ValueError("fingerprint differs")
            table.overhead_ms = obj["overhead_ms"]
            table.entries = {OpKey.from_json(e["key"]): float(e["ms"]) for e in obj["entries"]}
            table.scales = {int(b): float(v) for b, v in obj["scales"].items()}
        except (ValueError, KeyError, TypeError) as err:
            print(f"tightfit: latency table {path} is unreadable ({err}); rebuilding it", file=sys.stderr)
            return cls(fingerprint, path=path)
        return table
