"""`liif upscale` under a real `torchrun --standalone --nproc_per_node 2` (gloo on the CPU), on generated images.

One plan, shares balanced by output pixels, outputs byte-identical to a one-process run and each written once;
a rank killed mid-run and the same command run again (nothing complete is rewritten); a broken file on rank 1
fails the job on every rank and rank 0's summary names it; without a process group the ranks still split the
work, and rank 0 says so once.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import MODEL_PATH, ROOT
from PIL import Image
from test_distributed import _rank_log, _torchrun

from liif_cli.batch import BatchOptions, Job, SizeSpec, plan_batch
from liif_cli.batch.shards import weigh
from liif_cli.cli import main
from liif_cli.distributed import shard_by_weight

pytestmark = pytest.mark.usefixtures("model_path")  # MODEL_PATH: a random-weight EDSR-baseline-LIIF
ARGS = ["--scale", "2", "--model", str(MODEL_PATH), "--device", "cpu"]
WROTE = re.compile(r"^  wrote (\S+) \((\d+)x(\d+),", re.M)


def make_images(folder: Path, count: int, sides: tuple[int, int], seed: int = 0) -> list[Path]:
    """`count` noisy RGB PNGs of mixed sizes (each side drawn from `sides`)."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        h, w = rng.integers(sides[0], sides[1] + 1, size=2)
        path = folder / f"img{i:02d}.png"
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(path)
        paths.append(path)
    return paths


def shares(inputs: Path, out: Path) -> list[list[Job]]:
    """The two ranks' jobs, as the library plans and shares them (a pure function of the plan)."""
    options = BatchOptions(spec=SizeSpec(scale=2.0), output=out)
    jobs = plan_batch([str(inputs)], options)
    return [[jobs[i] for i in share] for share in shard_by_weight(weigh(jobs, options), 2)]


def test_jobs_weigh_the_output_pixels_they_will_make(tmp_path):
    Image.new("RGB", (10, 20)).save(tmp_path / "plain.png")  # 10 wide, 20 high
    exif = Image.Exif()
    exif[0x0112] = 6  # rotated 90 degrees: decoded 20 wide, 10 high
    Image.new("RGB", (10, 20)).save(tmp_path / "turned.jpg", exif=exif)
    (tmp_path / "broken.png").write_bytes(b"not an image")
    Image.new("RGB", (4, 4)).save(tmp_path / "done.png")
    (tmp_path / "done_w40.png").write_bytes(b"an output of an earlier run")
    options = BatchOptions(spec=SizeSpec(width=40), suffix="w40", ext="png")
    names = ["plain.png", "turned.jpg", "broken.png", "done.png"]
    jobs = plan_batch([str(tmp_path / n) for n in names], options)
    assert jobs[3].skip is not None
    assert weigh(jobs, options) == [40 * 80, 40 * 20, 0, 0]
    assert weigh(jobs, options, count_skipped=True) == [40 * 80, 40 * 20, 0, 40 * 40]  # independent shards


def test_a_video_weighs_all_its_frames(tmp_path):
    from test_video import make_clip

    clip = tmp_path / "clip.mp4"
    make_clip(clip, n=12, w=32, h=24, rotation=90, audio=False)
    options = BatchOptions(spec=SizeSpec(scale=2.0))
    assert weigh([Job(clip, tmp_path / "clip_x2.mp4")], options) == [12 * 48 * 64]  # stored size; rotation is a tag


def test_a_rank_stopped_whole_is_named_and_its_code_is_the_job_s():
    from rich.console import Console

    from liif_cli.batch.shards import JobFailed, RankSummary, ShardOutcome
    from liif_cli.cli.report import print_job_summary

    summaries = [RankSummary(0, written=3, out_pixels=1200), RankSummary(1, stopped="cannot load the model: no GPU")]
    outcome = ShardOutcome(0, 2, 5, [], summaries, merged=True, planned=6)
    console = Console(record=True, width=120)
    print_job_summary(console, outcome)
    text = console.export_text()
    assert "6 files over 2 processes" in text and "rank 1 stopped: cannot load the model: no GPU" in text
    assert re.search(r"^1\s+0\s+0\s+0 \(stopped\)\s+0\s", text, re.M)
    assert re.search(r"^total\s+3\s+0\s+0 \(stopped\)\s+1,200\s", text, re.M)
    with pytest.raises(JobFailed, match="^rank 1 stopped over 2 processes$") as failed:
        outcome.raise_for_status()
    assert failed.value.exit_code == 5
    with pytest.raises(JobFailed, match="rank 0's summary") as failed:
        ShardOutcome(1, 2, 5, [], summaries, merged=True, planned=6).raise_for_status()
    assert failed.value.exit_code == 5
    ShardOutcome(0, 2, 0, [], summaries[:1], merged=True, planned=3).raise_for_status()  # all went well: no error


def one_process(inputs: Path, out: Path) -> None:
    result = CliRunner().invoke(main, ["upscale", str(inputs), "-o", str(out), "-q", *ARGS], catch_exceptions=False)
    assert result.exit_code == 0, result.output


def outputs(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_two_ranks_write_what_one_process_writes_once_each_balanced_by_pixels(tmp_path):
    make_images(tmp_path / "in", 20, (6, 28))
    logs = tmp_path / "logs"
    proc = _torchrun(["-m", "liif_cli", "upscale", str(tmp_path / "in"), "-o", str(tmp_path / "two"), *ARGS], logs)
    assert proc.returncode == 0, proc.stderr[-3000:] + _rank_log(logs, 0, "stderr")[-3000:]
    one_process(tmp_path / "in", tmp_path / "one")
    assert outputs(tmp_path / "two") == outputs(tmp_path / "one")  # byte-identical, nothing more
    assert len(outputs(tmp_path / "one")) == 20

    printed = [_rank_log(logs, rank, "stderr") for rank in (0, 1)]
    written = [WROTE.findall(text) for text in printed]
    names = sorted(Path(name).name for part in written for name, _, _ in part)
    assert names == sorted(outputs(tmp_path / "one"))  # each output written by exactly one rank, once
    pixels = [sum(int(w) * int(h) for _, w, h in part) for part in written]
    largest = max(int(w) * int(h) for part in written for _, w, h in part)
    assert abs(pixels[0] - pixels[1]) <= largest and min(pixels) > 0
    assert len(written[0]) != len(written[1]) or pixels[0] != pixels[1]  # mixed sizes: a real balancing act
    summary = printed[0].split("20 files over 2 processes")[1]
    assert re.search(r"^total\s+20\s+0\s+0\s", summary, re.M)
    assert f"{pixels[1]:,}" in summary and "files over" not in printed[1]
    assert _rank_log(logs, 0) == _rank_log(logs, 1) == ""  # the console is stderr


def _workers(launcher: subprocess.Popen) -> dict[int, int]:
    """rank -> pid of the launcher's worker processes (read from /proc: their RANK variable)."""
    found = {}
    for task in Path(f"/proc/{launcher.pid}/task").iterdir():
        for pid in (task / "children").read_text().split():
            try:
                env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
            except OSError:
                continue
            for var in env:
                if var.startswith(b"RANK="):
                    found[int(var[5:])] = int(pid)
    return found


def _stamps(folder: Path) -> dict[str, tuple[int, int]]:
    return {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in folder.iterdir() if not p.name.startswith(".")}


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="finds the ranks' processes through /proc")
def test_a_rank_killed_mid_run_then_the_same_command_finishes_and_rewrites_nothing_complete(tmp_path):
    inputs, out, logs = tmp_path / "in", tmp_path / "out", tmp_path / "logs"
    make_images(inputs, 20, (28, 44), seed=1)
    rank1 = [job.output for job in shares(inputs, out)[1]]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    cmd += ["--log-dir", str(logs / "first"), "--redirects", "3"]
    cmd += ["-m", "liif_cli", "upscale", str(inputs), "-o", str(out), *ARGS]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "120", "PYTHONPATH": str(ROOT)}
    launcher = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 120
        while sum(p.exists() for p in rank1) < 2:  # rank 1 is under way: two of its outputs are complete
            assert launcher.poll() is None and time.monotonic() < deadline, launcher.communicate()[0][-3000:]
            time.sleep(0.02)
        os.kill(_workers(launcher)[1], signal.SIGKILL)
        first_log = launcher.communicate(timeout=120)[0]
    finally:
        if launcher.poll() is None:
            launcher.kill()
    assert launcher.returncode != 0, first_log[-3000:]
    before = _stamps(out)
    assert 2 <= sum(p.name in before for p in rank1) < len(rank1)  # killed mid-run: some of its share is missing
    for name in before:  # whatever is in place is complete
        with Image.open(out / name) as im:
            im.load()

    proc = _torchrun(["-m", "liif_cli", "upscale", str(inputs), "-o", str(out), *ARGS], logs / "again")
    assert proc.returncode == 0, proc.stderr[-3000:]
    after = _stamps(out)
    assert len(after) == 20
    assert {name: after[name] for name in before} == before  # same inode, same mtime: not rewritten
    printed = [_rank_log(logs / "again", rank, "stderr") for rank in (0, 1)]
    rewritten = sorted(Path(name).name for text in printed for name, _, _ in WROTE.findall(text))
    assert rewritten == sorted(set(after) - set(before))
    assert re.search(rf"^total\s+{20 - len(before)}\s+{len(before)}\s+0\s", printed[0], re.M)
    one_process(inputs, tmp_path / "one")
    assert outputs(tmp_path / "one") == {name: (out / name).read_bytes() for name in after}


def test_a_broken_file_on_rank_one_fails_the_job_and_rank_zero_names_it(tmp_path):
    inputs = tmp_path / "in"
    make_images(inputs, 5, (6, 20), seed=2)
    (inputs / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    (bad,) = [job.input for job in shares(inputs, tmp_path / "out")[1] if job.input.name == "broken.png"]
    logs = tmp_path / "logs"
    proc = _torchrun(["-m", "liif_cli", "upscale", str(inputs), "-o", str(tmp_path / "out"), *ARGS], logs)
    assert proc.returncode != 0
    # the ranks torchrun saw end exited with the job's status; once one has, torchrun stops the others with
    # SIGTERM, which may land before a rank's own handler is in place (reported as -15)
    codes = set(re.findall(r"exitcode  : (-?\d+)", proc.stderr))
    assert "1" in codes and codes <= {"1", "-15"}, proc.stderr[-2000:]
    zero, one = (_rank_log(logs, rank, "stderr") for rank in (0, 1))
    assert f"failed rank 1: {bad}: " in zero
    assert zero.rstrip().endswith("error: 1 of 6 files failed over 2 processes")
    assert re.search(r"^total\s+5\s+0\s+1\s", zero, re.M)
    assert one.rstrip().endswith("error: the job failed (rank 0's summary says where)")
    assert len(list((tmp_path / "out").iterdir())) == 5


def test_without_a_process_group_the_ranks_split_the_work_and_rank_zero_says_so_once(tmp_path):
    inputs, out = tmp_path / "in", tmp_path / "out"
    make_images(inputs, 6, (6, 16), seed=3)
    env = {k: v for k, v in os.environ.items() if k not in ("MASTER_ADDR", "MASTER_PORT")}
    env.update(OMP_NUM_THREADS="1", COLUMNS="120", PYTHONPATH=str(ROOT), WORLD_SIZE="2")
    cmd = [sys.executable, "-m", "liif_cli", "upscale", str(inputs), "-o", str(out), *ARGS]
    procs = [
        subprocess.Popen(cmd, env={**env, "RANK": str(r), "LOCAL_RANK": str(r)}, stderr=subprocess.PIPE, text=True)
        for r in (0, 1)
    ]
    printed = [p.communicate(timeout=120)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], printed
    assert printed[0].count("independent shards") == 1 and "independent shards" not in printed[1]
    written = [sorted(Path(name).name for name, _, _ in WROTE.findall(text)) for text in printed]
    assert (
        sorted(written[0] + written[1]) == sorted(p.name for p in out.iterdir()) and len(written[0] + written[1]) == 6
    )
    for rank in (0, 1):  # each reports its own share, and only it
        assert (
            printed[rank].rstrip().splitlines()[-1].startswith(f"rank {rank}: {len(written[rank])} written, 0 skipped")
        )
        assert "files over" not in printed[rank]


def test_sigterm_to_a_rank_is_an_interrupt_that_leaves_no_partial_file(tmp_path):
    inputs, out = tmp_path / "in", tmp_path / "out"
    make_images(inputs, 6, (40, 48), seed=4)
    env = {k: v for k, v in os.environ.items() if k not in ("MASTER_ADDR", "MASTER_PORT")}
    env.update(OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT), WORLD_SIZE="2", RANK="0", LOCAL_RANK="0")
    cmd = [sys.executable, "-m", "liif_cli", "upscale", str(inputs), "-o", str(out), *ARGS]
    proc = subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, text=True)  # rank 0 of 2, alone: 3 files
    try:
        deadline = time.monotonic() + 120
        while not (out.is_dir() and _stamps(out)):  # under way: its first output is in place
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()[1]
            time.sleep(0.02)
        proc.send_signal(signal.SIGTERM)  # what torchrun sends when another rank dies, Slurm on preemption
        printed = proc.communicate(timeout=60)[1]
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130 and printed.rstrip().endswith("interrupted"), printed
    left = sorted(p.name for p in out.iterdir())
    assert 1 <= len(left) < 3 and not any(name.startswith(".") for name in left)
    for name in left:
        with Image.open(out / name) as im:
            im.load()
