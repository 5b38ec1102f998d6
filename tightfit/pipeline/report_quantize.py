"""The report's step-3 section: weight and activation bits per layer (as in HAQ's figures, depthwise layers
marked) and the reward per episode."""

from __future__ import annotations

import html

from tightfit.pipeline.figures import pyplot, to_svg

FP = 32


def _svg(quant: dict) -> str:
    plt = pyplot()
    layers, history = quant["layers"], quant["history"]
    fig, (ax_bits, ax_reward) = plt.subplots(1, 2, figsize=(11, 3.6), gridspec_kw={"width_ratios": [3, 2]})
    x = range(1, len(layers) + 1)
    # HAQ's figure: weight bits up, activation bits down, one bar pair per layer; fp32 drawn at 9 and hatched
    shown = [min(layer["w_bits"], 9) for layer in layers], [-min(layer["a_bits"], 9) for layer in layers]
    ax_bits.bar(x, shown[0], color="tab:blue", label="weight bits")
    if any(layer["a_bits"] < FP for layer in layers):
        ax_bits.bar(x, shown[1], color="tab:green", label="activation bits")
    for i, layer in enumerate(layers, start=1):
        if layer["kind"] == "depthwise":
            ax_bits.axvspan(i - 0.5, i + 0.5, color="tab:orange", alpha=0.2, linewidth=0)
        for value, bits in ((shown[0][i - 1], layer["w_bits"]), (shown[1][i - 1], layer["a_bits"])):
            if bits >= FP and value:
                ax_bits.bar(i, value, color="none", edgecolor="k", hatch="//", linewidth=0.5)
    ax_bits.axhline(0, color="k", linewidth=0.8)
    ax_bits.set(xlabel="layer (execution order; orange: depthwise; hatched: fp32)", ylabel="bits",
                title=f"policy: {quant['cost']:.4g} / {quant['budget']:.4g} {quant['plan']['unit']}")
    ax_bits.set_yticks(range(-8, 9, 2), [str(abs(t)) for t in range(-8, 9, 2)])
    ax_bits.legend(fontsize=7, loc="lower right")
    episodes = [h["episode"] for h in history]
    ax_reward.plot(episodes, [h["reward"] for h in history], ".", ms=3, alpha=0.5, label="episode")
    best_so_far, top = [], float("-inf")
    for h in history:
        top = max(top, h["reward"])
        best_so_far.append(top)
    ax_reward.plot(episodes, best_so_far, label="best so far")
    warmup = quant["config"]["ddpg"]["warmup_episodes"]
    ax_reward.axvline(warmup + 0.5, color="k", linestyle="--", linewidth=0.8, label="end of warm-up")
    ax_reward.set(xlabel="episode", ylabel="reward = 0.1 (acc_q - acc)", title="DDPG reward")
    ax_reward.legend(fontsize=7)
    for ax in (ax_bits, ax_reward):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return to_svg(fig)


def quantize_section(quant: dict) -> str:
    plan, best = quant["plan"], quant["best"]

    def bits(b: int) -> str:
        return "fp32" if b >= FP else str(b)

    rows = "".join(f"<tr><td>{i}</td><td>{html.escape(layer['name'])}</td><td>{layer['kind']}</td>"
                   f"<td>{bits(layer['w_bits'])}</td><td>{bits(layer['a_bits'])}</td><td>{layer['weights']:,}</td></tr>"
                   for i, layer in enumerate(quant["layers"], start=1))
    predicted = quant["predicted"] or {}
    cost = ", ".join(f"{k.replace('_', ' ')} {v:.4g}" for k, v in predicted.items() if isinstance(v, float))
    return f"""<h2>Step 3: mixed-precision quantization (HAQ)</h2>
<p>{plan['mode']} precision, {plan['method']} quantizer; budget {quant['budget']:.4g} {plan['unit']}
({html.escape(quant['budget_source'])}), policy {quant['cost']:.4g} {plan['unit']}; best of
{len(quant['history'])} episodes (episode {best['episode']}). Validation accuracy {quant['val_acc_original']:.4f}
unquantized, {quant['val_acc_before_finetune']:.4f} quantized, {quant['val_acc_after_finetune']:.4f} after
fine-tuning; {quant['avg_weight_bits']:.2f} bits per weight on average, packed weights
{quant['packed_bytes']:,} bytes{'; predicted ' + cost if cost else ''}.</p>
{_svg(quant)}
<table><tr><th>#</th><th>layer</th><th>kind</th><th>weight bits</th><th>activation bits</th><th>weights</th></tr>
{rows}</table>"""
