"""LIIF: an encoder's feature map queried at continuous coordinates by an MLP.

`LIIF.query_rgb` is a line-by-line transcription of the official `query_rgb` (feature unfold, local
ensemble, cell decoding). It is the test oracle for the fast decoder in `liif_cli.decoder`: keep it
straightforward, never optimise it.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .mlp import MLP


def make_coord(shape: tuple[int, ...], flatten: bool = True) -> torch.Tensor:
    """Pixel-centre coordinates over [-1, 1] per axis, computed in the same float order as the official code."""
    seqs = []
    for n in shape:
        r = 1.0 / n
        seqs.append(-1 + r + (2 * r) * torch.arange(n).float())
    coord = torch.stack(torch.meshgrid(*seqs, indexing="ij"), dim=-1)
    return coord.view(-1, coord.shape[-1]) if flatten else coord


def make_cell(coord: torch.Tensor, out_hw: tuple[int, int]) -> torch.Tensor:
    """Each query's cell is the size of one output pixel: (2/h, 2/w)."""
    cell = torch.ones_like(coord)
    cell[..., 0] *= 2 / out_hw[0]
    cell[..., 1] *= 2 / out_hw[1]
    return cell


class Encoder(nn.Module):
    """What LIIF asks of an encoder network: a feature map of `out_dim` channels at the input's size, each
    latent reading input pixels at most `receptive_radius` away (the tiles' margins follow from it)."""

    out_dim: int
    receptive_radius: int


class LIIF(nn.Module):
    def __init__(self, encoder: Encoder, imnet: MLP):
        super().__init__()
        self.encoder = encoder
        self.imnet = imnet

    @property
    def receptive_radius(self) -> int:
        return self.encoder.receptive_radius

    def encode(self, inp: torch.Tensor) -> torch.Tensor:
        return self.encoder(inp)

    def query_rgb(self, feat: torch.Tensor, coord: torch.Tensor, cell: torch.Tensor) -> torch.Tensor:
        """Official query: feat (B,C,H,W), coord and cell (B,Q,2) as (y, x) -> (B,Q,3), normalized space."""
        feat = F.unfold(feat, 3, padding=1).view(feat.shape[0], feat.shape[1] * 9, feat.shape[2], feat.shape[3])
        rx = 2 / feat.shape[-2] / 2
        ry = 2 / feat.shape[-1] / 2
        eps_shift = 1e-6
        feat_coord = (
            make_coord(feat.shape[-2:], flatten=False)
            .to(feat.device)
            .permute(2, 0, 1)
            .unsqueeze(0)
            .expand(feat.shape[0], 2, *feat.shape[-2:])
        )
        preds, areas = [], []
        for vx in (-1, 1):
            for vy in (-1, 1):
                coord_ = coord.clone()
                coord_[:, :, 0] += vx * rx + eps_shift
                coord_[:, :, 1] += vy * ry + eps_shift
                coord_.clamp_(-1 + 1e-6, 1 - 1e-6)
                grid = coord_.flip(-1).unsqueeze(1)
                q_feat = F.grid_sample(feat, grid, mode="nearest", align_corners=False)[:, :, 0, :].permute(0, 2, 1)
                q_coord = F.grid_sample(feat_coord, grid, mode="nearest", align_corners=False)[:, :, 0, :]
                q_coord = q_coord.permute(0, 2, 1)
                rel_coord = coord - q_coord
                rel_coord[:, :, 0] *= feat.shape[-2]
                rel_coord[:, :, 1] *= feat.shape[-1]
                rel_cell = cell.clone()
                rel_cell[:, :, 0] *= feat.shape[-2]
                rel_cell[:, :, 1] *= feat.shape[-1]
                inp = torch.cat([q_feat, rel_coord, rel_cell], dim=-1)
                bs, q = coord.shape[:2]
                preds.append(self.imnet(inp.view(bs * q, -1)).view(bs, q, -1))
                areas.append(torch.abs(rel_coord[:, :, 0] * rel_coord[:, :, 1]) + 1e-9)
        tot_area = torch.stack(areas).sum(dim=0)
        areas = [areas[3], areas[2], areas[1], areas[0]]
        ret = torch.zeros_like(preds[0])  # the official `ret = 0`: adding 0.0 first is the same to the bit
        for pred, area in zip(preds, areas, strict=True):
            ret = ret + pred * (area / tot_area).unsqueeze(-1)
        return ret

    def forward(self, inp: torch.Tensor, coord: torch.Tensor, cell: torch.Tensor) -> torch.Tensor:
        return self.query_rgb(self.encode(inp), coord, cell)


@torch.no_grad()
def reference_upscale(
    model: LIIF,
    image: torch.Tensor,
    out_hw: tuple[int, int],
    sub: Sequence[float],
    div: Sequence[float],
    bsize: int = 30000,
) -> torch.Tensor:
    """The official demo path (`batched_predict`): image (3,H,W) in [0,1] -> (h,w,3) in [0,1], unrounded.

    Slow and memory-hungry on purpose (whole-map unfold per chunk): it is the oracle, not the product.
    """
    sub_t = torch.as_tensor(sub, dtype=image.dtype, device=image.device).view(-1, 1, 1)
    div_t = torch.as_tensor(div, dtype=image.dtype, device=image.device).view(-1, 1, 1)
    feat = model.encode(((image - sub_t) / div_t).unsqueeze(0))
    coord = make_coord(out_hw).to(image.device).unsqueeze(0)
    cell = make_cell(coord, out_hw)
    preds = []
    for start in range(0, coord.shape[1], bsize):
        preds.append(model.query_rgb(feat, coord[:, start : start + bsize], cell[:, start : start + bsize]))
    pred = torch.cat(preds, dim=1)[0]
    return (pred * div_t.view(1, -1) + sub_t.view(1, -1)).clamp(0, 1).view(out_hw[0], out_hw[1], -1)
