"""One model-loading option block: every command that loads a model declares its flags identically (names,
short forms, types, metavars, ranges, help), and gets them as one frozen LoadOptions."""

from __future__ import annotations

import dataclasses

import click
import pytest
from click.testing import CliRunner

from liif_cli.cli import main
from liif_cli.errors import UsageError
from liif_cli.load_options import FIELDS, LoadOptions, load_options

COMMANDS = ("upscale", "render", "encode", "bench", "serve", "train")
FULL = ("upscale", "render", "encode", "bench", "serve")


def _block(name: str) -> dict[str, tuple]:
    command = main.commands[name]
    ctx = click.Context(command, info_name=name)
    return {
        p.name: (tuple(p.opts), p.type.name, repr(p.type), p.get_help_record(ctx), p.is_flag, p.default)
        for p in command.params
        if isinstance(p, click.Option) and p.name in FIELDS
    }


def test_every_command_that_loads_a_model_shows_the_same_block():
    blocks = {name: _block(name) for name in COMMANDS}
    reference = blocks["upscale"]
    assert list(reference) == list(FIELDS)
    for name in FULL:
        assert blocks[name] == reference, name
    train = blocks["train"]  # its --batch-size is the training batch, its own option
    assert [k for k in train if train[k] == reference[k]] == ["device", "threads"]
    helps = [
        "\n".join(line for line in CliRunner().invoke(main, [name, "--help"]).output.splitlines()) for name in FULL
    ]
    device_lines = [h[h.index("--device") : h.index("--precision")] for h in helps]
    assert len(set(device_lines)) == 1


@pytest.mark.parametrize("name", COMMANDS)
def test_a_bad_value_is_the_same_one_line_error_everywhere(name):
    result = CliRunner().invoke(main, [name, "--threads", "0"])
    assert result.exit_code == 2
    assert result.stderr.startswith("error: Invalid value for '--threads'") and result.stderr.count("\n") == 1


def test_load_options_are_one_frozen_checked_value():
    opts = load_options(device="CPU", tile=64)
    assert opts == LoadOptions(device="cpu", tile=64)
    with pytest.raises(dataclasses.FrozenInstanceError):
        opts.tile = 32  # type: ignore[misc]
    assert opts.replace(tile=32).tile == 32 and opts.tile == 64
    for bad in ({"tile": 0}, {"threads": -1}, {"batch_size": 1.5}, {"precision": "fp8"}):
        with pytest.raises(UsageError) as caught:
            LoadOptions(**bad)
        assert caught.value.param == next(iter(bad)) and "--" not in str(caught.value)
    with pytest.raises(TypeError, match="unknown load option"):
        load_options(devcie="cpu")
