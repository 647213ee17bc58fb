"""Python API.

    from liif_cli import load_model
    up = load_model("edsr-baseline")                 # downloads and verifies on first use
    big = up.upscale(pil_image, scale=7.5)           # PIL in, PIL out (or numpy in, numpy out)

Everything the CLI does goes through here; the engine underneath owns tiles, precision and devices.
How a model is loaded is one frozen `LoadOptions` (load_options.py), passed whole: `load_model(model, options)`
loads now, `LazyModel(model, options)` on first use (a batch, a server worker; building one imports no torch),
`planning_model` builds an unloaded stand-in for `--dry-run`, and `load_encoding` binds a saved `.liif` to one.
Two backends render: torch (`engine.Renderer`) and onnxruntime (`onnxrt.OnnxRenderer`, exported graphs).
This module imports torch only when a torch model is loaded, so that the onnxruntime backend runs without it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterator

    from .encoding import Encoding
    from .registry import ModelEntry
    from .video import Frame, VideoResult

import numpy as np
from PIL import Image

from . import decoded, geometry
from .errors import LiifError, ModelError, UsageError, first_line
from .imageio import DecodedImage, as_float
from .load_options import LoadOptions, load_options
from .sizes import SizeArgs, window_output_size
from .sizes import output_size as output_size  # re-exported: liif_cli.output_size

ProgressCallback = Callable[[int, int], None]  # (output pixels done, total)


class Upscaler:
    """A loaded model on a device, at a precision: call it for as many images as you like.

    `loaded` and `options` are a `models.LoadedModel` and `engine.RenderOptions` (torch), or, with
    `renderer` given, what that renderer was built from (`onnxrt.OnnxModel` and `onnxrt.OnnxOptions`).
    """

    def __init__(self, loaded: Any, options: Any, name: str = "", *, renderer: Any = None):
        self.loaded = loaded
        self.name = name
        if renderer is None:
            from . import engine

            renderer = engine.Renderer(loaded, options)
        self.renderer = renderer

    @property
    def backend(self) -> str:
        from .onnxrt import OnnxRenderer

        return "onnxruntime" if isinstance(self.renderer, OnnxRenderer) else "torch"

    @property
    def device(self):
        """A torch.device, or an `onnxrt.RuntimeDevice` (its `.type` and providers)."""
        return self.renderer.options.device

    @property
    def precision(self) -> str:
        return self.renderer.precision  # the working one: fp32 after a non-finite half-precision result

    def upscale_video(self, src: str | Path, dst: str | Path, **options: Any) -> VideoResult:
        """Upscale a video file into `dst`, streaming; options and errors as `liif_cli.video.upscale_video`
        (out_hw= or size=, codec=, crf=, pix_fmt=, frames=, time=, progress=, warn=, overwrite=...)."""
        from .video import upscale_video

        return upscale_video(self, src, dst, **options)

    def iter_video(self, src: str | Path, **options: Any) -> Iterator[tuple[Frame, np.ndarray]]:
        """(decoded frame, upscaled pixels) pairs, one at a time: `liif_cli.video.iter_upscaled` with this model."""
        from .video import iter_upscaled

        return iter_upscaled(self, src, **options)

    def estimate(self, in_hw: tuple[int, int], out_hw: tuple[int, int]) -> str:
        """A one-line forecast of time and working memory, printed before big jobs."""
        seconds, peak = self.renderer.estimate(in_hw, out_hw)
        out_bytes = out_hw[0] * out_hw[1] * 3 * 2
        when = f"{seconds / 60:.0f} min" if seconds >= 120 else f"{seconds:.0f} s"
        return (
            f"{in_hw[1]}x{in_hw[0]} -> {out_hw[1]}x{out_hw[0]}: about {when} on {self.device.type} ({self.precision}), "
            f"~{(peak + out_bytes) / 2**30:.1f} GiB working memory"
        )

    def upscale_array(
        self,
        rgb: np.ndarray,
        out_hw: tuple[int, int],
        *,
        progress: ProgressCallback | None = None,
        dtype: type | np.dtype = np.float32,
        region: geometry.Region | None = None,
    ) -> np.ndarray:
        """rgb: (H, W, 3) floats in [0, 1] -> (h, w, 3) of `dtype` (of the window `region` if given).

        float32 output is clamped and unrounded (the official math); uint8 / uint16 output is rounded
        tile by tile, so a large result never exists in float.
        """
        rgb = np.asarray(rgb)
        if rgb.ndim != 3 or rgb.shape[2] != 3:
            raise UsageError(f"expected an (H, W, 3) array, got shape {rgb.shape}")
        rgb = np.ascontiguousarray(rgb, dtype=np.float32)
        dtype = np.dtype(dtype)
        if dtype.kind != "f" and dtype not in (np.uint8, np.uint16):
            raise UsageError(f"unsupported output dtype {dtype}")
        geometry.check_region(region, rgb.shape[:2])
        plane = decoded.render_plane(
            self._plane(rgb, region), out_hw, np.float32 if dtype.kind == "f" else dtype, progress
        )
        return plane.astype(dtype, copy=False)

    def upscale_image(
        self,
        img: DecodedImage,
        out_hw: tuple[int, int],
        *,
        alpha: str = "model",
        region: geometry.Region | None = None,
        progress: ProgressCallback | None = None,
    ) -> DecodedImage:
        """The library's one path from a decoded image to the upscaled image (`liif upscale` uses it).

        Colour, alpha (`model` or `bicubic`), gray and 16-bit are handled as `liif_cli.decoded` describes;
        metadata is kept and DPI scales with the size. `region` renders a window (x, y, w, h) of the image.
        """
        kind = decoded.alpha_kind(img.alpha, alpha)
        geometry.check_region(region, img.hw)
        a = img.alpha
        source: decoded.AlphaSource = {
            "none": None,
            "constant": None if a is None else float(a.min()),
            "model": None if kind != "model" or a is None else self._plane(np.repeat(a[..., None], 3, axis=2), region),
            "bicubic": a,
        }[kind]
        colour = self._plane(as_float(img.rgb), region)
        return decoded.upscale_decoded(img, img.hw, out_hw, colour, source, region=region, progress=progress)

    def _plane(self, rgb: np.ndarray, region: geometry.Region | None) -> decoded.PlaneRenderer:
        rgb = np.ascontiguousarray(rgb, dtype=np.float32)

        def render(out_hw: tuple[int, int], sink: decoded.Sink, progress: ProgressCallback | None) -> None:
            self.renderer.render_with_fallback(rgb, out_hw, sink, progress, region=region)

        return render

    def upscale(
        self,
        image: Image.Image | np.ndarray | str | os.PathLike | DecodedImage,
        *,
        scale: float | tuple[float, float] | None = None,
        size: tuple[int, int] | None = None,
        width: int | None = None,
        height: int | None = None,
        region: geometry.Region | None = None,
        alpha: str = "model",
        progress: ProgressCallback | None = None,
    ) -> Image.Image | np.ndarray | DecodedImage:
        """Upscale one image (or the window `region` = (x, y, w, h) of it, in input pixels) with the same
        defaults as `liif upscale`: alpha through the model unless `alpha="bicubic"`.

        * PIL image in, PIL image out (L, LA, RGB, RGBA; 16-bit gray as I;16), rounded as a PNG would be.
        * A file path (or a DecodedImage) in, a DecodedImage out: 16-bit, ICC, EXIF and DPI kept; write it
          with `liif_cli.imageio.write_image`.
        * numpy (H, W, 3) in, numpy out of the same kind (floats in [0, 1], or uint8 / uint16).

        The size is one of scale / size (w, h) / width / height, relative to the region if given.
        """
        kw: SizeArgs = {"scale": scale, "size": size, "width": width, "height": height}
        if isinstance(image, np.ndarray):
            array = np.asarray(image)
            out_hw = window_output_size((array.shape[0], array.shape[1]), region, **kw)
            if array.dtype in (np.uint8, np.uint16):  # integer pixels in, the same integers out
                top = np.float32(np.iinfo(array.dtype).max)
                floats = array.astype(np.float32) / top
                return self.upscale_array(floats, out_hw, dtype=array.dtype, region=region, progress=progress)
            return self.upscale_array(array, out_hw, region=region, progress=progress)
        img = to_decoded(image)
        out_hw = window_output_size(img.hw, region, **kw)
        result = self.upscale_image(img, out_hw, alpha=alpha, region=region, progress=progress)
        return decoded.to_pil(result) if isinstance(image, Image.Image) else result

    def encode(
        self, image: Image.Image | np.ndarray | str | os.PathLike | DecodedImage, *, alpha: str = "model"
    ) -> Encoding:
        """The image's latent grid(s), to render later at any size or region: see `liif_cli.encoding`."""
        from .encoding import encode_image

        return encode_image(self, to_decoded(image), alpha=alpha)

    def weights_sha256(self) -> str:
        """sha256 over the network's parameters (state-dict order, float32 bytes): identifies the weights
        whatever file layout they were loaded from; encodings record it."""
        if getattr(self, "_weights_sha256", None) is None:
            recorded = getattr(self.loaded, "weights_sha256", None)  # an ONNX export's manifest records it
            if isinstance(recorded, str):
                self._weights_sha256 = recorded
            else:
                from .models.checkpoint import weights_sha256

                self._weights_sha256 = weights_sha256(self.loaded.net)
        return self._weights_sha256


def to_decoded(image: Image.Image | np.ndarray | str | os.PathLike | DecodedImage) -> DecodedImage:
    """Any supported image input as a DecodedImage (a path is read as `liif upscale` reads it)."""
    from .imageio import decode_pil, read_image

    if isinstance(image, DecodedImage):
        return image
    if isinstance(image, Image.Image):
        return decode_pil(image)
    if isinstance(image, np.ndarray):
        return decoded.from_array(image)
    if isinstance(image, str | os.PathLike):
        return read_image(image)
    raise UsageError(f"cannot upscale a {type(image).__name__}: give a PIL image, an array or a file path")


def load_model(
    model: str | Path = "edsr-baseline",
    options: LoadOptions | None = None,
    *,
    progress: bool = False,
    **fields: Any,
) -> Upscaler:
    """A registry name (see `liif models`) or a checkpoint path (official or mmagic layout), loaded as `options`
    say (a `LoadOptions`), or as its fields given as keywords: backend=, device=, precision=, tile=, threads=,
    batch_size=, allow_unverified=, offline=.

    `backend="onnxruntime"` renders with exported ONNX graphs (docs/onnx.md) and imports no torch: `model`
    may then also be an export folder (`liif export --format onnx`); a checkpoint or registry name is
    exported once into the cache (that first time needs torch). It runs fp32 only.
    """
    from .onnxrt import is_export

    opts = load_options(options, **fields)
    if is_export(model):
        if opts.backend != "onnxruntime":
            raise UsageError(f"{model}: an ONNX export folder runs with {{backend}} onnxruntime", param="backend")
        path, entry = Path(model), None
    else:
        path, entry = _weights(model, allow_unverified=opts.allow_unverified, offline=opts.offline, progress=progress)
    normalization = entry.normalization if entry else None
    if opts.backend == "onnxruntime":
        from . import onnxrt

        loaded, renderer = onnxrt.load_runtime(
            path,
            normalization=normalization,
            name=str(model),
            device=opts.device,
            precision=opts.precision or "auto",
            tile=opts.tile,
            threads=opts.threads,
            batch_size=opts.batch_size,
        )
        return Upscaler(loaded, renderer.options, name=str(model), renderer=renderer)
    from . import devices, engine
    from .models import load_checkpoint

    devices.set_threads(opts.threads)
    torch_device = devices.resolve_device(opts.device)
    resolved_precision = devices.resolve_precision(opts.precision, torch_device)
    checkpoint = load_checkpoint(path, normalization=normalization)
    render = engine.RenderOptions(torch_device, resolved_precision, opts.tile, opts.batch_size)
    return Upscaler(checkpoint, render, name=str(model))


def _weights(
    model: str | Path, *, allow_unverified: bool, offline: bool | None, progress: bool
) -> tuple[Path, ModelEntry | None]:
    """A registry name or checkpoint path -> (the local weights file, downloaded and verified if need be; the
    registry entry, None for a file)."""
    from .registry import load_registry, resolve_weights

    path = resolve_weights(model, allow_unverified=allow_unverified, offline=offline, progress=progress)
    entry = load_registry().get(str(model)) if not Path(str(model)).expanduser().is_file() else None
    return path, entry


class LazyModel:
    """`load_model(model, options)` on the first `get()`, once, for a batch or a server worker: a batch whose
    files are all skipped or broken never loads (or downloads) it. Building one imports no torch.

        lazy = LazyModel("edsr-baseline", LoadOptions(device="cpu"))
        up = lazy.get()            # loads now; later calls return the same Upscaler

    `loads` counts the loads (0 or 1). Every load error is a LiifError (a ModelError for the model itself; a
    bad device is a UsageError); an OSError reading the weights becomes a ModelError.
    """

    def __init__(
        self, model: str | Path = "edsr-baseline", options: LoadOptions | None = None, *, progress: bool = False
    ) -> None:
        self.model = model
        self.options = options or LoadOptions()
        self.progress = progress
        self._upscaler: Upscaler | None = None
        self.loads = 0

    @property
    def loaded(self) -> bool:
        return self._upscaler is not None

    def get(self) -> Upscaler:
        if self._upscaler is None:
            self.loads += 1
            try:
                self._upscaler = load_model(self.model, self.options, progress=self.progress)
            except LiifError:  # CheckpointError included (a ModelError)
                raise
            except OSError as exc:
                raise ModelError(f"cannot load the model: {first_line(exc)}") from None
        return self._upscaler

    def estimate(self, in_hw: tuple[int, int], out_hw: tuple[int, int]) -> str:
        """`Upscaler.estimate` of the model (loading it if need be)."""
        return self.get().estimate(in_hw, out_hw)


def load_encoding(
    path: str | os.PathLike,
    model: Upscaler | str | Path | None = None,
    options: LoadOptions | None = None,
    *,
    progress: bool = False,
    **fields: Any,
) -> Encoding:
    """Read a `.liif` file, bound to `model` (an Upscaler, or a name / checkpoint for `load_model`; by
    default the model named in the file, at the precision it was encoded in unless `precision` is given).
    Refused with one-line errors: a file that is not a complete encoding or comes from a newer format
    (EncodingError, exit 9), and an encoding made with other weights than the model's (EncodingModelError,
    exit 10). With the onnxruntime backend the latents are read as numpy arrays (no torch)."""
    from .encoding import bind, read_encoding

    opts = load_options(options, **fields)
    onnx = (model.backend if isinstance(model, Upscaler) else opts.backend) == "onnxruntime"
    encoding = read_encoding(path, numpy=onnx)
    if not isinstance(model, Upscaler) and opts.precision is None and not onnx:
        opts = opts.replace(precision=encoding.meta["precision"])  # decode as encoded: `auto` may pick bf16
    upscaler = (
        model if isinstance(model, Upscaler) else load_model(model or encoding.meta["model"], opts, progress=progress)
    )
    return bind(encoding, upscaler, path)


def planning_model(
    model: str | Path = "edsr-baseline", options: LoadOptions | None = None, **fields: Any
) -> tuple[Upscaler, str]:
    """An Upscaler of the model's architecture with untrained weights, for `Upscaler.estimate` without reading,
    downloading or loading the checkpoint (`--dry-run`), and the encoder it assumed: the registry's for a
    name, edsr-baseline for a file (which is not opened). Device, precision, tile and batch size are taken from
    `options` (or its fields as keywords), as `load_model` takes them. Its pixels mean nothing; its timings and
    sizes do."""
    from . import devices, engine
    from .models import LoadedModel, Normalization, build_liif
    from .registry import ModelEntry, check_model_ref

    opts = load_options(options, **fields)
    ref = check_model_ref(model)
    encoder = ref.encoder if isinstance(ref, ModelEntry) else "edsr-baseline"
    torch_device = devices.resolve_device(opts.device)
    precision = devices.resolve_precision(opts.precision or "auto", torch_device)
    render = engine.RenderOptions(torch_device, precision, opts.tile, opts.batch_size)
    loaded = LoadedModel(build_liif(encoder), encoder, Normalization.named("half"), "untrained")
    return Upscaler(loaded, render, name=f"{model} (not loaded)"), encoder


def upscale(
    image: Image.Image | np.ndarray | str | os.PathLike | DecodedImage,
    *,
    scale: float | tuple[float, float] | None = None,
    size: tuple[int, int] | None = None,
    width: int | None = None,
    height: int | None = None,
    region: geometry.Region | None = None,
    alpha: str = "model",
    model: str | Path | Upscaler = "edsr-baseline",
    options: LoadOptions | None = None,
    **fields: Any,
) -> Image.Image | np.ndarray | DecodedImage:
    """One-shot convenience: loads `model` (unless given an Upscaler) as `options` (or their fields as
    keywords) say, and upscales one image."""
    up = model if isinstance(model, Upscaler) else load_model(model, options, **fields)
    return up.upscale(image, scale=scale, size=size, width=width, height=height, region=region, alpha=alpha)


EXPORT_FORMATS = ("onnx", "safetensors")


def export_model(
    model: str | Path,
    output: str | Path,
    *,
    format: str = "onnx",
    normalization: str | None = None,
    overwrite: bool = False,
    allow_unverified: bool = False,
    offline: bool | None = None,
    progress: bool = False,
) -> Path:
    """Write a registry model or checkpoint (any layout) as an ONNX export folder (three graphs and a
    manifest, docs/onnx.md) or as weights-only `.safetensors`. `normalization` overrides the model's."""
    from .imageio.target import exists
    from .registry import sha256_file

    if format not in EXPORT_FORMATS:
        raise UsageError(f"unknown export format {format!r} (use {' or '.join(EXPORT_FORMATS)})")
    out = Path(output)
    if out.exists() and not overwrite:
        raise exists(out)
    path, entry = _weights(model, allow_unverified=allow_unverified, offline=offline, progress=progress)
    normalization = normalization or (entry.normalization if entry else None)
    if format == "safetensors":
        from .train import export_safetensors

        export_safetensors(path, out, normalization=normalization)
        return out
    from .models import load_checkpoint
    from .models.checkpoint import weights_sha256
    from .onnx_export import export_onnx

    loaded = load_checkpoint(path, normalization=normalization)
    return export_onnx(
        loaded,
        out,
        source_sha256=sha256_file(path),
        weights_sha256=weights_sha256(loaded.net),
        model_name=str(model),
        overwrite=overwrite,
    )
