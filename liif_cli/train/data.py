"""Training data: HR image files -> (LR patch, sampled HR queries) pairs, as the official recipe makes them.

By default each sample decodes its image from disk (nothing is kept, so memory does not grow with the data
set), then:
scale s ~ U(scale_min, scale_max); a random square HR crop of round(inp_size * s) px; its LR by PIL bicubic
resize of the uint8 crop to inp_size x inp_size; random h-flip, v-flip, transpose (each p = 1/2, same for
LR and HR); `sample_q` HR pixels drawn without replacement as queries, with their pixel-centre coordinates
and the cell (2 / h_hr, 2 / w_hr) of the crop. Values are RGB in [0, 1]; the training loop normalizes.

An epoch is `samples_per_epoch` samples; sample `i` uses image `i % n_images` (the official "repeat").
Randomness is a pure function of (seed, epoch, sample index), so a run is reproducible whatever the
number of workers or processes, and a resumed run draws the same samples as an uninterrupted one.

With `decoded_cache`, each image is decoded once into an uncompressed .npy file there and every later sample
reads only its crop through a memory map: PNG decoding dominates the cost of a sample on large images
(~0.1-0.2 s for a 2K DIV2K PNG), and the cache needs H x W x 3 bytes per image on disk (6.7 GB for DIV2K's
800 training images), none of it held by the process.

Images whose shorter side is below round(inp_size * scale_min) are skipped (with a warning); an image too
small for the sampled scale gets a scale drawn from U(scale_min, side / inp_size) instead, so small images
still contribute, only at lower scales. Grayscale, palette and 16-bit images are read as 8-bit RGB; alpha is
dropped.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler

from ..atomic import atomic_open
from ..errors import InputError
from ..imageio import open_image
from ..models import make_coord

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm")


def hr_folder(root: str | Path) -> Path:
    """The folder of HR images: `root/HR` when present (benchmark layout), else `root`."""
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"{root}: not a directory")
    return root / "HR" if (root / "HR").is_dir() else root


def list_images(folder: str | Path) -> list[Path]:
    folder = Path(folder)
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise InputError(f"{folder}: no images ({', '.join(IMAGE_SUFFIXES)})")
    return files


def read_rgb(path: str | Path) -> Image.Image:
    """Decode an image as 8-bit RGB (grayscale replicated, 16-bit scaled, alpha dropped)."""
    with open_image(path) as im:  # the input door: its guards, one InputError line for a bad file
        im.load()
        if im.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
            arr = np.asarray(im, dtype=np.float64)
            im = Image.fromarray(np.clip(np.rint(arr / 257.0), 0, 255).astype(np.uint8), "L")
        elif im.mode == "F":
            arr = np.asarray(im, dtype=np.float64)
            im = Image.fromarray(np.clip(np.rint(arr * 255.0), 0, 255).astype(np.uint8), "L")
        return im if im.mode == "RGB" else im.convert("RGB")


def to_tensor(im: Image.Image) -> torch.Tensor:
    """PIL RGB -> float32 (3, H, W) in [0, 1]."""
    return torch.from_numpy(np.asarray(im, dtype=np.float32) / 255.0).permute(2, 0, 1).contiguous()


@dataclass(frozen=True)
class ImageItem:
    path: Path
    width: int
    height: int


def scan_images(folder: str | Path, min_side: int = 1) -> tuple[list[ImageItem], list[Path]]:
    """(usable images, skipped ones) from the headers only; skipped = shorter side below `min_side`."""
    items: list[ImageItem] = []
    skipped: list[ImageItem] = []
    for path in list_images(folder):
        with open_image(path) as im:
            w, h = im.size
        (items if min(w, h) >= min_side else skipped).append(ImageItem(path, w, h))
    return items, [i.path for i in skipped]


class SRTrainDataset(Dataset[dict[str, torch.Tensor | int]]):
    """The official `sr-implicit-downsampled` wrapper over an image folder, decoding per sample.

    Indexed by (epoch, sample index) keys (see `EpochSampler`); `len` is the samples of one epoch.
    """

    def __init__(
        self,
        items: list[ImageItem],
        samples_per_epoch: int,
        *,
        inp_size: int = 48,
        scale_min: float = 1.0,
        scale_max: float = 4.0,
        sample_q: int | None = 2304,
        augment: bool = True,
        seed: int = 0,
        decoded_cache: str | Path | None = None,
    ):
        if not items:
            raise InputError("no usable training images")
        self.items = items
        self.samples_per_epoch = samples_per_epoch
        self.inp_size = inp_size
        self.scale_min = scale_min
        self.scale_max = scale_max
        self.sample_q = sample_q
        self.augment = augment
        self.seed = seed
        self.decoded_cache = Path(decoded_cache) if decoded_cache else None

    def __len__(self) -> int:
        return self.samples_per_epoch

    def __getitem__(self, key: tuple[int, int] | int) -> dict[str, torch.Tensor | int]:
        epoch, index = key if isinstance(key, tuple) else (0, key)
        rng = np.random.default_rng([self.seed, epoch, index])
        item = self.items[index % len(self.items)]
        side = min(item.width, item.height)
        s_hi = min(self.scale_max, side / self.inp_size)
        s = rng.uniform(self.scale_min, s_hi) if s_hi > self.scale_min else self.scale_min
        crop = min(round(self.inp_size * s), side)
        x0 = int(rng.integers(0, item.width - crop + 1))
        y0 = int(rng.integers(0, item.height - crop + 1))
        hr_im = self._crop(item, x0, y0, crop)
        lr_im = hr_im.resize((self.inp_size, self.inp_size), Image.Resampling.BICUBIC)
        hr, lr = to_tensor(hr_im), to_tensor(lr_im)
        if self.augment:
            hflip, vflip, dflip = rng.random(3) < 0.5
            if hflip:
                hr, lr = hr.flip(-2), lr.flip(-2)
            if vflip:
                hr, lr = hr.flip(-1), lr.flip(-1)
            if dflip:
                hr, lr = hr.transpose(-2, -1), lr.transpose(-2, -1)
        h, w = hr.shape[-2:]
        coord = make_coord((h, w))
        rgb = hr.reshape(3, -1).t()
        if self.sample_q is not None:
            pick = torch.from_numpy(rng.choice(h * w, self.sample_q, replace=False))
            coord, rgb = coord[pick], rgb[pick]
        cell = torch.empty_like(coord)
        cell[:, 0] = 2 / h
        cell[:, 1] = 2 / w
        return {"inp": lr.contiguous(), "coord": coord, "cell": cell, "gt": rgb.contiguous(), "index": index}

    def _crop(self, item: ImageItem, x0: int, y0: int, side: int) -> Image.Image:
        if self.decoded_cache is not None:
            pixels = decoded_array(item, self.decoded_cache)
            return Image.fromarray(np.ascontiguousarray(pixels[y0 : y0 + side, x0 : x0 + side]), "RGB")
        image = read_rgb(item.path)
        if image.size != (item.width, item.height):  # the file changed since the scan
            raise InputError(f"{item.path}: size changed during training")
        return image.crop((x0, y0, x0 + side, y0 + side))


def decoded_array(item: ImageItem, cache: Path) -> np.ndarray:
    """The image as a read-only memory-mapped uint8 (H, W, 3) array from `cache`, decoding it there first
    if needed (temporary file + rename, so concurrent workers and processes may race harmlessly). The
    cache file name carries a hash of the source's path, size and mtime, so an edited image is decoded anew."""
    st = item.path.stat()
    tag = hashlib.sha256(f"{item.path.resolve()}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()[:16]
    target = cache / f"{item.path.stem}-{tag}.npy"
    if not target.is_file():
        pixels = np.asarray(read_rgb(item.path))
        with atomic_open(target, "wb") as fh:
            np.save(fh, pixels)
    pixels = np.load(target, mmap_mode="r")
    if pixels.shape != (item.height, item.width, 3):
        raise InputError(f"{item.path}: size changed during training (cached as {pixels.shape})")
    return pixels


class EpochSampler(Sampler[tuple[int, int]]):
    """Tags the indices of a `DistributedSampler` (which shards and shuffles them) with the current epoch."""

    def __init__(self, inner: DistributedSampler[int]):
        self.inner = inner
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        self.inner.set_epoch(epoch)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        epoch = self.epoch
        for index in self.inner:
            yield epoch, index

    def __len__(self) -> int:
        return len(self.inner)


def _worker_init(_: int) -> None:
    torch.set_num_threads(1)  # workers only slice and copy; let the training process have the cores


def make_loader(
    dataset: SRTrainDataset,
    per_rank_batch: int,
    *,
    rank: int = 0,
    world_size: int = 1,
    workers: int = 4,
    seed: int = 0,
    pin_memory: bool = False,
) -> tuple[DataLoader, EpochSampler]:
    """A loader yielding `len(dataset) / world_size / per_rank_batch` batches per epoch on each rank."""
    inner: DistributedSampler[int] = DistributedSampler(
        dataset, num_replicas=world_size, rank=rank, shuffle=True, seed=seed, drop_last=True
    )
    sampler = EpochSampler(inner)
    loader = DataLoader(
        dataset,
        batch_size=per_rank_batch,
        sampler=sampler,
        num_workers=workers,
        pin_memory=pin_memory,
        drop_last=True,
        persistent_workers=workers > 0,
        prefetch_factor=4 if workers > 0 else None,
        worker_init_fn=_worker_init if workers > 0 else None,
    )
    return loader, sampler
