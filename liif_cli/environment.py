"""What this installation is and runs on, for `liif env` and bug reports (as `hf env` and torch's collect_env).

`gather()` is the one place the facts are collected, as a flat-ish dict of plain values (JSON as it is);
a new fact (an ONNX runtime's execution providers, say) is one more entry here. Nothing is downloaded, no
model is loaded; torch is imported, since its build and the devices are the point.
"""

from __future__ import annotations

import os
import platform
import sys
from importlib import metadata
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from packaging.requirements import Requirement

DISTRIBUTION = "liif-cli"


def extras() -> dict[str, bool]:
    """Each optional extra of the package and whether everything it needs is installed (an extra made of other
    extras, as `dev` is, needs theirs too)."""
    from packaging.requirements import Requirement

    try:
        names = metadata.metadata(DISTRIBUTION).get_all("Provides-Extra") or []
        requires = [Requirement(r) for r in metadata.requires(DISTRIBUTION) or []]
    except metadata.PackageNotFoundError:
        return {}
    direct = {e: [r for r in requires if r.marker is not None and r.marker.evaluate({"extra": e})] for e in names}

    def satisfied(extra: str, seen: frozenset[str]) -> bool:
        for req in direct.get(extra, []):
            if req.name.replace("_", "-") == DISTRIBUTION:
                if not all(e in seen or satisfied(e, seen | {e}) for e in req.extras):
                    return False
            elif not _installed(req):
                return False
        return True

    return {e: satisfied(e, frozenset({e})) for e in names}


def _installed(requirement: Requirement) -> bool:
    try:
        version = metadata.version(requirement.name)
    except metadata.PackageNotFoundError:
        return False
    return requirement.specifier.contains(version, prereleases=True)


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _devices() -> list[dict[str, Any]]:
    import torch

    from .devices import cpu_has_fast_bf16

    found = [{"name": "cpu", "model": _cpu_model(), "threads": torch.get_num_threads(),
              "bf16": "native" if cpu_has_fast_bf16() else "emulated (slow)"}]  # fmt: skip
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(i)
            native = torch.cuda.is_bf16_supported(including_emulation=False) if i == 0 else None
            found.append(
                {"name": f"cuda:{i}", "model": props.name, "memory_gib": round(props.total_memory / 2**30, 1),
                 "capability": f"{props.major}.{props.minor}",
                 "bf16": "native" if (props.major >= 8 if native is None else native) else "emulated (slow)"}
            )  # fmt: skip
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        found.append({"name": "mps", "model": "Apple GPU", "bf16": "native"})
    return found


def gather() -> dict[str, Any]:
    """Every fact `liif env` reports."""
    import torch

    from . import __version__, onnxrt, registry

    if torch.version.cuda:
        build = f"CUDA {torch.version.cuda}"
    elif getattr(torch.version, "hip", None):
        build = f"ROCm {torch.version.hip}"
    else:
        build = "CPU"
    cache = registry.cache_dir()
    return {
        "liif": __version__,
        "python": platform.python_version(),
        "executable": sys.executable,
        "platform": platform.platform(),
        "torch": torch.__version__,
        "torch_build": build,
        "devices": _devices(),
        "extras": extras(),
        "onnxruntime": onnxrt.runtime_info(),  # {onnxruntime: version or None, providers: [...]}
        "registry": os.environ.get("LIIF_REGISTRY") or str(registry.shipped_registry_path()),
        "cache": str(cache),
        "cache_bytes": registry.cache_size(),
        "offline": registry.offline_reason(None),
    }
