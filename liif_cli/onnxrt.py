"""The onnxruntime backend: exported LIIF graphs rendered with the engine's tiles and lookups, without torch.

An export folder (`liif export --format onnx`, see `onnx_export.py` and docs/onnx.md) holds `encoder.onnx`,
`table.onnx`, `query.onnx` and `manifest.json`. `OnnxRenderer` has the torch `Renderer`'s interface
(`render`, `render_features`, `encode`, `with_fallback`, `tile_size`, `estimate`), so the API, the batch
runner, encodings and the server use it unchanged; it cuts tiles and computes the per-axis lookups with
the same torch-free code as the torch engine (`tiles.py`, `geometry.py`). This module never imports
torch; only `ensure_export`, given a checkpoint rather than a folder, calls the exporter (which needs it).

fp32 only: the graphs are fp32 and no half-precision path has been measured against the official output.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from .errors import InputError, ModelError, UsageError
from .onnx_format import FORMAT_VERSION, GRAPHS, MANIFEST
from .tiles import Band, auto_tile, encoder_bytes_per_pixel, plan_render, plan_tile, whole_bands

if TYPE_CHECKING:
    import torch

    from .geometry import Region
    from .tiles import ProgressCallback, RenderPlan, TileSink

# Execution providers in order of preference; the CPU one is always last and always present.
_PREFERENCE = (
    "TensorrtExecutionProvider",
    "CUDAExecutionProvider",
    "ROCMExecutionProvider",
    "MIGraphXExecutionProvider",
    "DmlExecutionProvider",
    "CoreMLExecutionProvider",
    "OpenVINOExecutionProvider",
    "CPUExecutionProvider",
)
# --device values and the providers that serve them.
_DEVICE_PROVIDERS = {
    "cpu": ("CPUExecutionProvider",),
    "cuda": ("TensorrtExecutionProvider", "CUDAExecutionProvider", "ROCMExecutionProvider"),
    "mps": ("CoreMLExecutionProvider",),
}


def _ort():
    try:
        import onnxruntime
    except ImportError:
        raise UsageError("the onnxruntime backend needs onnxruntime: pip install 'liif-cli[onnx]'") from None
    return onnxruntime


def available_providers() -> list[str]:
    """onnxruntime's execution providers usable here, most preferred first, the CPU one last ([] without
    onnxruntime). Azure's provider (remote endpoints) is left out."""
    try:
        import onnxruntime
    except ImportError:
        return []
    have = set(onnxruntime.get_available_providers()) - {"AzureExecutionProvider"}  # remote endpoints, no device
    known = [p for p in _PREFERENCE[:-1] if p in have]
    return known + sorted(have - set(known) - {"CPUExecutionProvider"}) + ["CPUExecutionProvider"]


def runtime_info() -> dict[str, Any]:
    """For `liif env`: onnxruntime's version (None when not installed) and its providers."""
    try:
        import onnxruntime
    except ImportError:
        return {"onnxruntime": None, "providers": []}
    return {"onnxruntime": onnxruntime.__version__, "providers": available_providers()}


@dataclass(frozen=True)
class RuntimeDevice:
    """What the engine's helpers ask of a device (`.type`), for onnxruntime's providers."""

    type: str  # cpu | cuda | mps | gpu (DirectML, OpenVINO...)
    providers: tuple[str, ...]
    index: int | None = None  # cuda:N

    def session_providers(self) -> list:
        """For `InferenceSession(providers=...)`: names, with the device id where one was given."""
        gpu = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "ROCMExecutionProvider")
        return [(p, {"device_id": self.index}) if p in gpu and self.index is not None else p for p in self.providers]

    def __str__(self) -> str:
        return f"{self.type} ({', '.join(p.removesuffix('ExecutionProvider') for p in self.providers)})"


def resolve_device(name: str | None) -> RuntimeDevice:
    """'auto': the most preferred installed provider; 'cpu', 'cuda' (TensorRT, CUDA or ROCm) or 'mps' (CoreML).
    DirectML and OpenVINO are taken by 'auto' only. A device without its provider is a UsageError."""
    name = (name or "auto").strip().lower()
    have = available_providers() or ["CPUExecutionProvider"]
    if name == "auto":
        first = have[0]
        kind = next((k for k, ps in _DEVICE_PROVIDERS.items() if first in ps), "gpu")
        providers = tuple(dict.fromkeys([first, "CPUExecutionProvider"]))
        return RuntimeDevice("cpu" if first == "CPUExecutionProvider" else kind, providers)
    base, _, index = name.partition(":")
    if base not in _DEVICE_PROVIDERS or (index and (base != "cuda" or not index.isdigit())):
        raise UsageError(f"unknown device {name!r} for onnxruntime (use auto, cpu, cuda or mps)")
    usable = [p for p in _DEVICE_PROVIDERS[base] if p in have]
    if not usable:
        wanted = " or ".join(_DEVICE_PROVIDERS[base])
        raise UsageError(f"device {name!r}: this onnxruntime has no {wanted} (installed: {', '.join(have)})")
    return RuntimeDevice(base, tuple(dict.fromkeys([usable[0], "CPUExecutionProvider"])), int(index) if index else None)


@dataclass(frozen=True)
class Normalization:
    sub: tuple[float, float, float]
    div: tuple[float, float, float]


_HOST = RuntimeDevice("cpu", ("CPUExecutionProvider",))


@dataclass
class OnnxModel:
    """An export folder: its manifest and graph paths (the sessions are the renderer's)."""

    path: Path
    manifest: dict[str, Any]
    encoder: str = field(init=False)
    normalization: Normalization = field(init=False)
    source_format: str = field(init=False)

    def __post_init__(self):
        m = self.manifest
        self.encoder = m["encoder"]
        self.normalization = Normalization(tuple(m["normalization"]["sub"]), tuple(m["normalization"]["div"]))
        self.source_format = m.get("source_format", "onnx")

    @property
    def weights_sha256(self) -> str:
        return self.manifest["weights_sha256"]

    def graph(self, name: str) -> str:
        return str(self.path / self.manifest["graphs"][name])


def is_export(path: str | os.PathLike) -> bool:
    p = Path(path).expanduser()
    return p.is_dir() and (p / MANIFEST).is_file()


def load_export(path: str | os.PathLike) -> OnnxModel:
    """Read an export folder's manifest; a folder that is not a complete export is a ModelError."""
    path = Path(path).expanduser()
    try:
        manifest = json.loads((path / MANIFEST).read_text())
    except (OSError, ValueError) as exc:
        raise ModelError(f"{path}: not a liif ONNX export (no readable {MANIFEST}: {exc})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != "liif-onnx":
        raise ModelError(f"{path}: {MANIFEST} is not a liif ONNX manifest")
    if int(manifest.get("format_version", 0)) > FORMAT_VERSION:
        raise ModelError(
            f"{path}: made by a newer liif (ONNX export format {manifest['format_version']}): upgrade liif"
        )
    try:
        model = OnnxModel(path, manifest)
        missing = [g for g in GRAPHS if not Path(model.graph(g)).is_file()]
        int(manifest["margin"]), manifest["weights_sha256"], manifest["macs"]["decoder_per_pixel"]
    except (KeyError, TypeError, ValueError):
        raise ModelError(f"{path}: {MANIFEST} lacks required fields") from None
    if missing:
        raise ModelError(f"{path}: incomplete export, missing {', '.join(GRAPHS[g] for g in missing)}")
    return model


def ensure_export(model: str | os.PathLike, *, normalization: str | None = None, name: str = "") -> OnnxModel:
    """An export folder as is; a checkpoint file is exported once into the cache, under its sha256 (and the
    normalization override, if any), and read from there afterwards. Exporting imports torch."""
    if is_export(model):
        return load_export(model)
    from .registry import cache_dir, sha256_file

    path = Path(model).expanduser()
    sha = sha256_file(path)
    key = sha if normalization is None else f"{sha}-{normalization}"
    target = cache_dir() / "onnx" / f"v{FORMAT_VERSION}" / key
    if not is_export(target):
        try:
            from .models import load_checkpoint
            from .models.checkpoint import weights_sha256
            from .onnx_export import export_onnx
        except ImportError as exc:
            raise UsageError(
                f"{path}: exporting a checkpoint to ONNX needs torch ({exc})",
                param="model",
                hint="install liif-cli with torch, or give {model} an ONNX export folder ('liif export' writes one)",
            ) from None
        loaded = load_checkpoint(path, normalization=normalization)
        sums = {"source_sha256": sha, "weights_sha256": weights_sha256(loaded.net)}
        export_onnx(loaded, target, **sums, model_name=name, overwrite=target.exists())  # a broken one is redone
    return load_export(target)


@dataclass
class OnnxOptions:
    device: RuntimeDevice
    precision: str = "fp32"
    tile: int | None = None
    query_batch: int | None = None
    threads: int | None = None

    def __post_init__(self) -> None:
        if self.query_batch is None:
            self.query_batch = DEFAULT_QUERY_BATCH


DEFAULT_QUERY_BATCH = 2048
"""Output pixels per query-graph call (see benchmarks/speed.py `onnxruntime@N`)."""

Features = Callable[[Band, Band], np.ndarray]  # (row band, column band) -> that span's feature map
T = TypeVar("T")


class OnnxRenderer:
    """The three graphs in onnxruntime sessions; renders any input size into any output size."""

    def __init__(self, loaded: OnnxModel, options: OnnxOptions):
        ort = _ort()
        if options.precision != "fp32":
            raise UsageError(f"the onnxruntime backend runs fp32 only (got precision {options.precision!r})")
        self.loaded = loaded
        self.options = options
        batch = options.query_batch  # resolved by OnnxOptions; None only if set so afterwards
        self.query_batch = DEFAULT_QUERY_BATCH if batch is None else batch
        self.margin = int(loaded.manifest["margin"])
        so = ort.SessionOptions()
        if options.threads is not None:
            so.intra_op_num_threads = options.threads
        so.log_severity_level = 3
        providers = options.device.session_providers()
        self._sessions = {g: ort.InferenceSession(loaded.graph(g), so, providers=providers) for g in GRAPHS}
        norm = loaded.normalization
        self.sub = np.asarray(norm.sub, dtype=np.float32)
        self.div = np.asarray(norm.div, dtype=np.float32)

    @property
    def precision(self) -> str:
        """The working precision (always the asked one: this backend runs fp32 and has no fallback)."""
        return self.options.precision

    def tile_size(self) -> int:
        """The given tile, else sized for the machine's memory (`tiles.auto_tile`); a GPU provider's free
        memory is not known without torch, so GPUs get the CPU budget too (512 MiB per tile's encoder)."""
        return self.options.tile or auto_tile(self.loaded.encoder, self.margin, _HOST, "fp32")

    def estimate(self, in_hw: tuple[int, int], out_hw: tuple[int, int]) -> tuple[float, int]:
        """(seconds, peak working bytes), as the torch engine's estimate: multiply-adds over a measured rate."""
        tile = self.tile_size()
        m = self.loaded.manifest["macs"]
        rows = sum(min(in_hw[0], t + tile + self.margin) - max(0, t - self.margin) for t in range(0, in_hw[0], tile))
        cols = sum(min(in_hw[1], t + tile + self.margin) - max(0, t - self.margin) for t in range(0, in_hw[1], tile))
        macs = (
            rows * cols * m["encoder_per_pixel"]
            + in_hw[0] * in_hw[1] * m["table_per_latent"]
            + out_hw[0] * out_hw[1] * m["decoder_per_pixel"]
        )
        span = min(in_hw[0], tile + 2 * self.margin) * min(in_hw[1], tile + 2 * self.margin)
        per_pixel = encoder_bytes_per_pixel(self.loaded.encoder, "fp32")
        decode_bytes = 6 * 4 * self.query_batch * 256 * 4
        return 1.4 * macs / _gemm_rate(), span * per_pixel + (64 << 20) + decode_bytes

    def _encode_span(self, rgb: np.ndarray, rows: tuple[int, int], cols: tuple[int, int]) -> np.ndarray:
        crop = rgb[rows[0] : rows[1], cols[0] : cols[1]]
        x = ((crop - self.sub) / self.div).transpose(2, 0, 1)[None]
        return self._sessions["encoder"].run(None, {"image": np.ascontiguousarray(x, dtype=np.float32)})[0]

    def render(
        self,
        rgb: np.ndarray,
        out_hw: tuple[int, int],
        sink: TileSink,
        progress: ProgressCallback | None = None,
        *,
        region: Region | None = None,
    ) -> None:
        """rgb: (H, W, 3) float32 in [0, 1]; calls `sink` per finished block (see `engine.Renderer.render`)."""
        rgb = np.ascontiguousarray(rgb, dtype=np.float32)
        plan = plan_render((int(rgb.shape[0]), int(rgb.shape[1])), out_hw, region, self.tile_size(), self.margin)
        self._render(plan, lambda rb, cb: self._encode_span(rgb, rb.span, cb.span), sink, progress)

    render_with_fallback = render  # fp32 has no precision fallback, and out-of-memory is not retried

    def with_fallback(self, job: Callable[[], T]) -> T:
        return job()

    def render_features(
        self,
        feat: np.ndarray | torch.Tensor,
        out_hw: tuple[int, int],
        sink: TileSink,
        progress: ProgressCallback | None = None,
        *,
        region: Region | None = None,
    ) -> None:
        """Like `render`, from a feature map made by `encode` (1, C, H, W): no encoder runs."""
        feat = _as_float32(feat)
        plan = plan_render((int(feat.shape[2]), int(feat.shape[3])), out_hw, region, self.tile_size(), self.margin)

        def features(rb: Band, cb: Band) -> np.ndarray:
            return feat[:, :, rb.span[0] : rb.span[1], cb.span[0] : cb.span[1]]

        self._render(plan, features, sink, progress)

    def encode(self, rgb: np.ndarray) -> np.ndarray:
        """The latent feature map of a whole image, (1, C, H, W) float32, tile by tile with exact margins."""
        rgb = np.ascontiguousarray(rgb, dtype=np.float32)
        in_h, in_w = rgb.shape[:2]
        tile = self.tile_size()
        feat = None
        for rb in whole_bands(in_h, tile, self.margin):
            for cb in whole_bands(in_w, tile, self.margin):
                part = self._encode_span(rgb, rb.span, cb.span)
                if feat is None:
                    feat = np.empty((1, part.shape[1], in_h, in_w), dtype=np.float32)
                feat[:, :, rb.core[0] : rb.core[1], cb.core[0] : cb.core[1]] = part[
                    :,
                    :,
                    rb.core[0] - rb.span[0] : rb.core[1] - rb.span[0],
                    cb.core[0] - cb.span[0] : cb.core[1] - cb.span[0],
                ]
        if feat is None:
            raise InputError(f"cannot encode an empty image ({in_w}x{in_h} pixels)")
        return feat

    def _render(self, plan: RenderPlan, features: Features, sink: TileSink, progress: ProgressCallback | None) -> None:
        cell = np.asarray(plan.cell, dtype=np.float32)
        table_run, query_run = self._sessions["table"].run, self._sessions["query"].run
        ylook, xlook = plan.ylook, plan.xlook
        done, total = 0, plan.out_hw[0] * plan.out_hw[1]
        for rb in plan.row_bands:
            for cb in plan.col_bands:
                feat = features(rb, cb)
                tp = plan_tile(rb, cb, ylook, feat.shape[1], self.query_batch)
                x0, x1 = tp.cols
                feat = feat[:, :, :, x0 - cb.span[0] : x1 - cb.span[0]]
                pieces = [
                    (a, b, xlook.idx[:, a:b] - x0, np.ascontiguousarray(xlook.rel[:, a:b])) for a, b in tp.col_pieces
                ]
                for band in tp.bands:
                    y0, y1 = band.rows
                    window = np.ascontiguousarray(feat[:, :, y0 - rb.span[0] : y1 - rb.span[0]])
                    table = table_run(None, {"features": window, "rel_cell": cell})[0]
                    for c0, c1 in band.chunks:
                        row_idx, row_rel = ylook.idx[:, c0:c1] - y0, np.ascontiguousarray(ylook.rel[:, c0:c1])
                        for a, b, col_idx, col_rel in pieces:
                            feeds = {
                                "table": table,
                                "row_idx": row_idx,
                                "row_rel": row_rel,
                                "col_idx": col_idx,
                                "col_rel": col_rel,
                            }
                            pred = query_run(None, feeds)[0]
                            block = np.clip(pred * self.div + self.sub, 0, 1, out=pred)
                            sink(slice(c0, c1), slice(a, b), block)
                            done += block.shape[0] * block.shape[1]
                            if progress is not None:
                                progress(done, total)


def _as_float32(feat: np.ndarray | torch.Tensor) -> np.ndarray:
    """A feature map as a float32 numpy array (torch tensors of an encoding read with torch included)."""
    if isinstance(feat, np.ndarray):
        return feat.astype(np.float32, copy=False)
    return feat.float().numpy()  # a torch tensor (this module never imports torch itself)


_RATE: list[float] = []


def _gemm_rate() -> float:
    """Multiply-adds per second of one decoder-shaped fp32 GEMM in numpy (measured once per process)."""
    if not _RATE:
        a = np.random.default_rng(0).random((4096, 256), dtype=np.float32)
        w = np.random.default_rng(1).random((256, 256), dtype=np.float32)
        a @ w
        t0 = time.perf_counter()
        for _ in range(3):
            a @ w
        _RATE.append(3 * a.shape[0] * w.size / max(time.perf_counter() - t0, 1e-9))
    return _RATE[0]


def load_runtime(
    model: str | os.PathLike,
    *,
    normalization: str | None = None,
    name: str = "",
    device: str = "auto",
    precision: str = "auto",
    tile: int | None = None,
    threads: int | None = None,
    batch_size: int | None = None,
) -> tuple[OnnxModel, OnnxRenderer]:
    """An export folder or checkpoint (exported into the cache on first use) ready to render."""
    precision = (precision or "auto").strip().lower()
    if precision not in ("auto", "fp32"):
        raise UsageError(f"the onnxruntime backend runs fp32 only (got {{precision}} {precision})", param="precision")
    loaded = ensure_export(model, normalization=normalization, name=name)
    options = OnnxOptions(resolve_device(device), "fp32", tile, batch_size, threads)
    return loaded, OnnxRenderer(loaded, options)
