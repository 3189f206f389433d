"""Settings common to every service (SPEC §9), read from the environment in main()."""
import os
import socket
import uuid
from dataclasses import dataclass, field

DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
DEFAULT_NATS_URL = "nats://127.0.0.1:4222"


def _env_bool(name: str, default: bool) -> bool:
    v = os.environ.get(name)
    if v is None:
        return default
    return v.strip().lower() in ("1", "true", "yes", "on")


@dataclass(frozen=True)
class CommonSettings:
    database_url: str
    nats_url: str
    ops_host: str
    ops_port: int
    log_level: str
    instance: str
    relay: bool
    db_pool_max: int
    # JetStream replicas of the WF stream (its consumers inherit it): 1 on a single server, 3 on a
    # 3-node cluster. Raising it on a running deployment scales the stream up in place.
    nats_stream_replicas: int = 1
    # How often queue-depth gauges are refreshed from JetStream (queue_metrics.py); 0 turns it off.
    queue_metrics_seconds: float = 5.0

    @classmethod
    def from_env(cls, service: str, default_ops_port: int) -> "CommonSettings":
        return cls(
            database_url=os.environ.get("DATABASE_URL", DEFAULT_DATABASE_URL),
            nats_url=os.environ.get("NATS_URL", DEFAULT_NATS_URL),
            ops_host=os.environ.get("OPS_HOST", "127.0.0.1"),
            ops_port=int(os.environ.get("OPS_PORT", default_ops_port)),
            log_level=os.environ.get("LOG_LEVEL", "INFO"),
            instance=f"{service}-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}",
            relay=_env_bool("WORKFLOW_RELAY", True),
            db_pool_max=int(os.environ.get("WORKFLOW_DB_POOL_MAX", "10")),
            nats_stream_replicas=max(1, int(os.environ.get("NATS_STREAM_REPLICAS", "1"))),
            queue_metrics_seconds=max(0.0, float(os.environ.get("WORKFLOW_QUEUE_METRICS_SECONDS", "5"))),
        )
