"""The one small interface every step type implements (STYLE §8)."""
import asyncio
from dataclasses import dataclass, field
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
    config: dict[str, Any]            # already rendered by the orchestrator (templates resolved)
    timeout_seconds: float | None
    context: dict[str, Any] = field(default_factory=dict)  # input, dependency outputs, run info
    cancel: asyncio.Event = field(default_factory=asyncio.Event)
    secrets: Mapping[str, str] = field(default_factory=dict)

    @property
    def idempotency_key(self) -> str:
        return f"{self.run_id}:{self.step_id}:{self.attempt}"


class StepExecutor(Protocol):
    type: str

    async def execute(self, ctx: StepContext) -> Any:
        """Return the step's output (JSON-able) or raise StepError."""
        ...
