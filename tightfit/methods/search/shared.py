"""Weight sharing across the candidates of one block position (an option; the paper's candidates are separate).

ProxylessNAS gives every candidate weights of its own, so random single-path training updates each one in
about a sixth of the steps; the paper's 40-epoch ImageNet warm-up affords that, a CPU budget does not.
Shared, one MBConv of the position's largest kernel and expansion holds the weights, and a (kernel, expand)
candidate runs its leading hidden channels and the centre of its kernel (Single-Path NAS, Stamoulis et al.
2019; OFA's elastic kernel and width, Cai et al. 2020, without OFA's kernel transform). Every step then
trains what every candidate uses. BatchNorm statistics are shared too, sliced like the channels.
"""

from __future__ import annotations

from dataclasses import replace

import torch
from torch import nn
from torch.nn import functional as F

from tightfit.errors import TightfitError
from tightfit.models.blocks import MBConv
from tightfit.space.arch import Block
from tightfit.space.plan import MBConvSpec


def _bn(x: torch.Tensor, bn: nn.BatchNorm2d, n: int, training: bool) -> torch.Tensor:
    """BatchNorm over the first `n` channels; the slices are views, so running statistics update in place."""
    if training and bn.num_batches_tracked is not None:
        bn.num_batches_tracked.add_(1)
    return F.batch_norm(x, bn.running_mean[:n], bn.running_var[:n], bn.weight[:n], bn.bias[:n],
                        training, bn.momentum, bn.eps)


class SharedMBConv(MBConv):
    """The position's largest MBConv; `run(x, kernel, hidden)` computes the smaller candidate it contains."""

    def __init__(self, spec: MBConvSpec, choices: tuple[Block | None, ...]):
        blocks = [c for c in choices if c is not None]
        if any(c.expand == 1 for c in blocks):
            raise TightfitError("shared candidate weights need an expansion conv in every candidate (expand > 1)")
        super().__init__(replace(spec, kernel=max(c.kernel for c in blocks), expand=max(c.expand for c in blocks),
                                 hidden=None))
        self.spec = spec

    def hidden_of(self, block: Block) -> int:
        return replace(self.spec, kernel=block.kernel, expand=block.expand, hidden=None).hidden_channels

    def _depthwise_weight(self, kernel: int, hidden: int) -> torch.Tensor:
        """The first `hidden` channels of the depthwise kernel, cropped to its centre `kernel` x `kernel`."""
        depthwise = self.conv[1][0]
        off = (depthwise.kernel_size[0] - kernel) // 2
        return depthwise.weight[:hidden, :, off:off + kernel, off:off + kernel]

    def run(self, x: torch.Tensor, kernel: int, hidden: int) -> torch.Tensor:
        (expand, expand_bn, _), (depthwise, dw_bn, _), (project, project_bn) = self.conv
        y = F.relu6(_bn(F.conv2d(x, expand.weight[:hidden]), expand_bn, hidden, self.training))
        y = F.conv2d(y, self._depthwise_weight(kernel, hidden), stride=depthwise.stride, padding=kernel // 2,
                     groups=hidden)
        y = F.relu6(_bn(y, dw_bn, hidden, self.training))
        out = _bn(F.conv2d(y, project.weight[:, :hidden]), project_bn, project.weight.shape[0], self.training)
        return x + out if self.residual else out

    def state_of(self, kernel: int, hidden: int) -> dict[str, torch.Tensor]:
        """The candidate's weights as a plain `MBConv`'s state dict (for a derived network): the slices `run`
        uses; the projection's BatchNorm covers the output channels and is kept whole."""
        convs = {"conv.0.0.weight": self.conv[0][0].weight[:hidden],
                 "conv.1.0.weight": self._depthwise_weight(kernel, hidden),
                 "conv.2.0.weight": self.conv[2][0].weight[:, :hidden]}
        state = {}
        for key, value in self.state_dict().items():
            if key in convs:
                value = convs[key]
            elif value.dim() == 1 and not key.startswith("conv.2."):  # the hidden layers' BatchNorms
                value = value[:hidden]
            state[key] = value.detach().clone()
        return state


class SharedCandidate(nn.Module):
    """One candidate of a shared position: no weights of its own, a view into the position's `SharedMBConv`."""

    def __init__(self, owner: SharedMBConv, block: Block):
        super().__init__()
        self.__dict__["owner"] = owner  # not a submodule: the mixed op registers the owner once
        self.kernel, self.hidden = block.kernel, owner.hidden_of(block)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.owner.run(x, self.kernel, self.hidden)

    def state_dict_as_mbconv(self) -> dict[str, torch.Tensor]:
        return self.owner.state_of(self.kernel, self.hidden)
