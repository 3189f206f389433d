"""Fire times in a schedule's IANA zone (pure).

croniter walks naive wall-clock times; each is then placed in the zone. A wall time that a
daylight-saving jump skips does not exist and is not fired; a wall time that occurs twice
(the clock falls back) is fired once, at its first occurrence.
"""
from datetime import datetime, timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter


class ScheduleError(ValueError):
    pass


def check(cron_expression: str, tz: str) -> None:
    if not isinstance(cron_expression, str) or len(cron_expression.split()) != 5:
        raise ScheduleError(f"invalid cron expression '{cron_expression}': expected five fields")
    if not croniter.is_valid(cron_expression):
        raise ScheduleError(f"invalid cron expression '{cron_expression}'")
    zone(tz)


def zone(tz: str) -> ZoneInfo:
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError, TypeError) as exc:
        raise ScheduleError(f"unknown time zone '{tz}'") from exc


def _exists(wall: datetime, z: ZoneInfo) -> datetime | None:
    aware = wall.replace(tzinfo=z, fold=0)
    back = aware.astimezone(timezone.utc).astimezone(z).replace(tzinfo=None)
    return aware.astimezone(timezone.utc) if back == wall else None


def next_fire(cron_expression: str, tz: str, after: datetime) -> datetime:
    """The first fire time strictly after `after` (UTC in, UTC out)."""
    z = zone(tz)
    wall = after.astimezone(z).replace(tzinfo=None)
    it = croniter(cron_expression, wall)
    for _ in range(100_000):
        candidate = it.get_next(datetime)
        utc = _exists(candidate, z)
        if utc is not None and utc > after:
            return utc
    raise ScheduleError(f"cron expression '{cron_expression}' never fires")


def due_fires(cron_expression: str, tz: str, first_due: datetime, now: datetime, cap: int = 1000) -> list[datetime]:
    """Every fire time from first_due (itself a fire time) up to now, oldest first, at most cap."""
    out = []
    t = first_due
    while t <= now and len(out) < cap:
        out.append(t)
        t = next_fire(cron_expression, tz, t)
    return out
