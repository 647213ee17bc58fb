"""A batch under torchrun or srun: one plan, a share per process balanced by output pixels, one merged summary.

    outcome = run_shards(["photos/"], options, "edsr-baseline", LoadOptions(device="cuda"))
    # outcome.results: this process's files; outcome.summaries: every rank's (on rank 0 when merged)

Every process runs the same command. Rank 0 plans (`plan_batch`) and weighs each job by the output pixels it
will make; the others take that plan (`distributed.plan_once`), so all hold the same one even after a quick rank
has written outputs. Each rank runs its share (`Group.share`) with the ordinary `run_batch`, so it writes only
its own outputs, atomically: after a crash a rerun skips what exists (it is complete) and redoes the rest.
The ranks then exchange their summaries and exit codes (`distributed.conclude`): every rank ends with the job's
status. A job is the unit shared out, whatever it is (an image, or a whole video once videos are jobs).

Without a process group (srun without a rendezvous) no plan can be handed round, so each rank plans for itself
and the shares must not depend on anything that changes while the job runs: every job is weighed whether its
output exists yet or not, and files named like this command's outputs (they appear as the ranks write them)
are left out before sharing. Each rank then reports only its own share.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from .. import distributed
from ..errors import LiifError
from .plan import BatchOptions, Job, plan_batch
from .results import FileResult, Reporter
from .run import LazyModel, raise_for_failures, run_batch

if TYPE_CHECKING:
    from ..load_options import LoadOptions


class JobFailed(LiifError):
    """The job's status, carried by every rank: the exit code is the first non-zero one in rank order."""

    def __init__(self, message: str, exit_code: int):
        super().__init__(message)
        self.exit_code = exit_code


@dataclass
class RankSummary:
    """What one rank did, small enough to send to the others."""

    rank: int
    written: int = 0
    skipped: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)  # (input, why) for each failed file
    out_pixels: int = 0  # output pixels written
    seconds: float = 0.0
    stopped: str | None = None  # an error that stopped this rank's whole share (e.g. the model would not load)

    @classmethod
    def of(cls, rank: int, results: Sequence[FileResult], seconds: float) -> RankSummary:
        return cls(
            rank,
            written=sum(r.status == "written" for r in results),
            skipped=sum(r.status == "skipped" for r in results),
            failed=[(str(r.input), r.message.removeprefix(f"{r.input}: ")) for r in results if r.status == "failed"],
            out_pixels=sum(r.out_hw[0] * r.out_hw[1] for r in results if r.status == "written" and r.out_hw),
            seconds=seconds,
        )


@dataclass
class ShardOutcome:
    rank: int
    world_size: int
    exit_code: int  # the job's when merged (the same on every rank), else this rank's
    results: list[FileResult]  # this rank's files, in plan order
    summaries: list[RankSummary]  # every rank's in rank order when merged, else only this rank's
    merged: bool
    planned: int  # jobs in the plan, over all ranks
    warning: str | None = None  # why the ranks ran as independent shards

    def raise_for_status(self) -> None:
        """Raise `JobFailed` with the job's exit code when it is not 0 (on every rank when merged)."""
        if not self.exit_code:
            return
        total = self.total
        if not self.merged:
            why = f"{len(total.failed)} of the {len(self.results)} files of this process's share failed"
            raise JobFailed(total.stopped or why, self.exit_code)
        if self.rank != 0:
            raise JobFailed("the job failed (rank 0's summary says where)", self.exit_code)
        stopped = [f"rank {s.rank} stopped" for s in self.summaries if s.stopped]
        failed = [f"{len(total.failed)} of {self.planned} files failed"] if total.failed else []
        raise JobFailed(f"{', '.join(failed + stopped)} over {self.world_size} processes", self.exit_code)

    @property
    def total(self) -> RankSummary:
        """The job's totals (this rank's alone when not merged); `seconds` is the slowest rank's."""
        out = RankSummary(-1)
        for s in self.summaries:
            out.written += s.written
            out.skipped += s.skipped
            out.out_pixels += s.out_pixels
            out.failed += [(f"rank {s.rank}: {name}", why) for name, why in s.failed]
            out.seconds = max(out.seconds, s.seconds)
            out.stopped = out.stopped or s.stopped
        return out


def output_pixels(job: Job, options: BatchOptions) -> int:
    """The output pixels `job` will make, read from its input's header (no image decoded; a video's first
    frame); 0 when the file fails before it is read or its header cannot be read (it will fail quickly)."""
    if job.error is not None:
        return 0
    try:
        frames, hw = _input_frames_hw(job.input)
        out_h, out_w = (job.spec or options.specs[0]).resolve(hw, None)
    except Exception:  # whatever keeps the header from being read also fails the file, quickly: it weighs nothing
        return 0
    return frames * out_h * out_w


def _input_frames_hw(path: Path) -> tuple[int, tuple[int, int]]:
    """(frames, (h, w)) to upscale: a video (by its content) goes whole, every frame at its stored size; an
    image at its size as decoded (`imageio.header_size`: after the EXIF rotation)."""
    from ..imageio import header_size, identify

    if identify(path, max_pixels=None).kind == "video":
        from ..video import probe

        info = probe(path, max_pixels=None)
        return info.frames or 1, (info.height, info.width)
    w, h = header_size(path, max_pixels=None)
    return 1, (h, w)


def weigh(jobs: Sequence[Job], options: BatchOptions, *, count_skipped: bool = False) -> list[int]:
    """One weight per job for `Group.share`: output pixels, 0 for a job that will not run (skipped or failing)
    unless `count_skipped` (then a job whose output exists weighs what it would make)."""
    return [0 if (job.skip is not None and not count_skipped) else output_pixels(job, options) for job in jobs]


def _plan(paths: Sequence[str], options: BatchOptions, independent: bool) -> tuple[list[Job], list[int]]:
    jobs = plan_batch(paths, options)
    if independent:  # see the module's docstring: nothing that changes as the ranks write may sway the shares
        jobs = [j for j in jobs if not j.earlier_output]
        return jobs, weigh(jobs, options, count_skipped=True)
    return jobs, weigh(jobs, options)


@contextlib.contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM (what torchrun sends the other ranks when one dies, and Slurm on preemption) raises
    KeyboardInterrupt, so the file being written is cleaned up like on Ctrl-C instead of left half-done."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        if signal.getsignal(signal.SIGTERM) is interrupt:  # unless the caller chose another meanwhile
            signal.signal(signal.SIGTERM, previous)


def run_shards(
    paths: Sequence[str],
    options: BatchOptions,
    model: str | Path,
    load: LoadOptions,
    reporter: Reporter | None = None,
    *,
    progress: bool = False,
    on_group: Callable[[distributed.Group], None] | None = None,
    on_outcome: Callable[[ShardOutcome], None] | None = None,
) -> ShardOutcome:
    """This process's part of a batch launched several times (torchrun, srun); see the module's docstring.

    `model` is loaded as `load` says, on this rank's device (`load.device` picks the kind; lazily, as `run_batch`
    does; `progress`: show a download's progress). `on_group(group)` is
    called once the group is formed (or known to be impossible), before planning: e.g. to say why not.
    `on_outcome(outcome)` is called on every rank while the group still stands, e.g. for rank 0 to print the
    job's summary: no rank exits before every rank has returned from it (torchrun stops the other processes
    as soon as one exits with an error, which could cut rank 0's summary short).
    A plan error (no input, a bad -o...) is raised on every rank; any other LiifError on a rank is caught and
    becomes that rank's status, so no rank waits for another forever.
    """
    import time

    with _terminate_as_interrupt(), distributed.process_group(load.device) as group:
        if on_group is not None:
            on_group(group)
        jobs, weights = distributed.plan_once(group, lambda: _plan(list(paths), options, not group.formed))
        indices = distributed.shard_by_weight(weights, group.world_size)[group.rank]
        mine = [jobs[i] for i in indices]
        lazy = LazyModel(model, load.replace(device=group.device), progress=progress)
        t0 = time.monotonic()
        results: list[FileResult] = []
        stopped, code = None, 0
        try:
            results = run_batch(mine, options, lazy, reporter, estimate=lazy.estimate, protect=jobs)
            raise_for_failures(results, single_input=len(jobs) == 1)
        except LiifError as exc:
            code = exc.exit_code
            if not any(r.status == "failed" for r in results):  # not the failures' summary: what stopped us
                stopped = " ".join(str(exc).split()) or type(exc).__name__
        summary = RankSummary.of(group.rank, results, time.monotonic() - t0)
        summary.stopped = stopped
        out = distributed.conclude(group, summary, code)
        outcome = ShardOutcome(
            group.rank, group.world_size, out.exit_code, results, out.summaries, out.merged, len(jobs), group.warning
        )
        try:
            if on_outcome is not None:
                on_outcome(outcome)
        finally:  # nobody exits before rank 0 has reported: a launcher stops the others when one exits non-zero
            distributed.gather(group, None)
        return outcome
