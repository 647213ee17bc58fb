"""A bounded job queue with one worker thread per device.

Each device holds one model (loaded once) and runs one job at a time: two renders on one device only
fight for its memory and cores. Requests wait in one shared queue of bounded length; when it is full,
`submit` raises `QueueFull` at once (the app answers 429 with Retry-After) instead of letting a burst
pile up memory. A job whose client has gone away is cancelled: skipped if it has not started, stopped at
its next progress tick if it has.
"""

from __future__ import annotations

import contextlib
import math
import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any


class QueueFull(Exception):
    """The queue holds as many waiting jobs as it may; `retry_after` is a guess in whole seconds."""

    def __init__(self, retry_after: int):
        super().__init__(f"the server is busy; retry in {retry_after} s")
        self.retry_after = retry_after


class JobCancelled(BaseException):
    """Raised inside a running job when its client has gone: a BaseException, so that nothing on the
    way (the batch runner records ordinary exceptions as failed files) mistakes it for a result."""


@dataclass(eq=False)  # compared and hashed by identity: the queue keeps a set of running jobs
class Job:
    """`fn(worker, job)` runs on a worker thread; `future` carries its result to the request."""

    fn: Callable[[Any, Job], Any]
    future: Future = field(default_factory=Future)
    cancelled: threading.Event = field(default_factory=threading.Event)

    def cancel(self) -> None:
        self.cancelled.set()

    def check(self) -> None:
        """Call between steps of the work: raises JobCancelled once the client is gone."""
        if self.cancelled.is_set():
            raise JobCancelled()


_STOP = object()


class JobQueue:
    """`JobQueue(resources, max_waiting)`: one worker thread per resource (a loaded model per device)."""

    def __init__(self, resources: Sequence[Any], max_waiting: int = 16):
        if not resources:
            raise ValueError("a job queue needs at least one worker")
        if max_waiting < 1:
            raise ValueError("max_waiting must be at least 1")
        self.resources = list(resources)
        self._queue: queue.Queue = queue.Queue(maxsize=max_waiting)
        self._lock = threading.Lock()
        self._seconds = 1.0  # running mean of a job's time, for Retry-After
        self.running = 0
        self.done = 0
        self.closing = False
        self._current: set[Job] = set()
        self._threads = [
            threading.Thread(target=self._work, args=(r,), name=f"liif-worker-{i}", daemon=True)
            for i, r in enumerate(self.resources)
        ]
        for t in self._threads:
            t.start()

    @property
    def waiting(self) -> int:
        return self._queue.qsize()

    def submit(self, fn: Callable[[Any, Job], Any]) -> Job:
        """Queue `fn`; QueueFull when the queue is full, JobCancelled when the server is shutting down."""
        if self.closing:
            raise JobCancelled()
        job = Job(fn)
        try:
            self._queue.put_nowait(job)
        except queue.Full:
            if not self._drop_cancelled():
                raise QueueFull(self.retry_after()) from None
            try:
                self._queue.put_nowait(job)  # a place was freed just now
            except queue.Full:  # another request took it first
                raise QueueFull(self.retry_after()) from None
        return job

    def _drop_cancelled(self) -> int:
        """Remove waiting jobs whose clients have gone (e.g. the zoom viewer's stale tiles), so that they
        hold no place a live request could have; how many were removed."""
        q = self._queue
        with q.mutex:
            kept = [job for job in q.queue if job is _STOP or not job.cancelled.is_set()]
            dropped = [job for job in q.queue if job is not _STOP and job.cancelled.is_set()]
            if dropped:
                q.queue.clear()
                q.queue.extend(kept)
                q.unfinished_tasks -= len(dropped)
                q.not_full.notify(len(dropped))
        for job in dropped:
            job.future.cancel()
        return len(dropped)

    def retry_after(self) -> int:
        """Seconds until a place is likely free: the queue ahead, at the mean job time, over the workers."""
        ahead = self._queue.qsize() + self.running
        return max(1, math.ceil(self._seconds * ahead / len(self.resources)))

    def _work(self, resource: Any) -> None:
        while True:
            job = self._queue.get()
            if job is _STOP:
                return
            if job.cancelled.is_set() or not job.future.set_running_or_notify_cancel():
                continue
            with self._lock:
                self.running += 1
                self._current.add(job)
            t0 = time.monotonic()
            try:
                job.future.set_result(job.fn(resource, job))
            except JobCancelled as exc:
                job.future.set_exception(exc)
            except Exception as exc:
                job.future.set_exception(exc)
            finally:
                with self._lock:
                    self.running -= 1
                    self._current.discard(job)
                    self.done += 1
                    self._seconds = 0.8 * self._seconds + 0.2 * (time.monotonic() - t0)

    def cancel_all(self) -> None:
        """Shutting down: refuse new jobs, cancel running ones (they stop at their next progress tick)."""
        self.closing = True
        with self._lock:
            for job in self._current:
                job.cancel()

    def close(self, timeout: float = 5.0) -> None:
        """Cancel what waits, let running jobs finish (up to `timeout`), stop the workers."""
        while True:
            try:
                job = self._queue.get_nowait()
            except queue.Empty:
                break
            if job is not _STOP:
                job.cancel()
                job.future.cancel()
        deadline = time.monotonic() + timeout
        for _ in self._threads:
            with contextlib.suppress(queue.Full):
                self._queue.put(_STOP, timeout=max(0.0, deadline - time.monotonic()))
        for t in self._threads:
            t.join(max(0.0, deadline - time.monotonic()))
