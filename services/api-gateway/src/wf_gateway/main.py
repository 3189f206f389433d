"""Entrypoint: `wf-gateway`. On SIGTERM uvicorn stops accepting, drains in-flight requests, exits 0."""
import asyncio
import contextlib
import signal

import uvicorn

from wf_platform import logs

from .app import create_app
from .settings import GatewaySettings


async def _serve(settings: GatewaySettings) -> None:
    config = uvicorn.Config(create_app(settings), host=settings.host, port=settings.port, log_config=None,
                            access_log=False, timeout_graceful_shutdown=20, lifespan="on")
    server = uvicorn.Server(config)
    # uvicorn would re-raise the signal after draining (exit status -15); we want a clean exit 0
    server.capture_signals = contextlib.nullcontext
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, lambda: setattr(server, "should_exit", True))
    await server.serve()
    if not server.started:
        raise SystemExit(1)


def main() -> None:
    settings = GatewaySettings.from_env()
    logs.setup("api-gateway", settings.common.log_level)
    asyncio.run(_serve(settings))


if __name__ == "__main__":
    main()
