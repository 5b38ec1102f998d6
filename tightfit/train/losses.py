"""Loss terms the trainer can add to cross-entropy."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class DistillationLoss:
    """Knowledge distillation (Hinton et al., 2015): weight * T^2 * KL(teacher_T || student_T).

    Used by the supernet training of later stages, where the largest network teaches its sub-networks.
    """

    def __init__(self, teacher: nn.Module, temperature: float = 1.0, weight: float = 1.0):
        self.teacher = teacher.eval()
        self.temperature = temperature
        self.weight = weight

    def __call__(self, x: torch.Tensor, student_logits: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            teacher_logits = self.teacher(x)
        t = self.temperature
        kl = F.kl_div(F.log_softmax(student_logits / t, dim=1), F.log_softmax(teacher_logits / t, dim=1),
                      reduction="batchmean", log_target=True)
        return self.weight * t * t * kl
