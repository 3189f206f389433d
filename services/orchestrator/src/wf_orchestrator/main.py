"""Entrypoint: `wf-orchestrator`. Any number of replicas may run."""
import asyncio
import os

from wf_platform.runtime import Runtime, run_service
from wf_platform.settings import CommonSettings

from .consumer import Consumer
from .handler import RunHandler


async def _orchestrate(rt: Runtime) -> None:
    consumer = Consumer(rt.js, RunHandler(rt.log), concurrency=int(os.environ.get("ORCHESTRATOR_CONCURRENCY", "64")))
    await consumer.setup()
    await consumer.run(rt.stop)


def main() -> None:
    settings = CommonSettings.from_env("orchestrator", default_ops_port=8081)
    asyncio.run(run_service("orchestrator", settings, [_orchestrate]))


if __name__ == "__main__":
    main()
