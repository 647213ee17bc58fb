"""How outputs are named: one set of rules for `upscale` (stills, videos, animations), `render`, `encode` and
the server's downloads.

    output_name("photo", "x2", ".jpg")                   # 'photo_x2.jpg'
    output_extension(Path("scan.bmp"), "auto")           # '.png': BMP is read, not written
    media_extension(Path("clip.avi"), "video", "png")    # '.avi': a video keeps its container

The rule is `<stem>_<suffix><ext>`: the suffix is the size's tag (`SizeSpec.tag()`: x2, x7.5, 4000x3000, w640,
r1200,800,64,48_x20) unless the user gives one ('' for none); the extension is the input's when it can be
written, else PNG for a still, the container for a video, the format for an animation. A file found in a folder
whose name ends in `_<suffix>` is taken for an earlier output of the same command. An encoding is
`<stem>.liif`; a render is `<stem>_<tag>.png`.

Ground floor: names only, nothing read or written; no torch.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from .imageio.image import WRITE_FORMATS
from .video.writing import CONTAINER_FORMATS

if TYPE_CHECKING:
    from .sizes import SizeSpec

ENCODING_EXTENSION = ".liif"
"""What `liif encode` writes (and `liif render` reads)."""
RENDER_EXTENSION = ".png"
"""What `liif render` writes unless -o names another format."""
STILL_FALLBACK = ".png"
"""A still's output extension when its own format cannot be written (BMP, GIF...)."""
VIDEO_FALLBACK = ".mkv"
"""A video's output extension when FFmpeg reads its container but cannot write it by that extension."""
ANIMATED_SUFFIXES = frozenset({".gif", ".png", ".apng", ".webp"})
"""Extensions whose files may hold several frames (Pillow tells, by reading the header), and that an animation
can be written as."""
ANIMATION_EXTENSIONS = {"png": ".png", "webp": ".webp"}
"""--ext values an animation can be written as (GIF only through -o NAME.gif or by keeping a GIF's own)."""


def output_name(stem: str, suffix: str | None, ext: str) -> str:
    """`<stem>_<suffix><ext>`, or `<stem><ext>` when the suffix is empty; `ext` with its dot."""
    return (f"{stem}_{suffix}" if suffix else stem) + ext


def suffixes(specs: Sequence[SizeSpec], suffix: str | None = None) -> list[str]:
    """The name suffix of each size: its tag, unless the user gave one (None: the tags; '': no suffix)."""
    return [spec.tag() if suffix is None else suffix for spec in specs]


def output_extension(input_path: Path, ext: str) -> str:
    """A still's output extension (with its dot): `ext` ('png', 'jpg'...) or, for 'auto', the input's own when
    it can be written, else PNG."""
    if ext == "auto":
        suffix = input_path.suffix.lower()
        return suffix if suffix in WRITE_FORMATS else STILL_FALLBACK
    return "." + ext


def media_extension(path: Path, kind: str, ext: str) -> str | None:
    """The output extension of a video or animation; None when `ext` names a format it cannot be.

    Videos keep their container (Matroska for one FFmpeg reads but cannot write by that extension); `ext` is for
    images and leaves them alone. Animations keep their format unless `ext` is png or webp.
    """
    suffix = path.suffix.lower()
    if kind == "video":
        return suffix if suffix in CONTAINER_FORMATS else VIDEO_FALLBACK
    if ext == "auto":
        return suffix if suffix in ANIMATED_SUFFIXES else STILL_FALLBACK
    return ANIMATION_EXTENSIONS.get(ext)


def upscale_name(path: Path, kind: str, suffix: str | None, ext: str) -> tuple[str, bool]:
    """`liif upscale`'s output file name for `path` of `kind` (still, video, animation), and whether its kind
    can be written as `ext` (an animation asked for as jpg cannot: the name then takes the still's extension)."""
    media_ext = media_extension(path, kind, ext) if kind != "still" else None
    fits = kind == "still" or media_ext is not None
    return output_name(path.stem, suffix, media_ext or output_extension(path, ext)), fits


def looks_like_output(path: Path, suffixes: Sequence[str]) -> str | None:
    """The suffix of this command's outputs that `path`'s name ends in (`photo_x2.png` for x2), if any."""
    return next((s for s in suffixes if s and path.stem.endswith(f"_{s}")), None)


def encoding_path(image: Path) -> Path:
    """Where `liif encode` writes `image`'s encoding by default: beside it, `<stem>.liif`."""
    return image.with_suffix(ENCODING_EXTENSION)


def render_name(encoding: Path, tag: str) -> str:
    """`liif render`'s output file name for one size: `<stem>_<tag>.png`."""
    return output_name(encoding.stem, tag, RENDER_EXTENSION)
