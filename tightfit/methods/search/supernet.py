"""The over-parameterised network of ProxylessNAS (Cai et al., ICLR 2019), section 3.1.

Every block position of the search space holds a `MixedOp`: one MBConv per candidate {3,5,7} x {3,6},
plus `zero` where the block keeps its stride and width, and architecture parameters alpha with
p = softmax(alpha). A binary gate g picks the path(s) that run; the others are never executed, so the
memory of a training step is that of one compact network (`bench/nas_memory.py`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import torch
from torch import nn
from torch.nn import functional as F

from tightfit.methods.search.shared import SharedCandidate, SharedMBConv
from tightfit.models.blocks import ConvBNAct, MBConv
from tightfit.models.mobilenet import MobileNet, init_weights
from tightfit.space.arch import Arch, Block
from tightfit.space.plan import MBConvSpec
from tightfit.space.space import SearchSpace


class Zero(nn.Module):
    """The `zero` op: the block is skipped and its residual carries the input through."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


class _TwoPathGate(torch.autograd.Function):
    """out = sum_j g_j o_j(x) with g one-hot over two sampled paths, computing dL/dg_j = <dL/dout, o_j(x)>.

    Only the active path keeps an autograd graph; the inactive one is run under no_grad in the backward
    pass just to get its output, as in the released code's ArchGradientFunction.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, gates: torch.Tensor, op: MixedOp) -> torch.Tensor:  # noqa: ANN001
        active, inactive = op.sampled
        x_in = x.detach().requires_grad_(x.requires_grad)
        with torch.enable_grad():
            out = op.candidates[active](x_in)
        ctx.op = op
        ctx.save_for_backward(x_in, out)
        return out.detach()

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):  # noqa: ANN205
        x_in, out = ctx.saved_tensors
        op: MixedOp = ctx.op
        active, inactive = op.sampled
        grad_x = None
        if x_in.requires_grad:
            (grad_x,) = torch.autograd.grad(out, x_in, grad_out, retain_graph=False)
        with torch.no_grad():
            other = op.candidates[inactive](x_in.detach())
            grad_gates = torch.zeros(len(op.candidates), dtype=grad_out.dtype, device=grad_out.device)
            grad_gates[active] = (out.detach() * grad_out).sum()
            grad_gates[inactive] = (other * grad_out).sum()
        return grad_x, grad_gates, None


class MixedOp(nn.Module):
    """One block position: candidate paths, their alpha, and the path(s) sampled for the current step."""

    def __init__(self, spec: MBConvSpec, choices: tuple[Block, ...], shared: bool = False):
        super().__init__()
        self.choices = choices
        self.shared = SharedMBConv(spec, choices) if shared else None
        self.candidates = nn.ModuleList(
            Zero() if c is None
            else SharedCandidate(self.shared, c) if self.shared is not None
            else MBConv(replace(spec, kernel=c.kernel, expand=c.expand)) for c in choices)
        self.alpha = nn.Parameter(torch.zeros(len(choices)))
        self.sampled: tuple[int, ...] = (0,)  # one index: weight step; two (active, inactive): arch step
        self.gates: torch.Tensor | None = None

    @property
    def probs(self) -> torch.Tensor:
        return F.softmax(self.alpha, dim=0)

    def sample_single(self, gen: torch.Generator) -> None:
        """g ~ multinomial(p): one path runs (weight step)."""
        self.sampled = (int(torch.multinomial(self.probs.detach().cpu(), 1, generator=gen)),)
        self.gates = None

    def sample_pair(self, gen: torch.Generator) -> None:
        """Two paths from the multinomial over p; one of them is active with the probability renormalised over
        the two (the released code's "two" mode). Gates are one-hot on the active one and carry dL/dg."""
        pair = torch.multinomial(self.probs.detach().cpu(), 2, replacement=False, generator=gen).tolist()
        within = F.softmax(self.alpha.detach().cpu()[pair], dim=0)
        first = int(torch.multinomial(within, 1, generator=gen))
        self.sampled = (pair[first], pair[1 - first])
        self.gates = torch.zeros(len(self.choices), device=self.alpha.device)
        self.gates[self.sampled[0]] = 1.0
        self.gates.requires_grad_(True)

    def pair_probs(self) -> torch.Tensor:
        """p renormalised over the two sampled paths, scattered into a length-N vector (zero elsewhere).

        The expected latency of an architecture step uses these, so its gradient too reaches only the
        two sampled alphas and the rescaling below leaves every other path's probability unchanged."""
        idx = torch.tensor(self.sampled, device=self.alpha.device)
        return torch.zeros_like(self.alpha).index_put((idx,), F.softmax(self.alpha[idx], dim=0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.gates is None:
            return self.candidates[self.sampled[0]](x)
        return _TwoPathGate.apply(x, self.gates, self)

    @torch.no_grad()
    def align_candidates(self) -> None:
        """Initialise every candidate to compute the same function as the smallest one (k3, smallest expand).

        The larger kernels get the small kernel at their centre and zeros around it; the wider expansions
        get the small one's hidden channels first and zero projection weights for the others. The paths
        still have weights of their own and drift apart as they train; only their starting point is shared.
        With shared weights the candidates are slices of one block already, and there is nothing to align.
        """
        if self.shared is not None:
            return
        mbconvs = [(c, m) for c, m in zip(self.choices, self.candidates, strict=True) if c is not None]
        (_, base), *others = sorted(mbconvs, key=lambda cm: (cm[0].kernel, cm[0].expand))
        for _, other in others:
            _copy_into(base, other)

    def candidate_state(self, block: Block) -> dict[str, torch.Tensor]:
        """`block`'s weights as a plain MBConv's state dict."""
        candidate = self.candidates[self.choices.index(block)]
        if isinstance(candidate, SharedCandidate):
            return candidate.state_dict_as_mbconv()
        return candidate.state_dict()

    @torch.no_grad()
    def set_alpha_grad(self) -> None:
        """BinaryConnect-style estimate over the two sampled paths (SPEC section 1):
        dL/dalpha_i += sum_j dL/dg_j * p_j * (delta_ij - p_i), p renormalised over the pair."""
        assert self.gates is not None and self.gates.grad is not None, "run an architecture step's backward first"
        pair = list(self.sampled)
        p = F.softmax(self.alpha[pair], dim=0)
        g = self.gates.grad[pair]
        if self.alpha.grad is None:
            self.alpha.grad = torch.zeros_like(self.alpha)
        for i in range(2):
            self.alpha.grad[pair[i]] += sum(g[j] * p[j] * (float(i == j) - p[i]) for j in range(2))

    @torch.no_grad()
    def rescale_pair(self, before: torch.Tensor) -> None:
        """Add one constant to both updated alphas so that sum over the pair of exp(alpha) is unchanged:
        the probabilities of the paths not sampled stay exactly what they were."""
        pair = list(self.sampled)
        offset = torch.logsumexp(self.alpha[pair], 0) - torch.logsumexp(before[pair], 0)
        self.alpha[pair] -= offset


def _copy_into(small: MBConv, large: MBConv) -> None:
    """Make `large` compute `small`'s function: small's weights in its leading channels, the small kernel at
    the centre of the large one with zeros around it, and zero weights from the extra hidden channels into
    the projection (they still have random weights of their own, so they start learning at once)."""
    if len(small.conv) != len(large.conv):
        return  # an expand-1 candidate has no expansion conv: nothing to align
    for s_cba, l_cba in zip(small.conv, large.conv, strict=True):
        sc, lc, sb, lb = s_cba[0], l_cba[0], s_cba[1], l_cba[1]
        out, inp, k = sc.weight.shape[0], sc.weight.shape[1], sc.kernel_size[0]
        if sc.groups > 1:  # depthwise
            off = (lc.kernel_size[0] - k) // 2
            lc.weight[:out].zero_()
            lc.weight[:out, :, off:off + k, off:off + k] = sc.weight
        else:
            lc.weight[:, inp:].zero_()
            lc.weight[:out, :inp] = sc.weight
        for name in ("weight", "bias", "running_mean", "running_var"):
            getattr(lb, name)[:out] = getattr(sb, name)


def zero_init_residuals(net: nn.Module) -> None:
    """Start every residual candidate as the identity (its last BatchNorm's gamma at 0, Goyal et al., 2017).

    Single-path training switches each block between candidates with unrelated weights at every step, and
    with 21 switching blocks it barely learned in the few hundred steps a CPU search takes (digits: 18%
    training accuracy after 20 epochs; 31% with this); one fixed path reaches 93% in 6. Starting residual
    candidates as the identity leaves only the stage-opening blocks switching at first.
    """
    for gamma in residual_gammas(net):
        nn.init.zeros_(gamma)


def residual_gammas(net: nn.Module) -> Iterator[nn.Parameter]:
    """The last BatchNorm's gamma of every residual candidate: the scale of the branch F in x + F(x)."""
    for m in net.modules():
        if isinstance(m, MBConv) and m.residual:
            yield m.conv[-1][1].weight


class Supernet(nn.Module):
    """Fixed stem, first block and head of the space; a `MixedOp` at every searchable position. With
    `shared_weights`, each position's candidates are slices of one block (`shared.py`)."""

    def __init__(self, space: SearchSpace, dropout: float = 0.0, shared_weights: bool = False):
        super().__init__()
        self.space = space
        self.shared_weights = shared_weights
        plan = space.plan(space.uniform_arch(space.kernels[0], space.expands[0]))
        self.stem = ConvBNAct(plan.in_channels, plan.stem_channels, 3, plan.stem_stride)
        self.first = MBConv(plan.blocks[0])
        self.mixed = nn.ModuleList(MixedOp(spec, space.candidates(s, i), shared_weights)
                                   for spec, (s, i) in zip(space.position_specs(), space.positions(), strict=True))
        self.head = ConvBNAct(plan.blocks[-1].out_channels, plan.head_channels, 1)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(plan.head_channels, plan.num_classes)
        init_weights(self)
        zero_init_residuals(self)
        for op in self.mixed:
            op.align_candidates()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.first(self.stem(x))
        for op in self.mixed:
            x = op(x)
        x = self.head(x)  # (B, C_head, h, w)
        return self.classifier(self.dropout(torch.flatten(self.pool(x), 1)))

    def alphas(self) -> list[nn.Parameter]:
        return [op.alpha for op in self.mixed]

    def weights(self) -> list[nn.Parameter]:
        ids = {id(a) for a in self.alphas()}
        return [p for p in self.parameters() if id(p) not in ids]

    def probs(self) -> list[list[float]]:
        return [op.probs.detach().cpu().tolist() for op in self.mixed]

    def sample_single(self, gen: torch.Generator) -> None:
        for op in self.mixed:
            op.sample_single(gen)

    def sample_pairs(self, gen: torch.Generator) -> None:
        for op in self.mixed:
            op.sample_pair(gen)

    def argmax_arch(self) -> Arch:
        """argmax(alpha) per mixed op; a chosen `zero` removes the block."""
        return self.arch_of([int(op.alpha.argmax()) for op in self.mixed])

    def arch_of(self, indices: list[int]) -> Arch:
        blocks = iter(op.choices[i] for op, i in zip(self.mixed, indices, strict=True))
        return Arch(tuple(tuple(next(blocks) for _ in range(d)) for d in self.space.stage_depths))

    def derived_network(self, arch: Arch, inherit: bool) -> MobileNet:
        """The plain network of `arch`; with `inherit`, initialised from the supernet's weights."""
        net = MobileNet(self.space.plan(arch))
        if not inherit:
            return net
        net.stem.load_state_dict(self.stem.state_dict())
        kept = iter(net.blocks)
        next(kept).load_state_dict(self.first.state_dict())
        for op, block in zip(self.mixed, (b for stage in arch.stages for b in stage), strict=True):
            if block is not None:
                next(kept).load_state_dict(op.candidate_state(block))
        net.head.load_state_dict(self.head.state_dict())
        net.classifier.load_state_dict(self.classifier.state_dict())
        return net
