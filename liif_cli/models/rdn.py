"""RDN encoder (Zhang et al. 2018), configuration B, without the upsampling tail, as LIIF uses it.

Module names mirror the official code (`SFENet1`, `RDBs.{i}.convs.{j}.conv.0`, `RDBs.{i}.LFF`, `GFF`).
"""

from __future__ import annotations

import torch
from torch import nn

from .liif import Encoder


class DenseLayer(nn.Module):
    def __init__(self, cin: int, growth: int):
        super().__init__()
        self.conv = nn.Sequential(nn.Conv2d(cin, growth, 3, padding=1), nn.ReLU(inplace=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat((x, self.conv(x)), 1)


class ResidualDenseBlock(nn.Module):
    def __init__(self, g0: int, growth: int, n_layers: int):
        super().__init__()
        self.convs = nn.Sequential(*[DenseLayer(g0 + i * growth, growth) for i in range(n_layers)])
        self.LFF = nn.Conv2d(g0 + n_layers * growth, g0, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.LFF(self.convs(x)) + x


class RDN(Encoder):
    """G0=64, D=16 blocks, C=8 layers, G=64: 131 stacked 3x3 convolutions, 22.3 M parameters."""

    def __init__(self, g0: int = 64, n_blocks: int = 16, n_layers: int = 8, growth: int = 64, n_colors: int = 3):
        super().__init__()
        self.SFENet1 = nn.Conv2d(n_colors, g0, 3, padding=1)
        self.SFENet2 = nn.Conv2d(g0, g0, 3, padding=1)
        self.RDBs = nn.ModuleList([ResidualDenseBlock(g0, growth, n_layers) for _ in range(n_blocks)])
        self.GFF = nn.Sequential(nn.Conv2d(n_blocks * g0, g0, 1), nn.Conv2d(g0, g0, 3, padding=1))
        self.out_dim = g0
        self.receptive_radius = 3 + n_blocks * n_layers

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shallow = self.SFENet1(x)
        x = self.SFENet2(shallow)
        block_outputs = []
        for block in self.RDBs:
            x = block(x)
            block_outputs.append(x)
        return self.GFF(torch.cat(block_outputs, 1)) + shallow
