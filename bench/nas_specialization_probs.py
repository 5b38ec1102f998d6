"""Where hardware specialisation is lost: in the searched probabilities, or in the derived networks?

Reads the finished runs of bench/nas_specialization.py (their final path probabilities) and, on each
target's cost table, reports for every run:
  * the mean probability of each candidate over the block positions, per target's search: does the
    cpu-ort search drop large kernels and the bitfusion one expansion 6, as their costs ask?
  * whether the distributions specialise: the cpu-ort search's E[latency] on cpu-ort below the bitfusion
    search's there, and the reverse on bitfusion (predicted, from p);
  * whether the derived networks specialise, re-derived offline from the same probabilities under other
    matching rules (each target's cost of one reference network of the space, or another fraction of its
    range). Predicted latencies, lookup table and analytic model; nothing is trained or timed.

    python bench/nas_specialization_probs.py [nas_specialization-shared ...]
"""

from __future__ import annotations

import argparse
import json

import torch
from _common import RESULTS, write_result
from nas_specialization import TARGETS, range_fraction, reference_arch, stored_run_names

from tightfit.hardware import CostModel, get_target
from tightfit.methods.search.costs import SpaceCosts, space_costs
from tightfit.methods.search.derive import constrained_argmax
from tightfit.methods.search.supernet import Supernet
from tightfit.space import SearchSpace

FRACTIONS = (0.2, 0.3, 0.4)
# the space's network with this op at every position; "a/b": the two alternating, position by position. k7e3 and
# k3e6 trade places on the two targets (k7e3 is the dearer on cpu-ort, k3e6 on bitfusion), so from their mix each
# search has a move the other target would not make; from any single op, one of the two searches has none
REFERENCES = ("k3e3", "k5e3", "k7e3", "k3e6", "k7e3/k3e6")


def labels(space: SearchSpace) -> list[list[str]]:
    return [[f"k{b.kernel}e{b.expand}" if b else "zero" for b in space.candidates(*pos)] for pos in space.positions()]


def mean_probs(probs: list[list[float]], names: list[list[str]]) -> dict[str, float]:
    sums: dict[str, list[float]] = {}
    for p, n in zip(probs, names, strict=True):
        for x, label in zip(p, n, strict=True):
            sums.setdefault(label, []).append(x)
    return {label: round(sum(v) / len(v), 4) for label, v in sums.items()}


def expected(costs: SpaceCosts, probs: list[list[float]]) -> float:
    return float(costs.expected([torch.tensor(p) for p in probs]))


def derive(net: Supernet, costs: SpaceCosts, probs: list[list[float]], target: float):  # noqa: ANN201
    with torch.no_grad():
        for op, p in zip(net.mixed, probs, strict=True):
            op.alpha.copy_(torch.tensor(p).clamp_min(1e-12).log())
    return constrained_argmax(net, costs, target)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("runs", nargs="*", help="result names under bench/results (default: every finished "
                   "nas_specialization run that kept its final probabilities)")
    args = p.parse_args()
    names = args.runs or stored_run_names()
    space = SearchSpace(32, 3, 10, width_mult=0.5)
    costs = {t: space_costs(CostModel(get_target(t), progress=False), space) for t in TARGETS}
    ops = labels(space)
    rules = {f"fraction-{f}": {t: range_fraction(c, f) for t, c in costs.items()} for f in FRACTIONS}
    rules |= {f"reference-{r}": {t: c.of_arch(space, reference_arch(space, r)) for t, c in costs.items()}
              for r in REFERENCES}
    net = Supernet(space)
    rows = []
    for name in names:
        run = json.loads((RESULTS / f"{name}.json").read_text())
        by = {r["searched_for"]: r for r in run["rows"]}
        if set(by) != set(TARGETS) or any("final_probs" not in r for r in by.values()):
            continue
        probs = {t: by[t]["final_probs"] for t in TARGETS}
        e = {s: {t: expected(costs[t], probs[s]) for t in TARGETS} for s in TARGETS}
        derived = {}
        for rule, targets in rules.items():
            archs = {s: derive(net, costs[s], probs[s], targets[s]) for s in TARGETS}
            cross = {s: {t: costs[t].of_arch(space, archs[s]) for t in TARGETS} for s in TARGETS}
            derived[rule] = {"cpu_net_faster_on_cpu": cross["cpu-ort"]["cpu-ort"] < cross["bitfusion"]["cpu-ort"],
                             "bitfusion_net_faster_on_bitfusion":
                                 cross["bitfusion"]["bitfusion"] < cross["cpu-ort"]["bitfusion"]}
        rows.append({
            "run": name, "options": {k: run["protocol"].get(k) for k in ("residual_init", "shared_weights", "seed",
                                                                           "add_lambda", "warmup_epochs")},
            "mean_probs": {s: mean_probs(probs[s], ops) for s in TARGETS},
            "largest_p": {s: round(max(max(x) for x in probs[s]), 4) for s in TARGETS},
            "expected_cross": e,
            "distributions_specialise": e["cpu-ort"]["cpu-ort"] < e["bitfusion"]["cpu-ort"]
            and e["bitfusion"]["bitfusion"] < e["cpu-ort"]["bitfusion"],
            "bench_networks_specialise": run["summary"]["cpu_net_faster_on_cpu"]
            and run["summary"]["bitfusion_net_faster_on_bitfusion"],
            "rederived": derived,
        })
        print(name, rows[-1]["distributions_specialise"], rows[-1]["bench_networks_specialise"])
    summary = {
        "runs": len(rows),
        "distributions_specialise": sum(r["distributions_specialise"] for r in rows),
        "bench_networks_specialise": sum(r["bench_networks_specialise"] for r in rows),
        "rederived_both_halves": {rule: sum(r["rederived"][rule]["cpu_net_faster_on_cpu"]
                                            and r["rederived"][rule]["bitfusion_net_faster_on_bitfusion"]
                                            for r in rows) for rule in rules},
        "candidate_costs_over_k3e3": {t: {label: round(c.per_position[0][j] / c.per_position[0][0], 3)
                                          for j, label in enumerate(ops[0]) if label != "zero"}
                                      for t, c in costs.items()},
        "rules": rules,
    }
    protocol = {"runs": names, "space_width": 0.5, "costs": "cpu-ort: this machine's lookup table (as calibrated); "
                "bitfusion: analytic model; first block position for candidate_costs_over_k3e3",
                "rederive": "tightfit's derivation (argmax, then the cheapest log-probability per unit of cost "
                "saved until the target is met) on each run's final probabilities, under each matching rule"}
    print(write_result("nas_specialization_probs", protocol, summary, rows))


if __name__ == "__main__":
    main()
