"""Video files through the model as a stream: probe, decode to RGB arrays, upscale, encode, remux the rest.

    from liif_cli import load_model
    from liif_cli.video import upscale_video
    up = load_model("edsr-baseline")
    upscale_video(up, "clip.mp4", "clip_x2.mp4", size=lambda hw: (hw[0] * 2, hw[1] * 2))

Decoding, the model and encoding run in three threads joined by small bounded queues, so memory does not
grow with the length of the clip and the (slow) model never waits on the codec. Every video frame keeps its
timestamp (variable frame rate survives), the stream keeps its frame rate, rotation (display matrix) and
colour tags; 10-bit input is decoded to 16-bit RGB and re-encoded at 10 bits when the codec holds them.
Audio and subtitle packets are copied unchanged when the output container takes their codec, else audio is
re-encoded (and a warning says so) and subtitles are dropped (with a warning). The file is written to a
temporary name beside `dst` and renamed when complete: an error or Ctrl-C leaves nothing behind.

PyAV (`av`, the `video` extra) is imported inside functions only, so `liif --help` never loads it.

`reading.py`: probe and decoded frames; `writing.py`: codecs, pixel formats, output streams, audio and subtitles;
`pipeline.py`: `upscale_video` and `iter_upscaled`, the threads that stream frames through the model.
"""

from .pipeline import VideoResult, iter_upscaled, upscale_video
from .reading import VIDEO_EXTENSIONS, Frame, VideoInfo, is_video, iter_frames, probe
from .writing import CODECS, CONTAINER_FORMATS

__all__ = [
    "CODECS",
    "CONTAINER_FORMATS",
    "VIDEO_EXTENSIONS",
    "Frame",
    "VideoInfo",
    "VideoResult",
    "is_video",
    "iter_frames",
    "iter_upscaled",
    "probe",
    "upscale_video",
]
