"""Training configuration: the official recipe as defaults, overridable by a TOML file and then by flags.

Precedence, lowest first: the defaults below < the configuration stored in the checkpoint being resumed <
the `--config` TOML file < command-line flags. A TOML file uses the field names below (`-` or `_`), at the
top level or inside a `[train]` table, e.g.

    encoder = "rdn"
    batch-size = 16
    lr-milestones = [200, 400, 600, 800]

Units: an *epoch* is `iters_per_epoch` optimizer steps (iterations) of one *global* batch of `batch_size`
samples, whatever the number of processes; so one epoch is `iters_per_epoch * batch_size` samples. The
official recipe's epoch (800 DIV2K images repeated 20 times, batch 16) is 1000 iterations = 16000 samples.
"""

from __future__ import annotations

import dataclasses
import math
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from ..encoders import ENCODER_NAMES as ENCODERS
from ..encoders import NORMALIZATION_NAMES as NORMALIZATIONS
from ..errors import UsageError

AMP_MODES = ("off", "bf16", "fp16")
VAL_PROTOCOLS = ("benchmark", "div2k")

T = TypeVar("T")


@dataclass
class TrainConfig:
    # what to train on and where to write
    data: str | None = None
    """Folder of HR training images (or a folder with an `HR/` subfolder)."""
    val: str | None = None
    """Validation folder: HR images, or the benchmark layout `HR/` + `LR_bicubic/X{s}/`."""
    out: str | None = None
    """Run directory: checkpoints, `log.jsonl`, `config.toml`."""
    # the model
    encoder: str | None = None
    """'edsr-baseline' or 'rdn'; from scratch defaults to 'edsr-baseline', with `init` it is the init's."""
    init: str | None = None
    """Registry name or checkpoint path to fine-tune from (weights only; optimizer starts fresh)."""
    normalization: str | None = None
    """'half' or 'div2k-mean'; default: the init model's own, 'half' from scratch."""
    resume: str | None = None
    """A training checkpoint to continue, or 'auto' for `<out>/last.pth` when it exists."""
    overwrite: bool = False
    """Start afresh in an `out` that already holds a checkpoint."""
    # the official recipe
    epochs: int = 1000
    iters_per_epoch: int = 1000
    batch_size: int = 16
    """Global batch: split evenly over the processes of a distributed run."""
    inp_size: int = 48
    """LR patch side; the HR crop is round(inp_size * s) for s ~ U(scale_min, scale_max)."""
    scale_min: float = 1.0
    scale_max: float = 4.0
    sample_q: int = 2304
    """HR pixels sampled (without replacement) from each crop as queries."""
    augment: bool = True
    """Random h-flip, v-flip and transpose, each with probability 1/2."""
    lr: float = 1e-4
    lr_milestones: list[int] = field(default_factory=lambda: [200, 400, 600, 800])
    """Epochs after which the learning rate is multiplied by `lr_gamma`."""
    lr_gamma: float = 0.5
    # machinery
    workers: int = 4
    """DataLoader worker processes per training process (0 loads in the main process)."""
    decoded_cache: str | None = None
    """Folder for decoded copies of the training images (.npy, read per sample through a memory map)."""
    seed: int = 0
    device: str = "auto"
    threads: int = 0
    """CPU threads of each training process (torch.set_num_threads); 0 leaves torch's default."""
    amp: str = "off"
    """Mixed precision: 'off', 'bf16' (autocast) or 'fp16' (autocast + GradScaler). Meant for CUDA."""
    save_every: int = 1
    """Write `last.pth` every this many epochs (and always after the last one; 0: only then)."""
    keep_every: int = 100
    """Also keep `epoch-N.pth` every this many epochs; 0 never."""
    val_every: int = 1
    """Validate every this many epochs (and always after the last one; 0: only then) when `val` is set."""
    val_scales: list[int] = field(default_factory=lambda: [2, 3, 4])
    val_protocol: str = "benchmark"
    """'benchmark': PSNR on the paper's Y, shave `scale` px; 'div2k': PSNR on RGB, shave `scale + 6` px."""
    val_max_images: int = 0
    """Validate on the first N images only; 0 all."""
    log_every: int = 50
    """Log the mean training loss every this many iterations."""
    export: str | None = None
    """Also write the final weights to this .safetensors file."""
    progress: bool = True
    debug_param_hash: bool = False
    """Log each rank's SHA-256 of its parameters, and of the sample indices it trained on, after every epoch
    (for checking distributed runs: equal parameters from different data)."""

    # --- helpers ---------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @property
    def samples_per_epoch(self) -> int:
        return self.iters_per_epoch * self.batch_size

    def lr_at(self, epochs_done: int) -> float:
        """The learning rate of the epoch that follows `epochs_done` finished epochs (MultiStepLR)."""
        return self.lr * self.lr_gamma ** sum(1 for m in self.lr_milestones if m <= epochs_done)

    def validate(self) -> TrainConfig:
        """Check values and types; raise `UsageError` naming the parameter (`param=`, `{name}` in its text)."""

        def need(ok: bool, message: str, param: str | tuple[str, ...], hint: str | None = None) -> None:
            if not ok:
                raise UsageError(message, param=param, hint=hint)

        def one_of(name: str, choices: tuple[str, ...]) -> None:
            value = getattr(self, name)
            need(value in choices, f"{{{name}}} must be one of {', '.join(choices)}, got {value!r}", name)

        need(
            bool(self.data),
            "no training data: {data} is not set",
            "data",
            "give {data} DIR, or `data` in the config file",
        )
        need(bool(self.out), "no run directory: {out} is not set", "out", "give {out} DIR, or `out` in the config file")
        if self.encoder is not None:
            one_of("encoder", ENCODERS)
        if self.normalization is not None:
            one_of("normalization", NORMALIZATIONS)
        one_of("amp", AMP_MODES)
        one_of("val_protocol", VAL_PROTOCOLS)
        for name in ("epochs", "iters_per_epoch", "batch_size", "inp_size", "sample_q", "log_every"):
            need(getattr(self, name) >= 1, f"{{{name}}} must be >= 1, got {getattr(self, name)}", name)
        for name in ("workers", "threads", "save_every", "keep_every", "val_every", "val_max_images"):
            need(getattr(self, name) >= 0, f"{{{name}}} must be >= 0, got {getattr(self, name)}", name)
        need(self.lr > 0 and math.isfinite(self.lr), f"{{lr}} must be a finite number > 0, got {self.lr}", "lr")
        need(self.lr_gamma > 0, f"{{lr_gamma}} must be > 0, got {self.lr_gamma}", "lr_gamma")
        need(
            1 <= self.scale_min <= self.scale_max and math.isfinite(self.scale_max),
            f"scales must satisfy 1 <= {{scale_min}} <= {{scale_max}}, got {self.scale_min:g} and {self.scale_max:g}",
            ("scale_min", "scale_max"),
        )
        need(
            self.sample_q <= self.inp_size**2,
            f"{{sample_q}} {self.sample_q} exceeds the pixels of the smallest HR crop ({{inp_size}} {self.inp_size}, "
            f"{self.inp_size**2} pixels)",
            ("sample_q", "inp_size"),
        )
        need(
            bool(self.val_scales) and all(s >= 2 for s in self.val_scales),
            "{val_scales} must be integers >= 2",
            "val_scales",
        )
        return self


_FIELDS = {f.name: f for f in dataclasses.fields(TrainConfig)}
_LIST_OF = {"lr_milestones": int, "val_scales": int}


def _coerce(name: str, value: Any, origin: str) -> Any:
    """Check a value from TOML or a stored checkpoint against the field's type."""
    default = _FIELDS[name].default
    if name in _LIST_OF:
        if isinstance(value, str):
            value = _parts(value)  # a string in a TOML file, '200,400': its numbers are checked below
        if not isinstance(value, list | tuple):
            raise UsageError(f"{origin}: {name} must be a list")
        try:
            return [_LIST_OF[name](v) for v in value]
        except (TypeError, ValueError):
            raise UsageError(f"{origin}: {name} must be a list of numbers") from None
    if value is None:
        return None
    kind: type = type(default) if default is not None else str  # the list fields (no default) are above
    if kind is bool:
        if not isinstance(value, bool):
            raise UsageError(f"{origin}: {name} must be true or false")
        return value
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise UsageError(f"{origin}: {name} must be an integer")
        return value
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise UsageError(f"{origin}: {name} must be a number")
        return float(value)
    if not isinstance(value, str):
        raise UsageError(f"{origin}: {name} must be a string")
    return value


def _parts(text: str) -> list[str]:
    return [part for part in text.replace(" ", "").split(",") if part]


def parse_list(text: str, kind: Callable[[str], T], param: str) -> list[T]:
    """'2,3,4' -> [2.0, 3.0, 4.0] (kind=float); UsageError about `param` when a part is not a number."""
    try:
        return [kind(part) for part in _parts(text)]
    except ValueError:
        raise UsageError(f"{{{param}}}: expected comma-separated numbers, got {text!r}", param=param) from None


def read_toml(path: str | Path) -> dict[str, Any]:
    """A config file's settings, keys normalized to field names; unknown keys are an error."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise UsageError(f"cannot read config file {path}: {exc.strerror or exc}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path}: not valid TOML: {exc}") from None
    if isinstance(data.get("train"), dict):
        data = {**{k: v for k, v in data.items() if k != "train"}, **data["train"]}
    return _normalize(data, str(path))


def _normalize(data: dict[str, Any], origin: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = key.replace("-", "_")
        if name not in _FIELDS:
            raise UsageError(f"{origin}: unknown setting {key!r}")
        out[name] = _coerce(name, value, origin)
    return out


def build_config(
    *layers: dict[str, Any] | None,
) -> TrainConfig:
    """Defaults overlaid with each mapping in turn (later wins); a None value means 'not given'."""
    cfg = TrainConfig()
    for layer in layers:
        for name, value in (layer or {}).items():
            if value is not None:
                setattr(cfg, name, value)
    return cfg


def stored_config(data: dict[str, Any]) -> dict[str, Any]:
    """The settings a checkpoint recorded, minus those that describe one invocation rather than the run."""
    keep = {k: v for k, v in data.items() if k in _FIELDS and k not in {"resume", "overwrite", "init", "export"}}
    return _normalize(keep, "checkpoint config")


def dump_toml(cfg: TrainConfig) -> str:
    """The resolved configuration as TOML (None values are left out, as TOML has no null)."""
    import tomli_w

    data = {name.replace("_", "-"): value for name, value in cfg.to_dict().items() if value is not None}
    return "# liif train: resolved configuration of this run\n\n" + tomli_w.dumps(data)
