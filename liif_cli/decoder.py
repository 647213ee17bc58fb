"""The fast decoder: the LIIF MLP rearranged so that most of its work is done once per latent, not per query.

The official code unfolds the whole feature map to 576 channels and runs a 580-wide first layer for
every query. The decoder here gives the same numbers with far less work, using identities that
NOTES.md lists (and `tests/test_engine.py` checks against the oracle `LIIF.query_rgb`):

* The first Linear layer on the unfolded features is a 3x3 convolution of the feature map, so it is
  computed once per latent (a "latent table", 256 values per latent) instead of once per query.
  The cell term is the same for every query of an image and folds into that table's bias.
* Which latent a query reads, and its relative offset, come from per-axis lookups (`geometry.py`).
* The remaining layers are dense GEMMs over large batches (oneDNN with bias and ReLU fused on CPU,
  `addmm` with pre-transposed weights elsewhere) in reused buffers; the output layer, being affine, is
  applied once to the ensemble-weighted activations instead of four times.

It knows nothing of tiles or images: it turns a feature map into a latent table, and lookups into
predictions. The two CPU helpers at the end (`_relu_`, `_gather_rows`) exist only for its hot loop.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .models import LIIF

AxisQueries = tuple[torch.Tensor, torch.Tensor]
"""One axis of a block of queries on the device: (latent index - origin (2, n), offset (2, n)), per shift."""


def _onednn_linear_relu():
    """`torch.ops.mkldnn._linear_pointwise` if this build has it and it computes relu(x W^T + b) correctly."""
    try:
        op = torch.ops.mkldnn._linear_pointwise
        x, w, b = torch.randn(8, 16), torch.randn(4, 16), torch.randn(4)
        if torch.allclose(op(x, w, b, "relu", [], ""), torch.relu(x @ w.t() + b), atol=1e-5):
            return op
    except (AttributeError, RuntimeError):
        pass
    return None


class FastDecoder:
    """The LIIF MLP rearranged for speed; holds device/precision copies of the weights.

    In half precision only the three 256x256 layers run in `dtype`: the latent table, the offset terms
    and the 256->3 output layer stay in fp32, where rounding would otherwise show in the image (a bf16
    prediction is only good to about 1/500).
    """

    def __init__(self, net: LIIF, device: torch.device, dtype: torch.dtype):
        linears = [m for m in net.imnet.layers if isinstance(m, torch.nn.Linear)]
        first, last = linears[0], linears[-1]
        n_feat = first.in_features - 4
        channels = n_feat // 9
        w1 = first.weight.detach().float()
        self.device, self.dtype = device, dtype
        self.table_weight = w1[:, :n_feat].reshape(-1, channels, 3, 3).to(device)
        self.first_bias = first.bias.detach().float().to(device)
        self.rel_weight = w1[:, n_feat : n_feat + 2].to(device)  # (256, 2): y, x
        self.cell_weight = w1[:, n_feat + 2 : n_feat + 4].to(device)
        self.hidden = [
            (m.weight.detach().t().contiguous().to(device, dtype), m.bias.detach().to(device, dtype))
            for m in linears[1:-1]
        ]
        self.out_weight = last.weight.detach().t().contiguous().float().to(device)
        self.out_bias = last.bias.detach().float().to(device)
        self._workspace: tuple[torch.Tensor, torch.Tensor | None, torch.Tensor] | None = None  # see _buffers
        self._shifted: tuple[torch.Tensor, torch.Tensor | None] | None = None
        # oneDNN's linear with bias and ReLU fused in one pass (CPU only); plain addmm where it is missing.
        self._fused_linear = _onednn_linear_relu() if device.type == "cpu" else None
        self._hidden_oi = [wt.t().contiguous() for wt, _ in self.hidden] if self._fused_linear else []
        self._reuse_outputs = device.type == "cpu" and dtype == torch.bfloat16 and len(self.hidden) >= 2

    def latent_table(self, feat: torch.Tensor, rel_cell: tuple[float, float]) -> torch.Tensor:
        """First layer minus the offset term, per latent: (H*W, 256) fp32, channels last."""
        cell = torch.tensor(rel_cell, dtype=torch.float32, device=self.device)
        bias = self.first_bias + self.cell_weight @ cell
        # Channels-last in and out, so that the (latents, 256) view below needs no copy.
        feat = feat.float().contiguous(memory_format=torch.channels_last)
        table = F.conv2d(feat, self.table_weight, bias, padding=1)[0]
        return table.permute(1, 2, 0).reshape(-1, table.shape[0])

    def decode(self, table: torch.Tensor, table_width: int, rows: AxisQueries, cols: AxisQueries) -> torch.Tensor:
        """Predictions for a block of output pixels, in normalized model space: (R, C, 3) float32.

        rows = (idx (2,R) into the table's rows, rel (2,R)); cols likewise for columns. Intermediate
        activations live in reused buffers: fresh large tensors cost a page fault per 4 KiB page, which
        on a VM can take longer than the matrix products themselves.
        """
        (ry_idx, ry_rel), (cx_idx, cx_rel) = rows, cols
        n_rows, n_cols = ry_idx.shape[1], cx_idx.shape[1]
        pixels = n_rows * n_cols
        queries = 4 * pixels
        first, spare, mixed = self._buffers(pixels)
        h = self._first_layer(table, table_width, rows, cols, first[:queries])
        h = self._hidden_layers(h, spare[:queries] if spare is not None else None)
        # Local ensemble: each prediction weighted by the area of its diagonal opposite. The output layer
        # is affine, so it is applied once to the weighted mean of the four last activations.
        area = (ry_rel.view(2, 1, n_rows, 1) * cx_rel.view(1, 2, 1, n_cols)).abs_() + 1e-9
        weight = (area.flip(0, 1) / area.sum(dim=(0, 1))).unsqueeze(-1)  # (row shift, col shift, R, C, 1)
        h = h.view(2, n_rows, 2, n_cols, -1)  # queries are ordered (row shift, r, column shift, c)
        acc = mixed[:pixels].view(n_rows, n_cols, -1)
        if h.dtype == torch.float32:
            torch.mul(h[0, :, 0], weight[0, 0], out=acc)
            for a, b in ((0, 1), (1, 0), (1, 1)):
                acc.addcmul_(h[a, :, b], weight[a, b])
        else:
            # Half precision: each quarter is converted to fp32 on its own (mixed-dtype ops would copy per
            # operand) into a quarter-size scratch that is still in cache when the weighting reads it. The
            # scratch is whichever working buffer does not hold `h` (both are idle by now), so no memory is
            # added; the floats are those of one whole conversion followed by the weighting.
            idle = spare if first.data_ptr() == h.data_ptr() and spare is not None else first
            scratch = idle.view(-1).view(torch.float32)[: pixels * h.shape[-1]].view(n_rows, n_cols, -1)
            for i, (a, b) in enumerate(((0, 0), (0, 1), (1, 0), (1, 1))):
                part = scratch.copy_(h[a, :, b])
                if i == 0:
                    torch.mul(part, weight[a, b], out=acc)
                else:
                    acc.addcmul_(part, weight[a, b])
        pred = torch.addmm(
            weight.sum(dim=(0, 1)).view(pixels, 1) * self.out_bias, acc.view(pixels, -1), self.out_weight
        )
        return pred.view(n_rows, n_cols, -1)

    def _hidden_layers(self, h: torch.Tensor, spare: torch.Tensor | None) -> torch.Tensor:
        """relu(h W^T + b) through the three 256x256 layers.

        In bf16 on the CPU every layer writes into a reused buffer, ReLU being the int16 clamp: the layers
        alternate between `spare` and `h`'s own storage (never a layer's own input), so a block needs two
        activation buffers whatever the depth. A fresh (4 x query_batch, 256) output per
        layer costs a page fault per 4 KiB page (8k per layer, serialized in the kernel when two threads
        fault), which measured 17% of the three GEMMs' CPU time on one thread and more on two. oneDNN's
        fused linear has no out= form, and in fp32 it still beats addmm (MKL) by more than the faults cost,
        so fp32 keeps it (and with it its exact results); fp32 blocks are small enough that freed outputs
        come back from the heap without faults (`engine.default_query_batch`).
        """
        if self._reuse_outputs and spare is not None:
            buffers = (spare, h)
            for i, (wt, b) in enumerate(self.hidden):
                h = _relu_(torch.addmm(b, h, wt, out=buffers[i % 2]))
            return h
        for i, (wt, b) in enumerate(self.hidden):
            if self._fused_linear is not None:
                h = self._fused_linear(h, self._hidden_oi[i], b, "relu", [], "")
            else:
                h = torch.addmm(b, h, wt).relu_()
        return h

    def _first_layer(
        self, table: torch.Tensor, table_width: int, rows: AxisQueries, cols: AxisQueries, out: torch.Tensor
    ) -> torch.Tensor:
        """relu(table row + row offset term + column offset term) for the 4 x R x C queries, written
        in the working precision into `out` ((4*R*C, 256), queries ordered (row shift, r, column shift, c)).

        The column side is prepared first, on the few latent rows the block reads: a "column-shifted
        table" (latent row, column shift, output column) = table row + column offset term, summed in
        fp32 and then rounded to the working precision; when upscaling it is about 1/(2 x scale) of the
        queries' size.
        Then three passes over half-size values, each one large operation (many small ones stall when
        the cores are shared): a row gather of that table, the row offset terms added in place, ReLU.
        The old order (fp32 gather, two adds, ReLU, conversion) took five passes over fp32 values.
        In fp32 the result is the official sum up to the order of two fp32 adds.
        """
        (ry_idx, ry_rel), (cx_idx, cx_rel) = rows, cols
        n_rows, n_cols = ry_idx.shape[1], cx_idx.shape[1]
        width = table.shape[1]
        # Only the latent rows some query reads (at most 2 per output row, so never larger than `out`,
        # even when downscaling skips most latent rows).
        used, which = torch.unique(ry_idx, return_inverse=True)
        flat = (used.view(-1, 1) * table_width + cx_idx.view(1, -1)).view(-1)
        shifted, shifted_half = self._shifted_buffers(flat.shape[0], width)
        torch.index_select(table, 0, flat, out=shifted)
        shifted = shifted.view(-1, 2, n_cols, width)
        shifted += (cx_rel.view(2, n_cols, 1) * self.rel_weight[:, 1]).view(1, 2, n_cols, width)
        if shifted_half is not None:
            shifted = shifted_half.view(shifted.shape).copy_(shifted)
        shifted = shifted.view(used.shape[0], -1)
        _gather_rows(shifted, which.view(-1), out.view(2 * n_rows, -1))
        grid = out.view(2, n_rows, 2, n_cols, width)
        grid += (ry_rel.view(2, n_rows, 1) * self.rel_weight[:, 0]).to(out.dtype).view(2, n_rows, 1, 1, width)
        return _relu_(out)

    def _shifted_buffers(self, rows: int, width: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(fp32, working-precision copy or None) column-shifted table rows, grown on demand and reused:
        a fresh tensor per block would pay its page faults inside the gather."""
        if self._shifted is None or self._shifted[0].shape[0] < rows:
            fp32 = torch.empty(rows, width, device=self.device)
            half = None if self.dtype == torch.float32 else torch.empty_like(fp32, dtype=self.dtype)
            self._shifted = (fp32, half)
        fp32, half = self._shifted
        return fp32[:rows], None if half is None else half[:rows]

    def _buffers(self, pixels: int) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
        """(first-layer activations in the working precision, a second activation buffer of that size
        where the hidden layers write into reused storage or None, fp32 ensemble mix) for `pixels` output
        pixels (4 queries each), grown on demand and then reused.

        In half precision on the CPU: 2 x 2 KiB + 1 KiB per output pixel (20 MiB at the default 4096-pixel
        block; the old layout, an fp32 copy of all four predictions' activations, took 7 KiB per pixel)."""
        if self._workspace is None or self._workspace[2].shape[0] < pixels:
            width = self.out_weight.shape[0]
            first = torch.empty(4 * pixels, width, device=self.device, dtype=self.dtype)
            spare = torch.empty_like(first) if self._reuse_outputs else None
            self._workspace = (first, spare, torch.empty(pixels, width, device=self.device))
        return self._workspace


def _relu_(x: torch.Tensor) -> torch.Tensor:
    """In-place ReLU. For CPU bf16/fp16, as an integer clamp of the bits: the sign is the top bit, so
    max(bits as int16, 0) zeroes exactly the negative values (ATen's half-precision ReLU converts
    every value to fp32 and back, ~7x slower). Unlike torch.relu it zeroes NaNs with the sign bit set;
    the fp32 path, which must stay exact, uses torch.relu_."""
    if x.device.type == "cpu" and x.dtype in (torch.bfloat16, torch.float16):
        x.view(torch.int16).clamp_min_(0)
        return x
    return x.relu_()


def _gather_rows(src: torch.Tensor, index: torch.Tensor, out: torch.Tensor) -> None:
    """out[i] = src[index[i]] for long contiguous rows. On the CPU the rows are copied as int32 words:
    ATen's index_select copies floating-point rows element by element, integer rows with memcpy
    (measured: 64 rows of 512 KiB, about 60x faster)."""
    if src.device.type == "cpu" and src.shape[-1] * src.element_size() % 4 == 0:
        src, out = src.view(torch.int32), out.view(torch.int32)
    torch.index_select(src, 0, index, out=out)
