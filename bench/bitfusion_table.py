"""Latency and energy of two MobileNetV2 layers on the analytic Bit Fusion target, over w_bits x a_bits in 1..8.

The layers come from MobileNetV2-w0.5 at 32x32 (CIFAR scale): a 1x1 pointwise expansion (48 -> 288 channels
at 8x8) and the 3x3 depthwise conv that follows it (288 channels at 8x8). The model is analytic
(tightfit.hardware.bitfusion, parameters in tightfit/hardware/accelerators/bitfusion.yaml), so the numbers
are exact and machine-independent; the table shows where the roofline switches from compute to memory and
why HAQ's edge policy gives depthwise layers fewer bits (SPEC section 3).

    python bench/bitfusion_table.py
"""

from __future__ import annotations

import itertools

import matplotlib
import matplotlib.pyplot as plt
from _common import RESULTS, write_result

from tightfit.hardware.bitfusion import default_bitfusion, layer_cost
from tightfit.hardware.layers import LayerOp, extract_layers
from tightfit.models import ModelSpec, build_model

MODEL = ModelSpec("mobilenetv2", 32, 3, 10, 0.5)
LAYERS = {"pointwise": "blocks.11.conv.0.0", "depthwise": "blocks.11.conv.1.0"}
BITS = range(1, 9)


def pick_layers() -> dict[str, LayerOp]:
    ops = {op.name: op for op in extract_layers(build_model(MODEL), (3, 32, 32))}
    return {role: ops[name] for role, name in LAYERS.items()}


def print_grid(title: str, rows: list[dict], role: str, key: str, scale: float, unit: str) -> None:
    print(f"\n{title} [{unit}], rows w_bits, columns a_bits")
    print("w\\a " + "".join(f"{a:>10}" for a in BITS))
    for w in BITS:
        cells = {r["a_bits"]: r for r in rows if r["layer"] == role and r["w_bits"] == w}
        line = "".join(f"{cells[a][key] * scale:>9.3f}{'*' if cells[a]['memory_bound'] else ' '}" for a in BITS)
        print(f"{w:>3} {line}")


def heatmap(rows: list[dict], layers: dict[str, LayerOp], path) -> None:
    fig, axes = plt.subplots(2, 2, figsize=(10, 8.5), constrained_layout=True)
    for col, role in enumerate(layers):
        metrics = (("latency_s", 1e6, "latency (us)"), ("energy_j", 1e9, "energy (nJ)"))
        for row, (key, scale, unit) in enumerate(metrics):
            grid = [[next(r[key] for r in rows if r["layer"] == role and r["w_bits"] == w and r["a_bits"] == a) * scale
                     for a in BITS] for w in BITS]
            bound = {(r["w_bits"], r["a_bits"]) for r in rows if r["layer"] == role and r["memory_bound"]}
            ax = axes[row][col]
            im = ax.imshow(grid, origin="lower", cmap="viridis", extent=(0.5, 8.5, 0.5, 8.5))
            for w, a in itertools.product(BITS, BITS):
                mark = "m" if (w, a) in bound else "c"
                ax.text(a, w, f"{grid[w - 1][a - 1]:.2f}\n{mark}", ha="center", va="center", fontsize=6, color="w")
            ax.set(xlabel="a_bits", ylabel="w_bits", xticks=list(BITS), yticks=list(BITS),
                   title=f"{role} {layers[role].name}: {unit}")
            fig.colorbar(im, ax=ax, shrink=0.8)
    fig.suptitle("Bit Fusion (analytic roofline), MobileNetV2-w0.5 @32x32; m = memory-bound, c = compute-bound")
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    matplotlib.use("Agg")
    spec = default_bitfusion()
    layers = pick_layers()
    rows = []
    for (role, layer), w, a in itertools.product(layers.items(), BITS, BITS):
        c = layer_cost(layer, w, a, spec)
        rows.append({"layer": role, "name": layer.name, "w_bits": w, "a_bits": a, **c.to_json(),
                     "memory_bound": c.memory_bound})

    for role, layer in layers.items():
        print(f"\n== {role}: {layer.name} ({layer.in_channels}->{layer.out_channels}, k{layer.kernel}, "
              f"{layer.in_h}x{layer.in_w}->{layer.out_h}x{layer.out_w}, {layer.macs} MACs, "
              f"{layer.weight_count} weights)")
        print_grid("latency", rows, role, "latency_s", 1e6, "us; * = memory-bound")
        print_grid("energy", rows, role, "energy_j", 1e9, "nJ; * = memory-bound")

    summary = {}
    for role, layer in layers.items():
        mine = {(r["w_bits"], r["a_bits"]): r for r in rows if r["layer"] == role}
        summary[role] = {
            "name": layer.name, "macs": layer.macs, "weights": layer.weight_count,
            "latency_us_8x8": mine[8, 8]["latency_s"] * 1e6, "latency_us_4x4": mine[4, 4]["latency_s"] * 1e6,
            "latency_us_2x2": mine[2, 2]["latency_s"] * 1e6,
            "energy_nj_8x8": mine[8, 8]["energy_j"] * 1e9, "energy_nj_4x4": mine[4, 4]["energy_j"] * 1e9,
            "energy_nj_2x2": mine[2, 2]["energy_j"] * 1e9,
            "latency_speedup_8x8_to_2x2": mine[8, 8]["latency_s"] / mine[2, 2]["latency_s"],
            "energy_saving_8x8_to_2x2": mine[8, 8]["energy_j"] / mine[2, 2]["energy_j"],
            "memory_bound_cells": sum(r["memory_bound"] for r in mine.values()),
        }
    protocol = {"model": "mobilenetv2 width 0.5, 32x32 input, batch 1", "layers": LAYERS,
                "bits": "w_bits x a_bits in 1..8", "accelerator": spec.to_json(),
                "method": "analytic roofline: latency = max(compute, memory), SPEC section 0; no measurement"}
    path = write_result(__file__, protocol, summary, rows)
    png = RESULTS / "bitfusion_table.png"
    heatmap(rows, layers, png)
    print(f"\nsummary: {summary}\nwrote {path} and {png}")


if __name__ == "__main__":
    main()
