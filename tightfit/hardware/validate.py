"""Is the latency table trustworthy? Predicted against end-to-end measured latency over random networks.

Reports mean absolute percentage error and Spearman rank correlation (SPEC section 0); the anchor is
nn-Meter, with 99% of its CPU predictions within +-10%.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, replace

from tightfit.hardware import profile
from tightfit.hardware.cost import CostModel
from tightfit.hardware.ops import plan_ops
from tightfit.space.plan import NetworkPlan
from tightfit.space.space import SearchSpace


@dataclass(frozen=True)
class ValidationRow:
    network: str
    kind: str  # "random" or "pruned"
    bits: int
    predicted_ms: float  # with the scale refitted now, on the calibration networks measured with these
    measured_ms: float
    predicted_stored_scale_ms: float  # with the scale the table had before (fitted when it was built)

    @property
    def error_pct(self) -> float:
        return 100.0 * (self.predicted_ms - self.measured_ms) / self.measured_ms

    def to_json(self) -> dict:
        return {**asdict(self), "error_pct": self.error_pct}


def random_pruned(plan: NetworkPlan, rng: random.Random, multiple: int = 8) -> NetworkPlan:
    """Channel-pruned variant: per stage one kept share of the output width (shared, as residual adds couple
    the blocks of a stage), per block a kept share of the hidden width, rounded to `multiple` channels (8 is
    what tightfit's pruning rounds to by default; 1 gives arbitrary counts)."""

    def keep(channels: int, share: float) -> int:
        return max(multiple, round(channels * share / multiple) * multiple)

    blocks, channels, stage_keep, last_width = [], plan.stem_channels, 1.0, None
    for b in plan.blocks:
        if b.out_channels != last_width or b.stride != 1:  # a new stage starts
            stage_keep, last_width = rng.uniform(0.3, 1.0), b.out_channels
        out = keep(b.out_channels, stage_keep)
        hidden = channels if b.expand == 1 else keep(b.hidden_channels, rng.uniform(0.3, 1.0))
        blocks.append(replace(b, in_channels=channels, out_channels=out, hidden=hidden))
        channels = out
    return replace(plan, blocks=tuple(blocks))


def validate(cost: CostModel, space: SearchSpace, n_random: int, n_pruned: int = 0, seed: int = 0,
             bits: int = 32, progress: bool = True, multiple: int = 8) -> list[ValidationRow]:
    """Measure `n_random` random architectures and `n_pruned` pruned ones end to end, next to the prediction.

    The machine's speed drifts by up to about 20% over minutes here (a shared server), which moves every
    network alike. So the calibration networks are measured again together with the validation networks,
    and the table's scale refitted on them: the prediction is then judged on what it is responsible for,
    the differences between networks. The prediction with the table's previous scale is reported too.
    """
    rng = random.Random(seed)
    networks: list[tuple[str, str, NetworkPlan]] = []
    for _ in range(n_random):
        arch = space.random_arch(rng)
        networks.append((str(arch), "random", space.plan(arch)))
    for _ in range(n_pruned):
        arch = space.random_arch(rng)
        networks.append((f"pruned({arch})", "pruned", random_pruned(space.plan(arch), rng, multiple)))
    calibration = profile.calibration_plans(space)
    for plan in [p for _, _, p in networks] + calibration:  # measures unseen operators (pruned ones)
        cost.predict_latency(plan, bits)
    table = cost.table
    stored = [table.predict(plan_ops(p, bits, bits)) for _, _, p in networks]
    measured = profile.measure_networks(cost.target, [p for _, _, p in networks] + calibration, bits, progress)
    profile.fit_scale(table, calibration, measured[len(networks):], bits)
    return [ValidationRow(name, kind, bits, table.predict(plan_ops(plan, bits, bits)), m, old)
            for (name, kind, plan), m, old in zip(networks, measured[:len(networks)], stored, strict=True)]


def summarize(rows: list[ValidationRow]) -> dict:
    from scipy.stats import spearmanr

    errors = [abs(r.error_pct) for r in rows]
    stored = [abs(100.0 * (r.predicted_stored_scale_ms - r.measured_ms) / r.measured_ms) for r in rows]
    rho = spearmanr([r.predicted_ms for r in rows], [r.measured_ms for r in rows]).statistic if len(rows) > 2 else None
    return {"networks": len(rows), "mape_pct": sum(errors) / len(errors),
            "within_10pct": sum(e <= 10 for e in errors) / len(errors),
            "spearman": None if rho is None else float(rho), "max_abs_error_pct": max(errors),
            "mape_pct_with_stored_scale": sum(stored) / len(stored)}
