"""Names and limits that the library checks and the CLI offers as choices, in a module that imports nothing.

The CLI builds `--help` and shell completion from these without importing numpy, Pillow or torch.
"""

ALPHA_METHODS = ("model", "bicubic")
"""How transparency is upscaled: through the model (three channels of alpha), or Pillow's bicubic resize."""
EXT_CHOICES = ("auto", "png", "jpg", "jpeg", "webp", "tif", "tiff")
"""Output formats by extension; auto keeps the input's (PNG when that cannot be written)."""
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
VIDEO_CODECS = ("h264", "h265", "vp9", "av1", "ffv1")
"""`liif upscale --codec` choices: the keys of `liif_cli.video.CODECS`."""
DEVICE_EXAMPLES = ("auto", "cpu", "cuda", "cuda:0", "mps")
MAX_SIDE = 1_000_000
"""No output side may exceed this many pixels, whatever the pixel limits say."""
