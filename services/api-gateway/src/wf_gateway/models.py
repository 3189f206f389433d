"""HTTP request/response models (pydantic, for validation and the OpenAPI document).

Kept apart from libs/contracts: these are the public wire shapes, the contracts are internal.
"""
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

WorkflowStatus = Literal["draft", "active", "paused", "archived"]
TriggerType = Literal["manual", "schedule", "webhook", "api"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class WorkflowCreate(Strict):
    definition: dict[str, Any]
    trigger_type: TriggerType = "manual"
    tags: list[str] = Field(default_factory=list, max_length=50)
    status: WorkflowStatus = "active"


class Workflow(BaseModel):
    id: str
    name: str
    description: str
    version: int
    status: WorkflowStatus
    trigger_type: TriggerType
    tags: list[str]
    definition: dict[str, Any]
    created_at: str
    updated_at: str


class WorkflowSummary(BaseModel):
    id: str
    name: str
    description: str
    version: int
    status: WorkflowStatus
    trigger_type: TriggerType
    tags: list[str]
    created_at: str
    updated_at: str


class WorkflowCreated(BaseModel):
    id: str
    workflow: Workflow


class WorkflowList(BaseModel):
    workflows: list[WorkflowSummary]
    total: int


class RunRequest(Strict):
    input_data: dict[str, Any] = Field(default_factory=dict)
    trigger: Literal["manual", "api", "schedule", "webhook"] = "manual"


class RunAccepted(BaseModel):
    run_id: str


class StepRun(BaseModel):
    step_id: str
    status: str
    attempt: int
    output: Any = None
    error: str | None = None
    started_at: str | None = None
    completed_at: str | None = None
    duration_seconds: float | None = None


class Run(BaseModel):
    id: str
    workflow_id: str
    workflow_version: int
    status: str
    trigger: str
    input_data: dict[str, Any]
    created_at: str | None
    started_at: str | None
    completed_at: str | None
    duration_seconds: float | None
    error: str | None
    step_runs: list[StepRun]


class RunEnvelope(BaseModel):
    run: Run


class RunList(BaseModel):
    runs: list[Run]
    total: int
