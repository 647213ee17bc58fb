"""`liif models`: list the named models of weights.toml, download them into the cache and verify them."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import click

from .app import handle_errors, main

if TYPE_CHECKING:
    from pathlib import Path

    from ..registry import CacheStatus, ModelEntry

_VERIFIED_TEXT = {
    "verified": "sha256 ok",
    "prefix-verified": "prefix ok",
    "unpinned": "hash unknown",
    "mismatch": "MISMATCH",
    "missing": "-",
}


def _verified_text(status: CacheStatus) -> str:
    if status.state == "missing" and not status.entry.pinned:
        return "hash unknown"
    return _VERIFIED_TEXT[status.state]


@main.group("models", invoke_without_command=True, short_help="List, download, verify and remove the named models.")
@click.option("--json", "as_json", is_flag=True, help="The list as one JSON object on stdout.")
@click.pass_context
@handle_errors
def models_cmd(ctx: click.Context, as_json: bool) -> None:
    """List the named models (weights.toml) and whether each is cached and verified."""
    if ctx.invoked_subcommand is not None:
        return
    from rich import box
    from rich.console import Console
    from rich.filesize import decimal
    from rich.table import Table

    from .. import registry

    entries = registry.load_registry()
    if as_json:
        import json

        rows = []
        for name, entry in entries.items():
            status = registry.cache_status(entry)
            rows.append(
                {"name": name, "default": name == registry.DEFAULT_MODEL, "description": entry.description,
                 "encoder": entry.encoder, "format": entry.format, "size": status.size,
                 "sources": [s.describe() for s in entry.sources], "cached": status.cached,
                 "state": status.state, "sha256": status.sha256 or entry.sha256, "path": str(status.path)}
            )  # fmt: skip
        cache = {"path": str(registry.cache_dir()), "bytes": registry.cache_size()}
        click.echo(json.dumps({"models": rows, "cache": cache}, indent=2))
        return
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("name", no_wrap=True, min_width=max(map(len, entries)) + 1)
    for column in ("encoder", "format", "size", "sources", "cached"):
        table.add_column(column, no_wrap=True)
    table.add_column("verified", no_wrap=True, min_width=len("hash unknown"))
    table.add_column("description", min_width=16)
    for name, entry in entries.items():
        status = registry.cache_status(entry)
        table.add_row(
            f"{name}*" if name == registry.DEFAULT_MODEL else name,
            entry.encoder,
            entry.format,
            decimal(status.size) if status.size else "?",
            ", ".join(dict.fromkeys(s.kind for s in entry.sources)),
            "yes" if status.cached else "no",
            _verified_text(status),
            entry.description,
        )
    console = Console()
    if not console.is_terminal:  # piped: a line cut at 80 columns helps nobody
        console = Console(width=160)
    console.print(table)
    size = decimal(registry.cache_size())
    console.print(f"* default model; cache: {registry.cache_dir() / 'weights'} ({size} in all)", highlight=False)


def _fetching(fn: Callable[..., None]) -> Callable[..., None]:
    """NAME, --allow-unverified and -q: what the commands that fetch one model take (download, path)."""
    options = (
        click.argument("name"),
        click.option(
            "--allow-unverified", is_flag=True, help="Use a model whose sha256 is not pinned (its hash is printed)."
        ),
        click.option("-q", "--quiet", is_flag=True, help="No progress output."),
    )
    fn = handle_errors(fn)
    for option in reversed(options):
        fn = option(fn)
    return fn


def _fetch(name: str, allow_unverified: bool, quiet: bool) -> tuple[ModelEntry, Path]:
    """The registry entry NAME and its verified local file, downloaded first if needed."""
    from .. import registry

    entry = registry.get_entry(name)
    return entry, registry.fetch(entry, allow_unverified=allow_unverified, progress=not quiet)


@models_cmd.command("download")
@_fetching
def models_download_cmd(name: str, allow_unverified: bool, quiet: bool) -> None:
    """Download model NAME into the cache and verify it (nothing to do if it is cached and intact)."""
    entry, path = _fetch(name, allow_unverified, quiet)
    click.echo(f"{name}: {path} ({entry.hash_note()})")


@models_cmd.command("path")
@_fetching
def models_path_cmd(name: str, allow_unverified: bool, quiet: bool) -> None:
    """Print the local file of model NAME, downloading it first if needed."""
    click.echo(_fetch(name, allow_unverified, quiet)[1])


@models_cmd.command("verify")
@click.argument("name", required=False)
@handle_errors
def models_verify_cmd(name: str | None) -> None:
    """Re-hash the cached file of NAME (default: every cached model); exit 7 if one does not match."""
    from .. import registry
    from ..errors import ChecksumError

    entries = [registry.get_entry(name)] if name else list(registry.load_registry().values())
    bad = []
    for entry in entries:
        status = registry.cache_status(entry, rehash=True)
        if not status.cached:
            click.echo(f"{entry.name}: not cached")
            continue
        if status.state == "mismatch":
            bad.append(entry.name)
        click.echo(f"{entry.name}: {_verified_text(status)}, sha256 {status.sha256} ({status.path})")
    if bad:
        raise ChecksumError(f"{', '.join(bad)} failed verification; 'liif models download NAME' fetches a fresh copy")


@models_cmd.command("rm")
@click.argument("names", nargs=-1, required=True, metavar="NAME...")
@handle_errors
def models_rm_cmd(names: tuple[str, ...]) -> None:
    """Remove the cached file of each model NAME (a later run downloads it again)."""
    from rich.filesize import decimal

    from .. import registry

    for name in names:
        entry = registry.get_entry(name)
        size = registry.cache_status(entry).size if registry.cached_path(entry).exists() else None
        removed = registry.remove(entry)
        click.echo(f"{name}: removed {removed} ({decimal(size or 0)})" if removed else f"{name}: not cached")
