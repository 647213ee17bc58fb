"""Reading and writing LIIF checkpoints: official (yinboc) and MMEditing/mmagic layouts.

A checkpoint is recognised by its structure, converted to the official key names, and loaded with
`strict=True`; the normalization that the weights were trained with travels with the model, because
the two releases differ (see `Normalization`).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypedDict

import torch

from ..atomic import atomic_open
from ..encoders import ENCODERS, NORMALIZATIONS, detect_encoder
from ..errors import ModelError, first_line
from .liif import LIIF
from .mlp import MLP


class _MLPArgs(TypedDict):
    out_dim: int
    hidden_list: list[int]


MLP_ARGS: _MLPArgs = {"out_dim": 3, "hidden_list": [256, 256, 256, 256]}
"""The decoder's arguments as the official `imnet_spec` records them (saved in every checkpoint we write)."""


class CheckpointError(ModelError):
    """The file is not a LIIF checkpoint we can load safely."""


@dataclass(frozen=True)
class Normalization:
    """Model input is `(rgb - sub) / div`; model output maps back by `pred * div + sub`."""

    sub: tuple[float, float, float]
    div: tuple[float, float, float]

    @classmethod
    def named(cls, name: str) -> Normalization:
        if name not in NORMALIZATIONS:
            raise CheckpointError(f"unknown normalization {name!r} (expected one of {', '.join(NORMALIZATIONS)})")
        sub, div = NORMALIZATIONS[name]
        return cls(sub, div)


@dataclass
class LoadedModel:
    """A ready-to-run LIIF network plus what is needed to feed it correctly."""

    net: LIIF
    encoder: str
    normalization: Normalization
    source_format: str  # "official" or "mmagic"


def recorded_normalization(obj: dict[str, Any]) -> Normalization | None:
    """The normalization an official-layout file records in `data_norm` (the official training configs'
    key; `liif train` writes it), or None. It matters for weights fine-tuned from mmagic EDSR (x - mean)."""
    dn = obj.get("data_norm")
    if not isinstance(dn, dict) or not isinstance(dn.get("inp"), dict):
        return None
    try:
        sub = [float(v) for v in dn["inp"]["sub"]]
        div = [float(v) for v in dn["inp"]["div"]]
    except (KeyError, TypeError, ValueError):
        raise CheckpointError("checkpoint has a malformed 'data_norm'") from None
    sub, div = (sub * 3 if len(sub) == 1 else sub), (div * 3 if len(div) == 1 else div)
    if len(sub) != 3 or len(div) != 3:
        raise CheckpointError("checkpoint 'data_norm' must give 1 or 3 values")
    return Normalization((sub[0], sub[1], sub[2]), (div[0], div[1], div[2]))


def build_liif(encoder: str) -> LIIF:
    if encoder not in ENCODERS:
        raise CheckpointError(f"unknown encoder {encoder!r} (known: {', '.join(ENCODERS)})")
    # The encoder first, as the official LIIF.__init__: the order its random weights are drawn in (seeded runs)
    net = ENCODERS[encoder].build()
    imnet = MLP(in_dim=64 * 9 + 4, out_dim=MLP_ARGS["out_dim"], hidden_list=tuple(MLP_ARGS["hidden_list"]))
    return LIIF(net, imnet)


def build_strict(encoder: str, state_dict: dict[str, torch.Tensor], origin: str) -> LIIF:
    """A LIIF network holding exactly these weights (strict: no key missing, none left over), in eval mode."""
    net = build_liif(encoder)
    state_dict = dict(state_dict)
    for name, buf in net.state_dict().items():
        # EDSR's MeanShift constants are unused by the forward pass; mmagic and exported files lack them.
        if name.startswith(("encoder.sub_mean.", "encoder.add_mean.")):
            state_dict.setdefault(name, buf)
    try:
        net.load_state_dict(state_dict, strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f"{origin}: weights do not match the {encoder} LIIF architecture: {exc}") from None
    return net.eval()


def model_spec(encoder: str) -> dict[str, Any]:
    """The spec the official code stores in a checkpoint so that a file knows how to rebuild itself."""
    return {
        "encoder_spec": {"name": encoder, "args": {"no_upsampling": True}},
        "imnet_spec": {"name": "mlp", "args": dict(MLP_ARGS)},
    }


_MMAGIC_RENAMES = [rename for spec in ENCODERS.values() for rename in spec.mmagic_renames] + [(r"^imnet\.", "imnet.")]


def mmagic_to_official(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename `generator.*` keys to the official layout; drop entries LIIF does not use."""
    out: dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        key = key.removeprefix("module.").removeprefix("generator.").removeprefix("module.")
        for pattern, repl in _MMAGIC_RENAMES:
            new, n = re.subn(pattern, repl, key)
            if n:
                out[new] = value
                break
        # anything else (mmagic's own mean buffers, data preprocessor) has no role in LIIF
    return out


def _guess_encoder(state_dict: dict[str, torch.Tensor]) -> str:
    spec = detect_encoder(state_dict)
    if spec is None:
        raise CheckpointError(f"state dict holds none of the known encoders ({', '.join(ENCODERS)})")
    return spec.name


def _torch_load(path: Path) -> Any:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as exc:  # pickle errors, zip errors, disallowed globals
        raise CheckpointError(f"{path}: {_refusal(exc)}") from None


def _refusal(exc: Exception) -> str:
    """torch.load's refusal as one line: torch explains its own flag over a paragraph; what the user needs is
    that the file would run code to load (and what it asked for), or that it is no checkpoint at all."""
    text = str(exc)
    if "Weights only load failed" in text:
        match = re.search(r"Unsupported global: GLOBAL ([\w.]+)|Unsupported operand (\d+)", text)
        asked = f" (it asks for {match.group(1) or 'pickle opcode ' + match.group(2)})" if match else ""
        return (
            f"refused: loading this checkpoint would run code stored in it{asked}; only files of plain tensors "
            "are loaded (if you trust the file, re-save its tensors with torch.save)"
        )
    return f"not a PyTorch checkpoint that can be loaded safely ({first_line(exc, 200)})"


def load_checkpoint(path: str | Path, normalization: str | None = None) -> LoadedModel:
    """Load an official or mmagic LIIF checkpoint strictly; `normalization` overrides the format's default."""
    path = Path(path)
    if path.suffix == ".safetensors":
        loaded = load_safetensors(path)
        if normalization is not None:
            loaded.normalization = Normalization.named(normalization)
        return loaded
    obj = _torch_load(path)
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path}: expected a dict checkpoint, found {type(obj).__name__}")
    if isinstance(obj.get("model"), dict) and "sd" in obj["model"]:
        source_format = "official"
        spec = obj["model"]
        if spec.get("name", "liif") != "liif":
            raise CheckpointError(f"{path}: model {spec.get('name')!r} is not LIIF")
        state_dict = spec["sd"]
        encoder = spec.get("args", {}).get("encoder_spec", {}).get("name") or _guess_encoder(state_dict)
        default_norm = recorded_normalization(obj) or "half"
    else:
        source_format = "mmagic"
        raw = obj.get("state_dict", obj)
        if not isinstance(raw, dict) or not raw:
            raise CheckpointError(f"{path}: no state dict found")
        state_dict = mmagic_to_official(raw)
        encoder = _guess_encoder(state_dict)
        default_norm = ENCODERS[encoder].mmagic_normalization
    net = build_strict(encoder, state_dict, str(path))
    chosen = normalization or default_norm
    norm = Normalization.named(chosen) if isinstance(chosen, str) else chosen
    return LoadedModel(net, encoder, norm, source_format)


def load_safetensors(path: str | Path) -> LoadedModel:
    """A weights-only `.safetensors` export (`liif train export`): tensors under the official key names,
    with `encoder` and `normalization` in its metadata."""
    try:
        from safetensors import SafetensorError, safe_open
    except ImportError:
        raise CheckpointError(f"{path}: reading .safetensors needs the 'safetensors' package") from None

    path = Path(path)
    try:
        with safe_open(str(path), framework="pt") as fh:
            meta = fh.metadata() or {}
            tensors = {k: fh.get_tensor(k) for k in fh.keys()}  # noqa: SIM118 (safe_open is not a Mapping)
    except (OSError, SafetensorError) as exc:
        raise CheckpointError(f"{path}: not a readable safetensors file ({exc})") from None
    encoder = meta.get("encoder") or _guess_encoder(tensors)
    try:
        norm_meta = json.loads(meta["normalization"]) if "normalization" in meta else None
        norm = Normalization(tuple(norm_meta["sub"]), tuple(norm_meta["div"])) if norm_meta else None
    except (ValueError, KeyError, TypeError):
        raise CheckpointError(f"{path}: malformed normalization metadata") from None
    net = build_strict(encoder, tensors, str(path))  # a CheckpointError is a ModelError
    return LoadedModel(net, encoder, norm or Normalization.named("half"), "safetensors")


def weights_sha256(net: LIIF) -> str:
    """sha256 over the network's parameters (state-dict order, float32 bytes): identifies the weights
    whatever file layout they were loaded from (encodings and ONNX exports record it)."""
    import hashlib

    digest = hashlib.sha256()
    for key, value in net.state_dict().items():
        digest.update(key.encode())
        digest.update(value.detach().float().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def save_official(
    net: LIIF, encoder: str, path: str | Path, optimizer: dict | None = None, epoch: int | None = None
) -> None:
    """Write the official layout (`model.name/args/sd`), loadable by the official code and by us."""
    sd = {k: v.detach().cpu() for k, v in net.state_dict().items()}
    obj: dict[str, Any] = {"model": {"name": "liif", "args": model_spec(encoder), "sd": sd}}
    if optimizer is not None:
        obj["optimizer"] = optimizer
    if epoch is not None:
        obj["epoch"] = epoch
    with atomic_open(path, "wb") as fh:
        torch.save(obj, fh)
