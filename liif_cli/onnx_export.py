"""ONNX export: a loaded LIIF model as three graphs and a manifest (`liif export --format onnx`).

The model is split where the fast decoder (`decoder.py`) splits it, so that a runtime does the same work:

* `encoder.onnx`: normalized image (N, 3, H, W) -> latent features (N, 64, H, W).
* `table.onnx`: features (1, 64, H, W) and the query cell in latent units (2,) -> the latent table
  (H, W, 256): the MLP's first layer on the unfolded features as a 3x3 convolution, the cell term in its bias.
* `query.onnx`: a window of the table (h, w, 256) and the per-axis lookups of a block of R output rows and
  C output columns -> predictions (R, C, 3) in normalized space: the gather of the four nearest latents,
  their offset terms, ReLU, the hidden layers, and the local ensemble (each prediction weighted by the
  area of its diagonal opposite, the output layer applied once to the weighted activations).

The lookups (which latent, what offset), the tiles, normalization and clamping are computed around the
graphs (`geometry.py`, `tiles.py`, `onnxrt.py`): they are O(side) numpy work, and keeping them out keeps
round-half-to-even indexing exact. The graphs are written by torch's TorchScript-based exporter
(`dynamo=False`): the dynamo exporter's default optimizer folds the ensemble's `+ 1e-9` away (1.5e-5 errors,
NaN at x1). Weights are buffers named so that no name collides with an ONNX node's name (onnxruntime refuses
such a model). `tests/test_onnx.py` checks the graphs in onnxruntime against the torch fp32 engine.
"""

from __future__ import annotations

import json
import os
import shutil
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .atomic import atomic_dir
from .errors import OutputError
from .models import LoadedModel
from .onnx_format import FORMAT_VERSION, GRAPHS, MANIFEST, OPSET


class _Table(nn.Module):
    """features (1, C, H, W), rel_cell (2,) -> table (H, W, 256): first layer minus the offset term."""

    liif_table_weight: torch.Tensor  # buffers (registered in __init__)
    liif_first_bias: torch.Tensor
    liif_cell_weight: torch.Tensor

    def __init__(self, first: nn.Linear, channels: int):
        super().__init__()
        n_feat = channels * 9
        w = first.weight.detach().float()
        self.register_buffer("liif_table_weight", w[:, :n_feat].reshape(-1, channels, 3, 3).clone())
        self.register_buffer("liif_first_bias", first.bias.detach().float().clone())
        self.register_buffer("liif_cell_weight", w[:, n_feat + 2 : n_feat + 4].t().contiguous())  # (2, 256)

    def forward(self, features: torch.Tensor, rel_cell: torch.Tensor) -> torch.Tensor:
        bias = self.liif_first_bias + rel_cell @ self.liif_cell_weight
        table = F.conv2d(features, self.liif_table_weight, bias, padding=1)[0]
        return table.permute(1, 2, 0)


class _Query(nn.Module):
    """The decoder for a block of R x C output pixels from a table window (h, w, 256)."""

    liif_rel_y: torch.Tensor  # buffers (registered in __init__, with the hidden layers' weights and biases)
    liif_rel_x: torch.Tensor
    liif_out_weight: torch.Tensor
    liif_out_bias: torch.Tensor

    def __init__(self, linears: list[nn.Linear], channels: int):
        super().__init__()
        first, last = linears[0], linears[-1]
        n_feat = channels * 9
        w = first.weight.detach().float()
        self.register_buffer("liif_rel_y", w[:, n_feat].clone())
        self.register_buffer("liif_rel_x", w[:, n_feat + 1].clone())
        self.n_hidden = len(linears) - 2
        for i, m in enumerate(linears[1:-1]):
            self.register_buffer(f"liif_hidden{i}_weight", m.weight.detach().float().t().contiguous())
            self.register_buffer(f"liif_hidden{i}_bias", m.bias.detach().float().clone())
        self.register_buffer("liif_out_weight", last.weight.detach().float().t().contiguous())
        self.register_buffer("liif_out_bias", last.bias.detach().float().clone())

    def forward(
        self,
        table: torch.Tensor,
        row_idx: torch.Tensor,
        row_rel: torch.Tensor,
        col_idx: torch.Tensor,
        col_rel: torch.Tensor,
    ) -> torch.Tensor:
        width = table.shape[1]
        flat = table.reshape(-1, table.shape[2])
        index = row_idx.unsqueeze(-1).unsqueeze(-1) * width + col_idx  # (2, R, 2, C): (row shift, r, col shift, c)
        h = flat[index]  # (2, R, 2, C, 256)
        h = h + row_rel.view(2, -1, 1, 1, 1) * self.liif_rel_y
        h = torch.relu(h + col_rel.view(1, 1, 2, -1, 1) * self.liif_rel_x)
        for i in range(self.n_hidden):
            h = torch.relu(h @ getattr(self, f"liif_hidden{i}_weight") + getattr(self, f"liif_hidden{i}_bias"))
        area = torch.abs(row_rel.view(2, -1, 1, 1) * col_rel.view(1, 1, 2, -1)) + 1e-9
        weight = area.flip(0, 2) / area.sum(
            dim=(0, 2), keepdim=True
        )  # each shift weighted by its diagonal opposite's area
        acc = (h * weight.unsqueeze(-1)).sum(dim=(0, 2))  # (R, C, 256)
        return acc @ self.liif_out_weight + weight.sum(dim=(0, 2)).unsqueeze(-1) * self.liif_out_bias


def _export(module: nn.Module, args: tuple, path: Path, names: tuple[list[str], list[str]], axes: dict) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and tracer warnings
        torch.onnx.export(
            module.eval(),
            args,
            str(path),
            input_names=names[0],
            output_names=names[1],
            dynamic_axes=axes,
            opset_version=OPSET,
            do_constant_folding=True,
            dynamo=False,
        )


def export_onnx(
    loaded: LoadedModel,
    out_dir: str | os.PathLike,
    *,
    source_sha256: str,
    weights_sha256: str,
    model_name: str = "",
    overwrite: bool = False,
) -> Path:
    """Write the three graphs and `manifest.json` into `out_dir` through `atomic.atomic_dir` (a temporary
    folder beside it, renamed into place): an interrupted export leaves nothing half-written, and when two
    processes export to the same place the first one's folder is kept. `overwrite` replaces an existing folder."""
    from .encoders import ENCODERS
    from .version import version

    out = Path(out_dir)
    if out.exists():
        if not (overwrite and out.is_dir()):
            raise OutputError(
                f"{out}: already exists", param="overwrite", hint="use {overwrite} to replace an export folder"
            )
        shutil.rmtree(out)
    net = loaded.net.float().eval()
    linears = [m for m in net.imnet.layers if isinstance(m, nn.Linear)]
    channels = (linears[0].in_features - 4) // 9
    spec = ENCODERS[loaded.encoder]
    manifest = {
        "format": "liif-onnx",
        "format_version": FORMAT_VERSION,
        "opset": OPSET,
        "graphs": dict(GRAPHS),
        "model": model_name,
        "encoder": loaded.encoder,
        "source_format": loaded.source_format,
        "normalization": {"sub": list(loaded.normalization.sub), "div": list(loaded.normalization.div)},
        "receptive_radius": spec.receptive_radius,
        "margin": spec.receptive_radius + 2,
        "channels": channels,
        "table_width": linears[0].out_features,
        "macs": {
            "encoder_per_pixel": sum(m.weight.numel() for m in net.encoder.modules() if isinstance(m, nn.Conv2d)),
            "table_per_latent": channels * 9 * linears[0].out_features,
            "decoder_per_pixel": 4 * sum(m.weight.numel() for m in linears[1:-1]),
        },
        "source_sha256": source_sha256,
        "weights_sha256": weights_sha256,
        "tool": "liif-cli",
        "tool_version": version(),
    }
    with atomic_dir(out) as tmp, torch.no_grad():
        image = torch.rand(1, 3, 9, 11)
        axes = {"image": {0: "N", 2: "H", 3: "W"}, "features": {0: "N", 2: "H", 3: "W"}}
        _export(net.encoder, (image,), tmp / GRAPHS["encoder"], (["image"], ["features"]), axes)
        feat, cell = torch.randn(1, channels, 9, 11), torch.tensor([0.5, 0.25])
        names = (["features", "rel_cell"], ["table"])
        axes = {"features": {2: "H", 3: "W"}, "table": {0: "H", 1: "W"}}
        _export(_Table(linears[0], channels), (feat, cell), tmp / GRAPHS["table"], names, axes)
        table = torch.randn(9, 11, linears[0].out_features)
        rows = (torch.tensor([[0, 3, 5], [1, 4, 8]]), torch.rand(2, 3) - 0.5)
        cols = (torch.tensor([[0, 2], [1, 10]]), torch.rand(2, 2) - 0.5)
        names = (["table", "row_idx", "row_rel", "col_idx", "col_rel"], ["pred"])
        axes = {"table": {0: "h", 1: "w"}, "pred": {0: "R", 1: "C"}}
        axes |= {"row_idx": {1: "R"}, "row_rel": {1: "R"}, "col_idx": {1: "C"}, "col_rel": {1: "C"}}
        _export(_Query(linears, channels), (table, *rows, *cols), tmp / GRAPHS["query"], names, axes)
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return out
