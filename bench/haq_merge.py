"""Merges runs of bench/haq_cifar.py on subsets of the budgets (`--budgets`, each in its own
`haq_cifar-<budgets>.json`) or of a budget's rows (`--rows haq` / `--rows uniform`) into `haq_cifar.json`:
every row tagged with the file it came from, each file's protocol kept, the verdicts recomputed over all
rows. Nothing is re-measured; every part must have quantized the same reference network.

    python bench/haq_merge.py haq_cifar-bitfusion-latency+bitfusion-energy haq_cifar-size-2bit+size-3bit ... [--tag T]
"""

from __future__ import annotations

import argparse
import json
import time

from _common import RESULTS, write_result
from haq_cifar import goal_met, verdicts_of


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("parts", nargs="+", help="result names under bench/results, without .json")
    p.add_argument("--tag", default="", help="write haq_cifar-TAG.json, beside the main result, not over it")
    p.add_argument("--side-by-side", action="store_true",
                   help="the parts ran at once, one per core: record the wall time (first start to last end)")
    args = p.parse_args()
    protocols, summary = {}, {"rows": [], "reward_curves": {}, "bits_by_kind": {}, "policies": {}}
    rows, spans = [], []
    for name in args.parts:
        part = json.loads((RESULTS / f"{name}.json").read_text())
        if part["summary"].get("partial"):
            raise SystemExit(f"{name}.json is a partial result (its run was cut short); rerun it before merging")
        protocols[name] = {**part["protocol"], "date": part["date"]}
        repeated = {(r["budget"], r["policy"]) for r in part["rows"]} & {(r["budget"], r["policy"]) for r in rows}
        if repeated:
            raise SystemExit(f"{name}.json repeats rows of an earlier part: {sorted(repeated)}; merge one run each")
        reference = part["protocol"].get("trained", {}).get("test_acc", part["summary"]["original_test_acc"])
        if summary.setdefault("original_test_acc", reference) != reference:
            raise SystemExit(f"{name}.json quantized a reference at {reference:.2%} test, an earlier part one at "
                             f"{summary['original_test_acc']:.2%}; merge runs on one reference network")
        rows += [{**r, "source": name} for r in part["rows"]]
        summary["rows"] += [{**r, "source": name} for r in part["summary"]["rows"]]
        for key in ("reward_curves", "bits_by_kind", "policies"):
            summary[key].update(part["summary"].get(key, {}))
        spans.append(_span(part))
    summary["verdicts"] = verdicts_of(rows)
    if args.side_by_side and all(spans):
        summary["wall_minutes"] = (max(end for _, end in spans) - min(start for start, _ in spans)) / 60
        summary["process_minutes"] = sum(end - start for start, end in spans) / 60
    summary["goal_met"] = goal_met(summary["verdicts"])
    print(write_result("haq_cifar", {"merged_from": protocols}, summary, rows, tag=args.tag))


def _span(part: dict) -> tuple[float, float] | None:
    """(start, end) in epoch seconds of a part's run: it is written at its end, after bench_minutes."""
    minutes = part["summary"].get("bench_minutes")
    if minutes is None:
        return None
    end = time.mktime(time.strptime(part["date"], "%Y-%m-%d %H:%M:%S"))
    return end - 60 * minutes, end


if __name__ == "__main__":
    main()
