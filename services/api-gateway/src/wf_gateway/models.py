"""HTTP request/response models (pydantic, for validation and the OpenAPI document).

Kept apart from libs/contracts: these are the public wire shapes, the contracts are internal.
A workflow definition is typed as a plain object at run time (domain/validation.py reports its
problems as the SPEC's sentences) and documented with the JSON Schema of definition_schema.py.
"""
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, WithJsonSchema

from .definition_schema import REF

WorkflowStatus = Literal["draft", "active", "paused", "archived"]
TriggerType = Literal["manual", "schedule", "webhook", "api"]
Tag = Annotated[str, StringConstraints(min_length=1, max_length=100)]
# allOf: pydantic cannot resolve a bare $ref to a component it did not generate itself
Definition = Annotated[dict[str, Any], WithJsonSchema({"allOf": [{"$ref": REF.format("Definition")}]})]
MAX_INT = 2**31 - 1  # Postgres integer: larger versions cannot exist


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Problem(BaseModel):
    """RFC 9457 problem details."""
    type: str
    title: str
    status: int
    detail: str
    errors: list[str] | None = Field(default=None, description="Every problem at once (validation).")


SEED_DEFINITION = {"name": "Fetch and notify", "steps": [
    {"id": "fetch", "type": "http_request", "config": {"method": "GET", "url": "https://api.example.com/data"}},
    {"id": "notify", "type": "agent_task", "depends_on": ["fetch"],
     "config": {"agent_id": "agent_123", "goal": "Summarize the fetched data and post to Slack"}}]}


class WorkflowCreate(Strict):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"definition": SEED_DEFINITION, "trigger_type": "manual", "tags": ["notifications"]}]})
    definition: Definition
    trigger_type: TriggerType = "manual"
    tags: list[Tag] = Field(default_factory=list, max_length=50)
    status: WorkflowStatus = "active"


class WorkflowUpdate(Strict):
    definition: Definition
    change_summary: str | None = Field(default=None, max_length=500,
                                       description="Defaults to the diff summary, e.g. 'Added 1 step'.")
    trigger_type: TriggerType | None = None
    tags: list[Tag] | None = Field(default=None, max_length=50)


class StatusChange(Strict):
    status: WorkflowStatus


class Workflow(BaseModel):
    id: str
    name: str
    description: str
    version: int
    status: WorkflowStatus
    trigger_type: TriggerType
    tags: list[str]
    definition: Definition
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


class ValidateRequest(Strict):
    definition: Any = Field(description="Any JSON value; every problem is reported in `errors`.")


class ValidationResult(BaseModel):
    valid: bool
    errors: list[str]


class VersionSummary(BaseModel):
    version: int
    change_summary: str
    created_at: str


class VersionList(BaseModel):
    versions: list[VersionSummary]
    total: int


class VersionDetail(BaseModel):
    version: int
    definition: Definition
    change_summary: str
    created_at: str


PatchOps = Annotated[list[dict[str, Any]], WithJsonSchema(
    {"type": "array", "items": {"$ref": REF.format("PatchOperation")},
     "description": "RFC 6902 JSON Patch turning v1's definition into v2's."})]


class Diff(BaseModel):
    diff: PatchOps
    summary: str
    v1: int
    v2: int


class RollbackRequest(Strict):
    version: int = Field(ge=1, le=MAX_INT)


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
    # where the run came from beyond `trigger`, e.g. {"schedule_id", "fire_time"} for scheduled runs
    metadata: dict[str, Any] = {}
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
