"""What can make the orchestrator look at a run again."""
from dataclasses import dataclass

from wf_contracts.messages import StepResult


@dataclass(frozen=True)
class Kick:
    """A run-stream event (run.created, ...) recorded by someone else: re-evaluate the run."""

    run_id: str
    cause_id: str


Message = Kick | StepResult
