"""What can make the orchestrator look at a run again."""
from dataclasses import dataclass

from wf_contracts.messages import StepResult


@dataclass(frozen=True)
class Kick:
    """A run-stream event recorded by someone else (run.created, run.cancel_requested,
    run.resume_requested), or a hint that a concurrency slot may be free: re-evaluate the run."""

    run_id: str
    cause_id: str | None = None


@dataclass(frozen=True)
class Tick:
    """A durable timer of the run is due (from the timers projection)."""

    run_id: str


Message = Kick | Tick | StepResult
