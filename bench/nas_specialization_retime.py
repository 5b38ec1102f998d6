"""The cpu-ort half of every stored specialisation run, timed again on a quiet machine with fresh sessions.

bench/nas_specialization.py times each pair of derived networks once, one ONNX Runtime session each, at the
end of a run that often shared the two cores with another bench; one session of a network can time 20-40%
off another session of the same network here. This rebuilds every stored pair from its architecture string
(random weights: latency does not depend on them), opens `--sessions` fresh sessions per network and times
all of them interleaved in one estimator call, so every run's pair is timed across the same machine phases.
Per run: each network's median over its sessions, the spread, the share of session pairs in which the
cpu-ort network is the faster one, and the pair as this machine's lookup table prices it (`of_plan`), to tell
a search that chose the slower network from a table that misjudged it. Bit Fusion is analytic and is copied
from the run.

    python bench/nas_specialization_retime.py [--sessions 5] [--tag T] [nas_specialization-ref-k5e3-seed0 ...]

cpu-ort latency is this machine's: a pair searched on another CPU is judged here by this CPU's costs, so
`--tag` keeps each machine's retime in its own file (the runs' own machine is in each run's result).
"""

from __future__ import annotations

import argparse
import json
import statistics

from _cifar import timed_together
from _common import RESULTS, write_result
from nas_specialization import TARGETS, stored_run_names

from tightfit.hardware import CostModel, get_target
from tightfit.models import MobileNet
from tightfit.space import Arch, SearchSpace

SHAPE = (3, 32, 32)


def stored_runs(names: list[str]) -> list[tuple[str, dict]]:
    runs = []
    for name in names or stored_run_names():
        path = RESULTS / f"{name}.json"
        if not path.is_file():
            raise SystemExit(f"{path}: no such result; name a bench/results/nas_specialization*.json without .json")
        run = json.loads(path.read_text())
        if {r.get("searched_for") for r in run.get("rows", [])} == set(TARGETS):
            runs.append((name, run))
    return runs


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("runs", nargs="*", help="result names under bench/results (default: every specialisation run)")
    p.add_argument("--sessions", type=int, default=5, help="fresh ONNX Runtime sessions per network")
    p.add_argument("--tag", default="", help="write nas_specialization_retime-TAG.json (another machine's retime)")
    args = p.parse_args()
    target = get_target("cpu-ort")
    runtime, cost = target.runtime(), CostModel(target)
    runs = stored_runs(args.runs)
    spaces = {w: SearchSpace(32, 3, 10, width_mult=w) for w in {run["protocol"]["space_width"] for _, run in runs}}
    for space in spaces.values():
        cost.profile_space(space, (32,))
    nets, fns, table = [], [], {}
    for name, run in runs:
        space = spaces[run["protocol"]["space_width"]]
        for row in run["rows"]:
            plan = space.plan(Arch.parse(row["arch"]))
            table[name, row["searched_for"]] = cost.of_plan(plan, 32).latency_ms
            net = MobileNet(plan).eval()
            nets.append((name, row["searched_for"], net))
            fns += [runtime.prepare(net, SHAPE) for _ in range(args.sessions)]
    print(f"timing {len(fns)} sessions ({len(runs)} runs x 2 networks x {args.sessions})")
    ms = timed_together(fns)
    timed = {(name, searched): ms[i * args.sessions:(i + 1) * args.sessions]
             for i, (name, searched, _) in enumerate(nets)}
    rows = []
    for name, run in runs:
        own, other = timed[name, "cpu-ort"], timed[name, "bitfusion"]
        by = {r["searched_for"]: r for r in run["rows"]}
        rows.append({
            "run": name,
            "run_machine": run["machine"]["cpu"],
            "cpu_net_ms": {"median": statistics.median(own), "sessions": own},
            "bitfusion_net_ms": {"median": statistics.median(other), "sessions": other},
            "cpu_net_faster_on_cpu": statistics.median(own) < statistics.median(other),
            "session_pairs_cpu_net_faster": sum(a < b for a in own for b in other) / (len(own) * len(other)),
            "in_run": run["summary"]["cpu_net_faster_on_cpu"],
            "table_ms": {"cpu_net": table[name, "cpu-ort"], "bitfusion_net": table[name, "bitfusion"]},
            "table_cpu_net_faster": table[name, "cpu-ort"] < table[name, "bitfusion"],
            "bitfusion_net_faster_on_bitfusion": by["bitfusion"]["bitfusion_ms"] < by["cpu-ort"]["bitfusion_ms"],
        })
        print(name, rows[-1]["cpu_net_faster_on_cpu"], f"{rows[-1]['session_pairs_cpu_net_faster']:.2f}",
              rows[-1]["in_run"], rows[-1]["bitfusion_net_faster_on_bitfusion"])
    spread = [max(s) / min(s) - 1 for s in timed.values()]
    summary = {
        "runs": len(rows),
        "cpu_net_faster_on_cpu": sum(r["cpu_net_faster_on_cpu"] for r in rows),
        "agrees_with_run": sum(r["cpu_net_faster_on_cpu"] == r["in_run"] for r in rows),
        "table_cpu_net_faster": sum(r["table_cpu_net_faster"] for r in rows),
        "table_agrees": sum(r["table_cpu_net_faster"] == r["cpu_net_faster_on_cpu"] for r in rows),
        "both_halves": [r["run"] for r in rows
                        if r["cpu_net_faster_on_cpu"] and r["bitfusion_net_faster_on_bitfusion"]],
        "session_spread_median": statistics.median(spread), "session_spread_max": max(spread),
    }
    protocol = {"runs": [name for name, _ in runs], "sessions_per_network": args.sessions,
                "timing": "every session of every run in one interleaved estimator call (the table's), "
                          "OMP_NUM_THREADS as set by the caller; nothing else should run",
                "session_spread": "max/min - 1 over one network's sessions",
                "table": "this machine's cpu-ort lookup table (fp32) at its stored scale, which "
                         "nas_specialization.py refits and saves at each run's start, so only each pair's order is "
                         "meaningful; of_plan"}
    print(write_result("nas_specialization_retime", protocol, summary, rows, tag=args.tag))


if __name__ == "__main__":
    main()
