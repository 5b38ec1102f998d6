"""Per block, do HAQ's policies give depthwise layers fewer bits than the pointwise layers beside them?

The HAQ paper's finding (depthwise: fewer activation bits under latency, more weight bits under size) is
about each depthwise layer against its neighbours. `summary.bits_by_kind` of `haq_cifar.json` averages over
all layers of a kind, where the many early layers weigh most; this reads the recorded policies and compares
inside each inverted residual block instead. Nothing is re-measured.

    python bench/haq_depthwise.py [--source haq_cifar] [--tag T]
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict

import numpy as np
from _common import RESULTS, write_result

from tightfit.hardware.layers import extract_layers
from tightfit.methods.quantize.policy import FP, QuantPolicy
from tightfit.models import ModelSpec, build_model


def block_of(name: str) -> str | None:
    """'blocks.3.conv.1.0' -> 'blocks.3'; stem and head layers belong to no block."""
    parts = name.split(".")
    return ".".join(parts[:2]) if parts[0] == "blocks" else None


def compare(policy: QuantPolicy, kinds: dict[str, str]) -> dict:
    """Per block: the depthwise layer's bits minus the mean of its pointwise layers', weights and activations."""
    blocks: dict[str, dict[str, list]] = defaultdict(lambda: {"depthwise": [], "conv": []})
    for name, bits in policy.bits.items():
        block = block_of(name)
        if block is not None and kinds[name] in ("depthwise", "conv"):
            blocks[block][kinds[name]].append(bits)
    out = {}
    for field in ("w_bits", "a_bits"):
        if any(getattr(b, field) >= FP for g in blocks.values() for b in g["depthwise"] + g["conv"]):
            continue  # not decided (activations of a weights-only policy)
        diffs = [np.mean([getattr(b, field) for b in g["depthwise"]]) - np.mean([getattr(b, field) for b in g["conv"]])
                 for g in blocks.values() if g["depthwise"] and g["conv"]]
        signs = np.sign(diffs)
        out[field] = {"mean_difference": float(np.mean(diffs)), "blocks": len(diffs),
                      "blocks_fewer": int((signs < 0).sum()), "blocks_equal": int((signs == 0).sum()),
                      "blocks_more": int((signs > 0).sum())}
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--source", default="haq_cifar", help="a haq_cifar result under bench/results, without .json")
    p.add_argument("--tag", default="", help="write haq_depthwise-TAG.json (for a source beside the main result)")
    args = p.parse_args()
    source = json.loads((RESULTS / f"{args.source}.json").read_text())
    width = source["protocol"].get("width") or next(iter(source["protocol"]["merged_from"].values()))["width"]
    model = build_model(ModelSpec("mobilenetv2", 32, 3, 10, width)).eval()
    kinds = {op.name: op.kind for op in extract_layers(model, (3, 32, 32))}
    policies = {b: QuantPolicy.from_json(p) for b, p in source["summary"]["policies"].items()
                if not b.startswith("cpu-ort")}  # cpu-ort decides whole operators, int8 or fp32
    summary = {b: compare(policy, kinds) for b, policy in policies.items()}
    # runs from before the bench recorded its policies have only the per-kind means
    summary["without_policies"] = sorted(set(source["summary"]["bits_by_kind"]) - set(source["summary"]["policies"]))
    protocol = {"source": f"bench/results/{args.source}.json", "model": f"mobilenetv2 width {width}",
                "difference": "per inverted residual block: depthwise bits - mean bits of the block's pointwise "
                              "convolutions; stem, head and classifier left out"}
    print(json.dumps(summary, indent=1))
    print(write_result("haq_depthwise", protocol, summary, [], tag=args.tag))


if __name__ == "__main__":
    main()
