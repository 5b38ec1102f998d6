"""How well HAQ's cpu-ort cost model prices mixed int8/fp32 policies, against end-to-end measurement.

`OrtCost` prices a policy from the lookup table's operators, each precision scaled so that all-int8 and
all-fp32 cost what the model measures, plus a price per element of every tensor where the precision changes
(a QuantizeLinear or DequantizeLinear that no table entry holds), fitted to two alternating policies. This
times, together and interleaved, those four anchors and held-out policies (contiguous halves, seeded random
mixes), each exported as deployed (ONNX Runtime QDQ int8 for the chosen operators), anchors the model on
this timing, and compares its price of the held-out policies with their measurement, with and without the
charge for changes.

    python bench/ort_mixed_cost.py [--random 12]
"""

from __future__ import annotations

import argparse
import random
import statistics

from _cifar import add_reference_options, load_cifar, reference_recipe, timed_together, trained_reference
from _common import write_result

from tightfit.hardware import CostModel, get_target
from tightfit.methods.quantize.costs import OrtCost, anchor_policies, operator_layers
from tightfit.methods.quantize.deploy import float_onnx, quantize_operators
from tightfit.models import ModelSpec

SHAPE = (3, 32, 32)


def policies(n: int, count: int, seed: int) -> dict[str, list[int]]:
    """OrtCost's anchors first, then held-out patterns: contiguous halves and seeded random mixes."""
    rng = random.Random(seed)
    chosen = {**anchor_policies(n), "first-half": [8 if i < n // 2 else 32 for i in range(n)],
              "second-half": [8 if i >= n // 2 else 32 for i in range(n)]}
    for j in range(count):
        share = rng.random()
        chosen[f"random-{j}"] = [8 if rng.random() < share else 32 for _ in range(n)]
    return chosen


def transitions(precisions: list[int]) -> int:
    """Changes of precision along the network, its fp32 input and output included."""
    path = [32, *precisions, 32]
    return sum(a != b for a, b in zip(path, path[1:], strict=False))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_reference_options(p)
    p.add_argument("--width", type=float, default=0.5)
    p.add_argument("--random", type=int, default=12, help="seeded random mixes besides the fixed patterns")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    data = load_cifar(args.train_images, args.val_images, args.seed)
    spec = ModelSpec("mobilenetv2", 32, 3, 10, args.width)
    model, _ = trained_reference(spec, data, reference_recipe(args.train_epochs, args.seed))
    model = model.eval()
    cpu = CostModel(get_target("cpu-ort"), progress=False)
    n_ops = len(operator_layers(model))
    chosen = policies(n_ops, args.random, args.seed)
    runtime = cpu.target.runtime()
    calibration = [x.numpy() for x, _ in list(data.loader("train", 64, shuffle=True, seed=1))[:4]]
    fp32 = float_onnx(model, SHAPE)
    fns = [runtime.prepare_onnx(quantize_operators(fp32, prec, SHAPE, calibration), SHAPE) for prec in chosen.values()]
    measured = dict(zip(chosen, timed_together(fns), strict=True))
    # the model anchored on this very timing: a shared machine's speed drifts by more than the errors at stake
    cost = OrtCost(model, cpu, anchor_ms={name: measured[name] for name in anchor_policies(n_ops)})
    rows = []
    for name, prec in chosen.items():
        full, operators_only = cost.of_precisions(prec), cost.operators_ms(prec)
        rows.append({"policy": name, "precisions": "".join("8" if b == 8 else "." for b in prec),
                     "anchor": name in cost.anchors, "int8_operators": prec.count(8),
                     "changes": transitions(prec), "measured_ms": measured[name], "predicted_ms": full,
                     "error": full / measured[name] - 1, "operators_only_ms": operators_only,
                     "operators_only_error": operators_only / measured[name] - 1})
        print(rows[-1])
    held_out = [r for r in rows if not r["anchor"]]
    summary = {"ms_per_changed_element": cost.ms_per_changed_element, "held_out": len(held_out),
               "held_out_mape": statistics.mean(abs(r["error"]) for r in held_out),
               "held_out_mape_operators_only": statistics.mean(abs(r["operators_only_error"]) for r in held_out),
               "held_out_mean_error_operators_only": statistics.mean(r["operators_only_error"] for r in held_out),
               "held_out_max_error": max(abs(r["error"]) for r in held_out),
               "alternating_operators_only_error": [r["operators_only_error"] for r in rows
                                                    if r["policy"].startswith("alternate")]}
    protocol = {**vars(args), "model": spec.to_json(),
                "deploy": "mixed_int8_onnx (ONNX Runtime static QDQ, per-channel weights), 1 thread, batch 1",
                "timing": "every policy timed together, interleaved (the table's estimator)",
                "model_fit": "OrtCost anchored on this timing's fp32, int8 and two alternating policies; the other "
                             "policies are held out. operators_only: the same model without the charge per change"}
    print(summary)
    print(write_result(__file__, protocol, summary, rows))


if __name__ == "__main__":
    main()
