"""`liif env`: the facts of this installation for a bug report (`environment.gather`), as text or JSON."""

from __future__ import annotations

import click

from .app import handle_errors, main


def _size(n: int) -> str:
    from rich.filesize import decimal

    return decimal(n)


@main.command("env", short_help="Show the installation: versions, torch build, devices, extras, cache.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object on stdout.")
@handle_errors
def env_cmd(as_json: bool) -> None:
    """liif, Python and torch versions, the torch build (CPU, CUDA, ROCm), the devices and whether bf16 is native
    on each, which extras are installed, the model registry in use, and the cache folder with its size."""
    import json

    from ..environment import gather

    facts = gather()
    if as_json:
        click.echo(json.dumps(facts, indent=2))
        return
    lines = [
        ("liif", facts["liif"]),
        ("python", f"{facts['python']} ({facts['executable']})"),
        ("platform", facts["platform"]),
        ("torch", f"{facts['torch']} ({facts['torch_build']} build)"),
    ]
    for dev in facts["devices"]:
        details = ", ".join(f"{k} {v}" for k, v in dev.items() if k not in ("name", "model", "bf16"))
        lines.append(
            (f"device {dev['name']}", f"{dev['model']}" + (f", {details}" if details else "") + f"; bf16 {dev['bf16']}")
        )
    extras = facts["extras"]
    lines.append(("extras", ", ".join(f"{e} {'yes' if ok else 'no'}" for e, ok in extras.items()) or "unknown"))
    lines.append(("registry", facts["registry"]))
    lines.append(("cache", f"{facts['cache']} ({_size(facts['cache_bytes'])})"))
    if facts["offline"]:
        lines.append(("offline", facts["offline"]))
    width = max(len(k) for k, _ in lines)
    for key, value in lines:
        click.echo(f"{key:<{width}}  {value}")
