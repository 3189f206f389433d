"""create_app(): the FastAPI application. Connections are built in the lifespan, never at import."""
import asyncio
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from wf_platform.relay import Relay
from wf_platform.runtime import close_runtime, open_runtime

from . import openapi_doc, problems
from .bodycheck import BodyCheck
from .commands import ensure_bootstrap_key
from .limits import BodyLimit
from .run_feeds import RunFeeds
from .routers import audit, keys, run_ops, runs, schedules, stream, templates, versions, workflows
from .settings import GatewaySettings


def create_app(settings: GatewaySettings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI):
        rt = await open_runtime("api-gateway", settings.common)
        app.state.rt = rt
        app.state.run_feeds = RunFeeds(rt.nc)
        if settings.bootstrap_api_key:
            await ensure_bootstrap_key(rt.log, rt.pool, settings.bootstrap_api_key)
        tasks = []
        if settings.common.relay:
            relay = Relay(rt.pool, rt.js, settings.common.database_url, settings.common.instance)
            tasks.append(asyncio.create_task(relay.run(rt.stop)))
        try:
            yield
        finally:
            rt.stop.set()
            await asyncio.gather(*tasks, return_exceptions=True)
            await close_runtime(rt)

    app = FastAPI(
        title="Workflow service",
        description="Event-sourced workflow orchestration. Errors are RFC 9457 problem details.",
        version="0.1.0",
        openapi_url="/api/openapi.json",
        docs_url="/docs",
        lifespan=lifespan,
    )
    problems.install(app)
    # added last = outermost: the size limit applies before the JSON checks read the body
    app.add_middleware(BodyCheck)
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    app.include_router(keys.router)
    app.include_router(templates.router)
    app.include_router(versions.router)
    app.include_router(audit.router)
    app.include_router(stream.router)
    app.include_router(run_ops.router)
    app.include_router(runs.router)
    app.include_router(schedules.router)  # before workflows: /schedules/{id} is not a workflow id
    app.include_router(workflows.router)
    openapi_doc.install(app)

    @app.get("/healthz", include_in_schema=False)
    async def healthz():
        return {"status": "ok"}

    @app.get("/readyz", include_in_schema=False)
    async def readyz(request: Request):
        ok = await request.app.state.rt.ready()
        return JSONResponse({"status": "ready" if ok else "not ready"}, status_code=200 if ok else 503)

    @app.get("/metrics", include_in_schema=False)
    async def metrics_endpoint():
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return app
