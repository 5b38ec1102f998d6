"""PyTorch eager on the CPU or a CUDA GPU, timed at a fixed thread count (CPU) or with syncs (GPU)."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
from torch import nn


@contextmanager
def keep_torch_threads() -> Iterator[None]:
    """Timing PyTorch at a fixed thread count sets it process-wide; put the caller's setting back after."""
    threads = torch.get_num_threads()
    try:
        yield
    finally:
        torch.set_num_threads(threads)


class TorchRuntime:
    name = "torch"

    def __init__(self, threads: int = 1, batch_size: int = 1, device: str = "cpu", warmup: int = 20,
                 repeats: int = 100):
        self.threads = threads
        self.batch_size = batch_size
        self.device = device
        self.warmup = warmup
        self.repeats = repeats

    def prepare(self, module: nn.Module, input_shape: tuple[int, ...], int8: bool = False) -> Callable[[], object]:
        """A function that runs an eval-mode copy of the module once, at this runtime's thread count (which
        it sets for the process)."""
        if int8:
            raise NotImplementedError("the PyTorch eager targets time fp32 only")
        module = copy.deepcopy(module).eval().to(self.device)
        x = torch.randn(self.batch_size, *input_shape, device=self.device)
        sync = torch.cuda.synchronize if self.device.startswith("cuda") else (lambda: None)
        threads = self.threads

        @torch.no_grad()
        def step() -> None:
            if torch.get_num_threads() != threads:
                torch.set_num_threads(threads)
            module(x)
            sync()

        return step

    def overhead_module(self) -> nn.Module:
        return nn.Identity()
