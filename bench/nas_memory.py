"""Peak memory of one search training step: ProxylessNAS against a standalone network and all-paths (DARTS).

ProxylessNAS's headline claim (SPEC section 1) is that path binarization keeps the memory of a search
step at that of training one compact network, where a DARTS-style mixed op that sums all N candidates
needs about N times as much. Batch 64, 32x32, 10 classes, the search space at width 1.0:

  * standalone: the largest candidate network (every block k7e6), SGD step;
  * proxyless weight step: the supernet with the largest path sampled in every mixed op (so the same
    network runs), SGD step on the weights;
  * proxyless arch step: two paths per mixed op (the largest active, the next one inactive), Adam on alpha;
  * all-paths: every mixed op outputs sum_j softmax(alpha)_j o_j(x) (written here only, for comparison).

Two measurements per configuration: the peak of live tensor bytes the step allocates (activations,
gradients, temporaries; parameters and optimizer state excluded), and the growth of the process's peak
resident memory over one step in a fresh subprocess.

    python bench/nas_memory.py
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import torch
from _common import write_result
from torch import nn
from torch.nn import functional as F

from tightfit.methods.search.supernet import MixedOp, Supernet
from tightfit.metrics.memory import peak_step_bytes
from tightfit.models import MobileNet
from tightfit.space import MBConvChoice, SearchSpace

BATCH, RES = 64, 32
SPACE = SearchSpace(RES)
LARGEST = MBConvChoice(7, 6)


class AllPaths(nn.Module):
    """DARTS-style: the softmax(alpha)-weighted sum of every candidate's output."""

    def __init__(self, op: MixedOp):
        super().__init__()
        self.candidates, self.alpha = op.candidates, op.alpha

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = F.softmax(self.alpha, 0)
        return sum(w[j] * c(x) for j, c in enumerate(self.candidates))


def build(config: str) -> tuple[nn.Module, torch.optim.Optimizer, callable]:
    torch.manual_seed(0)
    if config == "standalone":
        model = MobileNet(SPACE.plan(SPACE.uniform_arch(LARGEST.kernel, LARGEST.expand)))
        return model, torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9), lambda: None
    net = Supernet(SPACE)
    if config == "allpaths":
        net.mixed = nn.ModuleList(AllPaths(op) for op in net.mixed)
        return net, torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9), lambda: None

    def largest_path() -> None:
        for op in net.mixed:
            op.sampled, op.gates = (op.choices.index(LARGEST),), None

    def largest_pair() -> None:
        for op in net.mixed:
            active = op.choices.index(LARGEST)
            op.sampled = (active, op.choices.index(MBConvChoice(7, 3)))
            op.gates = torch.zeros(len(op.choices))
            op.gates[active] = 1.0
            op.gates.requires_grad_(True)

    if config == "proxyless_weight":
        return net, torch.optim.SGD(net.weights(), lr=0.01, momentum=0.9), largest_path
    return net, torch.optim.Adam(net.alphas(), lr=1e-3, betas=(0.0, 0.999)), largest_pair


def one_step(config: str, model: nn.Module, opt: torch.optim.Optimizer, sample: callable) -> None:
    x, y = torch.randn(BATCH, 3, RES, RES), torch.randint(0, 10, (BATCH,))
    sample()
    arch = config == "proxyless_arch"
    if arch:
        for w in model.weights():
            w.requires_grad_(False)
    loss = F.cross_entropy(model(x), y)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    if arch:
        for op in model.mixed:
            op.set_alpha_grad()
    opt.step()
    if arch:
        for w in model.weights():
            w.requires_grad_(True)


def tracked(config: str) -> dict:
    model, opt, sample = build(config)
    one_step(config, model, opt, sample)  # creates the optimizer state, which is not the step's cost
    keep = [*model.parameters(), *model.buffers(),
            *(t for s in opt.state.values() for t in s.values() if isinstance(t, torch.Tensor))]
    peak = peak_step_bytes(lambda: one_step(config, model, opt, sample), keep)
    params = sum(p.numel() for p in model.parameters())
    return {"config": config, "step_peak_bytes": peak, "params": params, "param_bytes": params * 4}


def peak_rss_bytes() -> int:
    """VmHWM, the process's peak resident memory (ru_maxrss would carry the parent's peak over fork)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def rss_child(config: str) -> None:
    """In a fresh process: peak resident memory before and after one step."""
    torch.set_num_threads(1)
    model, opt, sample = build(config)
    before = peak_rss_bytes()
    one_step(config, model, opt, sample)
    print(json.dumps({"rss_growth_bytes": peak_rss_bytes() - before}))


def main() -> None:
    configs = ["standalone", "proxyless_weight", "proxyless_arch", "allpaths"]
    rows = []
    for config in configs:
        row = tracked(config)
        out = subprocess.run([sys.executable, __file__, "--child", config], capture_output=True, text=True, check=True)
        row.update(json.loads(out.stdout.strip().splitlines()[-1]))
        rows.append(row)
        print(row)
    by = {r["config"]: r for r in rows}
    base = by["standalone"]
    summary = {
        "proxyless_over_standalone": by["proxyless_weight"]["step_peak_bytes"] / base["step_peak_bytes"],
        "proxyless_arch_over_standalone": by["proxyless_arch"]["step_peak_bytes"] / base["step_peak_bytes"],
        "allpaths_over_standalone": by["allpaths"]["step_peak_bytes"] / base["step_peak_bytes"],
        "rss": {k: by[k]["rss_growth_bytes"] / base["rss_growth_bytes"] for k in configs[1:]},
        "goal": "proxyless / standalone <= 1.3",
    }
    summary["goal_met"] = summary["proxyless_over_standalone"] <= 1.3
    protocol = {"batch": BATCH, "resolution": RES, "space_width": SPACE.width_mult, "classes": 10,
                "paths": "largest candidate (k7e6) in every mixed op; arch step: k7e6 active, k7e3 inactive",
                "step_peak_bytes": "peak of live tensor storage allocated during one step (forward, backward, "
                                   "optimizer step), parameters and optimizer state excluded (torch dispatch "
                                   "tracking, second step after a warm-up step)",
                "rss_growth_bytes": "peak resident memory (VmHWM) after one step minus before, in a fresh process "
                                    "(includes the optimizer state the first step creates)"}
    print(json.dumps(summary, indent=2))
    print(write_result(__file__, protocol, summary, rows))


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        rss_child(sys.argv[2])
    else:
        main()
