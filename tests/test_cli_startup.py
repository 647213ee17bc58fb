"""The CLI starts without torch: help, version and completion never import it (a command imports it to run)."""

from __future__ import annotations

import os
import subprocess
import sys

import click
from conftest import ROOT


def _commands(group: click.Group, ctx: click.Context):
    for name in group.list_commands(ctx):
        cmd = group.get_command(ctx, name)
        sub = click.Context(cmd, info_name=name, parent=ctx)
        yield sub, cmd
        if isinstance(cmd, click.Group):
            yield from _commands(cmd, sub)


def _run(code: str, **env: str) -> subprocess.CompletedProcess:
    full = {**os.environ, "PYTHONPATH": str(ROOT), **env}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=full)


def test_every_help_builds_without_torch():
    code = (
        "import sys, click\n"
        "from liif_cli.cli import main\n"
        "from test_cli_startup import _commands\n"
        "ctx = click.Context(main, info_name='liif')\n"
        "texts = [main.get_help(ctx)] + [cmd.get_help(sub) for sub, cmd in _commands(main, ctx)]\n"
        "assert len(texts) >= 8, len(texts)\n"
        "assert {'upscale', 'encode', 'render'} <= set(main.list_commands(ctx))\n"
        "assert all('Usage:' in t for t in texts)\n"
        "print('torch' in sys.modules)\n"
    )
    result = _run(code, PYTHONPATH=f"{ROOT}{os.pathsep}{ROOT / 'tests'}")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


def test_version_and_completion_without_torch():
    code = (
        "import sys\n"
        "from liif_cli.cli import main\n"
        "try:\n"
        "    main(['--version'])\n"
        "except SystemExit as e:\n"
        "    assert e.code == 0\n"
        "print('torch' in sys.modules)\n"
    )
    result = _run(code)
    assert result.returncode == 0 and result.stdout.strip().endswith("False"), result.stderr
    assert result.stdout.startswith("liif, version ")
    # bash completion of `liif upscale x --device c` offers the device choices, and torch stays out
    code = "import sys\nfrom liif_cli.cli import main\ntry:\n    main(prog_name='liif')\nexcept SystemExit:\n    pass\n"
    code += "print('torch' in sys.modules, file=sys.stderr)\n"
    env = {"_LIIF_COMPLETE": "bash_complete", "COMP_WORDS": "liif upscale x --device c", "COMP_CWORD": "4"}
    result = _run(code, **env)
    assert "plain,cpu" in result.stdout and "plain,cuda" in result.stdout, result.stdout
    assert result.stderr.strip() == "False"


def test_bad_option_value_is_one_line_and_exit_2(tmp_path):
    from click.testing import CliRunner

    from liif_cli.cli import main

    result = CliRunner().invoke(main, ["upscale", str(tmp_path / "a.png"), "--scale", "x"])
    assert result.exit_code == 2 and result.stderr == "error: --scale must be a number, got 'x'\n"
    result = CliRunner().invoke(main, ["upscale", str(tmp_path / "a.png"), "--precision", "fp8"])
    assert result.exit_code == 2 and result.stderr.startswith("error: ") and result.stderr.count("\n") == 1


def test_unknown_model_fails_before_an_existing_output_is_skipped(tmp_path):
    from click.testing import CliRunner
    from PIL import Image

    from liif_cli.cli import main

    src = tmp_path / "a.png"
    Image.new("RGB", (4, 4)).save(src)
    (tmp_path / "a_x2.png").write_bytes(src.read_bytes())
    result = CliRunner().invoke(main, ["upscale", str(src), "--scale", "2", "-n", "nope"])
    assert result.exit_code == 5 and result.stderr.startswith("error: unknown model 'nope'"), result.stderr
