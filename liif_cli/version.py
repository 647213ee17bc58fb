"""The installed distribution's version: one place (pyproject.toml), read through importlib.metadata.

A room of its own at the ground floor, so that the package's `__version__` and the download User-Agent
(`sources.py`) read it without importing the package's lazy `__init__`.
"""

from __future__ import annotations


def version() -> str:
    from importlib import metadata

    try:
        return metadata.version("liif-cli")
    except metadata.PackageNotFoundError:  # run from a source tree that was never installed
        return "0.0.0+unknown"
