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
    # RFC 3339: when the orchestrator gives up on this attempt if no result came (silent runner)
    deadline: str | None = None


class StepStarted(Event, tag="step.started"):
    """A control-flow step (condition, wait, loop) began inside the orchestrator: no dispatch."""

    run_id: str
    step_id: str
    attempt: int
    step_type: str
    items: list[Any] | None = None  # a loop's rendered items, kept so iterations render the same


class StepWaiting(Event, tag="step.waiting"):
    """A wait step sleeps on a durable timer (wake_at) or an approval (no wake_at)."""

    run_id: str
    step_id: str
    attempt: int
    reason: str                     # duration | until | condition | approval
    wake_at: str | None = None      # RFC 3339
    timeout_at: str | None = None   # condition waits: when to give up (re-evaluated on every change)


class StepRetrying(Event, tag="step.retrying"):
    """An attempt failed and another one is due at retry_at (backoff with jitter)."""

    run_id: str
    step_id: str
    attempt: int                    # the attempt that failed
    next_attempt: int
    delay_seconds: float
    retry_at: str                   # RFC 3339
    error: str
    error_type: str = "step_error"


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
    output: Any = None  # a loop without fail_fast: the iteration outputs (None where one failed)


class StepSkipped(Event, tag="step.skipped"):
    run_id: str
    step_id: str
    reason: str = ""


class StepCancelled(Event, tag="step.cancelled"):
    run_id: str
    step_id: str
    reason: str = ""


class RunCompleted(Event, tag="run.completed"):
    run_id: str


class RunFailed(Event, tag="run.failed"):
    run_id: str
    error: str


class RunCancelled(Event, tag="run.cancelled"):
    run_id: str


class RunDeleted(Event, tag="run.deleted"):
    run_id: str


class RunPaused(Event, tag="run.paused"):
    run_id: str
    step_id: str | None = None
    reason: str = ""                # "approval" or "step failed"


class RunResumed(Event, tag="run.resumed"):
    run_id: str
    from_step: str | None = None
    reset: list[str] = []           # steps (and loop iterations) set back to pending to run again
    request_id: str | None = None   # the run.resume_requested event this answers


# Requests recorded by the gateway on the run stream; the orchestrator reacts to them.
class RunCancelRequested(Event, tag="run.cancel_requested"):
    run_id: str
    reason: str = ""


class RunResumeRequested(Event, tag="run.resume_requested"):
    run_id: str
    from_step: str | None = None


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
    idempotency_key: str | None = None
    request_hash: str | None = None


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
    reason: str = ""  # e.g. "workflow deleted" when the scheduler retires an orphaned schedule


class ScheduleFired(Event, tag="schedule.fired"):
    schedule_id: str
    fire_time: str        # nominal fire time, RFC 3339 UTC
    run_id: str | None    # None when the fire was skipped
    next_run_at: str | None = None
    skipped_reason: str | None = None
    missed: list[str] = []  # older fire times not run because every scheduler was down
    # the oldest missed fire time: `missed` keeps only the newest ones, this says where the gap began
    missed_since: str | None = None
    buffered: bool = False  # overlap buffer_one: held back, starts when the previous run finishes


class ScheduleMissed(Event, tag="schedule.missed"):
    """Due fire times that start nothing (catchup "none" after a downtime); next_run_at moves on."""

    schedule_id: str
    missed: list[str]
    missed_since: str | None = None
    next_run_at: str | None = None


class ScheduleBufferReleased(Event, tag="schedule.buffer_released"):
    """The fire held back by buffer_one starts now that the previous run finished (or is skipped)."""

    schedule_id: str
    fire_time: str
    run_id: str | None
    skipped_reason: str | None = None


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
    StepStarted,
    StepWaiting,
    StepRetrying,
    StepCompleted,
    StepFailed,
    StepSkipped,
    StepCancelled,
    RunCompleted,
    RunFailed,
    RunCancelled,
    RunDeleted,
    RunPaused,
    RunResumed,
    RunCancelRequested,
    RunResumeRequested,
    ScheduleCreated,
    ScheduleUpdated,
    ScheduleDeleted,
    ScheduleFired,
    ScheduleMissed,
    ScheduleBufferReleased,
]

EVENT_TYPES: dict[str, type] = {cls.__struct_config__.tag: cls for cls in AnyEvent.__args__}  # type: ignore[attr-defined]
