"""liif: arbitrary-scale image super-resolution with LIIF (Chen et al., CVPR 2021).

`load_model` and `upscale` are imported lazily so that `liif --help` does not pay for importing torch.
Importing the package changes nothing outside it (no environment variables, no logging handlers).
"""

__all__ = [
    "Encoding",
    "Upscaler",
    "iter_upscaled",
    "load_encoding",
    "load_model",
    "output_size",
    "upscale",
    "upscale_video",
]


def _version() -> str:
    """The installed distribution's version: one place (pyproject.toml), read through importlib.metadata."""
    from importlib import metadata

    try:
        return metadata.version("liif-cli")
    except metadata.PackageNotFoundError:  # run from a source tree that was never installed
        return "0.0.0+unknown"


def __getattr__(name: str):
    if name == "__version__":  # looked up on first use: importlib.metadata costs ~70 ms at start-up
        return _version()
    if name in ("Encoding", "load_encoding"):
        from . import encoding

        return getattr(encoding, name)
    if name in ("iter_upscaled", "upscale_video"):  # video (PyAV) functions, taking an Upscaler first
        from . import video

        return getattr(video, name)
    if name in __all__:
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module 'liif_cli' has no attribute {name!r}")
