"""Step-runner settings (SPEC §9)."""
import os
from dataclasses import dataclass

from wf_platform.settings import CommonSettings


@dataclass(frozen=True)
class RunnerSettings:
    common: CommonSettings
    concurrency: int
    egress_allow: str
    max_response_bytes: int
    agents_file: str | None
    ack_wait: float
    max_deliver: int
    drain_seconds: float

    @classmethod
    def from_env(cls) -> "RunnerSettings":
        return cls(
            common=CommonSettings.from_env("step-runner", default_ops_port=8082),
            concurrency=int(os.environ.get("RUNNER_CONCURRENCY", "32")),
            egress_allow=os.environ.get("WORKFLOW_EGRESS_ALLOW", ""),
            max_response_bytes=int(os.environ.get("WORKFLOW_MAX_RESPONSE_BYTES", str(10 * 1024 * 1024))),
            agents_file=os.environ.get("WORKFLOW_AGENTS_FILE"),
            ack_wait=float(os.environ.get("RUNNER_ACK_WAIT_SECONDS", "30")),
            max_deliver=int(os.environ.get("RUNNER_MAX_DELIVER", "5")),
            drain_seconds=float(os.environ.get("RUNNER_DRAIN_SECONDS", "25")),
        )


def secrets_from_env() -> dict[str, str]:
    """secrets.<NAME> come from WORKFLOW_SECRET_<NAME>; read in the runner only, at execution."""
    prefix = "WORKFLOW_SECRET_"
    return {k[len(prefix):]: v for k, v in os.environ.items() if k.startswith(prefix) and v}
