"""The scheduler runs each job when it falls due, one at a time, counting each interval
from the start of the job's last run, and stops between jobs when asked."""

from __future__ import annotations

from governance.config.monitors import FingerprintsJob
from monitors.jobs import JobConfig, JobResult
from monitors.scheduler import Scheduler


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_jobs_run_at_their_intervals_in_due_order() -> None:
    time = FakeTime()
    fast = FingerprintsJob(kind="fingerprints", name="fast", interval_s=10)
    slow = FingerprintsJob(kind="fingerprints", name="slow", interval_s=25)
    ran: list[tuple[str, float]] = []

    def run(job: JobConfig) -> JobResult:
        ran.append((job.name, time.now))
        time.now += 4  # every run takes 4 s
        return JobResult(job.name)

    def wait(seconds: float) -> None:  # waiting on a fake clock moves it on
        time.now += seconds

    scheduler = Scheduler([fast, slow], run, monotonic=time, wait=wait)
    assert scheduler.run_forever(max_runs=6) == 6
    assert ran == [
        ("fast", 0.0),
        ("slow", 4.0),
        ("fast", 10.0),  # 10 s after its last start, not after its end
        ("fast", 20.0),
        ("slow", 29.0),  # due at 29 (started at 4)
        ("fast", 33.0),  # due at 30, but slow was running
    ]


def test_stop_ends_the_loop_between_jobs() -> None:
    time = FakeTime()
    job = FingerprintsJob(kind="fingerprints", name="only", interval_s=1)
    scheduler: Scheduler

    def run(job: JobConfig) -> JobResult:
        scheduler.stop()
        return JobResult(job.name)

    scheduler = Scheduler([job], run, monotonic=time)
    assert scheduler.run_forever() == 1
