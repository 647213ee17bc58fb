"""Benchmark sets: find them locally, or fetch them from the Hugging Face Hub and unpack them into the cache.

The standard layout, used for `--data-dir` and for the cache (`<cache>/datasets/`):

    <Name>/HR/<image>.png
    <Name>/LR_bicubic/X{s}/<image>x{s}.png

Downloads go through `huggingface_hub.hf_hub_download(repo_type="dataset", revision=...)`, so the hub's own
conventions apply (`HF_HOME`, `HF_HUB_CACHE`, `HF_HUB_OFFLINE`, `HF_ENDPOINT`, tokens). Each archive is
unpacked on its own into a temporary folder beside its destination, checked, and renamed into place in one step:
a folder of the layout either holds a whole archive or does not exist. Archive members are never extracted by
name: only regular image files are read, their bytes written under a name we choose, and any absolute, `..`,
link or device member rejects the archive.

Images are decoded like the reference code, Pillow's `open(path).convert("RGB")` (grayscale becomes RGB, no
EXIF rotation), into uint8 (H, W, 3) arrays.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import tarfile
import zipfile
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO

import numpy as np

from ..atomic import atomic_dir
from ..errors import DownloadError, InputError, OfflineError, first_line
from ..registry import cache_dir as registry_cache_dir
from ..registry import offline_reason, sha256_file
from .checksums import REFERENCE_SHA256

IMAGE_EXTENSIONS = (".png", ".bmp", ".jpg", ".jpeg", ".tif", ".tiff")
MAX_UNPACKED_BYTES = 8 << 30
"""Refuse archives that claim to unpack to more than this (DIV2K validation HR is about 0.5 GB)."""


@dataclass(frozen=True)
class DatasetSpec:
    key: str  # what a plan's `datasets` (the CLI's `--dataset`) takes
    name: str  # the folder name in the standard layout
    repo_id: str  # Hugging Face dataset repo
    revision: str  # branch, tag or commit passed to hf_hub_download
    hr_archive: str
    lr_archive: str  # "{s}" is the scale
    lr_scales: tuple[int, ...]  # scales with provided (MATLAB-bicubic) LR images
    aliases: tuple[str, ...] = ()  # other folder names accepted under a data_dir
    description: str = ""


def _published_set(key: str, name: str, repo: str, description: str, aliases: tuple[str, ...] = ()) -> DatasetSpec:
    """A set as the `eugenesiow` dataset repos publish it: `data/<Repo>_HR.tar.gz`, `data/<Repo>_LR_x{s}.tar.gz`
    with MATLAB-bicubic LR at x2, x3 and x4."""
    return DatasetSpec(
        key,
        name,
        f"eugenesiow/{repo}",
        "main",
        f"data/{repo}_HR.tar.gz",
        f"data/{repo}_LR_x{{s}}.tar.gz",
        (2, 3, 4),
        aliases=aliases,
        description=description,
    )


# The revisions are branch names: the repos' commits were not available when this was written. Pin a commit
# here once verified; the downloaded Set5 / Set14 files are checked against the reference sha256 either way.
DATASETS: dict[str, DatasetSpec] = {
    spec.key: spec
    for spec in (
        _published_set("set5", "Set5", "Set5", "Set5 (5 images)"),
        _published_set("set14", "Set14", "Set14", "Set14 (14 images)"),
        _published_set("b100", "B100", "BSD100", "B100 / BSD100 (100 images)", aliases=("BSD100", "BSDS100")),
        _published_set("urban100", "Urban100", "Urban100", "Urban100 (100 images)"),
        DatasetSpec(
            "div2k",
            "DIV2K",
            "goodfellowliu/DIV2K",
            "main",
            "DIV2K_valid_HR.zip",
            "DIV2K_valid_LR_bicubic_X{s}.zip",
            (2, 3, 4),
            aliases=("DIV2K_valid", "div2k"),
            description="DIV2K validation HR (100 images)",
        ),
    )
}


def get_spec(key: str) -> DatasetSpec:
    spec = DATASETS.get(key.lower())
    if spec is None:
        raise InputError(f"unknown dataset {key!r} (expected one of {', '.join(DATASETS)})")
    return spec


def cache_root() -> Path:
    """The project cache (the registry's): `$LIIF_CACHE_DIR`, else `$XDG_CACHE_HOME/liif`, else `~/.cache/liif`."""
    return registry_cache_dir()


def datasets_dir() -> Path:
    return cache_root() / "datasets"


@dataclass
class Dataset:
    """A benchmark set on disk: its HR images and whichever provided LR folders exist."""

    spec: DatasetSpec
    root: Path
    hr_dir: Path
    lr_dirs: dict[int, Path] = field(default_factory=dict)
    origin: str = "local"  # "local" (a data_dir) or "cache"

    @property
    def key(self) -> str:
        return self.spec.key

    @property
    def name(self) -> str:
        return self.spec.name

    def images(self, limit: int | None = None) -> list[Path]:
        files = sorted(p for p in self.hr_dir.iterdir() if _is_image_name(p.name) and p.is_file())
        if not files:
            raise InputError(f"{self.hr_dir}: no images")
        return files[:limit] if limit else files

    def lr_path(self, hr_path: Path, scale: int) -> Path:
        folder = self.lr_dirs.get(scale)
        if folder is None:
            raise InputError(f"{self.name}: no provided LR images for x{scale} under {self.root}")
        for candidate in (f"{hr_path.stem}x{scale}{hr_path.suffix}", hr_path.name):
            if (folder / candidate).is_file():
                return folder / candidate
        raise InputError(f"{folder}: no LR image for {hr_path.name} ({hr_path.stem}x{scale}{hr_path.suffix})")

    def verify(self, files: Iterable[Path]) -> str | None:
        """Compare files with the reference sha256 (Set5 / Set14 only): "match", "differs" or None (no hashes)."""
        checked = differs = 0
        for path in files:
            rel = f"{self.name}/{path.relative_to(self.root).as_posix()}"
            expected = REFERENCE_SHA256.get(rel)
            if expected is None:
                continue
            checked += 1
            differs += sha256_file(path) != expected
        if not checked:
            return None
        return "differs" if differs else "match"


def read_rgb(path: Path) -> np.ndarray:
    """Decode like the reference: PIL, `convert('RGB')`, uint8 (H, W, 3)."""
    from ..imageio import open_image

    with open_image(path) as im:  # the input door: its guards, one InputError line for a bad file
        return np.asarray(im.convert("RGB"))


def find_local(spec: DatasetSpec, data_dir: Path) -> Dataset:
    """Find `spec` under `data_dir` (which holds `<Name>/` folders, or is the set's folder itself)."""
    data_dir = Path(data_dir).expanduser()
    if not data_dir.is_dir():
        raise InputError(f"{{data_dir}} {data_dir}: not a folder", param="data_dir")
    names = (spec.name, *spec.aliases)
    candidates = [data_dir / n for n in names]
    if data_dir.name.lower() in {n.lower() for n in names}:
        candidates.insert(0, data_dir)
    try:
        candidates += [p for p in data_dir.iterdir() if p.is_dir() and p.name.lower() in {n.lower() for n in names}]
    except OSError:
        pass
    for root in candidates:
        found = _layout(spec, root)
        if found is not None:
            return found
    if spec.key == "div2k":  # the layout DIV2K ships in: DIV2K_valid_HR/, DIV2K_valid_LR_bicubic/X{s}/
        hr = data_dir / "DIV2K_valid_HR"
        if hr.is_dir():
            lr_root = data_dir / "DIV2K_valid_LR_bicubic"
            lr = {s: lr_root / f"X{s}" for s in spec.lr_scales if (lr_root / f"X{s}").is_dir()}
            return Dataset(spec, data_dir, hr, lr)
    raise InputError(f"dataset {spec.key}: no {spec.name}/HR folder under {data_dir}")


def _layout(spec: DatasetSpec, root: Path, origin: str = "local") -> Dataset | None:
    hr = root / "HR"
    if not hr.is_dir():
        return None
    lr = {s: root / "LR_bicubic" / f"X{s}" for s in spec.lr_scales if (root / "LR_bicubic" / f"X{s}").is_dir()}
    return Dataset(spec, root, hr, lr, origin)


def open_dataset(
    key: str, *, data_dir: Path | None = None, lr_scales: Iterable[int] = (), offline: bool | None = None
) -> Dataset:
    """The dataset `key`, with provided LR for `lr_scales`: from `data_dir` when given (never downloads),
    else from the cache, fetching whatever parts are missing (unless offline: `offline=None` follows
    $LIIF_OFFLINE / $HF_HUB_OFFLINE, as for models)."""
    spec = get_spec(key)
    if data_dir is not None:
        return find_local(spec, data_dir)
    return fetch(spec, lr_scales=lr_scales, offline=offline)


# --- fetching and unpacking --------------------------------------------------------------------------------


def fetch(
    spec: DatasetSpec, *, lr_scales: Iterable[int] = (), root: Path | None = None, offline: bool | None = None
) -> Dataset:
    """Make `<root>/<Name>/HR` and `LR_bicubic/X{s}` (for provided scales in `lr_scales`) exist, downloading
    and unpacking the missing archives; returns the dataset in the cache."""
    base = (root or datasets_dir()) / spec.name
    parts: list[tuple[Path, str, int | None]] = [(base / "HR", spec.hr_archive, None)]
    for s in sorted(set(lr_scales) & set(spec.lr_scales)):
        parts.append((base / "LR_bicubic" / f"X{s}", spec.lr_archive.format(s=s), s))
    for dest, filename, scale in parts:
        if dest.is_dir():
            continue
        archive = hub_download(spec, filename, offline=offline)
        unpack(archive, dest, scale=scale)
    found = _layout(spec, base, origin="cache")
    assert found is not None
    return found


def hub_download(spec: DatasetSpec, filename: str, *, offline: bool | None = None) -> Path:
    """One file of the dataset repo, via the hub client and its cache; hub failures become DownloadError.

    Offline (see `registry.offline_reason`) only the hub cache is read; a missing file is an OfflineError
    that says how to point `--data-dir` at local copies instead."""
    reason = offline_reason(offline)
    try:
        from huggingface_hub import hf_hub_download
        from huggingface_hub.utils import (
            EntryNotFoundError,
            LocalEntryNotFoundError,
            RepositoryNotFoundError,
            RevisionNotFoundError,
        )
    except ImportError as exc:  # pragma: no cover - a declared dependency
        raise DownloadError(f"cannot fetch {spec.key}: huggingface_hub is not installed ({exc})") from exc
    where = f"{spec.repo_id}@{spec.revision}:{filename}"
    try:
        path = hf_hub_download(
            repo_id=spec.repo_id,
            filename=filename,
            repo_type="dataset",
            revision=spec.revision,
            local_files_only=bool(reason),
        )
    except LocalEntryNotFoundError as exc:  # offline, or no connection, and not in the hub cache
        if reason or _hub_offline():
            raise OfflineError(
                f"dataset {spec.key}: {where} is not cached and offline mode is on ({reason or 'HF_HUB_OFFLINE'}); "
                f"run once online, or give {{data_dir}} a folder holding {spec.name}/HR "
                f"(and {spec.name}/LR_bicubic/X<s>)",
                param=("offline", "data_dir"),
            ) from exc
        raise DownloadError(f"dataset {spec.key}: cannot fetch {where}: {first_line(exc)}") from exc
    except RepositoryNotFoundError as exc:
        raise DownloadError(f"dataset {spec.key}: dataset repo {spec.repo_id} not found") from exc
    except RevisionNotFoundError as exc:
        raise DownloadError(f"dataset {spec.key}: revision {spec.revision!r} of {spec.repo_id} not found") from exc
    except EntryNotFoundError as exc:
        raise DownloadError(f"dataset {spec.key}: {spec.repo_id} has no file {filename}") from exc
    except Exception as exc:  # network and HTTP failures: the hub client raises several families
        raise DownloadError(f"dataset {spec.key}: cannot fetch {where}: {first_line(exc)}") from exc
    return Path(path)


def _hub_offline() -> bool:
    try:
        from huggingface_hub import constants

        return bool(constants.HF_HUB_OFFLINE)
    except Exception:  # pragma: no cover
        return False


def unpack(archive: Path, dest: Path, *, scale: int | None = None) -> list[Path]:
    """Unpack the images of a .tar(.gz/.bz2/.xz) or .zip `archive` flat into `dest` (which must not exist).

    HR archives (`scale=None`) keep the image names; LR archives name each image `<stem>x{scale}<ext>` (a
    trailing `x{scale}` already in the name is not doubled). Everything is written to a temporary sibling and
    renamed to `dest` at the end; on any failure nothing is left behind. Raises DownloadError for a corrupt,
    unsafe, empty or oversized archive.
    """
    dest = Path(dest)
    with atomic_dir(dest) as tmp:  # another process finishing first keeps theirs
        written = _extract_images(Path(archive), tmp, scale)
    return [dest / p.name for p in written]


def _extract_images(archive: Path, out: Path, scale: int | None) -> list[Path]:
    label = archive.name
    written: list[Path] = []
    seen: set[str] = set()
    total = 0
    try:
        for name, size, reader in _members(archive):
            pure = PurePosixPath(name)
            base = pure.name
            if not _is_image_name(base) or base.startswith("._") or "__MACOSX" in pure.parts:
                continue
            total += size
            if total > MAX_UNPACKED_BYTES:
                raise DownloadError(f"{label}: unpacks to more than {MAX_UNPACKED_BYTES >> 30} GiB; refusing it")
            target = _target_name(base, scale)
            if target.lower() in seen:
                raise DownloadError(f"{label}: two images named {target}")
            seen.add(target.lower())
            path = out / target
            with reader() as src, open(path, "xb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
            if path.stat().st_size != size:
                raise DownloadError(f"{label}: {name} is truncated")
            written.append(path)
    except DownloadError:
        raise
    except (tarfile.TarError, zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError) as exc:
        raise DownloadError(f"{label}: corrupt or unreadable archive ({first_line(exc)})") from exc
    if not written:
        raise DownloadError(f"{label}: the archive holds no images")
    return written


def _members(archive: Path) -> Iterator[tuple[str, int, Callable[[], IO[bytes]]]]:
    """(name, size, opener) for every regular file, rejecting unsafe members (folders are passed over)."""
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            for info in zf.infolist():
                _check_member_name(archive, info.filename)
                mode = info.external_attr >> 16
                if mode and (mode & 0o170000) not in (0, 0o100000, 0o040000):
                    raise DownloadError(f"{archive.name}: member {info.filename} is a link or special file")
                if not info.is_dir():
                    yield info.filename, info.file_size, functools.partial(zf.open, info)
        return
    with tarfile.open(archive, mode="r:*") as tf:
        for member in tf:
            _check_member_name(archive, member.name)
            if member.isfile():
                yield member.name, member.size, functools.partial(_tar_member, archive, tf, member)
            elif not member.isdir():
                raise DownloadError(f"{archive.name}: member {member.name} is a link or special file")


def _tar_member(archive: Path, tf: tarfile.TarFile, member: tarfile.TarInfo) -> IO[bytes]:
    reader = tf.extractfile(member)
    if reader is None:  # tarfile gives no reader for anything but a regular file
        raise DownloadError(f"{archive.name}: member {member.name} is not a regular file")
    return reader


def _check_member_name(archive: Path, name: str) -> None:
    pure = PurePosixPath(name.replace("\\", "/"))
    if pure.is_absolute() or ".." in pure.parts or re.match(r"^[A-Za-z]:", name) or "\x00" in name:
        raise DownloadError(f"{archive.name}: unsafe member path {name!r}; refusing the archive")


def _target_name(base: str, scale: int | None) -> str:
    stem, ext = os.path.splitext(base)
    if scale is None:
        return f"{stem}{ext.lower()}"
    stem = re.sub(rf"[xX]{scale}$", "", stem)
    return f"{stem}x{scale}{ext.lower()}"


def _is_image_name(name: str) -> bool:
    return name.lower().endswith(IMAGE_EXTENSIONS) and not name.startswith(".")
