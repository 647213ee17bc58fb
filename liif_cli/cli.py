"""The `liif` command line: parse, call the library, report. No logic here that the Python API lacks."""

from __future__ import annotations

import click

from . import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="liif")
def main() -> None:
    """Arbitrary-scale image super-resolution with LIIF."""


# --- commands -------------------------------------------------------------------------------------
