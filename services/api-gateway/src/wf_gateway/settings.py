"""Gateway settings (SPEC §9)."""
import os
from dataclasses import dataclass

from wf_platform.settings import CommonSettings


@dataclass(frozen=True)
class GatewaySettings:
    common: CommonSettings
    host: str
    port: int
    bootstrap_api_key: str | None
    max_body_bytes: int

    @classmethod
    def from_env(cls) -> "GatewaySettings":
        port = int(os.environ.get("GATEWAY_PORT", "8080"))
        return cls(
            common=CommonSettings.from_env("api-gateway", default_ops_port=port),
            host=os.environ.get("GATEWAY_HOST", "127.0.0.1"),
            port=port,
            bootstrap_api_key=os.environ.get("WORKFLOW_BOOTSTRAP_API_KEY") or None,
            max_body_bytes=int(os.environ.get("WORKFLOW_MAX_BODY_BYTES", str(1024 * 1024))),
        )
