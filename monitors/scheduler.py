"""``tollhouse monitors schedule``: run every configured job at its interval, forever.

One job at a time, in the order they fall due; a job that takes longer than its interval
runs again as soon as it finishes, never twice at once. Each job's next run is counted
from the start of its last one, so a slow job does not drift its schedule. Stops
cleanly between jobs on SIGINT/SIGTERM (``stop``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from monitors.jobs import JobConfig, JobResult


@dataclass
class _Due:
    job: JobConfig
    at: float


class Scheduler:
    def __init__(
        self,
        jobs: Sequence[JobConfig],
        run: Callable[[JobConfig], JobResult],
        *,
        monotonic: Callable[[], float] = time.monotonic,
        progress: Callable[[str], None] = lambda _: None,
        wait: Callable[[float], object] | None = None,
    ) -> None:
        self._run = run
        self._monotonic = monotonic
        self._progress = progress
        self._stop = threading.Event()
        # Waiting for the next job; returns early when stopped. Tests pass a fake clock's.
        self._wait = wait or self._stop.wait
        start = monotonic()
        self._due = [_Due(job, start) for job in jobs]

    def stop(self) -> None:
        self._stop.set()

    def run_forever(self, max_runs: int | None = None) -> int:
        """Run jobs as they fall due until stopped (or ``max_runs`` runs); return runs."""
        runs = 0
        while not self._stop.is_set() and self._due and (max_runs is None or runs < max_runs):
            self._due.sort(key=lambda d: d.at)
            due = self._due[0]
            wait = due.at - self._monotonic()
            if wait > 0:
                self._wait(wait)
                continue
            started = self._monotonic()
            result = self._run(due.job)
            runs += 1
            due.at = started + due.job.interval_s
            self._progress(
                f"{due.job.name}: {', '.join(s for _, _, s in result.runs) or 'no run'}; "
                f"{result.firing} alert(s) firing; next in {due.job.interval_s:.0f} s"
            )
        return runs
