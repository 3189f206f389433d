"""Bus messages that are not events: what a step-runner replies."""
from typing import Any

import msgspec


class StepResult(msgspec.Struct, frozen=True, kw_only=True, tag="step.result", tag_field="type"):
    run_id: str
    tenant: str
    step_id: str
    attempt: int
    dispatch_id: str  # id of the step.dispatched event this answers; stale answers are ignored
    ok: bool
    output: Any = None
    error: str | None = None
    error_type: str | None = None
    retryable: bool = True
    runner: str = ""
    duration_seconds: float = 0.0
    # Facts about the attempt that are not its output (SPEC §6 keeps `output` the step's own
    # value), e.g. {"usage": {"prompt_tokens", "completion_tokens", "total_tokens"}, "model"}
    # for agent_task, {"isolation": "bwrap"} for script. Secrets are redacted like the output.
    metadata: dict[str, Any] = {}
