"""Stage: write the deployable artifact and measure it (SPEC section 5).

model.onnx (checked for parity against PyTorch and scored on the untouched test split), reloadable
weights (safetensors) with model.json to rebuild the network, complexity figures, and latency measured
on the target.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch

from tightfit.data.loader import BatchLoader
from tightfit.export.onnx import check_parity, export_onnx, onnx_accuracy, ort_session
from tightfit.export.weights import save_weights
from tightfit.fileio import write_json
from tightfit.hardware.cost import CostModel
from tightfit.hardware.energy import cpu_energy
from tightfit.hardware.latency import time_runs
from tightfit.hardware.runtime_torch import keep_torch_threads
from tightfit.metrics.complexity import measure_complexity
from tightfit.pipeline.stages import Candidate, RunContext, StageRecord
from tightfit.train.trainer import evaluate

PARITY_SAMPLES = 256


class ExportStage:
    name = "export"
    distributed = False

    def run(self, candidate: Candidate, ctx: RunContext, workdir: Path) -> tuple[Candidate, StageRecord]:
        start = time.perf_counter()
        model = candidate.model.to(memory_format=torch.contiguous_format).eval()
        out = ctx.run_dir
        onnx_path = export_onnx(model, ctx.input_shape, out / "model.onnx")
        save_weights(model, out / "weights.safetensors")
        write_json(out / "model.json", candidate.spec.to_json())

        test = BatchLoader(ctx.data.test, 256, ctx.normalize)
        session = ort_session(onnx_path)
        x = next(iter(BatchLoader(ctx.data.test, PARITY_SAMPLES, ctx.normalize)))[0]
        parity = check_parity(model, session, x)
        _, torch_acc = evaluate(model, test)
        onnx_acc = onnx_accuracy(session, test)
        complexity = measure_complexity(model, ctx.input_shape)
        latency, energy = _latency_and_energy(ctx, model, onnx_path)
        results = {
            "test_acc_torch": torch_acc, "test_acc_onnx": onnx_acc, "parity": parity.to_json(),
            "complexity": complexity.to_json(), "latency": latency, "energy": energy,
            "onnx_bytes": onnx_path.stat().st_size,
            "weights_bytes": (out / "weights.safetensors").stat().st_size,
        }
        return candidate, StageRecord(self.name, time.perf_counter() - start, results)


def _latency_and_energy(ctx: RunContext, model: torch.nn.Module, onnx_path: Path) -> tuple[dict, dict]:
    """Measured on measured targets (the deployed ONNX model on cpu-ort); computed on analytic ones."""
    target = ctx.target
    if target.kind == "analytic":
        cost = CostModel(target).of_model(model, ctx.input_shape)
        return ({"p50_ms": cost.latency_ms, "p90_ms": cost.latency_ms, "runs": 0, "source": cost.latency_source},
                {"mj": cost.energy_mj, "source": cost.energy_source})
    runtime = target.runtime()
    run_once = target.prepare(model, onnx_path, ctx.input_shape)  # one session for latency and energy
    with keep_torch_threads():
        stats = time_runs(run_once, runtime.warmup, runtime.repeats)
        energy = cpu_energy(run_once, stats.p50_ms, target.threads)
    return ({**stats.to_json(), "source": f"measured end to end, {target.threads} thread(s)"},
            {"mj": energy.mj, "source": energy.source})
