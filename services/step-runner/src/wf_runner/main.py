"""Entrypoint: `wf-step-runner`. Stateless; run as many as you like."""
import asyncio

from wf_platform.runtime import Runtime, run_service

from .registry import build_registry
from .settings import RunnerSettings, secrets_from_env
from .worker import Worker


def main() -> None:
    settings = RunnerSettings.from_env()

    async def work(rt: Runtime) -> None:
        worker = Worker(rt.js, build_registry(settings), settings.common.instance, settings.concurrency,
                        settings.ack_wait, settings.max_deliver, secrets_from_env(), settings.drain_seconds)
        await worker.setup()
        await worker.run(rt.stop)

    # the runner appends nothing to the log, so it never runs the outbox relay
    asyncio.run(run_service("step-runner", settings.common, [work], relay=False, needs_db=False))


if __name__ == "__main__":
    main()
