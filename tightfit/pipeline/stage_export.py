"""Stage: write the deployable artifact and measure it (SPEC section 5).

model.onnx (checked for parity against PyTorch and scored on the untouched test split), reloadable
weights (safetensors) with model.json to rebuild the network, complexity figures, and latency measured
on the target.

A quantized candidate (step 3) also brings its packed weight file, whose size is the model size, and its
policy. On cpu-ort the deployed model.onnx is the mixed int8 model step 3 built; elsewhere it is the fp32
network holding the quantized weight values (what an accelerator is fed, decoded), priced at the policy's
bits. The PyTorch accuracy is that of the quantized network, activations quantized too.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import torch

from tightfit.data.loader import BatchLoader
from tightfit.export.onnx import check_parity, export_onnx, onnx_accuracy, ort_session
from tightfit.export.weights import save_weights
from tightfit.fileio import write_atomic, write_json
from tightfit.hardware.cost import CostModel
from tightfit.hardware.energy import cpu_energy
from tightfit.hardware.latency import time_runs
from tightfit.hardware.runtime_torch import keep_torch_threads
from tightfit.methods.quantize.deploy import with_activation_quantizers
from tightfit.methods.quantize.policy import QuantPolicy
from tightfit.metrics.complexity import measure_complexity
from tightfit.pipeline.stages import Candidate, QuantizedArtifacts, RunContext, StageRecord
from tightfit.train.trainer import evaluate

PARITY_SAMPLES = 256
PACKED = "weights.packed.safetensors"


class ExportStage:
    name = "export"
    distributed = False

    def run(self, candidate: Candidate, ctx: RunContext, workdir: Path) -> tuple[Candidate, StageRecord]:
        start = time.perf_counter()
        model = candidate.model.to(memory_format=torch.contiguous_format).eval()
        out, q = ctx.run_dir, candidate.quantized
        if q is not None and q.onnx is not None:  # the int8 model step 3 built is what runs
            int8 = (out / q.onnx).read_bytes()
            onnx_path = write_atomic(out / "model.onnx", lambda tmp: tmp.write_bytes(int8))
        else:
            onnx_path = export_onnx(model, ctx.input_shape, out / "model.onnx")
        save_weights(model, out / "weights.safetensors")
        write_json(out / "model.json", candidate.spec.to_json())
        reference = model if q is None else _write_quantized(q, model, out)

        test = BatchLoader(ctx.data.test, 256, ctx.normalize)
        session = ort_session(onnx_path)
        x = next(iter(BatchLoader(ctx.data.test, PARITY_SAMPLES, ctx.normalize)))[0]
        # int8: against the fake-quantized network ORT should reproduce; fp32: against the network exported
        parity = check_parity(reference if q is not None and q.onnx is not None else model, session, x)
        _, torch_acc = evaluate(reference, test)
        onnx_acc = onnx_accuracy(session, test)
        complexity = measure_complexity(model, ctx.input_shape)
        latency, energy = _latency_and_energy(ctx, model, onnx_path, q)
        results = {
            "test_acc_torch": torch_acc, "test_acc_onnx": onnx_acc, "parity": parity.to_json(),
            "complexity": complexity.to_json(), "latency": latency, "energy": energy,
            "onnx_bytes": onnx_path.stat().st_size,
            "weights_bytes": (out / "weights.safetensors").stat().st_size,
            "packed_bytes": None if q is None else (out / PACKED).stat().st_size,
            "onnx_precision": "fp32" if q is None or q.onnx is None else "int8 QDQ where the policy says int8",
            "torch_model": "fp32" if q is None else "quantized as the policy says (weights and activations)",
        }
        return candidate, StageRecord(self.name, time.perf_counter() - start, results)


def _write_quantized(q: QuantizedArtifacts, model: torch.nn.Module, out: Path) -> torch.nn.Module:
    """The packed weights and the policy beside the model; returns the PyTorch network that computes what
    the quantized one does (its activations quantized too), the reference for parity and accuracy."""
    write_atomic(out / PACKED, lambda tmp: shutil.copyfile(out / q.packed, tmp))
    write_json(out / "quantization.json", {"policy": q.policy, "activation_clips": q.to_json()["activation_clips"]})
    return with_activation_quantizers(model, QuantPolicy.from_json(q.policy), q.activation_clips)


def _latency_and_energy(ctx: RunContext, model: torch.nn.Module, onnx_path: Path,
                        q: QuantizedArtifacts | None = None) -> tuple[dict, dict]:
    """Measured on measured targets (the deployed ONNX model on cpu-ort); computed on analytic ones, at the
    quantization policy's bits when there is one."""
    target = ctx.target
    if target.kind == "analytic":
        if q is None:
            cost = CostModel(target).of_model(model, ctx.input_shape)
        else:
            widest = target.accelerator.max_bits
            bits = {n: (min(w, widest), min(a, widest)) for n, (w, a) in q.policy["bits"].items()}
            cost = CostModel(target).of_policy(model, ctx.input_shape, bits)
        return ({"p50_ms": cost.latency_ms, "p90_ms": cost.latency_ms, "runs": 0, "source": cost.latency_source},
                {"mj": cost.energy_mj, "source": cost.energy_source})
    runtime = target.runtime()
    run_once = target.prepare(model, onnx_path, ctx.input_shape)  # one session for latency and energy
    with keep_torch_threads():
        stats = time_runs(run_once, runtime.warmup, runtime.repeats)
        energy = cpu_energy(run_once, stats.p50_ms, target.threads)
    return ({**stats.to_json(), "source": f"measured end to end, {target.threads} thread(s)"},
            {"mj": energy.mj, "source": energy.source})
