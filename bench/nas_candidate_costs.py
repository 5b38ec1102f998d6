"""What each search-space candidate costs on cpu-ort and on Bit Fusion: where the two targets disagree.

Hardware specialisation can only show where the targets rank the candidates differently. This prices every
(position, candidate) of the space that nas_specialization.py searches, from the cpu-ort lookup table (the
cached one if this machine has it, else profiled) and the Bit Fusion model, and reports per target what a
larger kernel and a larger expansion cost relative to k3e3, and where the two rank the candidates apart.
Nothing is trained.

    python bench/nas_candidate_costs.py [--space-width 0.5]
"""

from __future__ import annotations

import argparse
import statistics

from _common import write_result

from tightfit.hardware import CostModel, get_target
from tightfit.methods.search.costs import space_costs
from tightfit.space import SearchSpace

TARGETS = ("cpu-ort", "bitfusion")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--space-width", type=float, default=0.5)
    args = p.parse_args()
    space = SearchSpace(32, 3, 10, width_mult=args.space_width)
    costs = {name: space_costs(CostModel(get_target(name)), space) for name in TARGETS}
    rows, ratios = [], {name: {"k7e3/k3e3": [], "k3e6/k3e3": []} for name in TARGETS}
    for pos, options in enumerate(space.candidates(s, i) for s, i in space.positions()):
        names = ["zero" if b is None else f"k{b.kernel}e{b.expand}" for b in options]
        row = {"position": pos}
        for name in TARGETS:
            price = dict(zip(names, costs[name].per_position[pos], strict=True))
            row[name] = {"order": sorted((n for n in names if n != "zero"), key=price.__getitem__), **price}
            for ratio in ratios[name]:
                top, bottom = ratio.split("/")
                ratios[name][ratio].append(price[top] / price[bottom])
        row["orders_differ"] = row["cpu-ort"]["order"] != row["bitfusion"]["order"]
        rows.append(row)
    summary = {"ratios": {name: {r: {"min": min(v), "median": statistics.median(v), "max": max(v)}
                                 for r, v in by.items()} for name, by in ratios.items()},
               "positions_where_orders_differ": sum(r["orders_differ"] for r in rows), "positions": len(rows),
               "k7e3_cheaper_than_k3e6": {name: sum(r[name]["k7e3"] < r[name]["k3e6"] for r in rows)
                                          for name in TARGETS}}
    protocol = {**vars(args), "units": {name: costs[name].unit for name in TARGETS},
                "cpu_ort": "lookup table of this machine (fp32, batch 1, 32x32), scale as profiled",
                "bitfusion": "analytic Bit Fusion model, an unquantized network at its widest bits (8)"}
    print(summary)
    print(write_result("nas_candidate_costs", protocol, summary, rows))


if __name__ == "__main__":
    main()
