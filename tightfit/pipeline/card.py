"""card.json: what was asked, what was delivered, and whether every constraint is met (SPEC section 5)."""

from __future__ import annotations

import platform

import onnxruntime
import torch

from tightfit.data.loader import Normalize
from tightfit.data.tensors import DataBundle
from tightfit.models.registry import ModelSpec
from tightfit.pipeline.config import RunConfig
from tightfit.pipeline.stages import StageRecord


def build_card(config: RunConfig, data: DataBundle, normalize: Normalize, spec: ModelSpec,
               records: list[StageRecord]) -> dict:
    by_stage = {r.stage: r.results for r in records}
    final = by_stage["export"]
    cx = final["complexity"]
    quant = by_stage.get("quantize")
    bits = 32  # fp32 weights and activations unless step 3 quantized them
    bitops = cx["macs"] * bits * bits if quant is None else quant["bitops"]
    size = final["onnx_bytes"] if quant is None else final["packed_bytes"]  # the packed file is the model size
    measured = {
        "latency_ms": final["latency"]["p50_ms"], "energy_mj": final["energy"]["mj"], "size_bytes": size,
        "memory_bytes": cx["peak_activation_bytes"], "flops": cx["flops"], "bitops": bitops,
    }
    checks = config.constraints.check(measured)
    return {
        "data": {**data.summary(), "preprocessing": {"mean": list(normalize.mean), "std": list(normalize.std),
                                                      "input": "NCHW float32, pixels / 255 then (x - mean) / std"}},
        "target": config.target,
        "model": spec.to_json(),
        "constraints": checks,
        "all_constraints_met": all(c["met"] for c in checks.values()) if checks else None,
        "accuracy": {"test_top1_onnx": final["test_acc_onnx"], "test_top1_torch": final["test_acc_torch"],
                     "val_top1": by_stage.get("train", {}).get("val_acc"),
                     "onnx_model": final.get("onnx_precision", "fp32"),
                     "torch_model": final.get("torch_model", "fp32")},
        "parity_max_abs_diff": final["parity"]["max_abs_diff"],
        "latency_ms": {"p50": final["latency"]["p50_ms"], "p90": final["latency"]["p90_ms"],
                       "runs": final["latency"]["runs"], "batch_size": 1, "target": config.target,
                       "source": final["latency"]["source"]},
        "energy": final["energy"],
        "size_bytes": {"onnx": final["onnx_bytes"], "weights_safetensors": final["weights_bytes"],
                       "packed": final.get("packed_bytes"), "model": size},
        "flops": cx["flops"], "macs": cx["macs"], "bitops": bitops,
        "params": cx["params"], "peak_activation_bytes": cx["peak_activation_bytes"],
        "precision": {"weights_bits": bits, "activation_bits": bits} if quant is None else
        {"weights_bits": "per layer (see quantization)", "average_weight_bits": quant["avg_weight_bits"],
         "onnx": final["onnx_precision"]},
        "search": _search_summary(by_stage.get("search")),
        "pruning": _prune_summary(by_stage.get("prune")),
        "quantization": _quantize_summary(quant),
        "search_cost_seconds": {r.stage: round(r.seconds, 2) for r in records},
        "software": {"python": platform.python_version(), "torch": torch.__version__,
                     "onnxruntime": onnxruntime.__version__, "cpu": platform.processor() or platform.machine()},
    }


def _search_summary(search: dict | None) -> dict | None:
    """Step 1's outcome: the architecture, its predicted cost against the target, and whether the plain
    argmax of alpha already met the target (else tightfit's constrained derivation chose it)."""
    if search is None:
        return None
    return {"method": "ProxylessNAS", "arch": search["arch"], "argmax_arch": search["argmax_arch"],
            "metric": search["metric"], "unit": search["unit"], "target": search["target"],
            "predicted": search["cost"], "argmax_predicted": search["argmax_cost"],
            "argmax_met_target": search["argmax_met_target"], "epochs": len(search["history"])}


def _prune_summary(prune: dict | None) -> dict | None:
    """Step 2's outcome: the budget, the policy found (channels kept per group) and what it bought."""
    if prune is None or prune.get("skipped"):
        return None if prune is None else {"method": "AMC", "skipped": "the network already met the budget"}
    best = prune["best"]
    return {"method": "AMC", "mode": prune["mode"], "reward": prune["config"]["reward"],
            "metric": prune["config"]["metric"], "nonzero_weights": prune["nonzero_weights"],
            "packed_sparse_bytes": prune["packed_sparse_bytes"],
            "budget_ratio": prune["budget_ratio"], "episodes": len(prune["history"]), "best_episode": best["episode"],
            "keep": best["keep"], "flops_ratio": prune["flops_after"] / prune["flops_before"],
            "params_ratio": prune["params_after"] / prune["params_before"],
            "val_acc_before_finetune": prune["val_acc_before_finetune"],
            "val_acc_after_finetune": prune["val_acc_after_finetune"]}


def _quantize_summary(quant: dict | None) -> dict | None:
    """Step 3's outcome: the budget, the policy found (bits per layer) and what it costs."""
    if quant is None:
        return None
    plan, best = quant["plan"], quant["best"]
    return {"method": "HAQ", "mode": plan["mode"], "quantizer": plan["method"], "metric": plan["metric"],
            "unit": plan["unit"], "budget": quant["budget"], "budget_source": quant["budget_source"],
            "cost": quant["cost"], "budget_met": quant["cost"] <= quant["budget"], "predicted": quant["predicted"],
            "episodes": len(quant["history"]), "best_episode": best["episode"],
            "average_weight_bits": quant["avg_weight_bits"], "packed_bytes": quant["packed_bytes"],
            "bits": {layer["name"]: [layer["w_bits"], layer["a_bits"]] for layer in quant["layers"]},
            "int8_operators": quant["int8_operators"], "measured_check": quant.get("measured_check"),
            "val_acc_original": quant["val_acc_original"],
            "val_acc_before_finetune": quant["val_acc_before_finetune"],
            "val_acc_after_finetune": quant["val_acc_after_finetune"]}
