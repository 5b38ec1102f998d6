"""Models a user would bring (`--model factory_nets:...`): plain functions that take no arguments."""

from torch import nn


def _small(in_channels: int, classes: int) -> nn.Module:
    return nn.Sequential(nn.Conv2d(in_channels, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
                         nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, classes))


def gray_10() -> nn.Module:
    return _small(1, 10)


def rgb_7() -> nn.Module:
    return _small(3, 7)
