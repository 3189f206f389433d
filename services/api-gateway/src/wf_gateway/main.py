"""Entrypoint: `wf-gateway`. Uvicorn drains in-flight requests on SIGTERM."""
import uvicorn

from wf_platform import logs

from .app import create_app
from .settings import GatewaySettings


def main() -> None:
    settings = GatewaySettings.from_env()
    logs.setup("api-gateway", settings.common.log_level)
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_config=None,
                access_log=False, timeout_graceful_shutdown=20, lifespan="on")


if __name__ == "__main__":
    main()
