"""Constraints a deployed model must meet, parsed from human quantities such as `3ms`, `1.5MB`, `300M`."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, fields

from tightfit.errors import TightfitError

_NUMBER = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*([A-Za-z]*)\s*$")
# unit -> factor to the canonical unit of each kind
_UNITS: dict[str, dict[str, float]] = {
    "ms": {"": 1.0, "ms": 1.0, "us": 1e-3, "s": 1e3},
    "mJ": {"": 1.0, "mj": 1.0, "uj": 1e-3, "j": 1e3},
    "bytes": {"": 1.0, "b": 1.0, "kb": 1e3, "mb": 1e6, "gb": 1e9, "kib": 2**10, "mib": 2**20, "gib": 2**30},
    "count": {"": 1.0, "k": 1e3, "m": 1e6, "g": 1e9, "t": 1e12},
}


def parse_quantity(text: str, kind: str, option: str) -> float:
    """`3ms` -> 3.0 for kind "ms"; `1.5MB` -> 1.5e6 for "bytes"; `300M` -> 3e8 for "count"."""
    units = _UNITS[kind]
    match = _NUMBER.match(str(text))
    if not match or match.group(2).lower() not in units:
        allowed = ", ".join(u for u in units if u) or "none"
        raise TightfitError(f"{option} {text!r} is not a number with a unit ({allowed}); for example "
                            f"{option} 3{next(u for u in units if u)}")
    value = float(match.group(1)) * units[match.group(2).lower()]
    if value <= 0:
        raise TightfitError(f"{option} {text!r} must be positive")
    return value


@dataclass(frozen=True)
class Constraints:
    """Upper bounds; None means unconstrained."""

    latency_ms: float | None = None
    energy_mj: float | None = None
    size_bytes: float | None = None
    memory_bytes: float | None = None
    flops: float | None = None
    bitops: float | None = None

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, obj: dict) -> Constraints:
        return cls(**obj)

    def check(self, measured: dict[str, float | None]) -> dict[str, dict]:
        """Per set constraint: the bound, the measured value and whether it is met (None: cannot tell)."""
        out = {}
        for f in fields(self):
            bound = getattr(self, f.name)
            if bound is None:
                continue
            value = measured.get(f.name)
            out[f.name] = {"bound": bound, "value": value, "met": None if value is None else value <= bound}
        return out


def constraints_from_text(latency: str | None = None, energy: str | None = None, size: str | None = None,
                          memory: str | None = None, flops: str | None = None,
                          bitops: str | None = None) -> Constraints:
    def parse(text: str | None, kind: str, option: str) -> float | None:
        return None if text is None else parse_quantity(text, kind, option)

    return Constraints(parse(latency, "ms", "--latency"), parse(energy, "mJ", "--energy"),
                       parse(size, "bytes", "--size"), parse(memory, "bytes", "--memory"),
                       parse(flops, "count", "--flops"), parse(bitops, "count", "--bitops"))
