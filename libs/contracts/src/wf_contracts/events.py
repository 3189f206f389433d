"""Domain events: the only things ever written to the log.

Tags are stable forever. New fields get defaults; an incompatible change is a new tag plus an
upcaster in codec.py, so recorded histories keep folding.
"""
from typing import Any, Union

import msgspec


class Event(msgspec.Struct, frozen=True, tag_field="type", kw_only=True):
    pass


# --- API keys (stream key_<id>) ---
class KeyCreated(Event, tag="key.created"):
    key_id: str
    name: str
    scopes: list[str]
    tenant: str
    key_hash: str  # sha256 hex of the secret; the secret itself never reaches the log
    idempotency_key: str | None = None
    request_hash: str | None = None


class KeyRevoked(Event, tag="key.revoked"):
    key_id: str


# --- workflow definitions (stream wf_<id>) ---
class WorkflowCreated(Event, tag="workflow.created"):
    workflow_id: str
    definition: dict[str, Any]
    status: str = "active"
    trigger_type: str = "manual"
    tags: list[str] = []
    change_summary: str = "Initial version"
    idempotency_key: str | None = None
    request_hash: str | None = None
    idempotency_scope: str | None = None  # None means "workflow.create"; installs use their own scope
    template_id: str | None = None  # set when installed from a template


class WorkflowVersionAdded(Event, tag="workflow.version_added"):
    workflow_id: str
    version: int
    definition: dict[str, Any]
    change_summary: str = ""
    trigger_type: str | None = None  # None: label unchanged
    tags: list[str] | None = None  # None: labels unchanged


class WorkflowStatusChanged(Event, tag="workflow.status_changed"):
    workflow_id: str
    status: str


class WorkflowDeleted(Event, tag="workflow.deleted"):
    workflow_id: str


# --- custom templates (stream tpl_<id>); builtin templates ship with the gateway, not in the log ---
class TemplateAdded(Event, tag="template.added"):
    template_id: str
    name: str
    description: str = ""
    category: str = "custom"
    definition: dict[str, Any] = {}
    idempotency_key: str | None = None
    request_hash: str | None = None


class TemplateDeleted(Event, tag="template.deleted"):
    template_id: str


# --- runs (stream run_<id>) ---
class RunCreated(Event, tag="run.created"):
    run_id: str
    workflow_id: str
    workflow_version: int
    definition: dict[str, Any]  # pinned copy, so a replay never depends on another stream
    input_data: dict[str, Any] = {}
    trigger: str = "manual"
    idempotency_key: str | None = None
    request_hash: str | None = None
    metadata: dict[str, Any] = {}  # e.g. {"schedule_id", "fire_time"} for scheduled runs


class RunStarted(Event, tag="run.started"):
    run_id: str


class StepDispatched(Event, tag="step.dispatched"):
    run_id: str
    step_id: str
    attempt: int
    step_type: str
    config: dict[str, Any]  # templates rendered; secrets left as markers for the runner
    timeout_seconds: float | None = None
    # what the step may read: {"input", "steps": {dep_id: {"output", "status"}}, "run": {...}}
    context: dict[str, Any] = {}


class StepCompleted(Event, tag="step.completed"):
    run_id: str
    step_id: str
    attempt: int
    output: Any = None


class StepFailed(Event, tag="step.failed"):
    run_id: str
    step_id: str
    attempt: int
    error: str
    error_type: str = "step_error"


class StepSkipped(Event, tag="step.skipped"):
    run_id: str
    step_id: str
    reason: str = ""


class StepCancelled(Event, tag="step.cancelled"):
    run_id: str
    step_id: str


class RunCompleted(Event, tag="run.completed"):
    run_id: str


class RunFailed(Event, tag="run.failed"):
    run_id: str
    error: str


class RunCancelled(Event, tag="run.cancelled"):
    run_id: str


class RunDeleted(Event, tag="run.deleted"):
    run_id: str


# --- schedules (stream sched_<id>) ---
class ScheduleCreated(Event, tag="schedule.created"):
    schedule_id: str
    workflow_id: str
    cron_expression: str
    timezone: str = "UTC"
    input_data: dict[str, Any] = {}
    enabled: bool = True
    next_run_at: str | None = None  # RFC 3339; computed by the gateway from its clock
    overlap: str = "allow"
    catchup: str = "latest"


class ScheduleUpdated(Event, tag="schedule.updated"):
    schedule_id: str
    cron_expression: str
    timezone: str
    input_data: dict[str, Any]
    enabled: bool
    next_run_at: str | None = None
    overlap: str = "allow"
    catchup: str = "latest"


class ScheduleDeleted(Event, tag="schedule.deleted"):
    schedule_id: str


class ScheduleFired(Event, tag="schedule.fired"):
    schedule_id: str
    fire_time: str        # nominal fire time, RFC 3339 UTC
    run_id: str | None    # None when the fire was skipped
    next_run_at: str | None = None
    skipped_reason: str | None = None
    missed: list[str] = []  # older fire times not run because every scheduler was down


AnyEvent = Union[
    KeyCreated,
    KeyRevoked,
    WorkflowCreated,
    WorkflowVersionAdded,
    WorkflowStatusChanged,
    WorkflowDeleted,
    TemplateAdded,
    TemplateDeleted,
    RunCreated,
    RunStarted,
    StepDispatched,
    StepCompleted,
    StepFailed,
    StepSkipped,
    StepCancelled,
    RunCompleted,
    RunFailed,
    RunCancelled,
    RunDeleted,
    ScheduleCreated,
    ScheduleUpdated,
    ScheduleDeleted,
    ScheduleFired,
]

EVENT_TYPES: dict[str, type] = {cls.__struct_config__.tag: cls for cls in AnyEvent.__args__}  # type: ignore[attr-defined]
