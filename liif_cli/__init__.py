"""liif: arbitrary-scale image super-resolution with LIIF (Chen et al., CVPR 2021).

`load_model` and `upscale` are imported lazily so that `liif --help` does not pay for importing torch.
"""

import os

# Ask PyTorch's CPU allocator for transparent huge pages on large tensors (read once, before its first
# allocation): fresh 4 KiB pages fault one by one, which made a new 64 MiB tensor 3x slower to fill here.
os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")

__version__ = "0.1.0"
__all__ = ["Encoding", "Upscaler", "load_encoding", "load_model", "output_size", "upscale"]


def __getattr__(name: str):
    if name in ("Encoding", "load_encoding"):
        from . import encoding

        return getattr(encoding, name)
    if name in __all__:
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module 'liif_cli' has no attribute {name!r}")
