"""Which int8 format runs faster on this CPU through ONNX Runtime: QDQ or QOperator (against fp32)?

MobileNetV2 w1.0 at 32x32, batch 1, the tables' thread count; all three timed with the tables' robust
estimator (minimum over shuffled passes of per-pass medians), interleaved.

    python bench/int8_format.py
"""

from __future__ import annotations

from _common import write_result

from tightfit.hardware import get_target
from tightfit.hardware.latency import interleaved_latency
from tightfit.hardware.runtime_ort import export_bytes, quantize_int8
from tightfit.models import ModelSpec, build_model

SHAPE = (3, 32, 32)


def main() -> None:
    target = get_target("cpu-ort")
    runtime = target.runtime()
    fp32 = export_bytes(build_model(ModelSpec("mobilenetv2", 32, 3, 10, 1.0)), SHAPE)
    models = {"fp32": fp32, "QDQ": quantize_int8(fp32, SHAPE, fmt="QDQ"),
              "QOperator": quantize_int8(fp32, SHAPE, fmt="QOperator")}
    times = interleaved_latency([runtime.prepare_onnx(m, SHAPE) for m in models.values()])
    ms = dict(zip(models, times, strict=True))
    summary = {**{f"{k}_ms": v for k, v in ms.items()}, "speedup_qdq": ms["fp32"] / ms["QDQ"],
               "speedup_qoperator": ms["fp32"] / ms["QOperator"], "faster": min(("QDQ", "QOperator"), key=ms.get)}
    protocol = {"network": "mobilenetv2 w1.0", "resolution": 32, "batch_size": 1, "threads": target.threads,
                "estimator": "min over 9 shuffled passes (>= 6 s) of the median of 20 runs"}
    print(summary)
    print(write_result(__file__, protocol, summary, []))


if __name__ == "__main__":
    main()
