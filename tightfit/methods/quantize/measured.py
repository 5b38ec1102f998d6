"""HAQ's resource constraint enforced on the deployed model: a cpu-ort policy is lowered until it meets its
budget as measured end to end, not only as the lookup table prices it.

The table is anchored minutes before the policy is chosen, and a shared CPU's speed drifts by more than the
margins at stake: bench/results/haq_cifar-cpu-ort-latency-changes.json holds a policy priced 0.2% under
its budget that measured 2% over it. So the chosen policy is exported as deployed and timed together with
the references its budget is defined by (none for a budget in milliseconds; for a budget placed between
all-int8 and all-fp32, those two). While it measures over, HAQ's lowering takes one more step (from the
last operator backwards, the next fp32 operator runs int8) and the policy is timed again. The policy is
never raised: a policy that fits is returned as it is.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from tightfit.methods.quantize.costs import OrtCost
from tightfit.methods.quantize.haq import Unit
from tightfit.methods.quantize.policy import LayerBits

Bits = dict[str, LayerBits]
POLICY = "policy"  # the name the chosen policy is timed under, beside the references


def lower_until_measured(bits: Bits, units: list[Unit], cost: OrtCost,
                         budget_ms: Callable[[Mapping[str, float]], float],
                         references: Mapping[str, list[int]] | None = None,
                         log: Callable[[str], None] | None = None) -> tuple[Bits, list[dict]]:
    """`bits` (HAQ int8 mode: one precision per operator) lowered until its measured latency is at most
    `budget_ms(timing)`, where `timing` maps "policy" and each reference (operator precisions by name) to
    the milliseconds they measured together. Returns the policy and one record per timing; if even every
    operator int8 measures over, that policy comes back with its last record saying so."""
    references = dict(references or {})
    if POLICY in references:
        raise ValueError(f"a reference may not be named {POLICY!r}")
    rounds: list[dict] = []
    while True:
        precisions = cost.precisions(bits)
        timing = cost.measure({POLICY: precisions, **references}, "timing the policy as deployed")
        budget = budget_ms(timing)
        rounds.append({"int8_operators": precisions.count(8), "operators": len(precisions),
                       "predicted_ms": cost.of_precisions(precisions), "measured_ms": timing,
                       "budget_ms": budget, "meets_budget": timing[POLICY] <= budget})
        if log:
            log(f"HAQ measured check: {precisions.count(8)} of {len(precisions)} operators int8, "
                f"{timing[POLICY]:.3f} ms against a budget of {budget:.3f} ms")
        if rounds[-1]["meets_budget"] or all(p == 8 for p in precisions):
            return bits, rounds
        bits = _lower_one_operator(bits, units)


def _lower_one_operator(bits: Bits, units: list[Unit]) -> Bits:
    """One step of HAQ's lowering in int8 mode: from the last operator backwards, the first fp32 one runs int8.
    Not by the table's price, which can rank a small fp32 operator below its int8 version: the timing has
    just overruled the table."""
    unit = next(u for u in reversed(units) if any(bits.get(n, LayerBits()).w_bits > 8 for n in u.layers))
    return {**bits, **{n: LayerBits(8, 8) for n in unit.layers}}
