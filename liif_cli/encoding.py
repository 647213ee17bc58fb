"""Encode once, render anywhere: an image's latent grid(s), kept in memory or in a `.liif` file.

    enc = up.encode("photo.png")                       # the encoder runs once (tiled, exact)
    enc.render(width=1280); enc.render(width=3840)     # decoder only, any size
    enc.render(scale=20, region=(1200, 800, 64, 48))   # any window, at any magnification
    enc.save("photo.liif"); load_encoding("photo.liif", model=up).render(size=(4000, 3000))

A `.liif` file is a safetensors container: tensor `rgb` (1, C, H, W), the colour latents; `alpha` (same
shape), the latents of the alpha plane replicated to RGB when alpha goes through the model; `alpha_plane`
(H, W) float32, the input alpha when it is resized bicubically; and one metadata entry `liif`, a JSON
object (see `Encoding.meta`: format version, model name and weights sha256, normalization, input size,
precision, alpha handling, mode, bit depth, ICC/DPI/EXIF to write outputs as `liif upscale` does).
Rendering goes through `liif_cli.decoded`, the same path as `liif upscale`, so the results are the same.
This module reads and writes the file (`read_encoding`, `Encoding.save`) and checks a model against it
(`bind`); `load_encoding`, which loads the model too, lives beside `load_model` in `liif_cli.api`.
The latents are torch tensors with the torch backend and float32 numpy arrays with onnxruntime (which
imports no torch); the file is the same either way.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Unpack

import numpy as np

from . import decoded, geometry, sizes
from .errors import EncodingError, EncodingModelError, InputError, first_line
from .imageio import DecodedImage, as_float, atomic_target

if TYPE_CHECKING:
    from .api import ProgressCallback, Upscaler

FORMAT_VERSION = 1
_TENSORS = ("rgb", "alpha", "alpha_plane")


@dataclass
class Encoding:
    """Latent grid(s) of one image plus what is needed to render it as `liif upscale` would.

    `meta` keys: format_version, model, model_sha256 (`Upscaler.weights_sha256`), encoder,
    normalization {sub, div}, input_size [w, h], precision, alpha (none | constant | model | bicubic),
    alpha_constant, mode, bits, source_mode, format, icc_profile / exif (base64), dpi.
    """

    features: Any  # (1, C, H, W) colour latents, on the CPU: a torch tensor, or numpy with onnxruntime
    meta: dict[str, Any]
    alpha_features: Any = None  # alpha "model": latents of the alpha plane as RGB
    alpha_plane: np.ndarray | None = None  # alpha "bicubic": the input alpha, (H, W) float32
    upscaler: Upscaler | None = None  # renders it; set by `Upscaler.encode` and `load_encoding`

    @property
    def in_hw(self) -> tuple[int, int]:
        return int(self.features.shape[2]), int(self.features.shape[3])

    @property
    def nbytes(self) -> int:
        """Bytes held (and saved, give or take the header): 256 per input pixel in fp32, 128 in half."""
        planes = [self.features, self.alpha_features]
        extra = 0 if self.alpha_plane is None else self.alpha_plane.nbytes
        return (
            sum(t.numel() * t.element_size() if hasattr(t, "numel") else t.nbytes for t in planes if t is not None)
            + extra
        )

    def output_size(self, *, region: geometry.Region | None = None, **size: Unpack[sizes.SizeArgs]) -> tuple[int, int]:
        """The (h, w) a render with these arguments (scale=, size=, width= or height=) makes (relative to the
        region if given)."""
        return sizes.window_output_size(self.in_hw, region, **size)

    def render(
        self,
        *,
        scale: float | tuple[float, float] | None = None,
        size: tuple[int, int] | None = None,
        width: int | None = None,
        height: int | None = None,
        region: geometry.Region | None = None,
        progress: ProgressCallback | None = None,
    ) -> DecodedImage:
        """The upscaled image (or window `region` = x, y, w, h in input pixels), exactly as `liif upscale`
        makes it from the input; write it with `liif_cli.imageio.write_image`."""
        out_hw = self.output_size(scale=scale, size=size, width=width, height=height, region=region)
        region = geometry.check_region(region, self.in_hw)
        kind = self.meta["alpha"]
        alpha: decoded.AlphaSource = {
            "none": None,
            "constant": self.meta.get("alpha_constant"),
            "model": None if self.alpha_features is None else self._plane(self.alpha_features, region),
            "bicubic": self.alpha_plane,
        }[kind]
        colour = self._plane(self.features, region)
        return decoded.upscale_decoded(
            self._template(), self.in_hw, out_hw, colour, alpha, region=region, progress=progress
        )

    def render_array(
        self,
        out_hw: tuple[int, int],
        *,
        region: geometry.Region | None = None,
        progress: ProgressCallback | None = None,
    ) -> np.ndarray:
        """The colour alone as float32 (h, w, 3) in [0, 1], unrounded: the official math."""
        region = geometry.check_region(region, self.in_hw)
        return decoded.render_plane(self._plane(self.features, region), out_hw, np.float32, progress)

    def _plane(self, feat: Any, region: geometry.Region | None) -> decoded.PlaneRenderer:
        if self.upscaler is None:
            raise EncodingError("this encoding has no model to render it: load it with a model (load_encoding)")
        renderer = self.upscaler.renderer

        def render(out_hw: tuple[int, int], sink: decoded.Sink, progress: ProgressCallback | None) -> None:
            renderer.with_fallback(lambda: renderer.render_features(feat, out_hw, sink, progress, region=region))

        return render

    def _template(self) -> DecodedImage:
        m = self.meta
        return DecodedImage(
            rgb=np.empty((0, 0, 3), np.float32),
            mode=m["mode"],
            bits=int(m["bits"]),
            source_mode=m.get("source_mode", m["mode"]),
            format=m.get("format"),
            icc_profile=_unb64(m.get("icc_profile")),
            dpi=None if m.get("dpi") is None else (float(m["dpi"][0]), float(m["dpi"][1])),
            exif=_unb64(m.get("exif")),
        )

    def save(self, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
        """Write a `.liif` file atomically (temp file in the target folder, then rename): an interrupted
        save leaves no partial file. An existing file is refused unless `overwrite`."""
        plane = None if self.alpha_plane is None else np.ascontiguousarray(self.alpha_plane, dtype=np.float32)
        metadata = {"liif": json.dumps(self.meta, sort_keys=True)}
        with atomic_target(Path(path), overwrite=overwrite) as tmp:
            if isinstance(self.features, np.ndarray):
                from safetensors.numpy import save_file as save_arrays

                arrays = {"rgb": np.ascontiguousarray(self.features)}
                if self.alpha_features is not None:
                    arrays["alpha"] = np.ascontiguousarray(self.alpha_features)
                if plane is not None:
                    arrays["alpha_plane"] = plane
                save_arrays(arrays, str(tmp), metadata=metadata)
            else:
                import torch
                from safetensors.torch import save_file as save_tensors

                tensors = {"rgb": self.features.contiguous()}
                if self.alpha_features is not None:
                    tensors["alpha"] = self.alpha_features.contiguous()
                if plane is not None:
                    tensors["alpha_plane"] = torch.from_numpy(plane)
                save_tensors(tensors, str(tmp), metadata=metadata)
        return Path(path)


def encode_image(upscaler: Upscaler, img: DecodedImage, *, alpha: str = "model") -> Encoding:
    """`Upscaler.encode`: the colour (and, for alpha `model`, the alpha) through the tiled encoder."""
    kind = decoded.alpha_kind(img.alpha, alpha)
    renderer = upscaler.renderer

    def encode(rgb: np.ndarray) -> Any:  # a torch tensor, or numpy with onnxruntime
        rgb = np.ascontiguousarray(rgb, dtype=np.float32)
        return renderer.with_fallback(lambda: renderer.encode(rgb))

    features = encode(as_float(img.rgb))
    a = img.alpha
    alpha_features = encode(np.repeat(a[..., None], 3, axis=2)) if kind == "model" and a is not None else None
    norm = upscaler.loaded.normalization
    meta = {
        "format_version": FORMAT_VERSION,
        "model": upscaler.name,
        "model_sha256": upscaler.weights_sha256(),
        "encoder": upscaler.loaded.encoder,
        "normalization": {"sub": list(norm.sub), "div": list(norm.div)},
        "input_size": [img.hw[1], img.hw[0]],
        "precision": upscaler.precision,
        "alpha": kind,
        "alpha_constant": float(a.min()) if kind == "constant" and a is not None else None,
        "mode": img.mode,
        "bits": img.bits,
        "source_mode": img.source_mode,
        "format": img.format,
        "icc_profile": _b64(img.icc_profile),
        "exif": _b64(img.exif),
        "dpi": None if img.dpi is None else list(img.dpi),
    }
    plane = np.ascontiguousarray(img.alpha, dtype=np.float32) if kind == "bicubic" else None
    return Encoding(features, meta, alpha_features, plane, upscaler)


def _image_format(path: Path) -> str | None:
    """The image format found in the file's content (a picture given where an encoding belongs), or None."""
    from .imageio import identify

    try:
        found = identify(path, media=False)
    except InputError:
        return None
    return found.format if found.kind in ("still", "animation") else None


def _encoding_file(path: str | os.PathLike) -> Path:
    """`path` as a Path when it is a file that is not a picture; else the one-line EncodingError (exit 9)
    that says what it is (a picture: run `liif encode` first)."""
    path = Path(path)
    if not path.is_file():
        raise EncodingError(f"{path}: no such encoding file")
    if kind := _image_format(path):
        raise EncodingError(
            f"{path}: this is a {kind} image, not a .liif encoding: run 'liif encode {path}' first "
            f"(or 'liif upscale {path}' for one size)"
        )
    return path


def encoding_info(path: str | os.PathLike) -> dict:
    """The metadata of a `.liif` file (`input_size` as [w, h], `model`, `precision`...) from its header alone:
    no tensor is read and no model loaded (for plans, `liif render --dry-run`). Same one-line errors."""
    from safetensors import safe_open

    path = _encoding_file(path)
    try:
        with safe_open(str(path), framework="np") as f:  # the header only: numpy, so no torch is imported
            header = f.metadata() or {}
        meta = json.loads(header["liif"])
        version = int(meta["format_version"])
        w, h = (int(v) for v in meta["input_size"])
    except Exception as exc:
        raise EncodingError(f"{path}: not a readable .liif encoding ({first_line(exc)})") from None
    if version > FORMAT_VERSION:
        raise EncodingError(f"{path}: made by a newer liif (encoding format {version}): upgrade liif to render it")
    return {**meta, "input_size": [w, h]}


def read_encoding(path: str | os.PathLike, *, numpy: bool = False) -> Encoding:
    """A `.liif` file's tensors and metadata, not yet bound to a model (`api.load_encoding` binds one); as
    numpy arrays with `numpy=True` (the onnxruntime backend, which imports no torch), else torch tensors.
    A file that is not a complete encoding or comes from a newer format is an EncodingError (exit 9)."""
    from safetensors import safe_open

    path = _encoding_file(path)
    try:
        with safe_open(str(path), framework="np" if numpy else "pt") as f:
            header = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open is not a mapping)
    except Exception as exc:  # safetensors reports a bad header, a short file... as assorted exceptions
        raise EncodingError(
            f"{path}: not a readable .liif encoding (corrupt or truncated: {first_line(exc)})"
        ) from None
    meta = _check_meta(path, header, tensors)
    plane = tensors.get("alpha_plane")
    plane = None if plane is None or isinstance(plane, np.ndarray) else plane.numpy()
    return Encoding(tensors["rgb"], meta, tensors.get("alpha"), plane, None)


def bind(encoding: Encoding, upscaler: Upscaler, path: str | os.PathLike) -> Encoding:
    """The encoding bound to `upscaler`; refused (EncodingModelError, exit 10) when it was made with other weights."""
    meta = encoding.meta
    if upscaler.weights_sha256() != meta["model_sha256"]:
        raise EncodingModelError(
            f"{path}: encoded with model {meta['model']!r} (weights {meta['model_sha256'][:12]}), "
            f"not with {upscaler.name!r} ({upscaler.weights_sha256()[:12]}): render it with the model that made it"
        )
    return dataclasses.replace(encoding, upscaler=upscaler)


def _check_meta(path: Path, header: dict, tensors: dict) -> dict:
    """The file's metadata, checked against its tensors; any inconsistency is an EncodingError."""
    try:
        meta = json.loads(header["liif"])
        version = int(meta["format_version"])
    except (KeyError, TypeError, ValueError):
        raise EncodingError(f"{path}: a safetensors file, but not a liif encoding (no valid 'liif' metadata)") from None
    if version > FORMAT_VERSION:
        raise EncodingError(
            f"{path}: made by a newer liif (encoding format {version}; this version reads up to "
            f"{FORMAT_VERSION}): upgrade liif to render it"
        )
    try:
        w, h = (int(v) for v in meta["input_size"])
        rgb = tensors["rgb"]
        ok = rgb.ndim == 4 and tuple(rgb.shape[2:]) == (h, w) and set(tensors) <= set(_TENSORS)
        ok = ok and meta["alpha"] in ("none", "constant", "model", "bicubic") and isinstance(meta["model_sha256"], str)
        ok = ok and meta["mode"] in ("RGB", "RGBA", "L", "LA") and int(meta["bits"]) in (8, 16)
        ok = ok and (meta["alpha"] != "model" or tuple(tensors["alpha"].shape) == tuple(rgb.shape))
        ok = ok and (meta["alpha"] != "bicubic" or tuple(tensors["alpha_plane"].shape) == (h, w))
        ok = ok and (meta["alpha"] != "constant" or isinstance(meta["alpha_constant"], int | float))
    except (KeyError, TypeError, ValueError):
        ok = False
    if not ok:
        raise EncodingError(f"{path}: corrupt liif encoding (metadata and tensors disagree)")
    return meta


def _b64(data: bytes | None) -> str | None:
    return None if data is None else base64.b64encode(data).decode("ascii")


def _unb64(text: str | None) -> bytes | None:
    return None if text is None else base64.b64decode(text)
