"""How `liif upscale` talks to people and programs: progress modes, pipes, -i, --dry-run; real files and a real
(random-weight, built by the project's own code) model, through the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from liif_cli.cli import main
from liif_cli.cli import report as report_module

RNG = np.random.default_rng(24)


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    import torch

    from liif_cli.models import build_liif, save_official

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("model") / "random.pth"
    save_official(build_liif("edsr-baseline"), "edsr-baseline", path)
    return path


@pytest.fixture
def image(tmp_path) -> Path:
    path = tmp_path / "in.png"
    Image.fromarray((RNG.random((12, 16, 3)) * 255).astype(np.uint8)).save(path)
    return path


def invoke(*args, **kwargs):
    result = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False, **kwargs)
    assert "Traceback" not in result.output
    return result


def test_plain_progress_for_a_still_when_stderr_is_not_a_terminal(model, image, monkeypatch):
    monkeypatch.setattr(report_module, "PLAIN_MIN_S", 0.0)  # every progress call may print: a tiny image is fast
    result = invoke("upscale", image, "--scale", 4, "-n", model, "-o", image.with_name("big.png"))
    assert result.exit_code == 0, result.stderr
    lines = result.stderr.splitlines()
    assert lines[0] == f"[1/1] {image}"
    progress = [line for line in lines if line.startswith("  ") and "%" in line]
    assert progress and all("MP/s" in line for line in progress), lines
    assert any("s left" in line for line in progress)
    assert lines[-2].startswith(f"  wrote {image.with_name('big.png')} (64x48")


def test_plain_lines_are_at_most_one_a_second():
    reporter = report_module.ConsoleReporter(mode="plain")
    printed = []
    reporter._print = lambda text, style=None: printed.append(text)  # the lines, not the console
    reporter._file_t0 = reporter._line_at = __import__("time").monotonic()
    for done in range(1, 1000):
        reporter.progress(done, 1000)
    assert printed == []  # all within the first second
    reporter._line_at -= 1.0  # a second later: the next call prints one line, and only one
    reporter.progress(500, 1000)
    reporter.progress(501, 1000)
    assert len(printed) == 1 and printed[0].startswith("  50%, ")


def test_json_progress_follows_the_schema_and_ends_with_the_output(model, image, monkeypatch):
    monkeypatch.setattr(report_module, "PLAIN_MIN_S", 0.0)
    out = image.with_name("big.png")
    result = invoke("upscale", image, "--scale", 4, "-n", model, "-o", out, "--progress", "json")
    assert result.exit_code == 0 and result.stdout == ""
    records = [json.loads(line) for line in result.stderr.splitlines()]
    for record in records:
        assert set(report_module.JSON_FIELDS) <= set(record), record
    events = [r["event"] for r in records]
    assert events[:2] == ["start", "file"] and events[-2:] == ["written", "end"] and "progress" in events
    progress = [r for r in records if r["event"] == "progress"]
    assert all(0 <= r["done"] <= 1 and r["rate"] >= 0 and r["file"] == str(image) for r in progress)
    assert records[-1]["output"] == str(out) and records[-1]["written"] == 1 and out.is_file()


def test_quiet_prints_nothing_on_success(model, image):
    result = invoke("upscale", image, "--scale", 2, "-n", model, "-q")
    assert result.exit_code == 0 and result.stderr == "" and result.stdout == ""


def test_stdout_and_stdin_give_the_same_bytes_as_files(model, image, tmp_path):
    by_file = tmp_path / "by_file.png"
    assert invoke("upscale", image, "--scale", 2, "-n", model, "-o", by_file, "-q").exit_code == 0
    piped = invoke("upscale", image, "--scale", 2, "-n", model, "-o", "-", "-q")
    assert piped.exit_code == 0 and piped.stdout_bytes == by_file.read_bytes()
    from_stdin = tmp_path / "from_stdin.png"
    result = invoke("upscale", "-", "--scale", 2, "-n", model, "-o", from_stdin, input=image.read_bytes())
    assert result.exit_code == 0 and from_stdin.read_bytes() == by_file.read_bytes()
    assert "[1/1] stdin" in result.stderr
    assert not (tmp_path / "-").exists()  # -o - is no folder named '-'


@pytest.mark.parametrize(
    "closed, args, code, line",
    [
        ("<&-", ["-", "-o", "out.png"], 2, "error: '-' reads the input from stdin, but stdin is closed"),
        (">&-", ["in.png", "-o", "-"], 4, "error: -o -: stdout is closed, there is nowhere to write the output"),
    ],
)
def test_a_closed_stdin_or_stdout_is_one_line_and_its_exit_code(model, image, tmp_path, closed, args, code, line):
    """A process started with stdin or stdout closed (`<&-`, `>&-`: Python's sys.stdin/stdout are None) gets the
    usage or output error, not an internal error; a closed stdout is said before the model loads."""
    import shlex

    cmd = [sys.executable, "-m", "liif_cli", "upscale", *args, "--scale", "2", "-n", str(model)]
    done = subprocess.run(
        f"{shlex.join(cmd)} {closed}", shell=True, cwd=image.parent, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == code and done.stderr.strip().splitlines()[-1].startswith(line), done.stderr
    assert "internal error" not in done.stderr and not (image.parent / "out.png").exists()


def test_stdout_with_ext_and_a_shell_pipe(model, image, tmp_path):
    """The real thing: a subprocess whose stdout is a pipe, and --ext picking the format."""
    cmd = [
        sys.executable,
        "-m",
        "liif_cli",
        "upscale",
        "-",
        "--scale",
        "2",
        "-n",
        str(model),
        "-o",
        "-",
        "--ext",
        "jpg",
    ]
    proc = subprocess.run(cmd, input=image.read_bytes(), capture_output=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout[:3] == b"\xff\xd8\xff"  # JPEG
    assert b"wrote stdout" in proc.stderr


def test_several_outputs_to_stdout_is_exit_2_on_one_line(model, image, tmp_path):
    for args in ([image, image.with_name("in2.png")], [image, "--scale", 3], [tmp_path]):
        image.with_name("in2.png").write_bytes(image.read_bytes())
        result = invoke("upscale", *args, "--scale", 2, "-n", model, "-o", "-")
        assert result.exit_code == 2 and result.stdout == ""
        assert result.stderr == "error: -o - writes one output to stdout: give one input file and one size\n"


def test_input_option_is_an_alias_of_the_positional_inputs(model, image):
    second = image.with_name("two.png")
    second.write_bytes(image.read_bytes())
    result = invoke("upscale", "-i", image, "--input", second, "--scale", 2, "-n", model, "-q")
    assert result.exit_code == 0, result.stderr
    assert image.with_name("in_x2.png").is_file() and image.with_name("two_x2.png").is_file()


def test_missing_input_points_at_help():
    result = invoke("upscale", "--scale", 2)
    assert result.exit_code == 2 and len(result.stderr.splitlines()) == 1
    assert "--help" in result.stderr and "missing INPUT" in result.stderr


def test_dry_run_plans_without_loading_a_model_or_writing(image, tmp_path, monkeypatch):
    import liif_cli.api as api
    import liif_cli.models as models

    def refuse(*args, **kwargs):
        raise AssertionError("a dry run loaded a model")

    monkeypatch.setattr(api, "load_model", refuse)
    monkeypatch.setattr(models, "load_checkpoint", refuse)  # api imports it when a model loads
    broken = tmp_path / "broken.pth"
    broken.write_bytes(b"not a checkpoint")  # loading it would fail: a dry run never opens it
    (tmp_path / "in_x3.png").write_bytes(b"")  # an existing output: skipped
    other = tmp_path / "other.png"
    other.write_bytes(image.read_bytes())
    before = sorted(tmp_path.iterdir())
    result = invoke("upscale", image, other, "--scale", 3, "-n", broken, "--dry-run")
    assert result.exit_code == 0, result.stderr
    assert sorted(tmp_path.iterdir()) == before  # nothing written
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"skip   {image}")
    assert lines[1].startswith(f"write  {tmp_path / 'other_x3.png'}  ({other}, 16x12 -> 48x36: about ")
    assert "GiB working memory" in lines[1]
    assert lines[-1].startswith("dry run: 1 to write, 1 skipped, 0 failing; model")


def test_dry_run_of_a_registry_model_downloads_nothing(image, tmp_path, monkeypatch):
    monkeypatch.setenv("LIIF_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("LIIF_OFFLINE", "1")  # a download would fail: the dry run must not need one
    result = invoke("upscale", image, "--scale", 2, "--dry-run")
    assert result.exit_code == 0, result.stderr
    assert "estimates for its edsr-baseline architecture" in result.stdout
    assert not (tmp_path / "cache").exists() and not image.with_name("in_x2.png").exists()


def test_render_dry_run_reads_the_header_only_and_render_speaks_json(model, image, monkeypatch):
    encoding = image.with_suffix(".liif")
    assert invoke("encode", image, "-n", model, "-q").exit_code == 0
    import liif_cli.api as api

    def refuse(*args, **kwargs):
        raise AssertionError("a dry run loaded a model")

    real_load = api.load_model
    monkeypatch.setattr(api, "load_model", refuse)
    before = sorted(image.parent.iterdir())
    result = invoke("render", encoding, "--scale", 2, "--dry-run")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith(f"write  {image.with_name('in_x2.png')}  ({encoding}, 16x12 -> 32x24: about ")
    assert sorted(image.parent.iterdir()) == before

    monkeypatch.setattr(api, "load_model", real_load)
    result = invoke("render", encoding, "--scale", 2, "-n", model, "--progress", "json")
    assert result.exit_code == 0, result.stderr
    records = [json.loads(line) for line in result.stderr.splitlines()]
    assert records[-1]["event"] == "end" and records[-1]["output"] == str(image.with_name("in_x2.png"))


def test_bar_mode_one_bar_for_one_file_and_name_with_count_for_a_batch(tmp_path):
    import io

    from rich.console import Console

    from liif_cli.batch import Job

    def reporter():
        console = Console(file=io.StringIO(), force_terminal=True, width=120)
        return report_module.ConsoleReporter(console=console, mode="auto")

    one = reporter()
    assert one.mode == "bar"
    one.start([Job(tmp_path / "a.png", tmp_path / "a_x2.png")])
    one.file_start(0, Job(tmp_path / "a.png", tmp_path / "a_x2.png"))
    one.file_sizes((12, 16), (24, 32))
    tasks = one._progress.tasks
    assert [t.description for t in tasks if t.visible] == ["a.png 16x12 → 32x24"]  # no empty "batch" bar
    one.close()

    batch = reporter()
    jobs = [Job(tmp_path / f"{n}.png", tmp_path / f"{n}_x2.png") for n in ("a", "b", "c")]
    batch.start(jobs)
    batch.file_start(1, jobs[1])
    assert batch._progress.tasks[0].description == "2/3 b.png"
    batch.close()


def test_json_mode_stays_json_through_a_download_and_a_library_warning(
    model, image, tmp_path, monkeypatch, http_server
):
    """An unpinned model downloaded from a local server mid-run: its warning arrives as a JSON event."""
    url = http_server.add("/loose.pth", model.read_bytes())
    registry_file = tmp_path / "weights.toml"
    registry_file.write_text(
        '[models.loose]\nencoder = "edsr-baseline"\nformat = "official"\nnormalization = "half"\n'
        f'[[models.loose.sources]]\nkind = "url"\nurl = "{url}"\n'
    )
    monkeypatch.setenv("LIIF_REGISTRY", str(registry_file))
    monkeypatch.setenv("LIIF_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    result = invoke("upscale", image, "--scale", 2, "-n", "loose", "--allow-unverified", "--progress", "json")
    assert result.exit_code == 0, result.stderr
    records = [json.loads(line) for line in result.stderr.splitlines()]  # every line parses
    warnings = [r for r in records if r["event"] == "warning"]
    assert any(r["message"].startswith("using unverified loose") for r in warnings), records
    assert records[-1]["event"] == "end" and records[-1]["output"] == str(image.with_name("in_x2.png"))
    assert http_server.requested("/loose.pth")
