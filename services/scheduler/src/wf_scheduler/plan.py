"""What a due schedule should do now (pure): which fire runs, which are recorded as missed."""
from dataclasses import dataclass
from datetime import datetime

from .crontime import due_fires, next_fire

MISSED_CAP = 100


@dataclass(frozen=True)
class FirePlan:
    fire_time: datetime
    missed: list[datetime]
    next_run_at: datetime


def plan(cron_expression: str, tz: str, next_run_at: datetime, now: datetime, catchup: str = "latest") -> FirePlan | None:
    if next_run_at > now:
        return None
    fires = due_fires(cron_expression, tz, next_run_at, now)
    # after a downtime only the latest fire runs; the older ones are recorded as missed, never a burst
    latest = fires[-1]
    missed = fires[:-1][-MISSED_CAP:]
    return FirePlan(fire_time=latest, missed=missed, next_run_at=next_fire(cron_expression, tz, max(latest, now)))
