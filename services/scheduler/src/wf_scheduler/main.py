"""Entrypoint: `wf-scheduler`. Any number of replicas may run; each fire still starts one run."""
import asyncio
import logging

from wf_platform.runtime import Runtime, run_service

from .clock import Clock, FileClock, SystemClock
from .firing import Firer, run_loop
from .settings import SchedulerSettings

log = logging.getLogger(__name__)


def make_clock(settings: SchedulerSettings) -> Clock:
    if settings.test_clock_file:
        log.warning("TEST CLOCK: reading the time from %s (never set this in production)", settings.test_clock_file)
        return FileClock(settings.test_clock_file)
    return SystemClock()


def main() -> None:
    settings = SchedulerSettings.from_env()

    async def schedule(rt: Runtime) -> None:
        firer = Firer(rt.pool, make_clock(settings), batch=settings.batch, lease_seconds=settings.lease_seconds,
                      sweep_seconds=settings.sweep_seconds)
        await run_loop(firer, rt.stop, settings.tick_seconds, settings.workers)

    asyncio.run(run_service("scheduler", settings.common, [schedule]))


if __name__ == "__main__":
    main()
