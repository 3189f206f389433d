"""Entrypoint: `wf-orchestrator`. Any number of replicas may run.

Three loops share one RunExecutor: the bus consumer (runs created, operations requested, step
results), the timer poller (durable timers due) and the admission sweeper (queued runs that
may take a free slot).
"""
import asyncio
from datetime import datetime, timezone

from wf_platform.runtime import Runtime, run_service

from .admission import AdmissionSweeper
from .consumer import Consumer
from .executor import RunExecutor
from .handler import RunHandler
from .settings import OrchestratorSettings
from .wakeups import TimerPoller


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def build(rt: Runtime, settings: OrchestratorSettings):
    handler = RunHandler(rt.log, clock=utc_now, max_running=settings.max_concurrent_runs)
    executor = RunExecutor(handler, concurrency=settings.concurrency)
    sweeper = AdmissionSweeper(rt.pool, executor, settings.max_concurrent_runs, settings.admission_sweep_seconds)
    handler.on_admission_change = sweeper.poke
    poller = TimerPoller(rt.pool, executor, utc_now, interval=settings.timer_poll_seconds)
    consumer = Consumer(rt.js, executor, concurrency=settings.concurrency)
    return consumer, poller, sweeper, executor


def main() -> None:
    settings = OrchestratorSettings.from_env()

    async def orchestrate(rt: Runtime) -> None:
        consumer, poller, sweeper, executor = build(rt, settings)
        await consumer.setup()
        await asyncio.gather(consumer.run(rt.stop), poller.run(rt.stop), sweeper.run(rt.stop))
        await executor.drain()

    asyncio.run(run_service("orchestrator", settings.common, [orchestrate]))


if __name__ == "__main__":
    main()
