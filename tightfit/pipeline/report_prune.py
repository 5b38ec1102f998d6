"""The report's step-2 section: per-group preserve ratios (as in AMC's figures) and the reward per episode."""

from __future__ import annotations

import html

from tightfit.pipeline.figures import pyplot, to_svg


def _svg(prune: dict) -> str:
    plt = pyplot()
    groups, best, history = prune["groups"], prune["best"], prune["history"]
    fig, (ax_keep, ax_reward) = plt.subplots(1, 2, figsize=(11, 3.4), gridspec_kw={"width_ratios": [3, 2]})
    colors = ["tab:orange" if g["kind"] == "depthwise" else "tab:blue" for g in groups]
    ax_keep.bar(range(1, len(groups) + 1), best["preserve"], color=colors)
    ax_keep.set(xlabel="channel group (execution order; orange: feeds a depthwise conv)", ylabel="preserve ratio",
                ylim=(0, 1.05), title=f"policy at {best['flops_ratio']:.0%} FLOPs")
    ax_reward.plot([h["episode"] for h in history], [h["reward"] for h in history], ".", ms=3, alpha=0.5,
                   label="episode")
    best_so_far, top = [], float("-inf")
    for h in history:
        top = max(top, h["reward"])
        best_so_far.append(top)
    ax_reward.plot([h["episode"] for h in history], best_so_far, label="best so far")
    warmup = prune["config"]["ddpg"]["warmup_episodes"]
    ax_reward.axvline(warmup + 0.5, color="k", linestyle="--", linewidth=0.8, label="end of warm-up")
    ax_reward.set(xlabel="episode", ylabel="reward", title="DDPG reward")
    ax_reward.legend(fontsize=7)
    for ax in (ax_keep, ax_reward):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return to_svg(fig)


def prune_section(prune: dict) -> str:
    if prune.get("skipped"):
        return "<h2>Step 2: channel pruning (AMC)</h2><p>The network already met the FLOPs budget.</p>"
    best = prune["best"]
    rows = "".join(
        f"<tr><td>{i + 1}</td><td>{html.escape(g['layer'])}</td><td>{g['channels']}</td><td>{k}</td>"
        f"<td>{k / g['channels']:.2f}</td></tr>" for i, (g, k) in enumerate(zip(prune["groups"], best["keep"],
                                                                                strict=True)))
    budget = "accuracy-guaranteed (no budget)" if prune["budget_ratio"] is None else \
        f"keep {prune['budget_ratio']:.0%} of the {prune['config']['metric']}"
    return f"""<h2>Step 2: channel pruning (AMC)</h2>
<p>{budget}; best of {len(prune['history'])} episodes (episode {best['episode']}): validation accuracy
{best['accuracy']:.4f} before fine-tuning, {prune['val_acc_after_finetune']:.4f} after; FLOPs
{prune['flops_before']:,.0f} to {prune['flops_after']:,.0f}, parameters {prune['params_before']:,} to
{prune['params_after']:,}.</p>
{_svg(prune)}
<table><tr><th>group</th><th>first layer</th><th>channels</th><th>kept</th><th>preserve</th></tr>{rows}</table>"""
