"""Entrypoint: `wf-scheduler`. Any number of replicas may run; each fire still starts one run."""
import asyncio
import os
from datetime import datetime, timezone

from wf_platform.runtime import Runtime, run_service
from wf_platform.settings import CommonSettings

from .firing import Firer, run_loop


def main() -> None:
    settings = CommonSettings.from_env("scheduler", default_ops_port=8083)
    interval = float(os.environ.get("SCHEDULER_TICK_SECONDS", "0.2"))

    async def schedule(rt: Runtime) -> None:
        firer = Firer(rt.log, rt.pool, clock=lambda: datetime.now(timezone.utc))
        await run_loop(firer, rt.stop, interval)

    asyncio.run(run_service("scheduler", settings, [schedule]))


if __name__ == "__main__":
    main()
