"""The measured check of a cpu-ort policy: lowered until it meets its budget as timed, never raised."""

import pytest

from tightfit.hardware import CostModel, get_target
from tightfit.hardware.layers import extract_layers
from tightfit.methods.quantize.costs import OrtCost, operator_layers
from tightfit.methods.quantize.haq import decision_units
from tightfit.methods.quantize.measured import POLICY, lower_until_measured
from tightfit.methods.quantize.policy import LayerBits
from tightfit.models import ModelSpec, build_model

SLOWER = 1.04  # the machine measures every network this much slower than the table was anchored


@pytest.fixture(scope="module")
def setup():
    model = build_model(ModelSpec("mobilenetv2", 16, 3, 10, 0.35)).eval()
    cost = OrtCost(model, CostModel(get_target("cpu-ort"), progress=False),
                   anchor_ms={"fp32": 2.0, "int8": 1.0, "alternate-even": 1.6, "alternate-odd": 1.6})
    units = decision_units(extract_layers(model, (3, 16, 16)), "int8", operator_layers(model))
    return cost, units


class Timer:
    """Stands in for ONNX Runtime: the table's price times SLOWER, and a log of what was timed together."""

    def __init__(self, cost: OrtCost):
        self.cost, self.calls = cost, []

    def __call__(self, policies, desc=""):  # noqa: ANN001, ANN204
        self.calls.append(dict(policies))
        return {name: self.cost.of_precisions(p) * SLOWER for name, p in policies.items()}


def half_int8(cost: OrtCost) -> dict[str, LayerBits]:
    """The first half of the operators int8, the rest fp32."""
    half = len(cost.operators) // 2
    return {n: LayerBits(8, 8) if i < half else LayerBits() for i, names in enumerate(cost.operators) for n in names}


def test_a_policy_priced_under_its_budget_but_measured_over_is_lowered_until_it_measures_within(setup, monkeypatch):
    cost, units = setup
    timer = Timer(cost)
    monkeypatch.setattr(cost, "measure", timer)
    bits = half_int8(cost)
    budget = cost(bits) * 1.01  # fits the table, not the slower machine
    lowered, rounds = lower_until_measured(bits, units, cost, lambda ms: budget)
    assert len(rounds) >= 2 and not rounds[0]["meets_budget"] and rounds[-1]["meets_budget"]
    assert all(not r["meets_budget"] for r in rounds[:-1])  # stops at the first policy that fits
    assert rounds[-1]["measured_ms"][POLICY] <= budget < rounds[0]["measured_ms"][POLICY]
    before, after = cost.precisions(bits), cost.precisions(lowered)
    assert after != before and all(a == 8 for a, b in zip(after, before, strict=True) if b == 8)  # never raised
    assert len(timer.calls) == len(rounds)


def test_a_policy_that_measures_within_its_budget_is_timed_once_with_its_references_and_kept(setup, monkeypatch):
    cost, units = setup
    timer = Timer(cost)
    monkeypatch.setattr(cost, "measure", timer)
    n = len(cost.operators)
    references = {"int8": [8] * n, "fp32": [32] * n}
    bits = half_int8(cost)
    # Where the policy sits between the references by the table (which is measured, so varies by machine),
    # and a budget a little above it: the policy fits on any machine, in the same timing.
    low, high = (cost.of_precisions(p) for p in references.values())
    share = (cost(bits) - low) / (high - low) + 0.05
    halfway = lambda ms: ms["int8"] + share * (ms["fp32"] - ms["int8"])  # noqa: E731
    kept, rounds = lower_until_measured(bits, units, cost, halfway, references)
    assert kept == bits and len(rounds) == 1 and rounds[0]["meets_budget"]
    assert list(timer.calls[0]) == [POLICY, "int8", "fp32"]  # timed together, the budget from the same timing
    assert rounds[0]["budget_ms"] == pytest.approx(halfway(rounds[0]["measured_ms"]))


def test_when_even_every_operator_int8_measures_over_that_policy_returns_saying_so(setup, monkeypatch):
    cost, units = setup
    monkeypatch.setattr(cost, "measure", Timer(cost))
    int8 = {n: LayerBits(8, 8) for names in cost.operators for n in names}
    budget = cost(int8)  # the table's all-int8 price: the slower machine misses it
    lowest, rounds = lower_until_measured(half_int8(cost), units, cost, lambda ms: budget)
    assert cost.precisions(lowest) == [8] * len(cost.operators)
    assert not rounds[-1]["meets_budget"]
