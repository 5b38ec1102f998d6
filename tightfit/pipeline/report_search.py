"""The report's step-1 section: the searched network block by block and how p evolved during the search."""

from __future__ import annotations

import html

from tightfit.pipeline.figures import pyplot, to_svg


def _probs_svg(search: dict) -> str:
    """One panel per block position: p of every candidate over the epochs (stacked), then E[cost] vs T."""
    plt = pyplot()
    history, names = search["history"], search["candidates"]
    epochs = [h["epoch"] for h in history]
    n = len(names)
    cols = 6
    rows = -(-n // cols) + 1
    fig = plt.figure(figsize=(12, 1.9 * rows))
    for pos in range(n):
        ax = fig.add_subplot(rows, cols, pos + 1)
        series = [[h["probs"][pos][j] for h in history] for j in range(len(names[pos]))]
        ax.stackplot(epochs, series, labels=names[pos])
        ax.set_title(f"block {pos + 1}", fontsize=8)
        ax.set_ylim(0, 1)
        ax.tick_params(labelsize=6)
        if pos == 0:
            fig.legend(*ax.get_legend_handles_labels(), loc="upper right", fontsize=7, ncol=7)
    ax = fig.add_subplot(rows, 1, rows)
    ax.plot(epochs, [h["expected_cost"] for h in history], label=f"E[{search['metric']}] under p")
    ax.plot(epochs, [h["argmax_cost"] for h in history], label="argmax network")
    if search["target"] is not None:
        ax.axhline(search["target"], color="k", linestyle="--", label="target T")
    ax.set(xlabel="epoch", ylabel=search["unit"])
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout(rect=(0, 0, 1, 0.95))
    return to_svg(fig)


def search_section(search: dict) -> str:
    final = search["history"][-1]["probs"]
    chosen = search["arch"].replace("_", "-").split("-")
    rows = "".join(
        f"<tr><td>{i + 1}</td><td>{html.escape(c if c != 'skip' else 'zero (skipped)')}</td>"
        f"<td>{max(p):.3f}</td><td>{html.escape(names[p.index(max(p))])}</td></tr>"
        for i, (c, p, names) in enumerate(zip(chosen, final, search["candidates"], strict=True)))
    target = "none" if search["target"] is None else f"{search['target']:.4g} {search['unit']}"
    note = "" if search["argmax_met_target"] in (None, True) else (
        " The argmax of alpha was predicted over the target; tightfit's constrained derivation switched the "
        "blocks that cost the least probability per unit saved.")
    return f"""<h2>Step 1: searched architecture (ProxylessNAS)</h2>
<p><code>{html.escape(search['arch'])}</code>: predicted {search['metric']} {search['cost']:.4g} {search['unit']}
(target {target}; argmax {search['argmax_cost']:.4g}).{note}</p>
<table><tr><th>block</th><th>chosen</th><th>max p</th><th>argmax of p</th></tr>{rows}</table>
<h3>Evolution of p during the search</h3>{_probs_svg(search)}"""
