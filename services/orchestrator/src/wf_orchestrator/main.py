"""Entrypoint: `wf-orchestrator`. Any number of replicas may run.

Four loops share one RunExecutor: the bus consumer (runs created, operations requested, step
results), the timer poller (durable timers due), the admission sweeper (queued runs that may
take a free slot) and the reconciler (re-drives unfinished runs when the broker lost its store);
plus the max-deliveries advisory listener (poison steps).
"""
import asyncio
from datetime import datetime, timezone

from wf_platform.runtime import Runtime, run_service

from .admission import AdmissionSweeper
from .consumer import Consumer
from .executor import RunExecutor
from .handler import RunHandler
from .poison import PoisonWatch
from .reconcile import Reconciler
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
    reconciler = Reconciler(rt.pool, rt.js, executor, grace=settings.reconcile_grace_seconds)
    consumer = Consumer(rt.js, executor, concurrency=settings.concurrency, on_recreated=reconciler.poke)
    poison = PoisonWatch(rt.nc, rt.js, executor)
    return consumer, poller, sweeper, reconciler, poison, executor


def main() -> None:
    settings = OrchestratorSettings.from_env()

    async def orchestrate(rt: Runtime) -> None:
        consumer, poller, sweeper, reconciler, poison, executor = build(rt, settings)
        await consumer.setup()
        await poison.start()
        await asyncio.gather(consumer.run(rt.stop), poller.run(rt.stop), sweeper.run(rt.stop),
                             reconciler.run(rt.stop))
        await poison.stop()
        await executor.drain()

    asyncio.run(run_service("orchestrator", settings.common, [orchestrate]))


if __name__ == "__main__":
    main()
