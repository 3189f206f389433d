"""Entrypoint: `wf-step-runner`. Stateless; run as many as you like."""
import asyncio

from wf_platform.runtime import Runtime, run_service

from .cancels import CancelWatch
from .claims import Claims
from .execute import Executor
from .registry import build_registry
from .settings import RunnerSettings, secrets_from_env
from .worker import Worker

BUS_HEADROOM = 4096   # headers and envelope around a result, below the server's max_payload


def main() -> None:
    settings = RunnerSettings.from_env()
    registry = build_registry(settings)   # a bad WORKFLOW_EGRESS_ALLOW stops the runner here, loudly

    async def work(rt: Runtime) -> None:
        executor = Executor(registry, secrets_from_env(), settings.common.instance,
                            max_result_bytes=rt.nc.max_payload - BUS_HEADROOM)
        worker = Worker(rt.js, executor, concurrency=settings.concurrency, ack_wait=settings.ack_wait,
                        max_deliver=settings.max_deliver, drain_seconds=settings.drain_seconds,
                        cancels=CancelWatch(rt.nc, rt.js),
                        claims=Claims(rt.js, settings.common.instance, settings.common.nats_stream_replicas))
        await worker.setup()
        await worker.run(rt.stop)

    # the runner appends nothing to the log, so it never runs the outbox relay
    asyncio.run(run_service("step-runner", settings.common, [work], relay=False, needs_db=False))


if __name__ == "__main__":
    main()
