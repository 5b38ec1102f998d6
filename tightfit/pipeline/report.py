"""report.html: one self-contained page with the card's figures, the network and the learning curves."""

from __future__ import annotations

import html
import json
from pathlib import Path

from torch import nn

from tightfit.fileio import write_text
from tightfit.pipeline.figures import pyplot, to_svg
from tightfit.pipeline.report_prune import prune_section
from tightfit.pipeline.report_quantize import quantize_section
from tightfit.pipeline.report_search import search_section
from tightfit.pipeline.stages import StageRecord


def _learning_curves_svg(history: list[dict]) -> str:
    plt = pyplot()
    epochs = [h["epoch"] for h in history]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(9, 3.2))
    ax_loss.plot(epochs, [h["train_loss"] for h in history], label="train")
    if history and history[0]["eval_loss"] is not None:
        ax_loss.plot(epochs, [h["eval_loss"] for h in history], label="validation")
        ax_acc.plot(epochs, [h["eval_acc"] for h in history], label="validation")
    ax_acc.plot(epochs, [h["train_acc"] for h in history], label="train (augmented)")
    ax_loss.set(xlabel="epoch", ylabel="cross-entropy", title="loss")
    ax_acc.set(xlabel="epoch", ylabel="top-1", title="accuracy")
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    return to_svg(fig)


def _layers_table(model: nn.Module) -> str:
    """Every conv and linear layer in order: the network block by block."""
    rows = []
    for name, m in model.named_modules():
        if isinstance(m, nn.Conv2d):
            kind = "depthwise" if m.groups == m.in_channels and m.groups > 1 else "conv"
            rows.append((name, kind, f"{m.kernel_size[0]}x{m.kernel_size[1]}", m.stride[0], m.in_channels,
                         m.out_channels))
        elif isinstance(m, nn.Linear):
            rows.append((name, "linear", "-", "-", m.in_features, m.out_features))
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return ("<table><tr><th>layer</th><th>kind</th><th>kernel</th><th>stride</th><th>in</th><th>out</th></tr>"
            f"{body}</table>")


def _summary_table(card: dict) -> str:
    acc = card["accuracy"]
    summary = {
        "test top-1 (ONNX)": f"{acc['test_top1_onnx']:.4f}",
        "latency p50 / p90": f"{card['latency_ms']['p50']:.3f} / {card['latency_ms']['p90']:.3f} ms "
                             f"on {card['target']}",
        "ONNX size": f"{card['size_bytes']['onnx']:,} bytes",
        **({"model size (packed weights)": f"{card['size_bytes']['packed']:,} bytes"}
           if card["size_bytes"].get("packed") else {}),
        "params": f"{card['params']:,}", "FLOPs": f"{card['flops']:,}",
        "peak activation memory": f"{card['peak_activation_bytes']:,} bytes",
        "ONNX vs PyTorch max |diff|": f"{card['parity_max_abs_diff']:.2e}",
        "constraints met": str(card["all_constraints_met"]),
    }
    rows = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in summary.items())
    return f"<h2>Summary</h2><table>{rows}</table>"


def write_report(path: Path, card: dict | None, records: list[StageRecord], model: nn.Module) -> Path:
    """The run's page; `card` is None for a run that stopped before export (a search on its own)."""
    by_stage = {r.stage: r.results for r in records}
    sections = [_summary_table(card)] if card else []
    if "search" in by_stage:
        sections.append(search_section(by_stage["search"]))
    if "prune" in by_stage:
        sections.append(prune_section(by_stage["prune"]))
    if "quantize" in by_stage:
        sections.append(quantize_section(by_stage["quantize"]))
    if "train" in by_stage:
        sections.append(f"<h2>Learning curves</h2>{_learning_curves_svg(by_stage['train']['history'])}")
    sections.append(f"<h2>The network, layer by layer</h2>{_layers_table(model)}")
    if card:
        sections.append(f"<h2>card.json</h2><pre>{html.escape(json.dumps(card, indent=2))}</pre>")
        title = f"tightfit run: {card['model']['arch'] or card['model']['family']} on {card['data']['name']}"
    else:
        title = "tightfit search: " + by_stage["search"]["arch"] if "search" in by_stage else "tightfit"
    body = "\n".join(sections)
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>tightfit report</title>
<style>body{{font-family:sans-serif;max-width:960px;margin:2em auto}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:2px 8px;text-align:left}}pre{{background:#f6f6f6;padding:1em}}</style>
</head><body><h1>{html.escape(title)}</h1>
{body}</body></html>"""
    return write_text(path, page)
