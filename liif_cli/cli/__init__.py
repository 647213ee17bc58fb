"""The `liif` command line: parse, call the library, report. No logic here that the Python API lacks.

`app` holds the `main` group and what every command shares (one-line errors, process set-up); each command
family is one module that registers its commands on `main` when imported, as this package does. Heavy
imports (torch) stay inside the command bodies, so that `liif --help` starts fast.
"""

from . import bench, encodings, env, models, serve, train, upscale  # noqa: F401  (importing registers the commands)
from .app import handle_errors, main

__all__ = ["handle_errors", "main"]
