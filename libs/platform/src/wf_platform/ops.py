"""/healthz, /readyz and /metrics for the services that have no HTTP API of their own.

A bare ASGI app served by uvicorn inside the service's own event loop.
"""
import asyncio
import contextlib
from typing import Awaitable, Callable

import uvicorn
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

ReadyFn = Callable[[], Awaitable[bool]]


def ops_app(ready: ReadyFn):
    async def app(scope, receive, send):
        if scope["type"] == "lifespan":
            while True:
                msg = await receive()
                if msg["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif msg["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        path = scope["path"]
        if path == "/healthz":
            status, body, ctype = 200, b'{"status":"ok"}', b"application/json"
        elif path == "/readyz":
            ok = await ready()
            status = 200 if ok else 503
            body = b'{"status":"ready"}' if ok else b'{"status":"not ready"}'
            ctype = b"application/json"
        elif path == "/metrics":
            status, body, ctype = 200, generate_latest(), CONTENT_TYPE_LATEST.encode()
        else:
            status, body, ctype = 404, b'{"title":"Not Found","status":404}', b"application/problem+json"
        await send({"type": "http.response.start", "status": status, "headers": [(b"content-type", ctype)]})
        await send({"type": "http.response.body", "body": body})

    return app


async def serve_ops(host: str, port: int, ready: ReadyFn, stop: asyncio.Event) -> None:
    config = uvicorn.Config(ops_app(ready), host=host, port=port, log_level="warning", access_log=False,
                            lifespan="off")
    server = uvicorn.Server(config)
    # the service owns SIGTERM/SIGINT; uvicorn would otherwise take them over while it serves
    server.capture_signals = contextlib.nullcontext
    task = asyncio.create_task(server.serve())
    await stop.wait()
    server.should_exit = True
    await task
