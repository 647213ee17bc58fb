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


def __getattr__(name: str) -> object:
    if name == "__version__":  # looked up on first use: importlib.metadata costs ~70 ms at start-up
        from .version import version

        return version()
    if name == "Encoding":
        from . import encoding

        return getattr(encoding, name)
    if name in ("iter_upscaled", "upscale_video"):  # video (PyAV) functions, taking an Upscaler first
        from . import video

        return getattr(video, name)
    if name in __all__:
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module 'liif_cli' has no attribute {name!r}")
