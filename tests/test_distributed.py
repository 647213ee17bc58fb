"""Scale-out: launcher detection, balanced shares, merged results and the job's exit status.

The pure parts are tested directly; the rest under a real `torchrun --standalone --nproc_per_node 2`
(gloo on the CPU): `liif bench` gives the one-process figures, and a failure on rank 1 fails the job.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image

from liif_cli import distributed as D
from liif_cli.cli import main
from liif_cli.errors import UsageError

ROOT = Path(__file__).resolve().parents[1]


# --- who am I ----------------------------------------------------------------------------------------


def test_detect_torchrun_then_slurm_then_alone():
    torchrun = {"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1", "SLURM_PROCID": "0", "SLURM_NTASKS": "8"}
    assert D.detect_launch(torchrun) == D.Launch(3, 4, 1, "torchrun")
    assert D.detect_launch({**torchrun, "LOCAL_WORLD_SIZE": "2"}).local_world_size == 2
    slurm = {"SLURM_PROCID": "5", "SLURM_NTASKS": "8", "SLURM_LOCALID": "1"}
    assert D.detect_launch(slurm) == D.Launch(5, 8, 1, "slurm")
    # srun's own task count wins over the job's (a batch script's plain command is one process)
    assert D.detect_launch({**slurm, "SLURM_STEP_NUM_TASKS": "6"}).world_size == 6
    assert D.detect_launch({**slurm, "SLURM_NTASKS_PER_NODE": "4"}).local_world_size == 4
    assert D.detect_launch({**slurm, "SLURM_NTASKS_PER_NODE": "4(x2)"}).local_world_size is None
    assert D.detect_launch({"SLURM_PROCID": "0", "SLURM_NTASKS": "4", "SLURM_STEP_NUM_TASKS": "1"}) == D.Launch()
    assert D.detect_launch({}) == D.Launch()
    assert D.detect_launch({"RANK": "0", "WORLD_SIZE": "1"}) == D.Launch()
    assert not D.Launch().distributed and D.Launch().is_main


@pytest.mark.parametrize(
    "env",
    [
        {"RANK": "2", "WORLD_SIZE": "2"},
        {"RANK": "x", "WORLD_SIZE": "2"},
        {"WORLD_SIZE": "2"},
        {"SLURM_PROCID": "-1", "SLURM_NTASKS": "2"},
    ],
)
def test_inconsistent_launcher_environment_is_a_usage_error(env):
    with pytest.raises(UsageError):
        D.detect_launch(env)


def test_device_per_local_rank():
    import torch

    gpus = torch.cuda.device_count()
    assert D.device_for("auto", 3) == (f"cuda:{3 % gpus}" if gpus else "cpu")  # wraps round the visible GPUs
    assert D.device_for("cpu", 3) == "cpu"
    with pytest.raises(UsageError):
        D.device_for("tpu", 0)


def test_backend_nccl_only_with_a_gpu_per_local_process():
    assert D.backend_for("cpu", 2, 0) == "gloo"
    assert D.backend_for("cuda", 4, 8) == "nccl" and D.backend_for("cuda", None, 1) == "nccl"
    assert D.backend_for("cuda", 2, 1) == "gloo"  # two ranks on one GPU: NCCL would refuse


def test_slurm_rendezvous_is_derived_from_the_node_list():
    assert D.first_slurm_host("gpu[07-09,12],cpu1") == "gpu07"
    assert D.first_slurm_host("node3,node4") == "node3"
    assert D.first_slurm_host("a-b[001]") == "a-b001"
    assert D.first_slurm_host("") is None
    slurm = D.Launch(1, 4, 1, "slurm")
    env = {"SLURM_JOB_NODELIST": "gpu[07-08]", "SLURM_JOB_ID": "123456"}
    assert D.rendezvous(slurm, env) == f"tcp://gpu07:{D.PORT_BASE + 123456 % D.PORT_SPAN}"
    assert D.rendezvous(slurm, {**env, "MASTER_PORT": "29500"}) == "tcp://gpu07:29500"
    assert D.rendezvous(slurm, {**env, "MASTER_ADDR": "h", "MASTER_PORT": "1"}) == "env://"
    assert D.rendezvous(slurm, {"SLURM_JOB_ID": "1"}) is None
    assert D.rendezvous(D.Launch(1, 2, 1, "torchrun"), {}) is None


def test_no_rendezvous_falls_back_to_independent_shards_and_says_so():
    env = {"SLURM_PROCID": "1", "SLURM_NTASKS": "2", "SLURM_LOCALID": "1"}  # srun without a node list
    with D.process_group("cpu", env=env) as group:
        assert not group.formed and group.rank == 1 and group.world_size == 2
        assert "independent shards" in group.warning
        assert group.share(list("abc"), [3, 2, 1]) == ["b", "c"]
        outcome = D.conclude(group, {"rank": 1}, 3)
    assert outcome == D.JobOutcome(3, [{"rank": 1}], merged=False)


# --- shares ------------------------------------------------------------------------------------------


def test_shards_cover_every_item_once_and_balance_within_the_largest():
    rng = random.Random(12)
    for world in (1, 2, 3, 5, 8):
        for n in (0, 1, 4, 20, 57):
            weights = [rng.choice([1, 7, 64, 300]) * rng.randint(1, 9) for _ in range(n)]
            shares = D.shard_by_weight(weights, world)
            assert len(shares) == world
            assert sorted(i for s in shares for i in s) == list(range(n))
            assert all(s == sorted(s) for s in shares)
            loads = [sum(weights[i] for i in s) for s in shares]
            assert max(loads) - min(loads) <= max(weights, default=0)
            assert D.shard_by_weight(list(weights), world) == shares  # deterministic


def test_shards_balance_pixels_not_file_counts():
    weights = [4000 * 3000, 640 * 480, 640 * 480, 640 * 480, 800 * 600]
    assert D.shard_by_weight(weights, 2) == [[0], [1, 2, 3, 4]]


def test_lone_process_merges_in_plan_order_and_exits_with_its_own_status():
    with D.process_group("cpu", env={}) as group:
        assert not group.formed and group.warning is None and group.is_main
        assert group.share([1, 2, 3], [1, 1, 1]) == [1, 2, 3]
        assert D.merge_shards(group, [(2, "c"), (0, "a"), (1, "b")]) == ["a", "b", "c"]
        assert D.conclude(group, "s", 0) == D.JobOutcome(0, ["s"], merged=False)
        assert D.broadcast(group, {"plan": 1}) == {"plan": 1}
    assert D.job_exit_code([0, 0]) == 0 and D.job_exit_code([0, 3, 1]) == 3 and D.job_exit_code([]) == 0


# --- under torchrun ----------------------------------------------------------------------------------


def _torchrun(args: list[str], log_dir: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    cmd += ["--log-dir", str(log_dir), "--redirects", "3", *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "120", "PYTHONPATH": str(ROOT)}
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout, cwd=ROOT)


def _rank_log(log_dir: Path, rank: int, stream: str = "stdout") -> str:
    (path,) = log_dir.rglob(f"{rank}/{stream}.log")
    return path.read_text()


def _scores_part(printed: str) -> str:
    """The protocol line and the scores table: everything above the throughput table."""
    return printed.split("throughput")[0].strip()


def _tiny_set5(root: Path) -> Path:
    """Set5's layout with two 48 x 48 crops of the example photo (HR, and LR x2 / x4 made by PIL bicubic)."""
    photo = Image.open(ROOT / "examples" / "astronaut.png").convert("RGB")
    for i, name in enumerate(("baby", "bird")):
        hr = photo.crop((16 + 56 * i, 24, 64 + 56 * i, 72))
        (root / "Set5" / "HR").mkdir(parents=True, exist_ok=True)
        hr.save(root / "Set5" / "HR" / f"{name}.png")
        for s in (2, 4):
            (root / "Set5" / "LR_bicubic" / f"X{s}").mkdir(parents=True, exist_ok=True)
            hr.resize((48 // s, 48 // s), Image.BICUBIC).save(
                root / "Set5" / "LR_bicubic" / f"X{s}" / f"{name}x{s}.png"
            )
    return root


@pytest.mark.slow
def test_bench_under_two_ranks_prints_the_one_process_figures(tmp_path, model_path):
    data = _tiny_set5(tmp_path / "data")
    args = ["bench", "--dataset", "set5", "--data-dir", str(data), "--protocol", "paper", "--model", str(model_path)]
    args += ["--scales", "2,4", "--limit", "2", "--device", "cpu", "-q"]
    logs = tmp_path / "logs"
    proc = _torchrun(["-m", "liif_cli", *args], logs)
    assert proc.returncode == 0, proc.stderr[-3000:] + _rank_log(logs, 0, "stderr")[-3000:]
    two = _rank_log(logs, 0)
    one_json = tmp_path / "one.json"
    one = CliRunner().invoke(main, [*args, "--json", str(one_json)], env={"COLUMNS": "120"}, catch_exceptions=False)
    assert one.exit_code == 0, one.output
    print(_scores_part(two))
    assert _scores_part(two) == _scores_part(one.output)
    # the figures are the one process's own (its JSON), over both images: baby on rank 0, bird on rank 1
    rows = json.loads(one_json.read_text())["rows"]
    assert [(r["scale"], r["images"]) for r in rows] == [(2, 2), (4, 2)]
    assert all(f"{r['psnr']:.4f}" in two for r in rows)
    assert "split over 2 processes" in two and "split over" not in one.output


JOB = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    from liif_cli import distributed

    from liif_cli.errors import LiifError, UsageError

    out, bad_plan = Path(sys.argv[1]), sys.argv[2:] == ["bad-plan"]

    def make_plan():
        if bad_plan:
            raise UsageError("no input given")
        return [(f"img{i:02d}.png", (i % 3 + 1) * 1000) for i in range(7)]

    with distributed.process_group("cpu") as group:
        assert group.formed, group.warning
        try:
            items, weights = zip(*distributed.plan_once(group, make_plan))  # rank 0 plans; the others follow
        except LiifError as exc:
            print(f"error: {exc}")
            sys.exit(exc.exit_code)
        done, failed = [], []
        for name in group.share(items, weights):
            if group.rank == 1 and not failed:
                failed.append([name, "induced failure"])
            else:
                done.append(name)
        outcome = distributed.conclude(group, {"done": done, "failed": failed}, 1 if failed else 0)
    (out / f"rank{group.rank}.json").write_text(json.dumps({"exit": outcome.exit_code, "merged": outcome.merged}))
    if group.is_main:
        for rank, summary in enumerate(outcome.summaries):
            for name, why in summary["failed"]:
                print(f"rank {rank}: failed {name}: {why}")
        print(json.dumps(outcome.summaries))
    sys.exit(outcome.exit_code)
    """
)


def test_failure_on_rank_one_fails_the_job_and_rank_zero_names_the_file(tmp_path):
    script = tmp_path / "job.py"
    script.write_text(JOB)
    logs = tmp_path / "logs"
    proc = _torchrun([str(script), str(tmp_path)], logs, timeout=180)
    assert proc.returncode != 0
    for rank in (0, 1):
        assert json.loads((tmp_path / f"rank{rank}.json").read_text()) == {"exit": 1, "merged": True}
    printed = _rank_log(logs, 0).splitlines()
    summaries = json.loads(printed[-1])
    failed = summaries[1]["failed"][0][0]
    assert printed[0] == f"rank 1: failed {failed}: induced failure"
    names = summaries[0]["done"] + summaries[1]["done"] + [failed]
    assert sorted(names) == [f"img{i:02d}.png" for i in range(7)]  # every item once, over both ranks
    assert summaries[0]["failed"] == []


def test_a_bad_plan_on_rank_zero_is_every_rank_s_error(tmp_path):
    script = tmp_path / "job.py"
    script.write_text(JOB)
    logs = tmp_path / "logs"
    proc = _torchrun([str(script), str(tmp_path), "bad-plan"], logs, timeout=180)
    assert proc.returncode != 0
    for rank in (0, 1):
        assert _rank_log(logs, rank) == "error: no input given\n"
    assert "exitcode  : 2" in proc.stderr
