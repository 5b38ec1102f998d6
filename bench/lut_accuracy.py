"""How well do the latency lookup tables predict end-to-end latency on this machine?

On `cpu-ort` (fp32, and int8 as an extra row) and `cpu-torch`, batch 1, 32x32: 30 random architectures of
the search space plus 10 randomly channel-pruned networks, predicted (sum of table entries plus the call
overhead) against measured end to end. Also: the time to build the cpu-ort table from an empty cache,
this CPU's measured peak (a large GEMM, fp32 and int8) and MobileNetV2's roofline efficiency.

    python bench/lut_accuracy.py [--random 30] [--pruned 10] [--width 1.0] [--targets cpu-ort cpu-torch] [--tag T]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

import numpy as np
from _common import write_result
from onnx import TensorProto, helper

from tightfit.hardware import CostModel, build_table, get_target, profile
from tightfit.hardware.latency import TIMING, time_runs
from tightfit.hardware.runtime_ort import INT8_FORMAT, OrtRuntime
from tightfit.hardware.validate import summarize, validate
from tightfit.metrics import count_flops
from tightfit.models import ModelSpec, build_model
from tightfit.space import SearchSpace

GEMM_N = 1024
TARGETS = {"cpu-ort": "cpu_ort", "cpu-torch": "cpu_torch"}  # name -> summary key


def gemm_model(int8: bool) -> bytes:
    """One N x N x N matrix product as an ONNX model: MatMul (fp32) or MatMulInteger (uint8 x int8)."""
    n = GEMM_N
    rng = np.random.default_rng(0)
    if int8:
        b = helper.make_tensor("b", TensorProto.INT8, [n, n], rng.integers(-127, 127, (n, n)).flatten().tolist())
        node = helper.make_node("MatMulInteger", ["a", "b"], ["y"])
        a, y = (helper.make_tensor_value_info("a", TensorProto.UINT8, [n, n]),
                helper.make_tensor_value_info("y", TensorProto.INT32, [n, n]))
    else:
        b = helper.make_tensor("b", TensorProto.FLOAT, [n, n], rng.standard_normal((n, n)).astype(np.float32).flatten())
        node = helper.make_node("MatMul", ["a", "b"], ["y"])
        a, y = (helper.make_tensor_value_info("a", TensorProto.FLOAT, [n, n]),
                helper.make_tensor_value_info("y", TensorProto.FLOAT, [n, n]))
    graph = helper.make_graph([node], "gemm", [a], [y], initializer=[b])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()


def peak_gflops(threads: int) -> dict:
    rt = OrtRuntime(threads=threads)
    out = {}
    for int8 in (False, True):
        session = rt.session(gemm_model(int8))
        x = (np.random.default_rng(1).integers(0, 255, (GEMM_N, GEMM_N)).astype(np.uint8) if int8
             else np.random.default_rng(1).standard_normal((GEMM_N, GEMM_N)).astype(np.float32))
        stats = time_runs(lambda s=session, v=x: s.run(None, {"a": v}), 3, 15)
        out["int8_gops" if int8 else "fp32_gflops"] = 2 * GEMM_N**3 / (stats.p50_ms / 1e3) / 1e9
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--random", type=int, default=30)
    parser.add_argument("--pruned", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--width", type=float, default=1.0, help="width multiplier of the search space")
    parser.add_argument("--targets", nargs="+", choices=TARGETS, default=list(TARGETS))
    parser.add_argument("--tag", default="", help="write lut_accuracy-TAG.json (a variant beside the main result)")
    args = parser.parse_args()
    space = SearchSpace(32, width_mult=args.width)

    # the table, built from an empty cache so that the build time is honest
    os.environ["TIGHTFIT_CACHE"] = tempfile.mkdtemp(prefix="tightfit-lut-")
    summary: dict = {}
    rows: list[dict] = []
    for name in args.targets:
        key = TARGETS[name]
        target = get_target(name)
        start = time.perf_counter()
        table = build_table(target, space)
        seconds = time.perf_counter() - start
        if name == "cpu-ort":
            summary["build_seconds"] = seconds
            summary["build_entries"] = len(table)
        summary[f"{key}_scales"] = {str(b): s for b, s in table.scales.items()}
        cost = CostModel(target)
        result = validate(cost, space, args.random, args.pruned, seed=args.seed)
        summary[key] = {**summarize(result), "threads": target.threads, "table_entries": len(table),
                        "table_build_seconds": seconds}
        rows += [{"target": name, **r.to_json()} for r in result]
        print(name, summary[key])
        if name == "cpu-ort":  # pruned to arbitrary channel counts, not multiples of 8: reported on its own
            odd = validate(cost, space, 0, args.pruned, seed=args.seed + 1, multiple=1)
            summary["cpu_ort_pruned_any_channels"] = summarize(odd)
            rows += [{"target": f"{name} pruned-any-channels", **r.to_json()} for r in odd]
            print(name, "pruned to any channel count", summary["cpu_ort_pruned_any_channels"])
        if target.int8:
            result8 = validate(cost, space, args.random, args.pruned, seed=args.seed, bits=8)
            summary[f"{key}_int8"] = {**summarize(result8), "format": INT8_FORMAT}
            rows += [{"target": f"{name} int8", **r.to_json()} for r in result8]
            print(name, "int8", summary[f"{key}_int8"])

    # this CPU's peak and the reference network's roofline efficiency, at the tables' thread count
    target = get_target("cpu-ort")
    peak = peak_gflops(target.threads)
    mbv2 = build_model(ModelSpec("mobilenetv2", 32, 3, 10, 1.0))
    flops = count_flops(mbv2, (3, 32, 32))
    measured = target.measure(mbv2, None, (3, 32, 32)).p50_ms
    summary["cpu_peak"] = {**peak, "threads": target.threads, "gemm": f"{GEMM_N}x{GEMM_N}x{GEMM_N}"}
    summary["roofline"] = {"network": "mobilenetv2 w1.0 at 32x32", "flops": flops, "measured_ms": measured,
                           "achieved_gflops": flops / (measured / 1e3) / 1e9,
                           "efficiency": flops / (measured / 1e3) / 1e9 / peak["fp32_gflops"]}
    print(summary["cpu_peak"], summary["roofline"])
    protocol = {"resolution": 32, "space_width": args.width, "targets": args.targets, "batch_size": 1,
                "random_archs": args.random, "pruned_networks": args.pruned,
                "seed": args.seed, "threads": target.threads,
                "prediction": "one call overhead + sum of per-operator table entries (net of the per-call "
                              "overhead) times the precision's calibration scale",
                "calibration": f"{profile.CALIBRATION_NETWORKS} random networks of the space (seed "
                               f"{profile.CALIBRATION_SEED}, disjoint from the validation networks) measured end "
                               "to end at table build time; scale fitted by least squares through the origin",
                "pruned": "per stage a kept share of width in [0.3, 1], per block of hidden width in [0.3, 1], "
                          "rounded to multiples of 8 (cpu_ort_pruned_any_channels: not rounded)",
                "estimator": "table entries and end-to-end measurements alike: " + json.dumps(TIMING.to_json()) +
                             ": median over shuffled passes of each pass's median of `repeats` runs"}
    print(write_result("lut_accuracy", protocol, summary, rows, tag=args.tag))


if __name__ == "__main__":
    main()
