"""The one small interface every step type implements (STYLE §8)."""
import asyncio
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Mapping, Protocol


class StepError(Exception):
    """A failed attempt, as a value: message plus whether another attempt could help."""

    def __init__(self, message: str, retryable: bool = True, error_type: str = "step_error") -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable
        self.error_type = error_type


@dataclass
class StepContext:
    run_id: str
    step_id: str
    attempt: int
    tenant: str
    step_type: str
    config: dict[str, Any]            # rendered by the orchestrator; secret markers already substituted
    timeout_seconds: float | None
    context: dict[str, Any] = field(default_factory=dict)  # input, dependency outputs, run info
    cancel: asyncio.Event = field(default_factory=asyncio.Event)
    # only the secrets this step's config references: a step type uses them to redact what it
    # captures (script output); the runner redacts every secret it knows again before reporting
    secrets: Mapping[str, str] = field(default_factory=dict)
    dispatched_at: datetime | None = None   # when step.dispatched was recorded: stable across redeliveries
    metadata: dict[str, Any] = field(default_factory=dict)   # filled by the step; reported beside the output
    runner: str = ""   # this runner's instance name (settings.instance): sent as the User-Agent of HTTP steps

    @property
    def idempotency_key(self) -> str:
        return f"{self.run_id}:{self.step_id}:{self.attempt}"

    def time_limit(self, configured: float) -> float:
        """The step type's own time-out, never longer than the step's per-attempt time-out."""
        return configured if self.timeout_seconds is None else min(configured, self.timeout_seconds)


def number(config: Mapping[str, Any], key: str, default: float, *, minimum: float = 0.0) -> float:
    """A positive number from the config (rendered templates may give strings like "30")."""
    value = config.get(key, default)
    try:
        n = float(value) if not isinstance(value, bool) else float("nan")
    except (TypeError, ValueError):
        n = float("nan")
    if not n > minimum:   # also refuses NaN
        raise StepError(f"config.{key} must be a number > {minimum:g}", retryable=False, error_type="invalid_config")
    return n


class StepExecutor(Protocol):
    type: str

    async def execute(self, ctx: StepContext) -> Any:
        """Return the step's output (JSON-able) or raise StepError."""
        ...
