"""Scheduler settings, read once in main()."""
import os
from dataclasses import dataclass

from wf_platform.settings import CommonSettings


@dataclass(frozen=True)
class SchedulerSettings:
    common: CommonSettings
    tick_seconds: float         # how often an idle worker looks for due schedules
    batch: int                  # schedules fired per transaction
    workers: int                # transactions in flight per replica
    lease_seconds: float        # a transaction idle this long (a stalled replica) is cut off by Postgres
    sweep_seconds: float        # how often to retire schedules whose workflow was deleted
    test_clock_file: str | None  # TEST ONLY: read "now" from this file (clock.FileClock)

    @classmethod
    def from_env(cls) -> "SchedulerSettings":
        return cls(
            common=CommonSettings.from_env("scheduler", default_ops_port=8083),
            tick_seconds=float(os.environ.get("SCHEDULER_TICK_SECONDS", "0.2")),
            batch=int(os.environ.get("SCHEDULER_BATCH", "50")),
            workers=int(os.environ.get("SCHEDULER_WORKERS", "4")),
            lease_seconds=float(os.environ.get("SCHEDULER_LEASE_SECONDS", "5")),
            sweep_seconds=float(os.environ.get("SCHEDULER_SWEEP_SECONDS", "10")),
            test_clock_file=os.environ.get("SCHEDULER_TEST_CLOCK_FILE") or None,
        )
