"""Scale-out on the launchers people already run (torchrun, Slurm's srun): rank, device, shares, merged results.

Nothing here schedules work. Every process is started by the launcher with the same command line; each one
works out who it is (`detect_launch`), takes its GPU from its local rank (`device_for`), forms a
`torch.distributed` process group when it can (`process_group`), takes the plan rank 0 made (`plan_once`),
processes its share of it (`Group.share`, i.e. `shard_by_weight`, the same on every rank because it is a pure
function of the plan), and then the ranks exchange their results (`merge_shards`, `conclude`) so that rank 0
can print one summary and every rank exits with the job's status (`job_exit_code`).

When no process group can be formed (e.g. srun without a rendezvous address and no Slurm node list to derive
one from), the ranks still split the work but cannot talk: `Group.warning` says so and each rank reports only
its own share. The functions that need no group are pure, so they are tested without launching anything.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

from .errors import LiifError, UsageError

T = TypeVar("T")

PORT_BASE, PORT_SPAN = 15000, 20000
"""A Slurm job without MASTER_PORT rendezvouses on PORT_BASE + job id % PORT_SPAN (same on every node)."""


# --- who am I ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Launch:
    """This process's place in the job: from torchrun's or Slurm's environment, or a lone process."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    launcher: str = "none"  # "torchrun", "slurm" or "none"
    local_world_size: int | None = None  # processes on this machine, where the launcher says (torchrun does)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def _int_var(env: Mapping[str, str], name: str) -> int:
    text = env.get(name, "")
    try:
        return int(text)
    except ValueError:
        raise UsageError(f"{name}={text!r} in the environment is not an integer") from None


def detect_launch(env: Mapping[str, str] | None = None) -> Launch:
    """RANK / WORLD_SIZE / LOCAL_RANK (torchrun and friends), else SLURM_PROCID / SLURM_NTASKS / SLURM_LOCALID.

    Under Slurm the step's own task count (SLURM_STEP_NUM_TASKS, set by srun) wins over the job's, so a plain
    command in a batch script (no srun) stays one process instead of waiting for partners that never come.
    """
    env = os.environ if env is None else env
    if "WORLD_SIZE" in env:
        world, rank, local = _int_var(env, "WORLD_SIZE"), _int_var(env, "RANK"), 0
        if "LOCAL_RANK" in env:
            local = _int_var(env, "LOCAL_RANK")
        launcher = "torchrun"
        local_world = _int_var(env, "LOCAL_WORLD_SIZE") if "LOCAL_WORLD_SIZE" in env else None
    elif "SLURM_PROCID" in env and ("SLURM_STEP_NUM_TASKS" in env or "SLURM_NTASKS" in env):
        tasks = "SLURM_STEP_NUM_TASKS" if "SLURM_STEP_NUM_TASKS" in env else "SLURM_NTASKS"
        world, rank = _int_var(env, tasks), _int_var(env, "SLURM_PROCID")
        local = _int_var(env, "SLURM_LOCALID") if "SLURM_LOCALID" in env else 0
        per_node = env.get("SLURM_NTASKS_PER_NODE", "")  # "4", or "4(x2),3" when uneven: then unknown
        launcher, local_world = "slurm", int(per_node) if per_node.isdigit() else None
    else:
        return Launch()
    if world < 1 or not 0 <= rank < world or local < 0:
        raise UsageError(f"inconsistent launcher environment: rank {rank} of {world} (local rank {local})")
    if world == 1:
        return Launch()
    return Launch(rank, world, local, launcher, local_world)


def device_for(name: str | None, local_rank: int) -> str:
    """The device this process renders on: 'auto' or a bare 'cuda' means the local rank's GPU.

    With fewer visible GPUs than local ranks (e.g. Slurm hands each task its own one GPU) the ranks wrap
    round the visible ones. Explicit devices ('cpu', 'cuda:1', 'mps') are taken as given.
    """
    import torch

    from .devices import resolve_device

    device = resolve_device(name)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", local_rank % torch.cuda.device_count())
    return str(device)


# --- forming the group -------------------------------------------------------------------------------


def backend_for(device_type: str, local_world_size: int | None, gpus: int) -> str:
    """NCCL between GPUs, gloo on CPUs, and gloo too when this machine's processes outnumber its GPUs:
    NCCL refuses two ranks on one GPU, and the results exchanged here are small objects either way."""
    if device_type == "cuda" and (local_world_size is None or local_world_size <= gpus):
        return "nccl"
    return "gloo"


def first_slurm_host(nodelist: str) -> str | None:
    """The first host of a Slurm node list: 'gpu[07-09,12],cpu1' -> 'gpu07'; None when it cannot be read."""
    m = re.match(r"\s*([^,\[\s]+)(?:\[([^\]]+)\])?", nodelist or "")
    if not m:
        return None
    prefix, ranges = m.group(1), m.group(2)
    if ranges is None:
        return prefix
    first = re.match(r"\s*([0-9A-Za-z]+)", ranges)
    return prefix + first.group(1) if first else None


def rendezvous(launch: Launch, env: Mapping[str, str] | None = None) -> str | None:
    """Where the ranks meet: 'env://' when MASTER_ADDR/MASTER_PORT are set, for Slurm 'tcp://<first node>:<port>'
    derived from the node list and the job id, else None (no group can be formed)."""
    env = os.environ if env is None else env
    if env.get("MASTER_ADDR") and env.get("MASTER_PORT"):
        return "env://"
    if launch.launcher == "slurm":
        nodes = env.get("SLURM_STEP_NODELIST") or env.get("SLURM_JOB_NODELIST") or env.get("SLURM_NODELIST") or ""
        host = env.get("MASTER_ADDR") or first_slurm_host(nodes)
        job = env.get("SLURM_JOB_ID", "")
        if host and job.isdigit():
            port = env.get("MASTER_PORT") or str(PORT_BASE + int(job) % PORT_SPAN)
            return f"tcp://{host}:{port}"
    return None


@dataclass
class Group:
    """This process's view of the job once the group is formed (or known to be impossible)."""

    launch: Launch
    device: str
    formed: bool = False  # a torch.distributed group is up: results can be merged
    owned: bool = False  # we formed it, so we tear it down
    warning: str | None = None  # why the ranks run as independent shards, when they do

    @property
    def rank(self) -> int:
        return self.launch.rank

    @property
    def world_size(self) -> int:
        return self.launch.world_size

    @property
    def is_main(self) -> bool:
        return self.launch.is_main

    def share(self, items: Sequence[T], weights: Sequence[float]) -> list[T]:
        """This rank's items, in plan order, of a plan every rank holds alike (see `plan_once`)."""
        if len(items) != len(weights):
            raise ValueError("one weight per item")
        return [items[i] for i in shard_by_weight(weights, self.world_size)[self.rank]]


def join(device: str | None = "auto", *, env: Mapping[str, str] | None = None, timeout_s: float = 1800) -> Group:
    """Detect the launch, pick the device and form the process group (gloo on CPU, NCCL on CUDA) if possible.

    A group someone else formed (e.g. a caller already under torch.distributed) is used, not re-formed.
    Failing to meet once a rendezvous address is known is an error: falling back then could leave some
    ranks waiting for the others forever.
    """
    launch = detect_launch(env)
    if not launch.distributed:  # a lone process keeps the device as asked ('auto' stays 'auto')
        return Group(launch, device or "auto")
    dev = device_for(device, launch.local_rank)
    import torch
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return Group(launch, dev, formed=True)
    method = rendezvous(launch, env)
    if method is None or not dist.is_available():
        why = "no rendezvous address (MASTER_ADDR/MASTER_PORT)" if dist.is_available() else "no torch.distributed"
        return Group(
            launch,
            dev,
            warning=f"{why}: the {launch.world_size} processes run as independent shards; each reports its own",
        )
    kind = torch.device(dev).type
    if kind not in ("cpu", "cuda"):
        raise UsageError(f"several processes need CUDA or CPU devices, not {kind}")
    backend = backend_for(kind, launch.local_world_size, torch.cuda.device_count() if kind == "cuda" else 0)
    kwargs: dict[str, Any] = {}
    if kind == "cuda":
        torch.cuda.set_device(torch.device(dev))
    if backend == "nccl":
        kwargs["device_id"] = torch.device(dev)
    try:
        dist.init_process_group(
            backend,
            init_method=method,
            rank=launch.rank,
            world_size=launch.world_size,
            timeout=timedelta(seconds=timeout_s),
            **kwargs,
        )
    except (RuntimeError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise LiifError(f"rank {launch.rank}: cannot form the process group at {method}: {first}") from exc
    return Group(launch, dev, formed=True, owned=True)


def leave(group: Group) -> None:
    if group.owned:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()
        group.owned = group.formed = False


@contextmanager
def process_group(device: str | None = "auto", *, env: Mapping[str, str] | None = None) -> Iterator[Group]:
    """`join` ... `leave`: the group lives as long as the block (a lone process gets a trivial group)."""
    group = join(device, env=env)
    try:
        yield group
    finally:
        leave(group)


# --- the plan's shares -------------------------------------------------------------------------------


def shard_by_weight(weights: Sequence[float], world_size: int) -> list[list[int]]:
    """Split item indices over `world_size` ranks, balanced by weight (e.g. output pixels), deterministically.

    Greedy longest-processing-time: heaviest item first (ties by index) onto the lightest rank (ties by rank).
    Each step puts an item on the lightest rank, so the heaviest and lightest totals never differ by more
    than the largest single item. Each rank's indices come back in ascending (plan) order.
    """
    if world_size < 1:
        raise ValueError("world_size must be >= 1")
    loads = [0.0] * world_size
    shares: list[list[int]] = [[] for _ in range(world_size)]
    for i in sorted(range(len(weights)), key=lambda i: (-weights[i], i)):
        r = min(range(world_size), key=lambda r: (loads[r], r))
        loads[r] += weights[i]
        shares[r].append(i)
    return [sorted(s) for s in shares]


# --- bringing results together -----------------------------------------------------------------------


def gather(group: Group, obj: Any) -> list[Any]:
    """Every rank's `obj`, in rank order, on every rank (picklable objects); just [obj] without a group."""
    if not group.formed:
        return [obj]
    import torch.distributed as dist

    out: list[Any] = [None] * group.world_size
    dist.all_gather_object(out, obj)
    return out


def barrier(group: Group) -> None:
    """Wait for every rank (e.g. while rank 0 downloads what the others then read); nothing without a group."""
    if not group.formed:
        return
    import torch
    import torch.distributed as dist

    device = torch.device(group.device)
    if dist.get_backend() == "nccl":
        dist.barrier(device_ids=[device.index])
    else:
        dist.barrier()


def broadcast(group: Group, obj: Any) -> Any:
    """Rank 0's `obj` on every rank: how a plan is made once. Planning on each rank could disagree (an
    output that a quick rank already wrote looks like a skip to a slow one, or file systems lag between
    machines), so rank 0 plans and the others take its plan."""
    if not group.formed:
        return obj
    import torch.distributed as dist

    box = [obj if group.is_main else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def plan_once(group: Group, make_plan: Callable[[], T]) -> T:
    """`make_plan()` on rank 0, its result on every rank; a `LiifError` it raises is raised on every rank
    (so each exits with that error's code instead of waiting for a plan that never comes)."""
    if not group.formed:
        return make_plan()
    outcome: tuple[str, Any] | None = None
    if group.is_main:
        try:
            outcome = ("plan", make_plan())
        except LiifError as exc:
            outcome = ("error", exc)
    kind, value = broadcast(group, outcome)
    if kind == "error":
        raise value
    return value


def merge_shards(group: Group, pairs: Sequence[tuple[int, T]]) -> list[T]:
    """Put per-rank (plan index, result) pairs back into plan order: the list one process would have made."""
    merged = [p for part in gather(group, list(pairs)) for p in part]
    return [value for _, value in sorted(merged, key=lambda p: p[0])]


def job_exit_code(codes: Sequence[int]) -> int:
    """The job's status from every rank's: 0 when all succeeded, else the first non-zero one in rank order."""
    return next((c for c in codes if c), 0)


@dataclass
class JobOutcome:
    exit_code: int  # the job's: the same on every rank when merged
    summaries: list[Any]  # one per rank in rank order; only this rank's when not merged
    merged: bool


def conclude(group: Group, summary: Any, exit_code: int) -> JobOutcome:
    """Exchange each rank's summary and exit code; every rank gets the job's status (rank 0 prints)."""
    parts = gather(group, (exit_code, summary))
    return JobOutcome(job_exit_code([c for c, _ in parts]), [s for _, s in parts], group.formed)
