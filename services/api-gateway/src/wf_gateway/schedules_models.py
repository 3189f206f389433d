"""HTTP shapes of schedules (SPEC §7, seed-api Schedules). Cron and zone are checked in
schedules_store.py, so the 422 can say exactly what is wrong with them."""
from typing import Any, Literal

from pydantic import BaseModel, Field

from .models import Strict

Overlap = Literal["allow", "skip", "buffer_one"]
Catchup = Literal["latest", "none", "all"]
CRON_DOC = "Five-field cron expression, e.g. '0 9 * * 1-5'."
ZONE_DOC = "IANA time zone, e.g. 'America/New_York'."


class ScheduleCreate(Strict):
    cron_expression: str = Field(min_length=1, max_length=200, description=CRON_DOC)
    timezone: str = Field("UTC", min_length=1, max_length=100, description=ZONE_DOC)
    input_data: dict[str, Any] = Field(default_factory=dict)
    enabled: bool = True
    overlap: Overlap = Field("allow", description="What a fire does while the previous scheduled run is going.")
    catchup: Catchup = Field("latest", description="What happens to fires missed while every scheduler was down.")


class SchedulePatch(Strict):
    """Only the fields given change."""
    enabled: bool | None = None
    cron_expression: str | None = Field(None, min_length=1, max_length=200, description=CRON_DOC)
    timezone: str | None = Field(None, min_length=1, max_length=100, description=ZONE_DOC)
    input_data: dict[str, Any] | None = None
    overlap: Overlap | None = None
    catchup: Catchup | None = None


class Schedule(BaseModel):
    id: str
    workflow_id: str
    cron_expression: str
    timezone: str
    input_data: dict[str, Any]
    enabled: bool
    next_run_at: str | None
    last_run_at: str | None
    created_at: str
    overlap: Overlap
    catchup: Catchup


class ScheduleList(BaseModel):
    schedules: list[Schedule]
    total: int


class ScheduleCreated(BaseModel):
    schedule_id: str
