"""EDSR-baseline encoder (Lim et al. 2017) as LIIF uses it: no upsampling tail.

Module names mirror the official code (`head.0`, `body.{i}.body.{0,2}`, `body.16`) so that official
state dicts load with `strict=True` and checkpoints we save load in the official code.
"""

from __future__ import annotations

import torch
from torch import nn

from ..encoders import DIV2K_RGB_MEAN  # used by EDSR's MeanShift layers (see below)
from .liif import Encoder


def _conv3x3(cin: int, cout: int) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, padding=1, bias=True)


class ResBlock(nn.Module):
    def __init__(self, n_feats: int):
        super().__init__()
        self.body = nn.Sequential(_conv3x3(n_feats, n_feats), nn.ReLU(inplace=True), _conv3x3(n_feats, n_feats))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) + x


class MeanShift(nn.Module):
    """Parameter holder only: the official forward pass never calls it (see module docstring)."""

    def __init__(self, sign: int):
        super().__init__()
        self.register_buffer("weight", torch.eye(3).view(3, 3, 1, 1))
        self.register_buffer("bias", sign * torch.tensor(DIV2K_RGB_MEAN))


class EDSRBaseline(Encoder):
    """16 residual blocks of 64 channels; 34 stacked 3x3 convolutions."""

    def __init__(self, n_resblocks: int = 16, n_feats: int = 64, n_colors: int = 3):
        super().__init__()
        self.sub_mean = MeanShift(-1)
        self.add_mean = MeanShift(+1)
        self.head = nn.Sequential(_conv3x3(n_colors, n_feats))
        self.body = nn.Sequential(*[ResBlock(n_feats) for _ in range(n_resblocks)], _conv3x3(n_feats, n_feats))
        self.out_dim = n_feats
        self.receptive_radius = 2 + 2 * n_resblocks

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.head(x)
        return self.body(x) + x
